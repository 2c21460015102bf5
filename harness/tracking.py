"""Optional live tracking: the metric rows training writes to metrics.jsonl, mirrored to TensorBoard
and/or Weights & Biases (`pip install -e '.[tracking]'`; a sweep's [tracking] table, off by default).

    [tracking]
    backends = ["tensorboard", "wandb"]   # either or both
    project = "attnres-paper"             # wandb project (default attnres-<sweep>)
    entity = "my-team"                    # wandb entity (default: wandb's)
    wandb_mode = "offline"                # or "online" to stream live (needs `wandb login` and a network)

Only rank 0 logs. Run name = run id (wandb id too, so a requeued job continues the same run); the
resolved spec is the config (wandb config; a TensorBoard text entry); the wandb group is the sweep.
Every scalar field of each row is logged under its metrics.jsonl name at the row's step, plus
layer_rms/<i> per sublayer at evaluations (depth_alpha, a matrix per evaluation, stays in
metrics.jsonl and the figures). Files live in the run directory: tracking/tensorboard/ (event files:
`tensorboard --logdir runs/<sweep>` shows every run) and tracking/wandb/ (offline runs: `wandb sync
runs/<sweep>/*/tracking/wandb/offline-run-*`).

Resume: a tracker logs only rows past the last step it logged (tracking/logged.json). A resumed run
rewrites the rows after its checkpoint bit-identically, so the skipped ones are the same numbers; rows
already in metrics.jsonl past that step (a WSD branch's copy of its trunk's rows, tracking switched
on at a relaunch) are logged first.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from records.config import ConfigError, RunSpec
from records.rundir import RunDir, atomic_write_bytes

SCALARS = ("tokens", "flops", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")
EXTRA = "pip install -e '.[tracking]'"


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The values of a metrics row that a tracker logs, by tag."""
    out = {k: float(row[k]) for k in SCALARS if isinstance(row.get(k), int | float) and math.isfinite(row[k])}
    for i, v in enumerate(row.get("layer_rms") or []):
        out[f"layer_rms/{i:02d}"] = float(v)
    return out


class _TensorBoard:
    def __init__(self, spec: RunSpec, where: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(log_dir=str(where / "tensorboard"), flush_secs=30)
        self.w.add_text("spec", "```\n" + json.dumps(spec.to_dict(), indent=1, default=list) + "\n```")

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.w.add_scalar(k, v, global_step=step)

    def close(self) -> None:
        self.w.close()


class _Wandb:
    def __init__(self, spec: RunSpec, where: Path) -> None:
        import wandb

        tc = spec.tracking
        settings = wandb.Settings(console="off", x_disable_stats=True, silent=True)
        self.run = wandb.init(project=tc.project or f"attnres-{spec.sweep}", entity=tc.entity, name=spec.run_id,
                              id=spec.run_id, group=spec.sweep, job_type=spec.arm or spec.model.variant,
                              config=json.loads(json.dumps(spec.to_dict(), default=list)), dir=str(where),
                              mode=tc.wandb_mode, resume="allow", settings=settings)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


_BACKENDS = {"tensorboard": ("tensorboard", _TensorBoard), "wandb": ("wandb", _Wandb)}


class Tracker:
    """Mirrors metric rows to the configured backends; `log(row)` after each row, `close()` at the end."""

    def __init__(self, spec: RunSpec, run: RunDir) -> None:
        self.where = run.path / "tracking"
        self.state = self.where / "logged.json"
        self.last = int(json.loads(self.state.read_text())["step"]) if self.state.exists() else -1
        self.backends = []
        for name in spec.tracking.backends:
            module, cls = _BACKENDS[name]
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"tracking.backends: {name!r} is not installed; fix: {EXTRA}, or drop it "
                                  "from the sweep's [tracking] table", field="backends")
            self.where.mkdir(parents=True, exist_ok=True)
            self.backends.append(cls(spec, self.where))
        for row in run.read_metrics().rows:  # rows written before this tracker existed
            self.log(row)

    def log(self, row: dict[str, Any]) -> None:
        step = int(row["step"])
        if step <= self.last or not self.backends:
            return
        values = scalars(row)
        for b in self.backends:
            b.log(values, step)
        self.last = step
        atomic_write_bytes(self.state, json.dumps({"step": step}).encode())

    def close(self) -> None:
        for b in self.backends:
            b.close()
        self.backends = []


class NullTracker:
    def log(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def open_tracker(spec: RunSpec, run: RunDir, is_main: bool) -> Tracker | NullTracker:
    """A Tracker on rank 0 when the spec asks for one, else a tracker that does nothing."""
    if not (is_main and spec.tracking.backends):
        return NullTracker()
    return Tracker(spec, run)
