"""Progress of runs and sweeps: tokens/s and ETA, for `attnres launch` and `attnres status`.

A run's rate is the tokens/s of its latest metrics row (training writes one every log_every_steps).
A sweep's ETA is the model FLOPs still to train (every unfinished run's remaining tokens x its
FLOPs/token) over the FLOP rate of the runs training now: it assumes the sweep keeps running as
many runs at once as it does at this moment, and says so ("at the current rate").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def tail_row(path: Path) -> dict[str, Any] | None:
    """The last complete metrics row (reads only the file's end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    for raw in reversed(lines[:-1] if lines and lines[-1] else lines):
        try:
            return json.loads(raw)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class RunProgress:
    tokens: int
    target: int
    tokens_per_s: float | None  # latest row's rate (None: no row yet)
    flops_per_token: float
    training: bool  # a process trains it now (only then does its rate count for the sweep)

    @property
    def remaining_flops(self) -> float:
        return max(0, self.target - self.tokens) * self.flops_per_token

    @property
    def eta_s(self) -> float | None:
        if not self.training or not self.tokens_per_s:
            return None
        return max(0, self.target - self.tokens) / self.tokens_per_s


def run_progress(run_dir: Path, target: int, flops_per_token: float, training: bool,
                 row: dict[str, Any] | None = None) -> RunProgress:
    row = row if row is not None else tail_row(run_dir / "metrics.jsonl")
    tokens = int(row["tokens"]) if row else 0
    rate = float(row["tokens_per_s"]) if row and row.get("tokens_per_s") else None
    return RunProgress(tokens, target, rate, flops_per_token, training)


@dataclass(frozen=True)
class SweepProgress:
    tokens_per_s: float  # all runs training now
    flops_per_s: float
    remaining_flops: float
    training: int

    @property
    def eta_s(self) -> float | None:
        return self.remaining_flops / self.flops_per_s if self.flops_per_s > 0 else None

    def describe(self) -> str:
        if self.remaining_flops <= 0:
            return "nothing left to train"
        if self.eta_s is None:
            return "no run training now: no rate, no ETA"
        return (f"{fmt_rate(self.tokens_per_s)} over {self.training} run(s), ETA {fmt_duration(self.eta_s)} at the "
                "current rate")


def sweep_progress(runs: list[RunProgress], unfinished: list[bool]) -> SweepProgress:
    """``unfinished[i]``: run i still has tokens to train (not done, diverged or cancelled)."""
    live = [r for r in runs if r.training and r.tokens_per_s]
    return SweepProgress(tokens_per_s=sum(r.tokens_per_s or 0 for r in live),
                         flops_per_s=sum((r.tokens_per_s or 0) * r.flops_per_token for r in live),
                         remaining_flops=sum(r.remaining_flops for r, u in zip(runs, unfinished) if u),
                         training=len(live))


def fmt_rate(tok_s: float | None) -> str:
    if not tok_s:
        return "-"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if tok_s >= scale:
            return f"{tok_s / scale:.3g}{unit} tok/s"
    return f"{tok_s:.3g} tok/s"


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"
