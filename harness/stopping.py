"""Stop requests: SIGTERM and SIGUSR2 end training at the next step boundary, after a checkpoint.

Slurm asks a job to stop in two ways. ``scancel``, ``scontrol requeue`` and the end of a preemption
grace period send SIGTERM (submitit only logs it, so training used to run on until Slurm's KillWait
killed it, losing everything since the last periodic checkpoint). Preemption and the approaching time
limit send SIGUSR2 (submitit's ``--signal``), whose submitit handler checkpoints the job and
requeues it *from inside the signal handler*, i.e. at an arbitrary point of a training step, where
the state in memory is not a consistent one.

So while a run trains, both signals only set a flag. At the next step boundary the trainer saves its
full state (ckpt/last.pt) and raises ``StopRequested``; ``train_run`` then marks the run preempted
and, for SIGUSR2, calls the handler that was installed before (submitit's), which requeues the job
and exits. A requeued job resumes from exactly the step it stopped at: no step is lost.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None)) if s is not None)


class StopRequested(Exception):  # noqa: N818 - a request, not an error
    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


class StopRequests:
    """Installs flag-only handlers for SIGTERM/SIGUSR2 (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> StopRequests:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in SIGNALS:
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        # a preemption (USR2) outranks a plain stop: it is the one that must reach submitit to requeue
        if self.signum is None or signum == getattr(signal, "SIGUSR2", None):
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def forward(self, signum: int) -> None:
        """Hand the signal to the handler that was there before (submitit's requeue on SIGUSR2), if it
        is a Python callable; it may raise SystemExit (submitit exits after requeueing)."""
        handler = self.previous.get(signum)
        self.restore()
        if callable(handler):
            handler(signum, None)
