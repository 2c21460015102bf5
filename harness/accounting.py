"""Exact parameter counts per group, and FLOPs per token from one documented formula.

Compute convention (the same for every variant; README "Compute convention"):
  forward FLOPs per token = matmul FLOPs only (2 per multiply-add), counted densely:
    attention projections   4 * 2 * d * a                   per Transformer block (q, k, v, o;
                                                            a = n_heads * head_dim, usually d)
    attention scores        2 * 2 * T * a                   per block (QK^T and AV over the full
                                                            context T; the causal mask is not
                                                            credited, as in PaLM's MFU formula and
                                                            torch.utils.flop_counter)
    SwiGLU MLP              3 * 2 * d * d_ff                per block
    LM head                 2 * d * V
    AttnRes overhead        sum over the L + 1 mixes of the variant's mix_flops(d, n_sources)
                            (harness/variant_costs.py): logits 2 d n + weighted sum 2 d n for
                            Full/Block (plus 2 d^2 for the input-dependent query)
  Norms, softmax, RoPE, activations and the embedding lookup are O(d) per token and not counted.
  training FLOPs per token = 3 x forward (backward = 2 x forward).
  compute C = training FLOPs per token x training tokens; PF-days: records/units.py.

``tests/test_models.py::test_flops_vs_counter`` checks the forward formula against
``torch.utils.flop_counter.FlopCounterMode`` on real models, and ``test_attnres_flops_vs_counter``
the AttnRes term on its own (it is only 1-2% of the total at the tiny sizes). Torch-free, so
`attnres plan` counts without loading the training stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.variant_costs import COSTS
from records.config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    lm_head: int
    attention: int
    mlp: int
    norms: int  # sublayer PreNorms + final norm
    attnres: int  # residual-variant parameters (pseudo-queries, key-norm gains, mixing scalars)

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.attention + self.mlp + self.norms + self.attnres

    @property
    def non_embedding(self) -> int:
        """All parameters but the embedding table (the LM head costs FLOPs, so it counts)."""
        return self.total - self.embedding

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total, "non_embedding": self.non_embedding}


def param_counts(cfg: ModelConfig) -> ParamCounts:
    D, F, V, nb = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_blocks
    return ParamCounts(
        embedding=V * D,
        lm_head=0 if cfg.tie_embeddings else V * D,
        attention=nb * 4 * D * cfg.attn_dim,
        mlp=nb * 3 * D * F,
        norms=(cfg.n_layers + 1) * D,
        attnres=COSTS[cfg.variant].params(cfg),
    )


@dataclass(frozen=True)
class FlopCounts:
    """Forward FLOPs per token, by group."""

    attention_proj: float
    attention_scores: float
    mlp: float
    lm_head: float
    attnres: float

    @property
    def forward(self) -> float:
        return self.attention_proj + self.attention_scores + self.mlp + self.lm_head + self.attnres

    @property
    def train(self) -> float:
        return 3.0 * self.forward

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "forward": self.forward, "train": self.train}


def flops_per_token(cfg: ModelConfig, context: int | None = None) -> FlopCounts:
    """Forward FLOPs per token (see module docstring); ``context`` defaults to cfg.seq_len."""
    D, F, V, nb = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_blocks
    T = cfg.seq_len if context is None else context
    return FlopCounts(
        attention_proj=float(nb * 8 * D * cfg.attn_dim),
        attention_scores=float(nb * 4 * T * cfg.attn_dim),
        mlp=float(nb * 6 * D * F),
        lm_head=float(2 * D * V),
        attnres=float(COSTS[cfg.variant].flops(cfg)),
    )
