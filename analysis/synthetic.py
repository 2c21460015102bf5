"""Synthetic sweeps with known answers: runs.parquet and curves.parquet with the schemas of records/tables.py,
with losses drawn from a known law and a known compute multiplier per variant.

    spec = SyntheticSweep(multipliers={"baseline": 1.0, "block": 1.25}, noise=0.003, seeds=(0, 1))
    runs, curves = synthetic_frames(spec)
    write_results(runs, curves, Path("results/synthetic"))
    # the fitted multiplier of "block" should cover 1.25

Truth. The baseline's final loss at compute C is L_b(C) = E + A C^-alpha; a variant with multiplier m
reaches L_b(m C), i.e. exactly the loss the baseline reaches with m times the compute, so its
compute multiplier is m at every C. Each run adds Gaussian noise of sd ``noise`` to log L (seed-to-seed
scatter), and a hyperparameter penalty ``lr_curvature * log2(lr / lr_opt)^2`` when the sweep has an
lr axis. With ``budgets`` the sweep is an isoFLOP grid: every size at every compute budget, losses
from a Chinchilla law L(N, D) (D scaled by the variant's multiplier).

Used by the tests, by bench/bench_analysis.py, and to check the power of a sweep design before
spending compute (how wide would the interval be at this noise?).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.laws import ChinchillaLaw
from harness.accounting import flops_per_token, param_counts
from harness.ladder import LADDERS
from harness.variant_costs import n_sources_per_mix
from records import tables
from records.choices import Variant, choices
from records.config import ModelConfig
from records.units import PF_DAY


@dataclass(frozen=True)
class SyntheticSweep:
    sweep: str = "synthetic"
    multipliers: dict[str, float] = field(default_factory=lambda: {"baseline": 1.0, "block": 1.25, "full": 1.3})
    depths: tuple[int, ...] = (2, 3, 4, 5)  # sizes d2.. of the tiny ladder (harness/ladder.py)
    seeds: tuple[int, ...] = (0,)
    tokens_per_param: float = 20.0
    # baseline law L = E + A C^-alpha, C in PF-days (tiny CPU models: C ~ 1e-8..1e-6 PF-days)
    E: float = 0.0
    A: float = 0.9
    alpha: float = 0.09
    noise: float = 0.003  # sd of log L per run
    lrs: tuple[float, ...] = ()  # values of an "lr" sweep axis (empty: no axis)
    lr_opt: dict[str, float] = field(default_factory=dict)  # per variant best lr (default: the middle value)
    lr_curvature: float = 0.01  # nats per (log2 lr ratio)^2
    budgets: tuple[float, ...] = ()  # isoFLOP budgets in PF-days (replaces the tokens_per_param ray)
    # isoFLOP grids: L(N, D), N non-embedding (Hoffmann et al.'s exponents, coefficients scaled to tiny models)
    chinchilla: ChinchillaLaw = field(default_factory=lambda: ChinchillaLaw(E=1.7, A=60.0, B=400.0,
                                                                            alpha=0.34, beta=0.28))
    n_evals: int = 8
    seq_len: int = 128
    vocab_size: int = 256
    random_seed: int = 0  # of the noise

    def __post_init__(self) -> None:
        if "baseline" not in self.multipliers:
            raise ValueError("multipliers: needs a 'baseline' entry (1.0)")
        if self.noise < 0:
            raise ValueError(f"noise: must be >= 0, got {self.noise}")


def _shape(depth: int) -> dict[str, int]:
    """The tiny ladder's size d<depth> (harness/ladder.py), so synthetic runs look like real ones."""
    s = LADDERS["tiny"][f"d{depth}"]
    return {"n_blocks": s.n_blocks, "n_layers": 2 * s.n_blocks, "d_model": s.d_model, "n_heads": s.n_heads,
            "d_ff": s.d_ff}


def _config(shape: dict[str, int], vocab: int, variant: str, seq_len: int = 128) -> ModelConfig:
    """The model a synthetic arm stands for (unknown arm names count as Full AttnRes; Block has S = 2)."""
    v = variant if variant in choices(Variant) else Variant.FULL
    return ModelConfig(vocab_size=vocab, n_blocks=shape["n_blocks"], d_model=shape["d_model"],
                       n_heads=shape["n_heads"], d_ff=shape["d_ff"], variant=v, seq_len=seq_len,
                       **({"layers_per_block": 2} if v == Variant.BLOCK else {}))


def _params(shape: dict[str, int], vocab: int, variant: str) -> dict[str, int]:
    """Parameter groups from harness.accounting, as training records them."""
    counts = param_counts(_config(shape, vocab, variant)).as_dict()
    return {f"params_{g}": counts[g] for g in ("total", "non_embedding", "embedding", "lm_head", "attention",
                                                "mlp", "norms", "attnres")}


def _flops_per_token(shape: dict[str, int], vocab: int, variant: str, seq_len: int) -> float:
    """Training FLOPs per token from harness.accounting (the project's one compute convention)."""
    return float(flops_per_token(_config(shape, vocab, variant, seq_len)).train)


def _sources(shape: dict[str, int], vocab: int, variant: str) -> list[int]:
    """Depth-attention sources of each target layer 0..L-1 and of the final aggregation."""
    return n_sources_per_mix(_config(shape, vocab, variant))


def _depth_alpha(rng: np.random.Generator, counts: list[int], sharpness: float) -> list[list[float]]:
    rows = []
    for k in counts:
        logits = sharpness * rng.normal(size=k)
        logits[-1] += sharpness  # most weight on the latest source, as the paper's Figure 8 shows
        w = np.exp(logits - logits.max())
        rows.append((w / w.sum()).tolist())
    return rows


def synthetic_frames(spec: SyntheticSweep, with_curves: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(runs, curves) DataFrames with the columns and dtypes of docs/SCHEMAS.md (curves None when
    not ``with_curves``: faster, for many trials)."""
    rng = np.random.default_rng(spec.random_seed)
    runs, curves = [], []
    lrs = spec.lrs or (3e-3,)
    budgets = spec.budgets or (None,)
    # axis names as the sweeps package records them: "lr", and "compute" (training FLOPs) for isoFLOP budgets
    axes = ",".join(sorted(a for a, on in (("lr", bool(spec.lrs)), ("compute", bool(spec.budgets))) if on))
    for variant, mult in spec.multipliers.items():
        lr_opt = spec.lr_opt.get(variant, lrs[len(lrs) // 2])
        for depth in spec.depths:
            shape = _shape(depth)
            p = _params(shape, spec.vocab_size, variant)
            fpt = _flops_per_token(shape, spec.vocab_size, variant, spec.seq_len)
            for budget in budgets:
                tokens = (int(spec.tokens_per_param * _params(shape, spec.vocab_size, "baseline")["params_total"])
                          if budget is None else int(budget * PF_DAY / fpt))
                for lr in lrs:
                    for seed in spec.seeds:
                        run = _one_run(spec, rng, variant, mult, depth, shape, p, fpt, tokens, lr, lr_opt, seed,
                                       budget, axes, with_curves)
                        runs.append(run[0])
                        curves.extend(run[1])
    return pd.DataFrame(runs), pd.DataFrame(curves) if with_curves else None


def _one_run(spec: SyntheticSweep, rng: np.random.Generator, variant: str, mult: float, depth: int,
             shape: dict[str, int], p: dict[str, int], fpt: float, tokens: int, lr: float, lr_opt: float,
             seed: int, budget: float | None, axes: str, with_curves: bool = True) -> tuple[dict, list[dict]]:
    size = f"d{depth}"
    run_id = f"{spec.sweep}-{variant}-{size}" + (f"-C{budget:.3g}" if budget else "") + \
        (f"-lr{lr:g}" if spec.lrs else "") + f"-s{seed}"
    compute_flops = fpt * tokens
    penalty = spec.lr_curvature * math.log2(lr / lr_opt) ** 2
    noise = float(rng.normal(0.0, spec.noise))

    def loss_at(frac: float) -> float:
        if budget is None:
            c = mult * compute_flops * frac / PF_DAY
            base = spec.E + spec.A * c ** -spec.alpha
        else:
            base = float(spec.chinchilla.loss(p["params_non_embedding"], mult * tokens * frac))
        return (base + penalty) * math.exp(noise)

    model = _config(shape, spec.vocab_size, variant, spec.seq_len)
    attn = variant != "baseline"
    curve_rows = []
    evals = [(k + 1) / spec.n_evals for k in range(spec.n_evals)] if with_curves else [1.0]
    for k, frac in enumerate(evals):
        val = loss_at(frac) + 0.3 * (1 - frac) ** 2  # early checkpoints sit above the final-loss law
        sources = _sources(shape, spec.vocab_size, variant) if attn else []
        curve_rows.append({
            "run_id": run_id, "sweep": spec.sweep, "arm": variant, "variant": str(model.variant), "size": size, "seed": seed,
            "step": (k + 1) * 10, "tokens": int(tokens * frac), "flops": compute_flops * frac,
            "compute_pfdays": compute_flops * frac / PF_DAY, "train_loss": val + 0.02, "val_loss": val,
            "lr": lr * 0.5 * (1 + math.cos(math.pi * frac)), "grad_norm": 1.0 / (1 + k), "tokens_per_s": 5e4,
            "elapsed_s": 2.0 * (k + 1),
            "layer_rms": [(1.0 + (0.08 if variant == "full" else 0.15) * l) * (0.5 + 0.5 * frac)
                          for l in range(shape["n_layers"])] if attn else None,
            "depth_alpha": _depth_alpha(np.random.default_rng([seed, depth, k, len(variant)]), sources,
                                        1.0 + frac) if attn and with_curves else None,
        })
    final = curve_rows[-1]["val_loss"]
    row = {
        "run_id": run_id, "sweep": spec.sweep, "arm": variant, "variant": str(model.variant), "ladder": "tiny", "size": size,
        **shape, "seq_len": spec.seq_len, "vocab_size": spec.vocab_size,
        "attnres_blocks": model.n_attnres_blocks if attn else None, "attnres_block_size": model.attnres_block_size if attn else None,
        **p, "flops_per_token": fpt, "flops_per_token_forward": fpt / 3, "target_tokens": tokens, "tokens": tokens,
        "compute_flops": compute_flops, "compute_pfdays": compute_flops / PF_DAY, "seed": seed,
        "lr": lr, "batch_size": 32, "schedule": "cosine", "axes": axes,
        **({"axis_lr": lr} if spec.lrs else {}), **({"axis_compute": budget * PF_DAY} if budget else {}),
        "status": "done", "final_val_loss": final, "best_val_loss": min(r["val_loss"] for r in curve_rows),
        "final_train_loss": final + 0.02, "n_evals": len(curve_rows), "problems": "",
        "torch_version": "2.13.0", "numpy_version": "2.4.6", "python_version": "3.11", "attnres_version": "0.1.0",
        "git_commit": "0" * 40, "device": "cpu", "hostname": "synthetic", "started_at": 1.7e9,
        "wall_s": 2.0 * spec.n_evals, "tokens_per_s": tokens / (2.0 * spec.n_evals),
    }
    return row, curve_rows if with_curves else []


CURVES_SCHEMA = tables.arrow_schema(tables.CURVES)


def runs_schema(frame: pd.DataFrame) -> pa.Schema:
    """runs.parquet's schema (records/tables.py) with this frame's axis_<name> columns after "axes"."""
    axes = sorted(c for c in frame.columns if c.startswith("axis_"))
    return tables.arrow_schema(tables.RUNS, {c[5:]: "float64" if pd.api.types.is_numeric_dtype(frame[c]) else "string"
                                             for c in axes})


def write_results(runs: pd.DataFrame, curves: pd.DataFrame | None, results_dir: Path) -> tuple[Path, Path | None]:
    """Write results/<sweep>/runs.parquet (and curves.parquet) with the documented arrow types."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    schema = runs_schema(runs)
    table = pa.Table.from_pandas(runs[schema.names], schema=schema, preserve_index=False)
    runs_path = results_dir / "runs.parquet"
    pq.write_table(table.replace_schema_metadata(None), runs_path)
    curves_path = None
    if curves is not None:
        ct = pa.Table.from_pandas(curves[CURVES_SCHEMA.names], schema=CURVES_SCHEMA, preserve_index=False)
        curves_path = results_dir / "curves.parquet"
        pq.write_table(ct.replace_schema_metadata(None), curves_path)
    return runs_path, curves_path


def write_synthetic(spec: SyntheticSweep, results_dir: Path) -> tuple[Path, Path | None]:
    runs, curves = synthetic_frames(spec)
    return write_results(runs, curves, results_dir)
