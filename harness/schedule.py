"""What step s of a run sees: its learning rate (``Schedule``) and its batch (``Batches``), and the
fixed validation slice every run of the same data and context shares.

The batch of step s is drawn from a generator seeded with (seed, s), so the data position is the
step itself: a resumed run reads exactly the batches an uninterrupted one reads, for any world size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from records import steps
from records.config import ConfigError, RunSpec

# ----------------------------------------------------------------------------------------------
# schedule


@dataclass(frozen=True)
class Schedule:
    """LR as a function of the step; ends exactly at the run's own budget (total_steps)."""

    lr: float
    total_steps: int
    warmup_steps: int
    kind: str  # records.choices.Schedule's value (plain str: the checkpoint stores vars(schedule))
    min_ratio: float
    decay_steps: int  # WSD

    def __call__(self, step: int) -> float:  # step: 0-based index of the update being made
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        lo = self.lr * self.min_ratio
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine":
            span = max(1, self.total_steps - 1 - self.warmup_steps)
            p = min(1.0, (step - self.warmup_steps) / span)
            return lo + (self.lr - lo) * 0.5 * (1 + math.cos(math.pi * p))
        # wsd: constant, then linear decay over the final decay_steps to lr * min_ratio
        start = self.total_steps - self.decay_steps
        if step < start or self.decay_steps == 0:
            return self.lr
        p = (step - start + 1) / self.decay_steps
        return self.lr + (lo - self.lr) * p


def tokens_per_step(spec: RunSpec) -> int:
    return steps.tokens_per_step(spec.train.batch_size, spec.model.seq_len)


def make_schedule(spec: RunSpec) -> Schedule:
    """The run's schedule over the steps records.steps counts (the planner and sweeps count the same)."""
    tc = spec.train
    plan = steps.step_plan(tc, spec.model.seq_len)
    return Schedule(tc.lr, plan.total, plan.warmup, str(tc.schedule), tc.min_lr_ratio, plan.decay)


# ----------------------------------------------------------------------------------------------
# data


class Batches:
    """Batch of step s = batch_size windows of seq_len + 1 tokens at offsets drawn by a generator
    seeded with (seed, s). Rank r of w takes rows [r * B/w, (r+1) * B/w)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        if len(tokens) < seq_len + 2:
            raise ConfigError(f"data: the training split has {len(tokens)} tokens, fewer than seq_len + 2; "
                              "fix: prepare more data or lower seq_len", field="data")
        self.tokens, self.T, self.B, self.seed = tokens, seq_len, batch_size, seed

    def offsets(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        return rng.integers(0, len(self.tokens) - self.T - 1, size=self.B)

    def window(self, step: int, rows: slice) -> torch.Tensor:
        """rows x (seq_len + 1) token ids (int64, CPU): inputs are [:, :-1], targets [:, 1:]."""
        offs = self.offsets(step)[rows]
        return torch.from_numpy(np.stack([np.asarray(self.tokens[o:o + self.T + 1], dtype=np.int64) for o in offs]))

    def get(self, step: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.window(step, rows)
        return t[:, :-1], t[:, 1:]


def validation_batches(val: np.ndarray, seq_len: int, eval_tokens: int, batch: int):
    """The fixed validation slice: the first eval_tokens tokens of the validation split, cut into
    non-overlapping windows; identical for every run that shares seq_len and data."""
    n_seq = max(1, min(eval_tokens // seq_len, (len(val) - 1) // seq_len))
    win = np.asarray(val[: n_seq * seq_len + 1], dtype=np.int64)
    x = torch.from_numpy(win[:-1].reshape(n_seq, seq_len).copy())
    y = torch.from_numpy(win[1:].reshape(n_seq, seq_len).copy())
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n_seq, batch)]
