"""The fast kernels behind harness/residuals.py: the depth mix's weighted sum and the fused key
RMSNorm + logits, each with a hand-written backward. They compute exactly the equations of
PAPER.md section 1; ``tests/test_perf_equivalence.py`` checks them (forward, backward, the op's
fake kernel) against the plain tensor expressions, and bench/bench_models.py measures what they buy.

    weighted_sum(alpha, values)   h = sum_i alpha_i v_i      the op ``attnres::weighted_sum``
    key_logits(v, u, eps)         z_m = u_m . v / rms(v)     for M pseudo-queries u_m = w_m * g_m

Why: stacking the sources into V [n, B, T, D] at every layer copies all of them (O(L^2) copies and
saved tensors for Full), and einsum over V runs as a batched matmul over tokens that is slow on
CPU. ``weighted_sum`` reads the sources where they are: forward is one fused multiply-add pass per
source into one output; backward is one dot product (grad of alpha) and one scaled copy (grad of
v_i) per source; it saves references to the sources, not copies. Its forward is a library op,
``attnres::weighted_sum``, so that FlopCounterMode counts it as the FLOP convention does
(harness/accounting.py: 2 FLOPs per source per output element, although it runs as elementwise
passes); autograd is the hand-written backward of ``WeightedSum`` (cheaper per call than an
op-level autograd registration, which small models notice). Under torch.compile it is plain
multiply-adds instead, which inductor fuses. ``key_logits`` folds the key RMSNorm into the logit
(w . (g * v / rms(v)) = ((w * g) . v) / rms(v)), so no normalised key tensor is materialised.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

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


class WeightedSum(torch.autograd.Function):
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
    return WeightedSum.apply(alpha, *values)


class KeyLogits(torch.autograd.Function):
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


def key_logits(v: Tensor, u: Tensor, eps: float) -> Tensor:
    """[M, *v.shape[:-1]] logits u_m . v / rms(v) of one source v [..., D] for M pseudo-queries u [M, D]
    (w_l . RMSNorm_l(v) with the norm's gain folded into u), differentiable (``KeyLogits``)."""
    return KeyLogits.apply(v, u, eps)

