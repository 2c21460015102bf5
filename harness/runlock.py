"""The per-run lock: who trains a run is whoever holds ``<run_dir>/lock`` (an exclusive ``flock``).

Exactly one process trains a run at a time: the trainer takes the lock before any work and holds it
until it exits (the kernel releases it when the process dies, however it dies). Launch and status
decide from the lock, not from a pid written into status.json: a pid says who *was* meant to run,
the lock says who *is* running. The local launcher takes the lock before it starts a worker and
hands the open file to it (an inherited descriptor: same lock), so there is no moment between
"launched" and "training" in which a relaunch could think the run free.

The file's content (pid, host, Slurm job, time) is for people and for messages; only the flock
counts. A local launcher holds one more lock of the same kind, ``<sweep>/.local/launcher-<pid>.lock``,
for as long as it runs: a run it has queued but not started yet is "queued" while that lock is held. flock needs a filesystem that supports it across machines for a login node to see locks
held on compute nodes (local disks, NFSv4, Lustre mounted with ``flock``, GPFS); where it does not,
status falls back to the scheduler's view (squeue).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "lock"
FD_ENV = "ATTNRES_LOCK_FD"  # a worker inherits its lock through this descriptor number


class RunLock:
    """An exclusive, non-blocking flock on ``<run_dir>/lock``."""

    def __init__(self, run_dir: str | os.PathLike[str], fd: int | None = None, name: str = LOCK_NAME) -> None:
        self.path = Path(run_dir) / name
        self.fd = fd

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, **info: Any) -> bool:
        """Take the lock (False if another process holds it) and record who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        self.describe(**info)
        return True

    def describe(self, **info: Any) -> None:
        """Rewrite the human-readable holder record (the lock itself is unchanged)."""
        if self.fd is None:
            return
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                           "slurm_job_id": os.environ.get("SLURM_JOB_ID"), **info}, sort_keys=True) + "\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def inheritable_fd(self) -> int:
        """The descriptor to pass to a child process (``pass_fds``), which then holds the same lock."""
        assert self.fd is not None
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def close_without_unlock(self) -> None:
        """Drop this process's descriptor; a child that inherited it keeps the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def inherited(run_dir: str | os.PathLike[str]) -> RunLock | None:
    """The lock a launcher passed to this process (``ATTNRES_LOCK_FD``), if any."""
    fd = os.environ.pop(FD_ENV, None)
    if fd is None:
        return None
    lock = RunLock(run_dir, int(fd))
    lock.describe(inherited=True)
    return lock


def is_locked(run_dir: str | os.PathLike[str], name: str = LOCK_NAME) -> bool:
    """True while some process holds the run's lock (i.e. trains it or is about to)."""
    path = Path(run_dir) / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock taken by the probe
    return False


def holder(run_dir: str | os.PathLike[str], name: str = LOCK_NAME) -> dict[str, Any]:
    """The holder record written by the lock's owner ({} if absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / name).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(run_dir: str | os.PathLike[str]) -> str:
    h = holder(run_dir)
    who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}"
    if h.get("slurm_job_id"):
        who += f" (Slurm job {h['slurm_job_id']})"
    return f"locked by {who}"
