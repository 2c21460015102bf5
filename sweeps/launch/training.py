"""The training entry of every executor: one process trains one run directory.

    python -m sweeps.launch RUN_DIR      # a local worker (it may inherit the run's lock)
    TrainJob(run_dir)()                  # what a Slurm or debug job runs
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import submitit

from harness.runlock import RunLock, describe_holder, inherited
from records.choices import Executor, RunState
from records.rundir import RunDir
from sweeps import slurm

# a run in one of these states is left as it is when its process starts or is requeued
_SETTLED = (RunState.DONE, RunState.DIVERGED, RunState.CANCELLED)


def _rank() -> int:
    from harness.distributed import env_dist_info

    return env_dist_info().rank


def _world() -> int:
    from harness.distributed import env_dist_info

    return env_dist_info().world_size


def run_training(run_dir: str | os.PathLike[str], executor: str = Executor.LOCAL, lock: RunLock | None = None) -> str:
    """One training process: take the run's lock (one process: here, first; DDP: rank 0, in the
    trainer), record who trains it (pid, host, Slurm job), then train/resume it."""
    from harness.train import train_run

    run = RunDir(run_dir)
    if _world() == 1 and lock is None:
        lock = RunLock(run.path)
        if not lock.acquire(executor=executor):
            print(f"[{run.path.name}] {describe_holder(run.path)}: another process trains this run; not starting",
                  file=sys.stderr, flush=True)
            return "locked"
    if _rank() == 0:
        owner = {"executor": executor, "pid": os.getpid(), "host": socket.gethostname()}
        job = slurm.job_env()
        if job:
            owner["job_id"] = job
        if run.state not in _SETTLED:
            run.set_status(RunState.RUNNING, "starting", **owner)
    try:
        return train_run(run.path, lock=lock)
    finally:
        if lock is not None:
            lock.release()


class TrainJob(submitit.helpers.Checkpointable):
    """What a Slurm (or debug) job runs: ``train_run`` on one run directory.

    Preemption/timeout: Slurm sends SIGUSR2. While training, the trainer only notes it, saves
    ckpt/last.pt at the next step boundary and then hands the signal to submitit, which calls
    ``checkpoint`` (task 0) and requeues the job; the resubmission resumes from that checkpoint, at
    the step where training stopped. Before or after training (imports, data checks, the end) the
    signal reaches submitit directly: nothing new is unsaved then."""

    def __init__(self, run_dir: str, executor: str = Executor.SLURM) -> None:
        self.run_dir = str(run_dir)
        self.executor = executor

    def __call__(self) -> str:
        return run_training(self.run_dir, self.executor)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        if _rank() == 0:
            rd = RunDir(self.run_dir)
            if rd.state not in _SETTLED:
                rd.set_status(RunState.PREEMPTED, rd.read_status().get("message") or "preempted or timed out; "
                              "requeued, resumes from ckpt/last.pt", job_id=slurm.job_env())
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.executor))


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.launch RUN_DIR``: train one run (a local worker; it may inherit the run's lock)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sweeps.launch RUN_DIR", file=sys.stderr)
        return 2
    state = run_training(argv[0], Executor.LOCAL, lock=inherited(argv[0]))
    return 0 if state in (RunState.DONE, RunState.DIVERGED, RunState.PREEMPTED, RunState.CANCELLED) else 1
