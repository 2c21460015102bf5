"""The compute multiplier of a variant over the baseline, with bootstrap confidence intervals.

Definition. With L_b(C) and L_v(C) the fitted loss-vs-compute laws of the baseline and the variant,

    m(C) = C_b(L_v(C)) / C,       C_b = L_b^-1 (the compute at which the baseline reaches a loss)

is how many times more compute the baseline needs to reach the loss the variant reaches with
compute C. m > 1: the variant is better (m = 1.25: the baseline needs 25% more compute, the
paper's claim for Block AttnRes). For L = A C^-alpha (the paper's form)

    m(C) = (A_b / A_v)^(1 / alpha_b) * C^(alpha_v / alpha_b - 1),

which drifts with C unless the exponents are equal; with one shared exponent (the
`paper-shared` fit) it is the constant (A_b / A_v)^(1 / alpha).

Reported, each with a percentile interval from the bootstrap over runs (analysis.bootstrap) and the
fit form it came from:
    at_largest  m at the largest compute measured for the variant (the paper's convention: Figure 4
                reads it off at 5.6 PF-days, about its largest run)
    curve       m(C) over the measured compute range, with a pointwise band
    per_size    point multipliers from same-size loss gaps: the baseline's fitted local exponent
                k = -d log L_b / d log C converts the gap at one size into compute,
                m_s = (C_b,s / C_v,s) * (L_b,s / L_v,s)^(1 / k) (the paper's "0.020-0.026 nats
                convert to 1.20-1.30")
    shared      m under the shared-exponent fit (one number)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.bootstrap import Resamples, expansion
from analysis.fits import CurveFit, PowerLaw, SaturatingPowerLaw, SharedFit
from analysis.load import Observations

Law = PowerLaw | SaturatingPowerLaw


def compute_multiplier(baseline: Law, variant: Law, compute: Any) -> Any:
    """m(C) = C_baseline(L_variant(C)) / C (module docstring). Broadcasts over laws with array
    fields (bootstrap draws, shape (B,)) against a compute grid when given ``compute`` of shape (1, k)."""
    c = np.asarray(compute, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return baseline.compute_for(variant.loss(c)) / c


def point_multiplier(loss_baseline: Any, compute_baseline: Any, loss_variant: Any, compute_variant: Any,
                     exponent_baseline: Any) -> Any:
    """Same-size multiplier: m_s = (C_b / C_v) * (L_b / L_v)^(1 / k_b), k_b = -d log L_b / d log C."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return (compute_baseline / compute_variant) * (loss_baseline / loss_variant) ** (1.0 / exponent_baseline)


def _column(law: Law) -> Law:
    """A law whose array fields are (B, 1), to broadcast against a (1, k) compute grid."""
    return type(law)(**{k: np.asarray(v, dtype=float)[:, None] for k, v in vars(law).items()})


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float  # e.g. 0.9 for a 90% interval
    n_draws: int  # bootstrap replicates with a finite value (0: no interval)
    expansion: float = 1.0  # small-sample factor applied to the draws' spread (analysis.bootstrap)

    @property
    def includes_one(self) -> bool:
        return self.n_draws > 0 and self.low <= 1.0 <= self.high

    def format(self, digits: int = 3) -> str:
        if self.n_draws == 0:
            return f"{self.estimate:.{digits}f}"
        return (f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] "
                f"({self.level:.0%} CI)")


def percentile_interval(estimate: float, draws: np.ndarray | None, level: float, factor: float = 1.0) -> Interval:
    """Percentile interval of ``draws`` (NaN draws are dropped; +inf counts as a very large value),
    its ends moved away from ``estimate`` by ``factor`` (the small-sample expansion, analysis.bootstrap)."""
    if draws is None:
        return Interval(float(estimate), float("nan"), float("nan"), level, 0)
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2:
        return Interval(float(estimate), float("nan"), float("nan"), level, 0)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], method="linear")
    with np.errstate(invalid="ignore"):
        lo, hi = estimate + factor * (lo - estimate), estimate + factor * (hi - estimate)
    return Interval(float(estimate), float(lo), float(hi), level, len(d), float(factor))


@dataclass(frozen=True)
class MultiplierAt:
    """m at one compute (``compute`` None: constant in C, from a shared-exponent fit)."""

    variant: str
    baseline: str
    form: str  # the fit form it came from: paper, saturating, paper-shared, saturating-shared
    compute: float | None
    value: Interval


@dataclass(frozen=True)
class MultiplierCurve:
    variant: str
    baseline: str
    form: str
    compute: np.ndarray  # (k,) grid over the variant's measured range
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


@dataclass(frozen=True)
class SizeMultiplier:
    """A point multiplier from the loss gap at one size."""

    variant: str
    baseline: str
    form: str  # form of the baseline fit that supplied the local exponent
    size: str
    compute_baseline: float
    compute_variant: float
    loss_baseline: float  # mean over seeds
    loss_variant: float
    n_seeds: int  # fewest seeds of the two cells
    value: Interval
    interval_from: str  # what the interval carries: "seeds and slope" or "slope only (one seed)"

    @property
    def gap(self) -> float:
        """L_baseline - L_variant, nats/token (> 0: the variant is better)."""
        return self.loss_baseline - self.loss_variant


@dataclass(frozen=True)
class VariantMultipliers:
    """Everything about one variant's multiplier over the baseline under one fit form."""

    variant: str
    baseline: str
    form: str
    at_largest: MultiplierAt
    curve: MultiplierCurve
    per_size: list[SizeMultiplier] = field(default_factory=list)
    shared: MultiplierAt | None = None


def _cell_means(obs: Observations, weights: np.ndarray | None) -> dict[str, tuple[Any, Any, int]]:
    """Per size: (mean loss, mean compute, n runs); with ``weights`` (B, n) the means are (B,) arrays."""
    out = {}
    for s in np.unique(obs.size):
        m = obs.size == s
        n_runs = len(np.unique(obs.run[m]))
        if weights is None:
            out[s] = (float(obs.loss[m].mean()), float(obs.compute[m].mean()), n_runs)
        else:
            w = weights[:, m].astype(float)
            sw = w.sum(1)
            out[s] = (w @ obs.loss[m] / sw, w @ obs.compute[m] / sw, n_runs)
    return out


def shared_multiplier(shared: SharedFit, variant: str, baseline: str, level: float,
                      n_runs: int | None = None) -> MultiplierAt:
    """m = (A_b / A_v)^(1 / alpha) under one exponent (and floor) for all variants: constant in C.
    ``n_runs``: runs in the shared fit (default: its points), for the small-sample expansion."""
    def m(p: Any) -> Any:
        return (p.A[baseline] / p.A[variant]) ** (1.0 / p.alpha)

    draws = m(shared.draws) if shared.draws is not None else None
    n_params = len(shared.params.A) + 1 + (shared.params.E is not None)
    f = expansion(n_runs or len(shared.loss), n_params)
    return MultiplierAt(variant, baseline, shared.form, None, percentile_interval(float(m(shared.params)), draws, level, f))


def variant_multipliers(obs: Observations, fits: dict[str, CurveFit], variant: str, baseline: str,
                        level: float = 0.9, resamples: Resamples | None = None, shared: SharedFit | None = None,
                        n_curve: int = 60) -> VariantMultipliers:
    """All multipliers of ``variant`` over ``baseline`` from per-variant fits (with ``draws`` when
    bootstrapped) of one form. ``resamples`` (rows of ``obs``) supplies the seed resampling of the
    per-size multipliers; the fits' draws must come from the same replicates."""
    fb, fv = fits[baseline], fits[variant]
    form = fb.form
    ov, ob = obs.of(variant), obs.of(baseline)
    c_max = float(ov.compute.max())
    # small-sample expansion: the fewer runs per fitted parameter, the more the bootstrap underestimates
    f_fit = expansion(min(len(np.unique(ov.run)), len(np.unique(ob.run))), len(vars(fb.law)))

    def draws_at(c: np.ndarray) -> np.ndarray | None:
        if fb.draws is None or fv.draws is None:
            return None
        return compute_multiplier(_column(fb.draws), _column(fv.draws), c[None, :])

    at = float(compute_multiplier(fb.law, fv.law, c_max))
    d_at = draws_at(np.array([c_max]))
    at_largest = MultiplierAt(variant, baseline, form, c_max,
                              percentile_interval(at, None if d_at is None else d_at[:, 0], level, f_fit))

    grid = np.geomspace(ov.compute.min(), c_max, n_curve)
    est = compute_multiplier(fb.law, fv.law, grid)
    d = draws_at(grid)
    if d is None:
        lo = hi = np.full(n_curve, np.nan)
    else:
        q = np.nanquantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
        with np.errstate(invalid="ignore"):
            lo, hi = est + f_fit * (q[0] - est), est + f_fit * (q[1] - est)
    curve = MultiplierCurve(variant, baseline, form, grid, est, lo, hi, level)

    per_size = []
    means_b, means_v = _cell_means(ob, None), _cell_means(ov, None)
    if resamples is not None:
        cw = resamples.cell_weights
        bw_b, bw_v = _cell_means(ob, cw[:, obs.variant == baseline]), _cell_means(ov, cw[:, obs.variant == variant])
    for s in obs.size_order():
        if s not in means_b or s not in means_v:
            continue
        (lb, cb, nb), (lv, cv, nv) = means_b[s], means_v[s]
        est_s = float(point_multiplier(lb, cb, lv, cv, fb.law.local_exponent(cb)))
        draws_s = None
        if resamples is not None and fb.draws is not None:
            (lb_d, cb_d, _), (lv_d, cv_d, _) = bw_b[s], bw_v[s]
            draws_s = point_multiplier(lb_d, cb_d, lv_d, cv_d, fb.draws.local_exponent(cb_d))
        n_seeds = min(nb, nv)
        f_size = expansion(n_seeds, 1) if n_seeds > 1 else f_fit  # seeds: a mean per cell; else the slope's
        per_size.append(SizeMultiplier(
            variant=variant, baseline=baseline, form=form, size=s, compute_baseline=cb, compute_variant=cv,
            loss_baseline=lb, loss_variant=lv, n_seeds=n_seeds, value=percentile_interval(est_s, draws_s, level, f_size),
            interval_from=("seeds and slope" if n_seeds > 2 else
                           "seeds and slope (2 seeds: too few for a reliable interval)" if n_seeds == 2 else
                           "slope only (one seed per size)")))

    sh = shared_multiplier(shared, variant, baseline, level, len(np.unique(obs.run))) if shared is not None else None
    return VariantMultipliers(variant, baseline, form, at_largest, curve, per_size, sh)
