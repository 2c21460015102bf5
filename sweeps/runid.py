"""Run ids: a readable name and a hash of exactly the settings that decide what a run computes.

    <sweep>-<arm>-<size>[-<budget>][-<axes>]-s<seed>-<hash8>      e.g. demo-block-d3-s0-6a1f5ee2

The hash covers ``hashed_settings``: the resolved model config, the train config without the
execution-only settings (``EXECUTION_ONLY``), and the data's name (``data_key``). So an id names one
training run, a changed setting is a new run, and ids do not depend on the machine, the executor or
where the checkout lives. `attnres launch` checks an existing spec.json against the plan with the
same ``hashed_settings``, so the id and that check can never disagree about what matters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from records.config import DataConfig, ModelConfig, TrainConfig

# TrainConfig settings that change how a run executes, not what it computes: left out of the hash,
# so the same run keeps its id on another machine or executor (threads are set per executor).
EXECUTION_ONLY = ("threads", "device", "ckpt_every_s", "log_every_steps", "activation_checkpointing",
                  "init_from_outside_runs")


def data_key(path: str) -> str:
    """How a data directory enters run ids: its name under the data root ($ATTNRES_DATA_DIR or
    data/ of the working directory, records/paths.py; e.g. "wiki-byte"), else its absolute path. So
    ids do not depend on where the checkout lives or which directory `attnres` runs from."""
    from records.paths import data_root

    p = Path(path).resolve()
    try:
        return str(p.relative_to(data_root().resolve()))
    except ValueError:
        return str(p)


def hashed_settings(spec: dict[str, Any]) -> dict[str, Any]:
    """What a run id's hash stands for, from a spec dict (``RunSpec.to_dict()`` or a spec.json read
    back): model, train without EXECUTION_ONLY, data by its ``data_key``; as JSON values (lists, not
    tuples), so a spec read from disk compares equal to the plan it was written from."""
    train = {k: v for k, v in spec["train"].items() if k not in EXECUTION_ONLY}
    doc = {"model": spec["model"], "train": train, "data": {"path": data_key(spec["data"]["path"])}}
    return json.loads(json.dumps(doc, default=list))


def config_hash(model: ModelConfig, train: TrainConfig, data: DataConfig) -> str:
    """8 hex digits of sha256 over the canonical JSON of ``hashed_settings``."""
    doc = hashed_settings({"model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
                           "data": dataclasses.asdict(data)})
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_id(parts: list[str], model: ModelConfig, train: TrainConfig, data: DataConfig) -> str:
    """The readable parts (sweep, arm, size, budget tag, axis tag, s<seed>; empty ones dropped) joined
    by '-', made safe for paths and Slurm job names, then the hash."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(p for p in parts if p)).strip("-")
    return f"{name}-{config_hash(model, train, data)}"


def fmt_value(v: Any) -> str:
    """A setting's value as run ids spell it: 0.003 -> '0.003', 1e-4 -> '1e-4', True -> 'true'."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}".replace("e+", "e").replace("e-0", "e-")
    return str(v)


def fmt_count(n: float) -> str:
    """A token count as run ids spell it: 2500000 -> '2.5M'."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"
