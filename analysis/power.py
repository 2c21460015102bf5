"""Power before spending: what multiplier can a design resolve, and how many seeds would it take?

    noise = noise_from_estimate(fit.arms["block"])        # or DEFAULT_NOISE[ladder]
    rows = design_power(["block", "full"], sizes=3, seeds=5, noise={"block": noise, ...})

The shift estimate (analysis.shift) is a mean of n paired log multipliers d[u], one per (size, seed)
unit, with sd sigma per unit (within-unit noise converted to log compute). Its 90% interval is
log m +- t(0.95, n - 1) sigma / sqrt(n), so:

    expected half-width      h = t(0.95, n-1) sigma c4(n) / sqrt(n)   (c4: the mean of a sample sd / sigma)
    minimum detectable m     exp((t(0.95, n-1) + t(0.80, n-1)) sigma / sqrt(n)): the smallest true
                             multiplier whose 90% interval excludes 1 in 80% of sweeps (one-sided
                             power of the two-sided interval; the baseline curve's own uncertainty,
                             small at these noise levels, is left out)
    seeds to resolve m*      the fewest seeds per size with minimum detectable m <= m*

sigma comes from results (the paired units' seed spread: pooled within sizes when sizes have
seeds, else the scatter across sizes, which also holds any size-to-size differences) or from a
documented default per ladder (DEFAULT_NOISE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import gammaln

from analysis.shift import ShiftEstimate

LEVEL = 0.9
POWER = 0.8
TARGETS = (1.1, 1.25)
MAX_SEEDS = 256


@dataclass(frozen=True)
class NoiseLevel:
    sd: float  # sd of one paired unit's log multiplier
    dof: int  # degrees of freedom of that estimate (0: a documented default)
    source: str  # where it comes from, in words


# Measured: the tiny ladder's committed demo (results/demo: baseline + Block, paired seeds; README
# "Noise"), and the paper's Table 2 (Block vs baseline, one run per size: the scatter of the five
# per-size log multipliers, which also holds any real size-to-size differences).
DEFAULT_NOISE = {
    "tiny": NoiseLevel(0.085, 0, "default for the tiny ladder: paired-unit sd of log m measured on results/demo-full "
                                 "(Block vs baseline, pooled within-size over 3 sizes x 5 seeds; Full measured 0.17)"),
    "deep": NoiseLevel(0.085, 0, "default for the deep ladder: the tiny ladder's (same CPU scale and width)"),
    "paper": NoiseLevel(0.033, 0, "default for the paper's ladder: scatter of the per-size Block log multipliers "
                                  "of the paper's Table 2 (one run per size)"),
}


def default_noise(ladder: str) -> NoiseLevel:
    if ladder in DEFAULT_NOISE:
        return DEFAULT_NOISE[ladder]
    d = DEFAULT_NOISE["paper"]
    return NoiseLevel(d.sd, 0, f"no measured default for ladder {ladder!r}: the paper ladder's ({d.sd}); "
                               "pass --noise-from SWEEP with results of a similar ladder")


def noise_from_estimate(est: ShiftEstimate, source: str = "") -> NoiseLevel:
    """The per-unit sd of an arm's paired log multipliers (module docstring)."""
    d = np.asarray(est.unit_deltas, dtype=float)
    sizes = np.array([p.size for p in est.per_size for _ in range(p.n_seeds)])
    labels = np.unique(sizes)
    df_w = len(d) - len(labels)
    if df_w >= 2:
        resid = np.concatenate([d[sizes == s] - d[sizes == s].mean() for s in labels])
        sd, dof, how = float(np.sqrt(resid @ resid / df_w)), df_w, "pooled within-size seed spread"
    else:
        sd, dof, how = float(d.std(ddof=1)), len(d) - 1, "scatter across sizes (one seed)"
    return NoiseLevel(sd, dof, f"{source + ': ' if source else ''}{est.arm} vs {est.baseline}, {how} of "
                               f"{len(d)} paired units ({dof} dof)")


def half_width(n_units: int, sd: float, level: float = LEVEL) -> float:
    """The mean half-width of the t interval: t sd c4(n) / sqrt(n), c4(n) = E[s] / sd (a sample sd of
    few units is smaller than sd on average: c4(4) = 0.92)."""
    if n_units < 2:
        return np.inf
    c4 = np.sqrt(2.0 / (n_units - 1)) * np.exp(gammaln(n_units / 2) - gammaln((n_units - 1) / 2))
    return float(stats.t.ppf((1 + level) / 2, n_units - 1) * sd * c4 / np.sqrt(n_units))


def detectable(n_units: int, sd: float, level: float = LEVEL, power: float = POWER) -> float:
    """Minimum detectable multiplier (module docstring); inf with fewer than 2 units."""
    if n_units < 2:
        return np.inf
    k = stats.t.ppf((1 + level) / 2, n_units - 1) + stats.t.ppf(power, n_units - 1)
    return float(np.exp(k * sd / np.sqrt(n_units)))


def seeds_needed(target: float, sizes: int, sd: float, lost_seeds: int = 0) -> int | None:
    """Fewest seeds per size whose design detects ``target``; ``lost_seeds`` of them only choose
    hyperparameters (analysis.select). None beyond MAX_SEEDS."""
    for k in range(lost_seeds + 1, MAX_SEEDS + 1):
        if detectable(sizes * (k - lost_seeds), sd) <= target:
            return k
    return None


@dataclass(frozen=True)
class PowerRow:
    arm: str
    sizes: int
    seeds: int  # per size, as planned
    n_units: int  # paired units that measure the effect
    noise: NoiseLevel
    half_width_log: float
    detectable: float
    seeds_for: dict[float, int | None]  # target multiplier -> seeds per size


def design_power(arms: list[str], sizes: int, seeds: int, noise: dict[str, NoiseLevel],
                 lost_seeds: int = 0) -> list[PowerRow]:
    """One row per arm; ``lost_seeds``: seeds spent choosing hyperparameters (1 with an lr axis)."""
    n = sizes * max(0, seeds - lost_seeds)
    return [PowerRow(arm=a, sizes=sizes, seeds=seeds, n_units=n, noise=noise[a],
                     half_width_log=half_width(n, noise[a].sd), detectable=detectable(n, noise[a].sd),
                     seeds_for={t: seeds_needed(t, sizes, noise[a].sd, lost_seeds) for t in TARGETS})
            for a in arms]


def format_power(rows: list[PowerRow], title: str) -> list[str]:
    """Plain-text lines (also used in report.md, as a list)."""
    out = [title]
    for r in rows:
        need = ", ".join(f"{t:g}x with {k if k is not None else f'> {MAX_SEEDS}'} seed{'s' if k != 1 else ''}/size"
                         for t, k in r.seeds_for.items())
        out.append(f"  {r.arm}: {r.sizes} sizes x {r.seeds} seed{'s' if r.seeds != 1 else ''} ({r.n_units} paired units): "
                   "expected 90% half-width "
                   f"{r.half_width_log:.3f} in log m; detects m >= {r.detectable:.3f} (80% power); "
                   f"would detect {need}")
        out.append(f"    (noise sd {r.noise.sd:.3f} in log m per paired unit: {r.noise.source})")
    return out


def plan_power(arms: list[str], n_cells: int, seeds: int, lost_seeds: int, ladder: str,
               measured: dict[str, NoiseLevel]) -> list[str]:
    """`attnres plan --power`: text lines for a planned design. Arms without a measured noise level
    take another arm's measurement (the first), else the ladder's default."""
    fallback = next(iter(measured.values()), None) or default_noise(ladder)
    noise = {}
    for a in arms:
        if a in measured:
            noise[a] = measured[a]
        else:
            n = fallback
            noise[a] = NoiseLevel(n.sd, n.dof, n.source if n.dof == 0 else f"{n.source} (no pairs of {a} there)")
    rows = design_power(arms, n_cells, seeds, noise, lost_seeds)
    title = (f"power of this design (90% confidence, 80% power; {n_cells} size/budget cells x {seeds} "
             f"seed{'s' if seeds != 1 else ''}"
             + (f", {lost_seeds} seed choosing hyperparameters" if lost_seeds else "") + "):")
    return format_power(rows, title)
