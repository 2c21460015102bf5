"""[budget]: how a sweep sets each run's token budget, and the budgets of one arm at one size.

Modes (records.choices.BudgetMode); every token count is rounded to whole optimizer steps later:

    ratio      tokens = tokens_per_param x parameters of the size's baseline (params = "total" or
               "non_embedding"), so every arm at a size sees the same tokens; a list = several budgets
    tokens     tokens = N, a list, or a table {size = N}
    reference  the tokens published with each ladder size (ladder "paper": Table 2)
    isoflop    compute = [C, ...]: tokens = C / the arm's training FLOPs per token; a size is kept at
               a budget when its tokens/param is inside [min_tokens_per_param, max_tokens_per_param]
    wsd        per (arm, size, axes, seed) one trunk trains the largest budget with a WSD schedule and
               keeps a checkpoint where each smaller budget's cool-down (cooldown_frac) starts; one
               short branch per smaller budget resumes from it (tokens_per_param or tokens lists)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.accounting import flops_per_token, param_counts
from harness.ladder import LADDERS
from records.choices import BudgetMode, choices
from records.config import ModelConfig
from sweeps.checker import Checker, SweepError
from sweeps.runid import fmt_count, fmt_value

if TYPE_CHECKING:
    from sweeps.expand import PlannedRun
    from sweeps.sweepfile import Sweep

MODE_KEYS = {  # the keys each mode reads besides "mode"
    BudgetMode.RATIO: {"tokens_per_param", "params"},
    BudgetMode.TOKENS: {"tokens"},
    BudgetMode.REFERENCE: set(),
    BudgetMode.ISOFLOP: {"compute", "params", "min_tokens_per_param", "max_tokens_per_param"},
    BudgetMode.WSD: {"tokens_per_param", "tokens", "params", "cooldown_frac"},
}


@dataclass(frozen=True)
class Budget:
    mode: BudgetMode
    tokens_per_param: tuple[float, ...] = ()
    tokens: tuple[int, ...] = ()
    tokens_by_size: dict[str, int] = field(default_factory=dict)
    compute: tuple[float, ...] = ()
    params: str = "total"  # which parameter count a tokens/param ratio refers to
    min_tokens_per_param: float | None = None
    max_tokens_per_param: float | None = None
    cooldown_frac: float = 0.2



def parse_budget(c: Checker, t: dict[str, Any], ladder: str, sizes: list[str]) -> Budget:
    if "mode" not in t:
        raise c.fail("[budget].mode", "missing", f"set mode to one of {list(choices(BudgetMode))}")
    mode = BudgetMode(c.string(t["mode"], "[budget].mode", choices(BudgetMode)))
    c.known(t, MODE_KEYS[mode] | {"mode"}, f"[budget] (mode {mode.value!r})")
    params = c.string(t.get("params", "total"), "[budget].params", ("total", "non_embedding"))
    if mode == BudgetMode.RATIO:
        if "tokens_per_param" not in t:
            raise c.fail("[budget].tokens_per_param", "missing for mode 'ratio'", "set e.g. tokens_per_param = 20")
        return Budget(mode, tokens_per_param=c.numbers(t["tokens_per_param"], "[budget].tokens_per_param"),
                      params=params)
    if mode == BudgetMode.TOKENS:
        v = t.get("tokens")
        if v is None:
            raise c.fail("[budget].tokens", "missing for mode 'tokens'",
                         "set tokens = 1e8, a list, or a table {size = tokens}")
        if isinstance(v, dict):
            missing = [s for s in sizes if s not in v]
            if missing:
                raise c.fail("[budget].tokens", f"no budget for sizes {missing}", "give every size in [sweep].sizes a value")
            c.known(v, set(sizes), "[budget].tokens")
            return Budget(mode, tokens_by_size={s: c.integer(n, f"[budget].tokens.{s}") for s, n in v.items()})
        return Budget(mode, tokens=tuple(int(x) for x in c.numbers(v, "[budget].tokens", whole=True)))
    if mode == BudgetMode.REFERENCE:
        missing = [s for s in sizes if "tokens" not in LADDERS[ladder][s].reference]
        if missing:
            raise c.fail("[budget].mode", f"ladder {ladder!r} publishes no token budget for {missing}",
                         "use mode 'ratio' or 'tokens' for this ladder")
        return Budget(mode)
    if mode == BudgetMode.ISOFLOP:
        if "compute" not in t:
            raise c.fail("[budget].compute", "missing for mode 'isoflop'", "list training FLOPs, e.g. compute = [1e12, 3e12]")
        lo = t.get("min_tokens_per_param")
        hi = t.get("max_tokens_per_param")
        lo = None if lo is None else c.number(lo, "[budget].min_tokens_per_param")
        hi = None if hi is None else c.number(hi, "[budget].max_tokens_per_param")
        if lo is not None and hi is not None and lo >= hi:
            raise c.fail("[budget].min_tokens_per_param", f"{lo} >= max_tokens_per_param {hi}", "make min < max")
        return Budget(mode, compute=c.numbers(t["compute"], "[budget].compute"), params=params,
                      min_tokens_per_param=lo, max_tokens_per_param=hi)
    # wsd
    if ("tokens_per_param" in t) == ("tokens" in t):
        raise c.fail("[budget].tokens_per_param", "mode 'wsd' needs exactly one of tokens_per_param or tokens",
                     "list the budgets each trunk branches at, e.g. tokens_per_param = [5, 10, 20]")
    cool = c.number(t.get("cooldown_frac", 0.2), "[budget].cooldown_frac")
    if not 0 < cool < 1:
        raise c.fail("[budget].cooldown_frac", f"got {cool}", "use a fraction in (0, 1), e.g. 0.2")
    if "tokens" in t:
        values = tuple(sorted(int(x) for x in c.numbers(t["tokens"], "[budget].tokens", whole=True)))
        kw: dict[str, Any] = {"tokens": values}
    else:
        kw = {"tokens_per_param": tuple(sorted(c.numbers(t["tokens_per_param"], "[budget].tokens_per_param")))}
    return Budget(mode, params=params, cooldown_frac=cool, **kw)



@dataclass(frozen=True)
class Point:
    """One token budget of a size: its tag, the axis value recorded in the spec, and the tokens."""

    tag: str
    axis: dict[str, Any]
    tokens: float


def budget_points(sweep: Sweep, size: str, model: ModelConfig, base: ModelConfig) -> list[Point]:
    """The token budgets of one arm at one size. Ratios refer to the size's baseline parameters, so
    every arm at a size trains on the same tokens (as in the paper); isoFLOP budgets use the arm's
    own FLOPs/token, so every run spends exactly its compute."""
    b = sweep.budget
    base_params = param_counts(base)
    n = base_params.total if b.params == "total" else base_params.non_embedding
    if b.mode in (BudgetMode.RATIO, BudgetMode.WSD) and b.tokens_per_param:
        many = len(b.tokens_per_param) > 1
        return [Point(f"r{fmt_value(r)}" if many else "", {"tokens_per_param": r} if many else {}, r * n)
                for r in b.tokens_per_param]
    if b.mode in (BudgetMode.TOKENS, BudgetMode.WSD) and b.tokens:
        many = len(b.tokens) > 1
        return [Point(f"t{fmt_count(t)}" if many else "", {"tokens": t} if many else {}, float(t)) for t in b.tokens]
    if b.mode == BudgetMode.TOKENS:
        return [Point("", {}, float(b.tokens_by_size[size]))]
    if b.mode == BudgetMode.REFERENCE:
        return [Point("", {}, float(LADDERS[sweep.ladder][size].reference["tokens"]))]
    # isoflop: a size stays in a budget only when the baseline's tokens/param is inside the window
    out = []
    for cflops in b.compute:
        ratio = cflops / flops_per_token(base).train / n
        if b.min_tokens_per_param is not None and ratio < b.min_tokens_per_param:
            continue
        if b.max_tokens_per_param is not None and ratio > b.max_tokens_per_param:
            continue
        out.append(Point(f"C{fmt_value(cflops)}", {"compute": cflops}, cflops / flops_per_token(model).train))
    return out



def check_budgets(sweep: Sweep, runs: list[PlannedRun]) -> None:
    """isoFLOP: every budget keeps at least two sizes (a curve needs them)."""
    if sweep.budget.mode != BudgetMode.ISOFLOP:
        return
    for cflops in sweep.budget.compute:
        sizes = {r.spec.size for r in runs if r.spec.axes.get("compute") == cflops}
        if len(sizes) < 2:
            raise SweepError(
                f"{sweep.file}: [budget].compute: budget {cflops:g} keeps {len(sizes)} size(s) inside the "
                f"tokens/param window [{sweep.budget.min_tokens_per_param}, {sweep.budget.max_tokens_per_param}]; "
                "fix: widen the window, add sizes, or drop that budget (an isoFLOP curve needs >= 2 sizes, better 3+)")

