"""Rows -> the two arrow tables with the schemas of records/tables.py, and their parquet bytes.

Deterministic: explicit schemas, rows in run_id order (then step), no pandas metadata; the same
rows give the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from records import tables

FLOAT, STRING = "float64", "string"  # the two types an axis column can have (records.tables.AXES)


def axis_types(rows: list[dict[str, Any]]) -> dict[str, str]:
    """float64 for an axis whose values are all numbers, string otherwise."""
    types: dict[str, str] = {}
    for r in rows:
        for k, v in r["axis_values"].items():
            numeric = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            types[k] = FLOAT if numeric and types.get(k, FLOAT) == FLOAT else STRING
    return types


def _axis_value(v: Any, typ: str) -> Any:
    if v is None:
        return None
    if typ == FLOAT:
        return float(v)
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def runs_table(rows: list[dict[str, Any]]) -> pa.Table:
    """runs.parquet from the rows (each with its raw "axis_values" and "problem_list")."""
    types = axis_types(rows)
    schema = tables.arrow_schema(tables.RUNS, types)
    cols: dict[str, list[Any]] = {}
    for field in schema:
        if field.name.startswith("axis_") and field.name[5:] in types:
            name = field.name[5:]
            cols[field.name] = [_axis_value(r["axis_values"].get(name), types[name]) for r in rows]
        elif field.name == "problems":
            cols["problems"] = ["; ".join(r["problem_list"]) for r in rows]
        else:
            cols[field.name] = [r.get(field.name) for r in rows]
    return pa.table([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    # dictionary-encode the repeated strings only: trying it on float columns costs half the write time
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table.combine_chunks(), sink, compression="zstd", compression_level=3, use_dictionary=strings)
    return sink.getvalue().to_pybytes()
