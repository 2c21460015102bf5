"""IsoFLOP analysis (Hoffmann et al. 2022, "Approach 2"), with a local smooth fit at each minimum.

    iso = fit_isoflop(obs.of("baseline"))
    iso.n_opt.exponent    # a in N*(C) = k C^a
    iso.loss_opt          # L*(C) = A C^-alpha, a PowerLaw (so multipliers work on the frontier)

Per compute budget (runs whose compute agrees within ``tolerance``, in log), the loss of each size
(mean over its seeds) is interpolated by an Akima spline of log L against log N, evaluated on a
log-spaced grid from the smallest to the largest size with ``oversample`` points per gap between
sizes, and N* is the grid point of least loss. This is the method of Porian et al. 2024 ("Resolving
discrepancies in compute-optimal scaling of language models", NeurIPS, arXiv:2406.19146; their
``analysis.py::interpolation``, 25 points per gap). An Akima spline is local (the piece between two
sizes depends on the 3 nearest sizes on either side), passes through every measured point and
overshoots little, so the wide, asymmetric curves of real isoFLOP grids do not drag the minimum the
way one parabola, or even a few-point quadratic, does: on their OpenWebText2 data the spline
reproduces all 5 published allocation exponents within 0.0072, the 5-point local quadratic used
before misses one by 0.0225 (``tests/test_analysis_isoflop_porian.py``).

The price: an interpolant does not average noise; its minimum follows the noise of the few sizes
around it. On a synthetic grid of 13 sizes x1.76 apart with 0.05% loss noise the exponent's rms
error is 0.009, the quadratic's 0.002 (``tests/test_analysis_synthetic.py``). Average seeds per
size, and read the bootstrap interval.

A budget whose minimum falls on the first or last grid point is rejected ("edge"): the true minimum
lies outside the measured sizes. L* is the spline's value at N*; D* is log D interpolated linearly
in log N at N* (at fixed C, D is a power of N). Then N*(C), D*(C) and L*(C) are power laws fitted by
ordinary least squares in log space over the accepted budgets. (Porian et al.'s published exponents
also take the median of seed-noise bootstrap minima and weight each budget by their spread; we fit
the point minima, and the harness's bootstrap, runs resampled within budgets, gives intervals.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.interpolate import Akima1DInterpolator

from analysis.fits import CurveFit, fit_paper
from analysis.laws import PowerLaw
from analysis.load import Observations


@dataclass(frozen=True)
class Allocation:
    """y(C) = coefficient * C^exponent (N* or D* against compute)."""

    coefficient: float
    exponent: float

    def __call__(self, compute: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent


@dataclass(frozen=True)
class BudgetMinimum:
    variant: str
    compute: float  # the budget: geometric mean compute of its runs
    n_params: np.ndarray  # sizes measured at this budget (mean over seeds), ascending
    tokens: np.ndarray
    loss: np.ndarray
    status: str  # "ok", "edge" (minimum at the grid's edge), "too few sizes"
    n_opt: float = float("nan")
    d_opt: float = float("nan")
    loss_opt: float = float("nan")


@dataclass(frozen=True)
class IsoflopFit:
    variant: str
    budgets: list[BudgetMinimum]
    n_opt: Allocation | None
    d_opt: Allocation | None
    frontier: CurveFit | None  # L*(C), form "isoflop" (a PowerLaw); its draws: the bootstrap
    notes: list[str] = field(default_factory=list)
    n_opt_exponent_draws: np.ndarray | None = None  # bootstrap distribution of a in N* ∝ C^a

    @property
    def accepted(self) -> list[BudgetMinimum]:
        return [b for b in self.budgets if b.status == "ok"]


def group_budgets(compute: np.ndarray, tolerance: float = 0.1) -> np.ndarray:
    """Integer budget labels: sorted by compute, a new budget starts where log C exceeds the first
    member of the current one by more than ``tolerance`` (0.1 = 10%)."""
    order = np.argsort(compute, kind="stable")
    labels = np.empty(len(compute), dtype=int)
    label, start = -1, -np.inf
    for i in order:
        lc = np.log(compute[i])
        if lc - start > tolerance:
            label, start = label + 1, lc
        labels[i] = label
    return labels


def has_isoflop_design(obs: Observations, min_sizes: int = 3, min_budgets: int = 2,
                       tolerance: float = 0.1) -> bool:
    """Whether some variant has at least ``min_budgets`` budgets with ``min_sizes`` sizes each."""
    for v in obs.arms:
        o = obs.of(v)
        labels = group_budgets(o.compute, tolerance)
        sizes = [len(np.unique(o.n_params[labels == b])) for b in np.unique(labels)]
        if sum(s >= min_sizes for s in sizes) >= min_budgets:
            return True
    return False


OVERSAMPLE = 25  # grid points per gap between measured sizes (Porian et al.'s interp_num_multiplier)


def budget_minimum(variant: str, compute: float, n: np.ndarray, d: np.ndarray, loss: np.ndarray,
                   oversample: int = OVERSAMPLE) -> BudgetMinimum:
    """The loss minimum over log N at one budget: argmin of an Akima spline of log L against log N on
    a log-N grid with ``oversample`` points per gap between sizes (module docstring). ``n`` must be
    distinct sizes (one mean loss each)."""
    if oversample < 2:
        raise ValueError(f"budget_minimum: oversample = {oversample}; fix: use 2 or more grid points per gap")
    order = np.argsort(n)
    n, d, loss = (np.asarray(a, dtype=float)[order] for a in (n, d, loss))
    if not (np.all(np.isfinite(loss)) and np.all(loss > 0) and np.all(n > 0) and np.all(d > 0)):
        raise ValueError(f"isoFLOP budget C = {compute:.3g} ({variant}): loss, N and D must be finite "
                         f"and positive, got loss {loss.tolist()}; fix: drop failed or diverged runs first")
    if len(np.unique(n)) != len(n):
        raise ValueError(f"isoFLOP budget C = {compute:.3g} ({variant}): repeated sizes {n.tolist()}; "
                         "fix: average the seeds of each size first")
    base = dict(variant=variant, compute=compute, n_params=n, tokens=d, loss=loss)
    if len(n) < 3:
        return BudgetMinimum(**base, status="too few sizes")
    log_n = np.log(n)
    grid = np.linspace(log_n[0], log_n[-1], (len(n) - 1) * oversample)
    log_loss = Akima1DInterpolator(log_n, np.log(loss))(grid)
    i = int(np.argmin(log_loss))
    if i == 0 or i == len(grid) - 1:
        return BudgetMinimum(**base, status="edge")
    return BudgetMinimum(**base, status="ok", n_opt=float(np.exp(grid[i])),
                         d_opt=float(np.exp(np.interp(grid[i], log_n, np.log(d)))),
                         loss_opt=float(np.exp(log_loss[i])))


def _allocation(c: np.ndarray, y: np.ndarray) -> Allocation:
    k, b = np.polyfit(np.log(c), np.log(y), 1)
    return Allocation(coefficient=float(np.exp(b)), exponent=float(k))


def _minima(obs: Observations, variant: str, labels: np.ndarray, weights: np.ndarray | None) -> list[BudgetMinimum]:
    """Per budget, the minimum from the (weighted) mean loss per size; sizes with weight 0 are absent."""
    budgets = []
    w_all = np.ones(len(obs)) if weights is None else weights
    for b in np.unique(labels):
        m = (labels == b) & (w_all > 0)
        n_all, d_all, l_all, w = obs.n_params[m], obs.tokens[m], obs.loss[m], w_all[m]
        sizes = np.unique(n_all)
        d = np.array([np.average(d_all[n_all == s], weights=w[n_all == s]) for s in sizes])
        loss = np.array([np.average(l_all[n_all == s], weights=w[n_all == s]) for s in sizes])
        c = float(np.exp(np.log(obs.compute[labels == b]).mean()))
        budgets.append(budget_minimum(variant, c, sizes, d, loss))
    return budgets


def fit_isoflop(obs: Observations, variant: str | None = None, tolerance: float = 0.1) -> IsoflopFit:
    variant = variant or obs.arms[0]
    labels = group_budgets(obs.compute, tolerance)
    budgets = _minima(obs, variant, labels, None)
    ok = [b for b in budgets if b.status == "ok"]
    notes = []
    for status in ("edge", "too few sizes"):
        bad = [f"{b.compute:.3g}" for b in budgets if b.status == status]
        if bad:
            why = {"edge": "minimum at the edge of the size grid",
                   "too few sizes": "fewer than 3 sizes"}[status]
            notes.append(f"{len(bad)} of {len(budgets)} budgets rejected, {why}: {', '.join(bad)}")
    if len(ok) < 2:
        notes.append(f"{len(ok)} budget(s) with an interior minimum: no power laws (need 2)")
        return IsoflopFit(variant, budgets, None, None, None, notes)
    c = np.array([b.compute for b in ok])
    frontier_obs = Observations(
        arm=np.full(len(ok), variant), size=np.array([f"C={x:.3g}" for x in c]),
        run=np.array([f"budget{i}" for i in range(len(ok))]), seed=np.zeros(len(ok), dtype=np.int64),
        n_params=np.array([b.n_opt for b in ok]), tokens=np.array([b.d_opt for b in ok]), compute=c,
        loss=np.array([b.loss_opt for b in ok]), compute_unit=obs.compute_unit, source=obs.source)
    paper = fit_paper(frontier_obs, variant)
    frontier = CurveFit(form="isoflop", variant=variant, law=PowerLaw(A=paper.law.A, alpha=paper.law.alpha),
                        objective=paper.objective, objective_kind=paper.objective_kind, compute=paper.compute,
                        loss=paper.loss, residuals=paper.residuals, stderr=paper.stderr, covariance=paper.covariance)
    return IsoflopFit(variant, budgets, _allocation(c, frontier_obs.n_params), _allocation(c, frontier_obs.tokens),
                      frontier, notes)


def bootstrap_isoflop(fit: IsoflopFit, obs: Observations, n_boot: int, seed: int = 0,
                      tolerance: float = 0.1) -> IsoflopFit:
    """The fit with bootstrap draws of the frontier L*(C) and of the N* exponent: runs resampled within
    each compute budget (a budget keeps its size grid, up to the draw), minima and power laws refitted;
    a replicate with fewer than 2 interior minima gives NaN."""
    if fit.frontier is None or n_boot == 0:
        return fit
    rng = np.random.default_rng(seed)
    labels = group_budgets(obs.compute, tolerance)
    members = [np.flatnonzero(labels == b) for b in np.unique(labels)]
    log_a, alpha, a_n = np.full(n_boot, np.nan), np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    for r in range(n_boot):
        w = np.zeros(len(obs))
        for idx in members:
            np.add.at(w, rng.choice(idx, size=len(idx)), 1.0)
        ok = [b for b in _minima(obs, fit.variant, labels, w) if b.status == "ok"]
        if len(ok) < 2:
            continue
        lc = np.log([b.compute for b in ok])
        slope, icpt = np.polyfit(lc, np.log([b.loss_opt for b in ok]), 1)
        log_a[r], alpha[r] = icpt, -slope
        a_n[r] = np.polyfit(lc, np.log([b.n_opt for b in ok]), 1)[0]
    frontier = replace(fit.frontier, draws=PowerLaw(A=np.exp(log_a), alpha=alpha))
    return replace(fit, frontier=frontier, n_opt_exponent_draws=a_n)
