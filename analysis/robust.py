"""Robust fitting of log-sum-exp laws: sum of Huber(delta) of log residuals, multi-start.

Every law of the saturating and Chinchilla forms is log L = logsumexp of terms "log-coefficient minus
exponent times a covariate" (LogSumExpModel). Two optimisers over many parameter vectors at once:
    batched_irls   Levenberg-Marquardt / iteratively reweighted least squares for many starts or many
                   bootstrap replicates together (numpy, no per-start scipy call)
    lbfgs          scipy's L-BFGS-B on one start, with tolerances that make the optimum independent
                   of the objective's scale (LBFGS_OPTIONS)
and the two multi-start drivers built on them (analysis.fits uses both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

from analysis._blas import single_threaded_blas

# scipy's L-BFGS-B stops when the objective changes by less than ftol * max(|f|, 1): an *absolute*
# tolerance for objectives below 1, as these are (~1e-3 on Chinchilla's 240 points, ~1e-6 on a few
# sizes). Its default (2.2e-9) stops a small fit early, and a mean instead of a sum stops it earlier.
# These tolerances make the optimum independent of the objective's scale (tested).
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 15000, "maxfun": 30000}


@dataclass(frozen=True)
class LogSumExpModel:
    """log L_hat_i = logsumexp_k (theta[coef[k, i]] - theta[slope[k]] * x[k, i]).

    Each term k is a log-coefficient (per row, so it can depend on the variant) minus an exponent
    times a covariate (log N, log D or log C); a constant term (the floor E) has slope -1 and x = 0.
    """

    coef: np.ndarray  # (K, n) int
    slope: np.ndarray  # (K,) int, -1 = no exponent
    x: np.ndarray  # (K, n) float
    n_theta: int

    def log_pred(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log L_hat (n,), softmax weights of the terms (K, n))."""
        s = np.where(self.slope >= 0, theta[np.maximum(self.slope, 0)], 0.0)
        t = theta[self.coef] - s[:, None] * self.x
        m = t.max(0)
        ex = np.exp(t - m)
        tot = ex.sum(0)
        return m + np.log(tot), ex / tot

    def log_pred_many(self, thetas: np.ndarray) -> np.ndarray:
        """log L_hat for many parameter vectors at once: (S, p) -> (S, n)."""
        s = np.where(self.slope >= 0, thetas[:, np.maximum(self.slope, 0)], 0.0)  # (S, K)
        t = thetas[:, self.coef] - s[:, :, None] * self.x[None]  # (S, K, n)
        m = t.max(1)
        return m + np.log(np.exp(t - m[:, None]).sum(1))


def jacobian_many(model: LogSumExpModel, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log L_hat (B, n), d log L_hat / d theta (B, n, p)) for many parameter vectors."""
    s = np.where(model.slope >= 0, thetas[:, np.maximum(model.slope, 0)], 0.0)  # (B, K)
    t = thetas[:, model.coef] - s[:, :, None] * model.x[None]  # (B, K, n)
    m = t.max(1)
    ex = np.exp(t - m[:, None])
    tot = ex.sum(1)
    p = ex / tot[:, None]  # (B, K, n)
    n = model.coef.shape[1]
    jac = np.zeros((thetas.shape[0], n, model.n_theta))
    rows = np.arange(n)
    for k, sl in enumerate(model.slope):
        jac[:, rows, model.coef[k]] += p[:, k]
        if sl >= 0:
            jac[:, :, sl] -= p[:, k] * model.x[k]
    return m + np.log(tot), jac


def batched_irls(model: LogSumExpModel, log_l: np.ndarray, weights: np.ndarray, delta: float,
                  theta0: np.ndarray, bounds: list[tuple[float | None, float | None]] | None = None,
                  max_iter: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise sum_i w_bi Huber_delta(r_bi) for every row b of ``weights`` at once: Levenberg-Marquardt
    steps on the iteratively reweighted least-squares form of the Huber objective (weights
    min(1, delta/|r|), whose fixed point is the Huber optimum), started from ``theta0`` ((p,) shared,
    or (B, p) one per row). Returns (thetas, objectives, converged). Used for bootstrap replicates and
    multi-start grids, where a scipy call per row costs more than the fit itself."""
    w = np.atleast_2d(weights).astype(float)
    nb = w.shape[0]
    theta = np.array(np.broadcast_to(np.asarray(theta0, dtype=float), (nb, model.n_theta)))
    lo = np.array([-np.inf if b is None or b[0] is None else b[0] for b in (bounds or [None] * model.n_theta)])
    hi = np.array([np.inf if b is None or b[1] is None else b[1] for b in (bounds or [None] * model.n_theta)])
    objective = lambda th, ww: (ww * huber(delta, log_l - model.log_pred_many(th))).sum(1)
    f = objective(theta, w)
    lam = np.full(nb, 1e-3)
    done = np.zeros(nb, dtype=bool)
    eye = np.eye(model.n_theta)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if len(act) == 0:
            break
        lp, jac = jacobian_many(model, theta[act])
        r = log_l - lp
        a = np.abs(r)
        omega = w[act] * np.where(a <= delta, 1.0, delta / np.maximum(a, 1e-300))
        jo = jac * omega[:, :, None]
        hess = np.einsum("bni,bnj->bij", jo, jac)
        grad = np.einsum("bni,bn->bi", jo, r)  # = -d objective / d theta
        damp = lam[act, None, None] * (hess * eye + 1e-12 * eye)
        step = np.linalg.solve(hess + damp, grad[:, :, None])[:, :, 0]
        cand = np.clip(theta[act] + step, lo, hi)
        fc = objective(cand, w[act])
        better = fc <= f[act]
        idx = act[better]
        gain = f[idx] - fc[better]
        theta[idx], f[idx] = cand[better], fc[better]
        lam[idx] = np.maximum(lam[idx] / 3, 1e-9)
        lam[act[~better]] *= 4
        small = np.abs(step).max(1) < 1e-9 * (1 + np.abs(theta[act]).max(1))
        flat = np.zeros(len(act), dtype=bool)
        # converged when a step gains < 1e-10 of the objective: 1e-10 relative is far below the bootstrap's
        # spread, and stops replicates creeping along a flat direction (an unidentified floor E -> 0)
        flat[better] = gain <= 1e-10 * np.maximum(f[idx], 1e-300)
        done[act[(better & (small | flat)) | (lam[act] > 1e8)]] = True
    return theta, f, done & (lam < 1e8)


def huber_objective(theta: np.ndarray, model: LogSumExpModel, log_l: np.ndarray, weights: np.ndarray,
                    delta: float) -> tuple[float, np.ndarray]:
    """Sum over points of weight * Huber_delta(log L - log L_hat), and its gradient in theta."""
    lp, p = model.log_pred(theta)
    r = log_l - lp
    obj = float(weights @ huber(delta, r))
    psi = weights * np.clip(r, -delta, delta)  # d Huber / d r
    dp = psi * p  # (K, n): d obj / d term = -psi * p
    grad = -np.bincount(model.coef.ravel(), weights=dp.ravel(), minlength=model.n_theta)
    for k, s in enumerate(model.slope):
        if s >= 0:
            grad[s] += float(dp[k] @ model.x[k])
    return obj, grad


@dataclass(frozen=True)
class Optimum:
    theta: np.ndarray
    objective: float
    converged: bool
    n_starts: int


def lbfgs(model: LogSumExpModel, log_l: np.ndarray, weights: np.ndarray, delta: float, x0: np.ndarray,
           bounds: list[tuple[float | None, float | None]] | None) -> Any:
    return minimize(huber_objective, x0, args=(model, log_l, weights, delta), jac=True, method="L-BFGS-B",
                    bounds=bounds, options=LBFGS_OPTIONS)


def multistart(model: LogSumExpModel, log_l: np.ndarray, weights: np.ndarray, delta: float,
                starts: np.ndarray, n_starts: int | None,
                bounds: list[tuple[float | None, float | None]] | None = None) -> Optimum:
    """L-BFGS from the ``n_starts`` best starting points (by objective there; None = all); best optimum."""
    starts = np.atleast_2d(starts)
    if n_starts is not None and n_starts < len(starts):
        f0 = np.concatenate([huber(delta, log_l - model.log_pred_many(chunk)) @ weights
                             for chunk in np.array_split(starts, max(1, len(starts) // 500))])
        f0 = np.where(np.isfinite(f0), f0, np.inf)
        starts = starts[np.argsort(f0, kind="stable")[:n_starts]]
    best = None
    with single_threaded_blas():
        for s in starts:
            res = lbfgs(model, log_l, weights, delta, s, bounds)
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
    if best is None:
        raise ValueError("every L-BFGS start failed (non-finite objective)")
    return Optimum(theta=best.x, objective=float(best.fun), converged=bool(best.success), n_starts=len(starts))


def multistart_batched(model: LogSumExpModel, log_l: np.ndarray, delta: float, starts: np.ndarray,
                        bounds: list[tuple[float | None, float | None]] | None) -> Optimum:
    """Every start at once with the batched Levenberg-Marquardt/IRLS, then L-BFGS from the best one
    (for the small L(C) fits, where one scipy run per start would dominate the cost)."""
    w = np.ones((len(starts), len(log_l)))
    thetas, objectives, _ = batched_irls(model, log_l, w, delta, np.asarray(starts, dtype=float), bounds)
    best = int(np.nanargmin(np.where(np.isfinite(objectives), objectives, np.nan)))
    with single_threaded_blas():
        res = lbfgs(model, log_l, np.ones(len(log_l)), delta, thetas[best], bounds)
    if res.fun <= objectives[best]:
        return Optimum(theta=res.x, objective=float(res.fun), converged=bool(res.success), n_starts=len(starts))
    return Optimum(theta=thetas[best], objective=float(objectives[best]), converged=True, n_starts=len(starts))
