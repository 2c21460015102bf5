"""Training checkpoints that load without running code: tensors and plain containers only.

    save(path, state, summary)   ckpt/<name>.pt (atomic) and ckpt/<name>.json beside it
    load(path)                   torch.load(weights_only=True); CheckpointError if refused
    python -m harness.checkpoint upgrade ckpt/last.pt    # convert an old checkpoint you trust

A pickle can run any code when it is loaded, so nothing a user, a sweep or another machine supplies
is unpickled: ``torch.load(..., weights_only=True)`` accepts tensors, numbers, strings and
dicts/lists/tuples only and refuses everything else before it runs. The state the trainer saves is
of that kind: the numpy RNG state (a tuple holding an ndarray) is stored as plain data
(``numpy_rng_to_plain``). The JSON file beside each checkpoint says what it holds (run, step,
tokens, time, sizes) for a person or a script that should not open the checkpoint itself.

Checkpoints of earlier versions pickled the numpy RNG state and cannot be loaded safely; loading one
fails with a message naming the file and the two fixes (``upgrade`` it if you trust it, or delete it
and retrain the run from the start).
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from records.rundir import atomic_write, atomic_write_bytes

FORMAT = "attnres-ckpt/2"  # what the JSON sidecar and the state's "format" key say


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded safely; the message names the file and the fix."""


def numpy_rng_to_plain(state: tuple) -> dict[str, Any]:
    """np.random.get_state() (legacy MT19937 tuple) as tensors and numbers only."""
    kind, keys, pos, has_gauss, cached = state
    return {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def numpy_rng_from_plain(d: dict[str, Any]) -> tuple:
    return (d["kind"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached_gaussian"])


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save(path: Path, state: dict[str, Any], summary: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename), then the JSON sidecar."""
    atomic_write(path, lambda f: torch.save({**state, "format": FORMAT}, f))
    info = {"format": FORMAT, "file": path.name, "bytes": path.stat().st_size, "saved_at": time.time(),
            "saved_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            **summary}
    atomic_write_bytes(sidecar(path), (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())


def _refused_global(err: Exception) -> str | None:
    m = re.search(r"(?:Unsupported global|GLOBAL) ([\w.]+(?: [\w.]+)?)", str(err))
    return m.group(1) if m else None


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``save``; CheckpointError (naming the file and the fix) for anything that
    is not tensors and plain containers. Nothing in the file is executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; fix: check train.init_from or the run directory") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as e:
        what = _refused_global(e)
        if what and what.startswith("numpy"):
            raise CheckpointError(
                f"{path}: written by an earlier version of this harness (it pickles numpy's RNG state, {what}), "
                "which cannot be loaded without running code from the file; fix: if you trust it (your own run), "
                f"convert it once with `python -m harness.checkpoint upgrade {path}`, or delete it to retrain the run "
                "from the start") from None
        if what:
            raise CheckpointError(
                f"{path}: refused: the file asks to import {what!r} while loading, which a checkpoint of this "
                "harness never does (a crafted or foreign file); nothing in it was run; fix: delete it, and "
                "retrain or point train.init_from at a checkpoint this harness wrote") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e}); fix: delete it (an "
                              "interrupted copy?) and relaunch: the run restarts from its previous checkpoint "
                              "or from the start") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a training checkpoint of format {FORMAT} (got {got!r}); fix: delete it "
                              "or point train.init_from at ckpt/last.pt or ckpt/tokens_<n>.pt of a run")
    return state


def confined(runs_root: Path, relative: str, allow_outside: bool) -> Path:
    """``relative`` (a spec's train.init_from) resolved against the runs root, refused if it leaves it
    (``..``, an absolute path, a symlink out) unless the spec allows it (train.init_from_outside_runs)."""
    root = runs_root.resolve()
    src = (root / relative).resolve()
    if not allow_outside and not src.is_relative_to(root):
        raise CheckpointError(f"train.init_from: {relative!r} resolves to {src}, outside the runs root {root}; "
                              "fix: branch from a checkpoint under the runs root, or set "
                              "train.init_from_outside_runs = true if you mean it")
    return src


def _upgrade(path: Path) -> int:
    """Rewrite an old checkpoint (pickled numpy RNG state) in the safe format. Unpickles it: only for
    files you trust."""
    state = torch.load(path, map_location="cpu", weights_only=False)  # explicit, user-requested trust
    rng = state.get("rng", {})
    if isinstance(rng.get("numpy"), tuple):
        rng["numpy"] = numpy_rng_to_plain(rng["numpy"])
    summary = {k: state.get(k) for k in ("step", "elapsed_s")}
    save(path, state, {**summary, "upgraded_from": "attnres-ckpt/1"})
    load(path)  # proves it now loads safely
    print(f"{path}: upgraded to {FORMAT} ({sidecar(path).name} written)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "upgrade":
        print("usage: python -m harness.checkpoint upgrade CKPT.pt   # unpickles CKPT.pt: only files you trust",
              file=sys.stderr)
        return 2
    return _upgrade(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
