"""Is the headline interval honest? Coverage and width of the multiplier's 90% interval on simulated
sweeps with a known truth (analysis/simulate.py: a curved baseline, noise shared by the arms of a
(size, seed) unit, per-run noise, the arm's FLOP overhead; defaults measured on the tiny ladder).

    .venv/bin/python bench/bench_coverage.py                 # the table in the README (1000 trials/row)
    .venv/bin/python bench/bench_coverage.py --trials 200    # quicker

Rows: the three standard designs (4 sizes x 1 seed, 4 x 5, 6 x 2) at m = 1.0 and 1.25 for the
headline (shift) and for the paper's convention (separate fits at the largest compute), then
robustness rows for the headline: a straight baseline, larger size-to-size deviations, and
paper-scale noise (Table 2's curve, ~10x less noise), and a multiplier that varies by size (sd 0.10
in log m, the demo's spread, with its paired noise) scored against the all-sizes multiplier: a
known limitation, printed and not part of the goal (the F-test rarely fires with 3-4 sizes; the report
then shows the per-size values and the drift test). Goal: coverage 0.85-0.95 and, for 4 x 5, a median
half-width within 1.5x of an oracle that knows the baseline curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from analysis.simulate import DEMO_PAIRED_NOISE, STANDARD_DESIGNS, Design, NoiseModel, coverage

# Table 2 of the paper: its baseline fit (log L = 0.6023 - 0.05664 log C, C in PF-days, 5 sizes about 1.5x apart
# in compute) with ~10x less noise than the tiny ladder (the paired per-size gaps scatter by ~0.002 nats)
PAPER_LIKE = Design(sizes=5, seeds=1, curve=(0.6023 - 0.05664 * 0.42, -0.05664, -0.002), x0=0.42,
                    log_c_smallest=-0.387, log_step=0.515, overhead=1.0,
                    noise=NoiseModel(size=0.001, shared=0.001, per_run=0.0008))
ROBUSTNESS = [
    ("straight baseline", dataclasses.replace(STANDARD_DESIGNS[1], curve=(0.82618, -0.095509))),
    ("size deviations 0.01", dataclasses.replace(STANDARD_DESIGNS[1], noise=NoiseModel(size=0.01))),
    ("no shared noise", dataclasses.replace(STANDARD_DESIGNS[1], noise=NoiseModel(size=0.0, shared=0.0))),
    ("6 x 2, Full-like overhead 1.03", dataclasses.replace(STANDARD_DESIGNS[2], overhead=1.03)),
    ("paper-like (Table 2 shape, 5 x 1)", PAPER_LIKE),
]

# per-size multipliers scattered by 0.10 in log m; truth = the all-sizes multiplier (estimand "population")
SIZE_VARYING = [Design(sizes=s, seeds=k, noise=dataclasses.replace(DEMO_PAIRED_NOISE, arm_size=0.10))
                for s, k in ((3, 3), (3, 5), (4, 5))]


def _row(name: str, r) -> str:
    return (f"| {name} | {r.multiplier:g} | {r.method} | {r.coverage:.3f} | {r.median_half_width:.3f} | "
            f"{r.oracle_coverage:.3f} | {r.oracle_median_half_width:.3f} | {r.width_ratio:.2f} | {r.mean_error:+.4f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1000, help="simulated sweeps per row (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    print(f"90% intervals, {args.trials} simulated sweeps per row (seed {args.seed}); half-widths in log m")
    print("| design | true m | method | coverage | median half-width | oracle coverage | oracle half-width | "
          "width / oracle | mean error |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for method in ("shift", "paper"):
        for d in STANDARD_DESIGNS:
            for m in (1.0, 1.25):
                r = coverage(d, m, args.trials, 0.9, args.seed, method)
                print(_row(d.label, r), flush=True)
                if method == "shift":
                    ok &= 0.85 <= r.coverage <= 0.95 and (d.seeds != 5 or r.width_ratio <= 1.5)
    for name, d in ROBUSTNESS:
        for m in (1.0, 1.25):
            print(_row(f"{name} ({d.label})" if "x" not in name else name, coverage(d, m, args.trials, 0.9, args.seed)),
                  flush=True)
    for d in SIZE_VARYING:
        for m in (1.0, 1.25):
            r = coverage(d, m, args.trials, 0.9, args.seed, estimand="population")
            print(_row(f"{d.label}, per-size log m sd 0.10, all-sizes truth", r), flush=True)
    print(f"{time.perf_counter() - t0:.0f} s; standard designs (shift) "
          + ("meet" if ok else "MISS") + " the goal: coverage 0.85-0.95, 4 x 5 half-width <= 1.5x the oracle's")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
