"""What each residual variant adds to the model, torch-free: the sources each depth mix reads, the
parameters the variant adds and the matmul FLOPs of one mix (PAPER.md section 1, Table 4).

One definition: harness/residuals.py lays out its AttnRes blocks and sizes the static variants'
scalars with ``attnres_block_layout``/``n_sources_per_mix``; harness/accounting.py and
harness/memory.py count from ``COSTS``; so `attnres plan` counts parameters and FLOPs without
importing torch. ``tests/test_models.py`` checks the counts against the built modules
(``numel``) and the FLOPs against ``FlopCounterMode``, for every variant.

A model has L + 1 mixes (one before each of the L layers, one final aggregation before the final
norm); mix l reads n_l sources (``n_sources_per_mix``). With d = d_model, per mix:

    parameters     pseudo-query w_l          d        (zero-init)
                   key RMSNorm gain g_l      d        (one-init)
                   query projection W_l      d^2      (input-dependent query; zero-init)
                   scalar logits             n_l      (static, denseformer: one per source)
    matmul FLOPs   logits w_l . RMSNorm(v_i) 2 d n_l  (the key norm's gain folds into w_l)
                   weighted sum of sources   2 d n_l  (sum_i alpha_i v_i)
                   query projection          2 d^2
"""

from __future__ import annotations

from dataclasses import dataclass

from records.choices import Variant
from records.config import ModelConfig


def attnres_block_layout(cfg: ModelConfig) -> list[int]:
    """Layers in each AttnRes block: S each (``attnres_block_size``), the last one possibly shorter."""
    S, L = cfg.attnres_block_size, cfg.n_layers
    return [min(S, L - start) for start in range(0, L, S)]


def n_sources_per_mix(cfg: ModelConfig) -> list[int]:
    """Sources read by each of the L layer mixes and the final aggregation (L + 1 entries).

    Layer i of AttnRes block n reads the completed block sums b_0 (= the embedding) .. b_{n-1}, plus
    the partial sum b_n^{i-1} of its own AttnRes block from its second layer on; the final aggregation
    reads b_0 .. b_N."""
    counts, n_done = [], 1  # completed AttnRes blocks, b_0 = embedding
    for size in attnres_block_layout(cfg):
        for i in range(size):
            counts.append(n_done + (1 if i > 0 else 0))  # + the partial sum b_n^{i-1} for i >= 2
        n_done += 1
    counts.append(n_done)  # final aggregation over b_0 .. b_N
    return counts


@dataclass(frozen=True)
class MixCost:
    """The terms a variant's depth mix is made of; each adds its parameters and FLOPs (table above)."""

    mixes: bool = True  # False: no depth mix at all (the baseline's fixed residual sum)
    query: bool = True  # a pseudo-query w_l per mix
    key_gain: bool = True  # a key RMSNorm gain g_l per mix (False: raw keys, or no keys)
    key_logits: bool = True  # logits from the query and each source's key (False: the logits are parameters)
    query_proj: bool = False  # an input-dependent query W_l RMSNorm(latest source) per mix
    scalar_logits: bool = False  # one learned scalar per (mix, source)

    def params(self, cfg: ModelConfig) -> int:
        """Parameters the variant adds to the baseline's."""
        if not self.mixes:
            return 0
        d = cfg.d_model
        per_mix = (d if self.query else 0) + (d if self.key_gain else 0) + (d * d if self.query_proj else 0)
        scalars = sum(n_sources_per_mix(cfg)) if self.scalar_logits else 0
        return (cfg.n_layers + 1) * per_mix + scalars

    def mix_flops(self, d_model: int, n_sources: int) -> int:
        """Matmul FLOPs per token of one mix over ``n_sources`` sources."""
        if not self.mixes:
            return 0
        d, n = d_model, n_sources
        logits = 2 * d * n if self.key_logits else 0
        return logits + 2 * d * n + (2 * d * d if self.query_proj else 0)  # + the weighted sum

    def flops(self, cfg: ModelConfig) -> int:
        """Matmul FLOPs per token of all L + 1 mixes: the AttnRes term of the forward FLOPs."""
        if not self.mixes:
            return 0
        return sum(self.mix_flops(cfg.d_model, n) for n in n_sources_per_mix(cfg))


_ATTNRES = MixCost()
_STATIC = MixCost(query=False, key_gain=False, key_logits=False, scalar_logits=True)

# One entry per records.choices.Variant (tests/test_models.py checks the three registries agree).
COSTS: dict[Variant, MixCost] = {
    Variant.BASELINE: MixCost(mixes=False, query=False, key_gain=False, key_logits=False),
    Variant.FULL: _ATTNRES,
    Variant.BLOCK: _ATTNRES,
    Variant.SIGMOID: _ATTNRES,  # another normalisation of the same logits
    Variant.NOKEYNORM: MixCost(key_gain=False),
    Variant.INPUTQUERY: MixCost(query_proj=True),
    Variant.STATIC: _STATIC,
    Variant.DENSEFORMER: _STATIC,  # the scalars are the weights themselves
    Variant.MULTIHEAD: _ATTNRES,  # heads split d: the same parameters and FLOPs
}
