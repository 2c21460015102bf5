"""The debug executor: submitit runs each job in this process, one after another (tests, pdb)."""

from __future__ import annotations

import os

import submitit

from records import paths
from records.choices import Executor, RunState
from records.rundir import RunDir
from sweeps.launch.decide import Decision, LaunchResult
from sweeps.launch.training import TrainJob


def launch_debug(runs_root: str | os.PathLike[str], sweep: str, todo: list[Decision], result: LaunchResult) -> None:
    """Train ``todo`` here; each job runs when its result is asked for."""
    executor = submitit.AutoExecutor(folder=paths.submitit_dir(runs_root, sweep) / "debug", cluster="debug")
    dirs = [paths.run_dir(runs_root, sweep, d.run.run_id) for d in todo]
    with executor.batch():
        jobs = [executor.submit(TrainJob(str(run_dir), Executor.DEBUG)) for run_dir in dirs]
    for d, run_dir, job in zip(todo, dirs, jobs):
        result.submitted.append(d.run.run_id)
        err = job.exception()  # runs it; .result() would open pdb on an exception
        if err is not None:
            RunDir(run_dir).set_status(RunState.FAILED, f"{type(err).__name__}: {err}")
        result.final_states[d.run.run_id] = RunDir(run_dir).state
