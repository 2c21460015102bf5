"""Collect every run of a sweep into two parquet tables (schemas: records/tables.py, shown in docs/SCHEMAS.md).

    runs/<sweep>/<run_id>/{spec,status,env}.json + metrics.jsonl
        --collect--> results/<sweep>/runs.parquet    one row per run
                     results/<sweep>/curves.parquet  one row per evaluation point

    attnres collect demo                      # CLI (registered by sweeps.cli)
    python -m sweeps.collect demo --strict    # same; --strict exits 1 if any problem was found
    summary = collect("demo"); print(summary.format())

Policy (what "honest" means here):
- runs.parquet keeps every run that has a directory, whatever its state, plus the planned runs that
  have none (status "pending", null losses) when the caller passes ``expected_run_ids``. Analysis
  filters on ``status == "done"``; nothing is dropped on the collector's side.
- Whatever was wrong while reading a run (a truncated or corrupt metrics line, a missing file, a
  "done" run without its final evaluation, a run the sweep did not plan) goes into its ``problems``
  column and into the summary. A bad run never stops the collection.
- A resumed run appears once: a restart in metrics.jsonl (a step going back, or a (kind, step) seen
  before) supersedes every earlier row from the restart point on, so each evaluation step is kept
  once, from the latest attempt (the rows ``RunDir.truncate_metrics`` would have kept).

Mechanics:
- Incremental: ``.collect_cache.json`` keeps, per run, a fingerprint of its four files (size, mtime,
  ctime, inode) and its runs.parquet row; the curves of unchanged runs are taken from the previous
  curves.parquet. Deleting the cache gives identical files (tested).
- Deterministic: explicit arrow schemas, rows sorted by run_id (then step), no pandas metadata; the
  same input gives the same bytes, and a file whose bytes would not change is not rewritten (its
  mtime stays, so ``make`` does not refit).
- Atomic and concurrent-safe: one collector per sweep at a time (``flock`` on
  ``results/<sweep>/.collect.lock``, which also works across hosts on NFS); every file is written to
  a temporary file, fsynced, then ``os.replace``d, so readers see the old file or the new one, never
  half of one. curves.parquet is replaced before runs.parquet.
- Fast: parsing metrics.jsonl dominates a cold collection; ``workers`` (the CLI's --workers,
  default one per CPU) spreads it over processes. bench/bench_collect.py times 1,000 runs x 200
  evaluations.

The package: run.py reads one run (spec.json through records.config.RunSpec), tables.py builds the
arrow tables, store.py owns the results folder (lock, atomic files, cache), values.py checks types.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from records import paths
from records.rundir import RunDir
from sweeps.collect import store
from sweeps.collect.run import CURVES_SCHEMA, planned_row, read_run, run_files
from sweeps.collect.tables import parquet_bytes, runs_table

PARALLEL_MIN_RUNS = 64  # fewer changed runs than this are read in-process (starting workers costs ~1 s)
RUNS_FILE, CURVES_FILE = store.RUNS_FILE, store.CURVES_FILE

ProgressFn = Callable[[int, int], None]  # (runs read so far, runs to read)


@dataclass
class CollectSummary:
    sweep: str
    counts: dict[str, int]  # runs by status; "pending" includes planned runs with no directory
    problems: list[tuple[str, str]]  # (run_id or directory name, message), in run_id order
    missing: list[str]  # planned runs (expected_run_ids) with no run directory
    runs_path: Path
    curves_path: Path
    n_runs: int  # rows in runs.parquet
    n_curve_rows: int  # rows in curves.parquet
    n_reread: int  # runs read from their files (changed since the last collection, or no cache)
    n_cached: int  # runs taken unchanged from the cache
    written: list[str]  # files whose bytes changed this time ([] when nothing did)
    elapsed_s: float

    def format(self, max_problems: int = 50) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "none"
        lines = [
            f"collect {self.sweep}: {self.n_runs} runs ({counts}); {self.n_reread} read, {self.n_cached} cached",
            f"  {self.runs_path} ({self.n_runs} rows), {self.curves_path} ({self.n_curve_rows} rows): "
            + (f"wrote {', '.join(self.written)}" if self.written else "unchanged")
            + f" in {self.elapsed_s:.2f} s",
        ]
        if self.missing:
            lines.append(f"  planned but no run directory ({len(self.missing)}): "
                         + ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else ""))
        if self.problems:
            lines.append(f"  problems ({len(self.problems)}):")
            lines += [f"    {run_id}: {msg}" for run_id, msg in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"    ... {len(self.problems) - max_problems} more (see the problems column "
                             f"of {self.runs_path})")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- reading runs


def _read_runs(runs_root: Path, sweep: str, run_ids: list[str]) -> list[tuple[dict[str, Any], pa.Table]]:
    return [read_run(RunDir(paths.run_dir(runs_root, sweep, run_id)), run_id, sweep) for run_id in run_ids]


def _read_runs_parallel(runs_root: Path, sweep: str, run_ids: list[str], workers: int | None,
                        progress: ProgressFn | None = None) -> list[tuple[dict[str, Any], pa.Table]]:
    """``_read_runs`` in ``workers`` processes (parsing JSON is CPU-bound and holds the GIL); None =
    one per available CPU (at most 8) once there are PARALLEL_MIN_RUNS runs to read. Worker processes
    are spawned, so a script that calls this with workers != 1 needs the ``if __name__ == "__main__":``
    guard (the CLI has it). ``progress`` is told after each run (each chunk, in parallel)."""
    n = len(run_ids)
    tell = progress or (lambda done, total: None)
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cpus, 8) if n >= PARALLEL_MIN_RUNS else 1
    workers = min(workers, n)
    if workers < 2 or mp.current_process().daemon:  # a daemon (e.g. a Pool worker) may not have children
        out = []
        for run_id in run_ids:
            out += _read_runs(runs_root, sweep, [run_id])
            tell(len(out), n)
        return out
    k = 4 * workers  # a few strided chunks per worker even out the load (neighbouring runs cost alike)
    chunks = [run_ids[i::k] for i in range(k)]
    out = []
    # spawn, not fork: the parent may already run pyarrow's threads
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for part in as_completed([pool.submit(_read_runs, runs_root, sweep, chunk) for chunk in chunks]):
            out += part.result()
            tell(len(out), n)
    return out


def _run_dirs(runs_root: Path, sweep: str, problems: list[tuple[str, str]], expected: set[str]) -> list[str]:
    """Names of the run directories under runs/<sweep>/ (hidden entries skipped)."""
    sweep_dir = paths.sweep_dir(runs_root, sweep)
    if not sweep_dir.is_dir():
        return []
    names = []
    with os.scandir(sweep_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        files = run_files(RunDir(entry.path))
        if entry.name in expected or any(f.exists() for f in files):
            names.append(entry.name)
        else:
            problems.append((entry.name, f"{entry.path} has none of {', '.join(f.name for f in files)}; skipped"))
    return names


def _final_rows(rows: dict[str, dict[str, Any]], expected: set[str] | None) -> list[dict[str, Any]]:
    """runs.parquet rows in run_id order, with the problems that depend on the plan (not cached per run)."""
    out = [rows[r] for r in sorted(rows)]
    if expected is None:
        return out
    return [r if r["run_id"] in expected else
            {**r, "problem_list": [*r["problem_list"], "not one of the sweep's planned runs"]} for r in out]


# ----------------------------------------------------------------------------- collect


def _check_roots(sweep: str, runs_root: Path, expected: set[str] | None) -> None:
    sweep_dir = paths.sweep_dir(runs_root, sweep)  # ValueError for a path instead of a name
    if not runs_root.is_dir():
        raise FileNotFoundError(f"{runs_root}: the runs root does not exist (relative paths are taken from the "
                                f"directory attnres runs in, {Path.cwd()}); fix: pass --runs-root DIR (the "
                                "directory holding one folder per sweep) or set $ATTNRES_RUNS_ROOT, or launch first")
    if not sweep_dir.is_dir() and expected is None:
        raise FileNotFoundError(f"{sweep_dir}: no run directories for sweep {sweep!r}; fix: check the sweep "
                                "name and --runs-root, or launch the sweep first")


def collect(sweep: str, runs_root: str | os.PathLike[str] = "runs", results_root: str | os.PathLike[str] = "results",
            expected_run_ids: list[str] | None = None, workers: int | None = 1,
            progress: ProgressFn | None = None) -> CollectSummary:
    """Collect ``<runs_root>/<sweep>/*/`` into ``<results_root>/<sweep>/{runs,curves}.parquet``.

    ``expected_run_ids``: the sweep's planned runs; those without a directory appear as ``pending``
    and those with a directory but not in the list are flagged. Raises FileNotFoundError only when
    there is nothing to collect at all (no run directory for the sweep and no planned runs).
    ``workers``: processes that read changed runs; 1 (default) reads in this process, None picks
    one per CPU for large collections (see ``_read_runs_parallel``). ``progress(done, total)`` is
    called as changed runs are read (the long stage). A runs root that does not exist is refused
    (FileNotFoundError): a mistyped --runs-root must not produce a table of pending runs."""
    t0 = time.perf_counter()
    root = Path(runs_root)
    expected = set(expected_run_ids) if expected_run_ids is not None else None
    _check_roots(sweep, root, expected)
    results_dir = Path(results_root) / sweep
    results_dir.mkdir(parents=True, exist_ok=True)

    with store.locked(results_dir):
        dir_problems: list[tuple[str, str]] = []
        names = _run_dirs(root, sweep, dir_problems, expected or set())
        cache = store.load_cache(results_dir, sweep)
        fingerprints = {run_id: store.fingerprint(RunDir(paths.run_dir(root, sweep, run_id))) for run_id in names}
        cached_ids = [r for r in names if r in cache and cache[r]["fp"] == fingerprints[r]]
        to_read = sorted(set(names) - set(cached_ids))
        rows = {r: cache[r]["row"] for r in cached_ids}
        fresh: dict[str, pa.Table] = {}
        for row, curves in _read_runs_parallel(root, sweep, to_read, workers, progress):
            rows[row["run_id"]], fresh[row["run_id"]] = row, curves
        missing = sorted(expected - set(rows)) if expected is not None else []
        out_rows = _final_rows({**rows, **{r: planned_row(r, sweep) for r in missing}}, expected)
        unchanged = bool(cache) and not to_read and set(names) == set(cache)
        n_curve_rows, n_runs, written = _write(results_dir, out_rows, fresh, cached_ids, unchanged)
        store.save_cache(results_dir, sweep, {r: {"fp": fingerprints[r], "row": rows[r]} for r in names})
        store.fsync_dir(results_dir)

    problems = sorted(dir_problems + [(r["run_id"], p) for r in out_rows for p in r["problem_list"]],
                      key=lambda rp: rp[0])
    return CollectSummary(
        sweep=sweep, counts=dict(sorted(Counter(str(r["status"]) for r in out_rows).items())),
        problems=problems, missing=missing, runs_path=results_dir / RUNS_FILE,
        curves_path=results_dir / CURVES_FILE, n_runs=n_runs, n_curve_rows=n_curve_rows,
        n_reread=len(to_read), n_cached=len(cached_ids), written=written,
        elapsed_s=time.perf_counter() - t0,
    )


def _write(results_dir: Path, rows: list[dict[str, Any]], fresh: dict[str, pa.Table], cached_ids: list[str],
           unchanged: bool) -> tuple[int, int, list[str]]:
    """Write curves.parquet (unless no run changed), then runs.parquet; (curve rows, runs, files written)."""
    written = []
    curves_path, runs_path = results_dir / CURVES_FILE, results_dir / RUNS_FILE
    if unchanged:  # same runs, none changed: the curves stand
        n_curve_rows = pq.read_metadata(curves_path).num_rows
    else:
        pieces = {**store.cached_curves(results_dir, cached_ids), **fresh}
        curves = pa.concat_tables([CURVES_SCHEMA.empty_table()] + [pieces[r] for r in sorted(pieces)])
        n_curve_rows = curves.num_rows
        written += [CURVES_FILE] if store.write_atomic(curves_path, parquet_bytes(curves)) else []
    runs = runs_table(rows)
    written += [RUNS_FILE] if store.write_atomic(runs_path, parquet_bytes(runs)) else []
    return n_curve_rows, runs.num_rows, written


__all__ = ["CURVES_SCHEMA", "CollectSummary", "collect"]
