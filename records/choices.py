"""Every closed set of names the project uses, as string enums: configs store them, the CLI's choices
are derived from them, and code compares against members instead of repeating literals.

A member is a ``str`` (``StrEnum``), so it serialises to JSON as its value and compares equal to it:
spec.json, run ids and parquet files are unchanged by using them.

    Variant("block") is Variant.BLOCK          # ValueError for an unknown name
    choices(Schedule)                           # ('cosine', 'wsd', 'constant') for argparse
    parse(Variant, text, "model.variant")       # ConfigError naming the field and the valid values
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from records.errors import ConfigError


class Variant(StrEnum):
    """Residual strategies (harness/residuals.py registers one class per member; PAPER.md section 1, 3)."""

    BASELINE = "baseline"  # PreNorm: x_{l+1} = x_l + f_l(x_l)
    FULL = "full"  # Full AttnRes: softmax over the embedding and every earlier sublayer output
    BLOCK = "block"  # Block AttnRes: over the embedding and N block sums
    SIGMOID = "sigmoid"  # Table 4: sigmoid instead of softmax over depth
    NOKEYNORM = "nokeynorm"  # Table 4: keys without RMSNorm
    INPUTQUERY = "inputquery"  # Table 4: input-dependent query
    STATIC = "static"  # Table 4: input-independent mixing, learned scalar logits
    DENSEFORMER = "denseformer"  # Table 4: raw learned scalar weights (DenseFormer)
    MULTIHEAD = "multihead"  # Table 4: depth attention with several heads


class Schedule(StrEnum):
    COSINE = "cosine"
    WSD = "wsd"  # warmup-stable-decay
    CONSTANT = "constant"


class Dtype(StrEnum):
    AUTO = "auto"  # bf16 autocast on CUDA, fp32 on CPU
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class BudgetMode(StrEnum):
    """How a sweep sets each run's token budget ([budget].mode, sweeps/spec.py)."""

    RATIO = "ratio"  # tokens = tokens_per_param x parameters
    TOKENS = "tokens"  # explicit token counts
    REFERENCE = "reference"  # the tokens published with the ladder's sizes
    ISOFLOP = "isoflop"  # several sizes per compute budget
    WSD = "wsd"  # one stable trunk per size, cool-down branches at each budget


class RunState(StrEnum):
    """A run's state (status.json "state"; "pending" = planned, no directory or no status yet)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"  # a non-finite loss stopped it
    PREEMPTED = "preempted"  # stopped by the scheduler; resumes from its checkpoint
    CANCELLED = "cancelled"  # stopped on purpose by `attnres cancel`

    @property
    def final(self) -> bool:
        """It will not change by itself (relaunching is needed to resume or retry)."""
        return self in (RunState.DONE, RunState.FAILED, RunState.DIVERGED)


class Executor(StrEnum):
    LOCAL = "local"  # this machine, --workers runs at a time
    SLURM = "slurm"  # job arrays through submitit
    DEBUG = "debug"  # in this process, one run after another


class MetricKind(StrEnum):
    TRAIN = "train"
    EVAL = "eval"


class Tokenizer(StrEnum):
    BYTE = "byte"
    BPE = "bpe"


class FitForm(StrEnum):
    """Analysis forms (analysis/pipeline.py)."""

    SHIFT = "shift"  # the paired shift model: the headline
    PAPER = "paper"  # separate power laws per arm, read at the largest compute
    SATURATING = "saturating"  # L = E + A C^-alpha
    CHINCHILLA = "chinchilla"  # L(N, D)
    ISOFLOP = "isoflop"  # minima per compute budget

    @classmethod
    def headline_forms(cls) -> tuple[FitForm, ...]:
        """Forms with a loss-vs-compute curve that a headline multiplier can come from."""
        return (cls.SHIFT, cls.PAPER, cls.SATURATING, cls.ISOFLOP)


class HparamProtocol(StrEnum):
    PER_ARM = "per-arm"  # each arm at its own best value, chosen on one seed
    BASELINE = "baseline"  # every arm at the baseline's best value (the paper's protocol)


class Curvature(StrEnum):
    AUTO = "auto"  # a quadratic term only when the baseline alone calls for it (analysis/curve.py)
    NONE = "none"
    QUADRATIC = "quadratic"


E = TypeVar("E", bound=StrEnum)


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values, in declaration order (argparse ``choices=``, error messages)."""
    return tuple(m.value for m in enum)


def parse(enum: type[E], value: object, field: str) -> E:
    """``enum(value)``, or a ConfigError naming ``field`` and the valid values."""
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(f"{field}: {value!r} is not one of {list(choices(enum))}; fix: use one of them",
                          field=field) from None
