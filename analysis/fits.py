"""Scaling-law fits, each returning a typed result: named parameters, objective, residuals, uncertainty.

    fit = fit_paper(obs.of("baseline"))      # L = A C^-alpha (the paper's form)
    fit.law.A, fit.law.alpha, fit.residuals, fit.stderr["alpha"]
    fit_saturating(obs.of("full"))           # L = E + A C^-alpha
    fit_chinchilla(obs)                      # L(N, D) = E + A / N^alpha + B / D^beta

Forms and objectives, all in log space (r = log L_observed - log L_predicted):
    paper       sum r^2: ordinary least squares of log L on log C, closed form (the paper's form,
                its Figure 4; the paper does not say how it fitted, log-space least squares is the
                natural reading and reproduces its coefficients, analysis/reference/README.md)
    saturating  sum Huber_delta(r) from a grid of starting points (all starts at once by batched
                Levenberg-Marquardt/IRLS, then L-BFGS from the best)
    chinchilla  sum Huber_delta(r), L-BFGS from a grid of starting points: Hoffmann et al. 2022
                "Approach 3" as replicated by Besiroglu et al. 2024 (arXiv:2404.10102). The objective is
                the *sum* of the Huber terms: their mean is ~N times smaller, which makes L-BFGS's
                absolute tolerance stop it early (the bug the replication found in the original fit).

Bootstrap refits (``*_batch``/``refit``) take a matrix of row weights (replicates x rows, resample
counts from analysis.bootstrap): the `paper` forms are weighted least squares in closed form for all
replicates at once; the Huber forms run a batched Levenberg-Marquardt/IRLS from the point estimate,
all replicates at once (per-replicate scipy calls would cost more than the fits).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.special import huber

from analysis._blas import single_threaded_blas
from analysis.laws import ChinchillaLaw, PowerLaw, SaturatingPowerLaw
from analysis.load import Observations
from analysis.robust import LogSumExpModel, batched_irls, multistart, multistart_batched
from records.choices import FitForm, choices

EPOCH_HUBER_DELTA = 1e-3  # Hoffmann et al. 2022 / Besiroglu et al. 2024
# Besiroglu et al.'s grid (alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5)
EPOCH_GRID: dict[str, tuple[float, ...]] = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
# L-BFGS runs from the best `n_starts` grid points by objective value (all 4,500 Epoch starts take
# minutes; on Chinchilla's data the best 16 already reach the full grid's optimum to 1e-11 in the
# objective). None runs from every grid point.
DEFAULT_N_STARTS = 32


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CurveFit:
    """A fit of loss against compute for one variant (forms `paper` and `saturating`)."""

    form: str  # "paper" | "saturating"
    variant: str
    law: PowerLaw | SaturatingPowerLaw
    objective: float  # value at the optimum, see objective_kind
    objective_kind: str
    compute: np.ndarray  # C of each fitted point
    loss: np.ndarray  # observed L of each point
    residuals: np.ndarray  # log L_observed - log L_fitted, per point
    stderr: dict[str, float] = field(default_factory=dict)  # paper: OLS standard errors (log_A, alpha)
    covariance: dict[str, dict[str, float]] = field(default_factory=dict)  # paper: OLS, over (log_A, alpha)
    huber_delta: float | None = None
    n_starts: int = 1
    converged: bool = True
    draws: PowerLaw | SaturatingPowerLaw | None = None  # bootstrap distribution (array fields)

    @property
    def n_points(self) -> int:
        return len(self.loss)

    @property
    def rms_residual(self) -> float:
        return float(np.sqrt(np.mean(self.residuals ** 2)))


@dataclass(frozen=True)
class ChinchillaFit:
    """A fit of L(N, D) (form `chinchilla`)."""

    variant: str
    law: ChinchillaLaw
    objective: float  # sum of Huber(delta) of log residuals at the optimum
    residuals: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    huber_delta: float
    n_starts: int  # L-BFGS runs made
    n_grid: int  # grid points considered
    converged: bool
    form: str = "chinchilla"
    objective_kind: str = "sum of Huber(delta) of log residuals"
    draws: ChinchillaLaw | None = None

    @property
    def n_points(self) -> int:
        return len(self.loss)


# ----------------------------------------------------------------------------- paper form (closed form)


def paper_batch(log_c: np.ndarray, log_l: np.ndarray, weights: np.ndarray) -> PowerLaw:
    """Weighted least squares of log L on log C for every row of ``weights`` (replicates x points).

    Returns a PowerLaw with array fields (one entry per replicate); NaN where a replicate has fewer
    than two distinct compute values."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    x = log_c - log_c.mean()  # centring keeps the sums well conditioned
    sw = w.sum(1)
    mx, my = w @ x / sw, w @ log_l / sw
    sxx = w @ x ** 2 - sw * mx ** 2
    sxy = w @ (x * log_l) - sw * mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 1e-12 * sw, sxy / sxx, np.nan)
    log_a = my - slope * (mx + log_c.mean())
    return PowerLaw(A=np.exp(log_a), alpha=-slope)


def fit_paper(obs: Observations, variant: str | None = None) -> CurveFit:
    """L = A C^-alpha by least squares in log space (closed form), with OLS standard errors."""
    variant = variant or _single_variant(obs)
    if len(np.unique(obs.compute)) < 2:
        raise ValueError(f"paper fit of {variant!r}: needs at least two distinct compute values, "
                         f"got {len(np.unique(obs.compute))}")
    x, y = np.log(obs.compute), np.log(obs.loss)
    law = paper_batch(x, y, np.ones((1, len(x))))
    law = PowerLaw(A=float(law.A[0]), alpha=float(law.alpha[0]))
    resid = y - np.log(law.loss(obs.compute))
    n = len(x)
    stderr: dict[str, float] = {}
    cov: dict[str, dict[str, float]] = {}
    if n > 2:
        s2 = float(resid @ resid) / (n - 2)
        X = np.column_stack([np.ones(n), -x])  # y = log_A - alpha x
        c = s2 * np.linalg.inv(X.T @ X)
        names = ("log_A", "alpha")
        cov = {a: {b: float(c[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}
        stderr = {a: float(np.sqrt(c[i, i])) for i, a in enumerate(names)}
    return CurveFit(form="paper", variant=variant, law=law, objective=float(resid @ resid),
                    objective_kind="sum of squared log residuals", compute=obs.compute.copy(),
                    loss=obs.loss.copy(), residuals=resid, stderr=stderr, covariance=cov)


def _single_variant(obs: Observations) -> str:
    vs = obs.arms
    if len(vs) != 1:
        raise ValueError(f"expected the points of one variant, got {vs}; select with obs.of(variant)")
    return vs[0]


def _saturating_model(log_c: np.ndarray, group: np.ndarray, n_groups: int) -> LogSumExpModel:
    """theta = (e, alpha, a_0 .. a_{G-1}); term 0 = a_g - alpha log C, term 1 = e."""
    n = len(log_c)
    coef = np.stack([2 + group, np.zeros(n, dtype=int)])
    return LogSumExpModel(coef=coef, slope=np.array([1, -1]), x=np.stack([log_c, np.zeros(n)]),
                           n_theta=2 + n_groups)


def _saturating_starts(loss: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """A data-scaled grid: E a fraction of the lowest loss, alpha from flat to steep, each A matching
    its group's median loss at the reference compute."""
    starts = []
    for e_frac, alpha in itertools.product((0.01, 0.5, 0.8, 0.95), (0.05, 0.15, 0.4, 1.0)):
        e = e_frac * loss.min()
        a = [np.log(max(np.median(loss[group == g]) - e, 1e-3 * loss.min())) for g in range(n_groups)]
        starts.append([np.log(e), alpha, *a])
    return np.array(starts)


_SATURATING_BOUNDS_ALPHA = (0.0, 10.0)  # a negative exponent is a rising curve, not a scaling law


def fit_saturating(obs: Observations, variant: str | None = None, huber_delta: float = EPOCH_HUBER_DELTA,
                   starts: np.ndarray | None = None) -> CurveFit:
    """L = E + A C^-alpha: sum of Huber(delta) on log residuals, multi-start (a data-scaled grid of 16
    starts, all run at once by batched IRLS, then L-BFGS from the best).

    C is divided by its geometric mean while fitting (conditioning); A is reported for C in the
    observations' unit. ``starts`` rows are (log E, alpha, log A at the geometric-mean compute)."""
    variant = variant or _single_variant(obs)
    if len(np.unique(obs.compute)) < 3:
        raise ValueError(f"saturating fit of {variant!r}: 3 parameters need at least 3 distinct compute values")
    c_ref = float(np.exp(np.mean(np.log(obs.compute))))
    model = _saturating_model(np.log(obs.compute / c_ref), np.zeros(len(obs), dtype=int), 1)
    grid = _saturating_starts(obs.loss, np.zeros(len(obs), dtype=int), 1) if starts is None else starts
    y = np.log(obs.loss)
    bounds = [(None, None), _SATURATING_BOUNDS_ALPHA, (None, None)]
    opt = multistart_batched(model, y, huber_delta, grid, bounds)
    law = _saturating_law(opt.theta, 0, c_ref)
    return CurveFit(form="saturating", variant=variant, law=law, objective=opt.objective,
                    objective_kind="sum of Huber(delta) of log residuals", compute=obs.compute.copy(),
                    loss=obs.loss.copy(), residuals=y - np.log(law.loss(obs.compute)), huber_delta=huber_delta,
                    n_starts=opt.n_starts, converged=opt.converged)


def fit_saturating_floor(obs: Observations, floor: float, variant: str | None = None) -> CurveFit:
    """L = E + A C^-alpha with the floor E given (not fitted): least squares of log(L - E) on log C,
    closed form, as the paper form. For users who know their irreducible loss."""
    variant = variant or _single_variant(obs)
    shifted = fit_paper(replace(obs, loss=obs.loss - floor), variant)
    law = SaturatingPowerLaw(E=float(floor), A=shifted.law.A, alpha=shifted.law.alpha)
    return CurveFit(form="saturating", variant=variant, law=law, objective=shifted.objective,
                    objective_kind="sum of squared residuals of log(L - E), E given", compute=obs.compute.copy(),
                    loss=obs.loss.copy(), residuals=np.log(obs.loss) - np.log(law.loss(obs.compute)),
                    stderr=shifted.stderr, covariance=shifted.covariance)


def _saturating_law(theta: np.ndarray, g: int, c_ref: float) -> SaturatingPowerLaw:
    e, alpha, a = theta[0], theta[1], theta[2 + g]
    return SaturatingPowerLaw(E=float(np.exp(e)), A=float(np.exp(a) * c_ref ** alpha), alpha=float(alpha))


def _saturating_theta(law: SaturatingPowerLaw, c_ref: float) -> np.ndarray:
    return np.array([np.log(max(law.E, 1e-12)), law.alpha, np.log(law.A) - law.alpha * np.log(c_ref)])


# ----------------------------------------------------------------------------- Chinchilla form


def _chinchilla_model(log_n: np.ndarray, log_d: np.ndarray) -> LogSumExpModel:
    """theta = (a, b, e, alpha, beta): log L_hat = logsumexp(a - alpha log N, b - beta log D, e)."""
    n = len(log_n)
    coef = np.stack([np.zeros(n, dtype=int), np.ones(n, dtype=int), np.full(n, 2)])
    return LogSumExpModel(coef=coef, slope=np.array([3, 4, -1]), x=np.stack([log_n, log_d, np.zeros(n)]),
                           n_theta=5)


def chinchilla_grid(grid: dict[str, tuple[float, ...]] | None = None) -> np.ndarray:
    """Starting points (a, b, e, alpha, beta), the Cartesian product of ``grid`` (default Epoch's)."""
    g = {**EPOCH_GRID, **(grid or {})}
    return np.array(list(itertools.product(g["a"], g["b"], g["e"], g["alpha"], g["beta"])), dtype=float)


def chinchilla_objective(law: ChinchillaLaw, obs: Observations, huber_delta: float = EPOCH_HUBER_DELTA) -> float:
    """The fitting objective at ``law``: the sum over points of Huber(delta) of log residuals."""
    r = np.log(obs.loss) - np.log(law.loss(obs.n_params, obs.tokens))
    return float(huber(huber_delta, r).sum())


def fit_chinchilla(obs: Observations, variant: str | None = None, huber_delta: float = EPOCH_HUBER_DELTA,
                   grid: dict[str, tuple[float, ...]] | None = None,
                   n_starts: int | None = DEFAULT_N_STARTS, weights: np.ndarray | None = None) -> ChinchillaFit:
    """L(N, D) = E + A/N^alpha + B/D^beta, the robust way (Hoffmann et al. 2022 Approach 3; Besiroglu
    et al. 2024): minimise the sum of Huber(delta) of log residuals with L-BFGS from a grid of starts.

    ``grid`` overrides Epoch's values per parameter (keys a, b, e, alpha, beta); ``n_starts`` is how
    many of the grid points (best by objective) L-BFGS starts from (None: all). ``weights`` multiply
    each point's Huber term (default 1: the plain sum); the optimum does not depend on their scale."""
    variant = variant or _single_variant(obs)
    ok = np.isfinite(obs.n_params) & np.isfinite(obs.tokens)
    if ok.sum() < 6 or len(np.unique(obs.n_params[ok])) < 2 or len(np.unique(obs.tokens[ok])) < 2:
        raise ValueError(f"chinchilla fit of {variant!r}: 5 parameters need at least 6 points with "
                         "at least 2 distinct N and 2 distinct D")
    obs = obs.take(ok)
    w = np.ones(len(obs)) if weights is None else np.asarray(weights, dtype=float)[ok]
    model = _chinchilla_model(np.log(obs.n_params), np.log(obs.tokens))
    starts = chinchilla_grid(grid)
    y = np.log(obs.loss)
    opt = multistart(model, y, w, huber_delta, starts, n_starts)
    law = _chinchilla_law(opt.theta)
    return ChinchillaFit(variant=variant, law=law, objective=opt.objective,
                         residuals=y - np.log(law.loss(obs.n_params, obs.tokens)), n_params=obs.n_params.copy(),
                         tokens=obs.tokens.copy(), loss=obs.loss.copy(), huber_delta=huber_delta,
                         n_starts=opt.n_starts, n_grid=len(starts), converged=opt.converged)


def _chinchilla_law(theta: np.ndarray) -> ChinchillaLaw:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ChinchillaLaw(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=alpha, beta=beta)


def _chinchilla_theta(law: ChinchillaLaw) -> np.ndarray:
    return np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])


# ----------------------------------------------------------------------------- bootstrap refits


def refit(fit: CurveFit | ChinchillaFit, obs: Observations, weights: np.ndarray) -> Any:
    """The fit's parameters on every bootstrap replicate (rows of ``weights``: resample counts of the
    points of ``obs``, which must be the points ``fit`` was made on); returns the fit with ``draws``.

    `paper` forms: closed form for all replicates at once. Huber forms: batched Levenberg-Marquardt /
    IRLS on all replicates at once, started from the point estimate (a replicate's optimum is near
    it; on Chinchilla's data it matches per-replicate L-BFGS to ~1e-7 in the parameters, at a tenth
    of the cost)."""
    w = np.atleast_2d(weights)
    if isinstance(fit, CurveFit) and fit.form == "paper":
        return replace(fit, draws=paper_batch(np.log(obs.compute), np.log(obs.loss), w))
    with single_threaded_blas():
        return _refit_huber(fit, obs, w)


def _refit_huber(fit: CurveFit | ChinchillaFit, obs: Observations, w: np.ndarray) -> Any:
    y = np.log(obs.loss)
    if isinstance(fit, CurveFit):  # saturating
        c_ref = float(np.exp(np.mean(np.log(obs.compute))))
        model = _saturating_model(np.log(obs.compute / c_ref), np.zeros(len(obs), dtype=int), 1)
        bounds = [(None, None), _SATURATING_BOUNDS_ALPHA, (None, None)]
        thetas, _, _ = batched_irls(model, y, w, fit.huber_delta, _saturating_theta(fit.law, c_ref), bounds)
        return replace(fit, draws=SaturatingPowerLaw(E=np.exp(thetas[:, 0]), A=np.exp(thetas[:, 2]) * c_ref ** thetas[:, 1],
                                                     alpha=thetas[:, 1]))
    if isinstance(fit, ChinchillaFit):
        model = _chinchilla_model(np.log(obs.n_params), np.log(obs.tokens))
        th, _, _ = batched_irls(model, y, w, fit.huber_delta, _chinchilla_theta(fit.law))
        return replace(fit, draws=ChinchillaLaw(E=np.exp(th[:, 2]), A=np.exp(th[:, 0]), B=np.exp(th[:, 1]),
                                                alpha=th[:, 3], beta=th[:, 4]))
    raise TypeError(f"cannot refit {type(fit).__name__}")


# ----------------------------------------------------------------------------- dispatch

FORMS = choices(FitForm)


def fit_form(form: str, obs: Observations, variant: str, huber_delta: float = EPOCH_HUBER_DELTA) -> CurveFit:
    """A per-variant fit of loss against compute by form name (`paper` or `saturating`)."""
    if form == "paper":
        return fit_paper(obs, variant)
    if form == "saturating":
        return fit_saturating(obs, variant, huber_delta)
    raise ValueError(f"unknown L(C) form {form!r}; use paper or saturating")
