"""Token counts as whole optimizer steps: the one rounding rule, torch-free.

A run trains in steps of ``batch_size x seq_len`` tokens, so every token count a config states
(the budget, the warmup, the evaluation period, a kept checkpoint, a WSD branch point) becomes a
number of steps somewhere: the schedule, the sweep expander, the planner and the trainer all call
these functions, so they agree on every run.

    steps = step_plan(spec.train, spec.model.seq_len)    # StepPlan(tokens_per_step, total, warmup, decay)
    nearest_steps(tokens, tps)          # a budget or a period: the nearest whole step, at least 1
    steps_to_reach(tokens, tps)         # a threshold (warmup end, a kept checkpoint): the first step
                                        # after which at least ``tokens`` have been trained

Both roundings are Python's: ``round`` (halves to even) and ``math.ceil``. Changing either changes
run ids (sweeps round budgets to whole steps before hashing) and the steps of every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from records.config import TrainConfig


def tokens_per_step(batch_size: int, seq_len: int) -> int:
    """Tokens of one optimizer step: the global batch in sequences x the context length."""
    return batch_size * seq_len


def nearest_steps(tokens: float, tokens_per_step: int, at_least: int = 1) -> int:
    """``tokens`` as the nearest whole number of steps, never fewer than ``at_least``."""
    return max(at_least, round(tokens / tokens_per_step))


def steps_to_reach(tokens: float, tokens_per_step: int) -> int:
    """The number of steps after which at least ``tokens`` have been trained."""
    return math.ceil(tokens / tokens_per_step)


def fraction_of_steps(fraction: float, steps: int, at_least: int = 0) -> int:
    """A fraction of a run's steps (a WSD decay), to the nearest step, never fewer than ``at_least``."""
    return max(at_least, round(fraction * steps))


@dataclass(frozen=True)
class StepPlan:
    """A run's length in steps, as its schedule and its trainer count it."""

    tokens_per_step: int
    total: int  # the budget, train.tokens, to the nearest step (at least 1)
    warmup: int  # steps of linear warmup: warmup_tokens (or warmup_frac x tokens) reached, at most total
    decay: int  # WSD: steps of the final linear decay (decay_frac x total); 0 for other schedules


def step_plan(train: TrainConfig, seq_len: int) -> StepPlan:
    tps = tokens_per_step(train.batch_size, seq_len)
    total = nearest_steps(train.tokens, tps)
    warm_tokens = train.warmup_tokens if train.warmup_tokens is not None else train.warmup_frac * train.tokens
    warmup = min(total, max(0, steps_to_reach(warm_tokens, tps)))
    decay = fraction_of_steps(train.decay_frac, total) if train.schedule == "wsd" else 0
    return StepPlan(tokens_per_step=tps, total=total, warmup=warmup, decay=decay)
