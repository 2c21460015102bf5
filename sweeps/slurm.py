"""Everything that talks to Slurm: squeue, sacct, sinfo, scancel, scontrol, and submitit's executor.

    jobs = squeue_jobs(["123_4"])          # job id -> SlurmJob(state, reason, elapsed, name); None: no squeue
    ends = sacct_endings(["123_4"])        # job id -> how a job that left the queue ended; None: no sacct
    folder = paths.submitit_dir(runs_root, sweep.name)   # one subfolder per job
    executor = slurm_executor(sweep, folder)
    print(sbatch_script(sweep, folder, n_runs))          # what `launch --dry-run` shows

Waits poll squeue with timeouts, never ``job.result()`` (it hangs on a job that died without a
result when accounting is off). Every call has a timeout; a missing or failing command answers None
("cannot tell"), never an exception.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import submitit

from records.choices import RunState
from sweeps.sweepfile import Sweep

# squeue states of a job that still exists (and so still owns its run)
SLURM_ALIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
               "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}


class JobEnd(StrEnum):
    """How a job that left the queue ended, where no run state says it (`attnres status` shows these)."""

    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    NODE_FAIL = "node_fail"


# sacct end states -> what `attnres status` calls them (None: ended normally, status.json tells the rest)
ENDINGS: dict[str, RunState | JobEnd | None] = {
    "CANCELLED": RunState.CANCELLED, "TIMEOUT": JobEnd.TIMEOUT, "DEADLINE": JobEnd.TIMEOUT,
    "OUT_OF_MEMORY": JobEnd.OUT_OF_MEMORY, "NODE_FAIL": JobEnd.NODE_FAIL, "BOOT_FAIL": JobEnd.NODE_FAIL,
    "PREEMPTED": RunState.PREEMPTED, "REQUEUED": RunState.PREEMPTED, "FAILED": RunState.FAILED, "COMPLETED": None}
# a training process's environment: one thread (many 1-thread processes beat one big one on CPU),
# and glibc malloc that keeps freed memory mapped (measured: up to 1.6x fewer page-fault stalls)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "8589934592"}


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    state: str
    reason: str  # why it is pending ("Resources", "Priority", "Dependency", ...); "None" when running
    elapsed: str  # squeue %M: time used by the job, [days-]hours:minutes:seconds
    name: str

    @property
    def alive(self) -> bool:
        return self.state in SLURM_ALIVE


@dataclass(frozen=True)
class Ending:
    job_id: str
    state: str  # sacct State, e.g. "CANCELLED by 0", "OUT_OF_MEMORY"
    exit_code: str
    elapsed: str

    @property
    def kind(self) -> RunState | JobEnd | None:
        return ENDINGS.get(self.state.split()[0], RunState.FAILED) if self.state else None


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def has_slurm() -> bool:
    return shutil.which("sbatch") is not None


def squeue_jobs(job_ids: list[str]) -> dict[str, SlurmJob] | None:
    """Job id ('123' or '123_4') -> its squeue entry, for the jobs still known to Slurm; None if squeue
    is unavailable (then nothing can be said about Slurm jobs)."""
    if not job_ids:
        return {}
    base = sorted({j.split("_")[0] for j in job_ids})
    out = _run(["squeue", "-h", "-r", "-j", ",".join(base), "-o", "%i|%T|%r|%M|%j"])
    if out is None:
        return None
    if out.returncode != 0:
        # squeue exits 1 for "Invalid job id specified" when every job has left the queue
        return {} if "Invalid job id" in out.stderr else None
    jobs: dict[str, SlurmJob] = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) == 5 and parts[0]:
            jobs[parts[0]] = SlurmJob(*parts)
    return jobs


def squeue_states(job_ids: list[str]) -> dict[str, str] | None:
    """Job id -> squeue state (see squeue_jobs)."""
    jobs = squeue_jobs(job_ids)
    return None if jobs is None else {j: s.state for j, s in jobs.items()}


def find_job(jobs: dict[str, SlurmJob], job_id: str) -> SlurmJob | None:
    """The entry of ``job_id``; a pending array task may be listed as 123_[4-9]."""
    if job_id in jobs:
        return jobs[job_id]
    if "_" in job_id:
        base, task = job_id.split("_", 1)
        for j, job in jobs.items():
            if j.startswith(base + "_[") and _in_ranges(task, j[len(base) + 2:].split("]")[0].split("%")[0]):
                return job
    return None


def _in_ranges(task: str, ranges: str) -> bool:
    if not task.isdigit():
        return False
    t = int(task)
    for part in ranges.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (int(lo) == t if not hi else hi.isdigit() and int(lo) <= t <= int(hi)):
            return True
    return False


def sacct_endings(job_ids: list[str]) -> dict[str, Ending] | None:
    """How jobs that left the queue ended (their latest attempt), from accounting; None without sacct."""
    if not job_ids:
        return {}
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(sorted(set(job_ids))), "-o", "JobID,State,ExitCode,Elapsed"])
    if out is None or out.returncode != 0:
        return None
    ends: dict[str, Ending] = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0]:
            ends[parts[0]] = Ending(*parts)  # later lines (a requeued job's last attempt) win
    return ends


def scancel(job_ids: list[str]) -> str | None:
    """Cancel jobs; None on success, else what went wrong."""
    if not job_ids:
        return None
    out = _run(["scancel", *sorted(set(job_ids))])
    if out is None:
        return "scancel is not available"
    return None if out.returncode == 0 else (out.stderr.strip() or f"scancel exited {out.returncode}")


def name_jobs(names: dict[str, str]) -> list[str]:
    """Give each job (array task) its run id as name and comment, so `squeue -o %j` or `%k` tells runs
    apart (a job array otherwise shows one name for every task). Returns what failed."""
    failed = []
    for job_id, run_id in names.items():
        out = _run(["scontrol", "update", f"JobId={job_id}", f"Name={run_id}", f"Comment={run_id}"], timeout=30)
        if out is None or out.returncode != 0:
            failed.append(job_id)
    return failed


@functools.cache
def partition_limits(partition: str | None) -> dict[str, float] | None:
    """The largest node of a partition (the default one if None): cpus, mem_gb, gpus; None without sinfo.
    Asked once per process, with a short timeout: installed Slurm tools whose controller is down (a
    laptop, a stopped test cluster) make sinfo wait for its controller, and plan is only advising."""
    if shutil.which("sinfo") is None:
        return None
    cmd = ["sinfo", "-h", "-N", "-o", "%c|%m|%G"] + (["-p", partition] if partition else [])
    out = _run(cmd, timeout=5)
    if out is None or out.returncode != 0 or not out.stdout.strip():
        return None
    best = {"cpus": 0.0, "mem_gb": 0.0, "gpus": 0.0}
    for line in out.stdout.splitlines():
        cpus, mem, gres = (line.split("|") + ["", "", ""])[:3]
        gpus = sum(int(g.split(":")[-1].split("(")[0]) for g in gres.split(",")
                   if g.startswith("gpu") and g.split(":")[-1].split("(")[0].isdigit())
        best = {"cpus": max(best["cpus"], float(cpus.rstrip("+") or 0)),
                "mem_gb": max(best["mem_gb"], float(mem.rstrip("+") or 0) / 1024), "gpus": max(best["gpus"], gpus)}
    return best


# ----------------------------------------------------------------------------- submitit


def _parameters(sweep: Sweep, dependency: str | None) -> dict[str, Any]:
    ls = sweep.launch
    additional = dict(ls.additional)
    if dependency:
        additional["dependency"] = dependency
    params: dict[str, Any] = dict(
        name=f"attnres-{sweep.name}", timeout_min=ls.time_min, nodes=ls.nodes, tasks_per_node=ls.tasks_per_node,
        cpus_per_task=ls.cpus_per_task, slurm_array_parallelism=ls.array_parallelism,
        # the task's environment: one-thread math libraries beyond cpus_per_task, and malloc settings
        slurm_setup=[f"export {k}={v}" for k, v in {**WORKER_ENV, "OMP_NUM_THREADS": str(ls.cpus_per_task),
                                                    "MKL_NUM_THREADS": str(ls.cpus_per_task)}.items()],
    )
    if ls.gpus_per_node:
        params["gpus_per_node"] = ls.gpus_per_node
    if ls.mem_gb:
        params["mem_gb"] = ls.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(ls, key):
            params[f"slurm_{key}"] = getattr(ls, key)
    if additional:
        params["slurm_additional_parameters"] = additional
    return params


def slurm_executor(sweep: Sweep, folder: Path, dependency: str | None = None) -> submitit.AutoExecutor:
    """submitit's executor for the sweep's jobs; ``folder`` is the sweep's submitit folder
    (records.paths.submitit_dir), which gets one subfolder per job."""
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm",
                                     slurm_max_num_timeout=sweep.launch.max_num_timeout)
    executor.update_parameters(**_parameters(sweep, dependency))
    return executor


def sbatch_script(sweep: Sweep, folder: Path, n_runs: int, dependency: str | None = None) -> str:
    """The sbatch script submitit would submit for ``n_runs`` runs (one job array), without submitting."""
    from submitit.slurm import slurm as submitit_slurm

    inner = slurm_executor(sweep, folder, dependency)._executor  # the SlurmExecutor, sbatch-named parameters
    params = {**inner.parameters, "map_count": n_runs} if n_runs > 1 else dict(inner.parameters)
    return submitit_slurm._make_sbatch_string(command=inner._submitit_command_str, folder=inner.folder, **params)


def wait_slurm(job_ids: list[str], timeout_s: float, poll_s: float = 5.0) -> dict[str, str]:
    """Block until none of these jobs is in squeue (or timeout_s passes); job id -> last state seen."""
    deadline = time.time() + timeout_s
    last: dict[str, str] = {}
    while True:
        states = squeue_states(job_ids)
        if states is not None:  # None: squeue failed this time (e.g. slurmctld busy); ask again
            alive = {j: s for j, s in states.items() if s in SLURM_ALIVE}
            last.update(states)
            if not alive:
                return last
        if time.time() > deadline:
            raise TimeoutError(f"Slurm jobs still in the queue after {timeout_s:.0f} s: {states}")
        time.sleep(poll_s)


def job_log_paths(folder: Path, job_id: str) -> list[Path]:
    """submitit's stdout/stderr files of a job (task 0) in the sweep's submitit folder, whether or
    not they exist yet."""
    return [folder / job_id / f"{job_id}_0_log.out", folder / job_id / f"{job_id}_0_log.err"]


def job_env() -> str | None:
    """This process's Slurm job id ('123' or '123_4' for an array task), if it runs in a job."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")
