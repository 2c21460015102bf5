"""Training: bit-exact resume after SIGKILL, DDP = single process, divergence, learning on real text."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.train import Schedule, make_schedule, train_run
from records.config import DataConfig, ModelConfig, RunSpec, TrainConfig
from records.rundir import METRIC_FIELDS, TIMING_FIELDS, MetricRow, RunDir

TINY = dict(vocab_size=256, n_blocks=2, d_model=32, n_heads=4, d_ff=64, seq_len=32)


def make_run(tmp_path: Path, name: str, corpus: Path, variant: str = "block", **train) -> RunDir:
    extra = {"attnres_blocks": 2} if variant == "block" else {}
    t = dict(tokens=8 * 32 * 60, batch_size=8, lr=3e-3, eval_tokens=2048, log_every_steps=5,
             eval_every_tokens=8 * 32 * 10, ckpt_every_s=0.0)
    t.update(train)
    spec = RunSpec(run_id=name, model=ModelConfig(**TINY, variant=variant, **extra),
                   train=TrainConfig(**t), data=DataConfig(str(corpus)))
    run = RunDir(tmp_path / name)
    run.write_spec(spec.to_dict())
    return run


def rows_without_timing(run: RunDir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in run.read_metrics().rows]


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def kill_step(record_property) -> tuple[int, str]:
    """The step at which test_resume_bit_exact kills training: drawn from a generator seeded with
    $ATTNRES_RESUME_SEED (a fresh seed when unset, so runs cover different steps), and reported with
    the command that replays it."""
    seed = int(os.environ.get("ATTNRES_RESUME_SEED") or random.SystemRandom().randrange(2**32))
    kill_at = random.Random(seed).randint(7, 52)
    replay = f"ATTNRES_RESUME_SEED={seed} pytest tests/test_train.py -k test_resume_bit_exact"
    record_property("resume_seed", seed)
    record_property("kill_step", kill_at)
    print(f"killing at step >= {kill_at} (seed {seed}; replay: {replay})")
    return kill_at, replay


def test_resume_bit_exact(tmp_path, corpus, record_property):
    ref = make_run(tmp_path, "ref", corpus)
    assert train_run(ref.path) == "done"
    killed = make_run(tmp_path, "killed", corpus)
    kill_at, replay = kill_step(record_property)
    proc = subprocess.Popen([sys.executable, "-m", "attnres", "train", "--run-dir", str(killed.path)],
                            env=child_env(), stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        rows = killed.read_metrics().rows
        if rows and rows[-1]["step"] >= kill_at:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = killed.read_metrics().rows
    where = f"killed after step {rows[-1]['step'] if rows else 0} (kill step {kill_at}; replay: {replay})"
    print(where)
    assert killed.state == "running", where  # killed mid-run, no chance to clean up
    assert killed.last_ckpt.exists(), where
    assert train_run(killed.path) == "done", where
    a, b = rows_without_timing(ref), rows_without_timing(killed)
    assert [r["step"] for r in a] == [r["step"] for r in b], where
    assert a == b, where


def test_written_rows_and_derived_follow_the_schema(tmp_path, corpus):
    """The metrics.jsonl a real run writes holds exactly METRIC_FIELDS, each of its Python type (train
    and eval rows, the diagnostics of an AttnRes model included); its derived values are in
    derived.json, and spec.json stays as it was written."""
    run = make_run(tmp_path, "schema", corpus, tokens=8 * 32 * 20)
    spec_before = run.spec_path.read_bytes()
    assert train_run(run.path) == "done"
    rows = run.read_metrics().rows
    assert {r["kind"] for r in rows} == {"train", "eval"} and run.read_metrics().problems == []
    for r in rows:
        assert list(r) == list(METRIC_FIELDS), r
        MetricRow.from_dict(r)  # raises MetricRowError naming a missing, extra or mistyped field
    last = rows[-1]
    assert last["kind"] == "eval" and len(last["depth_alpha"]) == 2 * TINY["n_blocks"] + 1
    assert run.spec_path.read_bytes() == spec_before
    derived = run.read_derived()
    assert derived.steps == 20 and derived.tokens_per_step == 8 * 32 and derived.params["attnres"] > 0


def test_a_run_directory_of_an_earlier_version_resumes_and_keeps_its_layout(tmp_path, corpus, monkeypatch):
    """Directories written before derived.json existed hold the derived values in spec.json's
    "derived" block: such a run stops (here at a step boundary after step 25) and resumes to the rows
    of an uninterrupted run, and training leaves its layout alone (no derived.json, spec.json as it
    was)."""
    from harness.runinfo import derived
    from harness.trainer import Trainer

    ref = make_run(tmp_path, "ref", corpus, variant="baseline", tokens=8 * 32 * 40)
    assert train_run(ref.path) == "done"
    old = make_run(tmp_path, "old", corpus, variant="baseline", tokens=8 * 32 * 40)
    spec = RunSpec.from_dict(old.read_spec())
    old.write_spec({**spec.to_dict(), "derived": derived(spec).to_dict()})
    written = old.spec_path.read_bytes()
    real_step = Trainer.train_step

    def stop_after_25(self):  # as SIGTERM would: the loop stops at the next step boundary
        if self.step == 25:
            self.stop.signum = signal.SIGTERM
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", stop_after_25)
    assert train_run(old.path) == "preempted"
    monkeypatch.undo()
    assert old.read_status()["step"] < 40
    assert train_run(old.path) == "done"
    assert not old.derived_path.exists() and old.spec_path.read_bytes() == written
    assert old.read_derived() == ref.read_derived()
    assert rows_without_timing(old) == rows_without_timing(ref)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_matches_single(tmp_path, corpus):
    single = make_run(tmp_path, "single", corpus, tokens=8 * 32 * 20, eval_every_tokens=8 * 32 * 5)
    assert train_run(single.path) == "done"
    ddp = make_run(tmp_path, "ddp", corpus, tokens=8 * 32 * 20, eval_every_tokens=8 * 32 * 5)
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "attnres", "train", "--run-dir", str(ddp.path)],
                              env=child_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                                            MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                              stdout=subprocess.DEVNULL)
             for r in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = single.read_metrics().rows, ddp.read_metrics().rows
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) >= 4
    assert json.loads(ddp.env_path.read_text())["world_size"] == 2
    for ra, rb in zip(a, b):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-5
        if ra["val_loss"] is not None:
            assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-5


def test_diverged(tmp_path, corpus):
    run = make_run(tmp_path, "boom", corpus, variant="baseline", lr=1e4, warmup_frac=0.0, grad_clip=1e9)
    assert train_run(run.path) == "diverged"
    status = run.read_status()
    assert status["state"] == "diverged" and "non-finite" in status["message"]


def test_learns_below_unigram_entropy(tmp_path, corpus):
    """A tiny model trained for a few hundred steps on the default corpus beats the unigram model."""
    from records.tokens import unigram_entropy

    run = make_run(tmp_path, "learn", corpus, variant="full", tokens=16 * 32 * 300, batch_size=16,
                   eval_every_tokens=16 * 32 * 100, eval_tokens=16384, ckpt_every_s=60.0)
    assert train_run(run.path) == "done"
    final = [r for r in run.read_metrics().rows if r["kind"] == "eval"][-1]
    h1 = unigram_entropy(corpus, "val")
    print(f"val loss {final['val_loss']:.3f} nats vs unigram entropy {h1:.3f} nats")
    assert final["val_loss"] < h1 - 0.3
    assert final["depth_alpha"] is not None and len(final["depth_alpha"]) == 2 * TINY["n_blocks"] + 1
    assert len(final["layer_rms"]) == 2 * TINY["n_blocks"]


def test_schedules():
    cos = Schedule(lr=1.0, total_steps=100, warmup_steps=10, kind="cosine", min_ratio=0.1, decay_steps=0)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert cos(99) == pytest.approx(0.1) and cos(54) == pytest.approx(0.55, abs=0.02)
    wsd = Schedule(lr=1.0, total_steps=100, warmup_steps=10, kind="wsd", min_ratio=0.0, decay_steps=20)
    assert wsd(50) == 1.0 and wsd(79) == 1.0 and wsd(99) == pytest.approx(0.0) and 0 < wsd(90) < 1


def test_warmup_scales_with_run():
    def spec(tokens, **kw):
        return RunSpec(run_id="x", model=ModelConfig(**TINY), train=TrainConfig(tokens=tokens, batch_size=8, **kw))

    small, big = make_schedule(spec(8 * 32 * 100)), make_schedule(spec(8 * 32 * 1000))
    assert small.total_steps == 100 and big.total_steps == 1000
    assert big.warmup_steps == 10 * small.warmup_steps
    fixed = make_schedule(spec(8 * 32 * 1000, warmup_tokens=8 * 32 * 7))
    assert fixed.warmup_steps == 7
    assert math.isclose(small(small.total_steps - 1), 3e-3 * 0.1)


def test_training_step_reads_nothing_back(tmp_path, corpus, monkeypatch):
    """A step that writes no metrics row never waits for the device: no .item(), .tolist(), .cpu(),
    bool(), float() or int() of a tensor in it (on a GPU each one stalls the host until the device
    has caught up; `make gpu-check` counts the synchronisations CUDA itself reports)."""
    from harness.train import Trainer

    run = make_run(tmp_path, "nosync", corpus, variant="full", micro_batch_size=2)
    spec = RunSpec.from_dict(run.read_spec())
    trainer = Trainer(run, spec)
    trainer.train_step()  # the first step creates the optimizer state
    trainer.step += 1
    calls: list[str] = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _n=name, _r=real, **k: (calls.append(_n), _r(t, *a, **k))[1])
    for _ in range(3):  # 4 micro-steps each
        trainer.train_step()
        trainer.step += 1
    monkeypatch.undo()
    assert calls == [], calls
