"""`attnres train`: train (or resume) one run in a run directory.

    attnres train --run-dir runs/adhoc/my-run               # resumes if runs/adhoc/my-run/ckpt/last.pt exists
    attnres train --spec spec.json --run-dir runs/x/y       # copy a RunSpec into a new run directory
    attnres train --ladder tiny --size d3 --variant block --attnres-blocks 3 --tokens 2e6 --run-dir runs/x/y
    torchrun --nproc-per-node 2 -m attnres train --run-dir ...   # DDP (gloo on CPU, nccl on GPU)

A run directory holds one run. Asking for a different run there (--spec, or ad-hoc settings that
differ from its spec.json) is refused with the differences listed; --force starts it over with
the new spec and keeps the old files under <run-dir>/.replaced/<time>/. A finished run is left as
it is: "done" is reported and nothing is written.

Kept apart from harness/train.py so that parsing these arguments does not import torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from records.choices import Device, Dtype, Schedule, Variant, choices

# ad-hoc settings and their defaults; None on the command line means "not given"
_ADHOC = {"ladder": "tiny", "size": "d2", "variant": "baseline", "attnres_blocks": None, "tokens": 1_000_000,
          "batch_size": 32, "lr": 3e-3, "schedule": "cosine", "seed": 0, "data": None, "device": "auto",
          "dtype": "auto", "compile": False, "activation_checkpointing": False}


def _num(s: str) -> int:
    return int(float(s))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train (or resume) a single run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="run directory; resumes from its checkpoint if present")
    p.add_argument("--spec", help="a spec.json (RunSpec) to start the run from")
    p.add_argument("--force", action="store_true",
                   help="start the run over with the requested spec (the old files move to RUN_DIR/.replaced/)")
    g = p.add_argument_group("ad-hoc run (instead of --spec; defaults in brackets)")
    g.add_argument("--ladder", help="[tiny]")
    g.add_argument("--size", help="[d2]")
    g.add_argument("--variant", choices=choices(Variant), metavar="VARIANT",
                   help=f"residual variant: {', '.join(choices(Variant))} [baseline]")
    g.add_argument("--attnres-blocks", type=int)
    g.add_argument("--tokens", type=_num, help="token budget, e.g. 2e6 [1e6]")
    g.add_argument("--batch-size", type=int, help="[32]")
    g.add_argument("--lr", type=float, help="[3e-3]")
    g.add_argument("--schedule", choices=choices(Schedule), help="[cosine]")
    g.add_argument("--seed", type=int, help="[0]")
    g.add_argument("--data", help="prepared data directory [records.tokens.default_data_dir()]")
    g.add_argument("--device", choices=choices(Device), help="[auto]")
    g.add_argument("--dtype", choices=choices(Dtype), help="[auto: bf16 autocast on CUDA, fp32 on CPU]")
    g.add_argument("--compile", action="store_true", default=None)
    g.add_argument("--activation-checkpointing", action="store_true", default=None,
                   help="recompute sublayer activations in the backward (less memory, same results)")
    p.set_defaults(func=_cmd_train)


def _adhoc_spec(args: argparse.Namespace, run_id: str) -> Any:
    from harness.ladder import model_config
    from records.config import DataConfig, RunSpec, TrainConfig, build_config
    from records.tokens import default_data_dir, read_meta

    a = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in _ADHOC.items()}
    data = a["data"] or str(default_data_dir())
    extra = {"attnres_blocks": a["attnres_blocks"]} if a["attnres_blocks"] else {}
    model = model_config(a["ladder"], a["size"], variant=a["variant"], vocab_size=read_meta(data)["vocab_size"],
                         **extra)
    train = build_config(TrainConfig, {k: a[k] for k in ("tokens", "batch_size", "lr", "schedule", "seed", "device",
                                                          "dtype", "compile", "activation_checkpointing")}, "train")
    return RunSpec(run_id=run_id, model=model, train=train, data=DataConfig(data), ladder=a["ladder"], size=a["size"])


def requested_spec(args: argparse.Namespace, run_id: str) -> dict[str, Any] | None:
    """The spec the command line asks for (--spec or any ad-hoc setting), as a dict; None if none."""
    from records.config import RunSpec

    if args.spec:
        try:
            return RunSpec.from_dict(json.loads(Path(args.spec).read_text())).to_dict()
        except KeyError as e:
            raise ValueError(f"{args.spec}: not a run spec (no {e} key); fix: pass a spec.json of a run") from None
    if any(getattr(args, k) is not None for k in _ADHOC):
        return _adhoc_spec(args, run_id).to_dict()
    return None


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
    return out


def spec_differences(existing: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every setting that differs (an earlier version's "derived" block is not
    a setting, and tracking is execution only: it is not part of the run's identity either)."""
    from records.config import RunSpec

    norm = lambda d: _flat(json.loads(json.dumps(RunSpec.from_dict(d).to_dict(), default=list)))
    old = norm(existing)
    new = norm(requested)
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and not k.startswith("tracking.")]


def set_aside(run_dir: Path) -> Path:
    """Move everything in the run directory into .replaced/<UTC time>/ (nothing is deleted)."""
    dest = run_dir / ".replaced" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=False)
    for entry in run_dir.iterdir():
        if entry.name != ".replaced":
            entry.rename(dest / entry.name)
    return dest


def _prepare(args: argparse.Namespace) -> str | None:
    """Write the run directory's spec as asked; returns a message to stop with ("done"), or None to
    train. Raises ValueError for a request that must be refused."""
    from records.rundir import RunDir

    run = RunDir(args.run_dir)
    requested = requested_spec(args, run.path.name)
    if not run.spec_path.exists():
        run.write_spec(requested or _adhoc_spec(args, run.path.name).to_dict())
        return None
    existing = run.read_spec()
    diffs = spec_differences(existing, requested) if requested is not None else []
    if args.force:
        from harness.runlock import describe_holder, is_locked

        if is_locked(run.path):
            raise ValueError(f"--force: {run.path} is being trained now ({describe_holder(run.path)}); fix: stop "
                             "it first (`attnres cancel`, or Ctrl-C), then start it over")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("--force under torchrun: every process would replace the directory; fix: run it "
                             "once in one process (or move the directory away), then start torchrun without --force")
        old = set_aside(run.path)
        # (without an earlier version's "derived" block: training writes derived.json anew)
        run.write_spec(requested or {k: v for k, v in existing.items() if k != "derived"})
        print(f"attnres train: started {run.path} over; the previous files are in {old}", file=sys.stderr)
        return None
    if diffs:
        shown = "; ".join(diffs[:12]) + (f"; and {len(diffs) - 12} more" if len(diffs) > 12 else "")
        raise ValueError(f"{run.spec_path} holds a different run ({shown}); fix: choose a new --run-dir, or pass "
                         f"--force to start this one over with the new spec (the old files are kept under "
                         f"{run.path}/.replaced/)")
    if run.state == "done":
        return f"{run.path}: already done; nothing to do (--force to train it again)"
    return None


def _cmd_train(args: argparse.Namespace) -> int:
    from records.config import ConfigError
    from records.tokens import DataError

    try:
        stop = _prepare(args)
    except (ConfigError, DataError, OSError, ValueError, KeyError) as e:
        print(f"attnres train: {e}", file=sys.stderr)
        return 2
    if stop:
        print(stop)
        return 0
    from harness.train import train_run

    state = train_run(args.run_dir)
    return 0 if state == "done" else 1
