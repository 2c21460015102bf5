"""Size ladders: named model shapes, generated from a depth dial (run rules live in sweeps/rules.py).

    tiny   CPU ladder, byte-level: n_blocks = d, d_model = 4 (d + 4), 2 heads,
           d_ff = 8/3 d_model rounded up to a multiple of 8.       sizes d2 .. d8 (26k .. 247k params)
           Width grows slowly so params span ~4x over d2..d5 at a compute a 2-core laptop trains
           in minutes; 2 heads keep head_dim >= 12 (measured: head_dim 8 made CPU SDPA ~1.6x slower).
    deep   CPU ladder at fixed width (the depth question: does AttnRes gain with depth?): n_blocks = d,
           d_model = 32, 2 heads, d_ff = 88 as tiny d4.               sizes d2 .. d16 (42k .. 218k params)
    small  GPU ladder (nanochat's rule: width = 64 x depth): n_blocks = d, d_model = 64 d,
           head_dim 64, d_ff = 8/3 d_model rounded up to 64.        sizes d4 .. d16
    paper  the five shapes of the paper's Table 2 (n_blocks, heads = n_blocks, d_model as published;
           heads x head_dim != d_model there, and head_dim is not published: we use 64).
           The paper's models are MoE (Kimi Linear); we build dense models, so d_ff is chosen so the
           non-embedding parameters (attention + MLP) match the table's *activated* parameters:
           d_ff = (N_act / n_blocks - 4 d^2) / (3 d), rounded to a multiple of 64. Context 8192.

    shape = model_shape("tiny", "d4")          # -> Shape(n_blocks=4, d_model=32, n_heads=2, ...)
    cfg = model_config("tiny", "d4", variant="block", attnres_blocks=4, vocab_size=256)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from records.config import ConfigError, ModelConfig


def _round_up(x: float, m: int) -> int:
    return int(math.ceil(x / m) * m)


@dataclass(frozen=True)
class Shape:
    n_blocks: int
    d_model: int
    n_heads: int
    d_ff: int
    seq_len: int
    head_dim_override: int | None = None
    # published training settings for this size, where the ladder comes from a paper (informational)
    reference: dict[str, Any] = field(default_factory=dict)


def _dial(depth: int, d_model: int, n_heads: int, ff_multiple: int, seq_len: int) -> Shape:
    return Shape(n_blocks=depth, d_model=d_model, n_heads=n_heads,
                 d_ff=_round_up(8 * d_model / 3, ff_multiple), seq_len=seq_len)


# Table 2 (PAPER.md section 2): activated params, tokens, n_blocks, heads, d_model, peak lr, batch (seqs)
_PAPER_TABLE2 = [
    ("194M", 194e6, 38.7e9, 12, 12, 896, 2.99e-3, 192),
    ("241M", 241e6, 45.4e9, 13, 13, 960, 2.80e-3, 256),
    ("296M", 296e6, 62.1e9, 14, 14, 1024, 2.50e-3, 320),
    ("436M", 436e6, 87.9e9, 16, 16, 1168, 2.20e-3, 384),
    ("528M", 528e6, 119.0e9, 17, 17, 1264, 2.02e-3, 432),
]


PAPER_HEAD_DIM = 64  # not published; Kimi Linear's own attention differs from ours anyway


def _paper_shapes() -> dict[str, Shape]:
    out = {}
    for name, n_act, tokens, nb, heads, d, lr, batch in _PAPER_TABLE2:
        d_ff = _round_up((n_act / nb - 4 * d * heads * PAPER_HEAD_DIM) / (3 * d), 64)
        out[name] = Shape(n_blocks=nb, d_model=d, n_heads=heads, d_ff=d_ff, seq_len=8192,
                          head_dim_override=PAPER_HEAD_DIM,
                          reference={"activated_params": n_act, "tokens": tokens, "lr": lr,
                                     "batch_size": batch})
    return out


LADDERS: dict[str, dict[str, Shape]] = {
    "tiny": {f"d{d}": _dial(d, 4 * (d + 4), 2, 8, 128) for d in range(2, 9)},
    "deep": {f"d{d}": _dial(d, 32, 2, 8, 128) for d in (2, 3, 4, 6, 8, 12, 16)},
    "small": {f"d{d}": _dial(d, 64 * d, d, 64, 1024) for d in range(4, 17, 2)},
    "paper": _paper_shapes(),
}


def model_shape(ladder: str, size: str) -> Shape:
    if ladder not in LADDERS:
        raise ConfigError(f"ladder: unknown ladder {ladder!r}; fix: use one of {sorted(LADDERS)}", field="ladder")
    sizes = LADDERS[ladder]
    if size not in sizes:
        raise ConfigError(f"sizes: {size!r} is not in ladder {ladder!r}; fix: use some of {list(sizes)}", field="sizes")
    return sizes[size]


def model_config(ladder: str, size: str, **overrides: Any) -> ModelConfig:
    """A ModelConfig for a ladder size; ``overrides`` set the variant, vocab, seq_len, etc."""
    shape = asdict(model_shape(ladder, size))
    shape.pop("reference")
    shape.update(overrides)
    return ModelConfig(**shape)
