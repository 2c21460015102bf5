"""Collect every run of a sweep into two parquet tables (schemas: docs/SCHEMAS.md).

    runs/<sweep>/<run_id>/{spec,status,env}.json + metrics.jsonl
        --collect--> results/<sweep>/runs.parquet    one row per run
                     results/<sweep>/curves.parquet  one row per evaluation point

    attnres collect demo                      # CLI (registered by sweeps.cli)
    python -m sweeps.collect demo --strict    # same; --strict exits 1 if any problem was found
    summary = collect("demo"); print(summary.format())

Policy (what "honest" means here):
- runs.parquet keeps every run that has a directory, whatever its state, plus the planned runs that
  have none (status "pending", null losses) when the caller passes ``expected_run_ids``. Analysis
  filters on ``status == "done"``; nothing is dropped on the collector's side.
- Whatever was wrong while reading a run (a truncated or corrupt metrics line, a missing file, a
  "done" run without its final evaluation, a run the sweep did not plan) goes into its ``problems``
  column and into the summary. A bad run never stops the collection.
- A resumed run appears once: a restart in metrics.jsonl (a step going back, or a (kind, step) seen
  before) supersedes every earlier row from the restart point on, so each evaluation step is kept
  once, from the latest attempt (the rows ``RunDir.truncate_metrics`` would have kept).

Mechanics:
- Incremental: ``.collect_cache.json`` keeps, per run, a fingerprint of its four files (size, mtime,
  ctime, inode) and its runs.parquet row; the curves of unchanged runs are taken from the previous
  curves.parquet. Deleting the cache gives identical files (tested).
- Deterministic: explicit arrow schemas, rows sorted by run_id (then step), no pandas metadata; the
  same input gives the same bytes, and a file whose bytes would not change is not rewritten (its
  mtime stays, so ``make`` does not refit).
- Atomic and concurrent-safe: one collector per sweep at a time (``flock`` on
  ``results/<sweep>/.collect.lock``, which also works across hosts on NFS); every file is written to
  a temporary file, fsynced, then ``os.replace``d, so readers see the old file or the new one, never
  half of one. curves.parquet is replaced before runs.parquet.
- Fast: parsing metrics.jsonl dominates a cold collection; ``workers`` (the CLI's --workers,
  default one per CPU) spreads it over processes. bench/bench_collect.py times 1,000 runs x 200
  evaluations.
"""

from __future__ import annotations

import fcntl
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from records.rundir import STATES, RunDir, atomic_write_bytes
from records.units import PF_DAY

CACHE_VERSION = 1  # bump when a cached row would be computed differently
STARTING_STATES = ("pending", "queued")  # no training process has written anything yet
PARALLEL_MIN_RUNS = 64  # fewer changed runs than this are read in-process (starting workers costs ~1 s)

RUNS_FILE, CURVES_FILE = "runs.parquet", "curves.parquet"
CACHE_FILE, LOCK_FILE = ".collect_cache.json", ".collect.lock"

_str, _i64, _f64 = pa.string(), pa.int64(), pa.float64()

# runs.parquet, in the column order of docs/SCHEMAS.md; the axis_<name> columns go right after "axes"
RUNS_FIELDS: list[tuple[str, pa.DataType]] = [
    *[(c, _str) for c in ("run_id", "sweep", "variant", "ladder", "size")],
    *[(c, _i64) for c in ("n_blocks", "n_layers", "d_model", "n_heads", "d_ff", "seq_len", "vocab_size")],
    ("attnres_blocks", _i64),
    *[(f"params_{g}", _i64) for g in ("total", "non_embedding", "embedding", "lm_head", "attention", "mlp",
                                      "norms", "attnres")],
    ("flops_per_token", _f64), ("flops_per_token_forward", _f64),
    ("target_tokens", _i64), ("tokens", _i64),
    ("compute_flops", _f64), ("compute_pfdays", _f64),
    ("seed", _i64), ("lr", _f64), ("batch_size", _i64), ("schedule", _str),
    ("axes", _str),
    ("status", _str),
    ("final_val_loss", _f64), ("best_val_loss", _f64), ("final_train_loss", _f64),
    ("n_evals", _i64),
    ("problems", _str),
    *[(c, _str) for c in ("torch_version", "numpy_version", "python_version", "attnres_version", "git_commit",
                          "device", "hostname")],
    ("started_at", _f64),
    ("wall_s", _f64), ("tokens_per_s", _f64),
]

CURVES_SCHEMA = pa.schema([
    *[(c, _str) for c in ("run_id", "sweep", "variant", "size")],
    ("seed", _i64),
    ("step", _i64), ("tokens", _i64),
    ("flops", _f64), ("compute_pfdays", _f64),
    *[(c, _f64) for c in ("train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")],
    ("layer_rms", pa.list_(_f64)),
    ("depth_alpha", pa.list_(pa.list_(_f64))),
])
_IDENT = ("run_id", "sweep", "variant", "size", "seed")  # curves columns that repeat the run's identity
_EVAL_STRUCT = pa.struct([f for f in CURVES_SCHEMA if f.name not in (*_IDENT, "compute_pfdays")])

# runs.parquet column <- dotted path in spec.json (RunSpec.to_dict() plus "derived")
_SPEC_PATHS = {
    "variant": "model.variant", "ladder": "ladder", "size": "size",
    **{c: f"model.{c}" for c in ("n_blocks", "d_model", "n_heads", "d_ff", "seq_len", "vocab_size")},
    **{f"params_{g}": f"derived.params.{g}" for g in ("total", "non_embedding", "embedding", "lm_head",
                                                      "attention", "mlp", "norms", "attnres")},
    "flops_per_token": "derived.flops_per_token.train",
    "flops_per_token_forward": "derived.flops_per_token.forward",
    "target_tokens": "train.tokens", "seed": "train.seed", "lr": "train.lr",
    "batch_size": "train.batch_size", "schedule": "train.schedule",
}
_ENV_PATHS = {"torch_version": "versions.torch", "numpy_version": "versions.numpy",
              "python_version": "versions.python", "attnres_version": "versions.attnres",
              "git_commit": "git_commit", "device": "device", "hostname": "hostname", "started_at": "started_at"}
_RUNS_TYPES = dict(RUNS_FIELDS)


def runs_schema(axis_types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The runs.parquet schema for a sweep whose extra axes have these column types (float64 or string)."""
    fields: list[tuple[str, pa.DataType]] = []
    for name, typ in RUNS_FIELDS:
        fields.append((name, typ))
        if name == "axes":
            fields += [(f"axis_{a}", t) for a, t in sorted((axis_types or {}).items())]
    return pa.schema(fields)


@dataclass
class CollectSummary:
    sweep: str
    counts: dict[str, int]  # runs by status; "pending" includes planned runs with no directory
    problems: list[tuple[str, str]]  # (run_id or directory name, message), in run_id order
    missing: list[str]  # planned runs (expected_run_ids) with no run directory
    runs_path: Path
    curves_path: Path
    n_runs: int  # rows in runs.parquet
    n_curve_rows: int  # rows in curves.parquet
    n_reread: int  # runs read from their files (changed since the last collection, or no cache)
    n_cached: int  # runs taken unchanged from the cache
    written: list[str]  # files whose bytes changed this time ([] when nothing did)
    elapsed_s: float

    def format(self, max_problems: int = 50) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "none"
        lines = [
            f"collect {self.sweep}: {self.n_runs} runs ({counts}); {self.n_reread} read, {self.n_cached} cached",
            f"  {self.runs_path} ({self.n_runs} rows), {self.curves_path} ({self.n_curve_rows} rows): "
            + (f"wrote {', '.join(self.written)}" if self.written else "unchanged")
            + f" in {self.elapsed_s:.2f} s",
        ]
        if self.missing:
            lines.append(f"  planned but no run directory ({len(self.missing)}): "
                         + ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else ""))
        if self.problems:
            lines.append(f"  problems ({len(self.problems)}):")
            lines += [f"    {run_id}: {msg}" for run_id, msg in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"    ... {len(self.problems) - max_problems} more (see the problems column "
                             f"of {self.runs_path})")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- values


def _lookup(d: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            return False, None
        d = d[key]
    return True, d


def _coerce(value: Any, typ: pa.DataType) -> Any:
    """``value`` as the Python value of an arrow column of type ``typ``; ValueError if it is not one."""
    if value is None:
        return None
    if typ == _str:
        if isinstance(value, str):
            return value
    elif isinstance(value, bool):
        pass  # JSON true/false is not a number here
    elif typ == _i64:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ == _f64:
        if isinstance(value, (int, float)):
            return float(value)
    raise ValueError(f"expected {typ}, got {value!r}")


def _number(value: Any) -> float | None:
    """A finite float, or None (null, NaN, or not a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _as_int(value: Any) -> int | None:
    try:
        return _coerce(value, _i64)
    except ValueError:
        return None


def _columns_from(doc: dict[str, Any], paths: dict[str, str], where: str, problems: list[str]) -> dict[str, Any]:
    """Columns read from a JSON document by dotted path; absent or ill-typed values become null + a problem."""
    out: dict[str, Any] = {}
    absent, bad = [], []
    for col, path in paths.items():
        found, value = _lookup(doc, path)
        try:
            out[col] = _coerce(value, _RUNS_TYPES[col])
        except ValueError:
            out[col] = None
            bad.append(path)
        if not found:
            absent.append(path)
    if absent:
        problems.append(f"{where} lacks {', '.join(absent)}")
    if bad:
        problems.append(f"{where} has ill-typed {', '.join(bad)}")
    return out


# ----------------------------------------------------------------------------- one run


def _run_files(rd: RunDir) -> tuple[Path, ...]:
    """The files a run's row and curve are computed from (its fingerprint covers exactly these)."""
    return rd.spec_path, rd.status_path, rd.metrics_path, rd.env_path, rd.derived_path


def _fingerprint(rd: RunDir) -> list[list[int] | None]:
    """Identity of a run's files; taken *before* reading them, so a file that changes while it is read
    is re-read next time rather than cached as its older content."""
    fp: list[list[int] | None] = []
    for path in _run_files(rd):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            fp.append(None)
        else:
            fp.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return fp


def _latest_attempt(rows: list[dict[str, Any]], problems: list[str]) -> list[dict[str, Any]]:
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
            step = row["step"] = _as_int(step)
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
        return {f.name: _column([r.get(f.name) for r in evals], f, problems) for f in _EVAL_STRUCT}


def _column(values: list[Any], field: pa.Field, problems: list[str]) -> pa.Array:
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass  # find and null the bad values
    n_bad = 0
    cleaned = []
    for v in values:
        try:
            cleaned.append(_coerce_nested(v, field.type))
        except ValueError:
            n_bad += 1
            cleaned.append(None)
    problems.append(f"metrics.jsonl: {n_bad} ill-typed {field.name} values set to null")
    return pa.array(cleaned, type=field.type)


def _coerce_nested(value: Any, typ: pa.DataType) -> Any:
    """``_coerce`` through list types (layer_rms, depth_alpha)."""
    if value is None or not isinstance(typ, pa.ListType):
        return _coerce(value, typ)
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    return [_coerce_nested(v, typ.value_type) for v in value]


def _curves(ident: dict[str, Any], cols: dict[str, pa.Array]) -> pa.Table:
    n = len(cols["step"])
    cols = {**cols, **{c: pa.array([ident[c]] * n, type=CURVES_SCHEMA.field(c).type) for c in _IDENT},
            "compute_pfdays": pc.divide(cols["flops"], PF_DAY)}
    return pa.table([cols[f.name] for f in CURVES_SCHEMA], schema=CURVES_SCHEMA)


def _shape_columns(spec: dict[str, Any]) -> dict[str, Any]:
    model = spec.get("model") if isinstance(spec.get("model"), dict) else {}
    n_blocks = _as_int(model.get("n_blocks"))
    n_layers = 2 * n_blocks if n_blocks is not None else None  # every attention and MLP is a layer
    n, s = _as_int(model.get("attnres_blocks")), _as_int(model.get("layers_per_block"))
    if n is None and s and n_layers:
        n = math.ceil(n_layers / s)  # ModelConfig.n_attnres_blocks
    return {"n_layers": n_layers, "attnres_blocks": n}


def _last(rows: list[dict[str, Any]], key: str, convert: Any) -> Any:
    """The latest convertible value of ``key`` (rows are in step order)."""
    for r in reversed(rows):
        v = convert(r.get(key))
        if v is not None:
            return v
    return None


def _loss_columns(kept: list[dict[str, Any]], val_loss: pa.Array) -> dict[str, Any]:
    val = [_number(v) for v in val_loss.to_pylist()]
    finite = [v for v in val if v is not None]
    tokens = _last(kept, "tokens", _as_int) or 0
    wall_s = _last(kept, "elapsed_s", _number)
    return {
        "final_val_loss": val[-1] if val else None,
        "best_val_loss": min(finite) if finite else None,
        "final_train_loss": _last(kept, "train_loss", _number),
        "n_evals": len(val),
        "tokens": tokens,
        "wall_s": wall_s,
        "tokens_per_s": tokens / wall_s if wall_s else None,
    }


def _done_checks(spec: dict[str, Any], evals: list[dict[str, Any]], final_val: float | None) -> list[str]:
    """A run that says it finished must show its final evaluation."""
    if not evals:
        return ["status is done but there are no evaluation rows"]
    problems = []
    _, steps = _lookup(spec, "derived.steps")
    steps = _as_int(steps)
    if steps is not None and evals[-1]["step"] < steps:
        problems.append(f"status is done but the last evaluation is at step {evals[-1]['step']} of {steps}")
    if final_val is None:
        problems.append("status is done but the last evaluation has no finite val_loss")
    return problems


def _read_state(rd: RunDir, problems: list[str]) -> str:
    status = rd.read_status()
    state = status.get("state", "pending")
    if not rd.status_path.exists():
        problems.append("no status.json")
    elif status.get("message") == "status.json is corrupt":  # RunDir.read_status's marker
        problems.append("status.json is corrupt")
    if state not in STATES:
        problems.append(f"status.json: unknown state {state!r}")
    return str(state)


def _spec_columns(rd: RunDir, run_id: str, sweep: str, started: bool, problems: list[str]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec.json, the runs.parquet columns taken from it, raw axis values under "axis_values")."""
    try:
        spec = rd.read_spec()
        if not isinstance(spec, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        if started:  # the launcher may write status.json before training writes spec.json
            problems.append("no spec.json")
        return {}, {"axes": None, "axis_values": {}}
    except ValueError:  # json.JSONDecodeError included
        problems.append("spec.json is corrupt")
        return {}, {"axes": None, "axis_values": {}}
    if rd.derived_path.exists():  # training's derived values (older directories: spec.json's "derived" block)
        try:
            spec = {**spec, "derived": rd.read_derived().to_dict()}
        except ValueError as e:
            problems.append(str(e))
    cols = {**_columns_from(spec, _SPEC_PATHS, "spec.json", problems), **_shape_columns(spec)}
    if spec.get("arm"):  # the sweep's arm name (ablation arms may share a residual variant)
        cols["variant"] = str(spec["arm"])
    for key, want in (("run_id", run_id), ("sweep", sweep)):
        if spec.get(key) != want:
            problems.append(f"spec.json: {key} is {spec.get(key)!r}, the directory says {want!r}")
    axes = spec.get("axes", {})
    if not isinstance(axes, dict):
        problems.append("spec.json: axes is not an object")
        axes = {}
    cols["axes"] = ",".join(sorted(axes))
    cols["axis_values"] = {str(k): v for k, v in axes.items()}
    return spec, cols


def _read_run(rd: RunDir, run_id: str, sweep: str) -> tuple[dict[str, Any], pa.Table]:
    """One run's runs.parquet row (plus its raw axis values and problem list) and its curve rows.
    Never raises on bad content: whatever is wrong becomes a problem."""
    problems: list[str] = []
    state = _read_state(rd, problems)
    started = state not in STARTING_STATES
    spec, spec_cols = _spec_columns(rd, run_id, sweep, started, problems)
    row: dict[str, Any] = {"run_id": run_id, "sweep": sweep, "status": state, **spec_cols}

    read = rd.read_metrics()
    # a run that has not started yet is expected to have no metrics; anything else read wrong is reported
    problems += [p for p in read.problems if started or p != "no metrics.jsonl"]
    kept = _latest_attempt(read.rows, problems)
    evals = [r for r in kept if r["kind"] == "eval"]
    metrics = _eval_columns(evals, problems)
    row.update(_loss_columns(kept, metrics["val_loss"]))
    if state == "done":
        problems += _done_checks(spec, evals, row["final_val_loss"])

    env = rd.read_env()
    if env:
        row.update(_columns_from(env, _ENV_PATHS, "env.json", problems))
    elif read.rows:
        problems.append("env.json is missing or corrupt")

    fpt = row.get("flops_per_token")
    row["compute_flops"] = fpt * row["tokens"] if fpt is not None else None
    row["compute_pfdays"] = row["compute_flops"] / PF_DAY if fpt is not None else None
    row["problem_list"] = problems
    return row, _curves({c: row.get(c) for c in _IDENT}, metrics)


def _planned_row(run_id: str, sweep: str) -> dict[str, Any]:
    """A run the sweep planned that has no directory yet: pending, nothing reached, losses unknown."""
    return {"run_id": run_id, "sweep": sweep, "status": "pending", "tokens": 0, "n_evals": 0,
            "axis_values": {}, "problem_list": []}


# ----------------------------------------------------------------------------- tables and files


def _axis_types(rows: list[dict[str, Any]]) -> dict[str, pa.DataType]:
    """float64 for an axis whose values are all numbers, string otherwise."""
    types: dict[str, pa.DataType] = {}
    for r in rows:
        for k, v in r["axis_values"].items():
            numeric = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            types[k] = _f64 if numeric and types.get(k, _f64) == _f64 else _str
    return types


def _axis_value(v: Any, typ: pa.DataType) -> Any:
    if v is None:
        return None
    if typ == _f64:
        return float(v)
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def _runs_table(rows: list[dict[str, Any]]) -> pa.Table:
    axis_types = _axis_types(rows)
    schema = runs_schema(axis_types)
    cols: dict[str, list[Any]] = {}
    for field in schema:
        if field.name.startswith("axis_") and field.name[5:] in axis_types:
            name = field.name[5:]
            cols[field.name] = [_axis_value(r["axis_values"].get(name), field.type) for r in rows]
        elif field.name == "problems":
            cols["problems"] = ["; ".join(r["problem_list"]) for r in rows]
        else:
            cols[field.name] = [r.get(field.name) for r in rows]
    return pa.table([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    # dictionary-encode the repeated strings only: trying it on float columns costs half the write time
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table.combine_chunks(), sink, compression="zstd", compression_level=3, use_dictionary=strings)
    return sink.getvalue().to_pybytes()


def _write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` through a temporary file; False (and no write) if unchanged."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data)
    return True


def _fsync_dir(path: Path) -> None:
    """Make the renames durable (best effort: some filesystems cannot fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _locked(results_dir: Path) -> Iterator[None]:
    """One collector per sweep at a time (the lock is released when the file closes, even on a crash)."""
    with open(results_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        # holding the lock, any temporary file left here is from a collector that was killed
        for name in (RUNS_FILE, CURVES_FILE, CACHE_FILE):
            for tmp in results_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        yield


def _file_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load_cache(results_dir: Path, sweep: str) -> dict[str, Any]:
    """run_id -> {"fp", "row"}; empty if absent, stale (curves.parquet changed) or unreadable."""
    try:
        cache = json.loads((results_dir / CACHE_FILE).read_text())
        ok = (cache["version"] == CACHE_VERSION and cache["sweep"] == sweep
              and cache["curves_file"] == _file_id(results_dir / CURVES_FILE))
        return cache["runs"] if ok else {}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {}


def _cached_curves(results_dir: Path, run_ids: list[str]) -> dict[str, pa.Table]:
    """run_id -> its rows of the previous curves.parquet (sorted by run_id, so each run is one slice)."""
    if not run_ids:
        return {}
    table = pq.read_table(results_dir / CURVES_FILE).cast(CURVES_SCHEMA)
    ids, want, out, start = table["run_id"].to_pylist(), set(run_ids), {}, 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            if ids[start] in want:
                out[ids[start]] = table.slice(start, i - start)
            start = i
    return out


def _final_rows(rows: dict[str, dict[str, Any]], expected: set[str] | None) -> list[dict[str, Any]]:
    """runs.parquet rows in run_id order, with the problems that depend on the plan (not cached per run)."""
    out = [rows[r] for r in sorted(rows)]
    if expected is None:
        return out
    return [r if r["run_id"] in expected else
            {**r, "problem_list": [*r["problem_list"], "not one of the sweep's planned runs"]} for r in out]


def _read_runs(sweep_dir: Path, run_ids: list[str], sweep: str) -> list[tuple[dict[str, Any], pa.Table]]:
    return [_read_run(RunDir(sweep_dir / run_id), run_id, sweep) for run_id in run_ids]


ProgressFn = Callable[[int, int], None]  # (runs read so far, runs to read)


def _read_runs_parallel(sweep_dir: Path, run_ids: list[str], sweep: str, workers: int | None,
                        progress: ProgressFn | None = None) -> list[tuple[dict[str, Any], pa.Table]]:
    """``_read_runs`` in ``workers`` processes (parsing JSON is CPU-bound and holds the GIL); None =
    one per available CPU (at most 8) once there are PARALLEL_MIN_RUNS runs to read. Worker processes
    are spawned, so a script that calls this with workers != 1 needs the ``if __name__ == "__main__":``
    guard (the CLI has it). ``progress`` is told after each run (each chunk, in parallel)."""
    n = len(run_ids)
    tell = progress or (lambda done, total: None)
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cpus, 8) if n >= PARALLEL_MIN_RUNS else 1
    workers = min(workers, n)
    if workers < 2 or mp.current_process().daemon:  # a daemon (e.g. a Pool worker) may not have children
        out = []
        for run_id in run_ids:
            out.append(_read_run(RunDir(sweep_dir / run_id), run_id, sweep))
            tell(len(out), n)
        return out
    k = 4 * workers  # a few strided chunks per worker even out the load (neighbouring runs cost alike)
    chunks = [run_ids[i::k] for i in range(k)]
    out = []
    # spawn, not fork: the parent may already run pyarrow's threads
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for part in as_completed([pool.submit(_read_runs, sweep_dir, chunk, sweep) for chunk in chunks]):
            out += part.result()
            tell(len(out), n)
    return out


def _run_dirs(sweep_dir: Path, problems: list[tuple[str, str]], expected: set[str]) -> list[str]:
    """Names of the run directories under runs/<sweep>/ (hidden entries skipped)."""
    if not sweep_dir.is_dir():
        return []
    names = []
    with os.scandir(sweep_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        files = _run_files(RunDir(entry.path))
        if entry.name in expected or any(f.exists() for f in files):
            names.append(entry.name)
        else:
            problems.append((entry.name, f"{entry.path} has none of {', '.join(f.name for f in files)}; skipped"))
    return names


def collect(sweep: str, runs_root: str | os.PathLike[str] = "runs", results_root: str | os.PathLike[str] = "results",
            expected_run_ids: list[str] | None = None, workers: int | None = 1,
            progress: ProgressFn | None = None) -> CollectSummary:
    """Collect ``<runs_root>/<sweep>/*/`` into ``<results_root>/<sweep>/{runs,curves}.parquet``.

    ``expected_run_ids``: the sweep's planned runs; those without a directory appear as ``pending``
    and those with a directory but not in the list are flagged. Raises FileNotFoundError only when
    there is nothing to collect at all (no run directory for the sweep and no planned runs).
    ``workers``: processes that read changed runs; 1 (default) reads in this process, None picks
    one per CPU for large collections (see ``_read_runs_parallel``). ``progress(done, total)`` is
    called as changed runs are read (the long stage). A runs root that does not exist is refused
    (FileNotFoundError): a mistyped --runs-root must not produce a table of pending runs."""
    t0 = time.perf_counter()
    if not sweep or Path(sweep).name != sweep or sweep.startswith("."):
        raise ValueError(f"sweep: {sweep!r} is not a sweep name; fix: pass the name (runs/<name>/), not a path")
    if not Path(runs_root).is_dir():
        raise FileNotFoundError(f"{runs_root}: the runs root does not exist (relative paths are taken from the "
                                f"directory attnres runs in, {Path.cwd()}); fix: pass --runs-root DIR (the "
                                "directory holding one folder per sweep) or set $ATTNRES_RUNS_ROOT, or launch first")
    sweep_dir = Path(runs_root) / sweep
    expected = set(expected_run_ids) if expected_run_ids is not None else None
    if not sweep_dir.is_dir() and expected is None:
        raise FileNotFoundError(f"{sweep_dir}: no run directories for sweep {sweep!r}; fix: check the sweep "
                                "name and --runs-root, or launch the sweep first")
    results_dir = Path(results_root) / sweep
    results_dir.mkdir(parents=True, exist_ok=True)

    with _locked(results_dir):
        dir_problems: list[tuple[str, str]] = []
        names = _run_dirs(sweep_dir, dir_problems, expected or set())
        cache = _load_cache(results_dir, sweep)
        fingerprints = {run_id: _fingerprint(RunDir(sweep_dir / run_id)) for run_id in names}
        cached_ids = [r for r in names if r in cache and cache[r]["fp"] == fingerprints[r]]
        to_read = sorted(set(names) - set(cached_ids))
        rows = {r: cache[r]["row"] for r in cached_ids}
        fresh: dict[str, pa.Table] = {}
        for row, curves in _read_runs_parallel(sweep_dir, to_read, sweep, workers, progress):
            rows[row["run_id"]], fresh[row["run_id"]] = row, curves
        missing = sorted(expected - set(rows)) if expected is not None else []
        out_rows = _final_rows({**rows, **{r: _planned_row(r, sweep) for r in missing}}, expected)

        written = []
        curves_path, runs_path = results_dir / CURVES_FILE, results_dir / RUNS_FILE
        if cache and not to_read and set(names) == set(cache):  # same runs, none changed: curves stand
            n_curve_rows = pq.read_metadata(curves_path).num_rows
        else:
            pieces = {**_cached_curves(results_dir, cached_ids), **fresh}
            curves = pa.concat_tables([CURVES_SCHEMA.empty_table()] + [pieces[r] for r in sorted(pieces)])
            n_curve_rows = curves.num_rows
            written += [CURVES_FILE] if _write_atomic(curves_path, _parquet_bytes(curves)) else []
        runs = _runs_table(out_rows)
        written += [RUNS_FILE] if _write_atomic(runs_path, _parquet_bytes(runs)) else []
        cache_doc = {"version": CACHE_VERSION, "sweep": sweep, "curves_file": _file_id(curves_path),
                     "runs": {r: {"fp": fingerprints[r], "row": rows[r]} for r in names}}
        _write_atomic(results_dir / CACHE_FILE, json.dumps(cache_doc, sort_keys=True).encode())
        _fsync_dir(results_dir)

    problems = sorted(dir_problems + [(r["run_id"], p) for r in out_rows for p in r["problem_list"]],
                      key=lambda rp: rp[0])
    return CollectSummary(
        sweep=sweep, counts=dict(sorted(Counter(r["status"] for r in out_rows).items())),
        problems=problems, missing=missing, runs_path=runs_path, curves_path=curves_path,
        n_runs=runs.num_rows, n_curve_rows=n_curve_rows,
        n_reread=len(to_read), n_cached=len(cached_ids), written=written,
        elapsed_s=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.collect SWEEP [options]``, the same as ``attnres collect`` (sweeps.cli)."""
    from sweeps.cli import collect_main

    return collect_main(argv)


if __name__ == "__main__":
    sys.exit(main())
