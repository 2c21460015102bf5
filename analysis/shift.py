"""The paired shift model: the headline effective-compute multiplier, seeds as replication.

    fit = fit_shift(obs, baseline="baseline")
    est = fit.arms["block"]          # ShiftEstimate: log multiplier, interval, per-size values
    est.multiplier, est.low, est.high

Model. x = log C (a run's training compute), y = log L (its final validation loss). All arms share
one smooth baseline curve g; an arm with multiplier m reaches the loss the baseline reaches with m
times the arm's compute:

    y[arm, u] = g(x[arm, u] + log m_arm) + eta[u] + eps[arm, u],        m_baseline = 1

u = (size, seed) is a *unit*. Runs of one unit share their initial weights (for shared tensors) and
their batch order, so eta[u] (seed noise and the size's own deviation from the curve) is shared by
the arms, while eps is each run's own (AttnRes training is chaotic at the 0.01-0.03 nat level).
g is a polynomial in x: degree 1 is the paper's power law L = A C^-alpha; degree 2 adds curvature.

Estimator.
  1. g is fitted to the baseline's per-size mean log loss (seeds averaged) by least squares
     (analysis.curve: a power law, plus curvature when the baseline alone calls for it).
  2. Every unit where the baseline and the arm both finished gives a paired log multiplier
         d[u] = g^-1(y[arm, u]) - g^-1(y[base, u]) - (x[arm, u] - x[base, u])
     (the difference of the two runs' effective log compute on the baseline curve, less the arm's
     own FLOP overhead): eta[u] cancels, which is what pairing buys.
  3. log m = mean of d[u].

Interval, always in log m (so a multiplier bound is never negative). Two independent error sources:
    V_scatter = s^2 / n              the noise of the n paired units: with seeds, s^2 is their pooled
                                     within-size variance (seeds are the replication; sum(k - 1) dof);
                                     with one seed per size, their variance across sizes (n - 1 dof)
    V_curve   = grad' Cov(theta) grad   g's uncertainty (chiefly its slope, a common factor of every
                                     d[u]) by the delta method; Cov from step 1 (sizes - degree - 1 dof)
  a t interval on V_scatter + V_curve with Welch-Satterthwaite degrees of freedom. With seeds, a
  one-way F-test asks whether sizes disagree more than seeds allow; if they do (p < HETEROGENEITY_P)
  a single multiplier does not describe the data, sizes become the replicates (V_scatter = variance
  of the per-size means / sizes, sizes - 1 dof) and a warning says so.
Validated by simulation (analysis/simulate.py, tests/test_multiplier_coverage.py,
bench/bench_coverage.py): a curved baseline, noise shared by the arms of a unit, per-run noise,
the arm's FLOP overhead; 90% intervals cover the truth in 85-95% of simulated sweeps.

Per size: the mean of d[u] at that size; the interval from the pooled within-size seed spread
(>= 2 seeds), or with one seed from the scatter of all units (a unit's own noise), plus V_curve.
Drift: the slope of d[u] against log C (a paired test of equal exponents: the multiplier does not
change with compute if the slope is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from analysis.curve import BaselineCurve, ShiftError, baseline_size_means, fit_baseline_curve, polyfit
from analysis.load import Observations

# 0.01. When the multiplier really varies by size (analysis.simulate NoiseModel.arm_size = 0.10 in log m,
# the demo's spread), the interval covers the mean over the swept sizes in 93-98% of simulated sweeps but
# the all-sizes multiplier in only 69-84% (3 x 3 to 4 x 5); 0.10 (Cochran's Q convention) lifts that to
# 83-89% but over-covers constant multipliers (4 x 5, m = 1.25: 0.960, outside the 0.85-0.95 goal),
# because the F-test also fires when a power-law g misfits a curved baseline. bench/bench_coverage.py.
HETEROGENEITY_P = 0.01


# ----------------------------------------------------------------------------- paired units


@dataclass(frozen=True)
class PairedUnits:
    """The units (size, seed) where both the baseline and the arm have a run, in size order."""

    size: np.ndarray  # str
    seed: np.ndarray  # int
    x_base: np.ndarray  # log C
    x_arm: np.ndarray
    y_base: np.ndarray  # log L
    y_arm: np.ndarray

    def __len__(self) -> int:
        return len(self.size)

    def deltas(self, curve: BaselineCurve, coef: np.ndarray | None = None) -> np.ndarray:
        """d[u]: the paired log multiplier of each unit (module docstring)."""
        return (curve.inverse(self.y_arm, self.x_arm, coef) - curve.inverse(self.y_base, self.x_base, coef)
                - (self.x_arm - self.x_base))


def _unit_means(o: Observations) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(size, seed, unit) -> (mean log C, mean log L) of one arm's runs (one run per unit, normally)."""
    out: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for s, k, u, c, l in zip(o.size, o.seed, o.unit_keys(), o.compute, o.loss):
        out.setdefault((str(s), int(k), str(u)), []).append((np.log(c), np.log(l)))
    return {u: tuple(np.mean(np.array(v), axis=0)) for u, v in out.items()}


def pair_units(obs: Observations, baseline: str, arm: str) -> tuple[PairedUnits, list[str]]:
    """The paired units of ``arm`` and ``baseline`` and notes on runs that have no partner."""
    base, other = _unit_means(obs.of(baseline)), _unit_means(obs.of(arm))
    order = {s: i for i, s in enumerate(obs.size_order())}
    common = sorted(set(base) & set(other), key=lambda u: (order.get(u[0], 0), u[1], u[2]))
    notes = []
    for name, side in ((arm, other), (baseline, base)):
        alone = sorted(set(side) - set(common))
        if alone:
            notes.append(f"{len(alone)} run(s) of {name} without a finished partner run (same size and seed) "
                         f"left out of the paired estimate: " + ", ".join(f"{s} seed {k}" for s, k, _ in alone[:6])
                         + (" ..." if len(alone) > 6 else ""))
    col = lambda d, i: np.array([d[u][i] for u in common], dtype=float)
    units = PairedUnits(size=np.array([u[0] for u in common], dtype=object), seed=np.array([u[1] for u in common]),
                        x_base=col(base, 0), x_arm=col(other, 0), y_base=col(base, 1), y_arm=col(other, 1))
    return units, notes


# ----------------------------------------------------------------------------- estimates


class _LogInterval:
    """A multiplier held in log m (log_estimate, log_low, log_high), read on the linear scale."""

    log_estimate: float
    log_low: float
    log_high: float

    @property
    def estimate(self) -> float:
        return float(np.exp(self.log_estimate))

    @property
    def low(self) -> float:
        return float(np.exp(self.log_low))

    @property
    def high(self) -> float:
        return float(np.exp(self.log_high))


@dataclass(frozen=True)
class SizeShift(_LogInterval):
    """The paired multiplier at one size (mean over its seeds)."""

    size: str
    n_seeds: int
    compute_baseline: float  # mean C of the baseline's runs at this size (compute unit of the data)
    compute_arm: float
    loss_baseline: float  # mean final loss, nats/token
    loss_arm: float
    log_estimate: float
    log_low: float
    log_high: float
    interval_from: str

    @property
    def gap(self) -> float:
        """L_baseline - L_arm (nats/token; > 0: the arm is better)."""
        return self.loss_baseline - self.loss_arm


@dataclass(frozen=True)
class Drift:
    """Slope of the paired log multiplier against log C: 0 when the arms' exponents are equal."""

    slope: float  # d log m / d log C
    stderr: float
    p_value: float
    dof: int


@dataclass(frozen=True)
class Heterogeneity:
    """One-way F-test: do per-size mean multipliers differ by more than the seed spread allows?"""

    f: float
    p_value: float
    df_between: int
    df_within: int
    ms_within: float  # pooled within-size variance of the paired log multipliers
    significant: bool


@dataclass(frozen=True)
class ShiftEstimate(_LogInterval):
    arm: str
    baseline: str
    log_estimate: float  # log m
    stderr: float  # of log m
    dof: float  # Welch-Satterthwaite degrees of freedom of the t interval
    level: float
    log_low: float
    log_high: float
    n_units: int
    n_sizes: int
    seeds_per_size: tuple[int, ...]  # in size order
    var_scatter: float
    var_curve: float
    replicate: str  # "seeds" (within-size spread), "units" (one seed: across sizes) or "sizes" (heterogeneity)
    per_size: list[SizeShift] = field(default_factory=list)
    drift: Drift | None = None
    heterogeneity: Heterogeneity | None = None
    unit_deltas: np.ndarray | None = None  # d[u], in the units' order
    notes: list[str] = field(default_factory=list)

    @property
    def half_width_log(self) -> float:
        """Half the interval's width in log m (the design target of a sweep)."""
        return float((self.log_high - self.log_low) / 2)

    @property
    def design(self) -> str:
        k = sorted(set(self.seeds_per_size))
        seeds = f"{k[0]}" if len(k) == 1 else f"{k[0]}-{k[-1]}"
        return f"{self.n_sizes} sizes x {seeds} seed{'s' if k[-1] > 1 else ''}"

    @property
    def method(self) -> str:
        how = {"seeds": "t interval from the pooled within-size seed spread of the paired units",
               "units": "t interval from the scatter of the paired units (one seed per size)",
               "sizes": "t interval over sizes as the replicates (sizes disagree beyond seed noise)"}[self.replicate]
        how += " plus the baseline curve's uncertainty (Welch-Satterthwaite dof)"
        return (f"effective-compute multiplier m (the baseline needs m times the compute to reach the arm's loss), "
                f"paired shift model L_arm(C) = g(m C) on one shared baseline curve g, {self.design} "
                f"({self.n_units} paired units); {self.level:.0%} {how}, computed in log m")


@dataclass(frozen=True)
class ShiftFit:
    baseline: str
    curve: BaselineCurve
    arms: dict[str, ShiftEstimate]
    skipped: dict[str, str]  # arm -> why it has no estimate
    level: float


def _satterthwaite(v1: float, d1: float, v2: float, d2: float) -> float:
    terms = [(v, d) for v, d in ((v1, d1), (v2, d2)) if v > 0 and d > 0]
    if not terms:
        return np.inf
    return float(sum(v for v, _ in terms) ** 2 / sum(v * v / d for v, d in terms))


def _curve_gradient(f, curve: BaselineCurve) -> np.ndarray:
    """d f(coef) / d coef by central differences (f: coef -> value or array)."""
    grads = []
    for k in range(len(curve.coef)):
        h = 1e-6 * max(1.0, abs(curve.coef[k]))
        e = np.zeros(len(curve.coef))
        e[k] = h
        grads.append((np.asarray(f(curve.coef + e)) - np.asarray(f(curve.coef - e))) / (2 * h))
    return np.array(grads)  # (p, ...) per coefficient


def _heterogeneity(d: np.ndarray, size: np.ndarray) -> Heterogeneity | None:
    labels, inv, counts = np.unique(size, return_inverse=True, return_counts=True)
    df_w = int((counts - 1).sum())
    if len(labels) < 2 or df_w < 1:
        return None
    means = np.bincount(inv, weights=d) / counts
    ss_b = float((counts * (means - d.mean()) ** 2).sum())
    ss_w = float(((d - means[inv]) ** 2).sum())
    df_b = len(labels) - 1
    if ss_w <= 0:
        return Heterogeneity(np.inf, 0.0, df_b, df_w, 0.0, True)
    f = (ss_b / df_b) / (ss_w / df_w)
    p = float(stats.f.sf(f, df_b, df_w))
    return Heterogeneity(float(f), p, df_b, df_w, ss_w / df_w, p < HETEROGENEITY_P)


def _drift(d: np.ndarray, x: np.ndarray) -> Drift | None:
    if len(d) < 3 or np.ptp(x) <= 0:
        return None
    coef, xtx_inv, rss, dof = polyfit(x - x.mean(), d, 1)
    se = float(np.sqrt(rss / dof * xtx_inv[1, 1]))
    p = float(2 * stats.t.sf(abs(coef[1]) / se, dof)) if se > 0 else 0.0
    return Drift(float(coef[1]), se, p, dof)


def _per_size(units: PairedUnits, d: np.ndarray, curve: BaselineCurve, obs: Observations, baseline: str, arm: str,
              level: float, s_units: float, dof_units: int) -> list[SizeShift]:
    labels = list(dict.fromkeys(units.size.tolist()))
    idx = {s: np.flatnonzero(units.size == s) for s in labels}
    df_w = sum(len(i) - 1 for i in idx.values())
    s_w = float(np.sqrt(sum(((d[i] - d[i].mean()) ** 2).sum() for i in idx.values()) / df_w)) if df_w > 0 else np.nan
    out = []
    for s, i in idx.items():
        grad = _curve_gradient(lambda c, i=i: units.deltas(curve, c)[i].mean(), curve)
        v_curve = float(grad @ curve.cov @ grad) if curve.dof > 0 else 0.0
        if len(i) >= 2 and df_w > 0:
            v, dof, how = s_w ** 2 / len(i), df_w, f"pooled within-size seed spread ({df_w} dof)"
        elif dof_units > 0:
            v, dof, how = s_units ** 2, dof_units, f"one seed: scatter of all {len(d)} paired units ({dof_units} dof)"
        else:
            v, dof, how = np.nan, 0, "no interval (a single paired unit)"
        est = float(d[i].mean())
        if np.isfinite(v):
            t = stats.t.ppf((1 + level) / 2, _satterthwaite(v, dof, v_curve, curve.dof))
            half = float(t * np.sqrt(v + v_curve))
        else:
            half = np.nan
        ob, oa = obs.of(baseline), obs.of(arm)
        cb, ca = ob.compute[ob.size == s], oa.compute[oa.size == s]
        lb, la = np.exp(units.y_base[i]), np.exp(units.y_arm[i])
        out.append(SizeShift(size=str(s), n_seeds=len(i), compute_baseline=float(cb.mean()), compute_arm=float(ca.mean()),
                             loss_baseline=float(lb.mean()), loss_arm=float(la.mean()), log_estimate=est,
                             log_low=est - half, log_high=est + half, interval_from=how))
    return out


def estimate_arm(obs: Observations, curve: BaselineCurve, baseline: str, arm: str, level: float = 0.9) -> ShiftEstimate:
    """The paired shift estimate of ``arm`` against ``baseline`` on the fitted ``curve``."""
    units, notes = pair_units(obs, baseline, arm)
    n = len(units)
    if n < 2:
        raise ShiftError(f"{arm}: {n} paired unit(s) (a size and seed where both {arm} and {baseline} finished); "
                         "an interval needs at least 2")
    d = units.deltas(curve)
    est = float(d.mean())
    s = float(d.std(ddof=1))
    het = _heterogeneity(d, units.size)
    labels, inv, counts = np.unique(units.size, return_inverse=True, return_counts=True)
    if het is not None and het.significant:
        means = np.bincount(inv, weights=d) / counts
        v_scatter, dof_scatter, replicate = float(means.var(ddof=1) / len(means)), len(means) - 1, "sizes"
        notes.append(f"sizes disagree beyond seed noise (F = {het.f:.2f}, p = {het.p_value:.2g}): one multiplier does "
                     "not describe every size; the interval treats sizes as the replicates (see the per-size values "
                     "and the drift test)")
    elif het is not None and het.df_within >= 2:  # seeds: the within-size spread is the replication
        v_scatter, dof_scatter, replicate = het.ms_within / n, het.df_within, "seeds"
    else:  # one seed per size: the scatter across sizes is all there is
        v_scatter, dof_scatter, replicate = s * s / n, n - 1, "units"
    grad = _curve_gradient(lambda c: units.deltas(curve, c).mean(), curve)
    v_curve = float(grad @ curve.cov @ grad) if curve.dof > 0 else 0.0
    dof = _satterthwaite(v_scatter, dof_scatter, v_curve, curve.dof)
    se = float(np.sqrt(v_scatter + v_curve))
    half = float(stats.t.ppf((1 + level) / 2, dof) * se) if np.isfinite(dof) else np.nan
    seeds = tuple(int(counts[list(labels).index(s_)]) for s_ in dict.fromkeys(units.size.tolist()))
    per_size = _per_size(units, d, curve, obs, baseline, arm, level, s, n - 1)
    return ShiftEstimate(arm=arm, baseline=baseline, log_estimate=est, stderr=se, dof=dof, level=level,
                         log_low=est - half, log_high=est + half, n_units=n, n_sizes=len(labels), seeds_per_size=seeds,
                         var_scatter=v_scatter, var_curve=v_curve, replicate=replicate, per_size=per_size,
                         drift=_drift(d, units.x_base), heterogeneity=het, unit_deltas=d, notes=notes)


def fit_shift(obs: Observations, baseline: str = "baseline", level: float = 0.9, curvature: str = "auto") -> ShiftFit:
    """The shared baseline curve and every other arm's paired shift estimate (module docstring)."""
    if baseline not in obs.arms:
        raise ShiftError(f"no runs of the baseline {baseline!r} (arms: {', '.join(obs.arms)})")
    x, y, pure = baseline_size_means(obs, baseline)
    curve = fit_baseline_curve(x, y, curvature=curvature, pure_error=pure)
    arms, skipped = {}, {}
    for arm in obs.arms:
        if arm == baseline:
            continue
        try:
            arms[arm] = estimate_arm(obs, curve, baseline, arm, level)
        except ShiftError as e:
            skipped[arm] = str(e)
    return ShiftFit(baseline=baseline, curve=curve, arms=arms, skipped=skipped, level=level)
