"""Who may own a run now, as launch and status both decide it (never from a pid in status.json).

    ACTIVE                        states in which a process or a Slurm job may still own the run
    launcher_alive(root, sweep, status)   a local launcher that queued the run still runs (its lock)

A run's trainer holds ``<run_dir>/lock`` (harness/runlock.py); a local launcher holds
``<runs_root>/<sweep>/.local/launcher-<pid>.lock`` while it runs, and writes that lock's name into
the status.json of each run it queues.
"""

from __future__ import annotations

import os
from typing import Any

from harness.runlock import is_locked
from records import paths
from records.choices import RunState

ACTIVE = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.PREEMPTED})


def state_of(status: dict[str, Any]) -> RunState | str:
    """The state a status.json records ("pending" without one); an unknown name is returned as written."""
    state = status.get("state", RunState.PENDING)
    try:
        return RunState(state)
    except ValueError:
        return str(state)


def launcher_alive(runs_root: str | os.PathLike[str], sweep: str, status: dict[str, Any]) -> bool:
    """A local run queued by a launcher that is still running (it holds its launcher lock)."""
    name = status.get("launcher_lock")
    return bool(name) and is_locked(paths.local_dir(runs_root, sweep), name)
