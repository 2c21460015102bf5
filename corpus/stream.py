"""Streaming, parallel, resumable preparation of `attnres data prepare --source-dir`.

Stages, each with progress lines (documents, MB/s, tokens, ETA):
  tokenize  worker processes turn each work unit (corpus.shards) into three files under the
            work directory: <i>.tok (token ids, each document followed by the end-of-document token),
            <i>.len.npy (tokens per document) and <i>.idx.npy (per document: sha256 of its text and its
            split rank). They are written under temporary names and renamed, so a unit file that exists
            is complete. (Tokenizer "bpe": a hash-only pass first, then the split, BPE training on
            training documents, then tokenize.)
  select    in unit order: exact duplicates dropped (first occurrence kept; docset.SeenSet) and the
            validation cut: the round(n * val_fraction) kept documents (at least 1, at most n - 1) of
            smallest rank = first 8 bytes, big-endian, of sha256(b"<seed>|" + text). This is the rule of
            corpus.inmemory.split_documents (the in-memory split), so the same documents are held out;
            only the order differs: each split keeps the input order.
  write     train.bin and val.bin from the unit files in order, with sha256 and unigram counts.

Output bytes depend on the shards and the settings in `params` only: units, their order and every
decision are independent of the number of workers and of the batch size.

Memory: a worker holds one batch of about batch_mb of text (tokenizing needs ~25x that for the
library's encodings) plus its reader's buffer (a 1,024-row parquet record batch, or ~1 MB of a
compressed stream); the main process holds the duplicate filter (16-32 bytes per distinct document;
none with dedup off), an 8 MiB rank histogram and 1 M tokens while writing.

Interruption: the output directory appears only complete (corpus.prepare renames it into place, meta.json
last). The work directory `.<out>.work-<key>` keeps finished units; a re-run with the same settings
(the key covers the output-changing settings and the unit plan) resumes from them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpus.docset import KthSmallest, SeenSet
from corpus.shards import Consumed, Unit, discover, plan_units, read_unit
from corpus.tokenfile import SplitWriter
from corpus.tokenizer import EOT_ID, HfTokenizer, load_tokenizer_file, train_bpe
from corpus.workers import STAGES, UnitFiles, init_worker, save_npy, work_unit
from records.progress import ByteProgress, Log, count, duration, size
from records.tokens import SPLITS, DataError, dtype_for

_WRITE_CHUNK = 1 << 20  # tokens per slice while writing the splits (~10 MB of buffers)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects Slurm's and taskset's CPU binding
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class StreamSettings:
    """How a --source-dir preparation runs; none of these changes the output bytes."""

    workers: int = 0  # tokenizer processes; 0 = every CPU this process may use
    batch_mb: float = 1.0  # text per tokenizer call per worker: bounds each worker's memory
    unit_mb: float = 64.0  # text per work unit: the grain of load balance and of resumption
    progress_s: float = 10.0  # seconds between progress lines

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise DataError(f"--workers {self.workers}: fix: use a positive number (0 = all CPUs)")
        if not (self.batch_mb > 0 and self.unit_mb > 0):
            raise DataError("--batch-mb and --unit-mb must be positive; fix: e.g. --batch-mb 1 --unit-mb 64")

    @property
    def n_workers(self) -> int:
        return self.workers or available_cpus()


@dataclass(frozen=True)
class StreamResult:
    splits: dict
    tokenizer: dict  # kind, vocab_size, dtype, eot_id (+ eot_token for a tokenizer file)
    provenance: dict
    work_dir: Path


class _Stages:
    """Where a preparation's time went (sources.json "stages_s"): wall seconds of the main process's
    stages, and CPU seconds the workers spent per kind of work (corpus.workers.STAGES), summed."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.worker_cpu = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def timed(self, name: str):  # noqa: ANN201 - a context manager
        t = time.perf_counter()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t

    def add_worker_cpu(self, spent: dict[str, float]) -> None:
        for k, v in spent.items():
            self.worker_cpu[k] += v

    def record(self) -> dict[str, Any]:
        return {**{k: round(v, 3) for k, v in self.wall.items()},
                "worker_cpu": {k: round(v, 3) for k, v in self.worker_cpu.items()}}

    def line(self) -> str:
        return ("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.wall.items()) + "; worker CPU: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in self.worker_cpu.items()))


def _lock(work: Path, out: Path):
    work.mkdir(parents=True, exist_ok=True)
    fh = open(work / "lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise DataError(f"another `attnres data prepare` is preparing {out} right now (it holds {work}/lock); "
                        "fix: wait for it to finish") from None
    return fh


def _work_dir(out: Path, params: dict, units: list[Unit], log: Log) -> Path:
    key = hashlib.sha256(json.dumps({"params": params, "units": [asdict(u) for u in units]},
                                    sort_keys=True).encode()).hexdigest()[:12]
    work = out.parent / f".{out.name}.work-{key}"
    for other in sorted(out.parent.glob(f".{out.name}.work-*")):
        if other != work:
            log(f"  removing {other.name}: a partial preparation with other settings or files")
            shutil.rmtree(other, ignore_errors=True)
    (work / "units").mkdir(parents=True, exist_ok=True)
    return work


def _run_pass(units: list[Unit], tokenize: bool, tok: tuple, dtype: np.dtype, params: dict, work: Path,
              settings: StreamSettings, log: Log, stages: _Stages) -> None:
    what = "tokenizing" if tokenize else "hashing documents"
    done = [u for u in units if (UnitFiles(work, u.index).tokenized(dtype.itemsize) if tokenize
                                 else UnitFiles(work, u.index).hashed())]
    todo = sorted(set(units) - set(done), key=lambda u: (-u.weight, u.index))  # largest first: balance
    skipped, total = sum(u.weight for u in done), sum(u.weight for u in units)
    if done:
        log(f"  resuming: {len(done)} of {len(units)} units already done ({size(skipped)} of {size(total)})")
    if not todo:
        return
    for stale in (work / "units").glob("*.tmp"):
        stale.unlink(missing_ok=True)
    workers = min(settings.n_workers, len(todo))
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    counters, stage_s = ctx.Array("q", 4), ctx.Array("d", len(STAGES))
    prog = ByteProgress(f"{what} ({workers} worker{'s' if workers > 1 else ''})", total, log, settings.progress_s, skipped)
    init_args = (Path(params["source_dir"]), params["text_column"], params["seed"], tok, dtype.str,
                 int(settings.batch_mb * 1e6), work, counters, stage_s, os.getpid())

    def extra() -> str:
        return f"{counters[0]:,} documents, {count(counters[2])} tokens" if tokenize else f"{counters[0]:,} documents"

    with ctx.Pool(workers, initializer=init_worker, initargs=init_args) as pool:
        it = pool.imap_unordered(work_unit, [(u, tokenize) for u in todo])
        for _ in todo:
            while True:
                try:
                    it.next(timeout=0.5)
                    break
                except mp.TimeoutError:
                    prog.update(skipped + counters[3], extra(), counters[1])
            prog.update(skipped + counters[3], extra(), counters[1])
    prog.finish(skipped + counters[3], extra(), counters[1])
    stages.add_worker_cpu(dict(zip(STAGES, stage_s)))


def _select(work: Path, units: list[Unit], dedup: bool, val_fraction: float, log: Log) -> tuple[int, int, int]:
    """(documents kept, duplicates dropped, the largest validation rank); writes each unit's keep mask."""
    t0 = time.perf_counter()
    seen, kth, n_read = (SeenSet() if dedup else None), KthSmallest(), 0
    for u in units:
        f = UnitFiles(work, u.index)
        idx = np.load(f.idx, allow_pickle=False)
        keys = np.frombuffer(idx["digest"].tobytes(), dtype="<u8")[::4]
        keep = seen.add(keys) if seen is not None else np.ones(len(idx), dtype=bool)
        save_npy(f.keep, keep)
        kth.count(idx["rank"][keep])
        n_read += len(idx)
    n = kth.n
    if n < 2:
        raise DataError(f"need at least 2 documents to split into train and validation, got {n}; fix: add more text")
    kth.choose(min(max(1, round(n * val_fraction)), n - 1))
    for u in units:
        f = UnitFiles(work, u.index)
        kth.collect(np.load(f.idx, allow_pickle=False)["rank"][np.load(f.keep, allow_pickle=False)])
    log(f"  {n:,} documents" + (f" ({n_read - n:,} duplicates dropped)" if n_read > n else "")
        + f"; split chosen in {time.perf_counter() - t0:.1f} s")
    return n, n_read - n, kth.result()


def _write(tmp: Path, work: Path, units: list[Unit], threshold: int, tok: dict, settings: StreamSettings,
           log: Log) -> tuple[dict, str]:
    dtype, writers = tok["dtype"], {s: SplitWriter(tmp / f"{s}.bin", tok["dtype"], tok["vocab_size"]) for s in SPLITS}
    docs_sha = hashlib.sha256()
    total = sum(UnitFiles(work, u.index).tok.stat().st_size for u in units)
    prog, done = ByteProgress("writing splits", total, log, settings.progress_s), 0
    for u in units:
        f = UnitFiles(work, u.index)
        idx, keep = np.load(f.idx, allow_pickle=False), np.load(f.keep, allow_pickle=False)
        lens = np.load(f.len, allow_pickle=False).astype(np.int64) + 1
        docs_sha.update(idx["digest"][keep].tobytes())
        val = keep & (idx["rank"] <= np.uint64(threshold))
        train = keep & ~val
        ends = np.cumsum(lens)
        i = 0
        with open(f.tok, "rb") as fh:  # read in slices, not memmapped: mapped pages would count as resident
            while i < len(lens):
                start = int(ends[i] - lens[i])
                j = max(i + 1, int(np.searchsorted(ends, start + _WRITE_CHUNK, side="right")))
                seg = np.fromfile(fh, dtype=dtype, count=int(ends[j - 1]) - start)
                for name, sel in (("train", train[i:j]), ("val", val[i:j])):
                    writers[name].write(seg[np.repeat(sel, lens[i:j])], int(sel.sum()))
                i = j
        done += f.tok.stat().st_size
        prog.update(done, f"{count(sum(w.n_tokens for w in writers.values()))} tokens")
    splits = {s: w.close() for s, w in writers.items()}
    prog.finish(done, ", ".join(f"{s} {v['n_tokens']:,} tokens / {v['n_docs']:,} docs" for s, v in splits.items()))
    return splits, docs_sha.hexdigest()


def _bpe_sample(work: Path, units: list[Unit], params: dict, threshold: int, log: Log) -> list[str]:
    """Training documents (never validation ones) in input order, up to bpe_sample_mb of text."""
    budget, got, sample = params["bpe_sample_mb"] * 1e6, 0, []
    for u in units:
        f = UnitFiles(work, u.index)
        idx, keep = np.load(f.idx, allow_pickle=False), np.load(f.keep, allow_pickle=False)
        train = keep & (idx["rank"] > np.uint64(threshold))
        for doc, ok in zip(read_unit(Path(params["source_dir"]), u, params["text_column"], Consumed()), train):
            if ok:
                sample.append(doc)
                got += len(doc)
                if got >= budget:
                    return sample
    return sample


def _tokenizer(params: dict, tmp: Path) -> tuple[tuple, dict]:
    kind = params["tokenizer"]
    if kind == "byte":
        return ("byte",), {"kind": "byte", "vocab_size": 256, "dtype": dtype_for(256), "eot_id": EOT_ID}
    if kind == "hf":
        hf = load_tokenizer_file(Path(params["tokenizer_file"]), params.get("eot_token"))
        shutil.copyfile(params["tokenizer_file"], tmp / "tokenizer.json")
        return ("hf", params["tokenizer_file"], params.get("eot_token")), {
            "kind": "hf", "vocab_size": hf.vocab_size, "dtype": dtype_for(hf.vocab_size), "eot_id": hf.eot_id,
            "eot_token": hf.eot_token}
    return ("bpe",), {"kind": "bpe", "vocab_size": params["vocab_size"], "dtype": dtype_for(params["vocab_size"]),
                      "eot_id": EOT_ID}


def _interrupt(signum: int, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt(f"signal {signum}")


def write_source_splits(tmp: Path, out: Path, params: dict, settings: StreamSettings, cache: Path,
                        log: Log) -> StreamResult:
    """Prepare params["source_dir"] into tmp/{train,val}.bin (corpus.prepare writes meta.json and installs)."""
    root, stages = Path(params["source_dir"]), _Stages()
    t0 = time.perf_counter()
    with stages.timed("plan"):
        files, ignored = discover(root)
        units = plan_units(root, files, max(1, int(settings.unit_mb * 1e6)), params["text_column"])
    total = sum(u.weight for u in units)
    log(f"  {len(files):,} shards, {size(total)}, {len(units):,} work units (planned in {stages.wall['plan']:.1f} s)"
        + (f"; ignored: {', '.join(f'{n} {s}' for s, n in sorted(ignored.items()))}" if ignored else ""))
    if not units:
        raise DataError(f"{root}: its shards hold no documents; fix: check --source-dir and --text-column")
    work = _work_dir(out, params, units, log)
    lock = _lock(work, out)
    old_term = signal.getsignal(signal.SIGTERM)
    if old_term is signal.SIG_DFL:  # scancel / a requeue: stop like Ctrl-C (no output, units kept)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        t_start = time.perf_counter()
        splits, tok, (n, n_dup), docs_sha = _prepare_units(tmp, work, units, params, settings, cache, log, stages)
        tokenize_s = time.perf_counter() - t_start
    finally:
        lock.close()
        if old_term is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, old_term)
    rels = [str(p.relative_to(root)) for p in files]
    prov = {"source_dir": str(root), "n_files": len(files), "files": [{"file": r, "bytes": (root / r).stat().st_size}
                                                                      for r in rels[:1000]],
            "ignored_files": dict(sorted(ignored.items())), "n_units": len(units), "n_documents": n,
            "n_duplicate_docs_dropped": n_dup, "docs_sha256": docs_sha,
            "docs_sha256_definition": "sha256 of the concatenated sha256 digests of the kept documents' UTF-8 "
                                      "text, in input order", "workers": settings.n_workers,
            "tokenize_s": round(tokenize_s, 2), "stages_s": stages.record(), "licence": "as supplied by the user"}
    log(f"  prepared {size(total)} of shards in {duration(time.perf_counter() - t0)}")
    log(stages.line())
    return StreamResult(splits, tok, prov, work)


def _prepare_units(tmp: Path, work: Path, units: list[Unit], params: dict, settings: StreamSettings, cache: Path,
                   log: Log, stages: _Stages) -> tuple[dict, dict, tuple[int, int], str]:
    """The passes over the units (a hash-only pass and BPE training first for tokenizer "bpe"), the
    selection and the write: (splits, tokenizer info, (documents, duplicates), docs_sha256)."""
    tok_spec, tok = _tokenizer(params, tmp)
    if tok["kind"] == "bpe":
        with stages.timed("hash pass"):
            _run_pass(units, False, tok_spec, tok["dtype"], params, work, settings, log, stages)
        with stages.timed("train BPE"):
            _, _, threshold = _select(work, units, params["dedup"], params["val_fraction"], log)
            path = train_bpe(_bpe_sample(work, units, params, threshold, log), params["vocab_size"], cache, log)
        shutil.copyfile(path, tmp / "tokenizer.json")
        tok_spec = ("bpe", str(path), EOT_ID)
        tok["vocab_size"] = HfTokenizer.from_file(path).vocab_size  # may come out below the request
        tok["dtype"] = dtype_for(tok["vocab_size"])
    with stages.timed("tokenize pass"):
        _run_pass(units, True, tok_spec, tok["dtype"], params, work, settings, log, stages)
    with stages.timed("select"):
        n, n_dup, threshold = _select(work, units, params["dedup"], params["val_fraction"], log)
    with stages.timed("write"):
        splits, docs_sha = _write(tmp, work, units, threshold, tok, settings, log)
    if not splits["val"]["n_docs"] or not splits["train"]["n_docs"]:
        raise DataError("a split came out empty; fix: add documents or change --val-fraction")
    return splits, tok, (n, n_dup), docs_sha
