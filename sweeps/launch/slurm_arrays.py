"""The Slurm executor: job arrays through submitit, WSD branches behind their trunk's job.

One job array per ``executor.batch()`` (``slurm_array_parallelism`` from [launch]); each task is
renamed to its run id (``squeue -o %j``); every submission is appended to
``<runs_root>/<sweep>/.submitit/launches.jsonl``. A WSD branch whose trunk has not written its kept
checkpoint yet waits for the trunk's job (``afterany``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from records import paths
from records.choices import Executor, RunState
from records.rundir import RunDir
from sweeps import slurm
from sweeps.launch.decide import Decision, LaunchError, LaunchResult
from sweeps.launch.training import TrainJob
from sweeps.sweepfile import Sweep


def launch_slurm(sweep: Sweep, runs_root: str | os.PathLike[str], todo: list[Decision], decisions: list[Decision],
                 result: LaunchResult, log: Callable[[str], None]) -> None:
    """Submit ``todo``: runs that can start now in one array, then WSD branches per trunk."""
    rundir = lambda d: RunDir(paths.run_dir(runs_root, sweep.name, d.run.run_id))
    job_of: dict[str, str] = {}
    for d in decisions:  # trunks already in flight
        st = rundir(d).read_status()
        if d.action == "skip" and st.get("job_id"):
            job_of[d.run.run_id] = str(st["job_id"])
    groups: dict[str | None, list[Decision]] = {}
    for d in todo:
        trunk, init_from = d.run.depends_on, d.run.spec.train.init_from
        ckpt = paths.sweep_dir(runs_root, sweep.name) / init_from if init_from else None
        key = trunk if trunk and ckpt is not None and not ckpt.exists() else None
        groups.setdefault(key, []).append(d)
    for key in [None] + [k for k in groups if k is not None]:
        batch = groups.get(key, [])
        if not batch:
            continue
        dependency = None
        if key is not None:
            if key not in job_of:
                raise LaunchError(f"{batch[0].run.run_id}: its WSD trunk {key} is neither running nor submitted "
                                  "and has no kept checkpoint; fix: re-run launch after the trunk is done")
            dependency = f"afterany:{job_of[key]}"
        _submit_array(sweep, runs_root, batch, todo, dependency, job_of, result, log)


def _submit_array(sweep: Sweep, runs_root: str | os.PathLike[str], batch: list[Decision], todo: list[Decision],
                  dependency: str | None, job_of: dict[str, str], result: LaunchResult,
                  log: Callable[[str], None]) -> None:
    run_dir = lambda d: paths.run_dir(runs_root, sweep.name, d.run.run_id)
    executor = slurm.slurm_executor(sweep, paths.submitit_dir(runs_root, sweep.name), dependency)
    try:
        with executor.batch():
            jobs = [executor.submit(TrainJob(str(run_dir(d).resolve()), Executor.SLURM)) for d in batch]
    except Exception as e:  # sbatch refused (partition, memory, GPUs...): nothing of this batch is queued
        for d in [d for d in todo if d.run.run_id not in result.submitted]:
            RunDir(run_dir(d)).set_status(RunState.FAILED, f"not submitted: {e}"[:500])
        raise LaunchError(f"{sweep.file}: [launch]: sbatch refused the job array ({e}); fix: check the "
                          "resources in [launch] against `sinfo` (partition, mem_gb, gpus_per_node)") from e
    ledger = []
    for d, job in zip(batch, jobs):
        jid = str(job.job_id)
        job_of[d.run.run_id] = jid
        result.submitted.append(d.run.run_id)
        result.job_ids[d.run.run_id] = jid
        rd = RunDir(run_dir(d))
        st = rd.read_status()
        if st.get("state") == RunState.QUEUED and not st.get("job_id"):  # the job may have started already
            rd.set_status(RunState.QUEUED, d.reason, job_id=jid)
        ledger.append({"run_id": d.run.run_id, "job_id": jid, "submitted": time.time(),
                       "reason": d.reason, "dependency": dependency})
    _ledger(runs_root, sweep.name, ledger)
    unnamed = slurm.name_jobs({str(j.job_id): d.run.run_id for d, j in zip(batch, jobs)})
    log(f"submitted {len(batch)} run(s) as Slurm array {jobs[0].job_id.split('_')[0]}"
        + (f" ({dependency})" if dependency else "")
        + (f"; could not rename {len(unnamed)} job(s) to their run ids" if unnamed else ""))


def _ledger(runs_root: str | os.PathLike[str], sweep: str, entries: list[dict[str, Any]]) -> None:
    path = paths.submitit_dir(runs_root, sweep) / "launches.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for e in entries:
            f.write(json.dumps(e, sort_keys=True) + "\n")
