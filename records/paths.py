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
