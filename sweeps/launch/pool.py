"""The local executor: at most ``workers`` training processes of a sweep on this machine at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.runlock import FD_ENV, RunLock, describe_holder, is_locked
from records import paths
from records.choices import Executor, RunState
from records.rundir import RunDir
from sweeps.expand import PlannedRun
from sweeps.progress import fmt_duration, fmt_rate, run_progress, sweep_progress, tail_row
from sweeps.slurm import WORKER_ENV

# variables that would make a local training process think it is one rank of a DDP job
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
              "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_LAUNCH_NODE_IPADDR")
# states a worker leaves its run in when it ends on purpose (anything else: it failed)
_ENDED = (RunState.DONE, RunState.DIVERGED, RunState.FAILED, RunState.PREEMPTED, RunState.CANCELLED)


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

    def __init__(self, runs_root: str | os.PathLike[str], sweep: str, workers: int,
                 log: Callable[[str], None] = print, progress_every_s: float = 15.0) -> None:
        self.runs_root, self.sweep = Path(runs_root), sweep
        self.workers = max(1, workers)
        self.log = log
        self.progress_every_s = progress_every_s
        self.local = paths.local_dir(runs_root, sweep)
        self.local.mkdir(parents=True, exist_ok=True)
        # held while this launcher lives: the runs it queued read "queued", not "pending"
        for old in self.local.glob("launcher-*.lock"):  # left by launchers that were killed
            if not is_locked(old.parent, old.name):
                old.unlink(missing_ok=True)
        self.lock_name = f"launcher-{os.getpid()}.lock"
        self._lock = RunLock(self.local, name=self.lock_name)
        self._lock.acquire(launcher=True)

    def close(self) -> None:
        self._lock.release()
        (self.local / self.lock_name).unlink(missing_ok=True)

    def _dir(self, run_id: str) -> Path:
        return paths.run_dir(self.runs_root, self.sweep, run_id)

    def _start(self, run: PlannedRun) -> subprocess.Popen | None:
        """Take the run's lock, then start the worker holding it; None if another process has it."""
        run_dir = self._dir(run.run_id)
        lock = RunLock(run_dir)
        if not lock.acquire(executor=Executor.LOCAL, launcher_pid=os.getpid()):
            return None
        fd = lock.inheritable_fd()
        out = open(paths.worker_output(self.runs_root, self.sweep, run.run_id), "ab")
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
        if (paths.sweep_dir(self.runs_root, self.sweep) / run.spec.train.init_from).exists():
            return True
        trunk = run.depends_on
        if trunk in ended or RunDir(self._dir(trunk)).state in (RunState.DONE, RunState.DIVERGED, RunState.FAILED):
            return None
        return False

    def _foreign(self, known: list[PlannedRun], running: dict) -> int:
        """Trainers of this sweep's runs that this pool did not start (orphans, other launchers)."""
        return sum(1 for r in known if r.run_id not in running and is_locked(self._dir(r.run_id)))

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
                RunDir(self._dir(run.run_id)).set_status(RunState.FAILED, msg)
                final[run.run_id] = RunState.FAILED
                self.log(f"[launch] {run.run_id}: failed: {msg}")
            elif ready:
                pending.remove(run)
                proc = self._start(run)
                if proc is None:
                    final[run.run_id] = "locked"
                    self.log(f"[launch] {run.run_id}: {describe_holder(self._dir(run.run_id))}; skipped")
                else:
                    running[run.run_id] = (run, proc)

    def _reap(self, running: dict, final: dict[str, str], total: int, t0: float) -> None:
        for run_id, (_run, proc) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[run_id]
            rd = RunDir(self._dir(run_id))
            state = rd.state
            if state not in _ENDED:
                rd.set_status(RunState.FAILED, f"worker exited with code {proc.returncode} in state {state}; see "
                              f"{paths.worker_output(self.runs_root, self.sweep, run_id)}")
                state = RunState.FAILED
            final[run_id] = state
            self.log(f"[launch] {len(final)}/{total} {run_id}: {state} ({time.time() - t0:.0f} s)")

    def _progress(self, final: dict[str, str], runs: list[PlannedRun], running: dict, t0: float) -> str:
        parts, progress = [], []
        for run in runs:
            p = run_progress(self._dir(run.run_id), run.spec.train.tokens, run.flops_per_token,
                             training=run.run_id in running)
            progress.append(p)
            if run.run_id in running:
                label = f"{run.arm}-{run.spec.size}"
                row = tail_row(RunDir(self._dir(run.run_id)).metrics_path) if p.tokens_per_s else None
                loss = f" loss {row['train_loss']:.3f}" if row and row.get("train_loss") is not None else ""
                parts.append(f"{label} {p.tokens / max(1, p.target):.0%}{loss} {fmt_rate(p.tokens_per_s)} "
                             f"ETA {fmt_duration(p.eta_s)}" if p.tokens_per_s else f"{label} starting")
        sweep = sweep_progress(progress, [r.run_id not in final for r in runs])
        return (f"[launch] {len(final)}/{len(runs)} done, {time.time() - t0:.0f} s; sweep {sweep.describe()}; "
                "running: " + ("; ".join(parts) or "none"))
