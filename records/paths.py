"""Where runs/, results/ and data/ live: one rule for all three.

Each is a directory of the working directory `attnres` runs in (the checkout, for the `make`
targets), unless overridden:

    runs/      --runs-root DIR, else $ATTNRES_RUNS_ROOT, else ./runs      (run directories per sweep)
    results/   --results-root DIR, else ./results                          (parquet, fits, figures)
    data/      --out DIR (data prepare), else $ATTNRES_DATA_DIR, else ./data (prepared token data)

Nothing else anchors them (not the checkout, not the package): on a cluster you work in a scratch
directory and everything lands there. What a run needs is written into its spec as an absolute
path when it is planned, so a job on a compute node does not depend on its working directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def runs_root() -> Path:
    return Path(os.environ.get("ATTNRES_RUNS_ROOT") or "runs")


def results_root() -> Path:
    return Path("results")


def data_root() -> Path:
    return Path(os.environ.get("ATTNRES_DATA_DIR") or "data")


# ----------------------------------------------------------------------------- inside the runs root
# The layout under the runs root, spelled out here only (launch, status, cancel and collect call these):
#
#     <runs_root>/<sweep>/<run_id>/          one run (its files: records/rundir.py)
#     <runs_root>/<sweep>/.local/            the local launcher: its lock, <run_id>.out per worker
#     <runs_root>/<sweep>/.submitit/         submitit's job folders and launches.jsonl


def sweep_dir(runs_root: str | os.PathLike[str], sweep: str) -> Path:
    """``<runs_root>/<sweep>/``; ValueError for a name that is not one folder (a path, '..', hidden)."""
    if not sweep or Path(sweep).name != sweep or sweep.startswith("."):
        raise ValueError(f"sweep: {sweep!r} is not a sweep name; fix: pass the name (runs/<name>/), not a path")
    return Path(runs_root) / sweep


def run_dir(runs_root: str | os.PathLike[str], sweep: str, run_id: str) -> Path:
    """``<runs_root>/<sweep>/<run_id>/``."""
    return sweep_dir(runs_root, sweep) / run_id


def local_dir(runs_root: str | os.PathLike[str], sweep: str) -> Path:
    """Where the local launcher of a sweep keeps its lock and each worker's output."""
    return sweep_dir(runs_root, sweep) / ".local"


def worker_output(runs_root: str | os.PathLike[str], sweep: str, run_id: str) -> Path:
    """stdout and stderr of a run's local training process."""
    return local_dir(runs_root, sweep) / f"{run_id}.out"


def submitit_dir(runs_root: str | os.PathLike[str], sweep: str) -> Path:
    """submitit's folders (one per job) and the ledger of every submission."""
    return sweep_dir(runs_root, sweep) / ".submitit"


def run_location(run_dir: str | os.PathLike[str]) -> tuple[Path, str, str]:
    """(runs_root, sweep, run_id) of a run directory: the inverse of ``run_dir``."""
    p = Path(run_dir)
    return p.parent.parent, p.parent.name, p.name
