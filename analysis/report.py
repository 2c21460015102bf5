"""report.md (and the plain-text summary `attnres fit` prints) from an Analysis.

    write_report(analysis, figure_paths, Path("results/demo/report.md"))
    print(summary_text(analysis))
    print(verdict(analysis.headline["block"], analysis))   # the one-line answer `make demo` ends with

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
from analysis.pipeline import Analysis, Headline
from analysis.power import format_power
from analysis.serialize import write_text_if_changed

PAPER_CLAIM = 1.25  # the paper's Block AttnRes multiplier (PAPER.md section 2)
FIGURE_TITLES = {
    "loss_vs_compute": "Loss vs compute: seeds as points, their mean, the shared baseline curve and each arm's shift",
    "multiplier_vs_compute": "Paired multiplier per size around the shift estimate (and the separate fits' m(C))",
    "training_curves": "Training curves per size",
    "isoflop": "IsoFLOP curves",
    "depth_attention": "Depth-attention weights (the paper's Figure 8)",
    "layer_rms": "Per-layer output RMS (the paper's Figure 5)",
}
FORM_TEXT = {
    "shift": "paired shift model L_arm(C) = g(m C) on one baseline curve g",
    "paper": "separate fits L = A·C^-α per arm (the paper's convention), read at the arm's largest C",
    "saturating": "separate fits L = E + A·C^-α per arm, read at the arm's largest C",
    "isoflop": "L*(C) = A·C^-α through the isoFLOP minima, read at the largest budget",
}


def _g(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def _iv(iv: Interval, digits: int = 3) -> str:
    if not iv.has_interval:
        return f"{iv.estimate:.{digits}f}"
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def _m(est: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{est:.{digits}f}" if not np.isfinite(lo) else f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _claim(low: float, high: float) -> str:
    if high < PAPER_CLAIM:
        return f"excludes the paper's {PAPER_CLAIM}x"
    if low > PAPER_CLAIM:
        return f"above the paper's {PAPER_CLAIM}x"
    return f"consistent with the paper's {PAPER_CLAIM}x"


def verdict(h: Headline, a: Analysis | None = None) -> str:
    """One line: arm, multiplier, interval, design, and what it confirms or excludes. When the sizes
    disagree beyond seed noise (the shift model's heterogeneity test), the per-size range and the
    largest size's own paired multiplier are part of the answer: one number would hide the trend."""
    iv = h.value
    head = f"{label(h.arm)} buys {iv.estimate:.3f}x"
    if not iv.has_interval:
        return f"{head} the baseline's compute ({h.design}; no interval)"
    said = ["better than the baseline" if iv.low > 1 else "worse than the baseline" if iv.high < 1
            else "includes 1 (no measured advantage)", _claim(iv.low, iv.high)]
    line = (f"{head} [{iv.low:.3f}, {iv.high:.3f}] ({iv.level:.0%}) the baseline's compute at this scale "
            f"({h.form}, {h.design}, half-width {h.half_width_log:.3f} in log m): {'; '.join(said)}")
    e = a.shift.arms.get(h.arm) if (a is not None and a.shift is not None and h.form == "shift") else None
    if e is not None and e.replicate == "sizes":
        first, last = e.per_size[0], e.per_size[-1]
        trend = (f"; but the sizes disagree beyond seed noise (heterogeneity p = {e.heterogeneity.p_value:.2g}"
                 + (f", drift p = {e.drift.p_value:.2g}" if e.drift else "") + f"): {first.estimate:.2f}x at "
                 f"{first.size} to {last.estimate:.2f}x at {last.size}; at the largest size {last.estimate:.3f}x "
                 f"[{last.low:.3f}, {last.high:.3f}] ({_claim(last.low, last.high)})")
        line += trend
    return line


def headline_lines(a: Analysis, markdown: bool = True) -> list[str]:
    b = "**" if markdown else ""
    lines = []
    for v, h in sorted(a.headline.items()):
        iv = h.value
        where = "" if h.compute is None else f" at C = {h.compute:.4g} {a.observations.compute_unit}"
        ci = f" ({iv.level:.0%} CI {iv.low:.3f}-{iv.high:.3f})" if iv.has_interval else " (no interval)"
        lines.append(f"{label(v)} vs {label(h.baseline)}: effective-compute multiplier {b}{iv.estimate:.3f}{b}{ci}"
                     f"{where}; {FORM_TEXT[h.form]}, {h.design}")
        if v in a.device_time:
            d = a.device_time[v]
            lines.append(f"  device time: {_iv(d.multiplier)} (x{d.time_factor:.3f} measured FLOP-rate ratio, "
                         f"on {d.device})")
        paper = a.multipliers.get("paper", {}).get(v)
        if paper is not None and h.form != "paper":
            e = paper.exponents
            test = f"; exponents equal? α_arm - α_base = {e.difference:+.4f} ± {e.stderr:.4f} (p = {e.p_value:.2g})" if e else ""
            lines.append(f"  secondary, the paper's convention (separate fits at C = {paper.compute:.4g}): "
                         f"{_iv(paper.at_largest)}{test}")
    return lines


def _shift_section(a: Analysis) -> list[str]:
    s = a.shift
    if s is None:
        return []
    c = s.curve
    coef = " ".join(f"{x:+.5g}·u^{k}" if k else f"{x:.5g}" for k, x in enumerate(c.coef))
    out = ["## Shift model (the headline)", "",
           f"Baseline curve g: log L = {coef}, u = log C - ({c.x0:.5g}); {c.rule}.", "",
           "Each (size, seed) unit where both arms finished gives a paired log multiplier "
           "d = g⁻¹(log L_arm) - g⁻¹(log L_base) - log(C_arm / C_base); the headline is their mean. Per size:", ""]
    rows = []
    for v, e in sorted(s.arms.items()):
        for p in e.per_size:
            rows.append([label(v), p.size, p.n_seeds, f"{p.loss_baseline:.4f}", f"{p.loss_arm:.4f}", f"{p.gap:+.4f}",
                         _m(p.estimate, p.low, p.high), p.interval_from])
    out += _table(["arm", "size", "seeds", "L baseline", "L arm", "gap (nats)", "m", "interval from"], rows)
    for v, e in sorted(s.arms.items()):
        bits = [f"{e.n_units} units, log m = {e.log_estimate:+.4f} ± {e.stderr:.4f} (t, {e.dof:.1f} dof; "
                f"scatter sd {np.sqrt(e.var_scatter):.4f}, curve sd {np.sqrt(e.var_curve):.4f})"]
        if e.drift is not None:
            bits.append(f"drift of log m per log C {e.drift.slope:+.4f} ± {e.drift.stderr:.4f} (p = {e.drift.p_value:.2g})")
        if e.heterogeneity is not None:
            h = e.heterogeneity
            bits.append(f"sizes vs seed noise F({h.df_between}, {h.df_within}) = {h.f:.2f} (p = {h.p_value:.2g})")
        out.append(f"- {label(v)}: " + "; ".join(bits))
    return out + [""]


def _power_section(a: Analysis) -> list[str]:
    if not a.power:
        return []
    lines = format_power(a.power, "What this design resolves at the noise it measured (90% confidence, 80% power):")
    out = ["## Power", ""] + [lines[0], ""] + [f"- {ln.strip()}" for ln in lines[1:]] + [""]
    split = [e.arm for e in (a.shift.arms.values() if a.shift else []) if e.replicate == "sizes"]
    if split:
        out += [f"These numbers assume one multiplier at every size; for {', '.join(split)} the sizes disagree beyond "
                "seed noise, so more seeds narrow the per-size values but not the average over sizes (more sizes would).",
                ""]
    return out


def _fit_tables(a: Analysis) -> list[str]:
    out: list[str] = []
    for form, fits in a.curve_fits.items():
        out += [f"### `{form}`", ""]
        names = list(vars(next(iter(fits.values())).law))
        rows = []
        for v, f in sorted(fits.items()):
            cells = []
            for n in names:
                val = _g(getattr(f.law, n), 5)
                if f.draws is not None:
                    d = np.asarray(getattr(f.draws, n), dtype=float)
                    d = d[np.isfinite(d)]
                    if len(d):
                        lo, hi = np.quantile(d, [0.05, 0.95])
                        val += f" [{_g(lo, 4)}, {_g(hi, 4)}]"
                elif n in f.stderr:
                    val += f" ± {_g(f.stderr[n], 2)}"
                cells.append(val)
            rows.append([label(v), *cells, f.n_points, _g(f.rms_residual, 3), _g(f.objective, 4)])
        out += _table(["arm", *names, "points", "RMS log residual", "objective"], rows)
    if a.chinchilla:
        out += ["### `chinchilla`: L(N, D) = E + A/N^α + B/D^β, sum of Huber(δ) on log residuals, L-BFGS from a grid", ""]
        rows = [[label(v), _g(f.law.E, 5), _g(f.law.A, 5), _g(f.law.B, 5), _g(f.law.alpha, 4), _g(f.law.beta, 4),
                 _g(f.law.n_opt_exponent, 3), f.n_points, _g(f.objective, 5), f"{f.n_starts} of {f.n_grid}"]
                for v, f in sorted(a.chinchilla.items())]
        out += _table(["arm", "E", "A", "B", "alpha", "beta", "N_opt ∝ C^a", "points", "objective", "L-BFGS starts"], rows)
    if a.isoflop:
        out += ["### isoFLOP minima (Akima spline of log L on log N per budget, argmin on an oversampled grid; "
                "edge minima rejected)", ""]
        rows = [[label(v), _g(f.n_opt.exponent, 3) if f.n_opt else "–", _g(f.d_opt.exponent, 3) if f.d_opt else "–",
                 f"{len(f.accepted)} of {len(f.budgets)}", "; ".join(f.notes) or "–"] for v, f in sorted(a.isoflop.items())]
        out += _table(["arm", "N* ∝ C^a", "D* ∝ C^b", "budgets used", "notes"], rows)
    return out


def _multiplier_tables(a: Analysis) -> list[str]:
    out: list[str] = []
    for form, per in a.multipliers.items():
        out += [f"### `{form}`: {FORM_TEXT[form]}", ""]
        rows = []
        for v, vm in sorted(per.items()):
            c, e = vm.curve, vm.exponents
            rows.append([label(v), _iv(vm.at_largest), _g(vm.compute, 4), f"{c.estimate.min():.3f}-{c.estimate.max():.3f}",
                         f"{e.difference:+.4f} ± {e.stderr:.4f} (p = {e.p_value:.2g})" if e else "–"])
        out += _table(["arm", "m at the largest C", "largest C", "m(C) over the measured range",
                       "α_arm - α_baseline"], rows)
        methods = sorted({vm.at_largest.method for vm in per.values() if vm.at_largest.method})
        out += [f"Interval: {m}." for m in methods] + ([""] if methods else [])
    return out


def _selection_section(a: Analysis) -> list[str]:
    s = a.selection
    if s is None or not s.choices:
        return []
    how = (f"chosen on seed {s.selection_seed} and measured on the other seeds" if not s.measured_on_selection_seed
           else "chosen and measured on the same runs (one seed: biased low)")
    who = "each arm at its own best value" if s.protocol == "per-arm" else "every arm at the baseline's best value"
    out = ["## Hyperparameter selection", "",
           f"Protocol `{s.protocol}`: {who} of {', '.join(s.hparam_axes)} per size, {how}.", ""]
    out += _table(["arm", "size", "used", "chosen by", "grid", "at edge", "runner-up gap (nats)"],
                  [[label(c.variant), c.size, ", ".join(f"{k}={_g(v)}" for k, v in c.winner.items()), label(c.chosen_by),
                    "; ".join(f"{k}: {', '.join(_g(x) for x in vals)}" for k, vals in c.grid.items()),
                    ", ".join(c.at_edge) or "no", _g(c.runner_up_gap, 3)] for c in s.choices])
    return out


def _checks_section(a: Analysis) -> list[str]:
    lines = ["## Honesty checks", ""]
    if a.extrapolation:
        lines += ["Leave the largest size out, refit, predict it (nats/token):", ""]
        lines += _table(["arm", "form", "held out", "observed", "predicted", "error"],
                        [[label(c.variant), c.form, c.held_out, f"{c.observed:.4f}", f"{c.predicted:.4f}",
                          f"{c.error:+.4f} ({c.relative_error:+.2%})"] for c in a.extrapolation])
    else:
        lines += ["Leave-largest-out: not enough sizes.", ""]
    if a.seed_spread:
        lines += ["Seed spread (standard deviation of the final loss over seeds):", ""]
        lines += _table(["arm", "size", "seeds", "mean", "std"],
                        [[label(s.variant), s.size, s.n_seeds, f"{s.mean:.4f}", f"{s.std:.4f}"] for s in a.seed_spread])
    else:
        lines += ["Seed spread: one seed per point; no measure of seed noise.", ""]
    return lines


def render_report(a: Analysis, figures: list[Path], report_path: Path) -> str:
    o = a.observations
    lines = [f"# Scaling analysis: {a.sweep or a.source}", ""]
    n_sel = (f", {a.selection.n_not_selected} finished run(s) used only to choose hyperparameters or with a losing "
             "value" if a.selection and a.selection.n_not_selected else "")
    lines += [f"Source: `{a.source}`: {len(set(o.run))} runs of {len(o.arms)} arms "
              f"({', '.join(label(v) for v in o.arms)}) at {len(o.size_order())} sizes, "
              f"up to {o.n_seeds()} seed(s) per point{n_sel}. Compute in {o.compute_unit}. "
              f"Regenerate with `attnres report {a.sweep}` (from the parquet alone).", ""]
    lines += ["**Estimand**: the effective-compute multiplier m: the baseline needs m times the compute to reach the "
              "loss the arm reaches (> 1: the arm is better). Seeds are the unit of replication; runs that share a "
              "size and seed are paired (same initial weights and batch order).", ""]
    lines += ["## Headline", ""]
    lines += [f"- Answer: {verdict(h, a)}" for _, h in sorted(a.headline.items())] + ([""] if a.headline else [])
    for h in headline_lines(a):
        lines.append(f"  - {h.strip()}" if h.startswith("  ") else f"- {h}")
    lines += [""] + [f"Method ({label(v)}): {h.method}." for v, h in sorted(a.headline.items())] + [""]
    if not a.headline:
        lines += ["- no multiplier (see below)", ""]
    if a.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in a.warnings] + [""]
    lines += _shift_section(a) + _power_section(a)
    if a.multipliers:
        lines += ["## Compute multiplier from separate fits (secondary)", ""] + _multiplier_tables(a)
    lines += ["## Fits", ""] + _fit_tables(a) + _checks_section(a) + _selection_section(a)
    if a.skipped:
        lines += ["## Not fitted", ""] + [f"- `{k}`: {v}" for k, v in sorted(a.skipped.items())] + [""]
    if a.selection is not None and a.selection.excluded:
        lines += ["## Runs left out", ""]
        lines += _table(["run", "arm", "size", "reason"], [[e.run_id, e.variant, e.size, e.reason] for e in a.selection.excluded])
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
    lines = [f"{a.sweep or a.source}: {len(set(a.observations.run))} runs, arms "
             f"{', '.join(a.observations.arms)}, compute in {a.observations.compute_unit}"]
    lines += headline_lines(a, markdown=False)
    if a.shift is not None:
        lines.append(f"  shift       baseline curve: {a.shift.curve.rule}")
    for form, fits in a.curve_fits.items():
        for v, f in sorted(fits.items()):
            params = ", ".join(f"{k}={_g(x, 5)}" for k, x in vars(f.law).items())
            lines.append(f"  {form:<11} {v:<10} {params}  (RMS log residual {f.rms_residual:.2g})")
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
