"""`attnres launch SWEEP`: train every run of a sweep that is not finished or already in flight.

    attnres launch demo                              # local: this machine, --workers runs at a time
    attnres launch paper --executor slurm            # Slurm job arrays through submitit; returns at once
    attnres launch paper --executor slurm --dry-run  # what would be submitted, and the sbatch script
    attnres launch demo --executor debug             # in this process, one run after another (tests)
    python -m sweeps.launch RUN_DIR                  # one training process (what local workers run)

Idempotent. For every planned run:
    done, diverged                  skipped (a diverged run would diverge again); a Slurm job still
                                    queued for a done run (requeued as it finished) is cancelled
    cancelled (`attnres cancel`)    skipped unless --include-cancelled
    locked                          skipped: a process trains it now (harness.runlock: the trainer
                                    holds <run_dir>/lock from its first action to its exit)
    queued by a live launcher       skipped: it waits for a worker slot there (that launcher holds
                                    <sweep>/.local/launcher-<pid>.lock while it runs)
    its Slurm job in squeue         skipped: queued (or starting) in Slurm
    anything else                   (re)submitted; training resumes from ckpt/last.pt
Decisions come from the lock and the scheduler, never from a pid written into status.json. The
local executor takes a run's lock before it starts the worker and hands it over (an inherited file
descriptor), so a launcher killed while its worker still starts leaves the run locked, and
``--workers`` bounds the trainers of the sweep that hold a lock, orphans of an earlier launch included.
A WSD branch waits for its trunk: on Slurm through a job dependency (afterany) unless the trunk's
kept checkpoint already exists; locally it starts once the checkpoint file appears.

Slurm: one job array per ``executor.batch()`` (``slurm_array_parallelism`` from [launch]); each task
is renamed to its run id (``squeue -o %j``). The submitted callable is ``TrainJob``, a
``submitit.helpers.Checkpointable``: on preemption or timeout Slurm sends SIGUSR2; training saves a
checkpoint at the next step boundary and then lets submitit requeue the job, which resumes from that
exact step (harness.stopping). Tasks per node > 1 start DDP. submitit's files are kept in
``<runs_root>/<sweep>/.submitit/<job id>/``, and every submission is appended to
``<runs_root>/<sweep>/.submitit/launches.jsonl``.

The package, one module per concern:
    decide.py        what to submit (the table above) and the spec.json written first
    pool.py          the local executor (LocalPool)
    slurm_arrays.py  the Slurm executor: job arrays, WSD dependencies, the ledger
    debug.py         the debug executor
    training.py      what every executor runs: one training process per run (TrainJob)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from records import paths
from records.choices import Executor, RunState, choices
from records.rundir import CANCEL_MARK, RunDir
from sweeps import slurm
from sweeps.checker import SweepError
from sweeps.expand import PlannedRun, expand
from sweeps.launch.debug import launch_debug
from sweeps.launch.decide import (
    Decision,
    LaunchError,
    LaunchResult,
    check_data,
    decide,
    run_threads,
    write_spec,
)
from sweeps.launch.pool import LocalPool, worker_env
from sweeps.launch.slurm_arrays import launch_slurm
from sweeps.launch.training import TrainJob, run_training
from sweeps.slurm import SLURM_ALIVE, WORKER_ENV, slurm_executor, squeue_states, wait_slurm
from sweeps.sweepfile import Sweep


def default_runs_root() -> str:
    return str(paths.runs_root())  # the one rule for runs/, results/, data/ (records/paths.py)


def launch(sweep: Sweep, executor: str = Executor.LOCAL, runs_root: str | os.PathLike[str] | None = None,
           workers: int | None = None, force: bool = False, dry_run: bool = False,
           only: Callable[[PlannedRun], bool] | None = None, log: Callable[[str], None] = print,
           progress_every_s: float = 15.0, include_cancelled: bool = False) -> LaunchResult:
    """Submit every run that needs it; see the module docstring. local and debug block until their
    runs end; slurm returns once the jobs are queued."""
    if executor not in choices(Executor):
        raise LaunchError(f"--executor: {executor!r} is not one of {choices(Executor)}")
    executor = Executor(executor)
    root = Path(runs_root if runs_root is not None else default_runs_root())
    runs = [r for r in expand(sweep) if only is None or only(r)]
    decisions = decide(runs, root, force=force, include_cancelled=include_cancelled)
    result = LaunchResult(sweep.name, executor, decisions)
    todo = [d for d in decisions if d.action == "submit"]
    if dry_run:
        if executor == Executor.SLURM and todo:
            result.sbatch = [slurm.sbatch_script(sweep, paths.submitit_dir(root, sweep.name), len(todo))]
        return result
    stale = [d.stale_job for d in decisions if d.stale_job]
    if stale and slurm.scancel(stale) is None:  # it would start, find the run done and exit: cancel it now
        result.cancelled_stale = stale
    if not todo:
        return result
    check_data(sweep)
    if executor == Executor.SLURM and not slurm.has_slurm():
        raise LaunchError("--executor slurm: no `sbatch` on this machine; fix: run on a Slurm login node, or use "
                          "--executor local (scripts/slurm/setup-slurm.sh starts a single-node Slurm for tests)")
    threads = run_threads(sweep, executor)
    # largest first, so the longest runs do not start last; a WSD trunk before its branches
    todo.sort(key=lambda d: (d.run.depends_on is not None, -d.run.flops_per_token * d.run.trained_tokens))
    per_run = max(d.run.spec.train.threads for d in todo)  # default --workers: the cores, not oversubscribed
    pool = LocalPool(root, sweep.name, workers or max(1, (os.cpu_count() or 1) // per_run), log=log,
                     progress_every_s=progress_every_s) if executor == Executor.LOCAL else None
    try:
        _queue(root, sweep.name, todo, threads, executor, pool)
        if executor == Executor.SLURM:
            launch_slurm(sweep, root, todo, decisions, result, log)
        elif executor == Executor.DEBUG:
            launch_debug(root, sweep.name, todo, result)
        else:
            result.submitted = [d.run.run_id for d in todo]
            result.final_states = pool.run([d.run for d in todo], [d.run for d in decisions])
    finally:
        if pool is not None:
            pool.close()
    return result


def _queue(root: Path, sweep: str, todo: list[Decision], threads: int | None, executor: Executor,
           pool: LocalPool | None) -> None:
    """Write each run's spec.json and mark it queued (by this launcher, if local) before anything starts."""
    for d in todo:
        run_dir = paths.run_dir(root, sweep, d.run.run_id)
        (run_dir / CANCEL_MARK).unlink(missing_ok=True)  # --include-cancelled: it is wanted again
        write_spec(d.run, run_dir, threads)
        RunDir(run_dir).set_status(RunState.QUEUED, d.reason, executor=executor, job_id=None, pid=os.getpid(),
                                   host=socket.gethostname(), launcher_lock=pool.lock_name if pool else None)


__all__ = ["SLURM_ALIVE", "WORKER_ENV", "Decision", "LaunchError", "LaunchResult", "LocalPool", "SweepError",
           "TrainJob", "check_data", "decide", "default_runs_root", "launch", "run_threads", "run_training",
           "slurm_executor", "squeue_states", "wait_slurm", "worker_env", "write_spec"]
