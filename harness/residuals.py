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

Every AttnRes variant except ``block`` groups sources per layer unless the config sets a block
count (``attnres_blocks``/``layers_per_block``), so e.g. "Block multi-head" is
``variant="multihead", attnres_blocks=8``. Every new mixing weight is initialised so the model
starts as the baseline (uniform softmax weights: RMSNorm makes the 1/n scale irrelevant), which
``tests/test_models.py::test_init_equivalence`` proves.

Adding a variant: subclass ``Residual`` (or ``AttnRes`` and override ``logits``/``weights``) and
add one line to ``VARIANTS``.

Speed (bench/bench_models.py measures it against the baseline): the mix never stacks its sources
(``weighted_sum`` reads them in place), each source's key RMS and logits for all later mixes come
from one matmul when the source is produced (``Source``, ``_KeyLogits``); the paper's two-phase
Block inference is there as an option (``AttnRes.two_phase``). ``tests/test_perf_equivalence.py``
checks every fast path against a naive implementation of the equations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import register_flop_formula


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


# ---------------------------------------------------------------------------------------------
# The depth mix h = sum_i alpha_i v_i as one operator. Stacking the sources into V [n, B, T, D] at
# every layer copies all of them (O(L^2) copies and saved tensors for Full), and einsum over V runs
# as a batched matmul over tokens that is slow on CPU. ``weighted_sum`` reads the sources where they
# are: forward is one fused multiply-add pass per source into one output; backward is one dot
# product (grad of alpha) and one scaled copy (grad of v_i) per source; it saves references to the
# sources, not copies. Its forward is a library op, ``attnres::weighted_sum``, so that
# FlopCounterMode counts it as the FLOP convention does (harness/accounting.py: 2 FLOPs per source
# per output element, although it runs as elementwise passes); autograd is the hand-written backward
# of ``_WeightedSum`` (cheaper per call than an op-level autograd registration, which small models
# notice). Under torch.compile it is plain multiply-adds instead, which inductor fuses.
_lib = torch.library.Library("attnres", "DEF")
_lib.define("weighted_sum(Tensor alpha, Tensor[] values) -> Tensor")


def _weighted_sum_out(alpha: Tensor, values: list[Tensor]) -> Tensor:
    """The (contiguous) output of the op: broadcast shape, promoted dtype."""
    shape = values[0].shape  # all values have one shape
    if alpha.shape[1:] != shape[:-1]:
        shape = torch.broadcast_shapes((*alpha.shape[1:], 1), shape)
    dtype = functools.reduce(torch.promote_types, {v.dtype for v in values}, alpha.dtype)
    return values[0].new_empty(shape, dtype=dtype)


def _weighted_sum_kernel(alpha: Tensor, values: list[Tensor]) -> Tensor:
    out = _weighted_sum_out(alpha, values)
    alpha = alpha.unsqueeze(-1)
    torch.mul(values[0], alpha[0], out=out)
    for a, v in zip(alpha[1:], values[1:]):
        out.addcmul_(v, a)
    return out


_lib.impl("weighted_sum", _weighted_sum_kernel, "CompositeExplicitAutograd")
torch.library.register_fake("attnres::weighted_sum", _weighted_sum_out, lib=_lib)


@register_flop_formula(torch.ops.attnres.weighted_sum)
def _weighted_sum_flops(alpha_shape, values_shapes, *args, out_shape=None, **kwargs) -> int:
    return 2 * alpha_shape[0] * math.prod(out_shape)  # one multiply-add per source per output element


class _WeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, *values: Tensor) -> Tensor:
        ctx.save_for_backward(alpha, *values)
        return torch.ops.attnres.weighted_sum(alpha, list(values))

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, *values = ctx.saved_tensors
        grad_alpha = None
        if ctx.needs_input_grad[0]:  # d h / d alpha_i = v_i, contracted with grad over the last dim
            grad_alpha = torch.stack([(grad * v).sum(-1) for v in values]).sum_to_size(alpha.shape)
        grad_values = [grad * a for a in alpha.unsqueeze(-1)]  # d h / d v_i = alpha_i
        if values[0].shape != grad.shape:  # broadcast values (S queries at once)
            grad_values = [g.sum_to_size(v.shape) for g, v in zip(grad_values, values)]
        return grad_alpha, *grad_values


def weighted_sum(alpha: Tensor, values: list[Tensor]) -> Tensor:
    """sum_i alpha[i, ..., None] * values[i], differentiable: alpha [n, *W], values [*W', e] (one
    shape for all) with alpha[i][..., None] broadcasting against them (W = B, T for a mix; B, T, H
    per head; S, B, T for S queries at once). The output is contiguous, in the promoted dtype."""
    if torch.compiler.is_compiling():  # plain ops: inductor fuses the sum and its backward into a few kernels
        return sum(a * v for a, v in zip(alpha.unsqueeze(-1), values))
    if not torch.is_grad_enabled():
        return torch.ops.attnres.weighted_sum(alpha, values)
    return _WeightedSum.apply(alpha, *values)


class _KeyLogits(torch.autograd.Function):
    """z[m] = u_m . v / rms(v) for M pseudo-queries u_m = w_m * g_m (the key RMSNorm's gain folded
    into the query): RMSNorm key and logit in one matmul, forward and backward. The hand-written
    backward is two small matmuls and one pass over v; autograd through the norm takes several passes
    and allocations per source, which is most of what the logits cost on CPU. Computes the matmul in
    v's dtype (bf16 under autocast), norm and logits in float32 at least; the backward is
    dtype-explicit, as autocast does not cover it."""

    @staticmethod
    def forward(ctx, v: Tensor, u: Tensor, eps: float) -> Tensor:  # v [..., D], u [M, D] -> [M, ...]
        flat = v.reshape(-1, v.shape[-1])  # N, D
        acc = torch.promote_types(v.dtype, torch.float32)  # norm and logits: float32 at least
        norm = torch.linalg.vector_norm(flat, dim=-1, dtype=acc)  # N
        inv_rms = torch.rsqrt(norm.square() / flat.shape[-1] + eps)  # N
        # a matmul, so flop counters see it; for small M, [M, D] @ [D, N] measured up to 5x faster
        # on CPU than [N, D] @ [D, M]
        z = u.to(v.dtype) @ flat.T  # M, N
        ctx.save_for_backward(flat, u, z, inv_rms)
        ctx.v_shape = v.shape
        return (z.to(acc) * inv_rms).view(-1, *v.shape[:-1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        flat, u, z, inv_rms = ctx.saved_tensors
        grad = grad.reshape(grad.shape[0], -1)  # M, N
        grad_z = (grad * inv_rms).to(flat.dtype)  # M, N
        grad_inv_rms = (grad * z.to(grad.dtype)).sum(0)  # N; d inv_rms / d v = -inv_rms^3 v / D
        grad_v = grad_z.T @ u.to(flat.dtype)  # N, D
        grad_v.addcmul_(flat, (grad_inv_rms * inv_rms.pow(3) / -flat.shape[-1]).to(flat.dtype)[:, None])
        grad_u = (grad_z @ flat).to(u.dtype) if ctx.needs_input_grad[1] else None  # M, D
        return grad_v.view(ctx.v_shape), grad_u, None


@dataclass(frozen=True)
class Source:
    """One source v_i of the depth attention, with its logits for every mix that will read it. They
    are computed once, when the source is produced: the pseudo-queries w_l do not depend on the
    input, so one matmul against all later queries replaces a dot product in every later layer
    (and the key RMS of v_i is computed once, not once per reader)."""

    value: Tensor  # v_i: B, T, D
    # logits of mixes first .. first + M - 1, one B, T (B, T, H per head) tensor each: unbound
    # once, so the backward gathers them with one stack, not a zero-filled copy per reader
    logits: tuple[Tensor, ...] | None
    first: int  # the first mix that reads this source


class AttnRes(Residual):
    """Full/Block Attention Residuals (PAPER.md section 1).

    Sources: ``b_0`` = embedding (exactly once) and, per block, the sum of its raw sublayer outputs;
    inside a block the i-th layer (i >= 2) also sees the partial sum of the block's first i-1 layers.
    With S = 1 (one layer per block) this is Full AttnRes: every raw sublayer output is a source.

    Mix for layer l over sources v_1 .. v_n (B, T, D each):
        logits_i = w_l . RMSNorm_l(v_i)         (no temperature; RMSNorm_l has a learnable gain)
        h_l      = sum_i softmax_i(logits)_i v_i
    w_l is zero-initialised, RMSNorm gains start at 1. The key RMSNorm is fused with the logit:
    w . (g * v / rms(v)) = ((w * g) . v) / rms(v), so no normalised key tensor is materialised, and a
    source's logits for all its later readers come from one matmul when it is produced (``Source``).
    The paper's two-phase inference computation is ``run_two_phase`` (opt-in: ``two_phase``).
    """

    # ``two_phase = True`` (per model: ``model.residual.two_phase = True``) makes inference (no grad,
    # no diagnostics) run ``run_two_phase``. Off by default: on CPU it measured no faster than the
    # one-phase loop (bench/bench_models.py reports both), and the one-phase loop computes inference
    # with exactly the ops of the training forward. It needs softmax weights over input-independent
    # Source logits; ablations that change either set ``supports_two_phase = False``.
    two_phase = False
    supports_two_phase = True

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

    def key_logits(self, v: Tensor, mixes: slice) -> Tensor | None:
        """M, B, T logits w_l . RMSNorm_l(v) of source v for the M mixes l in ``mixes``."""
        return _KeyLogits.apply(v, self.query[mixes] * self.key_gain[mixes], self.cfg.norm_eps)

    def source(self, v: Tensor, first: int, end: int) -> Source:
        """v as a source of mixes first .. end - 1."""
        z = self.key_logits(v, slice(first, end))
        return Source(v, None if z is None else z.unbind(0), first)

    def logits(self, l: int, sources: list[Source]) -> Tensor:
        """[n, B, T] depth logits of mix l."""
        return torch.stack([s.logits[l - s.first] for s in sources])

    def weights(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=0)

    def mix(self, l: int, sources: list[Source]) -> Tensor:
        alpha = self.weights(self.logits(l, sources))  # n, B, T
        self._record_alpha(alpha)
        values = [s.value for s in sources]
        return weighted_sum(alpha.to(values[-1].dtype), values)  # B, T, D

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        if self.two_phase and not torch.is_grad_enabled() and not self.record:
            return self.run_two_phase(x, layers)
        end = self.n_layers + 1  # completed blocks are read by every later mix, the final one included
        blocks = [self.source(x, 0, end)]  # b_0 = embedding, then completed block sums
        l = 0
        for size in self.layout:
            partial: Tensor | None = None  # b_n^{i-1}; empty at the start of a block
            for _ in range(size):
                sources = blocks if partial is None else [*blocks, self.source(partial, l, l + 1)]
                out = layers[l](self.mix(l, sources))  # raw sublayer output v_l (its PreNorm is inside)
                self._record_output(out)
                partial = out if partial is None else partial + out
                l += 1
            blocks.append(self.source(partial, l, end))
        return self.mix(l, blocks)  # final aggregation over b_0 .. b_N

    def run_two_phase(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        """Inference (PAPER.md section 1, "two-phase computation"); equals ``run`` up to rounding.
        Phase 1: the S queries of a block attend over the completed blocks in one pass, which reads
        each block once per block instead of once per layer. Phase 2: each layer i >= 2 merges its
        partial-sum source b_n^{i-1} by log-sum-exp: with Z the phase-1 normaliser and z_p the
        partial's logit, h = (Z h_1 + e^{z_p} b_n^{i-1}) / (Z + e^{z_p})."""
        if not self.supports_two_phase:
            raise ValueError(f"two_phase: {type(self).__name__} changes the depth logits or weights, so "
                             "the two-phase merge does not apply; fix: leave two_phase False")
        end = self.n_layers + 1
        blocks = [self.source(x, 0, end)]
        l = 0
        for size in self.layout:
            # phase 1: the block's S queries against the completed blocks b_0 .. b_{n-1}
            z = torch.stack([torch.stack(s.logits[l - s.first:l - s.first + size]) for s in blocks])  # n, S, B, T
            lse = torch.logsumexp(z, dim=0)  # S, B, T
            alpha = torch.exp(z - lse).to(x.dtype)  # n, S, B, T
            H = weighted_sum(alpha, [s.value[None] for s in blocks])  # S, B, T, D
            partial: Tensor | None = None
            for i in range(size):
                h = H[i]  # B, T, D
                if partial is not None:  # phase 2: merge the partial sum (in place: no autograd here)
                    z_p = self.key_logits(partial, slice(l, l + 1))[0]  # B, T
                    lse_all = torch.logaddexp(lse[i], z_p)  # B, T
                    h.mul_(torch.exp(lse[i] - lse_all)[..., None])
                    h.addcmul_(partial, torch.exp(z_p - lse_all)[..., None])
                out = layers[l](h)
                partial = out if partial is None else partial + out
                l += 1
            blocks.append(self.source(partial, l, end))
        return self.mix(l, blocks)


class FullAttnRes(AttnRes):
    """Full AttnRes: every raw sublayer output is a source (S = 1). Eq. for h_l in section 1."""

    def __init__(self, cfg) -> None:
        if cfg.attnres_blocks is not None or cfg.layers_per_block is not None:
            from records.config import ConfigError

            raise ConfigError("attnres_blocks: variant 'full' uses one source per layer; "
                              "fix: use variant 'block' to group layers into blocks", field="attnres_blocks")
        super().__init__(cfg)


class BlockAttnRes(AttnRes):
    """Block AttnRes: N blocks of S layers, block sums as sources (section 1, "Block AttnRes")."""


class SigmoidAttnRes(AttnRes):
    """Ablation: sigmoid(w . k) weights, not normalised over depth (Table 4: 1.741)."""

    supports_two_phase = False

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

    def key_logits(self, v: Tensor, mixes: slice) -> Tensor:
        return (self.query[mixes] @ v.flatten(0, -2).T).view(-1, *v.shape[:-1])  # M, B, T


class InputQueryAttnRes(AttnRes):
    """Ablation: input-dependent query q_l = w_l + W_l RMSNorm(latest source), W_l zero-init d x d
    (Table 4: 1.731). The latest source is the last entry of the source list."""

    supports_two_phase = False

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

    def key_logits(self, v: Tensor, mixes: slice) -> None:
        return None  # the query depends on the input: nothing to compute ahead

    def logits(self, l: int, sources: list[Source]) -> Tensor:
        V = torch.stack([s.value for s in sources])  # n, B, T, D
        latest = F.rms_norm(V[-1], (V.shape[-1],), eps=self.cfg.norm_eps)  # B, T, D
        q = self.query[l] + latest @ self.query_proj[l].T  # B, T, D
        u = q * self.key_gain[l]
        inv_rms = torch.rsqrt(V.pow(2).mean(-1) + self.cfg.norm_eps)  # n, B, T
        return torch.einsum("nbtd,btd->nbt", V, u) * inv_rms


class StaticAttnRes(AttnRes):
    """Ablation: input-independent mixing, softmax over learned scalar logits per (l, i), zero-init
    (Table 4, "input-independent mixing": 1.749)."""

    supports_two_phase = False

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

    def key_logits(self, v: Tensor, mixes: slice) -> None:
        return None  # logits are parameters

    def logits(self, l: int, sources: list[Source]) -> Tensor:
        o, n = self.offsets[l], len(sources)
        B, T, _ = sources[0].value.shape
        return self.scalar_logits[o:o + n][:, None, None].expand(n, B, T)


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

    supports_two_phase = False

    def key_logits(self, v: Tensor, mixes: slice) -> Tensor:
        B, T, D = v.shape
        H = self.cfg.depth_heads
        vh = v.view(B, T, H, D // H)
        u = (self.query[mixes] * self.key_gain[mixes]).view(-1, H, D // H)  # M, H, D/H
        inv_rms = torch.rsqrt(torch.linalg.vector_norm(vh.float(), dim=-1).square() / (D // H)
                              + self.cfg.norm_eps)  # B, T, H
        return torch.einsum("bthe,mhe->mbth", vh, u) * inv_rms  # M, B, T, H

    def mix(self, l: int, sources: list[Source]) -> Tensor:
        B, T, D = sources[0].value.shape
        H = self.cfg.depth_heads
        alpha = self.weights(self.logits(l, sources))  # n, B, T, H
        self._record_alpha(alpha)
        values = [s.value.view(B, T, H, D // H) for s in sources]
        return weighted_sum(alpha.to(values[-1].dtype), values).reshape(B, T, D)


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
}


def make_residual(cfg) -> Residual:
    return VARIANTS[cfg.variant](cfg)
