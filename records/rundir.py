"""The run directory: the one module that defines its format (training writes, collector reads).

    <runs_root>/<sweep>/<run_id>/
        spec.json        resolved RunSpec (written by launch or `attnres train`; training only reads it)
        derived.json     what training derives from the spec (``Derived``: parameter groups,
                         FLOPs/token, tokens/step, steps), written once by training at its start;
                         directories of earlier versions hold it as spec.json's "derived" block
                         instead, which ``read_derived`` falls back to
        env.json         provenance written at (re)start: versions, git commit, device, host
        status.json      {"state", "message", "step", "tokens", "updated", "attempts", "job_id"}
        metrics.jsonl    one ``MetricRow`` per line (METRIC_FIELDS; checked when written)
        train.log        human-readable progress lines (never parsed)
        lock             flock'ed by the one process that trains the run (harness/runlock.py)
        cancelled.json   present after `attnres cancel`: launch leaves the run alone unless asked
        ckpt/last.pt     latest full training state (atomic replace; tensors and plain data only)
        ckpt/last.json   what the checkpoint holds (run, step, tokens, time), human-readable
        ckpt/tokens_<n>.pt  kept checkpoints at requested token counts (WSD branch points), + .json;
                         ``KeptCheckpoint`` names them (and reads the token count back)

States: pending (no directory or no status), queued, running, done, failed, diverged, preempted,
cancelled (stopped on purpose by `attnres cancel`).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from records.choices import RunState
from records.metrics import METRIC_FIELDS, TIMING_FIELDS, MetricRow, MetricRowError  # noqa: F401 - re-exported

STATES = tuple(RunState)
CANCEL_MARK = "cancelled.json"
FINAL_STATES = ("done", "failed", "diverged")


def is_cancelled(run_dir: str | os.PathLike[str]) -> bool:
    """True after `attnres cancel` marked the run (until `launch --include-cancelled` clears it)."""
    return (Path(run_dir) / CANCEL_MARK).exists()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename; a crash never
    leaves a half-written file. Honours the umask (mkstemp's 0600 would hide run files and results
    from the rest of a cluster group)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, fill: Callable[[BinaryIO], Any]) -> None:
    """``atomic_write_bytes`` for content written by ``fill(file)`` (e.g. torch.save of a checkpoint,
    streamed rather than held in memory twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON; store them as null-safe strings would be stringly; use None + flag."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


@dataclass(frozen=True)
class Derived:
    """What training derives from a run's spec (derived.json; harness/runinfo.py computes it): the
    numbers collect and status read without recomputing them."""

    params: dict[str, int]  # parameter groups (harness.accounting.ParamCounts.as_dict(): ..., total, non_embedding)
    flops_per_token: dict[str, float]  # {"forward": ..., "train": 3 x forward}
    tokens_per_step: int  # batch_size x seq_len
    steps: int  # optimizer steps of the whole run (records/steps.py)

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "flops_per_token": dict(self.flops_per_token),
                "tokens_per_step": self.tokens_per_step, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Derived:
        keys = ("params", "flops_per_token", "tokens_per_step", "steps")
        if not isinstance(d, dict) or set(d) != set(keys):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{where}: expected the keys {list(keys)}, got {got}; fix: delete it (training "
                             "writes it again when it next starts)")
        return cls(**{k: d[k] for k in keys})


@dataclass(frozen=True)
class KeptCheckpoint:
    """A checkpoint kept at a token count (a WSD branch point): ``ckpt/tokens_<n>.pt`` of its run. The
    one place that names such a file and reads the token count back from a name."""

    tokens: int

    @property
    def name(self) -> str:
        return f"tokens_{int(self.tokens)}.pt"

    def init_from(self, run_id: str) -> str:
        """How a branch names it in ``train.init_from``: relative to the sweep's runs directory."""
        return f"{run_id}/ckpt/{self.name}"

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> KeptCheckpoint | None:
        """The kept checkpoint a path names, or None for any other file (``last.pt``, ...)."""
        name = PurePosixPath(os.fspath(path)).name
        digits = name.removeprefix("tokens_").removesuffix(".pt")
        if not (digits.isascii() and digits.isdigit()) or name != cls(int(digits)).name:
            return None
        return cls(int(digits))


@dataclass
class MetricsRead:
    rows: list[dict[str, Any]]
    problems: list[str]  # e.g. a truncated last line, a corrupt line (with its line number)


class RunDir:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    # --- paths
    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def env_path(self) -> Path:
        return self.path / "env.json"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.ckpt_dir / "last.pt"

    def kept_ckpt(self, tokens: int) -> Path:
        return self.ckpt_dir / KeptCheckpoint(tokens).name

    @property
    def derived_path(self) -> Path:
        return self.path / "derived.json"

    # --- spec / env
    def write_spec(self, spec_dict: dict[str, Any]) -> None:
        _atomic_write_text(self.spec_path, json.dumps(spec_dict, indent=2, sort_keys=True, default=_json_default))

    def read_spec(self) -> dict[str, Any]:
        return json.loads(self.spec_path.read_text())

    # --- derived values (training's one file)
    def write_derived(self, derived: Derived) -> None:
        _atomic_write_text(self.derived_path, json.dumps(derived.to_dict(), indent=2, sort_keys=True,
                                                         default=_json_default))

    def read_derived(self) -> Derived | None:
        """derived.json; in a directory of an earlier version, spec.json's "derived" block; None when
        training has not written them yet. ValueError (naming the file and the fix) when unreadable."""
        if self.derived_path.exists():
            try:
                d = json.loads(self.derived_path.read_text())
            except ValueError as e:
                raise ValueError(f"{self.derived_path}: not JSON ({e}); fix: delete it (training writes it "
                                 "again when it next starts)") from None
            return Derived.from_dict(d, str(self.derived_path))
        try:
            spec = self.read_spec()
        except (FileNotFoundError, ValueError):
            return None
        if isinstance(spec, dict) and "derived" in spec:
            return Derived.from_dict(spec["derived"], f"{self.spec_path} (\"derived\")")
        return None

    def write_env(self, env: dict[str, Any]) -> None:
        _atomic_write_text(self.env_path, json.dumps(env, indent=2, sort_keys=True, default=_json_default))

    def read_env(self) -> dict[str, Any]:
        try:
            return json.loads(self.env_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    # --- status
    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        assert state in STATES, state
        old = self.read_status()
        status = {**old, **extra, "state": state, "message": message, "updated": time.time()}
        _atomic_write_text(self.status_path, json.dumps(_clean(status), indent=2, sort_keys=True,
                                                        default=_json_default))

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError:
            return {"state": "failed", "message": "status.json is corrupt"}

    @property
    def state(self) -> str:
        return self.read_status().get("state", "pending")

    # --- metrics
    def append_metrics(self, row: MetricRow | Mapping[str, Any]) -> None:
        """Append one row; a dict must be a whole MetricRow (MetricRowError names a missing, extra or
        mistyped field, and nothing is written)."""
        if not isinstance(row, MetricRow):
            row = MetricRow.from_dict(row)
        self._append_rows([row.as_dict()])

    def copy_metrics(self, source: RunDir, max_step: int) -> None:
        """Append ``source``'s rows up to ``max_step`` as they are (a WSD branch starts with its parent's
        curve; the rows were checked when the parent wrote them)."""
        self._append_rows([r for r in source.read_metrics().rows if int(r["step"]) <= max_step])

    def _append_rows(self, rows: list[dict[str, Any]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(_clean(r), default=_json_default, separators=(",", ":")) + "\n" for r in rows)
        with open(self.metrics_path, "a") as f:
            f.write(lines)
            f.flush()

    def read_metrics(self) -> MetricsRead:
        """All complete rows; a truncated or corrupt line is reported, never raised."""
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        try:
            data = self.metrics_path.read_bytes()
        except FileNotFoundError:
            return MetricsRead([], ["no metrics.jsonl"])
        text = data.decode("utf-8", errors="replace")
        complete_end = not text or text.endswith("\n")
        lines = text.split("\n")
        # fast path: every line is a complete JSON object -> decode them all in one call (~2x faster)
        body = [ln for ln in (lines[:-1] if complete_end else []) if ln.strip()]
        if complete_end:
            try:
                rows = json.loads("[" + ",".join(body) + "]")
                if len(rows) == len(body) and all(isinstance(r, dict) for r in rows):
                    return MetricsRead(rows, [])
            except ValueError:
                pass
            rows = []
        for i, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            is_last = i == len(lines)
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError:
                kind = "truncated last line" if (is_last and not complete_end) else "corrupt line"
                problems.append(f"metrics.jsonl:{i}: {kind}")
                continue
            rows.append(row)
        return MetricsRead(rows, problems)

    def truncate_metrics(self, max_step: int) -> None:
        """Keep only rows with step <= max_step (on resume from a checkpoint taken at max_step).

        Rows written after the checkpoint would be written again by the resumed run; dropping them
        keeps exactly one row per (kind, step)."""
        if not self.metrics_path.exists():
            return
        kept = [r for r in self.read_metrics().rows if int(r.get("step", -1)) <= max_step]
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
        _atomic_write_text(self.metrics_path, text)

    def log(self, line: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(line.rstrip("\n") + "\n")
