"""IsoFLOP analysis (Hoffmann et al. 2022, "Approach 2"), with a local fit at each minimum.

    iso = fit_isoflop(obs.of("baseline"))
    iso.n_opt.exponent    # a in N*(C) = k C^a
    iso.loss_opt          # L*(C) = A C^-alpha, a PowerLaw (so multipliers work on the frontier)

Per compute budget (runs whose compute agrees within ``budget_tolerance``, in log), the minimum of
loss over log N comes from a quadratic fitted to the measured minimum and its nearest neighbours
(up to two on each side), not from one parabola through the whole curve: a global parabola is biased
by the curve's asymmetry far from the minimum, which moves the allocation exponent by up to ~0.1 on
published data (Porian et al. 2024, "Resolving discrepancies in compute-optimal scaling", fit a
spline near the minimum for the same reason). A budget whose lowest loss is at its smallest or
largest size is rejected ("edge"): the true minimum is outside the grid. Then N*(C), D*(C) and
L*(C) are power laws fitted by least squares in log space over the accepted budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from analysis.fits import CurveFit, PowerLaw, fit_paper
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
    status: str  # "ok", "edge" (minimum at the grid's edge), "not convex", "too few sizes"
    n_opt: float = float("nan")
    d_opt: float = float("nan")
    loss_opt: float = float("nan")
    window: int = 0  # points used by the local fit


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
    for v in obs.variants:
        o = obs.of(v)
        labels = group_budgets(o.compute, tolerance)
        sizes = [len(np.unique(o.n_params[labels == b])) for b in np.unique(labels)]
        if sum(s >= min_sizes for s in sizes) >= min_budgets:
            return True
    return False


def budget_minimum(variant: str, compute: float, n: np.ndarray, d: np.ndarray, loss: np.ndarray,
                   half_window: int = 2, counts: np.ndarray | None = None) -> BudgetMinimum:
    """The loss minimum over log N at one budget by a local quadratic (module docstring).
    ``counts``: how many runs each size stands for (bootstrap replicates weight the quadratic)."""
    order = np.argsort(n)
    n, d, loss = n[order], d[order], loss[order]
    counts = np.ones(len(n)) if counts is None else np.asarray(counts, dtype=float)[order]
    base = dict(variant=variant, compute=compute, n_params=n, tokens=d, loss=loss)
    if len(n) < 3:
        return BudgetMinimum(**base, status="too few sizes")
    i = int(np.argmin(loss))
    if i == 0 or i == len(n) - 1:
        return BudgetMinimum(**base, status="edge")
    lo, hi = max(0, i - half_window), min(len(n), i + half_window + 1)
    x, y = np.log(n[lo:hi]), loss[lo:hi]
    c2, c1, c0 = np.polyfit(x, y, 2, w=np.sqrt(counts[lo:hi]))
    if c2 <= 0:
        return BudgetMinimum(**base, status="not convex", window=hi - lo)
    x_opt = float(np.clip(-c1 / (2 * c2), x[0], x[-1]))
    if c0 + c1 * x_opt + c2 * x_opt ** 2 <= 0:  # a degenerate local fit (noise): no usable minimum
        return BudgetMinimum(**base, status="not convex", window=hi - lo)
    slope, icpt = np.polyfit(x, np.log(d[lo:hi]), 1)  # log D is (near) linear in log N at fixed C
    return BudgetMinimum(**base, status="ok", n_opt=float(np.exp(x_opt)), d_opt=float(np.exp(icpt + slope * x_opt)),
                         loss_opt=float(c0 + c1 * x_opt + c2 * x_opt ** 2), window=hi - lo)


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
        cnt = np.array([w[n_all == s].sum() for s in sizes])
        d = np.array([np.average(d_all[n_all == s], weights=w[n_all == s]) for s in sizes])
        loss = np.array([np.average(l_all[n_all == s], weights=w[n_all == s]) for s in sizes])
        c = float(np.exp(np.log(obs.compute[labels == b]).mean()))
        budgets.append(budget_minimum(variant, c, sizes, d, loss, counts=cnt))
    return budgets


def fit_isoflop(obs: Observations, variant: str | None = None, tolerance: float = 0.1) -> IsoflopFit:
    variant = variant or obs.variants[0]
    labels = group_budgets(obs.compute, tolerance)
    budgets = _minima(obs, variant, labels, None)
    ok = [b for b in budgets if b.status == "ok"]
    notes = []
    for status in ("edge", "not convex", "too few sizes"):
        bad = [f"{b.compute:.3g}" for b in budgets if b.status == status]
        if bad:
            why = {"edge": "minimum at the edge of the size grid",
                   "not convex": "no convex local fit at the minimum",
                   "too few sizes": "fewer than 3 sizes"}[status]
            notes.append(f"{len(bad)} of {len(budgets)} budgets rejected, {why}: {', '.join(bad)}")
    if len(ok) < 2:
        notes.append(f"{len(ok)} budget(s) with an interior minimum: no power laws (need 2)")
        return IsoflopFit(variant, budgets, None, None, None, notes)
    c = np.array([b.compute for b in ok])
    frontier_obs = Observations(
        variant=np.full(len(ok), variant), size=np.array([f"C={x:.3g}" for x in c]),
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
