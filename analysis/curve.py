"""The shift model's baseline curve g: log L as a polynomial in log C, fitted to the baseline alone.

    x, y, pure = baseline_size_means(obs, "baseline")
    curve = fit_baseline_curve(x, y, pure_error=pure)     # BaselineCurve: g, g', g^-1, covariance

Degree (decided before any multiplier is computed): 1, the paper's power law; 2 when there are at
least CURVATURE_MIN_SIZES sizes (or 4 with seeds) and a nested F-test rejects degree 1 at p <
CURVATURE_P. A quadratic that is not monotone near the data falls back to the power law.

Uncertainty: the coefficients' covariance is (noise of a size mean) x (X'X)^-1. With one seed per
size the noise is the fit's residual variance; with seeds it is the larger of the seeds' pure error
and the quadratic fit's residual variance (a curvature the power law misses is not noise: it biases
no multiplier averaged over the sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.load import Observations
from records.choices import Curvature, choices

CURVATURE_MIN_SIZES = 5  # a quadratic needs >= 2 residual dof for its test and its covariance to mean anything
CURVATURE_P = 0.05


class ShiftError(ValueError):
    """The data cannot support the shift model (the message says why and what would)."""


@dataclass(frozen=True)
class BaselineCurve:
    """g(x) = sum_k coef[k] (x - x0)^k, x = log C, g = log L: the baseline's smooth loss curve."""

    coef: np.ndarray  # (p,) intercept, slope, [curvature]
    x0: float  # centring (mean log C of the baseline's sizes)
    cov: np.ndarray  # (p, p) least-squares covariance of coef
    dof: int  # residual degrees of freedom of the fit (sizes - p)
    n_sizes: int
    x_range: tuple[float, float]  # log C of the smallest and largest baseline size
    curvature_p: float | None  # p-value of the nested F-test for curvature (None: not tested)
    rule: str  # why this degree, in words

    @property
    def degree(self) -> int:
        return len(self.coef) - 1

    def log_loss(self, x: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        c = self.coef if coef is None else coef
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float) - self.x0, c)

    def slope(self, x: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        """d log L / d log C (negative: minus the local exponent)."""
        c = self.coef if coef is None else coef
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float) - self.x0,
                                                np.polynomial.polynomial.polyder(c))

    def local_exponent(self, x: np.ndarray) -> np.ndarray:
        return -self.slope(x)

    def inverse(self, y: np.ndarray, start: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        """x with g(x) = y, by Newton from ``start`` (a run's own log C: y is near g(start)).
        The curve is monotone over the data (checked in fit_baseline_curve), so this converges."""
        c = self.coef if coef is None else coef
        y = np.asarray(y, dtype=float)
        if len(c) == 2:
            return self.x0 + (y - c[0]) / c[1]
        x = np.array(start, dtype=float, copy=True)
        for _ in range(50):
            step = (self.log_loss(x, c) - y) / self.slope(x, c)
            x -= step
            if np.all(np.abs(step) < 1e-13):
                break
        return x


def polyfit(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(coef, (X'X)^-1, residual sum of squares, residual dof) of least squares of y on x."""
    X = np.vander(x, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return coef, np.linalg.inv(X.T @ X), float(r @ r), len(x) - degree - 1


def _noise(rss: float, dof: int, pure_error: tuple[float, int] | None) -> tuple[float, int]:
    """(variance of one size's mean log loss around the curve, its dof): the residual variance, or
    the seeds' pure error when that is larger (seeds are the replication; the residual variance of
    a few sizes is itself very noisy)."""
    cands = ([(rss / dof, dof)] if dof > 0 else []) + ([pure_error] if pure_error else [])
    return max(cands, key=lambda c: c[0]) if cands else (float("nan"), 0)


def fit_baseline_curve(x: np.ndarray, y: np.ndarray, curvature: str = "auto",
                       pure_error: tuple[float, int] | None = None) -> BaselineCurve:
    """g from the baseline's per-size (x, mean y). ``curvature``: auto (the rule in the module
    docstring), none (degree 1) or quadratic (degree 2). ``pure_error``: (variance of a size mean
    from the seed spread, its dof) when sizes have several seeds (baseline_size_means)."""
    if curvature not in choices(Curvature):
        raise ValueError(f"curvature: {curvature!r}; use one of {', '.join(choices(Curvature))}")
    n = len(x)
    if n < 3:
        raise ShiftError(f"the baseline has {n} size(s) with a finished run; the shift model needs 3 "
                         "(2 for its curve and 1 to estimate the curve's uncertainty)")
    x0 = float(np.mean(x))
    xc = np.asarray(x, dtype=float) - x0
    fits = {1: polyfit(xc, y, 1)}
    if n >= 4:
        fits[2] = polyfit(xc, y, 2)
    p_curv = None
    degree = 1
    testable = n >= CURVATURE_MIN_SIZES or (n >= 4 and pure_error is not None)
    if curvature == "quadratic":
        if n < 4:
            raise ShiftError(f"curvature = quadratic needs at least 4 baseline sizes, got {n}")
        degree, rule = 2, "quadratic in log C (requested)"
    elif curvature == "none":
        rule = "power law (curvature off, as requested)"
    elif not testable:
        rule = (f"power law: curvature is tested with >= {CURVATURE_MIN_SIZES} sizes, or 4 with seeds "
                f"(here {n} sizes{'' if pure_error is not None else ', one seed each'})")
    else:
        var, dof = _noise(fits[2][2], fits[2][3], pure_error)
        f = (fits[1][2] - fits[2][2]) / var if var > 0 else np.inf
        p_curv = float(stats.f.sf(f, 1, dof)) if np.isfinite(f) else 0.0
        degree = 2 if p_curv < CURVATURE_P else 1
        rule = (f"quadratic in log C: the baseline's curvature is significant (F-test p = {p_curv:.2g})" if degree == 2
                else f"power law: no significant curvature in the baseline (F-test p = {p_curv:.2g})")
    if degree == 2:
        lo, hi = float(xc.min()) - 1.0, float(xc.max()) + 1.0
        slope_at = np.polynomial.polynomial.polyval(np.array([lo, hi]), np.polynomial.polynomial.polyder(fits[2][0]))
        if np.any(slope_at >= 0):
            degree = 1
            rule += "; the quadratic turns over near the data (not monotone), so the power law is used"
    coef, xtx_inv, rss, dof_fit = fits[degree]
    if pure_error is not None and 2 in fits:
        # with seeds, the noise of a size mean comes from the seeds plus whatever the richer (quadratic) fit
        # leaves: a curvature the power law misses is not noise (it biases no multiplier averaged over the sizes)
        var, dof = _noise(fits[2][2], fits[2][3], pure_error)
    else:
        var, dof = _noise(rss, dof_fit, pure_error)
    cov = var * xtx_inv if dof > 0 else np.full_like(xtx_inv, np.nan)
    if coef[1] >= 0:
        raise ShiftError("the baseline's loss does not fall with compute (fitted slope "
                         f"{coef[1]:+.3g} in log L per log C): no scaling curve to measure a multiplier on")
    return BaselineCurve(coef=np.asarray(coef, dtype=float), x0=x0, cov=np.asarray(cov, dtype=float), dof=int(dof),
                         n_sizes=n, x_range=(float(np.min(x)), float(np.max(x))), curvature_p=p_curv, rule=rule)


def baseline_size_means(obs: Observations, baseline: str) -> tuple[np.ndarray, np.ndarray, tuple[float, int] | None]:
    """(log C, mean log L) per size of the baseline, in size order, and the pure error: the pooled
    seed variance of log L divided by the seeds per size (the variance of a size mean), with its dof;
    None when no size has two seeds."""
    o = obs.of(baseline)
    xs, ys, ss, dof, inv_k = [], [], 0.0, 0, []
    for s in o.size_order():
        m = o.size == s
        y = np.log(o.loss[m])
        xs.append(np.log(o.compute[m]).mean())
        ys.append(y.mean())
        ss += float(((y - y.mean()) ** 2).sum())
        dof += len(y) - 1
        inv_k.append(1.0 / len(y))
    pure = (ss / dof * float(np.mean(inv_k)), dof) if dof > 0 else None
    return np.array(xs), np.array(ys), pure
