"""Simulated sweeps with a known multiplier, shaped like real ones: how honest is an interval?

    design = Design(sizes=4, seeds=5)
    table = coverage_table([design], multipliers=(1.0, 1.25), n_trials=400)

Noise model (NoiseModel; defaults measured on the tiny CPU ladder, 20 tokens/param, README "Noise"):
    log L[arm, size, seed] = g(log C[arm, size] + log m_arm + a_size) + z_size + eta[size, seed] + eps[arm, size, seed]
  g        a curved baseline: the quadratic in log C fitted to the committed single-seed demo's
           baseline (its local exponent steepens from 0.07 to 0.12 over d2-d5), extended to more sizes
  z_size   the size's own deviation from the smooth curve, shared by every run at that size
  eta      seed noise shared by the arms of one (size, seed): same initial weights, same batches
  eps      each run's own noise (chaotic AttnRes training; independent across arms)
  C[arm]   the arm's compute at the baseline's token budget, including its FLOP overhead per token
  a_size   the arm's own deviation of log m at that size (a multiplier that varies with size; 0 for the
           baseline): drawn once per size per sweep, independent of the baseline's noise (arm_size)

With arm_size > 0 there are two truths (equal when arm_size = 0): coverage(estimand="sizes", the
default) asks about the mean over the design's sizes of the per-size log m, log m_arm + mean(a_size),
the average multiplier over the sizes swept; estimand="population" asks about log m_arm, the mean of
the distribution the sizes' multipliers come from, which an interval must cover to be carried to
sizes not swept (what analysis.shift's sizes-as-replicates interval is for).

A trial draws one sweep and asks each interval method whether its interval covers the truth. The
oracle knows g: it converts each unit's gap with the true curve and takes a t interval over units;
it is the yardstick for interval width (a method cannot be much narrower without under-covering).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from analysis.load import Observations
from analysis.multiplier import paper_multipliers
from analysis.shift import ShiftError, fit_shift

# the committed demo's baseline (results/demo, 4 sizes, one seed) as log L = sum c_k (log C - X0)^k
DEMO_CURVE = (0.82618, -0.095509, -0.0097055)
DEMO_X0 = -19.1106  # log of the demo's mean compute in PF-days
DEMO_LOG_C_SMALLEST = -20.562  # d2
DEMO_LOG_STEP = 0.907  # mean log compute step between neighbouring tiny-ladder sizes (d2-d5)


@dataclass(frozen=True)
class NoiseModel:
    """Standard deviations of log L (for L ~ 2.2 nats, 0.01 in log is ~0.022 nats)."""

    size: float = 0.004  # shared by every run of a size
    shared: float = 0.008  # shared by the arms of one (size, seed)
    per_run: float = 0.007  # each run's own: the paired gap's sd is per_run * sqrt(2) ~ 0.022 nats
    arm_size: float = 0.0  # sd of the arm's own per-size deviation of log m (log compute, not log L)


# per-run noise giving the demo's paired sd: the within-size sd of d[u] is ~0.083 in log m over 3 sizes
# (0.11 with the default 0.007), results/demo-full measured 0.085 (analysis.power.DEFAULT_NOISE["tiny"])
DEMO_PAIRED_NOISE = NoiseModel(per_run=0.0052)


@dataclass(frozen=True)
class Design:
    sizes: int
    seeds: int
    overhead: float = 1.02  # the arm's FLOPs per token over the baseline's (Block AttnRes on the tiny ladder)
    log_c_smallest: float = DEMO_LOG_C_SMALLEST
    log_step: float = DEMO_LOG_STEP
    curve: tuple[float, ...] = DEMO_CURVE
    x0: float = DEMO_X0
    noise: NoiseModel = field(default_factory=NoiseModel)

    @property
    def label(self) -> str:
        return f"{self.sizes} sizes x {self.seeds} seed{'s' if self.seeds > 1 else ''}"

    def g(self, x: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(np.asarray(x) - self.x0, self.curve)

    def g_inverse(self, y: np.ndarray, start: np.ndarray) -> np.ndarray:
        slope = np.polynomial.polynomial.polyder(self.curve)
        x = np.array(start, dtype=float, copy=True)
        for _ in range(60):
            step = (self.g(x) - y) / np.polynomial.polynomial.polyval(x - self.x0, slope)
            x -= step
            if np.all(np.abs(step) < 1e-13):
                break
        return x


def arm_offsets(design: Design, rng: np.random.Generator) -> np.ndarray:
    """a_size: the arm's per-size deviations of log m; zeros, drawing nothing, when arm_size = 0 (so the
    random stream, and every result without them, is unchanged)."""
    if design.noise.arm_size == 0:
        return np.zeros(design.sizes)
    return rng.normal(0.0, design.noise.arm_size, design.sizes)


def simulate(design: Design, multiplier: float, rng: np.random.Generator,
             offsets: np.ndarray | None = None) -> Observations:
    """One sweep: a baseline and an arm "arm" with the given true multiplier, every (size, seed); the
    arm's log m at size i is log(multiplier) + offsets[i] (drawn by arm_offsets when not given)."""
    nz = design.noise
    S, K = design.sizes, design.seeds
    offsets = arm_offsets(design, rng) if offsets is None else np.asarray(offsets, dtype=float)
    x_base = design.log_c_smallest + design.log_step * np.arange(S)
    z = rng.normal(0.0, nz.size, S)[:, None]
    eta = rng.normal(0.0, nz.shared, (S, K))
    rows = []
    for arm, log_m, x in (("baseline", np.zeros(S), x_base),
                          ("arm", np.log(multiplier) + offsets, x_base + np.log(design.overhead))):
        y = design.g(x + log_m)[:, None] + z + eta + rng.normal(0.0, nz.per_run, (S, K))
        for i in range(S):
            for k in range(K):
                rows.append((arm, f"s{i}", f"{arm}-s{i}-{k}", k, float(np.exp(x[i])), float(np.exp(y[i, k]))))
    arm, size, run, seed, c, loss = (np.array(col) for col in zip(*rows))
    nan = np.full(len(rows), np.nan)
    return Observations(arm=arm, size=size, run=run, seed=seed.astype(np.int64), n_params=nan, tokens=nan,
                        compute=c.astype(float), loss=loss.astype(float))


def oracle_interval(obs: Observations, design: Design, level: float) -> tuple[float, float, float]:
    """(estimate, low, high) in log m from the true curve: each unit's gap converted exactly, t over units."""
    b, a = obs.of("baseline"), obs.of("arm")
    key = lambda o: np.char.add(o.size.astype(str), o.seed.astype(str))
    order_b, order_a = np.argsort(key(b)), np.argsort(key(a))
    xb, yb = np.log(b.compute[order_b]), np.log(b.loss[order_b])
    xa, ya = np.log(a.compute[order_a]), np.log(a.loss[order_a])
    d = design.g_inverse(ya, xa) - design.g_inverse(yb, xb) - (xa - xb)
    n = len(d)
    half = stats.t.ppf((1 + level) / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


@dataclass(frozen=True)
class CoverageRow:
    design: str
    multiplier: float
    method: str  # "shift" (the headline) or "paper" (separate fits read at the largest compute)
    n_trials: int
    coverage: float  # fraction of trials whose interval held the truth
    median_half_width: float  # in log m
    oracle_coverage: float
    oracle_median_half_width: float
    mean_error: float  # mean of (estimate - truth), log m
    failed: int  # trials where the method gave no interval

    @property
    def width_ratio(self) -> float:
        return self.median_half_width / self.oracle_median_half_width


def _interval(obs: Observations, method: str, level: float) -> tuple[float, float, float] | None:
    """(estimate, low, high) in log m of one method, None when it gives no interval."""
    if method == "shift":
        try:
            e = fit_shift(obs, "baseline", level).arms["arm"]
        except (ShiftError, KeyError):
            return None
        return e.log_estimate, e.log_low, e.log_high
    vm = paper_multipliers(obs, "arm", "baseline", level)
    if vm is None or not vm.at_largest.has_interval:
        return None
    iv = vm.at_largest
    return float(np.log(iv.estimate)), float(np.log(iv.low)), float(np.log(iv.high))


def coverage(design: Design, multiplier: float, n_trials: int, level: float = 0.9, seed: int = 0,
             method: str = "shift", width_scale: float = 1.0, estimand: str = "sizes") -> CoverageRow:
    """Coverage and width of one interval method over ``n_trials`` simulated sweeps of ``design``.
    ``width_scale`` rescales every interval about its estimate (to show a check can fail).
    ``estimand``: "sizes" (the truth is the mean of the per-size log m over the design's sizes, module
    docstring) or "population" (log(multiplier), the mean over all sizes the per-size deviations are
    drawn from); the two are equal when noise.arm_size = 0."""
    if estimand not in ("sizes", "population"):
        raise ValueError(f"estimand {estimand!r}: use 'sizes' or 'population'")
    rng = np.random.default_rng([seed, design.sizes, design.seeds, int(round(multiplier * 1000))])
    hit = ohit = failed = 0
    half, ohalf, err = [], [], []
    for _ in range(n_trials):
        offsets = arm_offsets(design, rng)
        truth = float(np.log(multiplier) + (offsets.mean() if estimand == "sizes" else 0.0))
        obs = simulate(design, multiplier, rng, offsets)
        est, lo, hi = oracle_interval(obs, design, level)
        ohit += lo <= truth <= hi
        ohalf.append((hi - lo) / 2)
        got = _interval(obs, method, level)
        if got is None:
            failed += 1
            continue
        est, lo, hi = got
        lo, hi = est - width_scale * (est - lo), est + width_scale * (hi - est)
        hit += lo <= truth <= hi
        half.append((hi - lo) / 2)
        err.append(est - truth)
    ok = n_trials - failed
    return CoverageRow(design=design.label, multiplier=multiplier, method=method, n_trials=n_trials,
                       coverage=hit / max(ok, 1), median_half_width=float(np.median(half)) if half else np.nan,
                       oracle_coverage=ohit / n_trials, oracle_median_half_width=float(np.median(ohalf)),
                       mean_error=float(np.mean(err)) if err else np.nan, failed=failed)


STANDARD_DESIGNS = (Design(sizes=4, seeds=1), Design(sizes=4, seeds=5), Design(sizes=6, seeds=2))


def coverage_table(designs=STANDARD_DESIGNS, multipliers=(1.0, 1.25), n_trials: int = 400, level: float = 0.9,
                   seed: int = 0, method: str = "shift") -> list[CoverageRow]:
    return [coverage(d, m, n_trials, level, seed, method) for d in designs for m in multipliers]
