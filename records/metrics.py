"""One row of a run's metrics.jsonl: its fields, their Python types and units, checked when written.

The training loop builds a ``MetricRow`` at every logged step; ``RunDir.append_metrics``
(records/rundir.py, which re-exports these names) writes it and refuses anything else, so the file
holds exactly these fields with these types (a non-finite float is written as null). Collect, status
and the trackers read the rows back as dicts; ``MetricRow.from_dict`` checks one.

    row = MetricRow(kind=MetricKind.TRAIN, step=10, tokens=40960, ...)
    RunDir(path).append_metrics(row)
    MetricRow.from_dict(json.loads(line))        # MetricRowError names a missing/extra/mistyped field
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from records.choices import MetricKind


class MetricRowError(ValueError):
    """A metrics row lacks a field, has one too many, or holds a value of the wrong type."""


def _unit(text: str) -> Any:
    return field(metadata={"unit": text})


@dataclass(frozen=True)
class MetricRow:
    """One metrics.jsonl row. "eval" rows add val_loss and, for AttnRes models, layer_rms (one per
    sublayer output) and depth_alpha (per mix: its weights over its sources)."""

    kind: MetricKind = _unit("'train' (a logged step) or 'eval' (an evaluation step)")
    step: int = _unit("optimizer steps done")
    tokens: int = _unit("training tokens consumed")
    flops: float = _unit("training FLOPs so far (flops_per_token x tokens)")
    train_loss: float = _unit("nats/token, mean over the steps since the previous row")
    val_loss: float | None = _unit("nats/token on the fixed validation slice (eval rows)")
    lr: float = _unit("learning rate of the last step")
    grad_norm: float = _unit("global L2 norm before clipping, last step")
    tokens_per_s: float = _unit("training throughput since the previous row (all processes)")
    elapsed_s: float = _unit("wall seconds of training, summed over restarts")
    mfu: float | None = _unit("model FLOPs utilisation since the previous row (GPU with a known peak; "
                              "harness/devices.py)")
    layer_rms: list[float] | None = _unit("RMS of each sublayer output at eval (Figure 5)")
    depth_alpha: list[list[float]] | None = _unit("alpha_{i->l} averaged over tokens (Figure 8)")

    def __post_init__(self) -> None:
        for name, hint in _hints().items():
            value = getattr(self, name)
            if not _matches(value, hint):
                raise MetricRowError(f"metrics row: {name} = {value!r} ({type(value).__name__}) is not "
                                     f"{_spelled(hint)}; fix: the code that builds the row")
        if not isinstance(self.kind, MetricKind):
            object.__setattr__(self, "kind", MetricKind(self.kind))

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values (``kind`` as its name)."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "kind": self.kind.value}

    def replace(self, **changes: Any) -> MetricRow:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, row: typing.Mapping[str, Any]) -> MetricRow:
        missing = [n for n in METRIC_FIELDS if n not in row]
        extra = sorted(set(row) - set(METRIC_FIELDS))
        if missing or extra:
            raise MetricRowError(f"metrics row: {'missing ' + ', '.join(missing) if missing else ''}"
                                 f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(extra) if extra else ''}"
                                 f"; fix: give exactly the fields {list(METRIC_FIELDS)}")
        return cls(**row)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(MetricRow)


def _matches(value: Any, hint: Any) -> bool:
    """``value`` is of type ``hint``: int (not bool), float (an int too, as in PEP 484), MetricKind
    (or its name), X | None, list[X]."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is MetricKind:
        return isinstance(value, str) and value in {k.value for k in MetricKind}
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    raise TypeError(f"MetricRow: no check for {hint!r}")  # a field of a new type needs a case here


def _spelled(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("records.choices.", "")


# metrics.jsonl's fields: name -> (Python type, unit), in column order (docs/SCHEMAS.md, README)
METRIC_FIELDS: dict[str, tuple[Any, str]] = {
    f.name: (_hints()[f.name], f.metadata["unit"]) for f in dataclasses.fields(MetricRow)}
# fields that depend on wall-clock time and so differ between otherwise identical runs
TIMING_FIELDS = ("tokens_per_s", "elapsed_s", "mfu")
