"""Benchmark `attnres data prepare --source-dir`: text MB/s of the harness with 1 and 2 workers beside
the `tokenizers` library's own encode_batch on the same text, in the same run; and peak memory
against corpus size.

    .venv/bin/python bench/bench_data.py                 # ~20 MB of text, 3 rounds (~2 min on 2 cores)
    .venv/bin/python bench/bench_data.py --mb 100 --rounds 5

Text: the default corpus (Wikipedia leads), repeated with a per-copy prefix up to --mb, written as
parquet shards. Tokenizer: a byte-level BPE (vocab 8192) trained here with `tokenizers`, used through
--tokenizer-file. Timed, each in a fresh process, in rotating order each round:
    library x1   Tokenizer.encode_batch on the in-memory documents, one thread (TOKENIZERS_PARALLELISM=false)
    library x2   the same with the library's own thread pool of 2 (RAYON_NUM_THREADS=2)
    library 2p   library x1 in two processes at once, each on half of the documents, started together
                 after both have loaded: what this machine gives two single-threaded tokenizer
                 processes right now, i.e. the ceiling of harness x2 / harness x1
    harness xN   python -m corpus prepare --workers N (process start, reading parquet, hashing,
                 tokenizing, the split and writing train/val included), wall clock
MB/s = bytes of UTF-8 text / seconds; ratios are medians over rounds of per-round ratios. Goals
(issue 13): harness x1 >= 0.8 x library x1 (per worker), harness x2 >= 1.7 x harness x1.

Where the harness's time goes, from the run's sources.json "stages_s" (corpus/stream.py): wall
seconds of the main process's stages (plan, tokenize pass, select, write; "other" = process start,
imports, arguments, install: the rest of the wall clock) and the workers' CPU seconds by kind of work
(read, hash, tokenize, write). From these, the x2 / x1 ratio two free cores would give: (serial +
worker CPU) / (serial + worker CPU / 2), serial = everything but the tokenize pass (the units are
equal here, so the two workers are balanced). Peak memory: the largest process (ru_maxrss) of
harness x2 at 1x, 2x and 4x of --mem-mb of text. Machines here are shared: the load average is
printed with the numbers, and only ratios measured side by side mean anything. With the kernel's
autogroup on (the default of desktop and Debian kernels), CPU time is shared between sessions, not
processes: while another session is busy, a second worker of the same session gets little CPU, and
"library 2p / library x1" shows how little; the critical-path line says what two free cores give.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIB = """
import json, sys, time
import pyarrow.parquet as pq
from tokenizers import Tokenizer
docs = [d for f in sorted(__import__("pathlib").Path(sys.argv[2]).glob("*.parquet"))
        for d in pq.read_table(f, columns=["text"]).column(0).to_pylist()]
k, n = map(int, sys.argv[3].split("/"))  # this process's share: every n-th document from the k-th
docs = docs[k::n]
tok = Tokenizer.from_file(sys.argv[1])
if len(sys.argv) > 4:  # wait for the go, so that several processes tokenize at the same time
    print("ready", flush=True)
    sys.stdin.readline()
t0 = time.perf_counter()
n = 0
for i in range(0, len(docs), 512):
    n += sum(len(e.ids) for e in tok.encode_batch(docs[i:i + 512], add_special_tokens=False))
print(json.dumps({"s": time.perf_counter() - t0, "tokens": n}))
"""


def make_corpus(root: Path, mb: float) -> tuple[Path, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.corpora import load_corpus
    from records.tokens import data_root

    docs, _, _ = load_corpus("wiki", data_root() / "cache", log=lambda m: None)
    src = root / f"src{mb:g}"
    src.mkdir(parents=True)
    out, size, copy = [], 0, 0
    while size < mb * 1e6:
        for d in docs:
            t = f"Copy {copy}. {d}"
            out.append(t)
            size += len(t.encode())
            if size >= mb * 1e6:
                break
        copy += 1
    for i in range(4):
        pq.write_table(pa.table({"text": out[i::4]}), src / f"part{i}.parquet", row_group_size=2000)
    return src, size / 1e6


def train_tokenizer(root: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from corpus.corpora import load_corpus
    from records.tokens import data_root

    docs, _, _ = load_corpus("wiki", data_root() / "cache", log=lambda m: None)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    path = root / "tokenizer.json"
    tok.save(str(path))
    return path


def run_library(tok: Path, src: Path, threads: int) -> float:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false" if threads == 1 else "true", "RAYON_NUM_THREADS": str(threads)}
    r = subprocess.run([sys.executable, "-c", LIB, str(tok), str(src), "0/1"], env=env, capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)["s"]


def run_library_processes(tok: Path, src: Path, n: int) -> float:
    """Seconds until the last of n single-threaded library processes, each on 1/n of the documents and
    all started together once loaded, has tokenized its share."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    procs = [subprocess.Popen([sys.executable, "-c", LIB, str(tok), str(src), f"{k}/{n}", "wait"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    secs = [json.loads(p.communicate()[0])["s"] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a library process failed")
    return max(secs)


PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_harness(tok: Path, src: Path, out: Path, workers: int, stages: list | None = None) -> tuple[float, float]:
    """(wall seconds, peak MB of the largest process); appends the run's stage times to `stages`."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "corpus", "prepare", "--source-dir", str(src), "--tokenizer-file", str(tok),
           "--workers", str(workers), "--no-dedup", "--out", str(out)]
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    rc, kb = r.stdout.split()
    if rc != "0":
        raise SystemExit(f"harness failed: {' '.join(cmd)}")
    if stages is not None:
        st = json.loads((out / "sources.json").read_text())["sources"][0]["stages_s"]
        cpu = st.pop("worker_cpu")
        stages.append({**st, "other": wall - sum(st.values()), "wall": wall, **{f"cpu {k}": v for k, v in cpu.items()}})
    shutil.rmtree(out, ignore_errors=True)
    return wall, int(kb) / 1024


def stage_table(stages: dict[str, list[dict]]) -> list[str]:
    """Median stage times per harness arm, and the x2 / x1 ratio two free cores would give."""
    cols = [c for c in stages["harness x1"][0] if c != "wall"] + ["wall"]
    lines = ["", "where the harness's time goes (median s; wall of the main process's stages, then worker CPU summed):",
             f"  {'':11s}" + "".join(f"{c:>15s}" for c in cols)]
    med = {}
    for arm, rows in stages.items():
        med[arm] = {c: median(r.get(c, 0.0) for r in rows) for c in cols}
        lines.append(f"  {arm:11s}" + "".join(f"{med[arm][c]:15.2f}" for c in cols))
    cores = {arm: sum(v for c, v in m.items() if c.startswith("cpu ")) / max(m["tokenize pass"], 1e-9)
             for arm, m in med.items()}
    lines.append("  CPU cores the workers got during the tokenize pass: "
                 + ", ".join(f"{arm} {v:.2f}" for arm, v in cores.items()))
    x1 = med["harness x1"]
    serial = x1["wall"] - x1["tokenize pass"]
    work = sum(v for c, v in x1.items() if c.startswith("cpu "))
    lines.append(f"  on two free cores x2 / x1 would be (serial + worker CPU) / (serial + worker CPU / 2) = "
                 f"({serial:.2f} + {work:.2f}) / ({serial:.2f} + {work / 2:.2f}) = {(serial + work) / (serial + work / 2):.2f}")
    lines.append(f"  {_autogroup()}")
    return lines


def _autogroup() -> str:
    """Linux's autogroup shares CPU time fairly between sessions, not processes: while another session
    is busy, the processes of this one (the workers of one prepare, the two 'library 2p' processes)
    share one session's share, so a second worker adds little (measured here: two CPU-bound processes
    of one session got 0.49-0.51 cores together at load ~6, the same as one alone; in sessions of
    their own 0.73-0.79)."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return "scheduler autogroup: unknown (not Linux?)"
    return ("scheduler autogroup is ON: while other sessions are busy, the workers of one prepare share one "
            "session's CPU share (see _autogroup), and so does library 2p" if on else "scheduler autogroup is off")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="MB of text for the speed runs (default 20)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mem-mb", type=float, default=10.0, help="smallest corpus of the memory runs (default 10)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        tok = train_tokenizer(root)
        src, mb = make_corpus(root, args.mb)
        print(f"{mb:.1f} MB of text in 4 parquet shards, BPE vocab 8192; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs", flush=True)
        stages: dict[str, list[dict]] = {"harness x1": [], "harness x2": []}
        arms = {"library x1": lambda: run_library(tok, src, 1), "library x2": lambda: run_library(tok, src, 2),
                "library 2p": lambda: run_library_processes(tok, src, 2),
                "harness x1": lambda: run_harness(tok, src, root / "out", 1, stages["harness x1"])[0],
                "harness x2": lambda: run_harness(tok, src, root / "out", 2, stages["harness x2"])[0]}
        names, secs = list(arms), {n: [] for n in arms}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                secs[name].append(arms[name]())
            print(f"  round {r + 1}: " + ", ".join(f"{n} {mb / secs[n][-1]:.2f} MB/s" for n in names)
                  + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
        rate = {n: median(mb / s for s in v) for n, v in secs.items()}
        ratio = lambda a, b: median(secs[b][i] / secs[a][i] for i in range(args.rounds))  # noqa: E731
        print(f"\ntext MB/s (median of {args.rounds} rounds): " + ", ".join(f"{n} {v:.2f}" for n, v in rate.items()))
        print(f"harness x1 / library x1 = {ratio('harness x1', 'library x1'):.2f}  (goal >= 0.8)")
        print(f"harness x2 / harness x1 = {ratio('harness x2', 'harness x1'):.2f}  (goal >= 1.7)")
        print(f"harness x2 / library x2 = {ratio('harness x2', 'library x2'):.2f}")
        print(f"library 2p / library x1 = {ratio('library 2p', 'library x1'):.2f}  (two tokenizer processes on this "
              "machine now: the ceiling of harness x2 / x1)")
        print("\n".join(stage_table(stages)))
        print(f"\npeak memory of the largest process, harness x2 (load average {os.getloadavg()[0]:.1f}):")
        for k in (1, 2, 4):
            msrc, mmb = make_corpus(root / f"mem{k}", args.mem_mb * k)
            wall, peak = run_harness(tok, msrc, root / "out", 2)
            print(f"  {mmb:6.1f} MB of text: {peak:6.1f} MB peak, {mmb / wall:.2f} MB/s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
