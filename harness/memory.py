"""Per-device training memory, estimated from the shapes: what `attnres plan` checks against the GPU.

    est = memory_estimate(model_cfg, micro_batch=4, dtype="bfloat16", activation_checkpointing=False)
    est.total_gb, est.as_dict()

Parts (bytes; N = micro_batch x seq_len tokens per forward, D = d_model, A = n_heads x head_dim,
F = d_ff, V = vocab, e = bytes of an activation element: 2 under bf16 autocast, 4 in fp32):
    parameters   4 P (fp32 master weights; a DDP replica holds them all), plus under bf16 autocast
                 the bf16 copies of the weight matrices autocast caches for the step, 2 P
    gradients    4 P
    optimizer    8 P (AdamW: two fp32 moments)
    activations  what autograd keeps for the backward, per token (harness/model.py's ops):
                   every sublayer: its input (fp32 residual stream or fp32 mix output) 4 D, the
                     RMSNorm's rstd 4 and normalised input 4 D, the normed input cast once e D
                   attention: q, k after RoPE, v, the SDPA output, the W_o input 5 e A; the
                     logsumexp 4 H (flash-style SDPA: no T x T matrix)
                   MLP: W_1 and W_3 outputs, silu(W_1 x), the product 4 e F
                   final norm and the LM head's input 8 D + 4 + e D; the token ids 8
                   AttnRes (Full/Block): each source (a sublayer output or an AttnRes block's running sum)
                     is kept by every later mix that reads it: e D per sublayer and the fp32
                     embedding (b_0) 4 D, plus per mix over n
                     sources its logits, weights and cast weights (4 + 4 + e) n and per source its
                     key logits for the M later mixes (e + 4) M and rstd 4
                 with activation checkpointing each sublayer keeps only its input (4 D; AttnRes
                 sources stay), and the backward recomputes one sublayer at a time (+ its activations)
    logits       12 V: the fp32 log-probabilities kept for the backward, and two fp32 N x V buffers
                 of its start (the gradient of the log-probs and of the logits)
Not counted: allocator fragmentation, CUDA context and NCCL buffers (~1-3 GB), torch.compile's
workspace. ``tests/test_memory.py`` checks the activation and logit terms against the bytes autograd
really saves (a saved-tensor hook) on CPU, fp32 and bf16; `make gpu-check` compares the total with
torch.cuda.max_memory_allocated on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.accounting import param_counts
from harness.variant_costs import COSTS, n_sources_per_mix
from records.config import ModelConfig

GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: float
    gradients: float
    optimizer: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.logits

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def as_dict(self) -> dict[str, float]:
        return {**{k: v / GB for k, v in asdict(self).items()}, "total": self.total_gb}


def _attention(cfg: ModelConfig, e: int) -> int:
    return 5 * e * cfg.attn_dim + 4 * cfg.n_heads


def _mlp(cfg: ModelConfig, e: int) -> int:
    return 4 * e * cfg.d_ff


def _sublayer_common(cfg: ModelConfig, e: int) -> int:
    return 8 * cfg.d_model + 4 + e * cfg.d_model


def _depth_mix(cfg: ModelConfig, e: int) -> int:
    """Per token: AttnRes sources and their logits (0 for variants that do not mix over depth)."""
    if not COSTS[cfg.variant].mixes:
        return 0
    counts = n_sources_per_mix(cfg)
    sources = cfg.n_layers  # one kept source (an output or a running block sum) per sublayer
    logits = sum((8 + e) * n for n in counts)
    keys = (e + 4) * sum(counts) + 4 * (sources + 1)
    return 4 * cfg.d_model + e * cfg.d_model * sources + logits + keys  # + b_0, the fp32 embedding


def activation_bytes_per_token(cfg: ModelConfig, e: int, checkpointing: bool) -> int:
    L = cfg.n_blocks
    attn = _sublayer_common(cfg, e) + _attention(cfg, e)
    mlp = _sublayer_common(cfg, e) + _mlp(cfg, e)
    final = _sublayer_common(cfg, e)
    if checkpointing:  # inputs kept; one sublayer's activations live again during its recomputation
        return 8 + 2 * L * 4 * cfg.d_model + max(attn, mlp) + final + _depth_mix(cfg, e)
    return 8 + L * (attn + mlp) + final + _depth_mix(cfg, e)  # 8: the token ids (int64)


def memory_estimate(cfg: ModelConfig, micro_batch: int, dtype: str, activation_checkpointing: bool = False,
                    ) -> MemoryEstimate:
    """Peak training memory of one device for one micro-batch of ``micro_batch`` sequences;
    ``dtype`` is the resolved training dtype ("bfloat16" or "float32")."""
    counts = param_counts(cfg)
    P = counts.total
    e = 2 if dtype == "bfloat16" else 4
    N = micro_batch * cfg.seq_len
    matrices = counts.attention + counts.mlp + counts.lm_head  # what autocast casts (the embedding is read, not cast)
    weight_casts = 2.0 * matrices if dtype == "bfloat16" else 0.0
    return MemoryEstimate(parameters=4.0 * P + weight_casts, gradients=4.0 * P, optimizer=8.0 * P,
                          activations=float(N * activation_bytes_per_token(cfg, e, activation_checkpointing)),
                          logits=float(N * 12 * cfg.vocab_size))
