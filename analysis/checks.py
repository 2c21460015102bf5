"""Honesty checks: how far the fits can be trusted.

    leave_largest_out  refit each variant without its largest size and predict that size's loss:
                       the extrapolation error of the law the multiplier is read from
    seed_spread        with several seeds, the standard deviation of the loss per (variant, size),
                       next to the same-size gaps it has to resolve
    ci_warnings        a multiplier whose interval includes 1 is not a measured advantage
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.fits import fit_form
from analysis.load import Observations
from analysis.multiplier import VariantMultipliers

MIN_DISTINCT = {"paper": 2, "saturating": 4}  # distinct compute values a fit needs to mean something


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


def leave_largest_out(obs: Observations, form: str, huber_delta: float = 1e-3) -> list[ExtrapolationCheck]:
    out = []
    for v in obs.variants:
        o = obs.of(v)
        order = o.size_order()
        largest = order[-1]
        rest = o.take(o.size != largest)
        if len(np.unique(rest.compute)) < MIN_DISTINCT[form]:
            continue
        try:
            law = fit_form(form, rest, v, huber_delta).law
        except ValueError:
            continue
        held = o.take(o.size == largest)
        c = float(held.compute.mean())
        out.append(ExtrapolationCheck(v, form, largest, c, float(held.loss.mean()), float(law.loss(c))))
    return out


def seed_spread(obs: Observations) -> list[SeedSpread]:
    out = []
    for v in obs.variants:
        o = obs.of(v)
        for s in o.size_order():
            m = o.size == s
            runs = np.unique(o.run[m])
            if len(runs) > 1:
                per_run = np.array([o.loss[m & (o.run == r)].mean() for r in runs])
                out.append(SeedSpread(v, s, len(runs), float(per_run.mean()), float(per_run.std(ddof=1))))
    return out


def ci_warnings(mults: list[VariantMultipliers]) -> list[str]:
    warnings = []
    for vm in mults:
        for label, m in (("at the largest compute", vm.at_largest), ("shared-exponent", vm.shared)):
            if m is not None and m.value.includes_one:
                iv = m.value
                warnings.append(f"{vm.variant} vs {vm.baseline} ({m.form} fit, {label}): the {iv.level:.0%} "
                                f"interval of the multiplier [{iv.low:.3f}, {iv.high:.3f}] includes 1: no "
                                "measured compute advantage at this noise level")
    return warnings


def seed_warning(spread: list[SeedSpread], mults: list[VariantMultipliers]) -> list[str]:
    """Warn when the seed noise is comparable to the same-size gaps the multiplier rests on."""
    if not spread:
        return []
    noise = float(np.median([s.std for s in spread]))
    gaps = [abs(p.gap) for vm in mults for p in vm.per_size]
    if gaps and noise > 0.5 * float(np.median(gaps)):
        return [f"seed noise (median std {noise:.4f} nats) is over half the median same-size gap "
                f"({float(np.median(gaps)):.4f} nats): per-size multipliers are noise-dominated"]
    return []
