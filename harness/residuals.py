"""Residual variants: how each sublayer's input is formed from what came before (PAPER.md section 1).

Vocabulary (the paper's): every attention and every MLP sublayer is one *layer* f_l, l = 1..L,
L = 2 * n_blocks; ``x`` is the token embedding. A variant's ``run(x, layers)`` applies the L layers
and returns the hidden state that goes into the final norm and the LM head.

    baseline     x_{l+1} = x_l + f_l(x_l)                                   (PreNorm residual)
    full         h_l = sum_{i<l} softmax_i(w_l . RMSNorm_l(v_i)) v_i,  v_0 = x, v_i = f_i(h_i)
    block        the same over block sums [b_0 = x, b_1, ..., b_{n-1}, partial b_n^{i-1}]
    sigmoid      full, with sigmoid(w_l . k_i) instead of the softmax over depth    (Table 4)
    nokeynorm    full, keys are the raw v_i                                          (Table 4)
    inputquery   full, query w_l + W_l RMSNorm(latest source), W_l zero-init d x d   (Table 4)
    static       full, logits are learned scalars per (l, i): input-independent      (Table 4)
    denseformer  h_l = sum_i a_{l,i} v_i, learned scalars initialised to 1           (Table 4)
    multihead    full, d split into depth_heads heads, one softmax per head          (Table 4)
    rescaled     h_l = mean of the sources (running-mean residual, no learned routing; section 4)

Every AttnRes variant except ``block`` groups sources per layer unless the config sets a block
count (``attnres_blocks``/``layers_per_block``), so e.g. "Block multi-head" is
``variant="multihead", attnres_blocks=8``. Every new mixing weight is initialised so the model
starts as the baseline (uniform softmax weights: RMSNorm makes the 1/n scale irrelevant), which
``tests/test_models.py::test_init_equivalence`` proves.

Adding a variant: subclass ``Residual`` (or ``AttnRes`` and override ``logits``/``weights``) and
add one line to ``VARIANTS``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Residual(nn.Module):
    """Base class. ``record`` (set by ``harness.model.LM.diagnostics``) makes ``run`` keep
    per-layer output RMS and depth-attention weights in ``self.stats``."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_layers = cfg.n_layers
        self.record = False
        self.stats: dict[str, list] = {}

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        raise NotImplementedError

    def _record_output(self, out: Tensor) -> None:
        if self.record:
            self.stats.setdefault("layer_rms", []).append(out.float().pow(2).mean().sqrt().item())

    def _record_alpha(self, alpha: Tensor) -> None:
        if self.record:  # alpha: [n, B, T] or [n, B, T, H] -> mean over tokens (and heads)
            self.stats.setdefault("depth_alpha", []).append(
                alpha.float().reshape(alpha.shape[0], -1).mean(1).tolist())

    # FLOP accounting hooks (harness/accounting.py): matmul FLOPs per token of one mix over n sources
    @classmethod
    def mix_flops(cls, d_model: int, n_sources: int) -> int:
        return 0

    @classmethod
    def param_count(cls, cfg) -> int:
        return 0


class Baseline(Residual):
    """Standard PreNorm residual: x_{l+1} = x_l + f_l(x_l); output x_{L+1}."""

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        for f in layers:
            out = f(x)
            self._record_output(out)
            x = x + out
        return x


def block_layout(cfg) -> list[int]:
    """Number of layers in each AttnRes block (S each, the last one possibly shorter)."""
    S, L = cfg.block_size, cfg.n_layers
    return [min(S, L - start) for start in range(0, L, S)]


def n_sources_per_mix(cfg) -> list[int]:
    """Sources seen by each of the L layer mixes and the final aggregation (L + 1 entries)."""
    counts, n_done = [], 1  # completed blocks, b_0 = embedding
    for size in block_layout(cfg):
        for i in range(size):
            counts.append(n_done + (1 if i > 0 else 0))  # + the partial sum b_n^{i-1} for i >= 2
        n_done += 1
    counts.append(n_done)  # final aggregation over b_0 .. b_N
    return counts


class AttnRes(Residual):
    """Full/Block Attention Residuals (PAPER.md section 1).

    Sources: ``b_0`` = embedding (exactly once) and, per block, the sum of its raw sublayer outputs;
    inside a block the i-th layer (i >= 2) also sees the partial sum of the block's first i-1 layers.
    With S = 1 (one layer per block) this is Full AttnRes: every raw sublayer output is a source.

    Mix for layer l over stacked sources V [n, B, T, D]:
        logits_i = w_l . RMSNorm_l(V_i)         (no temperature; RMSNorm_l has a learnable gain)
        h_l      = sum_i softmax_i(logits)_i V_i
    w_l is zero-initialised, RMSNorm gains start at 1. The key RMSNorm is fused with the logit:
    w . (g * v / rms(v)) = ((w * g) . v) / rms(v), so no normalised key tensor is materialised.
    """

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        D, n_mix = cfg.d_model, cfg.n_layers + 1
        self.layout = block_layout(cfg)
        self.query = nn.Parameter(torch.zeros(n_mix, D))  # w_l, one per layer + final aggregation
        self.key_gain = nn.Parameter(torch.ones(n_mix, D))  # gain of each layer's key RMSNorm

    @classmethod
    def mix_flops(cls, d_model: int, n_sources: int) -> int:
        return 2 * d_model * n_sources + 2 * d_model * n_sources  # logits + weighted sum

    @classmethod
    def param_count(cls, cfg) -> int:
        return 2 * (cfg.n_layers + 1) * cfg.d_model

    def logits(self, l: int, V: Tensor) -> Tensor:
        """[n, B, T] depth logits of mix l over sources V [n, B, T, D]."""
        u = self.query[l] * self.key_gain[l]  # D
        inv_rms = torch.rsqrt(V.pow(2).mean(-1) + self.cfg.norm_eps)  # n, B, T
        return (V @ u[:, None]).squeeze(-1) * inv_rms  # matmul, so flop counters see it

    def weights(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=0)

    def mix(self, l: int, sources: list[Tensor]) -> Tensor:
        V = torch.stack(sources)  # n, B, T, D
        alpha = self.weights(self.logits(l, V))  # n, B, T
        self._record_alpha(alpha)
        return torch.einsum("nbt,nbtd->btd", alpha.to(V.dtype), V)

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        blocks: list[Tensor] = [x]  # b_0 = embedding, then completed block sums
        l = 0
        for size in self.layout:
            partial: Tensor | None = None  # b_n^{i-1}; empty at the start of a block
            for _ in range(size):
                h = self.mix(l, blocks if partial is None else [*blocks, partial])
                out = layers[l](h)  # raw sublayer output v_l (its PreNorm is inside)
                self._record_output(out)
                partial = out if partial is None else partial + out
                l += 1
            blocks.append(partial)
        return self.mix(l, blocks)  # final aggregation over b_0 .. b_N


class FullAttnRes(AttnRes):
    """Full AttnRes: every raw sublayer output is a source (S = 1). Eq. for h_l in section 1."""

    def __init__(self, cfg) -> None:
        if cfg.attnres_blocks is not None or cfg.layers_per_block is not None:
            from harness.config import ConfigError

            raise ConfigError("attnres_blocks: variant 'full' uses one source per layer; "
                              "fix: use variant 'block' to group layers into blocks")
        super().__init__(cfg)


class BlockAttnRes(AttnRes):
    """Block AttnRes: N blocks of S layers, block sums as sources (section 1, "Block AttnRes")."""


class SigmoidAttnRes(AttnRes):
    """Ablation: sigmoid(w . k) weights, not normalised over depth (Table 4: 1.741)."""

    def weights(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)


class NoKeyNormAttnRes(AttnRes):
    """Ablation: keys are the raw sources, no RMSNorm (Table 4: 1.743)."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        del self.key_gain

    @classmethod
    def param_count(cls, cfg) -> int:
        return (cfg.n_layers + 1) * cfg.d_model

    def logits(self, l: int, V: Tensor) -> Tensor:
        return (V @ self.query[l][:, None]).squeeze(-1)


class InputQueryAttnRes(AttnRes):
    """Ablation: input-dependent query q_l = w_l + W_l RMSNorm(latest source), W_l zero-init d x d
    (Table 4: 1.731). The latest source is the last entry of the source list."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        D = cfg.d_model
        self.query_proj = nn.Parameter(torch.zeros(cfg.n_layers + 1, D, D))

    @classmethod
    def mix_flops(cls, d_model: int, n_sources: int) -> int:
        return super().mix_flops(d_model, n_sources) + 2 * d_model * d_model

    @classmethod
    def param_count(cls, cfg) -> int:
        return super().param_count(cfg) + (cfg.n_layers + 1) * cfg.d_model**2

    def logits(self, l: int, V: Tensor) -> Tensor:
        latest = F.rms_norm(V[-1], (V.shape[-1],), eps=self.cfg.norm_eps)  # B, T, D
        q = self.query[l] + latest @ self.query_proj[l].T  # B, T, D
        u = q * self.key_gain[l]
        inv_rms = torch.rsqrt(V.pow(2).mean(-1) + self.cfg.norm_eps)  # n, B, T
        return torch.einsum("nbtd,btd->nbt", V, u) * inv_rms


class StaticAttnRes(AttnRes):
    """Ablation: input-independent mixing, softmax over learned scalar logits per (l, i), zero-init
    (Table 4, "input-independent mixing": 1.749)."""

    def __init__(self, cfg) -> None:
        Residual.__init__(self, cfg)
        self.layout = block_layout(cfg)
        self.counts = n_sources_per_mix(cfg)
        self.scalar_logits = nn.Parameter(torch.zeros(sum(self.counts)))
        self.offsets = [sum(self.counts[:i]) for i in range(len(self.counts))]

    @classmethod
    def mix_flops(cls, d_model: int, n_sources: int) -> int:
        return 2 * d_model * n_sources  # weighted sum only

    @classmethod
    def param_count(cls, cfg) -> int:
        return sum(n_sources_per_mix(cfg))

    def logits(self, l: int, V: Tensor) -> Tensor:
        o = self.offsets[l]
        z = self.scalar_logits[o:o + V.shape[0]]  # n
        return z[:, None, None].expand(V.shape[:3])


class DenseFormer(StaticAttnRes):
    """DenseFormer-like static mixing: h_l = sum_i a_{l,i} v_i with learned scalars initialised to 1,
    so the model starts exactly as the baseline (Table 4, "DenseFormer": 1.767)."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        nn.init.ones_(self.scalar_logits)

    def weights(self, logits: Tensor) -> Tensor:
        return logits  # raw scalars, no normalisation


class MultiHeadAttnRes(AttnRes):
    """Ablation: d split into H = depth_heads heads, each with its own softmax over depth and its
    own key RMSNorm over the head's channels (Table 4, "Block multi-head (16 heads)": 1.752)."""

    def logits(self, l: int, V: Tensor) -> Tensor:
        H = self.cfg.depth_heads
        n, B, T, D = V.shape
        Vh = V.view(n, B, T, H, D // H)
        u = (self.query[l] * self.key_gain[l]).view(H, D // H)
        inv_rms = torch.rsqrt(Vh.pow(2).mean(-1) + self.cfg.norm_eps)  # n, B, T, H
        return torch.einsum("nbthe,he->nbth", Vh, u) * inv_rms

    def mix(self, l: int, sources: list[Tensor]) -> Tensor:
        V = torch.stack(sources)  # n, B, T, D
        n, B, T, D = V.shape
        H = self.cfg.depth_heads
        alpha = self.weights(self.logits(l, V))  # n, B, T, H
        self._record_alpha(alpha)
        h = torch.einsum("nbth,nbthe->bthe", alpha.to(V.dtype), V.view(n, B, T, H, D // H))
        return h.reshape(B, T, D)


class Rescaled(Residual):
    """Control (PAPER.md section 4): h_{l+1} = (l/(l+1)) h_l + (1/(l+1)) f_l, i.e. the running mean
    of the embedding and all sublayer outputs; bounded norm, no learned routing, no parameters."""

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        h = x
        for l, f in enumerate(layers, start=1):
            out = f(h)
            self._record_output(out)
            h = h * (l / (l + 1)) + out * (1 / (l + 1))
        return h


VARIANTS: dict[str, type[Residual]] = {
    "baseline": Baseline,
    "full": FullAttnRes,
    "block": BlockAttnRes,
    "sigmoid": SigmoidAttnRes,
    "nokeynorm": NoKeyNormAttnRes,
    "inputquery": InputQueryAttnRes,
    "static": StaticAttnRes,
    "denseformer": DenseFormer,
    "multihead": MultiHeadAttnRes,
    "rescaled": Rescaled,
}


def make_residual(cfg) -> Residual:
    return VARIANTS[cfg.variant](cfg)
