"""The analysis pipeline: load -> select -> fit -> bootstrap -> multiplier -> checks (-> figures, report).

    analysis = analyse_results(Path("results/demo"))          # from runs.parquet
    analysis = analyse(load_table(...), AnalysisOptions())     # from any table
    write_fits(analysis, Path("results/demo/fits.json"))
    regenerate(Path("results/demo"))                          # fits.json + figures + report.md

Every step is a function of its inputs (the bootstrap is seeded): the same parquet gives the same
fits.json, figures and report, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import checks
from analysis.bootstrap import resample_runs
from analysis.fits import (
    DEFAULT_N_STARTS,
    EPOCH_HUBER_DELTA,
    FORMS,
    ChinchillaFit,
    CurveFit,
    SharedFit,
    fit_chinchilla,
    fit_form,
    fit_shared,
    refit,
)
from analysis.isoflop import IsoflopFit, bootstrap_isoflop, fit_isoflop, has_isoflop_design
from analysis.load import (
    AnalysisInputError,
    CurveTable,
    Observations,
    load_curves,
    load_runs,
    observations_from_curves,
    observations_from_runs,
)
from analysis.multiplier import VariantMultipliers, variant_multipliers
from analysis.select import Selection, select_runs

MIN_SIZES = {"paper": 2, "saturating": 4}  # distinct compute values per variant to attempt the form


@dataclass(frozen=True)
class AnalysisOptions:
    baseline: str = "baseline"  # variant the multipliers are measured against
    forms: tuple[str, ...] = FORMS  # which fit forms to attempt (those that do not apply are skipped)
    headline_form: str = "paper"  # the form of the headline multiplier (the paper's convention)
    n_boot: int = 1000  # bootstrap replicates (0: no intervals)
    ci_level: float = 0.9
    seed: int = 0  # of the bootstrap
    huber_delta: float = EPOCH_HUBER_DELTA
    chinchilla_n_starts: int | None = DEFAULT_N_STARTS
    chinchilla_grid: dict[str, tuple[float, ...]] | None = None  # per-parameter starting values (default: Epoch's)
    loss_column: str = "final_val_loss"  # runs.parquet column fitted
    hparam_axes: tuple[str, ...] | None = None  # None: every axis that leaves the token budget alone
    checkpoints: bool = False  # chinchilla form: also fit intermediate evaluations (clustered by run)
    checkpoint_min_fraction: float = 0.25  # ...from this fraction of each run's token budget on

    def __post_init__(self) -> None:
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown:
            raise ValueError(f"forms: unknown {unknown}; choose from {list(FORMS)}")
        if self.headline_form not in ("paper", "saturating", "isoflop"):
            raise ValueError(f"headline_form: {self.headline_form!r} has no L(C) curve; use paper, saturating "
                             "or isoflop")
        if self.n_boot < 0:
            raise ValueError(f"n_boot: must be >= 0, got {self.n_boot}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level: must be in (0, 1), got {self.ci_level} (e.g. 0.9 for 90%)")


@dataclass(frozen=True)
class Analysis:
    sweep: str
    source: str
    options: AnalysisOptions
    headline_form: str  # the form the headline multiplier comes from (options.headline_form when fitted)
    observations: Observations
    selection: Selection | None
    curve_fits: dict[str, dict[str, CurveFit]]  # form -> variant -> fit (paper, saturating, isoflop)
    shared_fits: dict[str, SharedFit]  # paper-shared, saturating-shared
    chinchilla: dict[str, ChinchillaFit]  # variant -> fit
    isoflop: dict[str, IsoflopFit]  # variant -> fit
    multipliers: dict[str, dict[str, VariantMultipliers]]  # form -> variant -> multipliers
    extrapolation: list[checks.ExtrapolationCheck]
    seed_spread: list[checks.SeedSpread]
    skipped: dict[str, str]  # what was not fitted, and why
    warnings: list[str]
    bootstrap_unit: str
    elapsed_s: float = 0.0
    curves: CurveTable | None = field(default=None, repr=False)

    @property
    def variants(self) -> list[str]:
        return self.observations.variants

    @property
    def headline(self) -> dict[str, VariantMultipliers]:
        return self.multipliers.get(self.headline_form, {})


def _chinchilla_design(obs: Observations) -> str | None:
    """Why L(N, D) cannot be fitted to ``obs`` (None if it can): 5 parameters need 6 points per
    variant, and N and D must vary separately (some size trained on several token budgets)."""
    for v in obs.variants:
        o = obs.of(v)
        ok = np.isfinite(o.n_params) & np.isfinite(o.tokens)
        if ok.sum() < 6:
            return f"{v}: {int(ok.sum())} points with N and D (5 parameters need 6)"
        n, d = o.n_params[ok], o.tokens[ok]
        if max(len(np.unique(d[n == x])) for x in np.unique(n)) < 2:
            return (f"{v}: each size has one token budget, so N and D move together and cannot be separated "
                    "(sweep several token budgets per size, or an isoFLOP grid)")
    return None


@dataclass
class _Collected:
    """What the fitting steps of one analysis add up (internal, mutable while analyse() runs)."""

    curve_fits: dict[str, dict[str, CurveFit]] = field(default_factory=dict)
    shared_fits: dict[str, SharedFit] = field(default_factory=dict)
    multipliers: dict[str, dict[str, VariantMultipliers]] = field(default_factory=dict)
    chinchilla: dict[str, ChinchillaFit] = field(default_factory=dict)
    isoflop: dict[str, IsoflopFit] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # what each bootstrap resampled, for reports


def _fit_compute_laws(obs: Observations, opt: AnalysisOptions, out: _Collected, form: str) -> None:
    """Per-variant and shared-exponent L(C) fits of one form, their bootstrap and multipliers."""
    fitted: dict[str, CurveFit] = {}
    for v in obs.variants:
        o = obs.of(v)
        n_c = len(np.unique(o.compute))
        if n_c < MIN_SIZES[form]:
            out.skipped[f"{form}/{v}"] = f"{n_c} distinct compute value(s); the {form} form needs {MIN_SIZES[form]}"
            continue
        try:
            fitted[v] = fit_form(form, o, v, opt.huber_delta)
        except ValueError as e:
            out.skipped[f"{form}/{v}"] = str(e)
    if not fitted:
        return
    fit_obs = obs.take(np.isin(obs.variant, list(fitted)))
    shared = fit_shared(fit_obs, form, opt.huber_delta, per_variant=fitted) if len(fitted) > 1 else None
    res = None
    if opt.n_boot > 0:
        res = resample_runs(fit_obs, opt.n_boot, opt.seed, min_distinct=2 if form == "paper" else 3)
        out.units.append(res.unit)
        fitted = {v: refit(f, fit_obs.of(v), res.weights[:, fit_obs.variant == v]) for v, f in fitted.items()}
        shared = refit(shared, fit_obs, res.weights) if shared is not None else None
    out.curve_fits[form] = fitted
    if shared is not None:
        out.shared_fits[shared.form] = shared
    if opt.baseline in fitted:
        out.multipliers[form] = {v: variant_multipliers(fit_obs, fitted, v, opt.baseline, opt.ci_level, res, shared)
                                 for v in fitted if v != opt.baseline}
    if form == "saturating":
        for f in fitted.values():
            if f.law.alpha >= 9.99 or f.law.E < 1e-6:
                out.warnings.append(f"saturating fit of {f.variant}: parameters at a bound (E={f.law.E:.3g}, "
                                    f"alpha={f.law.alpha:.3g}); the floor is not identified by these sizes")


def _fit_chinchilla_form(cobs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    cobs = cobs.take(np.isfinite(cobs.n_params) & np.isfinite(cobs.tokens))
    why = _chinchilla_design(cobs)
    if why:
        out.skipped["chinchilla"] = why
        return
    for v in cobs.variants:
        try:
            out.chinchilla[v] = fit_chinchilla(cobs.of(v), v, opt.huber_delta, grid=opt.chinchilla_grid,
                                               n_starts=opt.chinchilla_n_starts)
        except ValueError as e:
            out.skipped[f"chinchilla/{v}"] = str(e)
    if out.chinchilla and opt.n_boot > 0:  # runs resampled, a run's checkpoints together
        res = resample_runs(cobs, opt.n_boot, opt.seed, min_distinct=2)
        out.units.append(res.unit)
        out.chinchilla = {v: refit(f, cobs.of(v), res.weights[:, cobs.variant == v]) for v, f in out.chinchilla.items()}


def _fit_isoflop_form(obs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    out.isoflop = {v: bootstrap_isoflop(fit_isoflop(obs.of(v), v), obs.of(v), opt.n_boot, opt.seed)
                   for v in obs.variants}
    for f in out.isoflop.values():
        out.warnings += [f"isoflop {f.variant}: {n}" for n in f.notes]
    frontier = {v: f.frontier for v, f in out.isoflop.items() if f.frontier is not None}
    if not frontier:
        return
    out.curve_fits["isoflop"] = frontier
    if opt.n_boot > 0:
        out.units.append("runs within each compute budget (isoFLOP minima refitted)")
    if opt.baseline in frontier:
        fobs = _frontier_obs(frontier)
        out.multipliers["isoflop"] = {
            v: dataclasses.replace(variant_multipliers(fobs, frontier, v, opt.baseline, opt.ci_level), per_size=[])
            for v in frontier if v != opt.baseline}


def _selection_warnings(selection: Selection) -> list[str]:
    warnings = [f"{c.variant} {c.size}: the best {', '.join(c.at_edge)} "
                f"({', '.join(f'{a}={c.winner[a]}' for a in c.at_edge)}) is at the edge of the grid "
                f"{', '.join(f'{a}={c.grid[a]}' for a in c.at_edge)}: extend it"
                for c in selection.choices if c.at_edge]
    bad = [e for e in selection.excluded if e.status in ("failed", "diverged")]
    if bad:
        warnings.append(f"{len(bad)} failed/diverged run(s) left out: "
                        + ", ".join(f"{e.run_id} ({e.status})" for e in bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return warnings


def analyse(obs: Observations, options: AnalysisOptions = AnalysisOptions(), *, sweep: str = "",
            selection: Selection | None = None, checkpoint_obs: Observations | None = None,
            curves: CurveTable | None = None) -> Analysis:
    """Fit every applicable form, bootstrap, derive multipliers and run the honesty checks."""
    t0 = time.perf_counter()
    opt = options
    variants = obs.variants
    if opt.baseline not in variants and len(variants) > 1:
        raise AnalysisInputError(f"no runs of the baseline variant {opt.baseline!r} (variants: "
                                 f"{', '.join(variants)}); pass --baseline NAME")
    out = _Collected()
    isoflop_design = has_isoflop_design(obs)
    for form in ("paper", "saturating"):
        if form not in opt.forms:
            continue
        if isoflop_design:  # sizes share compute budgets: loss vs compute is the isoFLOP frontier
            out.skipped[form] = ("isoFLOP sweep (several sizes per compute budget): loss vs compute is read from "
                                 "the isoFLOP minima (form isoflop), not fitted through every run")
        else:
            _fit_compute_laws(obs, opt, out, form)
    if "chinchilla" in opt.forms:
        _fit_chinchilla_form(checkpoint_obs if (opt.checkpoints and checkpoint_obs is not None) else obs, opt, out)
    if "isoflop" in opt.forms:
        if isoflop_design:
            _fit_isoflop_form(obs, opt, out)
        else:
            out.skipped["isoflop"] = "no variant has 2 compute budgets with 3 or more sizes each"

    # honesty checks
    extrapolation = [c for form in ("paper", "saturating") if form in out.curve_fits
                     for c in checks.leave_largest_out(obs.take(np.isin(obs.variant, list(out.curve_fits[form]))),
                                                       form, opt.huber_delta)]
    spread = checks.seed_spread(obs)
    warnings = out.warnings
    for form_mults in out.multipliers.values():
        warnings += checks.ci_warnings(list(form_mults.values()))
    gap_form = opt.headline_form if opt.headline_form in out.multipliers else "paper"
    warnings += checks.seed_warning(spread, list(out.multipliers.get(gap_form, {}).values()))
    if selection is not None:
        warnings += _selection_warnings(selection)
    if opt.n_boot > 0 and obs.n_seeds() == 1:
        warnings.append("one seed per point: the intervals reflect the scatter of the points around the fits, "
                        "not a measured seed-to-seed noise; per-size multipliers carry no seed noise")
    headline_form = opt.headline_form
    if headline_form not in out.multipliers and opt.baseline in variants and len(variants) > 1:
        fallback = next((f for f in ("isoflop", "paper", "saturating") if f in out.multipliers), None)
        if not (isoflop_design and fallback == "isoflop"):  # on an isoFLOP grid the frontier is the expected source
            why = "; ".join(f"{k}: {v}" for k, v in out.skipped.items() if k.startswith(headline_form)) or "not fitted"
            warnings.append(f"no {headline_form} multiplier ({why})"
                            + (f"; the headline uses the {fallback} fit instead" if fallback else ""))
        headline_form = fallback or headline_form
    return Analysis(sweep=sweep, source=obs.source, options=opt, headline_form=headline_form, observations=obs,
                    selection=selection, curve_fits=out.curve_fits, shared_fits=out.shared_fits,
                    chinchilla=out.chinchilla, isoflop=out.isoflop, multipliers=out.multipliers,
                    extrapolation=extrapolation, seed_spread=spread, skipped=out.skipped, warnings=warnings,
                    bootstrap_unit="; ".join(dict.fromkeys(out.units)) or "nothing (no bootstrap)",
                    elapsed_s=time.perf_counter() - t0, curves=curves)


def _frontier_obs(frontier: dict[str, CurveFit]) -> Observations:
    parts = [(v, f) for v, f in frontier.items()]
    cat = lambda fn: np.concatenate([fn(v, f) for v, f in parts])
    return Observations(
        variant=cat(lambda v, f: np.full(f.n_points, v)), size=cat(lambda v, f: np.array([f"C={c:.3g}" for c in f.compute])),
        run=cat(lambda v, f: np.array([f"{v}-budget{i}" for i in range(f.n_points)])),
        seed=cat(lambda v, f: np.zeros(f.n_points, dtype=np.int64)), n_params=cat(lambda v, f: np.full(f.n_points, np.nan)),
        tokens=cat(lambda v, f: np.full(f.n_points, np.nan)), compute=cat(lambda v, f: f.compute),
        loss=cat(lambda v, f: f.loss))


def analyse_results(results_dir: Path, options: AnalysisOptions = AnalysisOptions()) -> Analysis:
    """The pipeline on results/<sweep>/{runs,curves}.parquet."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    curves = load_curves(results_dir)
    selection = select_runs(runs, options.loss_column, options.hparam_axes)
    obs = observations_from_runs(selection.runs, options.loss_column, str(runs.path), size_col="cell")
    cobs = None
    if options.checkpoints:
        if curves is None:
            raise AnalysisInputError(f"--checkpoints needs {results_dir / 'curves.parquet'}; "
                                     f"run `attnres collect {results_dir.name}` first")
        cobs = observations_from_curves(curves, selection.runs, options.checkpoint_min_fraction)
    a = analyse(obs, options, sweep=runs.sweep, selection=selection, checkpoint_obs=cobs, curves=curves)
    if options.checkpoints and (selection.runs["schedule"] == "cosine").any():
        a = dataclasses.replace(a, warnings=a.warnings + [
            "--checkpoints with a cosine schedule: an intermediate loss overstates what a run of that length "
            "would reach (its LR has not decayed), so the chinchilla fit is biased; use WSD or constant-LR runs"])
    return a


# ----------------------------------------------------------------------------- JSON


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


def _law_dict(law: Any) -> dict[str, Any]:
    return {k: _num(v) for k, v in vars(law).items() if v is not None and not isinstance(v, dict)}


def _draws_summary(draws: Any, level: float) -> dict[str, Any] | None:
    if draws is None:
        return None
    out = {}
    for k, v in vars(draws).items():
        if v is None:
            continue
        items = v.items() if isinstance(v, dict) else [(None, v)]
        for sub, arr in items:
            s = _array_summary(arr, level)
            if s is None:
                continue
            if sub is None:
                out[k] = s
            else:
                out.setdefault(k, {})[sub] = s
    return out


def _array_summary(a: np.ndarray, level: float) -> dict[str, Any] | None:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) < 2:
        return None
    lo, hi = np.quantile(a, [(1 - level) / 2, (1 + level) / 2])
    return {"median": _num(np.median(a)), "low": _num(lo), "high": _num(hi), "std": _num(a.std(ddof=1)), "n": len(a)}


def _interval(iv: Any) -> dict[str, Any]:
    return {"estimate": _num(iv.estimate), "low": _num(iv.low), "high": _num(iv.high), "level": _num(iv.level),
            "n_draws": iv.n_draws, "expansion": _num(iv.expansion), "includes_one": bool(iv.includes_one)}


def _curve_fit_dict(f: CurveFit, level: float) -> dict[str, Any]:
    d = {"form": f.form, "params": _law_dict(f.law), "objective": _num(f.objective),
         "objective_kind": f.objective_kind, "n_points": f.n_points, "rms_log_residual": _num(f.rms_residual),
         "compute": [_num(c) for c in f.compute], "loss": [_num(x) for x in f.loss],
         "residuals": [_num(r) for r in f.residuals]}
    if f.stderr:
        d["stderr"] = {k: _num(v) for k, v in f.stderr.items()}
        d["covariance"] = {k: {j: _num(x) for j, x in row.items()} for k, row in f.covariance.items()}
    if f.huber_delta is not None:
        d["huber_delta"] = f.huber_delta
        d["n_starts"] = f.n_starts
        d["converged"] = f.converged
    if f.draws is not None:
        d["bootstrap"] = _draws_summary(f.draws, level)
    return d


def _multipliers_dict(vm: VariantMultipliers) -> dict[str, Any]:
    return {
        "form": vm.form,
        "baseline": vm.baseline,
        "at_largest": {"compute": _num(vm.at_largest.compute), **_interval(vm.at_largest.value)},
        "shared": None if vm.shared is None else {"form": vm.shared.form, **_interval(vm.shared.value)},
        "per_size": [{"size": p.size, "compute_baseline": _num(p.compute_baseline),
                      "compute_variant": _num(p.compute_variant), "loss_baseline": _num(p.loss_baseline),
                      "loss_variant": _num(p.loss_variant), "gap": _num(p.gap), "n_seeds": p.n_seeds,
                      "interval_from": p.interval_from, **_interval(p.value)} for p in vm.per_size],
        "curve": {"compute": [_num(c) for c in vm.curve.compute], "estimate": [_num(x) for x in vm.curve.estimate],
                  "low": [_num(x) for x in vm.curve.low], "high": [_num(x) for x in vm.curve.high]},
    }


def to_dict(a: Analysis) -> dict[str, Any]:
    """Every fitted parameter and derived number, JSON-ready (the content of fits.json)."""
    level = a.options.ci_level
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(a.options).items()}
    fits: dict[str, Any] = {}
    for form, per_variant in a.curve_fits.items():
        fits[form] = {v: _curve_fit_dict(f, level) for v, f in sorted(per_variant.items())}
    for form, s in a.shared_fits.items():
        fits[form] = {"form": form, "params": {"alpha": _num(s.params.alpha),
                                               **({"E": _num(s.params.E)} if s.params.E is not None else {}),
                                               "A": {v: _num(x) for v, x in sorted(s.params.A.items())}},
                      "objective": _num(s.objective), "objective_kind": s.objective_kind,
                      "n_points": len(s.loss), "rms_log_residual": _num(float(np.sqrt(np.mean(s.residuals ** 2)))),
                      "bootstrap": _draws_summary(s.draws, level)}
        if s.huber_delta is not None:
            fits[form]["huber_delta"] = s.huber_delta
    if a.chinchilla:
        fits["chinchilla"] = {v: {"form": "chinchilla", "params": _law_dict(f.law), "objective": _num(f.objective),
                                  "objective_kind": f.objective_kind, "huber_delta": f.huber_delta,
                                  "n_points": f.n_points, "n_starts": f.n_starts, "n_grid": f.n_grid,
                                  "converged": f.converged, "n_opt_exponent": _num(f.law.n_opt_exponent),
                                  "residuals": [_num(r) for r in f.residuals],
                                  "bootstrap": _draws_summary(f.draws, level)}
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
    sel = None
    if a.selection is not None:
        sel = {"hparam_axes": list(a.selection.hparam_axes), "data_axes": list(a.selection.data_axes),
               "n_runs_kept": len(a.selection.runs), "n_not_selected": a.selection.n_not_selected,
               "choices": [{**dataclasses.asdict(c), "loss": _num(c.loss), "runner_up_gap": _num(c.runner_up_gap),
                            "at_edge": list(c.at_edge)} for c in a.selection.choices],
               "excluded": [dataclasses.asdict(e) for e in a.selection.excluded]}
    head = {v: {"form": vm.at_largest.form, "compute": _num(vm.at_largest.compute), **_interval(vm.at_largest.value)}
            for v, vm in sorted(a.headline.items())}
    return {
        "sweep": a.sweep,
        "source": a.source,
        "compute_unit": a.observations.compute_unit,
        "baseline": a.options.baseline,
        "variants": a.variants,
        "headline_form": a.headline_form,
        "options": opts,
        "bootstrap": {"n": a.options.n_boot, "seed": a.options.seed, "level": level, "unit": a.bootstrap_unit},
        "multiplier_definition": "m(C) = C_baseline(L_variant(C)) / C; > 1 means the variant needs less compute",
        "headline": head,
        "fits": fits,
        "multipliers": {form: {v: _multipliers_dict(vm) for v, vm in sorted(per.items())}
                        for form, per in a.multipliers.items()},
        "checks": {
            "leave_largest_out": [{"variant": c.variant, "form": c.form, "held_out": c.held_out,
                                   "compute": _num(c.compute), "observed": _num(c.observed),
                                   "predicted": _num(c.predicted), "error": _num(c.error),
                                   "relative_error": _num(c.relative_error)} for c in a.extrapolation],
            "seed_spread": [{**dataclasses.asdict(s), "mean": _num(s.mean), "std": _num(s.std)} for s in a.seed_spread],
        },
        "selection": sel,
        "skipped": dict(sorted(a.skipped.items())),
        "warnings": a.warnings,
    }


def to_json(a: Analysis) -> str:
    return json.dumps(to_dict(a), indent=2, allow_nan=False) + "\n"


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps its mtime for make); True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def write_fits(a: Analysis, path: Path) -> Path:
    write_text_if_changed(Path(path), to_json(a))
    return Path(path)


@dataclass(frozen=True)
class Regenerated:
    results_dir: Path
    fits: Path
    figures: list[Path]
    report: Path
    elapsed_s: float
    analysis: Analysis


def regenerate(results_dir: Path, options: AnalysisOptions = AnalysisOptions()) -> Regenerated:
    """Every derived file under results/<sweep>/ from the parquet alone (no training): fits.json,
    figures/*.png|svg and report.md."""
    from analysis.figures import write_figures
    from analysis.report import write_report

    t0 = time.perf_counter()
    results_dir = Path(results_dir)
    a = analyse_results(results_dir, options)
    fits = write_fits(a, results_dir / "fits.json")
    figs = write_figures(a, results_dir / "figures")
    report = write_report(a, figs, results_dir / "report.md")
    return Regenerated(results_dir, fits, figs, report, time.perf_counter() - t0, a)

