"""Residual variants: how each sublayer's input is formed from what came before (PAPER.md section 1).

Vocabulary (the paper's): every attention and every MLP sublayer is one *layer* f_l, l = 1..L,
L = 2 * n_blocks; ``x`` is the token embedding. A variant's ``run(x, layers)`` applies the L layers
and returns the hidden state that goes into the final norm and the LM head.

    baseline     x_{l+1} = x_l + f_l(x_l)                                        (PreNorm residual)
    full         h_l = sum_{i<l} alpha_{i->l} v_i,  alpha_{i->l} = softmax_i(w_l . RMSNorm_l(v_i)),
                 v_0 = x, v_i = f_i(h_i)                                         (section 1)
    block        the same over AttnRes block sums [b_0 = x, b_1, .., b_{n-1}, partial b_n^{i-1}]
    sigmoid      full, with sigmoid(w_l . k_i) instead of the softmax over depth    (Table 4)
    nokeynorm    full, keys are the raw v_i                                          (Table 4)
    inputquery   full, query w_l + W_l RMSNorm(latest source), W_l zero-init d x d   (Table 4)
    static       full, logits are learned scalars per (l, i): input-independent      (Table 4)
    denseformer  h_l = sum_i a_{l,i} v_i, learned scalars initialised to 1           (Table 4)
    multihead    full, d split into depth_heads heads, one softmax per head          (Table 4)

The depth attention itself is ``AttnRes.logits`` / ``weights`` / ``mix``: three one-line methods,
one per term of the equation; the ablations override one of them. Every AttnRes variant except
``block`` groups sources per layer unless the config sets an AttnRes block count
(``attnres_blocks``/``layers_per_block``), so e.g. "Block multi-head" is ``variant="multihead",
attnres_blocks=8``. Every new mixing weight is initialised so the model starts as the baseline
(uniform softmax weights: RMSNorm makes the 1/n scale irrelevant), which
``tests/test_models.py::test_init_equivalence`` proves.

Adding a variant: a member of records.choices.Variant, a subclass of ``Residual`` (or of ``AttnRes``
overriding ``logits``/``weights``) with one line in ``VARIANTS``, and its terms in
harness/variant_costs.py's ``COSTS`` (parameters and FLOPs; the tests check them against the module).

Speed (bench/bench_models.py measures it against the baseline): the fast kernels live in
harness/kernels.py. The mix never stacks its sources (``weighted_sum`` reads them in place); each
source's key RMS and logits for all later mixes come from one matmul when the source is produced
(``Source``, ``key_logits``); the paper's two-phase Block inference is there as an option
(``AttnRes.two_phase``). ``tests/test_perf_equivalence.py`` checks every fast path against a naive
implementation of the equations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import kernels
from harness.kernels import weighted_sum
from harness.variant_costs import attnres_block_layout, n_sources_per_mix
from records.choices import Variant
from records.config import ConfigError


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


class Baseline(Residual):
    """Standard PreNorm residual: x_{l+1} = x_l + f_l(x_l); output x_{L+1} (section 1)."""

    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        for f in layers:
            out = f(x)
            self._record_output(out)
            x = x + out
        return x


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
    """Full/Block Attention Residuals (PAPER.md section 1). The input of layer l is

        h_l = sum_i alpha_{i->l} v_i,    alpha_{i->l} = softmax_i( w_l . RMSNorm_l(v_i) )

    over its sources v_i: ``b_0`` = the embedding (exactly once) and, per AttnRes block, the sum of
    its raw sublayer outputs; inside an AttnRes block the i-th layer (i >= 2) also reads the partial
    sum of the block's first i-1 layers. With S = 1 (one layer per AttnRes block) this is Full
    AttnRes: every raw sublayer output is a source. No temperature; w_l is zero-initialised, the
    key RMSNorm gains g_l start at 1. A final mix (query L) forms the input of the final norm.
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
        self.layout = attnres_block_layout(cfg)
        self.query = nn.Parameter(torch.zeros(n_mix, D))  # w_l, one per layer + final aggregation
        self.key_gain = nn.Parameter(torch.ones(n_mix, D))  # g_l, gain of each layer's key RMSNorm

    # -- the depth attention of mix l, term by term
    def logits(self, l: int, sources: list[Source]) -> Tensor:
        """z_i = w_l . RMSNorm_l(v_i): [n, B, T] (each computed when v_i was produced)."""
        return torch.stack([s.logits[l - s.first] for s in sources])

    def weights(self, logits: Tensor) -> Tensor:
        """alpha_{i->l} = softmax_i(z_i): [n, B, T]."""
        return torch.softmax(logits, dim=0)

    def mix(self, l: int, sources: list[Source]) -> Tensor:
        """h_l = sum_i alpha_{i->l} v_i: [B, T, D]."""
        alpha = self.weights(self.logits(l, sources))  # n, B, T
        self._record_alpha(alpha)
        values = [s.value for s in sources]
        return weighted_sum(alpha.to(values[-1].dtype), values)  # B, T, D

    # -- keys: a source's logits for all its readers at once
    def key_logits(self, v: Tensor, mixes: slice) -> Tensor | None:
        """M, B, T logits w_l . RMSNorm_l(v) of source v for the M mixes l in ``mixes`` (the norm's
        gain folds into the query: w . (g * v / rms(v)) = ((w * g) . v) / rms(v))."""
        return kernels.key_logits(v, self.query[mixes] * self.key_gain[mixes], self.cfg.norm_eps)

    def source(self, v: Tensor, first: int, end: int) -> Source:
        """v as a source of mixes first .. end - 1."""
        z = self.key_logits(v, slice(first, end))
        return Source(v, None if z is None else z.unbind(0), first)

    # -- the sources, layer by layer
    def run(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        if self.two_phase and not torch.is_grad_enabled() and not self.record:
            return self.run_two_phase(x, layers)
        end = self.n_layers + 1  # completed AttnRes blocks are read by every later mix, the final one included
        completed = [self.source(x, 0, end)]  # b_0 = embedding, then each completed AttnRes block's sum
        l = 0
        for size in self.layout:
            partial: Tensor | None = None  # b_n^{i-1}; empty at the start of an AttnRes block
            for _ in range(size):
                sources = completed if partial is None else [*completed, self.source(partial, l, l + 1)]
                out = layers[l](self.mix(l, sources))  # raw sublayer output v_l (its PreNorm is inside)
                self._record_output(out)
                partial = out if partial is None else partial + out
                l += 1
            completed.append(self.source(partial, l, end))
        return self.mix(l, completed)  # final aggregation over b_0 .. b_N

    def run_two_phase(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        """Inference (PAPER.md section 1, "two-phase computation"); equals ``run`` up to rounding.
        Phase 1: the S queries of an AttnRes block attend over the completed blocks in one pass,
        which reads each completed block once per AttnRes block instead of once per layer. Phase 2:
        each layer i >= 2 merges its partial-sum source b_n^{i-1} by log-sum-exp: with Z the phase-1
        normaliser and z_p the partial's logit, h = (Z h_1 + e^{z_p} b_n^{i-1}) / (Z + e^{z_p})."""
        if not self.supports_two_phase:
            raise ValueError(f"two_phase: {type(self).__name__} changes the depth logits or weights, so "
                             "the two-phase merge does not apply; fix: leave two_phase False")
        end = self.n_layers + 1
        completed = [self.source(x, 0, end)]
        l = 0
        for size in self.layout:
            # phase 1: the AttnRes block's S queries against the completed blocks b_0 .. b_{n-1}
            z = torch.stack([torch.stack(s.logits[l - s.first:l - s.first + size]) for s in completed])  # n, S, B, T
            lse = torch.logsumexp(z, dim=0)  # S, B, T
            alpha = torch.exp(z - lse).to(x.dtype)  # n, S, B, T
            H = weighted_sum(alpha, [s.value[None] for s in completed])  # S, B, T, D
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
            completed.append(self.source(partial, l, end))
        return self.mix(l, completed)


class FullAttnRes(AttnRes):
    """Full AttnRes: every raw sublayer output is a source (S = 1; section 1, the equation of h_l)."""

    def __init__(self, cfg) -> None:
        if cfg.attnres_blocks is not None or cfg.layers_per_block is not None:
            raise ConfigError("attnres_blocks: variant 'full' uses one source per layer; "
                              "fix: use variant 'block' to group layers into AttnRes blocks", field="attnres_blocks")
        super().__init__(cfg)


class BlockAttnRes(AttnRes):
    """Block AttnRes: N AttnRes blocks of S layers, their sums as sources (section 1, "Block AttnRes")."""


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
        self.layout = attnres_block_layout(cfg)
        self.counts = n_sources_per_mix(cfg)
        self.scalar_logits = nn.Parameter(torch.zeros(sum(self.counts)))
        self.offsets = [sum(self.counts[:i]) for i in range(len(self.counts))]

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


# One class per records.choices.Variant (tests/test_models.py checks that they hold the same names).
VARIANTS: dict[Variant, type[Residual]] = {
    Variant.BASELINE: Baseline,
    Variant.FULL: FullAttnRes,
    Variant.BLOCK: BlockAttnRes,
    Variant.SIGMOID: SigmoidAttnRes,
    Variant.NOKEYNORM: NoKeyNormAttnRes,
    Variant.INPUTQUERY: InputQueryAttnRes,
    Variant.STATIC: StaticAttnRes,
    Variant.DENSEFORMER: DenseFormer,
    Variant.MULTIHEAD: MultiHeadAttnRes,
}


def make_residual(cfg) -> Residual:
    return VARIANTS[cfg.variant](cfg)
