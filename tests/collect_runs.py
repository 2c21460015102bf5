"""Run directories for the collector's tests (test_collect.py, test_collect_cli.py), written through
records.rundir.RunDir as training writes them."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pyarrow.parquet as pq

from records.config import ModelConfig, TrainConfig
from records.rundir import METRIC_FIELDS, Derived, RunDir

SWEEP = "demo"
STEPS_PER_EVAL = 10
TOKENS_PER_STEP = 8 * 128  # batch_size x seq_len below


def spec_dict(run_id: str, variant: str = "baseline", n_blocks: int = 2, n_evals: int = 4, seed: int = 0,
              axes: dict | None = None, attnres_blocks: int | None = None, layers_per_block: int | None = None,
              arm: str = "") -> dict:
    """A spec.json as training of earlier versions wrote it: RunSpec.to_dict() (every config field) plus
    "derived" (training now writes the derived values to derived.json: ``new_layout``)."""
    model = {f.name: f.default for f in fields(ModelConfig)}
    model.update(variant=variant, n_blocks=n_blocks, attnres_blocks=attnres_blocks, layers_per_block=layers_per_block)
    steps = n_evals * STEPS_PER_EVAL
    train = {f.name: f.default for f in fields(TrainConfig)}
    train.update(tokens=steps * TOKENS_PER_STEP, batch_size=8, seed=seed, save_at_tokens=[])
    v, d, f = model["vocab_size"], model["d_model"], model["d_ff"]
    params = {"embedding": v * d, "lm_head": v * d, "attention": n_blocks * 4 * d * d, "mlp": n_blocks * 3 * d * f,
              "norms": (2 * n_blocks + 1) * d, "attnres": 0 if variant == "baseline" else (2 * n_blocks + 1) * 2 * d}
    params["total"] = sum(params.values())
    params["non_embedding"] = params["total"] - params["embedding"]
    forward = 2.0 * (params["total"] - params["embedding"]) + 4.0 * 2 * n_blocks * model["seq_len"] * d
    return {"run_id": run_id, "sweep": SWEEP, "size": f"d{n_blocks}", "ladder": "demo", "axes": axes or {}, "arm": arm,
            "model": model, "train": train, "data": {"path": "data/default-byte"},
            "derived": {"params": params, "flops_per_token": {"forward": forward, "train": 3 * forward},
                        "tokens_per_step": TOKENS_PER_STEP, "steps": steps}}


def metric_row(spec: dict, kind: str, step: int, attempt: int = 0) -> dict:
    """One metrics.jsonl row (records.rundir.METRIC_FIELDS); ``attempt`` shifts the losses so the test
    can tell which attempt a kept row came from."""
    tokens = step * TOKENS_PER_STEP
    loss = 5.0 * (step + 1) ** -0.2 + 0.01 * spec["train"]["seed"] + 0.001 * attempt
    row = {"kind": kind, "step": step, "tokens": tokens,
           "flops": spec["derived"]["flops_per_token"]["train"] * tokens, "train_loss": loss, "val_loss": None,
           "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 1000.0, "elapsed_s": step * 0.1, "mfu": None,
           "layer_rms": None, "depth_alpha": None}
    if kind == "eval":
        row["val_loss"] = loss + 0.05
        if spec["model"]["variant"] != "baseline":
            n = 2 * spec["model"]["n_blocks"]  # sublayers; depth_alpha row l has the weights of l+1 sources
            row["layer_rms"] = [1.0 + 0.1 * i for i in range(n)]
            row["depth_alpha"] = [[1.0 / (l + 1)] * (l + 1) for l in range(n + 1)]
    assert set(row) == set(METRIC_FIELDS)  # the tests follow the format training writes
    return row


def write_rows(rd: RunDir, spec: dict, first: int, last: int, attempt: int = 0) -> None:
    """Training from step ``first`` (exclusive) to ``last``: a train row every 5 steps, an eval every 10."""
    for step in range(first + 5 - first % 5, last + 1, 5):
        rd.append_metrics(metric_row(spec, "train", step, attempt))
        if step % STEPS_PER_EVAL == 0:
            rd.append_metrics(metric_row(spec, "eval", step, attempt))


ENV = {"versions": {"python": "3.11.9", "torch": "2.13.0", "numpy": "2.4.6", "attnres": "0.1.0"},
       "git_commit": "4fa132f", "hostname": "node01", "device": "cpu", "world_size": 1, "started_at": 1.7e9}


def make_run(root: Path, run_id: str, state: str = "done", n_evals: int = 4, evals_done: int | None = None,
             **spec_kw) -> RunDir:
    rd = RunDir(root / SWEEP / run_id)
    spec = spec_dict(run_id, n_evals=n_evals, **spec_kw)
    rd.write_spec(spec)
    rd.write_env(ENV)
    done = n_evals if evals_done is None else evals_done
    write_rows(rd, spec, 0, done * STEPS_PER_EVAL)
    rd.set_status(state, step=done * STEPS_PER_EVAL, tokens=done * STEPS_PER_EVAL * TOKENS_PER_STEP, attempts=1)
    return rd


def new_layout(rd: RunDir) -> None:
    """The run directory as training writes it now: spec.json as launch wrote it, derived.json beside it."""
    spec = rd.read_spec()
    rd.write_derived(Derived(**spec.pop("derived")))
    rd.write_spec(spec)


def read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["run_id"]: r for r in rows}


def files(results: Path) -> dict[str, bytes]:
    return {name: (results / SWEEP / name).read_bytes() for name in ("runs.parquet", "curves.parquet")}
