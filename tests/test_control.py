"""What a person running a sweep sees and does: tokens/s and ETA, cancel, logs, the dry-run sbatch."""

from __future__ import annotations

import threading
import time

import pytest
from test_sweeps import micro_toml, write_sweep

from harness.runlock import RunLock, is_locked
from records.rundir import RunDir
from sweeps import cli as sweeps_cli
from sweeps.control import cancel, find_run, logs
from sweeps.launch import LocalPool, launch
from sweeps.spec import expand, load_sweep
from sweeps.status import format_status, summary_line, sweep_status


def _rows(rd: RunDir, steps: list[int], tokens_per_step: int, rate: float) -> None:
    for s in steps:
        rd.append_metrics({"kind": "train", "step": s, "tokens": s * tokens_per_step, "flops": 0.0, "train_loss": 3.0,
                           "val_loss": None, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": rate,
                           "elapsed_s": s / 10, "mfu": None, "layer_rms": None, "depth_alpha": None})


def test_status_and_launch_show_tokens_per_s_and_eta(tmp_path, corpus):
    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus, budget='mode = "tokens"\ntokens = 81920')))
    sweep_dir = tmp_path / "runs" / "micro"
    live, idle = expand(sweep)
    rd = RunDir(sweep_dir / live.run_id)
    rd.set_status("running", step=100, tokens=25600, attempts=1)
    _rows(rd, [50, 100], 256, rate=1000.0)  # 25,600 of 81,920 tokens at 1,000 tok/s: 56 s to go
    with RunLock(rd.path) as lock:
        assert lock.acquire()
        rows, _ = sweep_status(sweep, tmp_path / "runs")
        by_id = {r.run_id: r for r in rows}
        r = by_id[live.run_id]
        assert r.state == "running" and r.tokens_per_s == 1000.0 and r.eta_s == pytest.approx(56.32)
        assert by_id[idle.run_id].eta_s is None
        text = format_status(sweep, rows)
        assert "tok/s" in text and "ETA" in text and "0m56s" in text
        # sweep: what is left of both runs at the FLOP rate of the one training now
        left = (81920 - 25600) * live.flops_per_token + 81920 * idle.flops_per_token
        eta = left / (1000.0 * live.flops_per_token)
        assert f"ETA {int(eta // 60)}m" in summary_line(sweep, rows)
        pool = LocalPool(tmp_path / "runs", "micro", workers=2)
        line = pool._progress({}, [live, idle], {live.run_id: (live, None)}, time.time())
        assert "1k tok/s" in line and "ETA 0m56s" in line and f"sweep 1k tok/s over 1 run(s), ETA {int(eta // 60)}m" in line


def test_cancel_stops_a_local_run_and_launch_leaves_it(tmp_path, corpus, capsys):
    """`attnres cancel` marks the run, SIGTERMs its trainer (which checkpoints and stops); launch
    skips it until --include-cancelled, which resumes it from that checkpoint."""
    budget = 'mode = "tokens"\ntokens = 409600'  # 1600 steps: minutes, if it were not cancelled
    text = micro_toml(corpus, variants="baseline = {}", budget=budget).replace("ckpt_every_s = 1.0", "ckpt_every_s = 3600.0")
    sweep = load_sweep(write_sweep(tmp_path, text.replace("eval_every_tokens = 2048", "eval_every_tokens = 204800")))
    (run,) = expand(sweep)
    runs_root = tmp_path / "runs"
    rd = RunDir(runs_root / "micro" / run.run_id)
    result: dict = {}
    first = threading.Thread(target=lambda: result.update(r=launch(sweep, executor="local", workers=1, runs_root=runs_root,
                                                                   log=lambda m: None, progress_every_s=3600)))
    first.start()
    deadline = time.time() + 120
    while not (rd.metrics_path.exists() and rd.read_metrics().rows):
        assert time.time() < deadline, rd.read_status()
        time.sleep(0.05)
    lines = cancel(sweep, runs_root, [f"{run.run_id[:10]}*"])
    assert "sent SIGTERM" in lines[0], lines
    first.join(timeout=120)
    assert result["r"].final_states == {run.run_id: "cancelled"}
    status = rd.read_status()
    assert status["state"] == "cancelled" and "checkpoint saved at step" in status["message"], status
    assert not is_locked(rd.path)
    rows, _ = sweep_status(sweep, runs_root)
    assert rows[0].state == "cancelled"
    again = launch(sweep, executor="local", workers=1, runs_root=runs_root, log=lambda m: None)
    assert again.submitted == [] and again.decisions[0].reason.startswith("cancelled")
    assert sweeps_cli.main(["logs", run.run_id, "--runs-root", str(runs_root), "--tail", "3"]) == 0
    out = capsys.readouterr().out
    assert "train.log" in out and "stop requested" in out and f".local/{run.run_id}.out" in out
    assert find_run(runs_root, run.run_id) == rd.path and "cancelled" in logs(rd.path, tail=0)


def test_dry_run_prints_the_sbatch_script(tmp_path, corpus, capsys):
    extra = '[launch]\npartition = "debug"\ntime_min = 60\ngpus_per_node = 2\ntasks_per_node = 2\nmem_gb = 4\n'
    path = write_sweep(tmp_path, micro_toml(corpus, extra=extra))
    assert sweeps_cli.main(["launch", str(path), "--executor", "slurm", "--dry-run",
                            "--runs-root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    script = out.split("would be submitted:\n", 1)[1].split("\n---", 1)[0]
    assert script.startswith("#!/bin/bash")
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --partition=debug", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --ntasks-per-node=2", "#SBATCH --signal=USR2@90", "#SBATCH --time=60"):
        assert line in script.splitlines(), (line, script)
    assert "dry run: 2 of 2 runs would be submitted" in out
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_finished_runs_requeued_job_is_cancelled(tmp_path, corpus, monkeypatch):
    """A run that finished while its requeued job still waits in the queue: status says so, and
    launch cancels that job (it would start, find the run done and exit)."""
    from sweeps import slurm

    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus)))
    done, other = expand(sweep)
    sweep_dir = tmp_path / "runs" / "micro"
    RunDir(sweep_dir / done.run_id).set_status("done", job_id="77_0", step=32, tokens=8192)
    RunDir(sweep_dir / other.run_id).set_status("done", job_id="77_1", step=32, tokens=8192)
    queue = {"77_0": slurm.SlurmJob("77_0", "PENDING", "BeginTime", "0:00", done.run_id)}
    monkeypatch.setattr(slurm, "squeue_jobs", lambda ids: {k: v for k, v in queue.items() if k in ids})
    cancelled: list[list[str]] = []
    monkeypatch.setattr(slurm, "scancel", lambda ids: cancelled.append(list(ids)))
    rows = {r.run_id: r for r in sweep_status(sweep, tmp_path / "runs")[0]}
    assert rows[done.run_id].state == "done" and "77_0 is PENDING" in rows[done.run_id].detail
    result = launch(sweep, executor="debug", runs_root=tmp_path / "runs")
    assert result.submitted == [] and cancelled == [["77_0"]] and result.cancelled_stale == ["77_0"]
    assert "stale Slurm job" in result.summary()
