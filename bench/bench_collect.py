"""Benchmark the collector: 1,000 synthetic runs x 200 evaluation points must collect in under 10 s.

    .venv/bin/python bench/bench_collect.py                        # the acceptance setting
    .venv/bin/python bench/bench_collect.py --runs 100             # smaller
    .venv/bin/python bench/bench_collect.py --data /tmp/bench_runs # keep the runs to re-time later

Half the runs are Block AttnRes (eval rows carry layer_rms and an (L+1) x sources depth_alpha,
L = 8), half baseline; every value carries its own noise, so parquet cannot compress runs into each
other. ``--train-rows-per-eval`` adds train rows (default 0: the acceptance counts evaluation
points; real runs log many train rows, and each costs about as much to parse as an eval row).
Run directories are written through records.rundir.RunDir and not timed. Timed: a cold collection
(no cache), a warm one (nothing changed) and an incremental one (one run restarted and went one
evaluation further). Prints wall and CPU seconds (this process and its workers) and rows/s; exit
status 1 if the cold collection misses the budget.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from records.rundir import RunDir
from sweeps.collect import collect

SWEEP = "bench"
N_BLOCKS = 4  # L = 8 sublayers
TOKENS_PER_STEP = 32 * 128
STEPS_PER_EVAL = 10


def spec(run_id: str, variant: str, steps: int, seed: int) -> dict:
    return {"run_id": run_id, "sweep": SWEEP, "size": "d4", "ladder": "bench", "axes": {"lr": 3e-3},
            "model": {"variant": variant, "n_blocks": N_BLOCKS, "d_model": 64, "n_heads": 4, "d_ff": 192,
                      "seq_len": 128, "vocab_size": 256, "attnres_blocks": 4 if variant == "block" else None,
                      "layers_per_block": None},
            "train": {"tokens": steps * TOKENS_PER_STEP, "batch_size": 32, "lr": 3e-3, "seed": seed,
                      "schedule": "cosine"},
            "data": {"path": "data/bench"},
            "derived": {"params": {"embedding": 16384, "lm_head": 16384, "attention": 65536, "mlp": 147456,
                                   "norms": 576, "attnres": 1152 if variant == "block" else 0,
                                   "total": 247488 if variant == "block" else 246336,
                                   "non_embedding": 231104 if variant == "block" else 229952},
                        "flops_per_token": {"forward": 5e5, "train": 1.5e6},
                        "tokens_per_step": TOKENS_PER_STEP, "steps": steps}}


def write_metrics(rd: RunDir, variant: str, n_evals: int, train_rows: int, seed: int) -> None:
    rng = random.Random(seed)
    noise = lambda: 1.0 + 0.01 * rng.random()
    n_layers = 2 * N_BLOCKS

    def row(step: int) -> dict:
        return {"step": step, "tokens": step * TOKENS_PER_STEP, "flops": 1.5e6 * step * TOKENS_PER_STEP,
                "train_loss": 5.0 * step ** -0.2 * noise(), "lr": 3e-3 * noise(), "grad_norm": 0.4 * noise(),
                "tokens_per_s": 5e4 * noise(), "elapsed_s": 0.1 * step * noise(), "val_loss": None,
                "mfu": None, "layer_rms": None, "depth_alpha": None}

    for i in range(1, n_evals + 1):
        for j in range(1, train_rows + 1):  # evenly spaced, the last one at the evaluation's step
            rd.append_metrics({**row((i - 1) * STEPS_PER_EVAL + j * STEPS_PER_EVAL // train_rows), "kind": "train"})
        ev = {**row(i * STEPS_PER_EVAL), "kind": "eval"}
        if variant == "block":  # sources of each of the L+1 targets: the blocks completed so far
            ev["layer_rms"] = [noise() for _ in range(n_layers)]
            ev["depth_alpha"] = [[noise() / (1 + l // 2) for _ in range(1 + l // 2)] for l in range(n_layers + 1)]
        rd.append_metrics({**ev, "val_loss": ev["train_loss"] * noise()})


def make_runs(root: Path, n_runs: int, n_evals: int, train_rows: int) -> list[RunDir]:
    rds = []
    steps = STEPS_PER_EVAL * n_evals
    for i in range(n_runs):
        variant = ("baseline", "block")[i % 2]
        run_id = f"bench-{variant}-d4-s{i:04d}"
        rd = RunDir(root / SWEEP / run_id)
        rd.write_spec(spec(run_id, variant, steps, seed=i))
        rd.write_env({"versions": {"python": "3.11", "torch": "2.13.0", "numpy": "2.4", "attnres": "0.1.0"},
                      "git_commit": "bench", "hostname": "bench", "device": "cpu", "world_size": 1,
                      "started_at": 1.7e9})
        write_metrics(rd, variant, n_evals, train_rows, seed=i)
        rd.set_status("done", step=steps, attempts=1)
        rds.append(rd)
    return rds


def cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, runs_root: Path, results_root: Path, workers: int | None) -> float:
    t0, c0 = time.perf_counter(), cpu_s()
    s = collect(SWEEP, runs_root, results_root, workers=workers)
    dt = time.perf_counter() - t0
    rows = s.n_runs + s.n_curve_rows
    print(f"{label:12s} {dt:6.2f} s wall {cpu_s() - c0:6.2f} s cpu {rows / dt:10,.0f} rows/s  ({s.n_runs} runs, "
          f"{s.n_curve_rows} curve rows; {s.n_reread} read, {s.n_cached} cached, {len(s.problems)} problems)")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--evals", type=int, default=200)
    ap.add_argument("--train-rows-per-eval", type=int, default=0, choices=range(11), metavar="0..10",
                    help="train rows logged per evaluation (default 0: the acceptance counts evaluation points)")
    ap.add_argument("--workers", type=int, default=None, help="collect(workers=...); default: one per CPU")
    ap.add_argument("--budget-s", type=float, default=10.0, help="target for the cold collection")
    ap.add_argument("--data", type=Path, default=None,
                    help="keep the runs here and reuse them as they are if present (default: a temporary directory)")
    args = ap.parse_args()

    root = args.data or Path(tempfile.mkdtemp(prefix="bench_collect_"))
    try:
        runs, results = root / "runs", root / "results"
        t0 = time.perf_counter()
        if (runs / SWEEP).is_dir():
            rds = [RunDir(p) for p in sorted((runs / SWEEP).iterdir())]
        else:
            rds = make_runs(runs, args.runs, args.evals, args.train_rows_per_eval)
        size = sum(rd.metrics_path.stat().st_size for rd in rds) / 2**20
        print(f"setup: {len(rds)} runs, {size:.0f} MiB of metrics.jsonl, {time.perf_counter() - t0:.0f} s (not timed)")
        shutil.rmtree(results, ignore_errors=True)
        cold = timed("cold", runs, results, args.workers)
        timed("warm", runs, results, args.workers)
        before = rds[-1].metrics_path.read_bytes()
        write_metrics(rds[-1], "block", args.evals + 1, args.train_rows_per_eval, seed=0)  # restarted, went further
        timed("incremental", runs, results, args.workers)
        rds[-1].metrics_path.write_bytes(before)  # leave a --data directory as it was
        verdict = "OK" if cold < args.budget_s else "TOO SLOW"
        print(f"cold collection {cold:.2f} s vs budget {args.budget_s:.0f} s: {verdict}")
        return 0 if cold < args.budget_s else 1
    finally:
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
