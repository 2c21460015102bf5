"""The compute multiplier from separate per-arm fits (the paper's convention, a secondary line).

Definition. With L_b(C) and L_v(C) the fitted loss-vs-compute laws of the baseline and the arm,

    m(C) = C_b(L_v(C)) / C,       C_b = L_b^-1 (the compute at which the baseline reaches a loss)

is how many times more compute the baseline needs to reach the loss the arm reaches with compute
C. m > 1: the arm is better (m = 1.25: the paper's claim for Block AttnRes). For L = A C^-alpha

    log m(C) = (log A_b - log A_v) / alpha_b + (alpha_v / alpha_b - 1) log C,

which drifts with C unless the exponents are equal. The headline is the paired shift model
(analysis.shift); this module reads the paper's separate fits at the largest measured compute
(the paper's Figure 4 reads 5.6 PF-days, about its largest run) and as a curve over C.

Intervals, always in log m:
    paper        analytic. Each arm's law is fitted to its per-size mean log loss; the two fits
                 share their noise through the paired runs of a size, so their joint covariance is
                 that of seemingly unrelated regressions with a cross-arm residual covariance
                 (Zellner 1962): Cov(theta_i, theta_j) = s_ij (X_i'X_i)^-1 X_i'X_j (X_j'X_j)^-1,
                 s_ij = r_i . r_j / (S - 2). Delta method, t on S - 2 dof. The same covariance
                 gives the test of equal exponents (alpha_v - alpha_b = 0).
    saturating   percentile bootstrap of log m over units resampled jointly across arms
                 (analysis.bootstrap), its ends moved away from the estimate by the small-sample
                 factor sqrt(n / (n - p)) in log space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from analysis.bootstrap import expansion
from analysis.fits import CurveFit
from analysis.laws import PowerLaw, SaturatingPowerLaw
from analysis.load import Observations

Law = PowerLaw | SaturatingPowerLaw


def compute_multiplier(baseline: Law, variant: Law, compute: Any) -> Any:
    """m(C) = C_baseline(L_variant(C)) / C (module docstring). Broadcasts over laws with array
    fields (bootstrap draws, shape (B,)) against a compute grid when given ``compute`` of shape (1, k)."""
    c = np.asarray(compute, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return baseline.compute_for(variant.loss(c)) / c


def _column(law: Law) -> Law:
    """A law whose array fields are (B, 1), to broadcast against a (1, k) compute grid."""
    return type(law)(**{k: np.asarray(v, dtype=float)[:, None] for k, v in vars(law).items()})


@dataclass(frozen=True)
class Interval:
    """A multiplier with its interval; computed in log m, reported as m."""

    estimate: float
    low: float
    high: float
    level: float  # e.g. 0.9 for a 90% interval
    method: str  # how the interval was computed ("" when there is none)

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    @property
    def includes_one(self) -> bool:
        return self.has_interval and self.low <= 1.0 <= self.high

    @staticmethod
    def from_log(log_est: float, log_low: float, log_high: float, level: float, method: str) -> Interval:
        with np.errstate(over="ignore", invalid="ignore"):
            return Interval(float(np.exp(log_est)), float(np.exp(log_low)), float(np.exp(log_high)), level, method)

    def format(self, digits: int = 3) -> str:
        if not self.has_interval:
            return f"{self.estimate:.{digits}f}"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] ({self.level:.0%} CI)"


@dataclass(frozen=True)
class MultiplierCurve:
    compute: np.ndarray  # (k,) grid over the arm's measured range
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


@dataclass(frozen=True)
class ExponentTest:
    """Are the arms' exponents equal? alpha_arm - alpha_baseline with its standard error."""

    difference: float
    stderr: float
    dof: int
    p_value: float


@dataclass(frozen=True)
class VariantMultipliers:
    """One arm's multiplier over the baseline from separate fits of one form."""

    variant: str
    baseline: str
    form: str  # paper, saturating, isoflop
    compute: float  # the largest compute measured for the arm
    at_largest: Interval
    curve: MultiplierCurve
    exponents: ExponentTest | None = None


# ----------------------------------------------------------------------------- paper form, analytic


def _size_means(o: Observations, floor: float) -> dict[str, tuple[float, float]]:
    out = {}
    for s in np.unique(o.size):
        m = o.size == s
        out[str(s)] = (float(np.log(o.compute[m]).mean()), float(np.log(o.loss[m] - floor).mean()))
    return out


@dataclass(frozen=True)
class _PairedLaws:
    """Both arms' log-linear fits on their common sizes, with their joint (SUR) covariance."""

    theta: np.ndarray  # (4,) a_b, b_b, a_v, b_v for y = a + b (x - xbar)
    cov: np.ndarray  # (4, 4)
    xbar: tuple[float, float]
    dof: int

    def log_m(self, x: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        a_b, b_b, a_v, b_v = self.theta if theta is None else theta
        y_v = a_v + b_v * (np.asarray(x) - self.xbar[1])
        return self.xbar[0] + (y_v - a_b) / b_b - np.asarray(x)

    def log_m_se(self, x: np.ndarray) -> np.ndarray:
        a_b, b_b, a_v, b_v = self.theta
        x = np.asarray(x, dtype=float)
        y_v = a_v + b_v * (x - self.xbar[1])
        grad = np.stack([-np.ones_like(x) / b_b, -(y_v - a_b) / b_b ** 2, np.ones_like(x) / b_b,
                         (x - self.xbar[1]) / b_b])  # (4, k)
        return np.sqrt(np.einsum("ik,ij,jk->k", grad, self.cov, grad))


def paired_laws(obs: Observations, baseline: str, arm: str, floor: float = 0.0) -> _PairedLaws | None:
    """None with fewer than 3 common sizes (no residual dof for a covariance)."""
    mb, mv = _size_means(obs.of(baseline), floor), _size_means(obs.of(arm), floor)
    common = sorted(set(mb) & set(mv), key=lambda s: mb[s][0])
    if len(common) < 3:
        return None
    X, Y, A, R, xbars = [], [], [], [], []
    for means in (mb, mv):
        x = np.array([means[s][0] for s in common])
        y = np.array([means[s][1] for s in common])
        xbars.append(float(x.mean()))
        Xi = np.column_stack([np.ones(len(x)), x - x.mean()])
        Ai = np.linalg.inv(Xi.T @ Xi)
        th = Ai @ Xi.T @ y
        X.append(Xi), Y.append(y), A.append(Ai), R.append(y - Xi @ th)
    dof = len(common) - 2
    cov = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            s_ij = float(R[i] @ R[j]) / dof
            cov[2 * i:2 * i + 2, 2 * j:2 * j + 2] = s_ij * A[i] @ X[i].T @ X[j] @ A[j]
    theta = np.concatenate([A[i] @ X[i].T @ Y[i] for i in range(2)])
    return _PairedLaws(theta=theta, cov=cov, xbar=(xbars[0], xbars[1]), dof=dof)


def paper_multipliers(obs: Observations, variant: str, baseline: str, level: float = 0.9, form: str = "paper",
                      floor: float = 0.0, n_curve: int = 60) -> VariantMultipliers | None:
    """m at the arm's largest compute and as a curve, from separate log-linear fits of each arm's
    per-size means of log(L - floor) (floor 0: the paper's form); analytic intervals (module docstring)."""
    pl = paired_laws(obs, baseline, variant, floor)
    if pl is None:
        return None
    ov = obs.of(variant)
    c_max = float(ov.compute.max())
    t = float(stats.t.ppf((1 + level) / 2, pl.dof))
    how = (f"{level:.0%} t interval ({pl.dof} dof) from the two fits' joint covariance (paired sizes, SUR), "
           "delta method in log m")
    x_max = np.log(c_max)
    est, se = float(pl.log_m(x_max)), float(pl.log_m_se(np.array([x_max]))[0])
    at = Interval.from_log(est, est - t * se, est + t * se, level, how)
    grid = np.geomspace(ov.compute.min(), c_max, n_curve)
    lm, lse = pl.log_m(np.log(grid)), pl.log_m_se(np.log(grid))
    curve = MultiplierCurve(grid, np.exp(lm), np.exp(lm - t * lse), np.exp(lm + t * lse), level)
    diff = -(pl.theta[3] - pl.theta[1])  # alpha_v - alpha_b, alpha = -b
    var = pl.cov[1, 1] + pl.cov[3, 3] - 2 * pl.cov[1, 3]
    se_d = float(np.sqrt(max(var, 0.0)))
    p = float(2 * stats.t.sf(abs(diff) / se_d, pl.dof)) if se_d > 0 else 0.0
    return VariantMultipliers(variant, baseline, form, c_max, at, curve, ExponentTest(float(diff), se_d, pl.dof, p))


# ----------------------------------------------------------------------------- bootstrap forms


def _log_percentile(est: float, draws: np.ndarray | None, level: float, factor: float) -> tuple[float, float]:
    if draws is None:
        return np.nan, np.nan
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    if len(d) < 20:
        return np.nan, np.nan
    lo, hi = np.quantile(np.log(d), [(1 - level) / 2, (1 + level) / 2])
    le = np.log(est)
    return float(le + factor * (lo - le)), float(le + factor * (hi - le))


def bootstrap_multipliers(obs: Observations, fits: dict[str, CurveFit], variant: str, baseline: str,
                          level: float = 0.9, n_units: int | None = None, n_curve: int = 60) -> VariantMultipliers:
    """m from per-arm fits whose ``draws`` come from one joint bootstrap (units resampled across arms)."""
    fb, fv = fits[baseline], fits[variant]
    ov = obs.of(variant)
    c_max = float(ov.compute.max())
    f = expansion(n_units or len(np.unique(ov.run)), len(vars(fb.law)))
    how = (f"{level:.0%} percentile bootstrap of log m over units resampled jointly across arms"
           + (f", widened by {f:.2f} (small-sample factor)" if f > 1 else ""))

    def draws_at(c: np.ndarray) -> np.ndarray | None:
        if fb.draws is None or fv.draws is None:
            return None
        return compute_multiplier(_column(fb.draws), _column(fv.draws), c[None, :])

    est = float(compute_multiplier(fb.law, fv.law, c_max))
    d = draws_at(np.array([c_max]))
    lo, hi = _log_percentile(est, None if d is None else d[:, 0], level, f)
    at = Interval.from_log(np.log(est), lo, hi, level, how if np.isfinite(lo) else
                           "no interval: fewer than 20 bootstrap replicates gave a finite multiplier (raise --n-boot)")
    grid = np.geomspace(ov.compute.min(), c_max, n_curve)
    e = compute_multiplier(fb.law, fv.law, grid)
    dg = draws_at(grid)
    bands = [(_log_percentile(float(e[k]), None if dg is None else dg[:, k], level, f)) for k in range(n_curve)]
    lo_g, hi_g = np.exp([b[0] for b in bands]), np.exp([b[1] for b in bands])
    return VariantMultipliers(variant, baseline, fb.form, c_max, at, MultiplierCurve(grid, e, lo_g, hi_g, level))
