"""Train one run, start to end: the run's lock, its status, derived.json and env.json, resume or
branch, and how it ends. The loop itself is harness/trainer.py's ``Trainer``.

    train_run("runs/adhoc/my-run")       # what `attnres train --run-dir ...` runs (harness/train_cli.py)

Determinism: the batch of step s is drawn from a generator seeded with (seed, s), so the data
position is the step itself; a run killed at any point and resumed from its checkpoint (model,
optimizer, step, RNG, metric accumulators) writes exactly the rows an uninterrupted run writes
(tests/test_train.py::test_resume_bit_exact). The global batch is the same for any world size.

One process per device (harness.distributed picks it from the local rank). Exactly one process
trains a run: it holds ``<run_dir>/lock`` (harness.runlock). SIGTERM and SIGUSR2 stop training at
the next step boundary after a checkpoint (harness.stopping).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import torch

from harness import checkpoint as ckpt
from harness.distributed import DistInfo, env_dist_info, shutdown
from harness.runinfo import derived, environment
from harness.runlock import RunLock, describe_holder
from harness.schedule import Batches, Schedule, make_schedule, tokens_per_step, validation_batches
from harness.stopping import StopRequested, StopRequests
from harness.tracking import open_tracker
from harness.trainer import Diverged, RunLocked, Trainer
from records.config import RunSpec
from records.rundir import RunDir, is_cancelled

__all__ = ["Batches", "Diverged", "Schedule", "Trainer", "make_schedule", "tokens_per_step", "train_run",
           "validation_batches"]

ENDED = ("done", "diverged", "cancelled")  # a run in one of these states is never trained again by itself


def train_run(run_dir: str | Path, runs_root: str | Path | None = None, lock: RunLock | None = None) -> str:
    """Train (or resume) the run in ``run_dir`` (which holds spec.json); returns the final state:
    "done", "diverged", "failed", "preempted" (stopped by a signal, checkpoint saved), "cancelled",
    or "locked" (another process trains it; nothing was touched). Never raises for a failed run."""
    run = RunDir(run_dir)
    info = env_dist_info()
    own = None
    if not info.enabled and lock is None:  # one process: the lock comes first (DDP: rank 0, in Trainer)
        own = lock = RunLock(run.path)
        if not lock.acquire():
            print(f"[{run.path.name}] {describe_holder(run.path)}: another process trains this run; not starting",
                  file=sys.stderr, flush=True)
            return "locked"
    stop = StopRequests().install()
    try:
        return _train_locked(run, Path(runs_root) if runs_root else None, stop)
    finally:
        stop.restore()
        if own is not None:
            own.release()


def _train_locked(run: RunDir, runs_root: Path | None, stop: StopRequests) -> str:
    """Train the run whose lock this process holds; each way it can end becomes its state."""
    ended = _already_ended(run)
    if ended:
        return ended
    spec = RunSpec.from_dict(run.read_spec())  # (an earlier version's "derived" block is not read as spec)
    trainer = None
    info = DistInfo()
    try:
        trainer = Trainer(run, spec, runs_root)
        trainer.stop = stop
        info = trainer.dist
        if info.is_main:
            _record_start(run, spec, trainer)
        _restore(trainer, run, spec)
        trainer.tracker = open_tracker(spec, run, info.is_main)
        result = trainer.train()
        if info.is_main:
            run.set_status("done", step=trainer.step, tokens=trainer.step * trainer.tps)
        return result
    except RunLocked as e:
        print(f"[{spec.run_id}] {e}: another process trains this run; not starting", file=sys.stderr, flush=True)
        return "locked"
    except StopRequested as e:
        if info.is_main:
            _mark_stopped(run, e)
        stop.forward(e.signum)  # SIGUSR2 under submitit: requeue and exit (SystemExit)
        return "cancelled" if is_cancelled(run.path) else "preempted"
    except Diverged as e:
        if info.is_main:
            run.set_status("diverged", str(e))
            run.log(f"DIVERGED: {e}")
            print(f"[{spec.run_id}] diverged: {e}", file=sys.stderr, flush=True)
        return "diverged"
    except Exception as e:  # noqa: BLE001 - a run that fails must say so in its status, not vanish
        if info.is_main:
            run.set_status("failed", f"{type(e).__name__}: {e}{_hint(e)}")
            run.log(traceback.format_exc())
        else:  # only rank 0 writes the run's files: another rank's failure goes to its own stderr (job log)
            traceback.print_exc()
        print(f"[{spec.run_id}] failed on rank {info.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return "failed"
    except BaseException:
        if info.is_main and run.state not in ("preempted", "cancelled"):
            run.set_status("preempted", "interrupted; relaunch to resume from the last checkpoint")
        raise
    finally:
        if trainer is not None:
            trainer.tracker.close()
            if trainer.lock is not None:
                trainer.lock.release()
        shutdown(info)


def _already_ended(run: RunDir) -> str | None:
    """The state of a run that must not train again by itself (e.g. a requeued job that starts after
    the run ended), else None."""
    state = "cancelled" if is_cancelled(run.path) else run.state
    if state in ENDED:
        print(f"[{run.path.name}] already {state}; nothing to do", flush=True)
        return state
    return None


def _record_start(run: RunDir, spec: RunSpec, trainer: Trainer) -> None:
    """Rank 0 at every (re)start: derived.json once, env.json, and the status with one more attempt."""
    if run.read_derived() is None:  # (a directory of an earlier version has it in spec.json: kept as it is)
        run.write_derived(derived(spec))
    run.write_env(environment(trainer.device, trainer.dist, dtype=trainer.dtype, peak_flops=trainer.peak,
                              peak_source=trainer.peak_source, data_check=trainer.data_check))
    attempts = int(run.read_status().get("attempts", 0)) + 1
    run.set_status("running", attempts=attempts, step=0, tokens=0)


def _hint(e: Exception) -> str:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return ("; fix: lower train.micro_batch_size or set train.activation_checkpointing = true "
                "(`attnres plan` estimates the memory per GPU)")
    return ""


def _restore(trainer: Trainer, run: RunDir, spec: RunSpec) -> None:
    """Resume from ckpt/last.pt, or branch from train.init_from (confined to the runs root)."""
    if run.last_ckpt.exists():
        trainer.load_state(ckpt.load(run.last_ckpt))
        if trainer.dist.is_main:
            run.truncate_metrics(trainer.step)
            trainer.progress(f"resumed from {run.last_ckpt} at step {trainer.step}")
    elif spec.train.init_from:
        src = ckpt.confined(trainer.runs_root, spec.train.init_from, spec.train.init_from_outside_runs)
        trainer.load_state(ckpt.load(src), branch=True)
        if trainer.dist.is_main:
            if not run.metrics_path.exists():  # a WSD branch starts with its parent's curve, so it is whole
                run.copy_metrics(RunDir(src.parent.parent), trainer.step)
            trainer.progress(f"branched from {src} at step {trainer.step}")


def _mark_stopped(run: RunDir, e: StopRequested) -> None:
    msg = f"{e}; checkpoint saved at step {e.step}"
    if is_cancelled(run.path):
        run.set_status("cancelled", f"{msg}; `attnres launch --include-cancelled` resumes it")
    else:
        run.set_status("preempted", f"{msg}; relaunch (or the requeued job) resumes from it")
