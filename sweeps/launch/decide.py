"""What `attnres launch` submits: one decision per planned run, and the spec.json it writes first.

Decisions come from the run's lock, a live launcher's lock and the scheduler, never from a pid
written into status.json (the table is in sweeps/launch/__init__.py).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runlock import describe_holder, is_locked
from records import paths
from records.choices import Executor, RunState
from records.rundir import RunDir, is_cancelled
from sweeps import slurm
from sweeps.expand import PlannedRun
from sweeps.inflight import ACTIVE, launcher_alive, state_of
from sweeps.runid import EXECUTION_ONLY, hashed_settings
from sweeps.sweepfile import Sweep

SKIP = (RunState.DONE, RunState.DIVERGED)  # a diverged run would diverge again


class LaunchError(RuntimeError):
    """Launching cannot start (missing data, no Slurm); the message says how to fix it."""


@dataclass
class Decision:
    run: PlannedRun
    action: str  # "submit" | "skip"
    reason: str
    resume: bool = False
    stale_job: str | None = None  # a queued Slurm job of a run that is already done: to cancel


@dataclass
class LaunchResult:
    sweep: str
    executor: str
    decisions: list[Decision]
    submitted: list[str] = field(default_factory=list)
    job_ids: dict[str, str] = field(default_factory=dict)  # run_id -> Slurm job id
    final_states: dict[str, str] = field(default_factory=dict)  # local/debug: run_id -> state
    cancelled_stale: list[str] = field(default_factory=list)  # Slurm jobs of finished runs, cancelled
    sbatch: list[str] = field(default_factory=list)  # --dry-run, slurm: the scripts that would be submitted

    def summary(self) -> str:
        skipped = [d for d in self.decisions if d.action == "skip"]
        kinds: dict[str, int] = {}
        for d in skipped:
            kinds[d.reason.split(":")[0]] = kinds.get(d.reason.split(":")[0], 0) + 1
        parts = [f"{len(self.submitted)} submitted ({self.executor})"]
        parts += [f"{n} skipped ({k})" for k, n in sorted(kinds.items())]
        if self.cancelled_stale:
            parts.append(f"{len(self.cancelled_stale)} stale Slurm job(s) of finished runs cancelled")
        line = f"{self.sweep}: {len(self.decisions)} runs: " + ", ".join(parts)
        if self.final_states:
            counts: dict[str, int] = {}
            for s in self.final_states.values():
                counts[s] = counts.get(s, 0) + 1
            line += "; finished: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return line


def decide(runs: list[PlannedRun], runs_root: str | os.PathLike[str], force: bool = False,
           include_cancelled: bool = False) -> list[Decision]:
    """One decision per run of ``runs`` (their directories under ``runs_root``)."""
    dirs = {r.run_id: paths.run_dir(runs_root, r.spec.sweep, r.run_id) for r in runs}
    statuses = {r.run_id: RunDir(dirs[r.run_id]).read_status() for r in runs}
    job_ids = [str(s["job_id"]) for s in statuses.values() if s.get("job_id")]
    jobs = slurm.squeue_jobs(job_ids) if job_ids else {}
    return [_decide_one(r, runs_root, dirs[r.run_id], statuses[r.run_id], jobs, force, include_cancelled)
            for r in runs]


def _decide_one(r: PlannedRun, runs_root: str | os.PathLike[str], run_dir: Path, st: dict[str, Any],
                jobs: dict[str, slurm.SlurmJob] | None, force: bool, include_cancelled: bool) -> Decision:
    state = state_of(st)
    resume = RunDir(run_dir).last_ckpt.exists()
    job_id = str(st["job_id"]) if st.get("job_id") else None
    job = slurm.find_job(jobs, job_id) if (job_id and jobs is not None) else None
    if state in SKIP:
        stale = job_id if (job is not None and job.alive and not is_locked(run_dir)) else None
        return Decision(r, "skip", state, stale_job=stale)
    if is_cancelled(run_dir) and not include_cancelled:
        return Decision(r, "skip", "cancelled: stopped by `attnres cancel`; --include-cancelled resubmits it")
    if is_locked(run_dir):
        return Decision(r, "skip", f"in flight: {describe_holder(run_dir)}")
    if state == RunState.QUEUED and launcher_alive(runs_root, r.spec.sweep, st):
        return Decision(r, "skip", f"in flight: queued by the launcher pid {st.get('pid')} (it holds its lock)")
    if job_id and state in ACTIVE:
        if jobs is None and not force:
            return Decision(r, "skip", f"in flight: Slurm job {job_id} (squeue unavailable; cannot verify; "
                            "--force resubmits)")
        if job is not None and job.alive:
            return Decision(r, "skip", f"in flight: Slurm job {job_id} {job.state}")
    if state == RunState.FAILED:
        return Decision(r, "submit", f"retry failed run ({st.get('message', '')[:80]})", resume)
    if state in ACTIVE:
        return Decision(r, "submit", f"stale {state} (not locked, no job in the queue)", resume)
    return Decision(r, "submit", "resume" if resume else "new", resume)


def check_data(sweep: Sweep) -> None:
    """Fail before submitting anything if the sweep's data is not prepared."""
    if sweep.data.vocab_source != "meta.json" or not (Path(sweep.data.path) / "meta.json").is_file():
        raise LaunchError(f"{sweep.file}: [data]: {sweep.data.path} is not prepared; "
                          f"fix: run `{sweep.data.prepare_cmd}` first")


def run_threads(sweep: Sweep, executor: str) -> int | None:
    """Intra-op threads of each training process: on Slurm a task's ``cpus_per_task``; elsewhere the
    sweep's ``[train] threads`` (default 1, as ``None`` here: each run's own value). A ``threads``
    that contradicts ``cpus_per_task`` on Slurm is refused rather than silently replaced."""
    explicit = {v for v in [sweep.train.get("threads"), *(a.train.get("threads") for a in sweep.arms)] if v is not None}
    if executor != Executor.SLURM:
        return None
    if explicit and explicit != {sweep.launch.cpus_per_task}:
        raise LaunchError(f"{sweep.file}: [train] threads = {sorted(explicit)} but [launch] cpus_per_task = "
                          f"{sweep.launch.cpus_per_task}: on Slurm each task trains with its cpus_per_task threads; "
                          "fix: set cpus_per_task to the thread count you want, or remove threads")
    return sweep.launch.cpus_per_task


def _spec_for(run: PlannedRun, threads: int | None) -> dict[str, Any]:
    if threads is None:
        return run.spec.to_dict()
    spec = run.spec
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, threads=threads)).to_dict()


def _same_run(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The spec on disk is the plan's run: same id, same hashed settings (sweeps/runid.py)."""
    try:
        return old["run_id"] == new["run_id"] and hashed_settings(old) == hashed_settings(new)
    except (KeyError, TypeError):  # not a spec this harness wrote
        return False


def write_spec(run: PlannedRun, run_dir: Path, threads: int | None) -> None:
    """Write spec.json; an existing one (a partial run) keeps its "derived" block and must agree
    with the plan on everything but the execution-only settings, which the plan's values replace."""
    rd = RunDir(run_dir)
    new = _spec_for(run, threads)
    if rd.spec_path.exists():
        try:
            old = rd.read_spec()
        except ValueError:  # corrupt JSON
            old = {}
        if not _same_run(old, new):
            raise LaunchError(f"{run_dir}/spec.json differs from the sweep's plan for {run.run_id}; fix: move the "
                              "directory away (it was written by another version of the sweep or by hand)")
        execution = {k: new["train"][k] for k in EXECUTION_ONLY}
        if all(old["train"].get(k) == v for k, v in execution.items()) and old.get("data") == new["data"]:
            return
        new = {**old, "train": {**old["train"], **execution}, "data": new["data"]}
    rd.write_spec(new)
