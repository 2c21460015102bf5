"""The sweep file's checker: every problem is one message, '<file>: <key>: <problem>; fix: <fix>'.

    c = Checker("sweeps/x.toml")
    lr = c.attempt(c.number, value, "[train].lr")   # a problem is recorded, parsing carries on
    if c.problems: raise SweepError(*c.problems)    # one `plan` lists every problem of the file
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from records.config import ConfigError, check_setting


class SweepError(ValueError):
    """A sweep file is invalid: one message per problem (``problems``), each naming the file, the key
    and the fix; ``str()`` joins them, one per line."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)



class Checker:
    """Type and key checks that fail with '<file>: <key>: <problem>; fix: <fix>'.

    Independent checks run under ``attempt``: a problem is recorded and parsing carries on, so one
    `plan` lists every problem of the file, one message each."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[str] = []

    def fail(self, key: str, problem: str, fix: str) -> SweepError:
        return SweepError(f"{self.file}: {key}: {problem}; fix: {fix}")

    def attempt(self, fn: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SweepError as e:
            self.problems.extend(e.problems)
            return default

    def passes(self, fn: Any, *args: Any) -> bool:
        """``attempt`` for a check with no result: True when it found no problem."""
        before = len(self.problems)
        self.attempt(fn, *args)
        return len(self.problems) == before

    def setting(self, cls: type, key: str, value: Any, where: str) -> Any:
        """One config setting checked by its dataclass's own rules (records.config.check_setting)."""
        try:
            return check_setting(cls, key, value)
        except ConfigError as e:
            raise SweepError(f"{self.file}: {where}.{e}") from None

    def table(self, doc: dict[str, Any], name: str, required: bool = False) -> dict[str, Any]:
        value = doc.get(name, None)
        if value is None:
            if required:
                raise self.fail(f"[{name}]", "missing table", f"add a [{name}] table (see sweeps/demo.toml)")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"[{name}]", f"expected a table, got {type(value).__name__}",
                            f"write it as a [{name}] table")
        return value

    def known(self, values: dict[str, Any], known: set[str], where: str) -> list[str]:
        """Record every unknown key (with the closest known one); returns them, for callers to skip."""
        unknown = [key for key in values if key not in known]
        for key in unknown:
            close = [k for k in sorted(known) if _similar(k, key)]
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.problems.append(str(self.fail(f"{where}.{key}", "unknown key", f"{hint}known keys are {sorted(known)}")))
        return unknown

    def number(self, value: Any, key: str, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {value!r}", "write a number such as 20 or 1e9")
        if positive and not value > 0:
            raise self.fail(key, f"must be positive, got {value}", "use a value > 0")
        return float(value)

    def integer(self, value: Any, key: str, minimum: int = 1) -> int:
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value != int(value)):
            raise self.fail(key, f"expected a whole number, got {value!r}", "write an integer")
        if int(value) < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {int(value)}", f"use a value >= {minimum}")
        return int(value)

    def numbers(self, value: Any, key: str, whole: bool = False) -> tuple[float, ...]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.fail(key, "empty list", "give at least one value")
        out = tuple(self.integer(v, key) if whole else self.number(v, key) for v in values)
        if len(set(out)) != len(out):
            raise self.fail(key, "a value is listed twice", "list each value once")
        return out

    def string(self, value: Any, key: str, choices: tuple[str, ...] | list[str] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}", "quote the value")
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise self.fail(key, f"{value!r} contains a control character (newline, tab, ...)", "remove it")
        if choices is not None and value not in choices:
            raise self.fail(key, f"{value!r} is not one of {list(choices)}", f"use one of {list(choices)}")
        return value

    def unique(self, values: list[Any], key: str, what: str) -> None:
        twice = [v for v, n in Counter(map(repr, values)).items() if n > 1]
        if twice:
            raise self.fail(key, f"{what} {twice[0]} is listed twice", f"list each {what} once")


def _similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a in b or b in a or (len(a) > 3 and len(b) > 3 and a[:4] == b[:4])

