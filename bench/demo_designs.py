"""The demo's design trade-off, from the committed runs (no training): what a smaller design would
have reported, and what it costs. Each row refits the headline (the shift model) on a subset of the
runs in results/demo/runs.parquet (or demo-full for the Full AttnRes arm): every subset is a design
one could have launched, with the same runs it would have trained (runs are bit-identical on one
machine for one seed). The last rows refit every choice of 4, 3 and 2 of the 5 seeds: how much a
smaller design's answer depends on which seeds it happened to draw.

    .venv/bin/python bench/demo_designs.py            # the README's table (seconds)

Training core-minutes: the sum of the subset's measured training times (runs.parquet wall_s); the
demo's 30 runs took 10.7 core-minutes and `attnres launch` 7.3 minutes of wall time with 2 workers
(process start-up and the last runs' tail on one worker included).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

# (label, results, arm, sizes by n_blocks, seeds)
DESIGNS = [
    ("d2-d4 x 5 seeds (the demo)", "demo", "block", (2, 3, 4), (0, 1, 2, 3, 4)),
    ("d2-d4 x 4 seeds", "demo", "block", (2, 3, 4), (0, 1, 2, 3)),
    ("d2-d4 x 3 seeds (0-2)", "demo", "block", (2, 3, 4), (0, 1, 2)),
    ("d2-d4 x 3 seeds (2-4)", "demo", "block", (2, 3, 4), (2, 3, 4)),
    ("d2-d4 x 2 seeds", "demo", "block", (2, 3, 4), (0, 1)),
    ("demo-full: Full AttnRes, d2-d4 x 5 seeds", "demo-full", "full", (2, 3, 4), (0, 1, 2, 3, 4)),
]


def row(label: str, runs: pd.DataFrame, arm: str, sizes, seeds) -> str:
    d, e = fit(runs, arm, sizes, seeds)
    het = f"{e.heterogeneity.p_value:.2g}" if e.heterogeneity else "-"
    per_size = ", ".join(f"{s.estimate:.2f}" for s in e.per_size)
    minutes = d.wall_s.sum() / 60
    return (f"| {label} | {len(d)} | {minutes:.1f} | {e.estimate:.3f} [{e.low:.3f}, {e.high:.3f}] | "
            f"{(e.log_high - e.log_low) / 2:.3f} | {het} | {e.replicate} | {per_size} |")


def fit(runs: pd.DataFrame, arm: str, sizes, seeds):
    from analysis.pipeline import AnalysisOptions, analyse_results

    d = runs[runs.n_blocks.isin(sizes) & runs.seed.isin(seeds) & runs.arm.isin(["baseline", arm])]
    with tempfile.TemporaryDirectory() as tmp:
        d.to_parquet(Path(tmp) / "runs.parquet")
        a = analyse_results(Path(tmp), AnalysisOptions(forms=("shift",), n_boot=0))
    return d, a.shift.arms[arm]


def draws(runs: pd.DataFrame, k: int) -> str:
    """Every choice of k of the 5 seeds: how often the sizes-disagree test fires, and the spread of
    the half-width, i.e. how much the answer of a k-seed design depends on which seeds were drawn."""
    fits = [fit(runs, "block", (2, 3, 4), seeds)[1] for seeds in itertools.combinations(range(5), k)]
    hw = sorted((e.log_high - e.log_low) / 2 for e in fits)
    fired = sum(e.replicate == "sizes" for e in fits)
    return (f"| every {k} of the 5 seeds ({len(fits)} draws) | {k * 6} | | "
            f"{min(e.estimate for e in fits):.3f}-{max(e.estimate for e in fits):.3f} | {hw[0]:.3f}-{hw[-1]:.3f} | "
            f"fires in {fired} of {len(fits)} | | |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-root", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)
    tables = {}
    print("| design | runs | training core-min | multiplier [90%] | half-width (log m) | sizes disagree? "
          "(F-test p) | interval over | per size (d2, d3, d4) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, results, arm, sizes, seeds in DESIGNS:
        path = args.results_root / results / "runs.parquet"
        if not path.exists():
            print(f"| {label} | - | - | {path} missing: run `make demo` (or launch and collect {results}) | | | | |")
            continue
        runs = tables.setdefault(results, pd.read_parquet(path))
        print(row(label, runs, arm, sizes, seeds))
    if "demo" in tables:
        for k in (4, 3, 2):
            print(draws(tables["demo"], k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
