"""The analysis pipeline: load -> select -> fit -> multipliers -> checks (-> figures, report).

    analysis = analyse_results(Path("results/demo"))          # from runs.parquet
    analysis = analyse(load_table(...), AnalysisOptions())     # from any table
    write_fits(analysis, Path("results/demo/fits.json"))        # analysis.serialize
    regenerate(Path("results/demo"))                          # analysis.regenerate: fits.json + figures + report.md

The headline is the paired shift model (analysis.shift); the paper's separate fits (analysis.multiplier),
the saturating and Chinchilla forms and isoFLOP minima are secondary. Every step is a function of its
inputs (the bootstrap is seeded): the same parquet gives the same fits.json, figures and report, byte
for byte.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis import checks
from analysis.bootstrap import resample_units
from analysis.devtime import DeviceTime, device_time
from analysis.fits import (
    DEFAULT_N_STARTS,
    EPOCH_HUBER_DELTA,
    FORMS,
    ChinchillaFit,
    CurveFit,
    fit_chinchilla,
    fit_paper,
    fit_saturating,
    fit_saturating_floor,
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
from analysis.multiplier import Interval, VariantMultipliers, bootstrap_multipliers, paper_multipliers
from analysis.power import NoiseLevel, PowerRow, design_power, noise_from_estimate
from analysis.select import PROTOCOLS, Selection, select_runs
from analysis.shift import ShiftError, ShiftFit, fit_shift
from records.choices import Curvature, FitForm, choices

HEADLINE_FORMS = tuple(f.value for f in FitForm.headline_forms())
# distinct sizes per arm to attempt a form; saturating: with fewer than 6 the floor E is not identified
# (on the 4-size demo it landed at 1e-13 to 1e-37 with 1 residual dof)
MIN_SIZES = {"paper": 3, "saturating": 6}


@dataclass(frozen=True)
class AnalysisOptions:
    baseline: str = "baseline"  # arm the multipliers are measured against
    forms: tuple[str, ...] = FORMS  # which fit forms to attempt (those that do not apply are skipped)
    headline_form: str = "shift"  # the paired shift model; paper: the paper's separate fits at the largest C
    curvature: str = "auto"  # shift: the baseline curve's degree (auto, none, quadratic; analysis.shift)
    saturating_floor: float | None = None  # saturating form with E given (nats) instead of fitted
    n_boot: int = 1000  # bootstrap replicates for the saturating and chinchilla forms (0: none)
    ci_level: float = 0.9
    seed: int = 0  # of the bootstrap
    huber_delta: float = EPOCH_HUBER_DELTA
    chinchilla_n_starts: int | None = DEFAULT_N_STARTS
    chinchilla_grid: dict[str, tuple[float, ...]] | None = None  # per-parameter starting values (default: Epoch's)
    loss_column: str = "final_val_loss"  # runs.parquet column fitted
    hparam_axes: tuple[str, ...] | None = None  # None: every axis that leaves the token budget alone
    hparam_protocol: str = "per-arm"  # analysis.select.PROTOCOLS
    checkpoints: bool = False  # chinchilla form: also fit intermediate evaluations (clustered by run)
    checkpoint_min_fraction: float = 0.25  # ...from this fraction of each run's token budget on

    def __post_init__(self) -> None:
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown:
            raise ValueError(f"forms: unknown {unknown}; choose from {list(FORMS)}")
        if self.headline_form not in HEADLINE_FORMS:
            raise ValueError(f"headline_form: {self.headline_form!r}; use one of {', '.join(HEADLINE_FORMS)}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot: must be >= 0, got {self.n_boot}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level: must be in (0, 1), got {self.ci_level} (e.g. 0.9 for 90%)")
        if self.hparam_protocol not in PROTOCOLS:
            raise ValueError(f"hparam_protocol: {self.hparam_protocol!r}; use one of {', '.join(PROTOCOLS)}")
        if self.curvature not in choices(Curvature):
            raise ValueError(f"curvature: {self.curvature!r}; use one of {', '.join(choices(Curvature))}")


@dataclass(frozen=True)
class Headline:
    """The answer for one arm: its multiplier over the baseline, with the interval and how it was made."""

    arm: str
    baseline: str
    form: str  # shift, paper, saturating, isoflop
    value: Interval
    log_estimate: float
    half_width_log: float  # half the interval's width in log m
    design: str  # e.g. "4 sizes x 5 seeds"
    compute: float | None = None  # where it was read (None: constant in C, the shift model)

    @property
    def method(self) -> str:
        return self.value.method


@dataclass(frozen=True)
class Analysis:
    sweep: str
    source: str
    options: AnalysisOptions
    headline_form: str  # the form the headline comes from (options.headline_form when it could be fitted)
    observations: Observations
    selection: Selection | None
    shift: ShiftFit | None
    curve_fits: dict[str, dict[str, CurveFit]]  # form -> arm -> fit (paper, saturating, isoflop)
    chinchilla: dict[str, ChinchillaFit]  # arm -> fit
    isoflop: dict[str, IsoflopFit]  # arm -> fit
    multipliers: dict[str, dict[str, VariantMultipliers]]  # form -> arm -> multipliers (separate fits)
    headline: dict[str, Headline]  # arm -> the answer
    device_time: dict[str, DeviceTime]  # arm -> device-time multiplier (runs with measured throughput)
    power: list[PowerRow]  # what this design can resolve at the noise it measured
    extrapolation: list[checks.ExtrapolationCheck]
    seed_spread: list[checks.SeedSpread]
    skipped: dict[str, str]  # what was not fitted, and why
    warnings: list[str]
    bootstrap_unit: str
    elapsed_s: float = 0.0
    curves: CurveTable | None = field(default=None, repr=False)

    @property
    def arms(self) -> list[str]:
        return self.observations.arms


@dataclass
class _Collected:
    """What the fitting steps of one analysis add up (internal, mutable while analyse() runs)."""

    shift: ShiftFit | None = None
    curve_fits: dict[str, dict[str, CurveFit]] = field(default_factory=dict)
    multipliers: dict[str, dict[str, VariantMultipliers]] = field(default_factory=dict)
    chinchilla: dict[str, ChinchillaFit] = field(default_factory=dict)
    isoflop: dict[str, IsoflopFit] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # what each bootstrap resampled, for reports


def _fit_shift(obs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    try:
        out.shift = fit_shift(obs, opt.baseline, opt.ci_level, opt.curvature)
    except ShiftError as e:
        out.skipped["shift"] = str(e)
        return
    out.skipped.update({f"shift/{a}": why for a, why in out.shift.skipped.items()})
    for est in out.shift.arms.values():
        out.warnings += [f"shift {est.arm}: {n}" for n in est.notes]


def _fit_paper(obs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    fits = {}
    for v in obs.arms:
        n_sizes = len(np.unique(obs.of(v).size))
        if n_sizes < MIN_SIZES["paper"]:
            out.skipped[f"paper/{v}"] = f"{n_sizes} size(s); separate fits with an interval need {MIN_SIZES['paper']}"
            continue
        fits[v] = fit_paper(obs.of(v), v)
    if fits:
        out.curve_fits["paper"] = fits
    if opt.baseline in fits:
        mults = {v: paper_multipliers(obs, v, opt.baseline, opt.ci_level) for v in fits if v != opt.baseline}
        out.multipliers["paper"] = {v: m for v, m in mults.items() if m is not None}


def _fit_saturating(obs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    if opt.saturating_floor is not None:  # E given: log(L - E) is linear in log C, as the paper form
        E = opt.saturating_floor
        if np.any(obs.loss <= E):
            out.skipped["saturating"] = f"--saturating-floor {E} is not below every loss (min {obs.loss.min():.4g})"
            return
        out.curve_fits["saturating"] = {v: fit_saturating_floor(obs.of(v), E, v) for v in obs.arms
                                        if len(np.unique(obs.of(v).size)) >= MIN_SIZES["paper"]}
        if opt.baseline in out.curve_fits["saturating"]:
            mults = {v: paper_multipliers(obs, v, opt.baseline, opt.ci_level, "saturating", floor=E)
                     for v in out.curve_fits["saturating"] if v != opt.baseline}
            out.multipliers["saturating"] = {v: m for v, m in mults.items() if m is not None}
        return
    fits = {}
    for v in obs.arms:
        n_sizes = len(np.unique(obs.of(v).size))
        if n_sizes < MIN_SIZES["saturating"]:
            out.skipped[f"saturating/{v}"] = (f"{n_sizes} sizes; L = E + A C^-alpha needs {MIN_SIZES['saturating']} "
                                              "to identify its floor E (or give E: --saturating-floor)")
            continue
        try:
            fits[v] = fit_saturating(obs.of(v), v, opt.huber_delta)
        except ValueError as e:
            out.skipped[f"saturating/{v}"] = str(e)
    if not fits:
        return
    fit_obs = obs.take(np.isin(obs.arm, list(fits)))
    n_units = None
    if opt.n_boot > 0:
        res = resample_units(fit_obs, opt.n_boot, opt.seed, min_distinct=3)
        out.units.append(res.unit)
        n_units = res.n_units
        fits = {v: refit(f, fit_obs.of(v), res.weights[:, fit_obs.arm == v]) for v, f in fits.items()}
    out.curve_fits["saturating"] = fits
    if opt.baseline in fits:
        out.multipliers["saturating"] = {v: bootstrap_multipliers(fit_obs, fits, v, opt.baseline, opt.ci_level, n_units)
                                         for v in fits if v != opt.baseline}
    for f in fits.values():
        if f.law.alpha >= 9.99 or f.law.E < 1e-6:
            out.warnings.append(f"saturating fit of {f.variant}: parameters at a bound (E={f.law.E:.3g}, "
                                f"alpha={f.law.alpha:.3g}); the floor is not identified by these sizes")


def _chinchilla_design(obs: Observations) -> str | None:
    """Why L(N, D) cannot be fitted to ``obs`` (None if it can): 5 parameters need 6 points per
    arm, and N and D must vary separately (some size trained on several token budgets)."""
    for v in obs.arms:
        o = obs.of(v)
        ok = np.isfinite(o.n_params) & np.isfinite(o.tokens)
        if ok.sum() < 6:
            return f"{v}: {int(ok.sum())} points with N and D (5 parameters need 6)"
        n, d = o.n_params[ok], o.tokens[ok]
        if max(len(np.unique(d[n == x])) for x in np.unique(n)) < 2:
            return (f"{v}: each size has one token budget, so N and D move together and cannot be separated "
                    "(sweep several token budgets per size, or an isoFLOP grid)")
    return None


def _fit_chinchilla_form(cobs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    cobs = cobs.take(np.isfinite(cobs.n_params) & np.isfinite(cobs.tokens))
    why = _chinchilla_design(cobs)
    if why:
        out.skipped["chinchilla"] = why
        return
    for v in cobs.arms:
        try:
            out.chinchilla[v] = fit_chinchilla(cobs.of(v), v, opt.huber_delta, grid=opt.chinchilla_grid,
                                               n_starts=opt.chinchilla_n_starts)
        except ValueError as e:
            out.skipped[f"chinchilla/{v}"] = str(e)
    if out.chinchilla and opt.n_boot > 0:  # units resampled jointly, a run's checkpoints together
        res = resample_units(cobs, opt.n_boot, opt.seed, min_distinct=2)
        out.units.append(res.unit)
        out.chinchilla = {v: refit(f, cobs.of(v), res.weights[:, cobs.arm == v]) for v, f in out.chinchilla.items()}


def _fit_isoflop_form(obs: Observations, opt: AnalysisOptions, out: _Collected) -> None:
    out.isoflop = {v: bootstrap_isoflop(fit_isoflop(obs.of(v), v), obs.of(v), opt.n_boot, opt.seed)
                   for v in obs.arms}
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
        out.multipliers["isoflop"] = {v: bootstrap_multipliers(fobs, frontier, v, opt.baseline, opt.ci_level)
                                      for v in frontier if v != opt.baseline}


def _frontier_obs(frontier: dict[str, CurveFit]) -> Observations:
    cat = lambda fn: np.concatenate([fn(v, f) for v, f in frontier.items()])
    return Observations(
        arm=cat(lambda v, f: np.full(f.n_points, v)), size=cat(lambda v, f: np.array([f"C={c:.3g}" for c in f.compute])),
        run=cat(lambda v, f: np.array([f"{v}-budget{i}" for i in range(f.n_points)])),
        seed=cat(lambda v, f: np.zeros(f.n_points, dtype=np.int64)), n_params=cat(lambda v, f: np.full(f.n_points, np.nan)),
        tokens=cat(lambda v, f: np.full(f.n_points, np.nan)), compute=cat(lambda v, f: f.compute),
        loss=cat(lambda v, f: f.loss))


def _selection_warnings(selection: Selection) -> list[str]:
    warnings = [f"{c.variant} {c.size}: the best {', '.join(c.at_edge)} "
                f"({', '.join(f'{a}={c.winner[a]}' for a in c.at_edge)}) is at the edge of the grid "
                f"{', '.join(f'{a}={c.grid[a]}' for a in c.at_edge)}: extend it"
                for c in selection.choices if c.at_edge]
    if selection.choices and selection.measured_on_selection_seed:
        warnings.append(f"one seed: the best {', '.join(selection.hparam_axes)} was chosen and measured on the same "
                        "runs, which biases each arm's loss low (best-of-k over seed noise: 0.006-0.017 nats on the "
                        "tiny ladder); add seeds to choose on one and measure on the others")
    bad = [e for e in selection.excluded if e.status in ("failed", "diverged")]
    if bad:
        warnings.append(f"{len(bad)} failed/diverged run(s) left out: "
                        + ", ".join(f"{e.run_id} ({e.status})" for e in bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return warnings


def _headlines(out: _Collected, opt: AnalysisOptions, isoflop_design: bool) -> tuple[str, dict[str, Headline], list[str]]:
    """The headline form actually used (falling back when the asked one was not fitted) and its values."""
    form = opt.headline_form
    available = (["shift"] if out.shift is not None and out.shift.arms else []) + list(out.multipliers)
    warnings = []
    if form not in available:
        order = ("isoflop", "shift", "paper", "saturating") if isoflop_design else ("shift", "paper", "saturating")
        fallback = next((f for f in order if f in available), None)
        if fallback is not None and not (isoflop_design and fallback == "isoflop"):
            why = "; ".join(f"{k}: {v}" for k, v in out.skipped.items() if k.startswith(form)) or "not fitted"
            warnings.append(f"no {form} multiplier ({why}); the headline uses the {fallback} fit instead")
        form = fallback or form
    heads: dict[str, Headline] = {}
    if form == "shift" and out.shift is not None:
        for arm, e in sorted(out.shift.arms.items()):
            iv = Interval.from_log(e.log_estimate, e.log_low, e.log_high, e.level, e.method)
            heads[arm] = Headline(arm, e.baseline, "shift", iv, e.log_estimate, e.half_width_log, e.design)
    for arm, vm in sorted(out.multipliers.get(form, {}).items()):
        iv = vm.at_largest
        hw = float(np.log(iv.high / iv.low) / 2) if iv.has_interval else float("nan")
        heads[arm] = Headline(arm, vm.baseline, form, iv, float(np.log(iv.estimate)), hw,
                              f"separate {form} fits", compute=vm.compute)
    return form, heads, warnings


def analyse(obs: Observations, options: AnalysisOptions = AnalysisOptions(), *, sweep: str = "",
            selection: Selection | None = None, checkpoint_obs: Observations | None = None,
            curves: CurveTable | None = None) -> Analysis:
    """Fit every applicable form, derive the multipliers and run the honesty checks."""
    t0 = time.perf_counter()
    opt = options
    variants = obs.arms
    if opt.baseline not in variants and len(variants) > 1:
        raise AnalysisInputError(f"no runs of the baseline arm {opt.baseline!r} (arms: "
                                 f"{', '.join(variants)}); pass --baseline NAME")
    out = _Collected()
    isoflop_design = has_isoflop_design(obs)
    ladder_forms = [f for f in ("shift", "paper", "saturating") if f in opt.forms]
    for form in ladder_forms:
        if isoflop_design:  # sizes share compute budgets: loss vs compute is the isoFLOP frontier
            out.skipped[form] = ("isoFLOP sweep (several sizes per compute budget): loss vs compute is read from "
                                 "the isoFLOP minima (form isoflop), not fitted through every run")
        elif form == "shift" and len(variants) > 1:
            _fit_shift(obs, opt, out)
        elif form == "paper":
            _fit_paper(obs, opt, out)
        elif form == "saturating":
            _fit_saturating(obs, opt, out)
    if "chinchilla" in opt.forms:
        _fit_chinchilla_form(checkpoint_obs if (opt.checkpoints and checkpoint_obs is not None) else obs, opt, out)
    if "isoflop" in opt.forms:
        if isoflop_design:
            _fit_isoflop_form(obs, opt, out)
        else:
            out.skipped["isoflop"] = "no arm has 2 compute budgets with 3 or more sizes each"

    extrapolation = [c for form in ("paper", "saturating") if form in out.curve_fits
                     for c in checks.leave_largest_out(obs.take(np.isin(obs.arm, list(out.curve_fits[form]))),
                                                       form, opt.huber_delta, opt.saturating_floor)]
    spread = checks.seed_spread(obs)
    headline_form, headline, head_warnings = _headlines(out, opt, isoflop_design)
    warnings = out.warnings + head_warnings
    warnings += checks.ci_warnings(list(headline.values()))
    if selection is not None:
        warnings += _selection_warnings(selection)
    devtime = {}
    if selection is not None:
        devtime = {a: dt for a, h in headline.items()
                   if (dt := device_time(selection.runs, a, opt.baseline, h.value)) is not None}
    power = []
    if out.shift is not None and out.shift.arms:
        est = next(iter(out.shift.arms.values()))
        seeds = max(est.seeds_per_size)
        lost = 1 if (selection is not None and selection.choices and not selection.measured_on_selection_seed) else 0
        noise = {a: noise_from_estimate(e, "this sweep") for a, e in out.shift.arms.items()}
        power = design_power(sorted(out.shift.arms), est.n_sizes, seeds + lost, noise, lost)
    return Analysis(sweep=sweep, source=obs.source, options=opt, headline_form=headline_form, observations=obs,
                    selection=selection, shift=out.shift, curve_fits=out.curve_fits, chinchilla=out.chinchilla,
                    isoflop=out.isoflop, multipliers=out.multipliers, headline=headline, device_time=devtime,
                    power=power, extrapolation=extrapolation, seed_spread=spread, skipped=out.skipped,
                    warnings=warnings, bootstrap_unit="; ".join(dict.fromkeys(out.units)) or "nothing (no bootstrap)",
                    elapsed_s=time.perf_counter() - t0, curves=curves)


def analyse_results(results_dir: Path, options: AnalysisOptions = AnalysisOptions()) -> Analysis:
    """The pipeline on results/<sweep>/{runs,curves}.parquet."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    curves = load_curves(results_dir)
    selection = select_runs(runs, options.loss_column, options.hparam_axes, options.hparam_protocol, options.baseline)
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


def noise_from_results(results_dir, baseline: str = "baseline") -> dict[str, NoiseLevel]:
    """Per arm, the paired-unit noise measured in results/<sweep>/ (runs.parquet); {} when the shift
    model cannot be fitted there (too few sizes, no pairs)."""
    results_dir = Path(results_dir)
    a = analyse_results(results_dir, AnalysisOptions(baseline=baseline, forms=("shift",), n_boot=0))
    if a.shift is None:
        return {}
    return {arm: noise_from_estimate(e, f"measured in {results_dir}") for arm, e in a.shift.arms.items()}
