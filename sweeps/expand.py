"""Expansion: every run of a sweep, each one RunSpec with a stable id (sweeps/runid.py).

    runs = expand(load_sweep("demo"))     # list[PlannedRun], in file order

Training settings resolve in this order, later winning: TrainConfig defaults, the run rules
(sweeps/rules.py, [sweep].rules), [train], the arm's ``train`` table, axis values, the budget
(sweeps/budget.py). Cross-field problems of the resolved configs are collected over all runs and
raised as one SweepError naming the table each bad value came from.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.accounting import ParamCounts, flops_per_token, param_counts
from harness.ladder import LADDERS
from records.choices import BudgetMode, Schedule
from records.config import ConfigError, DataConfig, ModelConfig, RunSpec, TrainConfig
from records.rundir import KeptCheckpoint
from records.steps import fraction_of_steps, nearest_steps, tokens_per_step
from sweeps import rules
from sweeps.budget import Point, budget_points, check_budgets
from sweeps.checker import SweepError
from sweeps.runid import fmt_value, run_id
from sweeps.sweepfile import MODEL_FIELDS, TRAIN_FIELDS, Arm, Sweep


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    arm: str
    budget: str  # readable budget tag ("r20", "C1e13", ...; "" for a single budget per size)
    depends_on: str | None = None  # WSD branch: the trunk run whose kept checkpoint it starts from

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def params(self) -> ParamCounts:
        return param_counts(self.spec.model)

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token (3 x forward), harness.accounting's convention."""
        return flops_per_token(self.spec.model).train

    @property
    def trained_tokens(self) -> int:
        """Tokens this run trains itself (a WSD branch starts at its trunk's checkpoint)."""
        return self.spec.train.tokens - branch_point(self.spec)

    @property
    def compute(self) -> float:
        """Training FLOPs of the run's budget (as analysis counts it: all tokens, trunk included)."""
        return self.flops_per_token * self.spec.train.tokens


def branch_point(spec: RunSpec) -> int:
    """Tokens already trained in the checkpoint a run starts from (0 unless it is a WSD branch)."""
    kept = KeptCheckpoint.from_path(spec.train.init_from) if spec.train.init_from else None
    return kept.tokens if kept else 0


def _settings_error(sweep: Sweep, e: ConfigError, origins: dict[str, str], fallback: str) -> SweepError:
    """Re-raise a ConfigError naming the table its field came from, or (for a value nobody set
    explicitly) what produced it."""
    msg = str(e)
    if e.field in origins:
        return SweepError(f"{sweep.file}: {origins[e.field]}.{msg}")
    return SweepError(f"{sweep.file}: {fallback}: {msg}")



def expand(sweep: Sweep) -> list[PlannedRun]:
    """Every run of the sweep, in file order (arms, sizes, axes, budgets, seeds). Cross-field problems
    of the resolved configs are collected over all runs: one SweepError, one message per problem."""
    runs: list[PlannedRun] = []
    problems: list[str] = []
    for arm in sweep.arms:
        axes = {**sweep.axes, **arm.axes}
        names = list(axes)
        for size in sweep.sizes:
            for combo in itertools.product(*(axes[k] for k in names)):
                axis_values = dict(zip(names, combo))
                try:
                    runs.extend(_expand_one(sweep, arm, size, axis_values))
                except SweepError as e:
                    problems += [p for p in e.problems if p not in problems]
    if problems:
        raise SweepError(*problems)
    check_budgets(sweep, runs)
    dups = sorted(i for i, n in Counter(r.run_id for r in runs).items() if n > 1)
    if dups:
        dup = dups[0]
        raise SweepError(f"{sweep.file}: [variants]: two runs resolve to the same config ({dup}); "
                         "fix: remove the duplicate arm or axis value")
    return runs


def _model_for(sweep: Sweep, arm: Arm, size: str, axis_values: dict[str, Any]) -> tuple[ModelConfig, ModelConfig]:
    shape = dataclasses.asdict(LADDERS[sweep.ladder][size])
    shape.pop("reference")
    origins = {**{k: "[model]" for k in sweep.model}, **{k: f"[variants.{arm.name}]" for k in arm.model},
               **{k: "[axes]" for k in axis_values if k in MODEL_FIELDS}}
    values = {**shape, **sweep.model, **arm.model,
              **{k: v for k, v in axis_values.items() if k in MODEL_FIELDS},
              "vocab_size": sweep.data.vocab_size}
    try:
        model = ModelConfig(**values)
        base = ModelConfig(**{**shape, **sweep.model, "vocab_size": sweep.data.vocab_size})
    except ConfigError as e:
        if e.field in ("attnres_blocks", "layers_per_block", "depth_heads", "variant"):
            origins.setdefault(e.field, f"[variants.{arm.name}]")
        raise _settings_error(sweep, e, origins, f"[sweep].sizes (size {size} of ladder {sweep.ladder})") from None
    return model, base


def _expand_one(sweep: Sweep, arm: Arm, size: str, axis_values: dict[str, Any]) -> list[PlannedRun]:
    model, base = _model_for(sweep, arm, size, axis_values)
    fpt = flops_per_token(model).train
    data = DataConfig(path=sweep.data.path)
    train_axes = {k: v for k, v in axis_values.items() if k in TRAIN_FIELDS}
    origins = {**{k: "[train]" for k in sweep.train}, **{k: f"[variants.{arm.name}.train]" for k in arm.train},
               **{k: "[axes]" for k in train_axes}}
    explicit = {**sweep.train, **arm.train, **train_axes}
    axis_tag = "-".join(f"{k}{fmt_value(v)}" for k, v in axis_values.items())
    points = budget_points(sweep, size, model, base)
    if not points:
        return []

    def make_train(tokens: float, seed: int, extra: dict[str, Any]) -> TrainConfig:
        ctx = rules.RuleContext(ladder=sweep.ladder, size=size, reference=LADDERS[sweep.ladder][size].reference,
                                seq_len=model.seq_len, tokens=int(tokens), compute=fpt * tokens)
        values = {**rules.derive(sweep.rules, ctx), **explicit, **extra, "seed": seed}
        tps = tokens_per_step(int(values.get("batch_size", TrainConfig.batch_size)), model.seq_len)
        values["tokens"] = nearest_steps(tokens, tps) * tps  # whole optimizer steps
        if "eval_every_tokens" in values and values["eval_every_tokens"] is not None:
            values["eval_every_tokens"] = nearest_steps(values["eval_every_tokens"], tps) * tps
        try:
            return TrainConfig(**values)
        except ConfigError as e:
            raise _settings_error(sweep, e, origins, f"[sweep].rules ({sweep.rules})") from None

    def make_run(train: TrainConfig, point: Point, depends_on: str | None = None) -> PlannedRun:
        rid = run_id([sweep.name, arm.name, size, point.tag, axis_tag, f"s{train.seed}"], model, train, data)
        spec = RunSpec(run_id=rid, model=model, train=train, data=data, sweep=sweep.name, size=size,
                       ladder=sweep.ladder, axes={**point.axis, **axis_values}, arm=arm.name,
                       tracking=sweep.tracking)
        return PlannedRun(spec=spec, arm=arm.name, budget=point.tag, depends_on=depends_on)

    if sweep.budget.mode != BudgetMode.WSD:
        return [make_run(make_train(p.tokens, seed, {}), p) for p in points for seed in sweep.seeds]
    return [r for seed in sweep.seeds for r in _wsd_family(sweep, points, seed, model.seq_len, make_train, make_run)]


def _wsd_family(sweep: Sweep, points: list[Point], seed: int, seq_len: int,
                make_train: Callable[[float, int, dict[str, Any]], TrainConfig],
                make_run: Callable[..., PlannedRun]) -> list[PlannedRun]:
    """One trunk trained to the largest budget with a WSD schedule, keeping a checkpoint where each
    smaller budget's cool-down starts; one branch per smaller budget resumes from that checkpoint and
    decays over its last ``cooldown_frac``. Warmup and batch are the trunk's, so up to the branch
    point a branch's schedule is identical to the trunk's (Hagele et al. 2024, "Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations": cool-downs from one constant-lr
    trunk match cosine runs of each length)."""
    f = sweep.budget.cooldown_frac
    for where, table in (("[train]", sweep.train), *((f"[variants.{a.name}.train]", a.train) for a in sweep.arms)):
        for key in ("schedule", "decay_frac", "save_at_tokens"):
            if key in table and not (key == "schedule" and table[key] == Schedule.WSD):
                raise SweepError(f"{sweep.file}: {where}.{key}: set by [budget] mode 'wsd'; fix: remove it "
                                 "(the cool-down length is [budget].cooldown_frac)")
    points = sorted(points, key=lambda p: p.tokens)
    top = points[-1]
    probe = make_train(top.tokens, seed, {"schedule": Schedule.WSD, "decay_frac": f})
    tps = tokens_per_step(probe.batch_size, seq_len)
    warmup = (probe.warmup_tokens if probe.warmup_tokens is not None
              else nearest_steps(probe.warmup_frac * probe.tokens, tps, at_least=0) * tps)
    shared = {"schedule": Schedule.WSD, "batch_size": probe.batch_size, "lr": probe.lr, "warmup_tokens": warmup,
              "decay_frac": f}
    branches: list[tuple[Point, int, TrainConfig]] = []
    for p in points[:-1]:
        steps = nearest_steps(p.tokens, tps, at_least=2)
        decay_steps = fraction_of_steps(f, steps, at_least=1)
        start = (steps - decay_steps) * tps  # the branch point: a whole step, inside the stable phase
        if start < warmup:
            raise SweepError(f"{sweep.file}: [budget]: budget {p.tag} cools down from {start} tokens, before the "
                             f"trunk's warmup ends ({warmup} tokens); fix: drop budgets below "
                             f"{warmup / (1 - f):.3g} tokens, or shorten warmup")
        train = make_train(p.tokens, seed, {**shared, "decay_frac": decay_steps / steps})
        branches.append((p, start, train))
    kept = tuple(sorted({start for _, start, _ in branches}))
    trunk_train = make_train(top.tokens, seed, {**shared, "save_at_tokens": kept})
    trunk = make_run(trunk_train, top)
    out = [trunk]
    for p, start, train in branches:
        train = dataclasses.replace(train, init_from=KeptCheckpoint(start).init_from(trunk.run_id))
        out.append(make_run(train, p, depends_on=trunk.run_id))
    return out
