"""The variants implement PAPER.md section 1 exactly; parameters and FLOPs are counted exactly."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from harness.accounting import flops_per_token, param_counts
from harness.ladder import LADDERS, model_config
from harness.model import LM
from harness.residuals import VARIANTS
from harness.variant_costs import COSTS, attnres_block_layout
from records.choices import Variant
from records.config import ConfigError, ModelConfig

torch.set_num_threads(1)


def small_cfg(variant: str = "baseline", **kw) -> ModelConfig:
    values = dict(vocab_size=64, n_blocks=5, d_model=32, n_heads=4, d_ff=64, seq_len=16, variant=variant)
    return ModelConfig(**{**values, **kw})


def twin(cfg: ModelConfig, base: LM) -> LM:
    """A model of cfg's variant with the baseline's sublayer/embedding/head weights."""
    model = LM(cfg)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("residual.") for k in missing)
    return model


def randomise_residual(model: LM, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.residual.named_parameters():
            p.copy_(p + 0.5 * torch.randn(p.shape, generator=g))


# L = 10 layers: N = 4 does not divide it (blocks of 3, 3, 3, 1)
BLOCK_SETTINGS = [dict(attnres_blocks=n) for n in (1, 2, 4, 5, 10)] + [dict(layers_per_block=4)]


@pytest.mark.parametrize("variant,extra", [("full", {})] + [("block", kw) for kw in BLOCK_SETTINGS]
                         + [(v, {}) for v in ("sigmoid", "nokeynorm", "inputquery", "static",
                                              "denseformer")]
                         + [("multihead", dict(depth_heads=4, attnres_blocks=5))])
def test_init_equivalence(variant, extra):
    """Zero pseudo-queries -> uniform weights -> h_l = residual stream / n; RMSNorm is scale-invariant,
    so the variant's logits equal the baseline's (PAPER.md, 'A property that must hold')."""
    torch.manual_seed(0)
    base = LM(small_cfg())
    model = twin(small_cfg(variant, **extra), base)
    idx = torch.randint(0, 64, (3, 16))
    diff = (model(idx) - base(idx)).abs().max().item()
    assert diff < 1e-5, f"{variant} {extra}: max |logit diff| = {diff:.2e}"


# a real (non-degenerate) setting per variant: Block with 2 blocks, multi-head with 4 depth heads
DISTINCT_SETTINGS = {"block": dict(attnres_blocks=2), "multihead": dict(depth_heads=4)}


def perturb(model: LM, seed: int, scale: float) -> None:
    """Move every parameter away from its initial value (trained-like weights)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"baseline"}))
def test_every_variant_computes_a_different_function(variant):
    """Away from init (queries non-zero, scalar logits random, norm gains not 1, ...) every variant
    must compute another function than the baseline with the same shared weights: a variant that
    only rescales the residual stream, which PreNorm sublayers and the final norm undo, is the
    baseline under another name (PAPER.md section 4). "Different" is measured against rounding:
    the baseline's float32 vs float64 logits."""
    torch.manual_seed(4)
    base = LM(small_cfg())
    perturb(base, seed=5, scale=0.1)
    model = twin(small_cfg(variant, **DISTINCT_SETTINGS.get(variant, {})), base)
    randomise_residual(model, seed=6)
    assert all(p.abs().max() > 0 for p in model.residual.parameters())
    idx = torch.randint(0, 64, (3, 16))
    with torch.no_grad():
        ref = base(idx)
        rounding = (copy.deepcopy(base).double()(idx) - ref.double()).abs().max().item()
        diff = (model(idx) - ref).abs().max().item()
    print(f"\n{variant}: max |logit diff| vs baseline {diff:.2e}, fp32 rounding {rounding:.2e}")
    assert diff > max(1e3 * rounding, 1e-2), f"{variant} computes the baseline's function (diff {diff:.2e})"


def test_double_counted_embedding_breaks_equivalence():
    """The init property is sensitive: the literal misreading of the pseudocode that seeds the first
    partial sum with the embedding (counting it twice) no longer matches the baseline."""
    torch.manual_seed(0)
    base = LM(small_cfg())
    model = twin(small_cfg("block", attnres_blocks=4), base)
    idx = torch.randint(0, 64, (3, 16))
    x = model.embed(idx)
    layers = list(model.layers)
    h = model.residual.run(x, [lambda h, f=layers[0]: f(h) + x, *layers[1:]])
    wrong = model.lm_head(model.final_norm(h))
    assert (wrong - base(idx)).abs().max() > 1e-3


@pytest.mark.parametrize("n_blocks", [2, 3])
def test_block_equals_full(n_blocks):
    """Block AttnRes with N = L is Full AttnRes, forward and gradients, with non-zero queries."""
    torch.manual_seed(1)
    full = LM(small_cfg("full", n_blocks=n_blocks))
    randomise_residual(full, seed=7)
    block = LM(small_cfg("block", n_blocks=n_blocks, attnres_blocks=2 * n_blocks))
    block.load_state_dict(full.state_dict())
    idx = torch.randint(0, 64, (2, 16))
    lf, lb = full.loss(idx, idx.roll(1, 1)), block.loss(idx, idx.roll(1, 1))
    assert torch.allclose(full(idx), block(idx), atol=1e-6, rtol=0)
    lf.backward()
    lb.backward()
    for (name, pf), (_, pb) in zip(full.named_parameters(), block.named_parameters()):
        assert torch.allclose(pf.grad, pb.grad, atol=1e-6, rtol=1e-5), name


# ---------------------------------------------------------------------------------------------
# A deliberately naive reference written from the equations: explicit loop over sources, explicit
# normalised keys k_i = g * v_i / sqrt(mean(v_i^2) + eps), explicit softmax.
def naive_mix(w, g, sources, eps):
    logits = []
    for v in sources:
        k = g * v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps)
        logits.append((w * k).sum(-1))
    z = torch.stack(logits)  # n, B, T
    z = z - z.max(0).values
    e = z.exp()
    alpha = e / e.sum(0)
    out = torch.zeros_like(sources[0])
    for a, v in zip(alpha, sources):
        out = out + a[..., None] * v
    return out


def naive_forward(model: LM, idx, S: int):
    """Block AttnRes with S layers per block (S = 1 is Full) straight from PAPER.md section 1."""
    cfg = model.cfg
    q, g = model.residual.query, model.residual.key_gain
    L = cfg.n_layers
    blocks = [model.embed(idx)]  # b_0
    partial = None
    for l in range(L):
        first_in_block = l % S == 0
        sources = list(blocks) if first_in_block else [*blocks, partial]
        h = naive_mix(q[l], g[l], sources, cfg.norm_eps)
        out = model.layers[l](h)
        partial = out if first_in_block else partial + out
        if (l + 1) % S == 0 or l == L - 1:
            blocks.append(partial)
    h = naive_mix(q[L], g[L], blocks, cfg.norm_eps)
    return model.lm_head(model.final_norm(h))


@pytest.mark.parametrize("variant,extra,S", [("full", {}, 1), ("block", dict(attnres_blocks=10), 1),
                                             ("block", dict(attnres_blocks=5), 2),
                                             ("block", dict(attnres_blocks=4), 3),
                                             ("block", dict(layers_per_block=4), 4),
                                             ("block", dict(attnres_blocks=1), 10)])
def test_naive_reference(variant, extra, S):
    torch.manual_seed(2)
    model = LM(small_cfg(variant, **extra))
    randomise_residual(model, seed=3)
    assert model.cfg.attnres_block_size == S
    idx = torch.randint(0, 64, (2, 16))
    tgt = idx.roll(1, 1)
    fast = model(idx)
    slow = naive_forward(model, idx, S)
    assert (fast - slow).abs().max() < 1e-5
    F.cross_entropy(fast.reshape(-1, 64), tgt.reshape(-1)).backward()
    g_fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(slow.reshape(-1, 64), tgt.reshape(-1)).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(g_fast[n], p.grad, atol=1e-5, rtol=1e-4), n


def test_attnres_block_layout_last_block_shorter():
    assert attnres_block_layout(small_cfg("block", attnres_blocks=4)) == [3, 3, 3, 1]
    assert attnres_block_layout(small_cfg("block", layers_per_block=4)) == [4, 4, 2]


@pytest.mark.parametrize("bad,field", [
    (dict(d_model=30, n_heads=4), "d_model"),
    (dict(variant="block", attnres_blocks=11), "attnres_blocks"),  # more blocks than layers
    (dict(variant="block", attnres_blocks=6), "attnres_blocks"),  # L=10 can't make 6 blocks
    (dict(variant="block"), "attnres_blocks"),  # block without a count
    (dict(variant="nope"), "variant"),
    (dict(variant="full", depth_heads=2), "depth_heads"),
])
def test_config_errors_name_field_and_fix(bad, field):
    with pytest.raises(ConfigError) as e:
        small_cfg(**bad)
    assert str(e.value).startswith(field) and "fix:" in str(e.value)


# ---------------------------------------------------------------------------------------------
def _group_of(name: str, n_blocks: int) -> str:
    """Classify a parameter by its module path (independent of harness.accounting)."""
    if name.startswith("embed."):
        return "embedding"
    if name.startswith("lm_head."):
        return "lm_head"
    if name.startswith("residual."):
        return "attnres"
    if name.endswith("norm.weight"):
        return "norms"
    layer = int(name.split(".")[1])
    return "attention" if layer % 2 == 0 else "mlp"


def _variant_kwargs(variant: str, n_layers: int) -> dict:
    if variant == "block":
        return {"attnres_blocks": n_layers // 2}
    if variant == "multihead":
        return {"depth_heads": 2}
    return {}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_param_groups(variant):
    for ladder, sizes in LADDERS.items():
        for size, shape in sizes.items():
            for tie in (False, True):
                kw = _variant_kwargs(variant, 2 * shape.n_blocks)
                cfg = model_config(ladder, size, variant=variant, vocab_size=256, tie_embeddings=tie, **kw)
                with torch.device("meta"):
                    model = LM(cfg)
                counts = param_counts(cfg)
                assert counts.total == sum(p.numel() for p in model.parameters())
                by_group: dict[str, int] = {}
                for name, p in model.named_parameters():
                    g = _group_of(name, cfg.n_blocks)
                    by_group[g] = by_group.get(g, 0) + p.numel()
                for g in ("embedding", "lm_head", "attention", "mlp", "norms", "attnres"):
                    assert getattr(counts, g) == by_group.get(g, 0), (ladder, size, variant, g)
                assert counts.non_embedding == counts.total - counts.embedding


def counted_forward_flops(cfg: ModelConfig) -> float:
    """Forward FLOPs per token as FlopCounterMode counts them on a real model. SDPA runs on its math
    backend here so the counter sees the attention-score matmuls."""
    model = LM(cfg)
    B = 2
    idx = torch.randint(0, cfg.vocab_size, (B, cfg.seq_len))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    return counter.get_total_flops() / (B * cfg.seq_len)


def _tiny(variant: str, size: str) -> ModelConfig:
    return model_config("tiny", size, variant=variant, seq_len=64,
                        **_variant_kwargs(variant, 2 * LADDERS["tiny"][size].n_blocks))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", ["d2", "d4", "d6"])
def test_flops_vs_counter(variant, size):
    """Forward matmul FLOPs of the formula agree with FlopCounterMode within 2%."""
    cfg = _tiny(variant, size)
    measured, formula = counted_forward_flops(cfg), flops_per_token(cfg).forward
    assert abs(measured / formula - 1) < 0.02, (measured, formula)


@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"baseline"}))
@pytest.mark.parametrize("size", ["d2", "d4", "d6"])
def test_attnres_flops_vs_counter(variant, size):
    """The AttnRes term on its own: the counter's FLOPs of the variant minus those of the baseline
    with the same sublayers must equal the formula's attnres group to rounding. (It is 1.4-4% of
    the forward FLOPs at these sizes, inside the total's 2% tolerance: a missing or miscounted
    term would pass test_flops_vs_counter.)"""
    cfg = _tiny(variant, size)
    measured = counted_forward_flops(cfg) - counted_forward_flops(_tiny("baseline", size))
    formula = flops_per_token(cfg).attnres
    assert measured > 0 and formula == pytest.approx(measured, rel=1e-9), (measured, formula)


def test_registries_hold_the_variant_names():
    """One residual class and one cost entry per records.choices.Variant member, keyed by the member."""
    assert list(VARIANTS) == list(Variant) and list(COSTS) == list(Variant)
    assert all(type(k) is Variant for k in (*VARIANTS, *COSTS))


def test_flop_formula_scales_with_context():
    cfg = model_config("tiny", "d4")
    f1, f2 = flops_per_token(cfg, context=128), flops_per_token(cfg, context=256)
    assert f2.attention_scores == 2 * f1.attention_scores and f2.mlp == f1.mlp
    assert f1.train == 3 * f1.forward


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "attnres", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "attnres" in out.stdout
