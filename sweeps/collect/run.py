"""One run directory -> its runs.parquet row and its curves.parquet rows. Never raises on bad
content: whatever is wrong becomes a problem of the run.

    spec.json     through records.config.RunSpec (a spec that does not parse: null settings + a problem)
    derived.json  through RunDir.read_derived (older directories: spec.json's "derived" block), its
                  values' types checked by ``DerivedValues``
    env.json      through ``Env``
    status.json   through ``read_state``
    metrics.jsonl through RunDir.read_metrics, then ``latest_attempt`` (a resumed run appears once)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from records import tables
from records.choices import RunState, Variant, choices
from records.config import RunSpec
from records.rundir import RunDir
from records.units import PF_DAY
from sweeps.collect.values import Fields, as_int, column, number

CURVES_SCHEMA = tables.arrow_schema(tables.CURVES)
IDENT = ("run_id", "sweep", "arm", "variant", "size", "seed")  # curves columns that repeat the run's identity
_EVAL_STRUCT = pa.struct([f for f in CURVES_SCHEMA if f.name not in (*IDENT, "compute_pfdays")])
NOT_STARTED = (RunState.PENDING, RunState.QUEUED)  # no training process has written anything yet


def run_files(rd: RunDir) -> tuple[Path, ...]:
    """The files a run's row and curve are computed from (its fingerprint covers exactly these)."""
    return rd.spec_path, rd.status_path, rd.metrics_path, rd.env_path, rd.derived_path


# ----------------------------------------------------------------------------- the small typed readers


@dataclass(frozen=True)
class Env:
    """The provenance env.json records at each (re)start (harness/runinfo.py); None where absent or ill-typed."""

    versions: dict[str, str | None]  # python, torch, numpy, attnres
    git_commit: str | None
    device: str | None
    hostname: str | None
    started_at: float | None

    @classmethod
    def read(cls, doc: dict[str, Any], problems: list[str]) -> Env:
        f = Fields(doc, "env.json")
        env = cls(versions={k: f.string(f"versions.{k}") for k in ("torch", "numpy", "python", "attnres")},
                  git_commit=f.string("git_commit"), device=f.string("device"), hostname=f.string("hostname"),
                  started_at=f.float("started_at"))
        f.report(problems)
        return env

    def columns(self) -> dict[str, Any]:
        return {**{f"{k}_version": v for k, v in self.versions.items()}, "git_commit": self.git_commit,
                "device": self.device, "hostname": self.hostname, "started_at": self.started_at}


@dataclass(frozen=True)
class DerivedValues:
    """What training derived from the spec (records.rundir.Derived, harness/runinfo.py), each value
    checked for the type of its column; None where ill-typed."""

    params: dict[str, int | None]  # records.tables.PARAM_GROUPS
    flops_per_token: float | None  # training (3 x forward)
    flops_per_token_forward: float | None
    steps: int | None

    @classmethod
    def read(cls, rd: RunDir, started: bool, problems: list[str]) -> DerivedValues | None:
        """None when training has not written them (a problem once the run has started)."""
        try:
            derived = rd.read_derived()
        except ValueError as e:  # names the file and the fix
            problems.append(str(e))
            return None
        if derived is None:
            if started:
                problems.append("no derived.json (training writes it when it starts)")
            return None
        f = Fields(derived.to_dict(), rd.derived_path.name if rd.derived_path.exists() else 'spec.json "derived"')
        values = cls(params={g: f.int(f"params.{g}") for g in tables.PARAM_GROUPS},
                     flops_per_token=f.float("flops_per_token.train"),
                     flops_per_token_forward=f.float("flops_per_token.forward"), steps=f.int("steps"))
        f.report(problems)
        return values

    def columns(self) -> dict[str, Any]:
        return {**{f"params_{g}": n for g, n in self.params.items()}, "flops_per_token": self.flops_per_token,
                "flops_per_token_forward": self.flops_per_token_forward}


def read_state(rd: RunDir, problems: list[str]) -> str:
    """The state status.json records ("pending" without one). A corrupt file reads "failed", as
    RunDir.read_status has it, and is a problem; so is a state no run can be in."""
    try:
        status = json.loads(rd.status_path.read_bytes())
    except FileNotFoundError:
        problems.append("no status.json")
        return RunState.PENDING
    except ValueError:  # not JSON, or not UTF-8
        status = None
    if not isinstance(status, dict):
        problems.append("status.json is corrupt")
        return RunState.FAILED
    state = status.get("state", RunState.PENDING)
    if state not in choices(RunState):
        problems.append(f"status.json: unknown state {state!r}")
    return str(state)


def spec_columns(spec: RunSpec) -> dict[str, Any]:
    """The runs.parquet columns a parsed spec gives: identity, shape, AttnRes blocks, training settings."""
    m, t = spec.model, spec.train
    attnres = m.variant != Variant.BASELINE
    return {
        "arm": spec.arm or str(m.variant), "variant": str(m.variant), "ladder": spec.ladder, "size": spec.size,
        "n_blocks": m.n_blocks, "n_layers": m.n_layers, "d_model": m.d_model, "n_heads": m.n_heads, "d_ff": m.d_ff,
        "seq_len": m.seq_len, "vocab_size": m.vocab_size,
        # effective N and S (ModelConfig resolves either setting into both)
        "attnres_blocks": m.n_attnres_blocks if attnres else None,
        "attnres_block_size": m.attnres_block_size if attnres else None,
        "target_tokens": t.tokens, "seed": t.seed, "lr": float(t.lr), "batch_size": t.batch_size,
        "schedule": str(t.schedule),
    }


def _parse_spec(doc: dict[str, Any], run_id: str, sweep: str, problems: list[str]) -> RunSpec | None:
    try:
        spec = RunSpec.from_dict(doc)
    except KeyError as e:
        problems.append(f"spec.json lacks {e.args[0]}; the run's settings are unknown")
        return None
    except (ValueError, TypeError, AttributeError) as e:  # a ConfigError names the field and the fix
        problems.append(f"spec.json does not parse as a RunSpec ({e}); the run's settings are unknown")
        return None
    for key, have, want in (("run_id", spec.run_id, run_id), ("sweep", spec.sweep, sweep)):
        if have != want:
            problems.append(f"spec.json: {key} is {have!r}, the directory says {want!r}")
    return spec


def _spec_part(rd: RunDir, run_id: str, sweep: str, started: bool, problems: list[str]
               ) -> tuple[DerivedValues | None, dict[str, Any]]:
    """(derived block, the runs.parquet columns from spec.json, raw axis values under "axis_values")."""
    try:
        doc = rd.read_spec()
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        if started:  # the launcher may write status.json before training writes spec.json
            problems.append("no spec.json")
        return None, {"axes": None, "axis_values": {}}
    except ValueError:  # json.JSONDecodeError included
        problems.append("spec.json is corrupt")
        return None, {"axes": None, "axis_values": {}}
    derived = DerivedValues.read(rd, started, problems)
    derived_cols = derived.columns() if derived is not None else {}
    spec = _parse_spec(doc, run_id, sweep, problems)
    if spec is None:
        return derived, {**derived_cols, "axes": None, "axis_values": {}}
    cols = {**derived_cols, **spec_columns(spec)}
    cols["axes"] = ",".join(sorted(spec.axes))
    cols["axis_values"] = {str(k): v for k, v in spec.axes.items()}
    return derived, cols


# ----------------------------------------------------------------------------- metrics and the row


def latest_attempt(rows: list[dict[str, Any]], problems: list[str]) -> list[dict[str, Any]]:
    """The rows of the latest attempt at each step, in step order.

    A restart shows as a row whose step is below the last one kept, or that repeats a (kind, step);
    it supersedes every kept row after its step (and the one it repeats). This is "deduplicate by
    step, keep the last occurrence", also right when a crashed attempt left rows that the resumed
    one never re-wrote. (Hot loop: one pass, no per-row allocation in the common no-restart case.)"""
    kept: list[dict[str, Any]] = []
    last, kinds_at_last, n_bad = -1, set(), 0
    for row in rows:
        kind, step = row.get("kind"), row.get("step")
        if type(step) is not int:
            step = row["step"] = as_int(step)
        if step is None or (kind != "train" and kind != "eval"):
            n_bad += 1
            continue
        if step < last or (step == last and kind in kinds_at_last):  # a restart
            kept = [r for r in kept if r["step"] < step or (r["step"] == step and r["kind"] != kind)]
            last = kept[-1]["step"] if kept else -1
            kinds_at_last = {r["kind"] for r in kept if r["step"] == last}
        if step > last:
            last, kinds_at_last = step, set()
        kinds_at_last.add(kind)
        kept.append(row)
    if n_bad:
        problems.append(f"metrics.jsonl: {n_bad} rows without a valid kind ('train'/'eval') and step skipped")
    return kept


def _eval_columns(evals: list[dict[str, Any]], problems: list[str]) -> dict[str, pa.Array]:
    """The metric columns of curves.parquet from a run's eval rows; ill-typed values become null + a problem."""
    try:  # fast path: one C++ conversion of all rows (extra keys ignored, missing ones null)
        return dict(zip(_EVAL_STRUCT.names, pa.array(evals, type=_EVAL_STRUCT).flatten()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return {f.name: column([r.get(f.name) for r in evals], f, problems, "metrics.jsonl") for f in _EVAL_STRUCT}


def _curves(ident: dict[str, Any], cols: dict[str, pa.Array]) -> pa.Table:
    n = len(cols["step"])
    cols = {**cols, **{c: pa.array([ident[c]] * n, type=CURVES_SCHEMA.field(c).type) for c in IDENT},
            "compute_pfdays": pc.divide(cols["flops"], PF_DAY)}
    return pa.table([cols[f.name] for f in CURVES_SCHEMA], schema=CURVES_SCHEMA)


def _last(rows: list[dict[str, Any]], key: str, convert: Callable[[Any], Any]) -> Any:
    """The latest convertible value of ``key`` (rows are in step order)."""
    for r in reversed(rows):
        v = convert(r.get(key))
        if v is not None:
            return v
    return None


def _loss_columns(kept: list[dict[str, Any]], val_loss: pa.Array) -> dict[str, Any]:
    val = [number(v) for v in val_loss.to_pylist()]
    finite = [v for v in val if v is not None]
    tokens = _last(kept, "tokens", as_int) or 0
    wall_s = _last(kept, "elapsed_s", number)
    return {
        "final_val_loss": val[-1] if val else None,
        "best_val_loss": min(finite) if finite else None,
        "final_train_loss": _last(kept, "train_loss", number),
        "n_evals": len(val),
        "tokens": tokens,
        "wall_s": wall_s,
        "tokens_per_s": tokens / wall_s if wall_s else None,
    }


def _done_checks(derived: DerivedValues | None, evals: list[dict[str, Any]], final_val: float | None) -> list[str]:
    """A run that says it finished must show its final evaluation."""
    if not evals:
        return ["status is done but there are no evaluation rows"]
    problems = []
    steps = derived.steps if derived is not None else None
    if steps is not None and evals[-1]["step"] < steps:
        problems.append(f"status is done but the last evaluation is at step {evals[-1]['step']} of {steps}")
    if final_val is None:
        problems.append("status is done but the last evaluation has no finite val_loss")
    return problems


def read_run(rd: RunDir, run_id: str, sweep: str) -> tuple[dict[str, Any], pa.Table]:
    """One run's runs.parquet row (plus its raw axis values and problem list) and its curve rows."""
    problems: list[str] = []
    state = read_state(rd, problems)
    started = state not in NOT_STARTED
    derived, spec_cols = _spec_part(rd, run_id, sweep, started, problems)
    row: dict[str, Any] = {"run_id": run_id, "sweep": sweep, "status": state, **spec_cols}

    read = rd.read_metrics()
    if started or read.rows or rd.metrics_path.exists():  # a run not started yet has no metrics.jsonl
        problems += read.problems
    kept = latest_attempt(read.rows, problems)
    evals = [r for r in kept if r["kind"] == "eval"]
    metrics = _eval_columns(evals, problems)
    row.update(_loss_columns(kept, metrics["val_loss"]))
    if state == RunState.DONE:
        problems += _done_checks(derived, evals, row["final_val_loss"])

    env = rd.read_env()
    if env:
        row.update(Env.read(env, problems).columns())
    elif read.rows:
        problems.append("env.json is missing or corrupt")

    fpt = row.get("flops_per_token")
    row["compute_flops"] = fpt * row["tokens"] if fpt is not None else None
    row["compute_pfdays"] = row["compute_flops"] / PF_DAY if fpt is not None else None
    row["problem_list"] = problems
    return row, _curves({c: row.get(c) for c in IDENT}, metrics)


def planned_row(run_id: str, sweep: str) -> dict[str, Any]:
    """A run the sweep planned that has no directory yet: pending, nothing reached, losses unknown."""
    return {"run_id": run_id, "sweep": sweep, "status": RunState.PENDING, "tokens": 0, "n_evals": 0,
            "axis_values": {}, "problem_list": []}
