"""The device-time multiplier: what the compute multiplier is worth in the hours a user pays for.

The FLOP multiplier m says the baseline needs m times the *compute* to reach the arm's loss. Time is
compute over throughput, so the baseline needs

    m_time = m x (FLOP/s of the arm / FLOP/s of the baseline)
           = m x (time per token of the baseline / of the arm) x (FLOPs per token of the arm / of the baseline)

times the device time. The last factor is there because m is measured at the arm's own compute, which
already counts the arm's extra FLOPs per token; dropping it would count that overhead twice. Throughput
is each run's measured mean tokens/s (median over seeds per size); the factor is the geometric mean over
the sizes both arms ran (the shift estimate is an average over the same sizes), and every size's factor is
listed, since overheads shrink as models widen. Labelled with the device the runs were measured on: a
ratio from one CPU says little about a GPU. The interval carries the multiplier's uncertainty only, not
the throughput's (the per-size factors show its spread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.multiplier import Interval

NEEDED = ("arm", "cell", "tokens_per_s", "flops_per_token", "device")


@dataclass(frozen=True)
class SizeSpeed:
    size: str
    tokens_per_s_baseline: float  # median over seeds
    tokens_per_s_arm: float
    flops_ratio: float  # FLOPs per token, arm / baseline

    @property
    def time_factor(self) -> float:
        """FLOP/s of the arm over the baseline's: m_time / m at this size."""
        return self.flops_ratio * self.tokens_per_s_arm / self.tokens_per_s_baseline


@dataclass(frozen=True)
class DeviceTime:
    arm: str
    baseline: str
    device: str  # where the throughput was measured
    per_size: list[SizeSpeed]
    time_factor: float  # geometric mean of the per-size factors
    multiplier: Interval  # m x time_factor, interval scaled alike


def device_time(runs: pd.DataFrame, arm: str, baseline: str, flop_multiplier: Interval) -> DeviceTime | None:
    """None when the runs lack throughput (e.g. a foreign table) or the arms share no size."""
    if not set(NEEDED) <= set(runs.columns):
        return None
    ok = runs[np.isfinite(runs["tokens_per_s"].astype(float)) & (runs["tokens_per_s"].astype(float) > 0)]
    med = ok.groupby(["arm", "cell"])[["tokens_per_s", "flops_per_token"]].median()
    if baseline not in med.index.get_level_values(0) or arm not in med.index.get_level_values(0):
        return None
    b, a = med.loc[baseline], med.loc[arm]
    sizes = [s for s in b.index if s in a.index]
    if not sizes:
        return None
    order = ok[ok["arm"] == baseline].groupby("cell")["flops_per_token"].median().sort_values().index
    per_size = [SizeSpeed(str(s), float(b.loc[s, "tokens_per_s"]), float(a.loc[s, "tokens_per_s"]),
                          float(a.loc[s, "flops_per_token"] / b.loc[s, "flops_per_token"]))
                for s in order if s in sizes]
    factor = float(np.exp(np.mean(np.log([p.time_factor for p in per_size]))))
    devices = sorted(set(ok[ok["arm"].isin([arm, baseline])]["device"].astype(str)))
    m = flop_multiplier
    scaled = Interval(m.estimate * factor, m.low * factor, m.high * factor, m.level,
                      m.method + "; scaled by the measured throughput factor (its own noise not included)")
    return DeviceTime(arm, baseline, "; ".join(devices) or "unknown device", per_size, factor, scaled)
