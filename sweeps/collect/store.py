"""The results folder of a sweep: its lock, its files written atomically, and the collection cache.

    results/<sweep>/runs.parquet, curves.parquet    replaced atomically (readers see old or new)
    results/<sweep>/.collect.lock                   flock: one collector per sweep (also across NFS hosts)
    results/<sweep>/.collect_cache.json             per run: fingerprint of its files and its row
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from records.rundir import RunDir, atomic_write_bytes
from sweeps.collect.run import CURVES_SCHEMA, run_files

CACHE_VERSION = 2  # bump when a cached row would be computed differently (2: arm, variant, attnres_block_size)
RUNS_FILE, CURVES_FILE = "runs.parquet", "curves.parquet"
CACHE_FILE, LOCK_FILE = ".collect_cache.json", ".collect.lock"


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` through a temporary file; False (and no write) if unchanged."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data)
    return True


def fsync_dir(path: Path) -> None:
    """Make the renames durable (best effort: some filesystems cannot fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def locked(results_dir: Path) -> Iterator[None]:
    """One collector per sweep at a time (the lock is released when the file closes, even on a crash)."""
    with open(results_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        # holding the lock, any temporary file left here is from a collector that was killed
        for name in (RUNS_FILE, CURVES_FILE, CACHE_FILE):
            for tmp in results_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        yield


def fingerprint(rd: RunDir) -> list[list[int] | None]:
    """Identity of a run's files; taken *before* reading them, so a file that changes while it is read
    is re-read next time rather than cached as its older content."""
    fp: list[list[int] | None] = []
    for path in run_files(rd):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            fp.append(None)
        else:
            fp.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return fp


def file_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def load_cache(results_dir: Path, sweep: str) -> dict[str, Any]:
    """run_id -> {"fp", "row"}; empty if absent, stale (curves.parquet changed) or unreadable."""
    try:
        cache = json.loads((results_dir / CACHE_FILE).read_text())
        ok = (cache["version"] == CACHE_VERSION and cache["sweep"] == sweep
              and cache["curves_file"] == file_id(results_dir / CURVES_FILE))
        return cache["runs"] if ok else {}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {}


def save_cache(results_dir: Path, sweep: str, runs: dict[str, Any]) -> None:
    """``runs``: run_id -> {"fp", "row"}, valid for the curves.parquet now in place."""
    doc = {"version": CACHE_VERSION, "sweep": sweep, "curves_file": file_id(results_dir / CURVES_FILE), "runs": runs}
    write_atomic(results_dir / CACHE_FILE, json.dumps(doc, sort_keys=True).encode())


def cached_curves(results_dir: Path, run_ids: list[str]) -> dict[str, pa.Table]:
    """run_id -> its rows of the previous curves.parquet (sorted by run_id, so each run is one slice)."""
    if not run_ids:
        return {}
    table = pq.read_table(results_dir / CURVES_FILE).cast(CURVES_SCHEMA)
    ids, want, out, start = table["run_id"].to_pylist(), set(run_ids), {}, 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            if ids[start] in want:
                out[ids[start]] = table.slice(start, i - start)
            start = i
    return out
