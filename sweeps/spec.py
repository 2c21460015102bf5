"""Sweep files: parse and validate ``sweeps/<name>.toml`` and expand them into run specs.

    sweep = load_sweep("demo")       # a name (sweeps/demo.toml beside this module) or a .toml path
    runs = expand(sweep)             # list[PlannedRun]: one RunSpec per run, with a stable id

A sweep file (``sweeps/demo.toml`` is the commented example) has these tables:

    [sweep]     ladder, sizes, seeds, rules (sweeps/rules.py), description
    [budget]    mode = "ratio" | "tokens" | "reference" | "isoflop" | "wsd", and that mode's keys
    [variants]  arm name = {variant, ModelConfig settings, train = {...}, axes = {...}}
    [model]     ModelConfig settings for every run (e.g. seq_len)
    [train]     TrainConfig settings for every run; they win over the run rules
    [axes]      setting = [values]: extra sweep axes, a cartesian product (a variant's own
                ``axes`` table adds to or replaces these for that arm: an lr grid per arm)
    [data]      path, or corpus and tokenizer (harness.data.default_data_dir)
    [launch]    Slurm resources; device, mfu, gpu_mem_gb for estimates (harness/devices.py)
    [tracking]  optional live tracking: backends = ["tensorboard", "wandb"], project, entity,
                wandb_mode (harness/tracking.py); not part of run ids

Budget modes ([budget].mode); every token count is rounded to whole optimizer steps:

    ratio      tokens = tokens_per_param x parameters of the size's baseline (params = "total" or
               "non_embedding"), so every arm at a size sees the same tokens; a list = several budgets
    tokens     tokens = N, a list, or a table {size = N}
    reference  the tokens published with each ladder size (ladder "paper": Table 2)
    isoflop    compute = [C, ...]: tokens = C / the arm's training FLOPs per token; a size is kept at
               a budget when its tokens/param is inside [min_tokens_per_param, max_tokens_per_param]
    wsd        per (arm, size, axes, seed) one trunk trains the largest budget with a WSD schedule and
               keeps a checkpoint where each smaller budget's cool-down (cooldown_frac) starts; one
               short branch per smaller budget resumes from it (tokens_per_param or tokens lists)

Training settings resolve in this order, later winning: TrainConfig defaults, the run rules
(sweeps/rules.py, [sweep].rules), [train], the arm's ``train`` table, axis values, the budget.

The sweep's name is its file name (runs go to ``<runs_root>/<name>/``). A run's id is
``<sweep>-<arm>-<size>[-<budget>][-<axes>]-s<seed>-<hash8>``; the hash is of the canonical JSON of
the resolved model and train configs (without the execution-only settings in ``EXECUTION_ONLY``)
and of the data's name (``data_key``), so an id names exactly one training run, a changed setting
is a new run, and ids do not depend on where the checkout lives.

Every problem raises ``SweepError("<file>: <key>: <problem>; fix: <fix>")``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.accounting import ParamCounts, flops_per_token, param_counts
from harness.ladder import LADDERS
from harness.residuals import VARIANTS
from records import config as hconfig
from records.config import (
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    ConfigError,
    DataConfig,
    ModelConfig,
    Rule,
    RunSpec,
    TrainConfig,
    check_setting,
)
from sweeps import rules

SWEEPS_DIR = Path(__file__).resolve().parent

# TrainConfig settings that change how a run executes, not what it computes: left out of the hash,
# so the same run keeps its id on another machine or executor (threads are set per executor).
EXECUTION_ONLY = ("threads", "device", "ckpt_every_s", "log_every_steps", "activation_checkpointing",
                  "init_from_outside_runs")

MODES = ("ratio", "tokens", "reference", "isoflop", "wsd")
_MODE_KEYS = {
    "ratio": {"tokens_per_param", "params"},
    "tokens": {"tokens"},
    "reference": set(),
    "isoflop": {"compute", "params", "min_tokens_per_param", "max_tokens_per_param"},
    "wsd": {"tokens_per_param", "tokens", "params", "cooldown_frac"},
}
_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# settings a sweep may not set by hand, and where they come from instead
_RESERVED = {
    "vocab_size": "it comes from the prepared data (meta.json); choose the data in [data]",
    "tokens": "set the token budget in [budget]",
    "seed": "list seeds in [sweep].seeds",
    "init_from": "WSD branches get it from [budget] mode = 'wsd'",
}


class SweepError(ValueError):
    """A sweep file is invalid: one message per problem (``problems``), each naming the file, the key
    and the fix; ``str()`` joins them, one per line."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Arm:
    """One variant of the sweep (a [variants] entry): its model settings, training overrides, axes."""

    name: str
    model: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    mode: str
    tokens_per_param: tuple[float, ...] = ()
    tokens: tuple[int, ...] = ()
    tokens_by_size: dict[str, int] = field(default_factory=dict)
    compute: tuple[float, ...] = ()
    params: str = "total"  # which parameter count a tokens/param ratio refers to
    min_tokens_per_param: float | None = None
    max_tokens_per_param: float | None = None
    cooldown_frac: float = 0.2


@dataclass(frozen=True)
class LaunchSpec:
    """Resources of one run's job (submitit's update_parameters), and throughput for estimates."""

    partition: str | None = None
    time_min: int = 60  # per job attempt; longer runs are requeued after a timeout and resume
    nodes: int = 1
    tasks_per_node: int = 1  # > 1: DDP with one process per task
    cpus_per_task: int = 1  # also the torch threads of each training process
    gpus_per_node: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 64  # at most this many tasks of a job array run at once
    max_num_timeout: int = 20  # requeues after timeouts before giving up (preemptions don't count)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    additional: dict[str, Any] = field(default_factory=dict)  # further sbatch options
    # estimates only (harness/devices.py is the one source of throughput): the device kind (None:
    # cpu-core, or H100 when gpus_per_node > 0), an assumed MFU for GPUs, and GPU memory (GB)
    device: str | None = None
    mfu: float | None = None
    gpu_mem_gb: float | None = None

    # Every string here reaches a generated sbatch script (submitit writes `#SBATCH --key=value`,
    # shell-quoted but line by line: a newline in a value starts a line bash runs). So strings are
    # held to what Slurm names and expressions use, and `additional` keys to sbatch option names.
    RULES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("partition", "account", "qos"), Rule(pattern=r"[A-Za-z0-9_.,:=@%+/\[\]-]+",
                                                              allowed="letters, digits and _ . , : = @ % + / [ ] -")),
        "constraint": Rule(pattern=r"[A-Za-z0-9_.,:=@%+/\[\]&|!*()-]+",
                           allowed="letters, digits and _ . , : = @ % + / [ ] - & | ! * ( )"),
        **dict.fromkeys(("time_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"), AT_LEAST_1),
        **dict.fromkeys(("gpus_per_node", "max_num_timeout"), NON_NEGATIVE),
        **dict.fromkeys(("mem_gb", "gpu_mem_gb"), POSITIVE),
        "mfu": Rule(lo=0, hi=1, lo_open=True),
    }

    def __post_init__(self) -> None:
        from harness.devices import KINDS

        for f in dataclasses.fields(self):
            check_setting(LaunchSpec, f.name, getattr(self, f.name))
        for problem in additional_problems(self.additional):
            raise ConfigError(problem, field="device")
        if self.device is not None and self.device not in KINDS:
            raise ConfigError(f"device: {self.device!r} is not a device of harness/devices.py; fix: use one of "
                              f"{sorted(KINDS)} (or add a DeviceKind line for yours)", field="device")

    @property
    def devices_per_run(self) -> int:
        per_node = self.gpus_per_node if self.gpus_per_node else self.tasks_per_node
        return max(1, self.nodes * per_node)


# sbatch options that have their own [launch] key, or that submitit and the harness set themselves
# (logs, the array, requeue signal, WSD dependencies): `additional` must not override them
_OWN_KEY = {"partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint",
            "time": "time_min", "nodes": "nodes", "ntasks-per-node": "tasks_per_node",
            "cpus-per-task": "cpus_per_task", "gpus-per-node": "gpus_per_node", "mem": "mem_gb"}
_HARNESS_SET = ("output", "error", "array", "job-name", "open-mode", "signal", "dependency", "wrap")
_SBATCH_KEY = r"[a-z][a-z0-9-]*"
_SBATCH_VALUE = r"[A-Za-z0-9_.,:=@%+/\[\]-]+"


def additional_problems(additional: dict[str, Any]) -> list[str]:
    """Problems of [launch].additional (sbatch options), each 'additional.<key>: problem; fix: ...'."""
    out = []
    for key, value in additional.items():
        name = key.replace("_", "-")  # submitit's spelling of the option
        where = f"additional.{key!r}" if not re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"additional.{key}"
        if not re.fullmatch(_SBATCH_KEY, name):
            out.append(f"{where}: not an sbatch option name; fix: use lowercase letters, digits and '-' "
                       "(the long option without '--', e.g. mail-type)")
        elif name in _OWN_KEY:
            out.append(f"{where}: has its own key; fix: set [launch].{_OWN_KEY[name]} instead")
        elif name in _HARNESS_SET:
            out.append(f"{where}: set by the harness (logs, job arrays, requeue, WSD dependencies); fix: remove it")
        elif value is False or not isinstance(value, (bool, int, float, str)):
            out.append(f"{where}: {value!r} is not an sbatch value; fix: use a string, a number, or true for a "
                       "flag (drop the key to leave it off)")
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(f"{where}: {value!r} is not finite; fix: use a finite number")
        elif isinstance(value, str) and not re.fullmatch(_SBATCH_VALUE, value):
            out.append(f"{where}: {value!r} has characters outside letters, digits and _ . , : = @ % + / [ ] -; "
                       "fix: use only those (no spaces, quotes or newlines)")
    return out


@dataclass(frozen=True)
class DataChoice:
    path: str  # absolute: the spec's data.path, valid from any working directory (a Slurm job's too)
    vocab_size: int
    vocab_source: str  # "meta.json" or a sentence saying what was assumed
    prepare_cmd: str  # the command that prepares it


@dataclass(frozen=True)
class Sweep:
    name: str
    file: str  # for messages: the path as the user would type it
    path: Path
    ladder: str
    sizes: tuple[str, ...]
    seeds: tuple[int, ...]
    rules: str
    budget: Budget
    arms: tuple[Arm, ...]
    model: dict[str, Any]
    train: dict[str, Any]
    axes: dict[str, list[Any]]
    data: DataChoice
    launch: LaunchSpec
    description: str = ""
    tracking: hconfig.TrackingConfig = field(default_factory=hconfig.TrackingConfig)


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    arm: str
    budget: str  # readable budget tag ("r20", "C1e13", ...; "" for a single budget per size)
    depends_on: str | None = None  # WSD branch: the trunk run whose kept checkpoint it starts from

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def params(self) -> ParamCounts:
        return param_counts(self.spec.model)

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token (3 x forward), harness.accounting's convention."""
        return flops_per_token(self.spec.model).train

    @property
    def trained_tokens(self) -> int:
        """Tokens this run trains itself (a WSD branch starts at its trunk's checkpoint)."""
        return self.spec.train.tokens - branch_point(self.spec)

    @property
    def compute(self) -> float:
        """Training FLOPs of the run's budget (as analysis counts it: all tokens, trunk included)."""
        return self.flops_per_token * self.spec.train.tokens


def branch_point(spec: RunSpec) -> int:
    """Tokens already trained in the checkpoint a run starts from (0 unless it is a WSD branch)."""
    if not spec.train.init_from:
        return 0
    m = re.search(r"tokens_(\d+)\.pt$", spec.train.init_from)
    return int(m.group(1)) if m else 0


# ----------------------------------------------------------------------------- locating files


def available_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.toml"))


def sweep_path(name_or_path: str | os.PathLike[str]) -> Path:
    """``demo`` -> sweeps/demo.toml in the package; anything with a '/' or '.toml' is a path."""
    s = str(name_or_path)
    if s.endswith(".toml") or os.sep in s or "/" in s:
        p = Path(s)
        if not p.is_file():
            raise SweepError(f"{s}: no such sweep file; fix: check the path, or use one of "
                             f"{available_sweeps()} by name")
        return p
    p = SWEEPS_DIR / f"{s}.toml"
    if not p.is_file():
        raise SweepError(f"{s}: no sweep of that name in sweeps/; fix: use one of {available_sweeps()} "
                         "or pass the path of a .toml file")
    return p


def _display(path: Path) -> str:
    """The file as a message should name it: relative to the cwd, or sweeps/<name>.toml."""
    path = path.resolve()
    for base in (Path.cwd(), SWEEPS_DIR.parent):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


# ----------------------------------------------------------------------------- parsing


class _Checker:
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


_TABLES = {"sweep", "budget", "variants", "model", "train", "axes", "data", "launch", "tracking"}


def load_sweep(name_or_path: str | os.PathLike[str]) -> Sweep:
    """Read and validate a sweep file completely: every key's name, type and range (by the config
    dataclasses' own rules), duplicates in lists. Raises one SweepError listing every problem found;
    cross-field checks of the resolved configs follow in ``expand``."""
    path = sweep_path(name_or_path)
    file = _display(path)
    c = _Checker(file)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{file}: not valid TOML ({e}); fix: correct the syntax at that line") from None
    except UnicodeDecodeError as e:
        raise SweepError(f"{file}: not UTF-8 text ({e}); fix: save the file as UTF-8") from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", path.stem):
        c.problems.append(str(c.fail(f"file name {path.stem!r}", "the file name is the sweep's name (runs/<name>/, "
                                     "run ids, Slurm job names)", "rename the file with letters, digits, '_', '.', '-'")))
    c.known(doc, _TABLES, "")
    head = c.attempt(c.table, doc, "sweep", required=True, default={})
    ladder, sizes, seeds, ruleset, description = _parse_head(c, head)

    model = c.attempt(c.table, doc, "model", default={})
    _check_settings(c, model, "[model]", model_ok=True, train_ok=False)
    train = c.attempt(c.table, doc, "train", default={})
    _check_settings(c, train, "[train]", model_ok=False, train_ok=True)
    axes = _parse_axes(c, c.attempt(c.table, doc, "axes", default={}), "[axes]")
    arms = c.attempt(_parse_arms, c, doc.get("variants"), default=())
    budget_t = c.attempt(c.table, doc, "budget", required=True, default=None)
    budget = None if budget_t is None or ladder is None or sizes is None else \
        c.attempt(_parse_budget, c, budget_t, ladder, list(sizes))
    data = c.attempt(_parse_data, c, c.attempt(c.table, doc, "data", default={}))
    launch = _parse_launch(c, c.attempt(c.table, doc, "launch", default={}))
    tracking = c.attempt(_parse_tracking, c, c.attempt(c.table, doc, "tracking", default={}),
                         default=hconfig.TrackingConfig())
    if c.problems:
        raise SweepError(*c.problems)
    return Sweep(name=path.stem, file=file, path=path, ladder=ladder, sizes=sizes, seeds=seeds,
                 rules=ruleset, budget=budget, arms=arms, model=model, train=train, axes=axes, data=data,
                 launch=launch, description=description, tracking=tracking)


def _parse_head(c: _Checker, head: dict[str, Any]) -> tuple[Any, ...]:
    """[sweep]: (ladder, sizes, seeds, rules, description); None for each part that has a problem."""
    c.known(head, {"ladder", "sizes", "seeds", "rules", "description"}, "[sweep]")
    ladder = sizes = None
    if "ladder" not in head:
        c.problems.append(str(c.fail("[sweep].ladder", "missing", f"name a ladder: one of {sorted(LADDERS)}")))
    else:
        ladder = c.attempt(c.string, head["ladder"], "[sweep].ladder", sorted(LADDERS))
    if ladder is not None:
        sizes = c.attempt(_parse_sizes, c, head.get("sizes", None), ladder)
    seeds = c.attempt(_parse_seeds, c, head.get("seeds", [0]))
    ruleset = c.attempt(c.string, head.get("rules", "scaling"), "[sweep].rules", sorted(rules.RULESETS))
    description = head.get("description", "")  # free text: the one string that may span lines
    if not isinstance(description, str):
        c.problems.append(str(c.fail("[sweep].description", f"expected a string, got {description!r}", "quote it")))
        description = ""
    return ladder, sizes, seeds, ruleset, description


def _parse_sizes(c: _Checker, sizes_v: Any, ladder: str) -> tuple[str, ...]:
    if sizes_v is None:
        raise c.fail("[sweep].sizes", "missing", f"list sizes of ladder {ladder!r}: some of {list(LADDERS[ladder])}")
    if sizes_v == "all":
        sizes_v = list(LADDERS[ladder])
    if not isinstance(sizes_v, list) or not sizes_v:
        raise c.fail("[sweep].sizes", f"expected a non-empty list, got {sizes_v!r}",
                     f'write e.g. sizes = {list(LADDERS[ladder])[:3]} or sizes = "all"')
    for s in sizes_v:
        if not isinstance(s, str) or s not in LADDERS[ladder]:
            raise c.fail("[sweep].sizes", f"{s!r} is not a size of ladder {ladder!r}",
                         f"use some of {list(LADDERS[ladder])}")
    c.unique(sizes_v, "[sweep].sizes", "size")
    return tuple(sizes_v)


def _parse_seeds(c: _Checker, seeds_v: Any) -> tuple[int, ...]:
    if not isinstance(seeds_v, list) or not seeds_v:
        raise c.fail("[sweep].seeds", f"expected a non-empty list of integers, got {seeds_v!r}", "write e.g. seeds = [0, 1]")
    seeds = tuple(c.integer(s, "[sweep].seeds", minimum=0) for s in seeds_v)
    c.unique(list(seeds), "[sweep].seeds", "seed")
    return seeds


def _settings_class(key: str) -> type:
    return ModelConfig if key in _MODEL_FIELDS else TrainConfig


def _check_settings(c: _Checker, values: dict[str, Any], where: str, model_ok: bool, train_ok: bool) -> None:
    """Each key of a settings table: known, settable here, and of the right type and range."""
    known = (_MODEL_FIELDS if model_ok else set()) | (_TRAIN_FIELDS if train_ok else set())
    unknown = c.known(values, known, where)
    for key, value in values.items():
        if key in unknown:
            continue
        if key in _RESERVED:
            c.problems.append(str(c.fail(f"{where}.{key}", "cannot be set here", _RESERVED[key])))
        elif key == "variant" and where == "[model]":
            c.problems.append(str(c.fail(f"{where}.{key}", "cannot be set here", "name variants in the [variants] table")))
        else:
            c.attempt(c.setting, _settings_class(key), key, value, where)


def _parse_axes(c: _Checker, table: dict[str, Any], where: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in table.items():
        if key in _RESERVED or key == "variant":
            c.problems.append(str(c.fail(f"{where}.{key}", "cannot be a sweep axis",
                                         _RESERVED.get(key, "list variants as [variants] entries"))))
            continue
        if c.known({key: 0}, _MODEL_FIELDS | _TRAIN_FIELDS, where):
            continue
        if not isinstance(values, list) or not values:
            c.problems.append(str(c.fail(f"{where}.{key}", f"expected a non-empty list of values, got {values!r}",
                                         f"write e.g. {key} = [1e-3, 3e-3]")))
            continue
        # all() stops at the first bad value: one message per axis
        if all(c.passes(c.setting, _settings_class(key), key, v, where) for v in values) and \
                c.passes(c.unique, values, f"{where}.{key}", "value"):
            out[key] = list(values)
    return out


def _parse_arms(c: _Checker, variants: Any) -> tuple[Arm, ...]:
    if variants is None:
        raise c.fail("[variants]", "missing", f"add e.g. variants = ['baseline', 'full'] (known: {sorted(VARIANTS)})")
    if isinstance(variants, list):
        for v in variants:
            if not isinstance(v, str):
                raise c.fail("[variants]", f"{v!r} is not a variant name", "list names, e.g. variants = ['baseline']")
        c.unique(variants, "[variants]", "arm")  # a list would silently merge a repeated name
        variants = {v: {} for v in variants}
    if not isinstance(variants, dict) or not variants:
        raise c.fail("[variants]", "expected a non-empty table or list", "see sweeps/demo.toml")
    arms = [c.attempt(_parse_arm, c, name, body) for name, body in variants.items()]
    if any(a is None for a in arms):
        raise SweepError()  # no new message: each arm's problems are recorded already
    return tuple(arms)


def _parse_arm(c: _Checker, name: str, body: Any) -> Arm:
    where = f"[variants.{name}]"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.]*", name):
        raise c.fail(where, "a variant's name becomes part of run ids", "use letters, digits, '_' or '.'")
    if not isinstance(body, dict):
        raise c.fail(where, f"expected a table, got {body!r}", f"write {name} = {{}} or a [{where[1:-1]}] table")
    body = dict(body)
    train = body.pop("train", {})
    axes = body.pop("axes", {})
    if not isinstance(train, dict):
        raise c.fail(f"[variants.{name}.train]", "expected a table", "write train = {lr = 1e-3}")
    if not isinstance(axes, dict):
        raise c.fail(f"[variants.{name}.axes]", "expected a table", "write axes = {lr = [1e-3, 3e-3]}")
    body.setdefault("variant", name)
    variant = c.string(body["variant"], f"{where}.variant")
    if variant not in VARIANTS:
        raise c.fail(f"{where}.variant", f"{variant!r} is not a residual variant",
                     f"set variant to one of {sorted(VARIANTS)} (harness/residuals.py)")
    before = len(c.problems)
    _check_settings(c, body, where, model_ok=True, train_ok=False)
    _check_settings(c, train, f"[variants.{name}.train]", model_ok=False, train_ok=True)
    arm_axes = _parse_axes(c, axes, f"[variants.{name}.axes]")
    if len(c.problems) > before:
        raise SweepError()  # recorded above
    return Arm(name=name, model=body, train=train, axes=arm_axes)


def _parse_budget(c: _Checker, t: dict[str, Any], ladder: str, sizes: list[str]) -> Budget:
    if "mode" not in t:
        raise c.fail("[budget].mode", "missing", f"set mode to one of {list(MODES)}")
    mode = c.string(t["mode"], "[budget].mode", MODES)
    c.known(t, _MODE_KEYS[mode] | {"mode"}, f"[budget] (mode {mode!r})")
    params = c.string(t.get("params", "total"), "[budget].params", ("total", "non_embedding"))
    if mode == "ratio":
        if "tokens_per_param" not in t:
            raise c.fail("[budget].tokens_per_param", "missing for mode 'ratio'", "set e.g. tokens_per_param = 20")
        return Budget(mode, tokens_per_param=c.numbers(t["tokens_per_param"], "[budget].tokens_per_param"),
                      params=params)
    if mode == "tokens":
        v = t.get("tokens")
        if v is None:
            raise c.fail("[budget].tokens", "missing for mode 'tokens'",
                         "set tokens = 1e8, a list, or a table {size = tokens}")
        if isinstance(v, dict):
            missing = [s for s in sizes if s not in v]
            if missing:
                raise c.fail("[budget].tokens", f"no budget for sizes {missing}", "give every size in [sweep].sizes a value")
            c.known(v, set(sizes), "[budget].tokens")
            return Budget(mode, tokens_by_size={s: c.integer(n, f"[budget].tokens.{s}") for s, n in v.items()})
        return Budget(mode, tokens=tuple(int(x) for x in c.numbers(v, "[budget].tokens", whole=True)))
    if mode == "reference":
        missing = [s for s in sizes if "tokens" not in LADDERS[ladder][s].reference]
        if missing:
            raise c.fail("[budget].mode", f"ladder {ladder!r} publishes no token budget for {missing}",
                         "use mode 'ratio' or 'tokens' for this ladder")
        return Budget(mode)
    if mode == "isoflop":
        if "compute" not in t:
            raise c.fail("[budget].compute", "missing for mode 'isoflop'", "list training FLOPs, e.g. compute = [1e12, 3e12]")
        lo = t.get("min_tokens_per_param")
        hi = t.get("max_tokens_per_param")
        lo = None if lo is None else c.number(lo, "[budget].min_tokens_per_param")
        hi = None if hi is None else c.number(hi, "[budget].max_tokens_per_param")
        if lo is not None and hi is not None and lo >= hi:
            raise c.fail("[budget].min_tokens_per_param", f"{lo} >= max_tokens_per_param {hi}", "make min < max")
        return Budget(mode, compute=c.numbers(t["compute"], "[budget].compute"), params=params,
                      min_tokens_per_param=lo, max_tokens_per_param=hi)
    # wsd
    if ("tokens_per_param" in t) == ("tokens" in t):
        raise c.fail("[budget].tokens_per_param", "mode 'wsd' needs exactly one of tokens_per_param or tokens",
                     "list the budgets each trunk branches at, e.g. tokens_per_param = [5, 10, 20]")
    cool = c.number(t.get("cooldown_frac", 0.2), "[budget].cooldown_frac")
    if not 0 < cool < 1:
        raise c.fail("[budget].cooldown_frac", f"got {cool}", "use a fraction in (0, 1), e.g. 0.2")
    if "tokens" in t:
        values = tuple(sorted(int(x) for x in c.numbers(t["tokens"], "[budget].tokens", whole=True)))
        kw: dict[str, Any] = {"tokens": values}
    else:
        kw = {"tokens_per_param": tuple(sorted(c.numbers(t["tokens_per_param"], "[budget].tokens_per_param")))}
    return Budget(mode, params=params, cooldown_frac=cool, **kw)


def _parse_data(c: _Checker, t: dict[str, Any]) -> DataChoice:
    """[data]: a prepared directory, by path or by corpus/tokenizer (harness.data.default_data_dir).
    The vocabulary size comes from its meta.json; before it is prepared, from the tokenizer (byte:
    256; bpe: vocab_size), so `plan` works without data and says what it assumed."""
    from records import tokens as hdata

    c.known(t, {"path", "corpus", "tokenizer", "vocab_size"}, "[data]")
    if "path" in t and "corpus" in t:
        raise c.fail("[data].path", "path and corpus both set",
                     "give either the path of a prepared directory or the corpus to prepare")
    tokenizer = c.string(t.get("tokenizer", "byte"), "[data].tokenizer", ("byte", "bpe"))
    kw: dict[str, Any] = {"tokenizer": tokenizer}
    if "corpus" in t:
        kw["corpus"] = c.string(t["corpus"], "[data].corpus")
    if "vocab_size" in t:
        if tokenizer != "bpe":
            raise c.fail("[data].vocab_size", "only a BPE tokenizer has a vocabulary size to choose",
                         "set tokenizer = 'bpe' or drop vocab_size (bytes: 256)")
        kw["vocab_size"] = c.integer(t["vocab_size"], "[data].vocab_size", minimum=257)
    # with a path, tokenizer/vocab_size only say what to assume until the directory is prepared
    path = c.string(t["path"], "[data].path") if "path" in t else str(hdata.default_data_dir(**kw))
    path = str(Path(path).resolve())
    if "path" in t:
        prepare_cmd = (f"attnres data prepare --out {shlex.quote(path)} --tokenizer {tokenizer}"
                       + (f" --vocab-size {kw['vocab_size']}" if "vocab_size" in kw else "")
                       + " (and --source-dir DIR or --token-files FILES for your own corpus)")
    else:
        prepare_cmd = " ".join(["attnres data prepare", *(f"--{k.replace('_', '-')} {v}" for k, v in kw.items()),
                                f"--out {shlex.quote(path)}"])
    if Path(path, "meta.json").is_file():
        try:
            meta = hdata.read_meta(path)
        except hdata.DataError as e:
            raise c.fail("[data]", str(e), f"re-run `{prepare_cmd}`") from None
        return DataChoice(path, int(meta["vocab_size"]), "meta.json", prepare_cmd)
    vocab = 256 if tokenizer == "byte" else kw.get("vocab_size", hdata.DEFAULT_BPE_VOCAB)
    return DataChoice(path, vocab, f"assumed {vocab} from the {tokenizer} tokenizer ({path} is not prepared yet)",
                      prepare_cmd)


_TRACKING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _parse_tracking(c: _Checker, t: dict[str, Any]) -> hconfig.TrackingConfig:
    """[tracking] (harness/tracking.py): which trackers, and wandb's project, entity and mode."""
    c.known(t, {"backends", "project", "entity", "wandb_mode"}, "[tracking]")
    if not t:
        return hconfig.TrackingConfig()
    backends = t.get("backends")
    if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
        raise c.fail("[tracking].backends", f"expected a list of tracker names, got {backends!r}",
                     f"write e.g. backends = {list(hconfig.TRACKERS)} (or remove the table: tracking is off by default)")
    for b in backends:
        if b not in hconfig.TRACKERS:
            raise c.fail("[tracking].backends", f"unknown tracker {b!r}", f"use some of {list(hconfig.TRACKERS)}")
    if len(set(backends)) != len(backends):
        raise c.fail("[tracking].backends", "a tracker is listed twice", "list each once")
    values: dict[str, Any] = {"backends": tuple(backends)}
    for key in ("project", "entity"):
        if key in t:
            v = c.string(t[key], f"[tracking].{key}")
            if not _TRACKING_NAME.fullmatch(v):
                raise c.fail(f"[tracking].{key}", f"{v!r} is not a plain name",
                             "use letters, digits, '.', '_' and '-' (at most 128)")
            values[key] = v
    if "wandb_mode" in t:
        values["wandb_mode"] = c.string(t["wandb_mode"], "[tracking].wandb_mode", hconfig.WANDB_MODES)
    if "wandb" not in backends and len(values) > 1:
        extra = sorted(set(values) - {"backends"})[0]
        raise c.fail(f"[tracking].{extra}", "set for wandb, which is not in backends",
                     "add 'wandb' to backends or drop the key")
    return hconfig.TrackingConfig(**values)


def data_key(path: str) -> str:
    """How a data directory enters run ids: its name under the data root ($ATTNRES_DATA_DIR or the
    checkout's data/, e.g. "wiki-byte"), else its absolute path. So ids do not depend on where the
    checkout lives or which directory `attnres` runs from."""
    from records.tokens import data_root

    p = Path(path).resolve()
    try:
        return str(p.relative_to(data_root().resolve()))
    except ValueError:
        return str(p)


def _parse_launch(c: _Checker, t: dict[str, Any]) -> LaunchSpec | None:
    """[launch]: every key by LaunchSpec's rules (strings safe to write into an sbatch script)."""
    from harness.devices import KINDS

    for old in ("device_flops", "device_name"):  # replaced by one table of device rates
        if old in t:
            c.problems.append(f"{c.file}: [launch].{old}: removed: every estimate now uses one table of device "
                              "rates (harness/devices.py), so a run has one estimate in every sweep; fix: delete it; "
                              f"set [launch].device = one of {sorted(KINDS)} (and mfu = 0.4 for a GPU)")
    t = {k: v for k, v in t.items() if k not in ("device_flops", "device_name")}
    unknown = c.known(t, {f.name for f in dataclasses.fields(LaunchSpec)}, "[launch]")
    before = len(c.problems)
    values = {k: c.attempt(c.setting, LaunchSpec, k, v, "[launch]") for k, v in t.items() if k not in unknown}
    if isinstance(values.get("additional"), dict):
        c.problems.extend(f"{c.file}: [launch].{p}" for p in additional_problems(values["additional"]))
    if len(c.problems) > before or unknown:
        return None
    try:
        return LaunchSpec(**values)
    except ConfigError as e:  # a rule the per-key checks above did not cover
        c.problems.append(f"{c.file}: [launch].{e}")
        return None


# ----------------------------------------------------------------------------- expansion


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}".replace("e+", "e").replace("e-0", "e-")
    return str(v)


def _count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")


def config_hash(model: ModelConfig, train: TrainConfig, data: DataConfig) -> str:
    """8 hex digits of sha256 over the canonical JSON of the resolved configs: model, train (without
    EXECUTION_ONLY) and data (its ``data_key``)."""
    tr = {k: v for k, v in dataclasses.asdict(train).items() if k not in EXECUTION_ONLY}
    doc = {"model": dataclasses.asdict(model), "train": tr, "data": {"path": data_key(data.path)}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _settings_error(sweep: Sweep, e: ConfigError, origins: dict[str, str], fallback: str) -> SweepError:
    """Re-raise a ConfigError naming the table its field came from, or (for a value nobody set
    explicitly) what produced it."""
    msg = str(e)
    if e.field in origins:
        return SweepError(f"{sweep.file}: {origins[e.field]}.{msg}")
    return SweepError(f"{sweep.file}: {fallback}: {msg}")


@dataclass(frozen=True)
class _Point:
    """One token budget of a size: its tag, the axis value recorded in the spec, and the tokens."""

    tag: str
    axis: dict[str, Any]
    tokens: float


def _budget_points(sweep: Sweep, size: str, model: ModelConfig, base: ModelConfig) -> list[_Point]:
    """The token budgets of one arm at one size. Ratios refer to the size's baseline parameters, so
    every arm at a size trains on the same tokens (as in the paper); isoFLOP budgets use the arm's
    own FLOPs/token, so every run spends exactly its compute."""
    b = sweep.budget
    base_params = param_counts(base)
    n = base_params.total if b.params == "total" else base_params.non_embedding
    if b.mode in ("ratio", "wsd") and b.tokens_per_param:
        many = len(b.tokens_per_param) > 1
        return [_Point(f"r{_fmt(r)}" if many else "", {"tokens_per_param": r} if many else {}, r * n)
                for r in b.tokens_per_param]
    if b.mode in ("tokens", "wsd") and b.tokens:
        many = len(b.tokens) > 1
        return [_Point(f"t{_count(t)}" if many else "", {"tokens": t} if many else {}, float(t)) for t in b.tokens]
    if b.mode == "tokens":
        return [_Point("", {}, float(b.tokens_by_size[size]))]
    if b.mode == "reference":
        return [_Point("", {}, float(LADDERS[sweep.ladder][size].reference["tokens"]))]
    # isoflop: a size stays in a budget only when the baseline's tokens/param is inside the window
    out = []
    for cflops in b.compute:
        ratio = cflops / flops_per_token(base).train / n
        if b.min_tokens_per_param is not None and ratio < b.min_tokens_per_param:
            continue
        if b.max_tokens_per_param is not None and ratio > b.max_tokens_per_param:
            continue
        out.append(_Point(f"C{_fmt(cflops)}", {"compute": cflops}, cflops / flops_per_token(model).train))
    return out


def expand(sweep: Sweep) -> list[PlannedRun]:
    """Every run of the sweep, in file order (arms, sizes, axes, budgets, seeds). Cross-field problems
    of the resolved configs are collected over all runs: one SweepError, one message per problem."""
    runs: list[PlannedRun] = []
    problems: list[str] = []
    for arm in sweep.arms:
        axes = {**sweep.axes, **arm.axes}
        names = list(axes)
        for size in sweep.sizes:
            for combo in itertools.product(*(axes[k] for k in names)):
                axis_values = dict(zip(names, combo))
                try:
                    runs.extend(_expand_one(sweep, arm, size, axis_values))
                except SweepError as e:
                    problems += [p for p in e.problems if p not in problems]
    if problems:
        raise SweepError(*problems)
    _check_budgets(sweep, runs)
    dups = sorted(i for i, n in Counter(r.run_id for r in runs).items() if n > 1)
    if dups:
        dup = dups[0]
        raise SweepError(f"{sweep.file}: [variants]: two runs resolve to the same config ({dup}); "
                         "fix: remove the duplicate arm or axis value")
    return runs


def _check_budgets(sweep: Sweep, runs: list[PlannedRun]) -> None:
    if sweep.budget.mode != "isoflop":
        return
    for cflops in sweep.budget.compute:
        sizes = {r.spec.size for r in runs if r.spec.axes.get("compute") == cflops}
        if len(sizes) < 2:
            raise SweepError(
                f"{sweep.file}: [budget].compute: budget {cflops:g} keeps {len(sizes)} size(s) inside the "
                f"tokens/param window [{sweep.budget.min_tokens_per_param}, {sweep.budget.max_tokens_per_param}]; "
                "fix: widen the window, add sizes, or drop that budget (an isoFLOP curve needs >= 2 sizes, better 3+)")


def _model_for(sweep: Sweep, arm: Arm, size: str, axis_values: dict[str, Any]) -> tuple[ModelConfig, ModelConfig]:
    shape = dataclasses.asdict(LADDERS[sweep.ladder][size])
    shape.pop("reference")
    origins = {**{k: "[model]" for k in sweep.model}, **{k: f"[variants.{arm.name}]" for k in arm.model},
               **{k: "[axes]" for k in axis_values if k in _MODEL_FIELDS}}
    values = {**shape, **sweep.model, **arm.model,
              **{k: v for k, v in axis_values.items() if k in _MODEL_FIELDS},
              "vocab_size": sweep.data.vocab_size}
    try:
        model = ModelConfig(**values)
        base = ModelConfig(**{**shape, **sweep.model, "vocab_size": sweep.data.vocab_size})
    except ConfigError as e:
        field_name = str(e).split(":", 1)[0]
        if field_name in ("attnres_blocks", "layers_per_block", "depth_heads", "variant"):
            origins.setdefault(field_name, f"[variants.{arm.name}]")
        raise _settings_error(sweep, e, origins, f"[sweep].sizes (size {size} of ladder {sweep.ladder})") from None
    return model, base


def _expand_one(sweep: Sweep, arm: Arm, size: str, axis_values: dict[str, Any]) -> list[PlannedRun]:
    model, base = _model_for(sweep, arm, size, axis_values)
    fpt = flops_per_token(model).train
    data = DataConfig(path=sweep.data.path)
    train_axes = {k: v for k, v in axis_values.items() if k in _TRAIN_FIELDS}
    origins = {**{k: "[train]" for k in sweep.train}, **{k: f"[variants.{arm.name}.train]" for k in arm.train},
               **{k: "[axes]" for k in train_axes}}
    explicit = {**sweep.train, **arm.train, **train_axes}
    axis_tag = "-".join(f"{k}{_fmt(v)}" for k, v in axis_values.items())
    points = _budget_points(sweep, size, model, base)
    if not points:
        return []

    def make_train(tokens: float, seed: int, extra: dict[str, Any]) -> TrainConfig:
        ctx = rules.RuleContext(ladder=sweep.ladder, size=size, reference=LADDERS[sweep.ladder][size].reference,
                                seq_len=model.seq_len, tokens=int(tokens), compute=fpt * tokens)
        values = {**rules.derive(sweep.rules, ctx), **explicit, **extra, "seed": seed}
        tps = int(values.get("batch_size", TrainConfig.batch_size)) * model.seq_len
        values["tokens"] = max(1, round(tokens / tps)) * tps  # whole optimizer steps
        if "eval_every_tokens" in values and values["eval_every_tokens"] is not None:
            values["eval_every_tokens"] = max(tps, round(values["eval_every_tokens"] / tps) * tps)
        try:
            return TrainConfig(**values)
        except ConfigError as e:
            raise _settings_error(sweep, e, origins, f"[sweep].rules ({sweep.rules})") from None

    def make_run(train: TrainConfig, point: _Point, depends_on: str | None = None) -> PlannedRun:
        name = "-".join(p for p in (sweep.name, arm.name, size, point.tag, axis_tag, f"s{train.seed}") if p)
        run_id = f"{_slug(name)}-{config_hash(model, train, data)}"
        spec = RunSpec(run_id=run_id, model=model, train=train, data=data, sweep=sweep.name, size=size,
                       ladder=sweep.ladder, axes={**point.axis, **axis_values}, arm=arm.name,
                       tracking=sweep.tracking)
        return PlannedRun(spec=spec, arm=arm.name, budget=point.tag, depends_on=depends_on)

    if sweep.budget.mode != "wsd":
        return [make_run(make_train(p.tokens, seed, {}), p) for p in points for seed in sweep.seeds]
    return [r for seed in sweep.seeds for r in _wsd_family(sweep, points, seed, model.seq_len, make_train, make_run)]


def _wsd_family(sweep: Sweep, points: list[_Point], seed: int, seq_len: int, make_train, make_run) -> list[PlannedRun]:
    """One trunk trained to the largest budget with a WSD schedule, keeping a checkpoint where each
    smaller budget's cool-down starts; one branch per smaller budget resumes from that checkpoint and
    decays over its last ``cooldown_frac``. Warmup and batch are the trunk's, so up to the branch
    point a branch's schedule is identical to the trunk's (Hagele et al. 2024, "Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations": cool-downs from one constant-lr
    trunk match cosine runs of each length)."""
    f = sweep.budget.cooldown_frac
    for where, table in (("[train]", sweep.train), *((f"[variants.{a.name}.train]", a.train) for a in sweep.arms)):
        for key in ("schedule", "decay_frac", "save_at_tokens"):
            if key in table and not (key == "schedule" and table[key] == "wsd"):
                raise SweepError(f"{sweep.file}: {where}.{key}: set by [budget] mode 'wsd'; fix: remove it "
                                 "(the cool-down length is [budget].cooldown_frac)")
    points = sorted(points, key=lambda p: p.tokens)
    top = points[-1]
    probe = make_train(top.tokens, seed, {"schedule": "wsd", "decay_frac": f})
    tps = probe.batch_size * seq_len
    warmup = probe.warmup_tokens if probe.warmup_tokens is not None else round(probe.warmup_frac * probe.tokens / tps) * tps
    shared = {"schedule": "wsd", "batch_size": probe.batch_size, "lr": probe.lr, "warmup_tokens": warmup,
              "decay_frac": f}
    branches: list[tuple[_Point, int, TrainConfig]] = []
    for p in points[:-1]:
        steps = max(2, round(p.tokens / tps))
        decay_steps = max(1, round(f * steps))
        start = (steps - decay_steps) * tps  # the branch point: a whole step, inside the stable phase
        if start < warmup:
            raise SweepError(f"{sweep.file}: [budget]: budget {p.tag} cools down from {start} tokens, before the "
                             f"trunk's warmup ends ({warmup} tokens); fix: drop budgets below "
                             f"{warmup / (1 - f):.3g} tokens, or shorten warmup")
        train = make_train(p.tokens, seed, {**shared, "decay_frac": decay_steps / steps})
        branches.append((p, start, train))
    kept = tuple(sorted({start for _, start, _ in branches}))
    trunk_train = make_train(top.tokens, seed, {**shared, "save_at_tokens": kept})
    trunk = make_run(trunk_train, top)
    out = [trunk]
    for p, start, train in branches:
        train = dataclasses.replace(train, init_from=f"{trunk.run_id}/ckpt/tokens_{start}.pt")
        out.append(make_run(train, p, depends_on=trunk.run_id))
    return out
