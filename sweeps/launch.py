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
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from harness.runlock import FD_ENV, RunLock, describe_holder, inherited, is_locked
from records.rundir import CANCEL_MARK, RunDir, is_cancelled
from sweeps import slurm
from sweeps.progress import fmt_duration, fmt_rate, run_progress, sweep_progress, tail_row
from sweeps.slurm import (
    SLURM_ALIVE,
    WORKER_ENV,
    find_job,
    slurm_executor,
    squeue_jobs,
    squeue_states,
    wait_slurm,
)
from sweeps.spec import EXECUTION_ONLY, PlannedRun, Sweep, SweepError, data_key, expand

EXECUTORS = ("local", "slurm", "debug")
ACTIVE_STATES = ("queued", "running", "preempted")  # a process or job may still own the run
SKIP_STATES = ("done", "diverged")
# variables that would make a local training process think it is one rank of a DDP job
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
              "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_LAUNCH_NODE_IPADDR")


class LaunchError(RuntimeError):
    """Launching cannot start (missing data, no Slurm); the message says how to fix it."""


def default_runs_root() -> str:
    from records.paths import runs_root  # the one rule for runs/, results/, data/ (records/paths.py)

    return str(runs_root())


# ----------------------------------------------------------------------------- the training entry


def _rank() -> int:
    from harness.distributed import env_dist_info

    return env_dist_info().rank


def _world() -> int:
    from harness.distributed import env_dist_info

    return env_dist_info().world_size


def run_training(run_dir: str | os.PathLike[str], executor: str = "local", lock: RunLock | None = None) -> str:
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
        if run.state not in ("done", "diverged", "cancelled"):
            run.set_status("running", "starting", **owner)
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

    def __init__(self, run_dir: str, executor: str = "slurm") -> None:
        self.run_dir = str(run_dir)
        self.executor = executor

    def __call__(self) -> str:
        return run_training(self.run_dir, self.executor)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        if _rank() == 0:
            rd = RunDir(self.run_dir)
            if rd.state not in ("done", "diverged", "cancelled"):
                rd.set_status("preempted", rd.read_status().get("message") or "preempted or timed out; requeued, "
                              "resumes from ckpt/last.pt", job_id=slurm.job_env())
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.executor))


# ----------------------------------------------------------------------------- decisions


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


def decide(runs: list[PlannedRun], sweep_dir: Path, force: bool = False,
           include_cancelled: bool = False) -> list[Decision]:
    statuses = {r.run_id: RunDir(sweep_dir / r.run_id).read_status() for r in runs}
    job_ids = [str(s["job_id"]) for s in statuses.values() if s.get("job_id")]
    jobs = squeue_jobs(job_ids) if job_ids else {}
    return [_decide_one(r, sweep_dir / r.run_id, statuses[r.run_id], jobs, force, include_cancelled) for r in runs]


def _decide_one(r: PlannedRun, run_dir: Path, st: dict[str, Any], jobs: dict[str, slurm.SlurmJob] | None,
                force: bool, include_cancelled: bool) -> Decision:
    state = st.get("state", "pending")
    resume = (run_dir / "ckpt" / "last.pt").exists()
    job_id = str(st["job_id"]) if st.get("job_id") else None
    job = find_job(jobs, job_id) if (job_id and jobs is not None) else None
    if state in SKIP_STATES:
        stale = job_id if (job is not None and job.alive and not is_locked(run_dir)) else None
        return Decision(r, "skip", state, stale_job=stale)
    if is_cancelled(run_dir) and not include_cancelled:
        return Decision(r, "skip", "cancelled: stopped by `attnres cancel`; --include-cancelled resubmits it")
    if is_locked(run_dir):
        return Decision(r, "skip", f"in flight: {describe_holder(run_dir)}")
    if state == "queued" and launcher_alive(run_dir, st):
        return Decision(r, "skip", f"in flight: queued by the launcher pid {st.get('pid')} (it holds its lock)")
    if job_id and state in ACTIVE_STATES:
        if jobs is None and not force:
            return Decision(r, "skip", f"in flight: Slurm job {job_id} (squeue unavailable; cannot verify; "
                            "--force resubmits)")
        if job is not None and job.alive:
            return Decision(r, "skip", f"in flight: Slurm job {job_id} {job.state}")
    if state == "failed":
        return Decision(r, "submit", f"retry failed run ({st.get('message', '')[:80]})", resume)
    if state in ACTIVE_STATES:
        return Decision(r, "submit", f"stale {state} (not locked, no job in the queue)", resume)
    return Decision(r, "submit", "resume" if resume else "new", resume)


def launcher_alive(run_dir: Path, st: dict[str, Any]) -> bool:
    """A local run queued by a launcher that is still running (it holds its launcher lock)."""
    name = st.get("launcher_lock")
    return bool(name) and is_locked(run_dir.parent / ".local", name)


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
    if executor != "slurm":
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


def _hashed(d: dict[str, Any]) -> dict[str, Any]:
    """The part of a spec dict its run id stands for (see sweeps.spec.config_hash)."""
    d = {k: v for k, v in d.items() if k in ("run_id", "model", "train", "data")}
    d["train"] = {k: v for k, v in d["train"].items() if k not in EXECUTION_ONLY}
    d["data"] = {"path": data_key(d["data"]["path"])}
    return json.loads(json.dumps(d, default=list))


def write_spec(run: PlannedRun, run_dir: Path, threads: int | None) -> None:
    """Write spec.json; an existing one (a partial run) keeps its "derived" block and must agree
    with the plan on everything but the execution-only settings, which the plan's values replace."""
    rd = RunDir(run_dir)
    new = _spec_for(run, threads)
    if rd.spec_path.exists():
        old = rd.read_spec()
        if _hashed(old) != _hashed(new):
            raise LaunchError(f"{run_dir}/spec.json differs from the sweep's plan for {run.run_id}; fix: move the "
                              "directory away (it was written by another version of the sweep or by hand)")
        execution = {k: new["train"][k] for k in EXECUTION_ONLY}
        if all(old["train"].get(k) == v for k, v in execution.items()) and old.get("data") == new["data"]:
            return
        new = {**old, "train": {**old["train"], **execution}, "data": new["data"]}
    rd.write_spec(new)


def _ledger(sweep_dir: Path, entries: list[dict[str, Any]]) -> None:
    path = sweep_dir / ".submitit" / "launches.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for e in entries:
            f.write(json.dumps(e, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- launch


def launch(sweep: Sweep, executor: str = "local", runs_root: str | os.PathLike[str] | None = None,
           workers: int | None = None, force: bool = False, dry_run: bool = False,
           only: Callable[[PlannedRun], bool] | None = None, log: Callable[[str], None] = print,
           progress_every_s: float = 15.0, include_cancelled: bool = False) -> LaunchResult:
    """Submit every run that needs it; see the module docstring. local and debug block until their
    runs end; slurm returns once the jobs are queued."""
    if executor not in EXECUTORS:
        raise LaunchError(f"--executor: {executor!r} is not one of {EXECUTORS}")
    runs = expand(sweep)
    if only is not None:
        runs = [r for r in runs if only(r)]
    sweep_dir = Path(runs_root if runs_root is not None else default_runs_root()) / sweep.name
    decisions = decide(runs, sweep_dir, force=force, include_cancelled=include_cancelled)
    result = LaunchResult(sweep.name, executor, decisions)
    todo = [d for d in decisions if d.action == "submit"]
    if dry_run:
        if executor == "slurm" and todo:
            result.sbatch = [slurm.sbatch_script(sweep, sweep_dir, len(todo))]
        return result
    stale = [d.stale_job for d in decisions if d.stale_job]
    if stale and slurm.scancel(stale) is None:  # it would start, find the run done and exit: cancel it now
        result.cancelled_stale = stale
    if not todo:
        return result
    check_data(sweep)
    if executor == "slurm" and not slurm.has_slurm():
        raise LaunchError("--executor slurm: no `sbatch` on this machine; fix: run on a Slurm login node, or use "
                          "--executor local (scripts/slurm/setup-slurm.sh starts a single-node Slurm for tests)")
    threads = run_threads(sweep, executor)
    # largest first, so the longest runs do not start last; a WSD trunk before its branches
    todo.sort(key=lambda d: (d.run.depends_on is not None, -d.run.flops_per_token * d.run.trained_tokens))
    per_run = max(d.run.spec.train.threads for d in todo)  # default --workers: the cores, not oversubscribed
    pool = LocalPool(sweep_dir, workers or max(1, (os.cpu_count() or 1) // per_run), log=log,
                     progress_every_s=progress_every_s) if executor == "local" else None
    try:
        for d in todo:
            run_dir = sweep_dir / d.run.run_id
            (run_dir / CANCEL_MARK).unlink(missing_ok=True)  # --include-cancelled: it is wanted again
            write_spec(d.run, run_dir, threads)
            RunDir(run_dir).set_status("queued", d.reason, executor=executor, job_id=None, pid=os.getpid(),
                                       host=socket.gethostname(), launcher_lock=pool.lock_name if pool else None)
        if executor == "slurm":
            _launch_slurm(sweep, sweep_dir, todo, decisions, result, log)
        elif executor == "debug":
            _launch_debug(sweep_dir, todo, result)
        else:
            result.submitted = [d.run.run_id for d in todo]
            result.final_states = pool.run([d.run for d in todo], [d.run for d in decisions])
    finally:
        if pool is not None:
            pool.close()
    return result


# ----------------------------------------------------------------------------- debug


def _launch_debug(sweep_dir: Path, todo: list[Decision], result: LaunchResult) -> None:
    """submitit's debug executor: each job runs in this process when its result is asked for."""
    executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "debug", cluster="debug")
    with executor.batch():
        jobs = [executor.submit(TrainJob(str(sweep_dir / d.run.run_id), "debug")) for d in todo]
    for d, job in zip(todo, jobs):
        result.submitted.append(d.run.run_id)
        err = job.exception()  # runs it; .result() would open pdb on an exception
        if err is not None:
            RunDir(sweep_dir / d.run.run_id).set_status("failed", f"{type(err).__name__}: {err}")
        result.final_states[d.run.run_id] = RunDir(sweep_dir / d.run.run_id).state


# ----------------------------------------------------------------------------- slurm


def _launch_slurm(sweep: Sweep, sweep_dir: Path, todo: list[Decision], decisions: list[Decision],
                  result: LaunchResult, log: Callable[[str], None]) -> None:
    # group: runs that can start now; WSD branches per trunk (afterany: the trunk's job id)
    job_of: dict[str, str] = {}
    for d in decisions:  # trunks already in flight
        st = RunDir(sweep_dir / d.run.run_id).read_status()
        if d.action == "skip" and st.get("job_id"):
            job_of[d.run.run_id] = str(st["job_id"])
    groups: dict[str | None, list[Decision]] = {}
    for d in todo:
        trunk = d.run.depends_on
        ckpt = sweep_dir / d.run.spec.train.init_from if d.run.spec.train.init_from else None
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
        _submit_array(sweep, sweep_dir, batch, todo, dependency, job_of, result, log)


def _submit_array(sweep: Sweep, sweep_dir: Path, batch: list[Decision], todo: list[Decision],
                  dependency: str | None, job_of: dict[str, str], result: LaunchResult,
                  log: Callable[[str], None]) -> None:
    executor = slurm_executor(sweep, sweep_dir, dependency)
    try:
        with executor.batch():
            jobs = [executor.submit(TrainJob(str((sweep_dir / d.run.run_id).resolve()), "slurm")) for d in batch]
    except Exception as e:  # sbatch refused (partition, memory, GPUs...): nothing of this batch is queued
        for d in [d for d in todo if d.run.run_id not in result.submitted]:
            RunDir(sweep_dir / d.run.run_id).set_status("failed", f"not submitted: {e}"[:500])
        raise LaunchError(f"{sweep.file}: [launch]: sbatch refused the job array ({e}); fix: check the "
                          "resources in [launch] against `sinfo` (partition, mem_gb, gpus_per_node)") from e
    ledger = []
    for d, job in zip(batch, jobs):
        jid = str(job.job_id)
        job_of[d.run.run_id] = jid
        result.submitted.append(d.run.run_id)
        result.job_ids[d.run.run_id] = jid
        rd = RunDir(sweep_dir / d.run.run_id)
        st = rd.read_status()
        if st.get("state") == "queued" and not st.get("job_id"):  # the job may have started already
            rd.set_status("queued", d.reason, job_id=jid)
        ledger.append({"run_id": d.run.run_id, "job_id": jid, "submitted": time.time(),
                       "reason": d.reason, "dependency": dependency})
    _ledger(sweep_dir, ledger)
    unnamed = slurm.name_jobs({str(j.job_id): d.run.run_id for d, j in zip(batch, jobs)})
    log(f"submitted {len(batch)} run(s) as Slurm array {jobs[0].job_id.split('_')[0]}"
        + (f" ({dependency})" if dependency else "")
        + (f"; could not rename {len(unnamed)} job(s) to their run ids" if unnamed else ""))


# ----------------------------------------------------------------------------- local


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.update(WORKER_ENV)
    return env


class LocalPool:
    """At most ``workers`` training processes of the sweep at once (``python -m sweeps.launch
    RUN_DIR``, one thread each), counting trainers of the sweep this pool did not start (they hold a
    run lock); a WSD branch starts once its trunk's kept checkpoint exists. Blocks until every run has
    ended, printing progress with tokens/s and ETA. Ctrl-C stops the workers (each saves a checkpoint
    first); their runs resume on the next launch."""

    def __init__(self, sweep_dir: Path, workers: int, log: Callable[[str], None] = print,
                 progress_every_s: float = 15.0) -> None:
        self.sweep_dir = sweep_dir
        self.workers = max(1, workers)
        self.log = log
        self.progress_every_s = progress_every_s
        (sweep_dir / ".local").mkdir(parents=True, exist_ok=True)
        # held while this launcher lives: the runs it queued read "queued", not "pending"
        for old in (sweep_dir / ".local").glob("launcher-*.lock"):  # left by launchers that were killed
            if not is_locked(old.parent, old.name):
                old.unlink(missing_ok=True)
        self.lock_name = f"launcher-{os.getpid()}.lock"
        self._lock = RunLock(sweep_dir / ".local", name=self.lock_name)
        self._lock.acquire(launcher=True)

    def close(self) -> None:
        self._lock.release()
        (self.sweep_dir / ".local" / self.lock_name).unlink(missing_ok=True)

    def _start(self, run: PlannedRun) -> subprocess.Popen | None:
        """Take the run's lock, then start the worker holding it; None if another process has it."""
        run_dir = self.sweep_dir / run.run_id
        lock = RunLock(run_dir)
        if not lock.acquire(executor="local", launcher_pid=os.getpid()):
            return None
        fd = lock.inheritable_fd()
        out = open(self.sweep_dir / ".local" / f"{run.run_id}.out", "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "sweeps.launch", str(run_dir)],
                                    env={**worker_env(), FD_ENV: str(fd)}, pass_fds=(fd,),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
            lock.close_without_unlock()  # the worker holds it now (or, if it did not start, nobody)

    def _ready(self, run: PlannedRun, ended: set[str]) -> bool | None:
        """True: can start; False: wait; None: never (its trunk ended without the checkpoint)."""
        if not run.spec.train.init_from:
            return True
        if (self.sweep_dir / run.spec.train.init_from).exists():
            return True
        trunk = run.depends_on
        if trunk in ended or RunDir(self.sweep_dir / trunk).state in ("done", "diverged", "failed"):
            return None
        return False

    def _foreign(self, known: list[PlannedRun], running: dict) -> int:
        """Trainers of this sweep's runs that this pool did not start (orphans, other launchers)."""
        return sum(1 for r in known if r.run_id not in running and is_locked(self.sweep_dir / r.run_id))

    def run(self, runs: list[PlannedRun], known: list[PlannedRun] | None = None) -> dict[str, str]:
        """Train ``runs``; ``known`` (default: runs) are all the sweep's runs, whose foreign trainers count."""
        known = known or runs
        pending = list(runs)
        running: dict[str, tuple[PlannedRun, subprocess.Popen]] = {}
        final: dict[str, str] = {}
        t0 = last_report = time.time()
        try:
            while pending or running:
                self._start_ready(pending, running, final, known)
                self._reap(running, final, len(runs), t0)
                if time.time() - last_report >= self.progress_every_s and (running or pending):
                    last_report = time.time()
                    self.log(self._progress(final, runs, running, t0))
                time.sleep(0.5)
        except BaseException:
            for _run_id, (_run, proc) in running.items():
                proc.terminate()  # SIGTERM: the trainer saves a checkpoint at its next step and stops
            for _run_id, (_run, proc) in running.items():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.log("[launch] interrupted: the stopped runs resume from their checkpoints on the next launch")
            raise
        return final

    def _start_ready(self, pending: list[PlannedRun], running: dict, final: dict[str, str],
                     known: list[PlannedRun]) -> None:
        for run in list(pending):
            if len(running) >= self.workers or len(running) + self._foreign(known, running) >= self.workers:
                return
            ready = self._ready(run, set(final))
            if ready is None:
                pending.remove(run)
                msg = f"its WSD trunk {run.depends_on} ended without {run.spec.train.init_from}"
                RunDir(self.sweep_dir / run.run_id).set_status("failed", msg)
                final[run.run_id] = "failed"
                self.log(f"[launch] {run.run_id}: failed: {msg}")
            elif ready:
                pending.remove(run)
                proc = self._start(run)
                if proc is None:
                    final[run.run_id] = "locked"
                    self.log(f"[launch] {run.run_id}: {describe_holder(self.sweep_dir / run.run_id)}; skipped")
                else:
                    running[run.run_id] = (run, proc)

    def _reap(self, running: dict, final: dict[str, str], total: int, t0: float) -> None:
        for run_id, (_run, proc) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[run_id]
            rd = RunDir(self.sweep_dir / run_id)
            state = rd.state
            if state not in ("done", "diverged", "failed", "preempted", "cancelled"):
                rd.set_status("failed", f"worker exited with code {proc.returncode} in state {state}; see "
                              f"{self.sweep_dir / '.local' / (run_id + '.out')}")
                state = "failed"
            final[run_id] = state
            self.log(f"[launch] {len(final)}/{total} {run_id}: {state} ({time.time() - t0:.0f} s)")

    def _progress(self, final: dict[str, str], runs: list[PlannedRun], running: dict, t0: float) -> str:
        parts, progress = [], []
        for run in runs:
            p = run_progress(self.sweep_dir / run.run_id, run.spec.train.tokens, run.flops_per_token,
                             training=run.run_id in running)
            progress.append(p)
            if run.run_id in running:
                label = f"{run.arm}-{run.spec.size}"
                row = tail_row(self.sweep_dir / run.run_id / "metrics.jsonl") if p.tokens_per_s else None
                loss = f" loss {row['train_loss']:.3f}" if row and row.get("train_loss") is not None else ""
                parts.append(f"{label} {p.tokens / max(1, p.target):.0%}{loss} {fmt_rate(p.tokens_per_s)} "
                             f"ETA {fmt_duration(p.eta_s)}" if p.tokens_per_s else f"{label} starting")
        sweep = sweep_progress(progress, [r.run_id not in final for r in runs])
        return (f"[launch] {len(final)}/{len(runs)} done, {time.time() - t0:.0f} s; sweep {sweep.describe()}; "
                "running: " + ("; ".join(parts) or "none"))


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.launch RUN_DIR``: train one run (a local worker; it may inherit the run's lock)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sweeps.launch RUN_DIR", file=sys.stderr)
        return 2
    state = run_training(argv[0], "local", lock=inherited(argv[0]))
    return 0 if state in ("done", "diverged", "preempted", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXECUTORS", "SLURM_ALIVE", "LaunchError", "LaunchResult", "LocalPool", "SweepError", "TrainJob",
           "decide", "launch", "run_training", "squeue_states", "wait_slurm"]
