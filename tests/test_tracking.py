"""Optional live tracking: the [tracking] table, and the scalars TensorBoard and W&B really wrote (read
back from the event files and the wandb offline run file) against metrics.jsonl."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from pathlib import Path

import pytest

from harness.tracking import SCALARS, scalars
from harness.train import train_run
from records.config import DataConfig, ModelConfig, RunSpec, TrackingConfig, TrainConfig
from records.rundir import RunDir
from sweeps.spec import SweepError, expand, load_sweep

HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("tensorboard", "wandb"))


def _sweep(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text((Path(__file__).parent.parent / "sweeps" / "demo.toml").read_text() + "\n" + extra)
    return path


def test_tracking_table_is_validated_and_keeps_run_ids(tmp_path):
    plain = expand(load_sweep(_sweep(tmp_path, "")))
    tracked = expand(load_sweep(_sweep(tmp_path, '[tracking]\nbackends = ["tensorboard", "wandb"]\n'
                                                 'project = "attnres-demo"\nwandb_mode = "online"\n')))
    assert [r.run_id for r in plain] == [r.run_id for r in tracked]  # execution only: not in the hash
    assert plain[0].spec.tracking == TrackingConfig()
    assert tracked[0].spec.tracking == TrackingConfig(("tensorboard", "wandb"), "attnres-demo", None, "online")
    assert RunSpec.from_dict(json.loads(json.dumps(tracked[0].spec.to_dict()))) == tracked[0].spec
    for extra, match in [('backends = "wandb"', r"\[tracking\]\.backends: expected a list"),
                         ('backends = ["mlflow"]', r"\[tracking\]\.backends: unknown tracker 'mlflow'"),
                         ('backends = ["wandb", "wandb"]', "listed twice"),
                         ('backends = ["tensorboard"]\nproject = "x"', r"\[tracking\]\.project: set for wandb"),
                         ('backends = ["wandb"]\nentity = "a b"', r"\[tracking\]\.entity: 'a b' is not a plain name"),
                         ('backends = ["wandb"]\nwandb_mode = "live"', r"\[tracking\]\.wandb_mode: 'live' is not one of"),
                         ('backend = ["wandb"]', r"did you mean 'backends'")]:
        with pytest.raises(SweepError, match=match):
            load_sweep(_sweep(tmp_path, f"[tracking]\n{extra}\n"))


def _tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _wandb_records(path: Path) -> list:
    """Records of a wandb transaction log (.wandb): a LevelDB-style log of 32 KiB blocks, each record a
    7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) and a protobuf Record."""
    from wandb.proto import wandb_internal_pb2

    blob = path.read_bytes()
    assert blob[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(blob):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", blob[pos:pos + 7])
        buf += blob[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


@pytest.mark.skipif(not HAVE_EXTRA, reason="the tracking extra is not installed (pip install -e '.[tracking]')")
def test_trackers_log_the_metric_rows(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = RunSpec(run_id="trk-block-d2-s0", sweep="trk", arm="block",
                   model=ModelConfig(vocab_size=256, n_blocks=2, d_model=32, n_heads=4, d_ff=64, seq_len=32,
                                     variant="block", attnres_blocks=2),
                   train=TrainConfig(tokens=8 * 32 * 30, batch_size=8, eval_tokens=2048, log_every_steps=5,
                                     eval_every_tokens=8 * 32 * 10),
                   data=DataConfig(str(corpus)), tracking=TrackingConfig(("tensorboard", "wandb")))
    run = RunDir(tmp_path / spec.run_id)
    run.write_spec(spec.to_dict())
    assert train_run(run.path) == "done"
    rows = run.read_metrics().rows
    expected = {}
    for row in rows:
        for tag, v in scalars(row).items():
            expected.setdefault(tag, []).append((row["step"], v))
    assert set(SCALARS) <= set(expected) and any(t.startswith("layer_rms/") for t in expected)
    assert len(expected["val_loss"]) == 3 and len(expected["train_loss"]) == len(rows) == 6

    tb = _tensorboard_scalars(run.path / "tracking" / "tensorboard")
    assert set(tb) == set(expected)
    for tag, points in expected.items():  # event files hold float32
        assert [s for s, _ in tb[tag]] == [s for s, _ in points], tag
        assert all(math.isclose(a, b, rel_tol=1e-6) for (_, a), (_, b) in zip(tb[tag], points)), tag

    files = list((run.path / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    records = _wandb_records(files[0])
    meta = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert meta.run_id == spec.run_id and meta.display_name == spec.run_id and meta.run_group == "trk"
    config = {i.key: json.loads(i.value_json) for i in meta.config.update}
    assert config["model"]["variant"] == "block" and config["run_id"] == spec.run_id
    logged: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for tag, v in items.items():
                if not tag.startswith("_"):
                    logged.setdefault(tag, []).append((items["_step"], v))
    assert logged == expected  # JSON doubles: exact
