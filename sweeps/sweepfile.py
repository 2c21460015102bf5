"""The sweep file: read ``sweeps/<name>.toml`` and check every key before anything runs.

    sweep = load_sweep("demo")     # a name (sweeps/demo.toml beside this module) or a .toml path

Tables (sweeps/demo.toml is the commented example):

    [sweep]     ladder, sizes, seeds, rules (sweeps/rules.py), description
    [budget]    mode and that mode's keys (sweeps/budget.py)
    [variants]  arm name = {variant, ModelConfig settings, train = {...}, axes = {...}}
    [model]     ModelConfig settings for every run (e.g. seq_len)
    [train]     TrainConfig settings for every run; they win over the run rules
    [axes]      setting = [values]: extra sweep axes, a cartesian product (an arm's own ``axes``
                table adds to or replaces these for that arm: an lr grid per arm)
    [data]      path, or corpus and tokenizer (records.tokens.default_data_dir)
    [launch]    Slurm resources; device, mfu, gpu_mem_gb for estimates (sweeps/launchspec.py)
    [tracking]  optional live tracking (harness/tracking.py); not part of run ids

Each key's type and range is checked by the config dataclasses' own rules (records/config.py), so
`plan` catches what training would refuse; one SweepError lists every problem of the file.
Cross-field checks of the resolved configs follow in ``sweeps.expand.expand``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ladder import LADDERS
from records import config as hconfig
from records.choices import Tokenizer, Variant, choices
from records.config import ModelConfig, TrainConfig
from sweeps import rules
from sweeps.budget import Budget, parse_budget
from sweeps.checker import Checker, SweepError
from sweeps.launchspec import LaunchSpec, parse_launch

SWEEPS_DIR = Path(__file__).resolve().parent

MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# settings a sweep may not set by hand, and where they come from instead
_RESERVED = {
    "vocab_size": "it comes from the prepared data (meta.json); choose the data in [data]",
    "tokens": "set the token budget in [budget]",
    "seed": "list seeds in [sweep].seeds",
    "init_from": "WSD branches get it from [budget] mode = 'wsd'",
}



@dataclass(frozen=True)
class Arm:
    """One variant of the sweep (a [variants] entry): its model settings, training overrides, axes."""

    name: str
    model: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)



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



_TABLES = {"sweep", "budget", "variants", "model", "train", "axes", "data", "launch", "tracking"}


def load_sweep(name_or_path: str | os.PathLike[str]) -> Sweep:
    """Read and validate a sweep file completely: every key's name, type and range (by the config
    dataclasses' own rules), duplicates in lists. Raises one SweepError listing every problem found;
    cross-field checks of the resolved configs follow in ``expand``."""
    path = sweep_path(name_or_path)
    file = _display(path)
    c = Checker(file)
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
        c.attempt(parse_budget, c, budget_t, ladder, list(sizes))
    data = c.attempt(_parse_data, c, c.attempt(c.table, doc, "data", default={}))
    launch = parse_launch(c, c.attempt(c.table, doc, "launch", default={}))
    tracking = c.attempt(_parse_tracking, c, c.attempt(c.table, doc, "tracking", default={}),
                         default=hconfig.TrackingConfig())
    if c.problems:
        raise SweepError(*c.problems)
    return Sweep(name=path.stem, file=file, path=path, ladder=ladder, sizes=sizes, seeds=seeds,
                 rules=ruleset, budget=budget, arms=arms, model=model, train=train, axes=axes, data=data,
                 launch=launch, description=description, tracking=tracking)


def _parse_head(c: Checker, head: dict[str, Any]) -> tuple[Any, ...]:
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


def _parse_sizes(c: Checker, sizes_v: Any, ladder: str) -> tuple[str, ...]:
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


def _parse_seeds(c: Checker, seeds_v: Any) -> tuple[int, ...]:
    if not isinstance(seeds_v, list) or not seeds_v:
        raise c.fail("[sweep].seeds", f"expected a non-empty list of integers, got {seeds_v!r}", "write e.g. seeds = [0, 1]")
    seeds = tuple(c.integer(s, "[sweep].seeds", minimum=0) for s in seeds_v)
    c.unique(list(seeds), "[sweep].seeds", "seed")
    return seeds


def _settings_class(key: str) -> type:
    return ModelConfig if key in MODEL_FIELDS else TrainConfig


def _check_settings(c: Checker, values: dict[str, Any], where: str, model_ok: bool, train_ok: bool) -> None:
    """Each key of a settings table: known, settable here, and of the right type and range."""
    known = (MODEL_FIELDS if model_ok else set()) | (TRAIN_FIELDS if train_ok else set())
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


def _parse_axes(c: Checker, table: dict[str, Any], where: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in table.items():
        if key in _RESERVED or key == "variant":
            c.problems.append(str(c.fail(f"{where}.{key}", "cannot be a sweep axis",
                                         _RESERVED.get(key, "list variants as [variants] entries"))))
            continue
        if c.known({key: 0}, MODEL_FIELDS | TRAIN_FIELDS, where):
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


def _parse_arms(c: Checker, variants: Any) -> tuple[Arm, ...]:
    if variants is None:
        raise c.fail("[variants]", "missing", f"add e.g. variants = ['baseline', 'full'] (known: {sorted(choices(Variant))})")
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


def _parse_arm(c: Checker, name: str, body: Any) -> Arm:
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
    if variant not in choices(Variant):
        raise c.fail(f"{where}.variant", f"{variant!r} is not a residual variant",
                     f"set variant to one of {sorted(choices(Variant))} (harness/residuals.py)")
    before = len(c.problems)
    _check_settings(c, body, where, model_ok=True, train_ok=False)
    _check_settings(c, train, f"[variants.{name}.train]", model_ok=False, train_ok=True)
    arm_axes = _parse_axes(c, axes, f"[variants.{name}.axes]")
    if len(c.problems) > before:
        raise SweepError()  # recorded above
    return Arm(name=name, model=body, train=train, axes=arm_axes)



def _parse_data(c: Checker, t: dict[str, Any]) -> DataChoice:
    """[data]: a prepared directory, by path or by corpus/tokenizer (records.tokens.default_data_dir).
    The vocabulary size comes from its meta.json; before it is prepared, from the tokenizer (byte:
    256; bpe: vocab_size), so `plan` works without data and says what it assumed."""
    from records import tokens as hdata

    c.known(t, {"path", "corpus", "tokenizer", "vocab_size"}, "[data]")
    if "path" in t and "corpus" in t:
        raise c.fail("[data].path", "path and corpus both set",
                     "give either the path of a prepared directory or the corpus to prepare")
    tokenizer = c.string(t.get("tokenizer", "byte"), "[data].tokenizer", choices(Tokenizer))
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


def _parse_tracking(c: Checker, t: dict[str, Any]) -> hconfig.TrackingConfig:
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

