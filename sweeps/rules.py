"""Run rules: the training settings a sweep derives from a model's size and token budget.

Sizes (depth, width, heads) live in ``harness/ladder.py``; this module only turns a size and its
budget into batch size, learning rate, warmup and evaluation spacing. Every rule says where it
comes from. A sweep file picks a rule set with ``[sweep].rules``; anything it sets explicitly in
``[train]``, in a variant's ``train`` table or as an axis wins over the rules.

    ctx = RuleContext(ladder="tiny", size="d4", reference={}, seq_len=128,
                      tokens=2_004_000, compute=1.6e12)
    derive("scaling", ctx)   # -> {"batch_size": 16, "lr": 0.003, "warmup_frac": 0.05, ...}

Rule sets:
    scaling    batch from DeepSeek LLM's compute law, size-independent lr (default)
    reference  the lr and batch published with the ladder's sizes (``Shape.reference``, e.g. the
               paper's Table 2); for sizes without them it falls back to ``scaling``
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at: the size, its published settings, and the run's budget."""

    ladder: str
    size: str
    reference: dict[str, Any] = field(default_factory=dict)  # ladder.Shape.reference
    seq_len: int = 128
    tokens: int = 0  # token budget of the run (before rounding to whole steps)
    compute: float = 0.0  # training FLOPs of the run (flops/token x tokens)


def batch_deepseek(ctx: RuleContext) -> dict[str, Any]:
    """Batch from DeepSeek LLM's compute law (Bi et al. 2024, eq. 1), at least 16 sequences.

    B_opt = 0.292 * C^0.3271 tokens (arXiv:2401.02954), fitted at 1e17..3e20 FLOPs; below that we
    extrapolate, which is a guess, not a fit. Rounded to a power of two sequences and kept at >= 16
    sequences: smaller batches leave a CPU step dominated by per-step overhead and make the loss
    curve noisy."""
    tokens = 0.292 * max(ctx.compute, 1.0) ** 0.3271
    seqs = 2 ** round(math.log2(max(tokens / ctx.seq_len, 1.0)))
    return {"batch_size": int(max(16, seqs))}


def batch_reference(ctx: RuleContext) -> dict[str, Any]:
    """The batch (in sequences) published with the size (ladder "paper": Table 2)."""
    if "batch_size" in ctx.reference:
        return {"batch_size": int(ctx.reference["batch_size"])}
    return batch_deepseek(ctx)


def lr_constant(ctx: RuleContext) -> dict[str, Any]:
    """Peak lr 3e-3 at every size (the paper's tuned lrs span 2.0e-3..3.0e-3).

    Table 2 tunes 2.0e-3..3.0e-3 over a 2.7x range of sizes (194M-528M), so one value near its top
    end is a fair untuned default; smaller models tolerate at least as much. Tune each arm with an
    ``lr`` axis (PAPER.md section 4)."""
    return {"lr": 3e-3}


def lr_reference(ctx: RuleContext) -> dict[str, Any]:
    """The peak lr published with the size (ladder "paper": Table 2, tuned on the baseline).

    The paper shares it with every variant at that size."""
    if "lr" in ctx.reference:
        return {"lr": float(ctx.reference["lr"])}
    return lr_constant(ctx)


def warmup_fraction(ctx: RuleContext) -> dict[str, Any]:
    """Linear warmup over the first 5% of the run (a convention; the paper does not say).

    A fraction, not a fixed token count, keeps the schedule's shape the same at every size."""
    return {"warmup_frac": 0.05}


def eval_ten_times(ctx: RuleContext) -> dict[str, Any]:
    """Ten evaluations per run, the last at the end.

    Enough points for a training curve, few enough that evaluation stays a small share of compute."""
    return {"eval_every_tokens": max(1, ctx.tokens // 10)}


Rule = Callable[[RuleContext], dict[str, Any]]

RULESETS: dict[str, tuple[Rule, ...]] = {
    "scaling": (batch_deepseek, lr_constant, warmup_fraction, eval_ten_times),
    "reference": (batch_reference, lr_reference, warmup_fraction, eval_ten_times),
}


def derive(ruleset: str, ctx: RuleContext) -> dict[str, Any]:
    """TrainConfig settings from the rules of ``ruleset`` (later rules never overwrite earlier ones)."""
    out: dict[str, Any] = {}
    for rule in RULESETS[ruleset]:
        for key, value in rule(ctx).items():
            out.setdefault(key, value)
    return out


def rule_sources(ruleset: str) -> dict[str, str]:
    """Setting name -> the first line of the docstring of the rule that sets it (for `plan`)."""
    ctx = RuleContext(ladder="", size="", tokens=10, compute=1.0)
    out: dict[str, str] = {}
    for rule in RULESETS[ruleset]:
        for key in rule(ctx):
            out.setdefault(key, f"{rule.__name__}: {(rule.__doc__ or '').strip().splitlines()[0]}")
    return out
