"""SIGTERM and SIGUSR2 stop training at a step boundary after a checkpoint: no step is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_train import child_env, make_run, rows_without_timing

from harness import checkpoint as ckpt
from harness.train import train_run

LONG = dict(variant="baseline", tokens=8 * 32 * 300, eval_every_tokens=8 * 32 * 100, ckpt_every_s=3600.0)


def _max_step(run) -> int:
    rows = run.read_metrics().rows
    return max((r["step"] for r in rows), default=0)


def _wait_for_step(run, step: int, proc=None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while _max_step(run) < step:
        assert time.time() < deadline, "training did not get there"
        assert proc is None or proc.poll() is None, "training ended early"
        time.sleep(0.01)


def test_sigterm_saves_a_checkpoint_and_stops_promptly(tmp_path, corpus):
    """`scancel`, `scontrol requeue` and Ctrl-C of the local launcher send SIGTERM: the trainer
    checkpoints at the next step and exits, and the resumed run equals an uninterrupted one."""
    ref = make_run(tmp_path, "ref", corpus, **LONG)
    assert train_run(ref.path) == "done"
    run = make_run(tmp_path, "term", corpus, **LONG)
    proc = subprocess.Popen([sys.executable, "-m", "attnres", "train", "--run-dir", str(run.path)], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_step(run, 30, proc)
    seen = _max_step(run)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    err = proc.communicate(timeout=60)[1].decode(errors="replace")
    print(f"stopped {time.time() - t0:.2f} s after SIGTERM")
    assert proc.returncode == 1, err  # ended, not killed by the signal (that would be -15)
    assert run.last_ckpt.exists(), "no checkpoint: the steps since the start are lost"
    saved = json.loads(ckpt.sidecar(run.last_ckpt).read_text())["step"]
    assert seen <= saved < 100, (seen, saved)  # the stop step, not the last evaluation's
    status = run.read_status()
    assert status["state"] == "preempted" and "SIGTERM" in status["message"], status
    assert train_run(run.path) == "done"
    assert f"resumed from {run.last_ckpt} at step {saved}" in run.log_path.read_text()
    assert rows_without_timing(run) == rows_without_timing(ref)


def test_sigusr2_checkpoints_before_submitit_requeues(tmp_path, corpus):
    """Slurm's preemption/timeout signal (SIGUSR2, submitit's --signal): the handler that was there
    before (submitit's, which requeues and exits) runs only once the state at a step boundary is on
    disk."""
    run = make_run(tmp_path, "usr2", corpus, **LONG)
    calls = []

    def submitit_like(signum, frame):  # submitit.core.job_environment.SignalHandler.checkpoint_and_try_requeue
        info = json.loads(ckpt.sidecar(run.last_ckpt).read_text()) if run.last_ckpt.exists() else {}
        calls.append({"ckpt_step": info.get("step"), "rows_step": _max_step(run)})
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    timer = threading.Thread(target=lambda: (_wait_for_step(run, 20), os.kill(os.getpid(), signal.SIGUSR2)))
    try:
        timer.start()
        with pytest.raises(SystemExit):
            train_run(run.path)
    finally:
        timer.join(timeout=60)
        signal.signal(signal.SIGUSR2, previous)
    assert len(calls) == 1, calls
    assert calls[0]["ckpt_step"] is not None and calls[0]["ckpt_step"] >= calls[0]["rows_step"] >= 20, calls
    assert run.read_status()["state"] == "preempted"
    assert signal.getsignal(signal.SIGUSR2) is previous  # the trainer's handlers are gone again
