"""report.md (and the plain-text summary `attnres fit` prints) from an Analysis.

    write_report(analysis, figure_paths, Path("results/demo/report.md"))
    print(summary_text(analysis))

The report is deterministic (no dates, no timings): regenerating it from the same parquet gives
the same bytes. Figure links are relative to the report, so the results directory can be moved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import label
from analysis.multiplier import Interval
from analysis.pipeline import Analysis, write_text_if_changed

FIGURE_TITLES = {
    "loss_vs_compute": "Loss vs compute with the fitted laws (the paper's Figure 4)",
    "multiplier_vs_compute": "Compute multiplier vs compute, with its bootstrap band",
    "training_curves": "Training curves per size",
    "isoflop": "IsoFLOP curves",
    "depth_attention": "Depth-attention weights (the paper's Figure 8)",
    "layer_rms": "Per-layer output RMS (the paper's Figure 5)",
}
FORM_TEXT = {
    "paper": "L = A·C^-α per variant, least squares on log L",
    "saturating": "L = E + A·C^-α per variant, sum of Huber(δ) on log residuals",
    "isoflop": "L*(C) = A·C^-α through the isoFLOP minima",
    "paper-shared": "L = A_v·C^-α, one α for all variants",
    "saturating-shared": "L = E + A_v·C^-α, one E and α for all variants",
}


def _g(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def _iv(iv: Interval, digits: int = 3) -> str:
    if iv.n_draws == 0:
        return f"{iv.estimate:.{digits}f}"
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def headline_lines(a: Analysis, markdown: bool = True) -> list[str]:
    form = a.headline_form
    b = "**" if markdown else ""
    lines = []
    for v, vm in sorted(a.headline.items()):
        iv = vm.at_largest.value
        ci = f" ({iv.level:.0%} CI {iv.low:.3f}-{iv.high:.3f})" if iv.n_draws else " (no interval)"
        lines.append(f"{label(v)} vs {label(vm.baseline)}: compute multiplier {b}{iv.estimate:.3f}{b}{ci} at "
                     f"C = {vm.at_largest.compute:.4g} {a.observations.compute_unit} (largest measured; "
                     f"{form} fit: {FORM_TEXT[form]})")
        if vm.shared is not None:
            lines.append(f"  shared-exponent fit ({FORM_TEXT[vm.shared.form]}): {_iv(vm.shared.value)}")
    return lines


def _fit_tables(a: Analysis) -> list[str]:
    out: list[str] = []
    level = a.options.ci_level
    for form, fits in a.curve_fits.items():
        out.append(f"### `{form}`: {FORM_TEXT.get(form, form)}")
        out.append("")
        names = list(vars(next(iter(fits.values())).law))
        header = ["variant", *names, "points", "RMS log residual", "objective"]
        rows = []
        for v, f in sorted(fits.items()):
            cells = []
            for n in names:
                val = _g(getattr(f.law, n), 5)
                if f.draws is not None:
                    d = np.asarray(getattr(f.draws, n), dtype=float)
                    d = d[np.isfinite(d)]
                    if len(d):
                        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
                        val += f" [{_g(lo, 4)}, {_g(hi, 4)}]"
                elif n in f.stderr:
                    val += f" ± {_g(f.stderr[n], 2)}"
                cells.append(val)
            rows.append([label(v), *cells, f.n_points, _g(f.rms_residual, 3), _g(f.objective, 4)])
        out += _table(header, rows)
    for form, s in a.shared_fits.items():
        out.append(f"### `{form}`: {FORM_TEXT[form]}")
        out.append("")
        header = ["alpha", *(["E"] if s.params.E is not None else []),
                  *[f"A ({label(v)})" for v in sorted(s.params.A)], "objective"]
        row = [_g(s.params.alpha, 5), *([_g(s.params.E, 5)] if s.params.E is not None else []),
               *[_g(s.params.A[v], 5) for v in sorted(s.params.A)], _g(s.objective, 4)]
        out += _table(header, [row])
    if a.chinchilla:
        out.append("### `chinchilla`: L(N, D) = E + A/N^α + B/D^β, sum of Huber(δ) on log residuals, L-BFGS from a grid")
        out.append("")
        rows = [[label(v), _g(f.law.E, 5), _g(f.law.A, 5), _g(f.law.B, 5), _g(f.law.alpha, 4), _g(f.law.beta, 4),
                 _g(f.law.n_opt_exponent, 3), f.n_points, _g(f.objective, 5), f"{f.n_starts} of {f.n_grid}"]
                for v, f in sorted(a.chinchilla.items())]
        out += _table(["variant", "E", "A", "B", "alpha", "beta", "N_opt ∝ C^a", "points", "objective",
                       "L-BFGS starts"], rows)
    if a.isoflop:
        out.append("### isoFLOP minima (Akima spline of log L on log N per budget, argmin on an oversampled grid; edge minima rejected)")
        out.append("")
        rows = []
        for v, f in sorted(a.isoflop.items()):
            rows.append([label(v), _g(f.n_opt.exponent, 3) if f.n_opt else "–", _g(f.d_opt.exponent, 3) if f.d_opt else "–",
                         f"{len(f.accepted)} of {len(f.budgets)}", "; ".join(f.notes) or "–"])
        out += _table(["variant", "N* ∝ C^a", "D* ∝ C^b", "budgets used", "notes"], rows)
    return out


def _multiplier_tables(a: Analysis) -> list[str]:
    out: list[str] = []
    for form, per in a.multipliers.items():
        out.append(f"### from the `{form}` fit")
        out.append("")
        rows = []
        for v, vm in sorted(per.items()):
            c = vm.curve
            rows.append([label(v), _iv(vm.at_largest.value), _g(vm.at_largest.compute, 4),
                         _iv(vm.shared.value) if vm.shared else "–",
                         f"{c.estimate.min():.3f}-{c.estimate.max():.3f}"])
        out += _table(["variant", "m at the largest C", "largest C", "shared exponent", "m(C) over the measured range"],
                      rows)
        sizes = [(v, p) for v, vm in sorted(per.items()) for p in vm.per_size]
        if sizes:
            out.append("Per size (same-size loss gap converted with the baseline's local exponent):")
            out.append("")
            out += _table(["variant", "size", "L baseline", "L variant", "gap (nats)", "m", "interval from"],
                          [[label(v), p.size, f"{p.loss_baseline:.4f}", f"{p.loss_variant:.4f}", f"{p.gap:+.4f}",
                            _iv(p.value), p.interval_from] for v, p in sizes])
    return out


def render_report(a: Analysis, figures: list[Path], report_path: Path) -> str:
    o = a.observations
    lines = [f"# Scaling analysis: {a.sweep or a.source}", ""]
    n_sel = f", {a.selection.n_not_selected} with a losing hyperparameter value left out" if a.selection and a.selection.n_not_selected else ""
    if a.selection is not None and a.selection.data_axes:
        where = (f"{a.selection.runs['size'].nunique()} sizes x {', '.join(a.selection.data_axes)} "
                 f"({len(o.size_order())} points)")
    else:
        where = f"{len(o.size_order())} sizes"
    lines += [f"Source: `{a.source}`: {len(set(o.run))} runs of {len(o.variants)} variants "
              f"({', '.join(label(v) for v in o.variants)}) at {where}, "
              f"up to {o.n_seeds()} seed(s) per point{n_sel}. Compute in {o.compute_unit}. "
              f"Regenerate with `attnres report {a.sweep}` (from the parquet alone).", ""]
    lines += ["**Compute multiplier** m(C) = C_baseline(L_variant(C)) / C: how many times more compute the "
              f"baseline needs to reach the loss the variant reaches with C (> 1: the variant is better). "
              f"Intervals: {a.options.ci_level:.0%} percentile bootstrap over {a.bootstrap_unit} "
              f"({a.options.n_boot} replicates, seed {a.options.seed}), widened about the estimate by the "
              "small-sample factor sqrt(n / (n - p)) for n runs and p fitted parameters (HC1-style).", ""]
    lines += ["## Headline", ""]
    head = headline_lines(a)
    lines += [f"- {h}" if not h.startswith("  ") else f"  - {h.strip()}" for h in head] or ["- no multiplier (see below)"]
    lines.append("")
    if a.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in a.warnings] + [""]
    lines += ["## Fits", ""] + _fit_tables(a)
    if a.multipliers:
        lines += ["## Compute multiplier", ""] + _multiplier_tables(a)
    lines += ["## Honesty checks", ""]
    if a.extrapolation:
        lines.append("Leave the largest size out, refit, predict it (nats/token):")
        lines.append("")
        lines += _table(["variant", "form", "held out", "observed", "predicted", "error"],
                        [[label(c.variant), c.form, c.held_out, f"{c.observed:.4f}", f"{c.predicted:.4f}",
                          f"{c.error:+.4f} ({c.relative_error:+.2%})"] for c in a.extrapolation])
    else:
        lines += ["Leave-largest-out: not enough sizes.", ""]
    if a.seed_spread:
        lines.append("Seed spread (standard deviation of the final loss over seeds):")
        lines.append("")
        lines += _table(["variant", "size", "seeds", "mean", "std"],
                        [[label(s.variant), s.size, s.n_seeds, f"{s.mean:.4f}", f"{s.std:.4f}"] for s in a.seed_spread])
    else:
        lines += ["Seed spread: one seed per point; no measure of seed noise.", ""]
    if a.selection is not None and a.selection.choices:
        lines += ["## Hyperparameter selection", "",
                  f"Best value of {', '.join(a.selection.hparam_axes)} per (variant, size) by validation loss:", ""]
        lines += _table(["variant", "size", "winner", "grid", "at edge", "runner-up gap (nats)"],
                        [[label(c.variant), c.size, ", ".join(f"{k}={_g(v)}" for k, v in c.winner.items()),
                          "; ".join(f"{k}: {', '.join(_g(x) for x in vals)}" for k, vals in c.grid.items()),
                          ", ".join(c.at_edge) or "no", _g(c.runner_up_gap, 3)] for c in a.selection.choices])
    if a.skipped:
        lines += ["## Not fitted", ""] + [f"- `{k}`: {v}" for k, v in sorted(a.skipped.items())] + [""]
    if a.selection is not None and a.selection.excluded:
        lines += ["## Runs left out", ""]
        lines += _table(["run", "variant", "size", "reason"],
                        [[e.run_id, e.variant, e.size, e.reason] for e in a.selection.excluded])
    pngs = [p for p in figures if p.suffix == ".png"]
    if pngs:
        lines += ["## Figures", ""]
        for p in pngs:
            rel = Path(os.path.relpath(p, report_path.parent)).as_posix()
            title = FIGURE_TITLES.get(p.stem, p.stem)
            lines += [f"### {title}", "", f"![{title}]({rel}) ([SVG]({rel[:-4]}.svg))", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(a: Analysis, figures: list[Path], path: Path) -> Path:
    path = Path(path)
    write_text_if_changed(path, render_report(a, figures, path))
    return path


def summary_text(a: Analysis) -> str:
    """What `attnres fit` prints: the headline, the fitted parameters, the warnings."""
    lines = [f"{a.sweep or a.source}: {len(set(a.observations.run))} runs, variants "
             f"{', '.join(a.observations.variants)}, compute in {a.observations.compute_unit}"]
    lines += headline_lines(a, markdown=False)
    for form, fits in a.curve_fits.items():
        for v, f in sorted(fits.items()):
            params = ", ".join(f"{k}={_g(x, 5)}" for k, x in vars(f.law).items())
            lines.append(f"  {form:<11} {v:<10} {params}  (RMS log residual {f.rms_residual:.2g})")
    for form, s in a.shared_fits.items():
        a_txt = ", ".join(f"A[{v}]={_g(x, 5)}" for v, x in sorted(s.params.A.items()))
        e_txt = f"E={_g(s.params.E, 5)}, " if s.params.E is not None else ""
        lines.append(f"  {form:<11} alpha={_g(s.params.alpha, 5)}, {e_txt}{a_txt}")
    for v, f in sorted(a.chinchilla.items()):
        lines.append(f"  chinchilla  {v:<10} " + ", ".join(f"{k}={_g(x, 5)}" for k, x in vars(f.law).items())
                     + f"  (objective {f.objective:.6g})")
    for v, f in sorted(a.isoflop.items()):
        if f.n_opt is not None:
            lines.append(f"  isoflop     {v:<10} N* ∝ C^{f.n_opt.exponent:.3f}, D* ∝ C^{f.d_opt.exponent:.3f}")
    for k, why in sorted(a.skipped.items()):
        lines.append(f"  not fitted: {k}: {why}")
    lines += [f"warning: {w}" for w in a.warnings]
    return "\n".join(lines)
