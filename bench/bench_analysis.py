"""Benchmark the analysis: fitting demo-sized results (3 arms x 4 sizes, 1 seed) with 1,000
bootstrap replicates must take under 30 s; regenerating every figure and the report under a minute.
A 40-run table (2 arms x 4 sizes x 5 seeds) must fit in under 10 s (issue: power before spending).

    .venv/bin/python bench/bench_analysis.py                  # the acceptance setting
    .venv/bin/python bench/bench_analysis.py --n-boot 5000    # more replicates
    .venv/bin/python bench/bench_analysis.py --seeds 3        # 3 seeds per (variant, size)

The results are synthetic (analysis.synthetic: runs.parquet and curves.parquet as docs/SCHEMAS.md,
losses from a known law with Block 1.25x and Full 1.3x the baseline's compute efficiency), written
to a temporary directory and not timed. Timed: the fit (load -> select -> every applicable form with
its bootstrap -> multipliers -> checks -> fits.json; what `attnres fit` does), then the full
regeneration (fits.json + figures + report.md; what `attnres report` does). Prints wall and CPU
seconds; exit status 1 if the fit misses its budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from analysis.pipeline import AnalysisOptions, analyse_results
from analysis.regenerate import regenerate
from analysis.serialize import write_fits
from analysis.synthetic import SyntheticSweep, write_synthetic

FIT_BUDGET_S = 30.0
REGENERATE_BUDGET_S = 60.0
TABLE40_BUDGET_S = 10.0


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args(argv)
    opts = AnalysisOptions(n_boot=args.n_boot)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "demo"
        write_synthetic(SyntheticSweep(sweep="demo", seeds=tuple(range(args.seeds))), results)
        def fit() -> None:
            write_fits(analyse_results(results, opts), results / "fits.json")

        _, fit_wall, fit_cpu = _timed(fit)
        r, regen_wall, regen_cpu = _timed(lambda: regenerate(results, opts))
        a = r.analysis
    print(f"demo-sized results: {len(set(a.observations.run))} runs (3 variants x 4 sizes x {args.seeds} seed(s)), "
          f"{args.n_boot} bootstrap replicates")
    print(f"fit (all forms, bootstrap, multipliers, checks, fits.json): {fit_wall:.2f} s wall, {fit_cpu:.2f} s CPU "
          f"(budget {FIT_BUDGET_S:.0f} s)")
    print(f"regenerate (fits.json + {len(r.figures)} figure files + report.md): {regen_wall:.2f} s wall, "
          f"{regen_cpu:.2f} s CPU (budget {REGENERATE_BUDGET_S:.0f} s)")
    for v, h in sorted(a.headline.items()):
        print(f"  {v}: multiplier {h.value.format()} ({h.form}, {h.design})")
    with tempfile.TemporaryDirectory() as tmp:  # `attnres fit` on a 40-run table, every default form
        results = Path(tmp) / "t40"
        write_synthetic(SyntheticSweep(sweep="t40", multipliers={"baseline": 1.0, "block": 1.25},
                                       seeds=tuple(range(5))), results)
        b, t40_wall, t40_cpu = _timed(lambda: analyse_results(results, AnalysisOptions(n_boot=args.n_boot)))
    print(f"40-run table (2 arms x 4 sizes x 5 seeds), fit: {t40_wall:.2f} s wall, {t40_cpu:.2f} s CPU "
          f"(budget {TABLE40_BUDGET_S:.0f} s); block {b.headline['block'].value.format()}")
    ok = fit_wall < FIT_BUDGET_S and t40_wall < TABLE40_BUDGET_S
    if not ok:
        print(f"FAIL: a fit missed its budget ({fit_wall:.1f} s, {t40_wall:.1f} s)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
