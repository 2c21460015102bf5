"""Checkpoints load without running code (weights_only), say what they hold, and stay in the runs root."""

from __future__ import annotations

import builtins
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_run, rows_without_timing

from harness import checkpoint as ckpt
from harness.train import train_run
from records.config import RunSpec
from records.rundir import RunDir


class Payload:
    """Unpickling this creates a file: what a crafted checkpoint could do (open() is a stand-in for
    any call; os.system works the same way)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, corpus):
    run = make_run(tmp_path, "planted", corpus, variant="baseline", tokens=8 * 32 * 10)
    marker = tmp_path / "PAYLOAD-RAN"
    run.ckpt_dir.mkdir(parents=True)
    torch.save({"model": Payload(marker), "step": 3}, run.last_ckpt)
    assert train_run(run.path) == "failed"
    assert not marker.exists(), "the payload ran"
    status = run.read_status()
    assert "refused" in status["message"] and str(run.last_ckpt) in status["message"], status
    assert "nothing in it was run" in status["message"] and "fix:" in status["message"]
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load(run.last_ckpt)
    assert not marker.exists()
    torch.load(run.last_ckpt, weights_only=False)  # proof that the planted file really carries a payload
    assert marker.exists()


def test_checkpoints_hold_plain_data_and_a_readable_summary(tmp_path, corpus):
    run = make_run(tmp_path, "plain", corpus, variant="full", tokens=8 * 32 * 10, eval_every_tokens=8 * 32 * 5)
    assert train_run(run.path) == "done"
    state = torch.load(run.last_ckpt, map_location="cpu", weights_only=True)  # torch's own safe loader accepts it
    assert state["step"] == 10 and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    info = json.loads(ckpt.sidecar(run.last_ckpt).read_text())
    assert info["step"] == 10 and info["tokens"] == 10 * 8 * 32 and info["run_id"] == "plain"
    assert info["format"] == ckpt.FORMAT and info["bytes"] == run.last_ckpt.stat().st_size
    rng = np.random.RandomState(5).get_state()  # the numpy RNG state survives the conversion exactly
    back = ckpt.numpy_rng_from_plain(ckpt.numpy_rng_to_plain(rng))
    assert back[0] == rng[0] and np.array_equal(back[1], rng[1]) and back[2:] == rng[2:]


def test_old_checkpoint_names_the_file_and_the_fix(tmp_path, corpus, capsys):
    """A checkpoint of the previous format (numpy RNG state pickled) is refused with the two fixes;
    `python -m harness.checkpoint upgrade` converts it and the run then resumes bit-exactly."""
    ref = make_run(tmp_path, "ref", corpus, variant="baseline", tokens=8 * 32 * 20)
    assert train_run(ref.path) == "done"
    old = make_run(tmp_path, "old", corpus, variant="baseline", tokens=8 * 32 * 20)
    assert train_run(old.path) == "done"
    kept = [r for r in old.read_metrics().rows if r["step"] <= 10]
    # what the previous version wrote at step 10: the numpy state as np.random.get_state()'s tuple
    mid = make_run(tmp_path, "mid", corpus, variant="baseline", tokens=8 * 32 * 20, save_at_tokens=(8 * 32 * 10,))
    assert train_run(mid.path) == "done"
    state = torch.load(mid.kept_ckpt(8 * 32 * 10), weights_only=True)
    state["rng"]["numpy"] = np.random.get_state()
    del state["format"]
    torch.save(state, old.last_ckpt)
    old.set_status("preempted")
    old.truncate_metrics(10)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load(old.last_ckpt)
    msg = str(e.value)
    assert str(old.last_ckpt) in msg and "python -m harness.checkpoint upgrade" in msg and "delete it" in msg
    assert train_run(old.path) == "failed" and "earlier version" in old.read_status()["message"]
    assert ckpt.main(["upgrade", str(old.last_ckpt)]) == 0
    assert "upgraded" in capsys.readouterr().out
    old.set_status("preempted")
    assert [r["step"] for r in old.read_metrics().rows] == [r["step"] for r in kept]
    assert train_run(old.path) == "done"
    assert rows_without_timing(old) == rows_without_timing(ref)


def test_init_from_stays_in_the_runs_root(tmp_path, corpus):
    runs = tmp_path / "runs"
    trunk = make_run(runs, "trunk", corpus, variant="baseline", tokens=8 * 32 * 10, save_at_tokens=(8 * 32 * 5,))
    assert train_run(trunk.path) == "done"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.pt").write_bytes(trunk.kept_ckpt(8 * 32 * 5).read_bytes())
    (runs / "link").symlink_to(outside)
    for name, src, allow, want in [("ok", "trunk/ckpt/tokens_1280.pt", False, "done"),
                                   ("dotdot", "../elsewhere/x.pt", False, "failed"),
                                   ("symlink", "link/x.pt", False, "failed"),
                                   ("absolute", str(outside / "x.pt"), False, "failed"),
                                   ("allowed", "../elsewhere/x.pt", True, "done")]:
        rd = make_run(runs, name, corpus, variant="baseline", tokens=8 * 32 * 10)
        spec = RunSpec.from_dict(rd.read_spec())
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, init_from=src,
                                                                  init_from_outside_runs=allow))
        rd.write_spec(spec.to_dict())
        assert train_run(rd.path, runs_root=runs) == want, (name, rd.read_status())
        if want == "failed":
            msg = RunDir(rd.path).read_status()["message"]
            assert "outside the runs root" in msg and "init_from_outside_runs" in msg, msg
