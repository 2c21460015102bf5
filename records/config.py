"""Configuration: small frozen dataclasses, one per concern, validated on construction.

    ModelConfig  what network to build (shape + residual variant)
    TrainConfig  how to train it (optimiser, schedule, budget, evaluation, checkpoints)
    DataConfig   which prepared token data to read
    RunSpec      one run of a sweep: the three above plus its identity

Every check fails with a ``ConfigError`` that names the field and says how to fix it.
``to_dict``/``from_dict`` round-trip through JSON (the run directory's ``spec.json``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix, and ``field`` holds
    the field's name (the last part of a dotted name: "lr" for "train.lr") for callers that report
    where it came from (a sweep file's table), so nobody has to parse the message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _fail(field_name: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{field_name}: {problem}; fix: {fix}", field=field_name.split(".")[-1])


# ----------------------------------------------------------------------------- one setting's type and range
# Every field of a config dataclass is checked here, on construction (``__post_init__``) and by the
# sweep parser key by key (sweeps/spec.py), so a sweep file's mistakes are caught at `plan` by the
# same rules training would apply. The type comes from the field's annotation; the range from RULES.

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rule:
    """Range of a numeric setting (bounds inclusive unless ``*_open``) or the pattern of a string one."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    pattern: str | None = None  # a string setting must fullmatch it
    allowed: str = ""  # the pattern in words, for the fix

    def text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))


POSITIVE = Rule(lo=0, lo_open=True)
AT_LEAST_1 = Rule(lo=1)
NON_NEGATIVE = Rule(lo=0)
FRACTION = Rule(lo=0, hi=1)  # [0, 1]


@functools.cache
def _kind(cls: type, name: str) -> tuple[str, bool]:
    """(base type, None allowed) of a field, from its annotation: int, float, bool, str, tuple, dict."""
    ann = str({f.name: f.type for f in dataclasses.fields(cls)}[name])
    parts = [p.strip() for p in ann.split("|")]
    base = next((p for p in parts if p != "None"), "None")
    return re.split(r"[\[ ]", base)[0], "None" in parts


def _shown(value: Any) -> str:
    """A value as the sweep file wrote it (TOML spells booleans true/false)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _unquote_hint(name: str, value: Any) -> str:
    return f"write it without quotes: {name} = {value}" if isinstance(value, str) and value.strip() else ""


def _check_scalar(name: str, kind: str, value: Any, rule: Rule | None) -> Any:
    """Check one scalar value of a setting; returns it normalised (a whole float -> int)."""
    if kind == "bool":
        if not isinstance(value, bool):
            _fail(name, f"expected true or false, got {_shown(value)}", f"write {name} = true or {name} = false")
        return value
    if kind in ("int", "float"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = kind == "float" or (number and float(value).is_integer())
        if not number or not math.isfinite(value) or not whole:
            what = "a whole number" if kind == "int" else "a finite number"
            got = "the string " + repr(value) if isinstance(value, str) else _shown(value)
            hint = _unquote_hint(name, value) if isinstance(value, str) and _is_number(value) else ""
            _fail(name, f"expected {what}, got {got}",
                  hint or f"write {name} = <{what}{' ' + rule.text() if rule else ''}>")
        if kind == "int":
            value = int(value)
        if rule is not None and not rule.ok(value):
            _fail(name, f"must be {rule.text()}, got {value}", f"set {name} to a value {rule.text()}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            _fail(name, f"expected a string, got {value!r}", f'quote it: {name} = "{value}"')
        if _CONTROL.search(value):
            _fail(name, f"{value!r} contains a control character (newline, tab, ...)", "remove it")
        if rule is not None and rule.pattern and not re.fullmatch(rule.pattern, value):
            _fail(name, f"{value!r} has characters outside {rule.allowed}", f"use only {rule.allowed}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_setting(cls: type, name: str, value: Any) -> Any:
    """Type and range of one setting of config dataclass ``cls`` on its own (cross-field checks are
    ``__post_init__``'s); raises ConfigError naming the field and the fix. Returns the value
    normalised: a whole float in an int field becomes an int (TOML's ``1e6``)."""
    kind, optional = _kind(cls, name)
    if value is None:
        if not optional:
            _fail(name, "must be set", f"give {name} a value")
        return None
    rule = getattr(cls, "RULES", {}).get(name)
    if kind == "tuple":
        if not isinstance(value, (list, tuple)):
            _fail(name, f"expected a list, got {value!r}", f"write {name} = [...]")
        items = tuple(_check_scalar(name, "int", v, rule) for v in value)
        if len(set(items)) != len(items):
            _fail(name, "a value is listed twice", "list each value once")
        return items
    if kind == "dict":
        if not isinstance(value, dict):
            _fail(name, f"expected a table, got {value!r}", f"write {name} = {{...}}")
        return value
    return _check_scalar(name, kind, value, rule)


def _check_fields(obj: Any) -> None:
    """Every field of a frozen config dataclass through ``check_setting`` (normalising in place)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        checked = check_setting(type(obj), f.name, value)
        if checked is not value:
            object.__setattr__(obj, f.name, checked)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    n_blocks: int = 2  # Transformer blocks; the paper's "layers" are sublayers: L = 2 * n_blocks
    d_model: int = 32
    n_heads: int = 4
    # per-head width; None = d_model // n_heads. Set it when heads x head_dim != d_model (the paper's
    # shapes: 12 heads at d_model 896); q/k/v project d_model -> n_heads * head_dim (= attn_dim)
    head_dim_override: int | None = None
    d_ff: int = 96  # SwiGLU hidden width (three d_model x d_ff matrices)
    seq_len: int = 128  # context length T used in training and in the FLOP formula
    variant: str = "baseline"  # residual variant, a name from harness.residuals.VARIANTS
    # Block grouping for AttnRes variants: N blocks (attnres_blocks) or S layers per block
    # (layers_per_block), never both. None for both means one block per layer (Full AttnRes).
    attnres_blocks: int | None = None
    layers_per_block: int | None = None
    depth_heads: int = 1  # heads of the depth attention (the paper's "multi-head" ablation)
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    # AttnRes averages n sources, shrinking the RMS of sublayer inputs by up to n (vs the baseline);
    # a small eps keeps RMSNorm scale-invariant there, so AttnRes at init equals the baseline
    norm_eps: float = 1e-8
    init_std: float = 0.02  # std of every matrix; output projections (wo, w2) are scaled by 1/sqrt(L)
    embed_std: float = 1.0  # O(1) residual stream at init, so RMSNorm's eps stays negligible

    RULES: ClassVar[dict[str, Rule]] = {
        # an upper bound only where a typo would hang `plan` (layer layouts are built per layer)
        "n_blocks": Rule(lo=1, hi=10_000),
        **dict.fromkeys(("vocab_size", "d_model", "n_heads", "head_dim_override", "d_ff", "seq_len",
                         "attnres_blocks", "layers_per_block", "depth_heads"), AT_LEAST_1),
        **dict.fromkeys(("rope_theta", "norm_eps", "init_std", "embed_std"), POSITIVE),
    }

    @property
    def n_layers(self) -> int:
        """L in the paper: every attention and every MLP sublayer is one layer."""
        return 2 * self.n_blocks

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.d_model // self.n_heads

    @property
    def attn_dim(self) -> int:
        """Width of the attention inner space, n_heads * head_dim (usually d_model)."""
        return self.n_heads * self.head_dim

    @property
    def block_size(self) -> int:
        """S, layers per AttnRes block (1 = Full AttnRes)."""
        if self.layers_per_block is not None:
            return self.layers_per_block
        if self.attnres_blocks is not None:
            return math.ceil(self.n_layers / self.attnres_blocks)
        return 1

    @property
    def n_attnres_blocks(self) -> int:
        """N, number of AttnRes blocks (the last one may be shorter)."""
        return math.ceil(self.n_layers / self.block_size)

    def __post_init__(self) -> None:
        from harness.residuals import VARIANTS  # registry lives with the variants

        _check_fields(self)  # types and ranges of each field (RULES); cross-field checks follow
        if self.variant not in VARIANTS:
            _fail("variant", f"unknown variant {self.variant!r}", f"use one of {sorted(VARIANTS)}")
        if self.head_dim_override is None and self.d_model % self.n_heads:
            _fail("d_model", f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}",
                  "choose n_heads dividing d_model, or set head_dim_override")
        if self.head_dim % 2:
            _fail("n_heads", f"head_dim={self.head_dim} is odd, RoPE needs pairs", "make d_model/n_heads even")
        if self.d_model % self.depth_heads:
            _fail("depth_heads", f"d_model={self.d_model} not divisible by depth_heads={self.depth_heads}",
                  "choose depth_heads dividing d_model")
        if self.attnres_blocks is not None and self.layers_per_block is not None:
            _fail("attnres_blocks", "both attnres_blocks (N) and layers_per_block (S) are set", "set only one")
        L = self.n_layers
        if self.attnres_blocks is not None:
            n = self.attnres_blocks
            if not 1 <= n <= L:
                _fail("attnres_blocks", f"N={n} blocks for L={L} layers (2 per Transformer block)",
                      f"choose 1 <= attnres_blocks <= {L}")
            if math.ceil(L / math.ceil(L / n)) != n:
                ok = sorted({math.ceil(L / s) for s in range(1, L + 1)})
                _fail("attnres_blocks", f"L={L} layers cannot be cut into N={n} blocks of S=ceil(L/N) layers "
                      "with only the last one shorter", f"use attnres_blocks in {ok} or set layers_per_block")
        if self.layers_per_block is not None and not 1 <= self.layers_per_block <= L:
            _fail("layers_per_block", f"S={self.layers_per_block} for L={L} layers",
                  f"choose 1 <= layers_per_block <= {L}")
        if self.variant == "block" and self.attnres_blocks is None and self.layers_per_block is None:
            _fail("attnres_blocks", "variant 'block' needs a block count",
                  "set attnres_blocks (N, e.g. 8) or layers_per_block (S)")
        if self.depth_heads > 1 and self.variant not in ("multihead",):
            _fail("depth_heads", f"depth_heads={self.depth_heads} only applies to variant 'multihead'",
                  "set variant='multihead' or depth_heads=1")


SCHEDULES = ("cosine", "wsd", "constant")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    tokens: int = 1_000_000  # token budget; the LR schedule ends exactly here
    batch_size: int = 32  # global batch in sequences (each seq_len tokens)
    micro_batch_size: int | None = None  # per-process sequences per forward; None = batch_size/world
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # final LR = lr * min_lr_ratio
    schedule: str = "cosine"
    # warmup scales with the run (a fixed long warmup would dominate small models); an absolute
    # warmup_tokens overrides it (needed for WSD families, whose branches must share the warmup)
    warmup_frac: float = 0.05
    warmup_tokens: int | None = None
    decay_frac: float = 0.2  # WSD: the final decay_frac of the run decays linearly to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    eval_every_tokens: int | None = None  # None: 10 evaluations over the run
    eval_tokens: int = 65_536  # size of the fixed validation slice (same for every run)
    log_every_steps: int = 10
    ckpt_every_s: float = 300.0  # wall-clock checkpoint period (plus one at every evaluation)
    save_at_tokens: tuple[int, ...] = ()  # extra kept checkpoints (WSD branch points)
    init_from: str | None = None  # checkpoint to branch from (WSD cool-down); relative to runs root
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | float32 (TF32 matmuls on CUDA) | bfloat16
    compile: bool = False
    threads: int = 1  # intra-op threads per process on CPU (many 1-thread processes beat one big one)
    device: str = "auto"  # auto | cpu | cuda
    # recompute each sublayer's activations in the backward instead of keeping them (less memory,
    # ~1/3 more compute; same results): `attnres plan` says when a run needs it
    activation_checkpointing: bool = False
    init_from_outside_runs: bool = False  # allow init_from to leave the runs root (harness/checkpoint.py)

    RULES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("tokens", "batch_size", "micro_batch_size", "eval_every_tokens", "eval_tokens",
                         "log_every_steps", "threads", "save_at_tokens"), AT_LEAST_1),
        # grad_clip is clip_grad_norm_'s max_norm: a negative one flips every gradient
        **dict.fromkeys(("lr", "grad_clip"), POSITIVE),
        # ckpt_every_s = 0: a checkpoint after every step (the resume tests use it)
        **dict.fromkeys(("seed", "warmup_tokens", "weight_decay", "ckpt_every_s"), NON_NEGATIVE),
        **dict.fromkeys(("decay_frac", "min_lr_ratio"), FRACTION),
        "warmup_frac": Rule(lo=0, hi=1, hi_open=True),
        **dict.fromkeys(("beta1", "beta2"), Rule(lo=0, hi=1, hi_open=True)),  # AdamW needs beta < 1
    }

    def __post_init__(self) -> None:
        _check_fields(self)  # types and ranges of each field (RULES); cross-field checks follow
        if self.schedule not in SCHEDULES:
            _fail("schedule", f"unknown schedule {self.schedule!r}", f"use one of {SCHEDULES}")
        if self.dtype not in DTYPES:
            _fail("dtype", f"got {self.dtype!r}", f"use one of {DTYPES}")
        if self.device not in ("auto", "cpu", "cuda"):
            _fail("device", f"got {self.device!r}", "use 'auto', 'cpu' or 'cuda'")


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/wiki-byte"  # a prepared data directory (attnres data prepare; harness.data.default_data_dir)


TRACKERS = ("tensorboard", "wandb")
WANDB_MODES = ("offline", "online")


@dataclass(frozen=True)
class TrackingConfig:
    """Optional live tracking (harness/tracking.py; a sweep's [tracking] table). Execution only: not in
    the run id's hash."""

    backends: tuple[str, ...] = ()  # any of TRACKERS; () = off
    project: str | None = None  # wandb project (default attnres-<sweep>)
    entity: str | None = None  # wandb entity (team or user; default: wandb's)
    wandb_mode: str = "offline"  # "online" streams live; "offline" writes files for `wandb sync`

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", tuple(self.backends))
        for b in self.backends:
            if b not in TRACKERS:
                _fail("backends", f"unknown tracker {b!r}", f"use some of {TRACKERS}")
        if len(set(self.backends)) != len(self.backends):
            _fail("backends", "a tracker is listed twice", "list each once")
        if self.wandb_mode not in WANDB_MODES:
            _fail("wandb_mode", f"got {self.wandb_mode!r}", f"use one of {WANDB_MODES}")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything needed to train it, and its identity."""

    run_id: str
    model: ModelConfig
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    sweep: str = "adhoc"
    size: str = "custom"  # size name in its ladder (e.g. "d4")
    ladder: str = "custom"
    axes: dict[str, Any] = field(default_factory=dict)  # values of extra sweep axes (e.g. {"lr": 3e-3})
    arm: str = ""  # the sweep's name for this arm ("" = model.variant); ablation arms may share a variant
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(
            run_id=d["run_id"],
            model=_build(ModelConfig, d["model"], "model"),
            train=_build(TrainConfig, d["train"], "train"),
            data=_build(DataConfig, d.get("data", {}), "data"),
            sweep=d.get("sweep", "adhoc"),
            size=d.get("size", "custom"),
            ladder=d.get("ladder", "custom"),
            axes=dict(d.get("axes", {})),
            arm=d.get("arm", ""),
            tracking=_build(TrackingConfig, d.get("tracking", {}), "tracking"),
        )


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Construct a config dataclass from a dict, rejecting unknown keys with the list of known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown setting; fix: use one of {sorted(known)}", field=unknown[0])
    values = dict(values)
    if "save_at_tokens" in values:
        values["save_at_tokens"] = tuple(values["save_at_tokens"])
    return cls(**values)


def build_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Public form of ``_build`` for sweep files and CLIs."""
    return _build(cls, values, where)
