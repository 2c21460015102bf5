"""`attnres launch SWEEP`: train every run of a sweep that is not finished or already in flight.

    attnres launch demo                              # local: this machine, --workers runs at a time
    attnres launch paper --executor slurm            # Slurm job arrays through submitit; returns at once
    attnres launch demo --executor debug             # in this process, one run after another (tests)
    python -m sweeps.launch RUN_DIR                  # one training process (what local workers run)

Idempotent. For every planned run it reads ``<runs_root>/<sweep>/<run_id>/status.json``:
    done, diverged                          skipped (a diverged run would diverge again)
    queued/running/preempted, owner alive   skipped: a Slurm job still in ``squeue``, or a live
                                            local process (pid on this host)
    anything else (new, failed, stale)      (re)submitted; training resumes from ckpt/last.pt
A WSD branch waits for its trunk: on Slurm through a job dependency (afterany) unless the trunk's
kept checkpoint already exists; locally it starts once the checkpoint file appears.

Slurm: one job array per ``executor.batch()`` (``slurm_array_parallelism`` from [launch]); the
submitted callable is ``TrainJob``, a ``submitit.helpers.Checkpointable``: on preemption or timeout
submitit calls ``checkpoint()`` and requeues the job, which resumes from the run's last checkpoint
(training checkpoints every ``ckpt_every_s`` and at every evaluation). Tasks per node > 1 start
DDP (harness.distributed reads the Slurm environment). submitit's files are kept in
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

from harness.rundir import RunDir
from sweeps.spec import EXECUTION_ONLY, PlannedRun, Sweep, SweepError, data_key, expand

EXECUTORS = ("local", "slurm", "debug")
ACTIVE_STATES = ("queued", "running", "preempted")  # a process or job may still own the run
SKIP_STATES = ("done", "diverged")
# squeue states of a job that still exists (and so still owns its run)
SLURM_ALIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
               "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}
# a training process's environment: one thread (many 1-thread processes beat one big one on CPU),
# and glibc malloc that keeps freed memory mapped (measured: up to 1.6x fewer page-fault stalls)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "8589934592"}
# variables that would make a local training process think it is one rank of a DDP job
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
              "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_LAUNCH_NODE_IPADDR")


class LaunchError(RuntimeError):
    """Launching cannot start (missing data, no Slurm); the message says how to fix it."""


def default_runs_root() -> str:
    from harness.paths import runs_root  # the one rule for runs/, results/, data/ (harness/paths.py)

    return str(runs_root())


# ----------------------------------------------------------------------------- the training entry


def _rank() -> int:
    from harness.distributed import env_dist_info

    return env_dist_info().rank


def _job_id() -> str | None:
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def run_training(run_dir: str | os.PathLike[str], executor: str = "local") -> str:
    """One training process: record who owns the run (pid, host, Slurm job), then train/resume it."""
    from harness.train import train_run

    run = RunDir(run_dir)
    if _rank() == 0:
        owner = {"executor": executor, "pid": os.getpid(), "host": socket.gethostname()}
        job = _job_id()
        if job:
            owner["job_id"] = job
        run.set_status("running", "starting", **owner)
    return train_run(run.path)


class TrainJob(submitit.helpers.Checkpointable):
    """What a Slurm (or debug) job runs: ``train_run`` on one run directory.

    On preemption/timeout submitit calls ``checkpoint`` (task 0) and requeues the job. The training
    state is already on disk (``ckpt/last.pt``), so the resubmission is this same job: it resumes
    from that checkpoint, and the steps since it are recomputed bit-exactly."""

    def __init__(self, run_dir: str, executor: str = "slurm") -> None:
        self.run_dir = str(run_dir)
        self.executor = executor

    def __call__(self) -> str:
        return run_training(self.run_dir, self.executor)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        if _rank() == 0:
            RunDir(self.run_dir).set_status("preempted", "preempted or timed out; requeued, resumes from "
                                            "ckpt/last.pt", job_id=_job_id())
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.executor))


# ----------------------------------------------------------------------------- who owns a run


def squeue_states(job_ids: list[str]) -> dict[str, str] | None:
    """Job id ('123' or '123_4') -> squeue state for the jobs still known to Slurm; None if squeue
    is unavailable (then nothing can be said about Slurm jobs)."""
    if not job_ids:
        return {}
    base = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(base), "-o", "%i|%T"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue exits 1 for "Invalid job id specified" when every job has left the queue
        if "Invalid job id" in out.stderr:
            return {}
        return None
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid:
            states[jid] = state
    return states


def pid_alive(pid: int, run_dir: Path) -> bool:
    """A process with this pid exists here and is a training process for this run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # guard against a recycled pid
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return True
        return run_dir.name in text or "python" in text
    return True


@dataclass(frozen=True)
class Owner:
    alive: bool | None  # None: cannot tell (a Slurm job but no squeue; a process on another host)
    what: str


def run_owner(status: dict[str, Any], run_dir: Path, slurm: dict[str, str] | None) -> Owner:
    """Who, if anyone, is training (or about to train) this run right now."""
    job = status.get("job_id")
    if job:
        if slurm is None:
            return Owner(None, f"Slurm job {job} (squeue unavailable)")
        state = slurm.get(str(job))
        if state is None and "_" in str(job):  # a pending array task may be listed as 123_[4-9]
            state = next((s for j, s in slurm.items() if j.startswith(str(job).split("_")[0] + "_[")), None)
        return Owner(state in SLURM_ALIVE, f"Slurm job {job} {state or 'gone'}")
    pid, host = status.get("pid"), status.get("host")
    if pid:
        if host and host != socket.gethostname():
            return Owner(None, f"pid {pid} on {host}")
        alive = pid_alive(int(pid), run_dir)
        return Owner(alive, f"pid {pid} {'alive' if alive else 'gone'}")
    return Owner(False, "no owner recorded")


# ----------------------------------------------------------------------------- decisions


@dataclass
class Decision:
    run: PlannedRun
    action: str  # "submit" | "skip"
    reason: str
    resume: bool = False


@dataclass
class LaunchResult:
    sweep: str
    executor: str
    decisions: list[Decision]
    submitted: list[str] = field(default_factory=list)
    job_ids: dict[str, str] = field(default_factory=dict)  # run_id -> Slurm job id
    final_states: dict[str, str] = field(default_factory=dict)  # local/debug: run_id -> state

    def summary(self) -> str:
        skipped = [d for d in self.decisions if d.action == "skip"]
        kinds: dict[str, int] = {}
        for d in skipped:
            kinds[d.reason.split(":")[0]] = kinds.get(d.reason.split(":")[0], 0) + 1
        parts = [f"{len(self.submitted)} submitted ({self.executor})"]
        parts += [f"{n} skipped ({k})" for k, n in sorted(kinds.items())]
        line = f"{self.sweep}: {len(self.decisions)} runs: " + ", ".join(parts)
        if self.final_states:
            counts: dict[str, int] = {}
            for s in self.final_states.values():
                counts[s] = counts.get(s, 0) + 1
            line += "; finished: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return line


def decide(runs: list[PlannedRun], sweep_dir: Path, force: bool = False) -> list[Decision]:
    statuses = {r.run_id: RunDir(sweep_dir / r.run_id).read_status() for r in runs}
    jobs = [str(s["job_id"]) for s in statuses.values() if s.get("job_id") and s.get("state") in ACTIVE_STATES]
    slurm = squeue_states(jobs) if jobs else {}
    out = []
    for r in runs:
        st = statuses[r.run_id]
        state = st.get("state", "pending")
        run_dir = sweep_dir / r.run_id
        resume = (run_dir / "ckpt" / "last.pt").exists()
        if state in SKIP_STATES:
            out.append(Decision(r, "skip", f"{state}"))
            continue
        if state in ACTIVE_STATES:
            owner = run_owner(st, run_dir, slurm)
            if owner.alive or (owner.alive is None and not force):
                hint = "" if owner.alive else " (cannot verify; --force resubmits)"
                out.append(Decision(r, "skip", f"in flight: {owner.what}{hint}"))
                continue
            out.append(Decision(r, "submit", f"stale {state} ({owner.what})", resume))
            continue
        if state == "failed":
            out.append(Decision(r, "submit", f"retry failed run ({st.get('message', '')[:80]})", resume))
            continue
        out.append(Decision(r, "submit", "resume" if resume else "new", resume))
    return out


def check_data(sweep: Sweep) -> None:
    """Fail before submitting anything if the sweep's data is not prepared."""
    if sweep.data.vocab_source != "meta.json" or not (Path(sweep.data.path) / "meta.json").is_file():
        raise LaunchError(f"{sweep.file}: [data]: {sweep.data.path} is not prepared; "
                          f"fix: run `{sweep.data.prepare_cmd}` first")


def _spec_for(run: PlannedRun, threads: int) -> dict[str, Any]:
    spec = run.spec
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, threads=threads)).to_dict()


def _hashed(d: dict[str, Any]) -> dict[str, Any]:
    """The part of a spec dict its run id stands for (see sweeps.spec.config_hash)."""
    d = {k: v for k, v in d.items() if k in ("run_id", "model", "train", "data")}
    d["train"] = {k: v for k, v in d["train"].items() if k not in EXECUTION_ONLY}
    d["data"] = {"path": data_key(d["data"]["path"])}
    return json.loads(json.dumps(d, default=list))


def write_spec(run: PlannedRun, run_dir: Path, threads: int) -> None:
    """Write spec.json; an existing one (a partial run) keeps its "derived" block and must agree
    with the plan on everything but the execution-only settings."""
    rd = RunDir(run_dir)
    new = _spec_for(run, threads)
    if rd.spec_path.exists():
        old = rd.read_spec()
        if _hashed(old) != _hashed(new):
            raise LaunchError(f"{run_dir}/spec.json differs from the sweep's plan for {run.run_id}; fix: move the "
                              "directory away (it was written by another version of the sweep or by hand)")
        if old.get("train", {}).get("threads") == threads and old.get("data") == new["data"]:
            return
        new = {**old, "train": {**old["train"], "threads": threads}, "data": new["data"]}
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
           progress_every_s: float = 15.0) -> LaunchResult:
    """Submit every run that needs it; see the module docstring. local and debug block until their
    runs end; slurm returns once the jobs are queued."""
    if executor not in EXECUTORS:
        raise LaunchError(f"--executor: {executor!r} is not one of {EXECUTORS}")
    runs = expand(sweep)
    if only is not None:
        runs = [r for r in runs if only(r)]
    sweep_dir = Path(runs_root if runs_root is not None else default_runs_root()) / sweep.name
    decisions = decide(runs, sweep_dir, force=force)
    result = LaunchResult(sweep.name, executor, decisions)
    todo = [d for d in decisions if d.action == "submit"]
    if dry_run or not todo:
        return result
    check_data(sweep)
    if executor == "slurm" and not _has_slurm():
        raise LaunchError("--executor slurm: no `sbatch` on this machine; fix: run on a Slurm login node, or use "
                          "--executor local (scripts/slurm/setup-slurm.sh starts a single-node Slurm for tests)")
    threads = sweep.launch.cpus_per_task if executor == "slurm" else 1
    # largest first, so the longest runs do not start last; a WSD trunk before its branches
    todo.sort(key=lambda d: (d.run.depends_on is not None, -d.run.flops_per_token * d.run.trained_tokens))
    for d in todo:  # owned by this launcher (pid, host) until a worker or job takes over
        write_spec(d.run, sweep_dir / d.run.run_id, threads)
        RunDir(sweep_dir / d.run.run_id).set_status("queued", d.reason, executor=executor, job_id=None,
                                                     pid=os.getpid(), host=socket.gethostname())
    if executor == "slurm":
        _launch_slurm(sweep, sweep_dir, todo, decisions, result, log)
    elif executor == "debug":
        _launch_debug(sweep_dir, todo, result)
    else:
        pool = LocalPool(sweep_dir, workers or os.cpu_count() or 1, log=log, progress_every_s=progress_every_s)
        result.submitted = [d.run.run_id for d in todo]
        result.final_states = pool.run([d.run for d in todo])
    return result


def _has_slurm() -> bool:
    from shutil import which

    return which("sbatch") is not None


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


def slurm_executor(sweep: Sweep, sweep_dir: Path, dependency: str | None = None) -> submitit.AutoExecutor:
    ls = sweep.launch
    executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster="slurm",
                                     slurm_max_num_timeout=ls.max_num_timeout)
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
    executor.update_parameters(**params)
    return executor


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
    order = [None] + [k for k in groups if k is not None]
    for key in order:
        batch = groups.get(key, [])
        if not batch:
            continue
        dependency = None
        if key is not None:
            if key not in job_of:
                raise LaunchError(f"{batch[0].run.run_id}: its WSD trunk {key} is neither running nor submitted "
                                  "and has no kept checkpoint; fix: re-run launch after the trunk is done")
            dependency = f"afterany:{job_of[key]}"
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
        log(f"submitted {len(batch)} run(s) as Slurm array {jobs[0].job_id.split('_')[0]}"
            + (f" ({dependency})" if dependency else ""))


def wait_slurm(job_ids: list[str], timeout_s: float, poll_s: float = 5.0) -> dict[str, str]:
    """Block until none of these jobs is in squeue (or timeout_s passes); job id -> last state seen.
    Uses squeue, not job.result(): a job that dies without a result would make result() hang."""
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


# ----------------------------------------------------------------------------- local


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.update(WORKER_ENV)
    return env


def _tail_row(path: Path) -> dict[str, Any] | None:
    """The last complete metrics row (reads only the file's end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    for raw in reversed(lines[:-1] if lines and lines[-1] else lines):
        try:
            return json.loads(raw)
        except ValueError:
            continue
    return None


class LocalPool:
    """At most ``workers`` training processes at once (``python -m sweeps.launch RUN_DIR``, one
    thread each); a WSD branch starts once its trunk's kept checkpoint exists. Blocks until every
    run has ended, printing progress. Ctrl-C stops the workers; their runs resume on the next launch."""

    def __init__(self, sweep_dir: Path, workers: int, log: Callable[[str], None] = print,
                 progress_every_s: float = 15.0) -> None:
        self.sweep_dir = sweep_dir
        self.workers = max(1, workers)
        self.log = log
        self.progress_every_s = progress_every_s
        (sweep_dir / ".local").mkdir(parents=True, exist_ok=True)

    def _start(self, run: PlannedRun) -> subprocess.Popen:
        run_dir = self.sweep_dir / run.run_id
        out = open(self.sweep_dir / ".local" / f"{run.run_id}.out", "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "sweeps.launch", str(run_dir)], env=worker_env(),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()

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

    def run(self, runs: list[PlannedRun]) -> dict[str, str]:
        pending = list(runs)
        running: dict[str, tuple[PlannedRun, subprocess.Popen]] = {}
        final: dict[str, str] = {}
        total = len(runs)
        t0 = last_report = time.time()
        try:
            while pending or running:
                for run in list(pending):
                    if len(running) >= self.workers:
                        break
                    ready = self._ready(run, set(final))
                    if ready is None:
                        pending.remove(run)
                        msg = f"its WSD trunk {run.depends_on} ended without {run.spec.train.init_from}"
                        RunDir(self.sweep_dir / run.run_id).set_status("failed", msg)
                        final[run.run_id] = "failed"
                        self.log(f"[launch] {run.run_id}: failed: {msg}")
                    elif ready:
                        pending.remove(run)
                        running[run.run_id] = (run, self._start(run))
                for run_id, (_run, proc) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[run_id]
                    state = RunDir(self.sweep_dir / run_id).state
                    if state not in ("done", "diverged", "failed"):
                        RunDir(self.sweep_dir / run_id).set_status(
                            "failed", f"worker exited with code {proc.returncode} in state {state}; see "
                            f"{self.sweep_dir / '.local' / (run_id + '.out')}")
                        state = "failed"
                    final[run_id] = state
                    self.log(f"[launch] {len(final)}/{total} {run_id}: {state} ({time.time() - t0:.0f} s)")
                if time.time() - last_report >= self.progress_every_s and running:
                    last_report = time.time()
                    self.log(self._progress(final, total, running, t0))
                time.sleep(0.5)
        except BaseException:
            for _run_id, (_run, proc) in running.items():
                proc.terminate()
            for _run_id, (_run, proc) in running.items():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.log("[launch] interrupted: the stopped runs resume from their checkpoints on the next launch")
            raise
        return final

    def _progress(self, final: dict[str, str], total: int, running: dict, t0: float) -> str:
        parts = []
        for run_id, (run, _proc) in running.items():
            row = _tail_row(self.sweep_dir / run_id / "metrics.jsonl")
            if row is None:
                parts.append(f"{run.arm}-{run.spec.size} starting")
                continue
            frac = row.get("tokens", 0) / max(1, run.spec.train.tokens)
            loss = row.get("train_loss")
            parts.append(f"{run.arm}-{run.spec.size} {frac:.0%} loss {loss:.3f}" if loss is not None
                         else f"{run.arm}-{run.spec.size} {frac:.0%}")
        return f"[launch] {len(final)}/{total} done, {time.time() - t0:.0f} s; running: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.launch RUN_DIR``: train one run (a local worker)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sweeps.launch RUN_DIR", file=sys.stderr)
        return 2
    state = run_training(argv[0], "local")
    return 0 if state in ("done", "diverged") else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXECUTORS", "LaunchError", "LaunchResult", "LocalPool", "SweepError", "TrainJob", "launch",
           "run_training", "squeue_states", "wait_slurm"]
