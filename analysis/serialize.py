"""fits.json: every fitted parameter and derived number of an Analysis, JSON-ready and stable.

    write_fits(analysis, Path("results/demo/fits.json"))
    doc = to_dict(analysis)        # what `attnres fit --json` prints

Numbers are rounded to 10 significant digits (stable text across platforms' last-ulp differences);
non-finite values become null. Keys of the headline (``headline[<arm>]``): estimate, low, high, level,
method, form, log_estimate, half_width_log, design, compute, includes_one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from analysis.multiplier import Interval, VariantMultipliers
from analysis.pipeline import Analysis
from analysis.shift import ShiftEstimate, ShiftFit
from records.rundir import atomic_write_bytes


def _num(x: Any) -> Any:
    """A JSON-safe number: finite floats rounded to 10 significant digits (stable text), else None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return float(f"{x:.10g}") if math.isfinite(x) else None
    return x


def _nums(xs: Any) -> list[Any]:
    return [_num(x) for x in xs]


def _law_dict(law: Any) -> dict[str, Any]:
    return {k: _num(v) for k, v in vars(law).items() if v is not None and not isinstance(v, dict)}


def _array_summary(a: np.ndarray, level: float) -> dict[str, Any] | None:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) < 2:
        return None
    lo, hi = np.quantile(a, [(1 - level) / 2, (1 + level) / 2])
    return {"median": _num(np.median(a)), "low": _num(lo), "high": _num(hi), "std": _num(a.std(ddof=1)), "n": len(a)}


def _draws_summary(draws: Any, level: float) -> dict[str, Any] | None:
    if draws is None:
        return None
    return {k: s for k, v in vars(draws).items() if v is not None and (s := _array_summary(v, level)) is not None}


def _interval(iv: Interval) -> dict[str, Any]:
    return {"estimate": _num(iv.estimate), "low": _num(iv.low), "high": _num(iv.high), "level": _num(iv.level),
            "method": iv.method, "includes_one": bool(iv.includes_one)}


def _curve_fit_dict(f: Any, level: float) -> dict[str, Any]:
    d = {"form": f.form, "params": _law_dict(f.law), "objective": _num(f.objective),
         "objective_kind": f.objective_kind, "n_points": f.n_points, "rms_log_residual": _num(f.rms_residual),
         "compute": _nums(f.compute), "loss": _nums(f.loss), "residuals": _nums(f.residuals)}
    if f.stderr:
        d["stderr"] = {k: _num(v) for k, v in f.stderr.items()}
        d["covariance"] = {k: {j: _num(x) for j, x in row.items()} for k, row in f.covariance.items()}
    if f.huber_delta is not None:
        d.update(huber_delta=f.huber_delta, n_starts=f.n_starts, converged=f.converged)
    if f.draws is not None:
        d["bootstrap"] = _draws_summary(f.draws, level)
    return d


def _multipliers_dict(vm: VariantMultipliers) -> dict[str, Any]:
    c = vm.curve
    d = {"form": vm.form, "baseline": vm.baseline, "compute": _num(vm.compute), "at_largest": _interval(vm.at_largest),
         "curve": {"compute": _nums(c.compute), "estimate": _nums(c.estimate), "low": _nums(c.low), "high": _nums(c.high)}}
    if vm.exponents is not None:
        e = vm.exponents
        d["exponent_equality"] = {"alpha_difference": _num(e.difference), "stderr": _num(e.stderr), "dof": e.dof,
                                  "p_value": _num(e.p_value)}
    return d


def _shift_arm(e: ShiftEstimate) -> dict[str, Any]:
    units = [{"size": p.size, "n_seeds": p.n_seeds} for p in e.per_size]
    return {
        "log_estimate": _num(e.log_estimate), "stderr_log": _num(e.stderr), "dof": _num(e.dof),
        "log_low": _num(e.log_low), "log_high": _num(e.log_high), "half_width_log": _num(e.half_width_log),
        "estimate": _num(e.estimate), "low": _num(e.low), "high": _num(e.high), "level": _num(e.level),
        "method": e.method, "design": e.design, "n_units": e.n_units, "n_sizes": e.n_sizes,
        "var_scatter": _num(e.var_scatter), "var_curve": _num(e.var_curve), "replicate": e.replicate,
        "unit_log_multipliers": _nums(e.unit_deltas), "units_per_size": units,
        "per_size": [{"size": p.size, "n_seeds": p.n_seeds, "compute_baseline": _num(p.compute_baseline),
                      "compute_arm": _num(p.compute_arm), "loss_baseline": _num(p.loss_baseline),
                      "loss_arm": _num(p.loss_arm), "gap": _num(p.gap), "estimate": _num(p.estimate),
                      "low": _num(p.low), "high": _num(p.high), "interval_from": p.interval_from} for p in e.per_size],
        "drift": None if e.drift is None else {k: _num(v) for k, v in dataclasses.asdict(e.drift).items()},
        "heterogeneity": None if e.heterogeneity is None else
        {k: _num(v) for k, v in dataclasses.asdict(e.heterogeneity).items()},
        "notes": e.notes,
    }


def _shift_dict(s: ShiftFit) -> dict[str, Any]:
    c = s.curve
    return {"baseline": s.baseline, "level": _num(s.level),
            "curve": {"coef": _nums(c.coef), "x0": _num(c.x0), "degree": c.degree, "dof": c.dof,
                      "n_sizes": c.n_sizes, "curvature_p": _num(c.curvature_p), "rule": c.rule,
                      "definition": "log L = sum_k coef[k] (log C - x0)^k, C in the compute unit"},
            "arms": {a: _shift_arm(e) for a, e in sorted(s.arms.items())}, "skipped": dict(sorted(s.skipped.items()))}


def _selection_dict(a: Analysis) -> dict[str, Any] | None:
    s = a.selection
    if s is None:
        return None
    return {"hparam_axes": list(s.hparam_axes), "data_axes": list(s.data_axes), "protocol": s.protocol,
            "selection_seed": s.selection_seed, "measured_on_selection_seed": s.measured_on_selection_seed,
            "n_runs_kept": len(s.runs), "n_not_selected": s.n_not_selected,
            "choices": [{**dataclasses.asdict(c), "loss": _num(c.loss), "runner_up_gap": _num(c.runner_up_gap),
                         "at_edge": list(c.at_edge)} for c in s.choices],
            "excluded": [dataclasses.asdict(e) for e in s.excluded]}


def to_dict(a: Analysis) -> dict[str, Any]:
    """Every fitted parameter and derived number, JSON-ready (the content of fits.json). Long on
    purpose: one literal is the whole file's layout, read top to bottom like the file itself."""
    level = a.options.ci_level
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(a.options).items()}
    fits: dict[str, Any] = {form: {v: _curve_fit_dict(f, level) for v, f in sorted(per.items())}
                            for form, per in a.curve_fits.items()}
    if a.chinchilla:
        fits["chinchilla"] = {v: {"form": "chinchilla", "params": _law_dict(f.law), "objective": _num(f.objective),
                                  "objective_kind": f.objective_kind, "huber_delta": f.huber_delta,
                                  "n_points": f.n_points, "n_starts": f.n_starts, "n_grid": f.n_grid,
                                  "converged": f.converged, "n_opt_exponent": _num(f.law.n_opt_exponent),
                                  "residuals": _nums(f.residuals), "bootstrap": _draws_summary(f.draws, level)}
                              for v, f in sorted(a.chinchilla.items())}
    if a.isoflop:
        fits["isoflop_allocation"] = {
            v: {"n_opt": None if f.n_opt is None else _law_dict(f.n_opt),
                "n_opt_exponent_bootstrap": None if f.n_opt_exponent_draws is None else
                _array_summary(f.n_opt_exponent_draws, level),
                "d_opt": None if f.d_opt is None else _law_dict(f.d_opt),
                "loss_opt": None if f.frontier is None else _law_dict(f.frontier.law),
                "budgets": [{"compute": _num(b.compute), "status": b.status, "n_opt": _num(b.n_opt),
                             "d_opt": _num(b.d_opt), "loss_opt": _num(b.loss_opt), "n_sizes": len(b.n_params)}
                            for b in f.budgets], "notes": f.notes}
            for v, f in sorted(a.isoflop.items())}
    head = {v: {"form": h.form, **_interval(h.value), "log_estimate": _num(h.log_estimate),
                "half_width_log": _num(h.half_width_log), "design": h.design, "compute": _num(h.compute)}
            for v, h in sorted(a.headline.items())}
    return {
        "sweep": a.sweep,
        "source": a.source,
        "compute_unit": a.observations.compute_unit,
        "baseline": a.options.baseline,
        "arms": a.arms,
        "headline_form": a.headline_form,
        "options": opts,
        "multiplier_definition": "m = C_baseline(L_arm) / C_arm: the baseline needs m times the compute to reach "
                                 "the arm's loss; > 1 means the arm needs less compute",
        "headline": head,
        "shift": None if a.shift is None else _shift_dict(a.shift),
        "fits": fits,
        "multipliers": {form: {v: _multipliers_dict(vm) for v, vm in sorted(per.items())}
                        for form, per in a.multipliers.items()},
        "device_time": {v: {"device": d.device, "time_factor": _num(d.time_factor), **_interval(d.multiplier),
                            "per_size": [{"size": p.size, "tokens_per_s_baseline": _num(p.tokens_per_s_baseline),
                                          "tokens_per_s_arm": _num(p.tokens_per_s_arm), "flops_ratio": _num(p.flops_ratio),
                                          "time_factor": _num(p.time_factor)} for p in d.per_size]}
                        for v, d in sorted(a.device_time.items())},
        "power": [{"arm": r.arm, "sizes": r.sizes, "seeds": r.seeds, "n_units": r.n_units,
                   "noise_sd": _num(r.noise.sd), "noise_source": r.noise.source,
                   "half_width_log": _num(r.half_width_log), "detectable_multiplier": _num(r.detectable),
                   "seeds_for": {f"{t:g}": k for t, k in r.seeds_for.items()}} for r in a.power],
        "bootstrap": {"n": a.options.n_boot, "seed": a.options.seed, "level": level, "unit": a.bootstrap_unit},
        "checks": {
            "leave_largest_out": [{"variant": c.variant, "form": c.form, "held_out": c.held_out,
                                   "compute": _num(c.compute), "observed": _num(c.observed),
                                   "predicted": _num(c.predicted), "error": _num(c.error),
                                   "relative_error": _num(c.relative_error)} for c in a.extrapolation],
            "seed_spread": [{**dataclasses.asdict(s), "mean": _num(s.mean), "std": _num(s.std)} for s in a.seed_spread],
        },
        "selection": _selection_dict(a),
        "skipped": dict(sorted(a.skipped.items())),
        "warnings": a.warnings,
    }


def to_json(a: Analysis) -> str:
    return json.dumps(to_dict(a), indent=2, allow_nan=False) + "\n"


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it (keeps its mtime, so `make` does not
    redo what depends on it); True if written."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_bytes(path, text.encode())
    return True


def write_fits(a: Analysis, path: Path) -> Path:
    write_text_if_changed(Path(path), to_json(a))
    return Path(path)
