"""`attnres fit`, `attnres figures`, `attnres report` (registered into attnres/cli.py).

    attnres fit demo                     # results/demo/{runs,curves}.parquet -> results/demo/fits.json
    attnres fit demo --json              # ... and print every fitted parameter as JSON
    attnres figures demo                 # -> results/demo/figures/*.png|svg
    attnres report demo                  # fits.json + figures + results/demo/report.md
    attnres fit --table analysis/reference/paper_table2.csv --c-col compute_pfdays \\
        --loss-col val_loss --arm-col variant --size-col size --n-col params_active --d-col tokens
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from records.choices import Curvature, FitForm, HparamProtocol, choices

# the fitting stack (numpy, pandas, scipy, matplotlib) is imported inside the commands, so that
# building this parser (`attnres --help`, any other command) stays cheap
FORMS = choices(FitForm)
HEADLINE_FORMS = tuple(f.value for f in FitForm.headline_forms())
PROTOCOLS = choices(HparamProtocol)


def _parse_grid(items: list[str]) -> dict[str, tuple[float, ...]]:
    from analysis.fits import EPOCH_GRID
    from analysis.load import AnalysisInputError

    grid = {}
    for item in items:
        name, _, values = item.partition("=")
        if name not in EPOCH_GRID or not values:
            raise AnalysisInputError(f"--grid {item!r}: use NAME=v1,v2,... with NAME one of {', '.join(EPOCH_GRID)}")
        try:
            grid[name] = tuple(float(v) for v in values.split(","))
        except ValueError as e:
            raise AnalysisInputError(f"--grid {item!r}: values must be numbers") from e
    return grid


def _forms(text: str) -> tuple[str, ...]:
    forms = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown form(s) {bad}; choose from {', '.join(FORMS)}")
    return forms


def _add_common(p: argparse.ArgumentParser, sweep_required: bool = True) -> None:
    p.add_argument("sweep", nargs=None if sweep_required else "?",
                   help="sweep name (reads RESULTS_ROOT/SWEEP/runs.parquet) or a results directory")
    p.add_argument("--results-root", default="results", help="where sweeps' results live (default: results)")
    g = p.add_argument_group("analysis options")
    g.add_argument("--baseline", default="baseline", help="variant the multiplier is measured against "
                   "(default: baseline)")
    g.add_argument("--forms", type=_forms, default=FORMS, metavar="LIST",
                   help=f"comma-separated fit forms to attempt (default: all: {','.join(FORMS)}); "
                   "forms the data cannot support are skipped with the reason")
    g.add_argument("--headline-form", default="shift", choices=HEADLINE_FORMS,
                   help="the headline multiplier: shift (default: the paired shift model, one shared baseline "
                   "curve, seeds as replication), paper (the paper's convention: separate fits read at the largest "
                   "compute), saturating or isoflop")
    g.add_argument("--curvature", default="auto", choices=choices(Curvature),
                   help="shift: the baseline curve in log-log; auto adds a quadratic term only when the baseline "
                   "alone calls for it (>= 5 sizes, or 4 with seeds, and an F-test at p < 0.05)")
    g.add_argument("--saturating-floor", type=float, default=None, metavar="E",
                   help="saturating form with the irreducible loss E given (nats) instead of fitted; without it "
                   "the form needs >= 6 sizes")
    g.add_argument("--hparam-protocol", default="per-arm", choices=PROTOCOLS,
                   help="with a hyperparameter axis (e.g. lr): per-arm (default) picks each arm's best value per size, "
                   "baseline gives every arm the baseline's best (the paper's protocol); with >= 2 seeds the value is "
                   "chosen on the smallest seed and the effect measured on the others")
    g.add_argument("--n-boot", type=int, default=1000,
                   help="bootstrap replicates of units for the saturating and chinchilla forms (default: 1000; 0: none)")
    g.add_argument("--ci", type=float, default=0.9, help="confidence level of the intervals (default: 0.9)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    g.add_argument("--huber-delta", type=float, default=1e-3,
                   help="Huber delta on log residuals for the robust forms (default: 1e-3, Hoffmann et al.)")
    g.add_argument("--n-starts", type=int, default=32,
                   help="chinchilla: L-BFGS starts, the best grid points by objective (default: 32; 0: all)")
    g.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="chinchilla: starting values of one parameter (a, b, e, alpha, beta); repeatable; "
                   "default: Besiroglu et al.'s grid")
    g.add_argument("--loss-column", default="final_val_loss", choices=("final_val_loss", "best_val_loss"),
                   help="runs.parquet loss to fit (default: final_val_loss)")
    g.add_argument("--hparam-axes", default=None, metavar="LIST",
                   help="sweep axes to select the best value of per (variant, size) (default: every axis that "
                   "leaves the token budget unchanged, e.g. lr)")
    g.add_argument("--checkpoints", action="store_true",
                   help="chinchilla form: also fit intermediate evaluations from curves.parquet (bootstrap "
                   "clustered by run); meaningful for constant/WSD schedules, not cosine")


def _options(args: argparse.Namespace) -> Any:
    from analysis.load import AnalysisInputError
    from analysis.pipeline import AnalysisOptions

    try:
        return AnalysisOptions(
            baseline=args.baseline, forms=tuple(args.forms), headline_form=args.headline_form, n_boot=args.n_boot,
            curvature=args.curvature, saturating_floor=args.saturating_floor, hparam_protocol=args.hparam_protocol,
            ci_level=args.ci, seed=args.seed, huber_delta=args.huber_delta,
            chinchilla_n_starts=None if args.n_starts == 0 else args.n_starts, loss_column=args.loss_column,
            hparam_axes=tuple(a for a in args.hparam_axes.split(",") if a) if args.hparam_axes else None,
            checkpoints=args.checkpoints, chinchilla_grid=_parse_grid(args.grid) or None)
    except ValueError as e:
        raise AnalysisInputError(str(e)) from e


def _fail(command: str, e: Exception) -> int:
    print(f"attnres {command}: error: {e}", file=sys.stderr)
    return 2


def _results_dir(args: argparse.Namespace) -> Path:
    from analysis.load import resolve_results_dir

    return resolve_results_dir(args.sweep, args.results_root)


def cmd_fit(args: argparse.Namespace) -> int:
    from analysis.load import AnalysisInputError, load_table
    from analysis.pipeline import analyse, analyse_results
    from analysis.report import summary_text
    from analysis.serialize import to_dict, write_fits

    try:
        opts = _options(args)
        if args.table:
            obs = load_table(args.table, loss_col=args.loss_col, n_col=args.n_col, d_col=args.d_col, c_col=args.c_col,
                             arm_col=args.arm_col, size_col=args.size_col, run_col=args.run_col,
                             seed_col=args.seed_col, query=args.query, compute_unit=args.compute_unit)
            a = analyse(obs, opts, sweep=Path(args.table).stem)
            out = Path(args.out) if args.out else None
        else:
            if not args.sweep:
                raise AnalysisInputError("give a sweep name (e.g. `attnres fit demo`) or --table FILE")
            rd = _results_dir(args)
            a = analyse_results(rd, opts)
            out = Path(args.out) if args.out else rd / "fits.json"
    except (AnalysisInputError, ValueError) as e:
        return _fail("fit", e)
    if out is not None:
        write_fits(a, out)
    if args.json:
        print(json.dumps(to_dict(a), indent=2, allow_nan=False))
    else:
        print(summary_text(a))
        if out is not None:
            print(f"wrote {out}")
    if not (a.headline or any(a.curve_fits.values()) or a.chinchilla or a.isoflop):
        print("attnres fit: error: nothing could be fitted (the reasons are listed as skipped above)", file=sys.stderr)
        return 1
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from analysis.figures import write_figures
    from analysis.pipeline import analyse_results

    try:
        rd = _results_dir(args)
        a = analyse_results(rd, _options(args))
    except ValueError as e:  # AnalysisInputError included
        return _fail("figures", e)
    paths = write_figures(a, rd / "figures")
    print(f"wrote {len(paths)} files under {rd / 'figures'}: " + ", ".join(sorted({p.stem for p in paths})))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.regenerate import regenerate
    from analysis.report import headline_lines, verdict

    try:
        rd = _results_dir(args)
        r = regenerate(rd, _options(args))
    except ValueError as e:  # AnalysisInputError included
        return _fail("report", e)
    print("\n".join(headline_lines(r.analysis, markdown=False)))
    for h in r.analysis.headline.values():
        print(f"answer: {verdict(h, r.analysis)}")
    print("figures: " + ", ".join(str(p) for p in r.figures if p.suffix == ".png"))
    print(f"wrote {r.report} ({r.fits.name}, {len(r.figures)} figure files) in {r.elapsed_s:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit", help="fit scaling laws and the compute multiplier (writes fits.json)",
        description="Estimate the effective-compute multiplier of each arm over the baseline (the baseline needs m "
        "times the compute to reach the arm's loss) with the paired shift model: one smooth baseline curve shared by "
        "all arms, runs of the same size and seed paired, seeds as replication, a t interval in log m validated by "
        "simulation (bench/bench_coverage.py). Also: the paper's separate fits L = A C^-alpha read at the largest "
        "compute (secondary), L = E + A C^-alpha (>= 6 sizes), the Chinchilla form L(N, D) and isoFLOP minima where "
        "the sweep supports them. Reads RESULTS_ROOT/SWEEP/runs.parquet and writes RESULTS_ROOT/SWEEP/fits.json, or "
        "fits any table (--table).",
        epilog="Examples: attnres fit demo;  attnres fit demo --json > fits.json;  attnres fit --table "
        "analysis/reference/paper_table2.csv --c-col compute_pfdays --loss-col val_loss --arm-col variant "
        "--size-col size --n-col params_active --d-col tokens")
    _add_common(fit, sweep_required=False)
    t = fit.add_argument_group("fitting any table (CSV or parquet) instead of a sweep")
    t.add_argument("--table", metavar="FILE", help="CSV ('#' lines are comments) or parquet file to fit")
    t.add_argument("--loss-col", default="loss", help="column of the loss (nats/token; default: loss)")
    t.add_argument("--n-col", help="column of the parameter count N")
    t.add_argument("--d-col", help="column of the training tokens D (default: C / (6 N))")
    t.add_argument("--c-col", help="column of the compute C (default: 6 N D FLOPs)")
    t.add_argument("--arm-col", "--variant-col", dest="arm_col",
                   help="column naming the arm (the paper's 'variant'; default: one arm 'all')")
    t.add_argument("--size-col", help="column labelling the model size (default: N, or C)")
    t.add_argument("--run-col", help="column identifying runs, when rows are checkpoints (bootstrap clusters)")
    t.add_argument("--seed-col", help="column of the seed")
    t.add_argument("--query", help="keep rows matching this pandas expression, e.g. 'excluded == 0'")
    t.add_argument("--compute-unit", help="name of the compute unit, for labels (default: as given)")
    fit.add_argument("--json", action="store_true", help="print every fitted parameter as JSON (stdout)")
    fit.add_argument("--out", metavar="FILE", help="write fits.json here (default: RESULTS_ROOT/SWEEP/fits.json; "
                     "with --table: nowhere)")
    fit.set_defaults(func=cmd_fit)

    figs = subparsers.add_parser(
        "figures", help="draw the figures (PNG + SVG) from the parquet alone",
        description="Fit and draw: loss vs compute with fitted laws and the multiplier (paper Figure 4), the "
        "multiplier vs compute with its band, training curves per size, isoFLOP curves (when the sweep has several "
        "sizes per budget), depth-attention heatmaps (Figure 8) and per-layer output RMS (Figure 5). Writes "
        "RESULTS_ROOT/SWEEP/figures/*.png|svg; regenerating gives identical files.")
    _add_common(figs)
    figs.set_defaults(func=cmd_figures)

    rep = subparsers.add_parser(
        "report", help="regenerate fits.json, the figures and report.md from the parquet alone",
        description="Everything derived under RESULTS_ROOT/SWEEP/ from runs.parquet and curves.parquet (no "
        "training): fits.json, figures/*.png|svg and report.md (fit tables, the multiplier and its interval, "
        "honesty checks, the figures).")
    _add_common(rep)
    rep.set_defaults(func=cmd_report)
