"""One setting's type and range, checked the same way wherever it is set: on construction of a
config dataclass (``__post_init__`` -> ``check_fields``) and key by key by the sweep parser
(sweeps/spec.py -> ``check_setting``), so a sweep file's mistakes are caught at `plan` by the rules
training applies. The type comes from the field's annotation (an enum of records.choices for a
closed set of names); the range from the dataclass's ``RULES``. Every failure is a ``ConfigError``
naming the field and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from records.choices import parse
from records.errors import ConfigError


def fail(field_name: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{field_name}: {problem}; fix: {fix}", field=field_name.split(".")[-1])


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rule:
    """Range of a numeric setting (bounds inclusive unless ``*_open``) or the pattern of a string one."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    pattern: str | None = None  # a string setting must fullmatch it
    allowed: str = ""  # the pattern in words, for the fix

    def text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))


POSITIVE = Rule(lo=0, lo_open=True)
AT_LEAST_1 = Rule(lo=1)
NON_NEGATIVE = Rule(lo=0)
FRACTION = Rule(lo=0, hi=1)  # [0, 1]


@functools.cache
def _kind(cls: type, name: str) -> tuple[str, bool]:
    """(base type, None allowed) of a field, from its annotation: int, float, bool, str, tuple, dict."""
    ann = str({f.name: f.type for f in dataclasses.fields(cls)}[name])
    parts = [p.strip() for p in ann.split("|")]
    base = next((p for p in parts if p != "None"), "None")
    return re.split(r"[\[ ]", base)[0], "None" in parts


def _shown(value: Any) -> str:
    """A value as the sweep file wrote it (TOML spells booleans true/false)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _unquote_hint(name: str, value: Any) -> str:
    return f"write it without quotes: {name} = {value}" if isinstance(value, str) and value.strip() else ""


def _check_scalar(name: str, kind: str, value: Any, rule: Rule | None) -> Any:
    """Check one scalar value of a setting; returns it normalised (a whole float -> int)."""
    if kind == "bool":
        if not isinstance(value, bool):
            fail(name, f"expected true or false, got {_shown(value)}", f"write {name} = true or {name} = false")
        return value
    if kind in ("int", "float"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = kind == "float" or (number and float(value).is_integer())
        if not number or not math.isfinite(value) or not whole:
            what = "a whole number" if kind == "int" else "a finite number"
            got = "the string " + repr(value) if isinstance(value, str) else _shown(value)
            hint = _unquote_hint(name, value) if isinstance(value, str) and _is_number(value) else ""
            fail(name, f"expected {what}, got {got}",
                  hint or f"write {name} = <{what}{' ' + rule.text() if rule else ''}>")
        if kind == "int":
            value = int(value)
        if rule is not None and not rule.ok(value):
            fail(name, f"must be {rule.text()}, got {value}", f"set {name} to a value {rule.text()}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            fail(name, f"expected a string, got {value!r}", f'quote it: {name} = "{value}"')
        if _CONTROL.search(value):
            fail(name, f"{value!r} contains a control character (newline, tab, ...)", "remove it")
        if rule is not None and rule.pattern and not re.fullmatch(rule.pattern, value):
            fail(name, f"{value!r} has characters outside {rule.allowed}", f"use only {rule.allowed}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@functools.cache
def _choice_enum(cls: type, name: str) -> type[StrEnum] | None:
    """The records.choices enum a field is annotated with (e.g. ``variant: Variant``), else None."""
    hint = typing.get_type_hints(cls).get(name)
    return hint if isinstance(hint, type) and issubclass(hint, StrEnum) else None


_PLAIN_KINDS = ("int", "float", "bool", "str", "tuple", "dict")


def check_setting(cls: type, name: str, value: Any) -> Any:
    """Type and range of one setting of config dataclass ``cls`` on its own (cross-field checks are
    ``__post_init__``'s); raises ConfigError naming the field and the fix. Returns the value
    normalised: a whole float in an int field becomes an int (TOML's ``1e6``), a name in an enum
    field becomes its member (records.choices.parse)."""
    kind, optional = _kind(cls, name)
    if value is None:
        if not optional:
            fail(name, "must be set", f"give {name} a value")
        return None
    enum = None if kind in _PLAIN_KINDS else _choice_enum(cls, name)
    if enum is not None:
        return parse(enum, value, name)
    rule = getattr(cls, "RULES", {}).get(name)
    if kind == "tuple":
        if not isinstance(value, (list, tuple)):
            fail(name, f"expected a list, got {value!r}", f"write {name} = [...]")
        items = tuple(_check_scalar(name, "int", v, rule) for v in value)
        if len(set(items)) != len(items):
            fail(name, "a value is listed twice", "list each value once")
        return items
    if kind == "dict":
        if not isinstance(value, dict):
            fail(name, f"expected a table, got {value!r}", f"write {name} = {{...}}")
        return value
    return _check_scalar(name, kind, value, rule)


def check_fields(obj: Any) -> None:
    """Every field of a frozen config dataclass through ``check_setting`` (normalising in place)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        checked = check_setting(type(obj), f.name, value)
        if checked is not value:
            object.__setattr__(obj, f.name, checked)
