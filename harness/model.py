"""Decoder-only LM: RMSNorm PreNorm sublayers, causal attention with RoPE, SwiGLU MLP.

The residual wiring between sublayers is a pluggable strategy (harness/residuals.py): the model
owns the L = 2 * n_blocks sublayers [attn, mlp, attn, mlp, ...], each with its own PreNorm inside,
and the variant decides what each sublayer reads.

    model = LM(ModelConfig(n_blocks=2, d_model=32, n_heads=4, variant="block", attnres_blocks=2))
    logits = model(idx)                    # idx: B, T int64 -> B, T, V
    loss = model.loss(idx, targets)        # mean cross-entropy, nats/token
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from harness.residuals import make_residual
from records.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # T, hd/2
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: B, H, T, hd; rotate channel pairs (first half, second half) by position-dependent angles."""
    T = x.shape[-2]
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


class Sublayer(nn.Module):
    """One layer f_l. With ``checkpoint`` set (TrainConfig.activation_checkpointing), training keeps only
    the sublayer's input and recomputes the rest in the backward (torch.utils.checkpoint, non-reentrant:
    autocast state and RNG are replayed, so the results are the same)."""

    checkpoint = False

    def forward(self, h: Tensor) -> Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self.compute, h, use_reentrant=False)
        return self.compute(h)

    def compute(self, h: Tensor) -> Tensor:
        raise NotImplementedError


def _autocast_once(x: Tensor) -> Tensor:
    """x in autocast's dtype, cast once for every matmul that reads it: autocast casts activations per
    op (weights are cached, activations not), so q, k and v would each keep their own bf16 copy of
    the normed input for the backward (and w1, w3 theirs). Same values, a third of the memory."""
    if torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


class Attention(Sublayer):
    """PreNorm causal self-attention sublayer: f(h) = W_o SDPA(RoPE(W_q n), RoPE(W_k n), W_v n), n = norm(h)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D, A = cfg.d_model, cfg.attn_dim
        self.n_heads = cfg.n_heads
        self.norm = RMSNorm(D, cfg.norm_eps)
        self.wq = nn.Linear(D, A, bias=False)
        self.wk = nn.Linear(D, A, bias=False)
        self.wv = nn.Linear(D, A, bias=False)
        self.wo = nn.Linear(A, D, bias=False)
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def compute(self, h: Tensor) -> Tensor:
        B, T, D = h.shape
        x = _autocast_once(self.norm(h))
        q, k, v = (w(x).view(B, T, self.n_heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = apply_rope(q, self.cos, self.sin), apply_rope(k, self.cos, self.sin)  # B, H, T, hd
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # B, H, T, hd
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class MLP(Sublayer):
    """PreNorm SwiGLU sublayer: f(h) = W_2 (silu(W_1 n) * W_3 n), n = norm(h)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.w1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.w2 = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def compute(self, h: Tensor) -> Tensor:
        x = _autocast_once(self.norm(h))
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class LM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(
            [Attention(cfg) if l % 2 == 0 else MLP(cfg) for l in range(cfg.n_layers)])
        self.residual = make_residual(cfg)
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) matrices; output projections scaled by 1/sqrt(2 n_blocks) (GPT-2);
        embeddings at embed_std (std 1 keeps RMSNorm's eps negligible; nanochat does the same);
        residual-variant parameters keep their own zero/one init (they must start as the baseline)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.startswith("residual.") or p.dim() < 2:
                continue
            if name.startswith("embed."):
                nn.init.normal_(p, std=self.cfg.embed_std if self.lm_head is not None else std)
            elif name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, std=std / math.sqrt(self.cfg.n_layers))
            else:
                nn.init.normal_(p, std=std)

    def set_activation_checkpointing(self, on: bool) -> None:
        for layer in self.layers:
            layer.checkpoint = on

    def forward(self, idx: Tensor) -> Tensor:
        x = self.embed(idx)  # B, T, D
        h = self.residual.run(x, self.layers)  # B, T, D
        h = self.final_norm(h)
        return self.lm_head(h) if self.lm_head is not None else h @ self.embed.weight.T  # B, T, V

    def loss(self, idx: Tensor, targets: Tensor) -> Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @torch.no_grad()
    def diagnostics(self, idx: Tensor) -> dict[str, Any]:
        """Per-sublayer output RMS (paper Figure 5) and depth-attention weights alpha_{i->l}
        averaged over tokens (Figure 8) on one batch; depth_alpha is None for variants without it."""
        res = self.residual
        res.record, res.stats = True, {}
        try:
            self(idx)
            stats = res.stats
        finally:
            res.record, res.stats = False, {}
        return {"layer_rms": stats.get("layer_rms"), "depth_alpha": stats.get("depth_alpha")}
