"""The fast paths of harness/residuals.py and harness/kernels.py against references written from the equations.

Guarded here: the ``attnres::weighted_sum`` operator (forward, backward, fake kernel), source logits
computed once per source (every AttnRes variant, forward and gradients), the two-phase Block
inference path, the depth-attention weights recorded for diagnostics, and bf16 autocast.
"""

from __future__ import annotations

import pytest
import torch

from harness.kernels import key_logits, weighted_sum
from harness.model import LM
from harness.residuals import AttnRes
from records.config import ModelConfig

torch.set_num_threads(1)


def small_cfg(variant: str, **kw) -> ModelConfig:
    values = dict(vocab_size=64, n_blocks=5, d_model=32, n_heads=4, d_ff=64, seq_len=16, variant=variant)
    return ModelConfig(**{**values, **kw})


def randomised(cfg: ModelConfig, seed: int = 0) -> LM:
    """A model whose mixing parameters are far from their (uniform-weight) init."""
    torch.manual_seed(seed)
    model = LM(cfg)
    with torch.no_grad():
        for name, p in model.residual.named_parameters():
            scale = 0.5 / cfg.d_model**0.5 if name == "query_proj" else 0.5  # keep q = O(1)
            p.add_(scale * torch.randn_like(p))
    return model


# ---------------------------------------------------------------------------------------------
# A naive reference for every AttnRes variant, from PAPER.md section 1 and Table 4: one source at a
# time, explicit normalised keys, explicit softmax, no caching, no batching.
def rms_normalise(v, eps):
    return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps)


def naive_weights(model: LM, l: int, sources: list, offset: int):
    """Depth weights of mix l: [n, B, T] ([n, B, T, H] for multihead)."""
    res, cfg = model.residual, model.cfg
    variant, eps = cfg.variant, cfg.norm_eps
    if variant in ("static", "denseformer"):
        B, T, _ = sources[0].shape
        z = res.scalar_logits[offset:offset + len(sources)][:, None, None].expand(-1, B, T)
        return z if variant == "denseformer" else torch.softmax(z, 0)
    w = res.query[l]
    if variant == "nokeynorm":
        z = torch.stack([(w * v).sum(-1) for v in sources])
    elif variant == "multihead":
        H, D = cfg.depth_heads, cfg.d_model
        wh, gh = w.view(H, D // H), res.key_gain[l].view(H, D // H)
        z = torch.stack([(wh * gh * rms_normalise(v.view(*v.shape[:-1], H, D // H), eps)).sum(-1)
                         for v in sources])  # n, B, T, H
    else:
        q = w
        if variant == "inputquery":
            q = w + rms_normalise(sources[-1], eps) @ res.query_proj[l].T
        z = torch.stack([(q * res.key_gain[l] * rms_normalise(v, eps)).sum(-1) for v in sources])
    if variant == "sigmoid":
        return 1 / (1 + torch.exp(-z))
    e = torch.exp(z - z.max(0).values)
    return e / e.sum(0)


def naive_mix(model: LM, alpha, sources):
    H = model.cfg.depth_heads
    out = torch.zeros_like(sources[0])
    for a, v in zip(alpha, sources):
        if model.cfg.variant == "multihead":
            out = out + (a[..., None] * v.view(*v.shape[:-1], H, -1)).reshape(v.shape)
        else:
            out = out + a[..., None] * v
    return out


def naive_forward(model: LM, idx):
    """Logits and the depth weights of every mix, with S = cfg.attnres_block_size layers per AttnRes block."""
    S, L = model.cfg.attnres_block_size, model.cfg.n_layers
    blocks, partial, alphas, offset = [model.embed(idx)], None, [], 0
    for l in range(L):
        first_in_block = l % S == 0
        sources = list(blocks) if first_in_block else [*blocks, partial]
        alpha = naive_weights(model, l, sources, offset)
        alphas.append(alpha)
        offset += len(sources)
        out = model.layers[l](naive_mix(model, alpha, sources))
        partial = out if first_in_block else partial + out
        if (l + 1) % S == 0 or l == L - 1:
            blocks.append(partial)
    alpha = naive_weights(model, L, blocks, offset)
    alphas.append(alpha)
    h = naive_mix(model, alpha, blocks)
    return model.lm_head(model.final_norm(h)), alphas


CASES = [("full", {}), ("block", dict(attnres_blocks=5)), ("block", dict(attnres_blocks=4)),
         ("block", dict(layers_per_block=4)), ("block", dict(attnres_blocks=1)),
         ("sigmoid", {}), ("sigmoid", dict(attnres_blocks=4)), ("nokeynorm", dict(attnres_blocks=4)),
         ("inputquery", {}), ("static", dict(attnres_blocks=4)), ("denseformer", {}),
         ("multihead", dict(depth_heads=4, attnres_blocks=5)), ("multihead", dict(depth_heads=2))]


@pytest.mark.parametrize("variant,extra", CASES)
def test_variants_match_naive(variant, extra):
    """Training path (one phase, logits computed once per source): forward and every gradient."""
    model = randomised(small_cfg(variant, **extra), seed=3)
    idx = torch.randint(0, 64, (2, 16))
    tgt = idx.roll(1, 1).reshape(-1)
    fast = model(idx)
    slow, _ = naive_forward(model, idx)
    assert (fast - slow).abs().max() < 1e-5
    torch.nn.functional.cross_entropy(fast.reshape(-1, 64), tgt).backward()
    g_fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.nn.functional.cross_entropy(slow.reshape(-1, 64), tgt).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(g_fast[n], p.grad, atol=1e-5, rtol=1e-4), n


@pytest.mark.parametrize("variant,extra", [c for c in CASES if c[0] in ("full", "block", "nokeynorm")])
def test_two_phase_inference_matches_naive(variant, extra):
    """With two_phase set, inference runs the two-phase computation (PAPER.md section 1); it equals
    the naive one-phase computation up to rounding. Training ignores the setting."""
    model = randomised(small_cfg(variant, **extra), seed=4)
    idx = torch.randint(0, 64, (3, 16))
    with torch.no_grad():
        one_phase = model(idx)
        slow, _ = naive_forward(model, idx)
        model.residual.two_phase = True
        fast = model(idx)
    assert (fast - slow).abs().max() < 1e-5
    assert (fast - one_phase).abs().max() < 1e-5
    assert torch.equal(model(idx), one_phase)  # with grad: the one-phase loop


def test_two_phase_only_where_it_applies():
    idx = torch.randint(0, 64, (1, 16))
    for variant, extra in CASES:
        res = LM(small_cfg(variant, **extra)).residual
        assert not res.two_phase, variant  # off by default
        assert res.supports_two_phase == (variant in ("full", "block", "nokeynorm")), variant
    model = LM(small_cfg("sigmoid"))
    model.residual.two_phase = True
    with torch.no_grad(), pytest.raises(ValueError, match="two_phase"):
        model(idx)


@pytest.mark.parametrize("variant,extra", CASES)
def test_recorded_depth_alpha_matches_naive(variant, extra):
    """diagnostics() records the same depth weights (token means, per mix) as the definitions."""
    model = randomised(small_cfg(variant, **extra), seed=5)
    idx = torch.randint(0, 64, (2, 16))
    recorded = model.diagnostics(idx)["depth_alpha"]
    with torch.no_grad():
        _, alphas = naive_forward(model, idx)
    assert len(recorded) == len(alphas) == model.cfg.n_layers + 1
    for rec, a in zip(recorded, alphas):
        want = a.float().reshape(a.shape[0], -1).mean(1)
        assert torch.allclose(torch.tensor(rec), want, atol=1e-6), (rec, want.tolist())


# ---------------------------------------------------------------------------------------------
def _wsum_inputs(alpha_shape, value_shapes, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(alpha_shape, generator=g, dtype=dtype, requires_grad=True)
    values = [torch.randn(s, generator=g, dtype=dtype, requires_grad=True) for s in value_shapes]
    return alpha, values


SHAPES = {  # alpha [n, ...], one value shape per source
    "mix": ((3, 2, 5), [(2, 5, 4)] * 3),
    "per_head": ((2, 2, 5, 3), [(2, 5, 3, 4)] * 2),
    "two_phase": ((3, 2, 2, 5), [(1, 2, 5, 4)] * 3),  # S = 2 queries at once, sources broadcast
    "one_source": ((1, 2, 5), [(2, 5, 4)]),
}


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_weighted_sum_op(case):
    alpha_shape, value_shapes = SHAPES[case]
    alpha, values = _wsum_inputs(alpha_shape, value_shapes)
    want = sum(a[..., None] * v for a, v in zip(alpha, values))
    assert torch.allclose(weighted_sum(alpha, values), want)
    assert torch.autograd.gradcheck(lambda a, *vs: weighted_sum(a, list(vs)), (alpha, *values))
    detached = (alpha.detach(), [v.detach() for v in values])  # the op's autograd is WeightedSum's
    torch.library.opcheck(torch.ops.attnres.weighted_sum.default, detached)


def test_key_logits_op():
    """Fused RMSNorm key + logits of one source for M pseudo-queries, and its hand-written backward."""
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    want = torch.stack([(w * rms_normalise(v, 1e-8)).sum(-1) for w in u])  # M, B, T
    assert torch.allclose(key_logits(v, u, 1e-8), want)
    assert torch.autograd.gradcheck(lambda v, u: key_logits(v, u, 1e-8), (v, u))


def test_weighted_sum_mixed_dtypes():
    """Under autocast the embedding is float32 and the sublayer outputs bfloat16: the sum is taken
    in the promoted dtype (as stacking them would), and each gradient comes back in its input's dtype."""
    alpha, values = _wsum_inputs((2, 2, 5), [(2, 5, 4)] * 2, dtype=torch.float32)
    values[1] = values[1].detach().bfloat16().requires_grad_()
    out = weighted_sum(alpha, values)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert values[0].grad.dtype == torch.float32 and values[1].grad.dtype == torch.bfloat16


@pytest.mark.parametrize("variant,extra", [("block", dict(attnres_blocks=5)), ("full", {})])
def test_bf16_autocast_close_to_float32(variant, extra):
    """The mixed-precision path the GPU benchmark uses (here on CPU): training and inference run
    and stay within bf16 rounding of float32."""
    model = randomised(small_cfg(variant, **extra), seed=6)
    idx = torch.randint(0, 64, (2, 16))
    ref = model(idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(idx)
        out.float().sum().backward()
        with torch.no_grad():
            out_nograd = model(idx)
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()
    assert (out_nograd.float() - out.float()).abs().max() < 0.1 * ref.abs().max()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.residual.parameters())


@pytest.mark.slow
def test_compiled_matches_eager():
    """torch.compile traces the variants without graph breaks in the mix and gives the same numbers."""
    model = randomised(small_cfg("block", attnres_blocks=4), seed=7)
    compiled = torch.compile(model, fullgraph=True)
    idx = torch.randint(0, 64, (2, 16))
    tgt = idx.roll(1, 1).reshape(-1)
    eager = model(idx)
    torch.nn.functional.cross_entropy(eager.reshape(-1, 64), tgt).backward()
    g_eager = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    out = compiled(idx)
    torch.nn.functional.cross_entropy(out.reshape(-1, 64), tgt).backward()
    assert (out - eager).abs().max() < 1e-5
    for n, p in model.named_parameters():  # compiled kernels reorder sums: compare at float32 rounding
        assert (g_eager[n] - p.grad).abs().max() <= 1e-5 * (1 + g_eager[n].abs().max()), n
    with torch.no_grad():
        assert (compiled(idx) - eager).abs().max() < 1e-5


def test_attnres_subclasses_declare_two_phase():
    """A subclass that changes the weights or the logits must opt out of the two-phase path."""
    for cls in AttnRes.__subclasses__():
        overrides = {"weights", "logits", "mix"} & set(vars(cls))
        if overrides:
            assert cls.supports_two_phase is False, (cls.__name__, overrides)
