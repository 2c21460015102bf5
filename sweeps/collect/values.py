"""Values read from run files, checked against the type of the column they go to.

A value of the wrong type is never guessed at: it becomes null, and the caller records a problem.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

_str, _i64, _f64 = pa.string(), pa.int64(), pa.float64()


def coerce(value: Any, typ: pa.DataType) -> Any:
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
    elif isinstance(typ, pa.ListType):  # layer_rms, depth_alpha
        if isinstance(value, list):
            return [coerce(v, typ.value_type) for v in value]
    raise ValueError(f"expected {typ}, got {value!r}")


def number(value: Any) -> float | None:
    """A finite float, or None (null, NaN, or not a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def as_int(value: Any) -> int | None:
    try:
        return coerce(value, _i64)
    except ValueError:
        return None


def column(values: list[Any], field: pa.Field, problems: list[str], where: str) -> pa.Array:
    """An arrow array of ``field``'s type; values that do not fit become null, counted in one problem."""
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass  # find and null the bad values
    n_bad = 0
    cleaned = []
    for v in values:
        try:
            cleaned.append(coerce(v, field.type))
        except ValueError:
            n_bad += 1
            cleaned.append(None)
    problems.append(f"{where}: {n_bad} ill-typed {field.name} values set to null")
    return pa.array(cleaned, type=field.type)


class Fields:
    """Typed reads from one JSON document (env.json, spec.json's "derived" block) for a small typed
    reader; what is absent or ill-typed is null, and ``report`` says which, in one problem each."""

    def __init__(self, doc: dict[str, Any], where: str) -> None:
        self.doc, self.where = doc, where
        self.absent: list[str] = []
        self.bad: list[str] = []

    def get(self, path: str, typ: pa.DataType) -> Any:
        d: Any = self.doc
        for key in path.split("."):
            if not isinstance(d, dict) or key not in d:
                self.absent.append(path)
                return None
            d = d[key]
        try:
            return coerce(d, typ)
        except ValueError:
            self.bad.append(path)
            return None

    def string(self, path: str) -> str | None:
        return self.get(path, _str)

    def int(self, path: str) -> int | None:
        return self.get(path, _i64)

    def float(self, path: str) -> float | None:
        return self.get(path, _f64)

    def report(self, problems: list[str]) -> None:
        if self.absent:
            problems.append(f"{self.where} lacks {', '.join(self.absent)}")
        if self.bad:
            problems.append(f"{self.where} has ill-typed {', '.join(self.bad)}")
