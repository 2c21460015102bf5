"""Configuration: small frozen dataclasses, one per concern, validated on construction.

    ModelConfig  what network to build (shape + residual variant)
    TrainConfig  how to train it (optimiser, schedule, budget, evaluation, checkpoints)
    DataConfig   which prepared token data to read
    RunSpec      one run of a sweep: the three above plus its identity

Every check fails with a ``ConfigError`` that names the field and says how to fix it.
``to_dict``/``from_dict`` round-trip through JSON (the run directory's ``spec.json``). Closed sets
of names (variant, schedule, dtype, device) are typed by records.choices: a field holds an enum
member (a ``str``, so JSON and run ids are unchanged), and a bad name fails naming the field.

Names: "block". An unqualified *block* is a Transformer block (attention + MLP: ``n_blocks``; the
paper's L = 2 x n_blocks sublayers are its *layers*). The AttnRes grouping of layers is always
qualified: an *AttnRes block* (the paper's N = ``n_attnres_blocks``, set by ``attnres_blocks``; its
S layers = ``attnres_block_size``, set by ``layers_per_block``). ``block_size`` is not used, as
nanoGPT readers take it for the context length (here ``seq_len``). The serialised keys
``attnres_blocks`` and ``layers_per_block`` and the variant name "block" (Block AttnRes) stay as they
are: run ids and sweep files are written with them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from records.choices import Device, Dtype, Schedule, Variant
from records.settings import (  # noqa: F401 - re-exported: the sweep parser checks settings with them
    AT_LEAST_1,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    ConfigError,
    Rule,
    check_fields,
    check_setting,
)
from records.settings import fail as _fail


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
    variant: Variant = Variant.BASELINE  # residual variant (harness/residuals.py has one class per member)
    # AttnRes-block grouping for AttnRes variants: N AttnRes blocks (attnres_blocks) or S layers per
    # AttnRes block (layers_per_block), never both. None for both: one per layer (Full AttnRes).
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
    def attnres_block_size(self) -> int:
        """S, layers per AttnRes block (1 = Full AttnRes)."""
        if self.layers_per_block is not None:
            return self.layers_per_block
        if self.attnres_blocks is not None:
            return math.ceil(self.n_layers / self.attnres_blocks)
        return 1

    @property
    def n_attnres_blocks(self) -> int:
        """N, number of AttnRes blocks (the last one may be shorter)."""
        return math.ceil(self.n_layers / self.attnres_block_size)

    def __post_init__(self) -> None:
        check_fields(self)  # types, ranges and choices of each field (RULES, records.choices); cross-field checks follow
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
        if self.variant == Variant.BLOCK and self.attnres_blocks is None and self.layers_per_block is None:
            _fail("attnres_blocks", "variant 'block' needs an AttnRes block count",
                  "set attnres_blocks (N, e.g. 8) or layers_per_block (S)")
        if self.depth_heads > 1 and self.variant != Variant.MULTIHEAD:
            _fail("depth_heads", f"depth_heads={self.depth_heads} only applies to variant 'multihead'",
                  "set variant='multihead' or depth_heads=1")


@dataclass(frozen=True)
class TrainConfig:
    tokens: int = 1_000_000  # token budget; the LR schedule ends exactly here
    batch_size: int = 32  # global batch in sequences (each seq_len tokens)
    micro_batch_size: int | None = None  # per-process sequences per forward; None = batch_size/world
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # final LR = lr * min_lr_ratio
    schedule: Schedule = Schedule.COSINE
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
    dtype: Dtype = Dtype.AUTO  # auto (bf16 autocast on CUDA, fp32 on CPU) | float32 (TF32 matmuls on CUDA) | bfloat16
    compile: bool = False
    threads: int = 1  # intra-op threads per process on CPU (many 1-thread processes beat one big one)
    device: Device = Device.AUTO  # auto | cpu | cuda
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
        check_fields(self)  # types, ranges and choices (schedule, dtype, device) of each field


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/wiki-byte"  # a prepared data directory (attnres data prepare; records.tokens.default_data_dir)


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
        """Plain data: enum members as their values (a checkpoint stores this dict, and
        torch.load(weights_only=True) admits no other classes)."""
        return _plain(dataclasses.asdict(self))

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


def _plain(o: Any) -> Any:
    if isinstance(o, StrEnum):
        return o.value
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return type(o)(_plain(v) for v in o)
    return o


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
