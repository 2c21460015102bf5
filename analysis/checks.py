"""Honesty checks: how far the fits can be trusted.

    leave_largest_out  refit each variant without its largest size and predict that size's loss:
                       the extrapolation error of the law the multiplier is read from
    seed_spread        with several seeds, the standard deviation of the loss per (variant, size),
                       next to the same-size gaps it has to resolve
    ci_warnings        a headline whose interval includes 1 is not a measured advantage
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.fits import fit_form, fit_saturating_floor
from analysis.load import Observations

MIN_DISTINCT = {"paper": 2, "saturating": 5}  # distinct compute values a fit needs to mean something


@dataclass(frozen=True)
class ExtrapolationCheck:
    variant: str
    form: str
    held_out: str  # size label of the held-out (largest) size
    compute: float
    observed: float  # mean loss at the held-out size
    predicted: float  # the law fitted without it, at its compute

    @property
    def error(self) -> float:
        """predicted - observed, nats/token (> 0: the fit is pessimistic there)."""
        return self.predicted - self.observed

    @property
    def relative_error(self) -> float:
        return self.error / self.observed


@dataclass(frozen=True)
class SeedSpread:
    variant: str
    size: str
    n_seeds: int
    mean: float
    std: float  # sample standard deviation (ddof 1), nats/token


def leave_largest_out(obs: Observations, form: str, huber_delta: float = 1e-3,
                      floor: float | None = None) -> list[ExtrapolationCheck]:
    out = []
    for v in obs.arms:
        o = obs.of(v)
        order = o.size_order()
        largest = order[-1]
        rest = o.take(o.size != largest)
        if len(np.unique(rest.compute)) < (2 if floor is not None else MIN_DISTINCT[form]):
            continue
        try:
            fit = (fit_saturating_floor(rest, floor, v) if form == "saturating" and floor is not None
                   else fit_form(form, rest, v, huber_delta))
            law = fit.law
        except ValueError:
            continue
        held = o.take(o.size == largest)
        c = float(held.compute.mean())
        out.append(ExtrapolationCheck(v, form, largest, c, float(held.loss.mean()), float(law.loss(c))))
    return out


def seed_spread(obs: Observations) -> list[SeedSpread]:
    out = []
    for v in obs.arms:
        o = obs.of(v)
        for s in o.size_order():
            m = o.size == s
            runs = np.unique(o.run[m])
            if len(runs) > 1:
                per_run = np.array([o.loss[m & (o.run == r)].mean() for r in runs])
                out.append(SeedSpread(v, s, len(runs), float(per_run.mean()), float(per_run.std(ddof=1))))
    return out


def ci_warnings(headlines: list[Any]) -> list[str]:
    """A multiplier whose interval includes 1 is not a measured advantage (nor a measured loss)."""
    warnings = []
    for h in headlines:
        iv = h.value
        if iv.includes_one:
            warnings.append(f"{h.arm} vs {h.baseline} ({h.form}): the {iv.level:.0%} interval of the multiplier "
                            f"[{iv.low:.3f}, {iv.high:.3f}] includes 1: no measured compute advantage at this noise level")
    return warnings
