"""The two result tables, defined once: the collector writes them, the analysis and the synthetic
sweeps follow them, and docs/SCHEMAS.md and the README show them (tests keep all in step).

    arrow_schema(RUNS, axis_types={"lr": "float64"})    # pyarrow schema (pyarrow imported here only)
    markdown(RUNS)                                      # the table of docs/SCHEMAS.md
    python -m records.tables                            # print both tables (to update the docs)

A row of a table may name several columns that share a type and a meaning ("a, b, c").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    names: tuple[str, ...]
    type: str  # one of TYPES
    meaning: str


TYPES = ("string", "int64", "Int64 (nullable)", "float64", "list<float64>", "list<list<float64>>")
AXES = Column(("axis_<name>",), "float64 or string", "value of that axis")  # one per extra sweep axis

PARAM_GROUPS = ("total", "non_embedding", "embedding", "lm_head", "attention", "mlp", "norms", "attnres")
PROVENANCE = ("torch_version", "numpy_version", "python_version", "attnres_version", "git_commit", "device", "hostname")


def _c(names: str, type_: str, meaning: str = "") -> Column:
    return Column(tuple(n.strip() for n in names.split(",")), type_, meaning)


RUNS: tuple[Column, ...] = (
    _c("run_id, sweep, arm, variant, ladder, size", "string",
       "identity: `arm` is the sweep's arm name (what the analysis compares), `variant` the model's residual variant"),
    _c("n_blocks, n_layers, d_model, n_heads, d_ff, seq_len, vocab_size", "int64",
       "shape (n_blocks Transformer blocks, n_layers = 2 n_blocks sublayers)"),
    _c("attnres_blocks, attnres_block_size", "Int64 (nullable)",
       "AttnRes depth blocks N and sublayers per block S (the last may be shorter); null for the baseline"),
    _c(", ".join(f"params_{g}" for g in PARAM_GROUPS), "int64", "parameters"),
    _c("flops_per_token", "float64", "training FLOPs per token (forward + backward = 3 x forward)"),
    _c("flops_per_token_forward", "float64", "forward FLOPs per token"),
    _c("target_tokens, tokens", "int64", "token budget; tokens reached"),
    _c("compute_flops, compute_pfdays", "float64", "flops_per_token x tokens reached; in PF-days (records/units.py)"),
    _c("seed", "int64", "runs of one size and seed share initial weights and batch order across arms"),
    _c("lr", "float64", "peak learning rate"),
    _c("batch_size", "int64", "sequences per optimizer step"),
    _c("schedule", "string", "cosine / wsd / constant"),
    _c("axes", "string", 'comma-separated names of extra sweep axes ("" if none); each has a column axis_<name>'),
    _c("status", "string", "done / running / queued / failed / diverged / preempted / cancelled / pending "
       "(planned, no directory yet)"),
    _c("final_val_loss, best_val_loss, final_train_loss", "float64", "nats/token"),
    _c("n_evals", "int64", "evaluation points"),
    _c("problems", "string", '"; "-joined problems found while reading the run ("" if none)'),
    _c(", ".join(PROVENANCE), "string", "provenance"),
    _c("started_at", "float64", "unix seconds"),
    _c("wall_s, tokens_per_s", "float64", "training seconds (all restarts); mean throughput"),
)

CURVES: tuple[Column, ...] = (
    _c("run_id, sweep, arm, variant, size", "string", "as in runs.parquet"),
    _c("seed", "int64"),
    _c("step, tokens", "int64"),
    _c("flops, compute_pfdays", "float64", "training FLOPs so far"),
    _c("train_loss, val_loss, lr, grad_norm, tokens_per_s, elapsed_s", "float64"),
    _c("layer_rms", "list<float64>", "RMS of each sublayer output (every variant)"),
    _c("depth_alpha", "list<list<float64>>",
       "null for the baseline; row l = target layer (0..L-1, then L = final aggregation), entries = weight of each "
       "source of that layer"),
)


def columns(table: tuple[Column, ...]) -> list[tuple[str, str]]:
    """(name, type) of every column, in file order (without the axis_<name> columns)."""
    return [(n, c.type) for c in table for n in c.names]


def names(table: tuple[Column, ...]) -> list[str]:
    return [n for n, _ in columns(table)]


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    return {"string": pa.string(), "int64": pa.int64(), "Int64 (nullable)": pa.int64(), "float64": pa.float64(),
            "list<float64>": pa.list_(pa.float64()), "list<list<float64>>": pa.list_(pa.list_(pa.float64()))}[name]


def arrow_schema(table: tuple[Column, ...], axis_types: dict[str, str] | None = None) -> Any:
    """The pyarrow schema; runs.parquet's axis_<name> columns ("float64" or "string") follow "axes"."""
    import pyarrow as pa

    fields = []
    for name, type_ in columns(table):
        fields.append((name, _arrow_type(type_)))
        if name == "axes":
            fields += [(f"axis_{a}", _arrow_type(t)) for a, t in sorted((axis_types or {}).items())]
    return pa.schema(fields)


def markdown(table: tuple[Column, ...]) -> str:
    """The table as docs/SCHEMAS.md and the README show it (axis_<name> after "axes")."""
    rows = ["| column | type | unit / meaning |", "|---|---|---|"]
    for c in table:
        rows.append(_row(c))
        if c.names == ("axes",):
            rows.append(_row(AXES))
    return "\n".join(rows)


def _row(c: Column) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in (", ".join(c.names), c.type, c.meaning)) + "|"


def document() -> str:
    """Both tables with their headings: the end of docs/SCHEMAS.md, verbatim (tests/test_docs.py)."""
    return ("## results/<sweep>/runs.parquet (one row per run)\n" + markdown(RUNS) + "\n\n"
            "## results/<sweep>/curves.parquet (one row per evaluation point)\n" + markdown(CURVES) + "\n")


if __name__ == "__main__":
    print(document(), end="")
