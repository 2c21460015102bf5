"""`attnres cancel` and `attnres logs`: stop runs on purpose, and find what a run wrote.

    attnres cancel paper                         # every unfinished run of the sweep
    attnres cancel paper paper-full-528M-s0-*    # some runs (ids or shell patterns)
    attnres launch paper --include-cancelled     # wanted again: resubmit them (they resume)
    attnres logs paper-full-528M-s0-1a2b3c4d     # where its logs are, and their last lines

Cancelling marks the run (``<run_dir>/cancelled.json``) before it stops anything, so no launch
resubmits it meanwhile; then it cancels the run's Slurm job, or sends SIGTERM to the local process
holding the run's lock. A trainer stopped that way saves a checkpoint at its next step and records
``cancelled``; `launch --include-cancelled` resumes it from there.
"""

from __future__ import annotations

import fnmatch
import getpass
import json
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path

from harness.runlock import holder, is_locked
from records import paths
from records.choices import RunState
from records.rundir import CANCEL_MARK, RunDir
from sweeps import slurm
from sweeps.checker import SweepError
from sweeps.expand import expand
from sweeps.sweepfile import Sweep


def select(sweep: Sweep, patterns: list[str]) -> list[str]:
    ids = [r.run_id for r in expand(sweep)]
    if not patterns:
        return ids
    chosen = [i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(i, p) for i in ids)]
    if unmatched:
        raise SweepError(f"{sweep.file}: no planned run matches {unmatched}; fix: use run ids from "
                         f"`attnres status {sweep.name}` (shell patterns such as '{sweep.name}-block-*' work)")
    return chosen


def _signal_local(run_dir: Path) -> str | None:
    """SIGTERM to the process that holds the run's lock, if it is a training process on this host."""
    h = holder(run_dir)
    pid = h.get("pid")
    if not pid or h.get("host") != socket.gethostname():
        return None
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if run_dir.name not in cmd and "sweeps.launch" not in cmd and "harness" not in cmd and "attnres" not in cmd:
        return None  # a recycled pid, or not a trainer: leave it alone
    os.kill(int(pid), signal.SIGTERM)
    return f"sent SIGTERM to pid {pid} (it checkpoints at its next step, then stops)"


def cancel(sweep: Sweep, runs_root: Path, patterns: list[str]) -> list[str]:
    """Cancel the selected runs; returns one line per run saying what was done."""
    lines, jobs_to_cancel = [], []
    statuses = {i: RunDir(paths.run_dir(runs_root, sweep.name, i)).read_status() for i in select(sweep, patterns)}
    queued = slurm.squeue_jobs([str(s["job_id"]) for s in statuses.values() if s.get("job_id")]) or {}
    for run_id, st in statuses.items():
        rd = RunDir(paths.run_dir(runs_root, sweep.name, run_id))
        if st.get("state") in (RunState.DONE, RunState.DIVERGED):
            lines.append(f"  {run_id}: already {st['state']}; nothing to cancel")
            continue
        rd.path.mkdir(parents=True, exist_ok=True)
        (rd.path / CANCEL_MARK).write_text(json.dumps({"by": getpass.getuser(), "host": socket.gethostname(),
                                                       "at": time.time()}) + "\n")
        what = []
        job = str(st["job_id"]) if st.get("job_id") else None
        found = slurm.find_job(queued, job) if job else None
        if found is not None and found.alive:
            jobs_to_cancel.append(job)
            what.append(f"Slurm job {job} ({found.state}) cancelled")
        if is_locked(rd.path):
            sent = _signal_local(rd.path)
            h = holder(rd.path)
            if sent:
                what.append(sent)
            elif h.get("slurm_job_id") and not found:
                jobs_to_cancel.append(str(h["slurm_job_id"]))
                what.append(f"Slurm job {h['slurm_job_id']} cancelled")
            elif not found:
                what.append(f"held by pid {h.get('pid')} on {h.get('host')}: stop it there (it is marked cancelled)")
        else:
            rd.set_status(RunState.CANCELLED, "cancelled by `attnres cancel`; `attnres launch --include-cancelled` "
                          "resumes it")
        lines.append(f"  {run_id}: cancelled" + (f": {'; '.join(what)}" if what else ""))
    err = slurm.scancel(jobs_to_cancel)
    if err:
        lines.append(f"  scancel: {err}")
    return lines


def find_run(runs_root: Path, run_id: str) -> Path:
    """The directory of ``run_id`` in whichever sweep of the runs root holds it."""
    sweeps = sorted(d.name for d in runs_root.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if runs_root.is_dir() else []
    hits = [p for p in (paths.run_dir(runs_root, s, run_id) for s in sweeps) if p.is_dir()]
    if not hits:
        raise SweepError(f"{run_id}: no run directory {runs_root}/*/{run_id}; fix: check the id with "
                         "`attnres status SWEEP` or pass --runs-root")
    return hits[0]


def _tail(path: Path, n: int) -> list[str]:
    with open(path, errors="replace") as f:
        return list(deque(f, maxlen=n))


def logs(run_dir: Path, tail: int = 20) -> str:
    """Where a run's logs are (training log, Slurm or local worker output), with their last lines."""
    rd = RunDir(run_dir)
    st = rd.read_status()
    runs_root, sweep, run_id = paths.run_location(run_dir)
    files = [rd.log_path]
    if st.get("job_id"):
        files += slurm.job_log_paths(paths.submitit_dir(runs_root, sweep), str(st["job_id"]))
    files.append(paths.worker_output(runs_root, sweep, run_id))
    out = [f"{run_id}: {st.get('state', RunState.PENDING)}" + (f" ({st['message']})" if st.get("message") else "")]
    for p in files:
        if not p.exists():
            continue
        out.append(f"== {p}")
        out += [f"   {line.rstrip()}" for line in (_tail(p, tail) if tail else [])]
    if len(out) == 1:
        out.append("no logs written yet")
    return "\n".join(out)
