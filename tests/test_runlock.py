"""One trainer per run: the per-run lock, a launcher killed while its worker starts, --workers as a bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_sweeps import micro_toml, write_sweep

from harness.runlock import RunLock, holder, is_locked
from records.rundir import RunDir
from sweeps.launch import decide, launch
from sweeps.spec import expand, load_sweep
from sweeps.status import sweep_status


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_lock_is_exclusive_and_released_by_death(tmp_path):
    lock = RunLock(tmp_path / "run")
    assert lock.acquire(purpose="test") and is_locked(tmp_path / "run")
    assert holder(tmp_path / "run")["pid"] == os.getpid()
    assert not RunLock(tmp_path / "run").acquire()  # a second holder, even in this process, is refused
    lock.release()
    assert not is_locked(tmp_path / "run")
    code = "import sys, time; from harness.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print(1, flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"1" and is_locked(tmp_path / "run")
    proc.kill()
    proc.wait()
    assert not is_locked(tmp_path / "run")  # the kernel drops it with the process, however it died


def test_relaunch_skips_a_run_whose_worker_still_starts(tmp_path, corpus):
    """The race of issue 12, made deterministic: the launcher is killed while its worker is still
    starting (frozen with SIGSTOP right after it is spawned, long before it imports torch). The
    worker holds the run's lock from its first instant (the launcher hands it over), so a relaunch
    skips that run, and with --workers 1 it does not start another run while the orphan trains."""
    sweep_file = write_sweep(tmp_path, micro_toml(corpus))
    sweep = load_sweep(sweep_file)
    runs_root = tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-m", "attnres", "launch", str(sweep_file), "--runs-root", str(runs_root),
                              "--executor", "local", "--workers", "1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (kids := _children(first.pid)):
        assert time.time() < deadline and first.poll() is None, "the launcher started no worker"
        time.sleep(0.002)
    worker = kids[0]
    # stop it only once it has exec'd the worker: between fork and exec the child is still a copy of
    # the launcher holding every one of its fds, the launcher's own lock included (close-on-exec acts
    # at exec), and a stopped copy would keep that lock, making the dead launcher look alive
    while b"sweeps.launch" not in Path(f"/proc/{worker}/cmdline").read_bytes():
        assert time.time() < deadline, "the worker never exec'd"
        time.sleep(0.001)
    os.kill(worker, signal.SIGSTOP)
    first.kill()
    first.wait()
    try:
        # the launcher starts the largest run first; its lock is the orphan's
        orphan_run = max(expand(sweep), key=lambda r: r.flops_per_token * r.trained_tokens).run_id
        other = next(r.run_id for r in expand(sweep) if r.run_id != orphan_run)
        status = RunDir(runs_root / "micro" / orphan_run).read_status()
        assert status["state"] == "queued" and status["pid"] == first.pid  # what the dead launcher wrote

        result: dict = {}
        relaunch = threading.Thread(target=lambda: result.update(r=launch(
            sweep, executor="local", workers=1, runs_root=runs_root, log=lambda m: None, progress_every_s=3600)))
        relaunch.start()
        time.sleep(4.0)  # the relaunch decides and waits: the orphan fills the only worker slot
        assert not is_locked(runs_root / "micro" / other), "a second trainer started next to the orphan"
        assert not (runs_root / "micro" / other / "metrics.jsonl").exists()
        states = {r.run_id: r.state for r in sweep_status(sweep, runs_root)[0]}
        assert states[orphan_run] == "running"  # from the lock, although its status names a dead launcher
        assert states[other] == "queued"  # the live relaunch holds its launcher lock while the run waits
        third = {d.run.run_id: d for d in decide(expand(sweep), runs_root)}
        assert third[other].action == "skip" and "queued by the launcher" in third[other].reason
    finally:
        os.kill(worker, signal.SIGCONT)
    relaunch.join(timeout=300)
    assert not relaunch.is_alive()
    assert not is_locked(runs_root / "micro" / other)
    decisions = {d.run.run_id: d for d in result["r"].decisions}
    assert decisions[orphan_run].action == "skip" and "locked by pid" in decisions[orphan_run].reason
    assert decisions[other].action == "submit", {k: (d.action, d.reason) for k, d in decisions.items()}
    assert result["r"].final_states == {other: "done"}
    deadline = time.time() + 120
    while RunDir(runs_root / "micro" / orphan_run).state != "done":  # the orphan finishes on its own
        assert time.time() < deadline, RunDir(runs_root / "micro" / orphan_run).read_status()
        time.sleep(0.2)
    for run_id in (orphan_run, other):  # each trained exactly once
        rd = RunDir(runs_root / "micro" / run_id)
        assert rd.read_status()["attempts"] == 1
        assert rd.log_path.read_text().count("start at step 0/") == 1
        steps = [r["step"] for r in rd.read_metrics().rows]
        assert steps == sorted(set(steps))
