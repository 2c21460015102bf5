"""The run directory's typed records (records/rundir.py, records/metrics.py): the metric row checked
when written, derived.json with its fallback for older directories, and kept-checkpoint names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from records.choices import MetricKind
from records.rundir import METRIC_FIELDS, Derived, KeptCheckpoint, MetricRow, MetricRowError, RunDir

ROOT = Path(__file__).resolve().parents[1]


def good_row(**changes) -> dict:
    row = {"kind": "eval", "step": 20, "tokens": 5120, "flops": 1.5e9, "train_loss": 3.2, "val_loss": 3.3,
           "lr": 3e-3, "grad_norm": 0.7, "tokens_per_s": 1.2e4, "elapsed_s": 4.5, "mfu": None,
           "layer_rms": [1.0, 1.5], "depth_alpha": [[1.0], [0.5, 0.5], [0.2, 0.3, 0.5]]}
    return {**row, **changes}


def test_a_whole_row_is_written_and_reads_back_equal(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.append_metrics(MetricRow(**good_row()))
    rd.append_metrics(good_row(kind="train", val_loss=None, layer_rms=None, depth_alpha=None, lr=1))  # int lr: a float
    rows = rd.read_metrics().rows
    assert list(rows[0]) == list(METRIC_FIELDS)
    assert MetricRow.from_dict(rows[0]) == MetricRow(**good_row())
    assert MetricRow.from_dict(rows[1]).kind is MetricKind.TRAIN


@pytest.mark.parametrize("bad,says", [
    ({k: v for k, v in good_row().items() if k != "mfu"}, "missing mfu"),
    (good_row(note="x"), "unknown note"),
    (good_row(val_loss="n/a"), "val_loss = 'n/a' (str) is not float | None"),
    (good_row(step=2.0), "step = 2.0 (float) is not int"),
    (good_row(step=True), "step = True (bool) is not int"),
    (good_row(kind="test"), "kind = 'test' (str) is not MetricKind"),
    (good_row(layer_rms=[1.0, None]), "layer_rms"),
    (good_row(depth_alpha=[1.0, 0.5]), "depth_alpha"),
    (good_row(tokens_per_s=None), "tokens_per_s = None"),
])
def test_a_row_with_a_missing_extra_or_mistyped_field_is_refused_and_nothing_written(tmp_path, bad, says):
    rd = RunDir(tmp_path / "r")
    rd.append_metrics(good_row())
    before = rd.metrics_path.read_bytes()
    with pytest.raises(MetricRowError, match="^metrics row: .*" + says.replace("(", r"\(").replace(")", r"\)")
                       .replace("|", r"\|")):
        rd.append_metrics(bad)
    assert rd.metrics_path.read_bytes() == before


def test_metric_fields_are_python_types_and_the_docs_say_so():
    """METRIC_FIELDS holds real types; docs/SCHEMAS.md's metrics line and the README table agree."""
    assert METRIC_FIELDS["step"][0] is int and METRIC_FIELDS["mfu"][0] == (float | None)
    assert METRIC_FIELDS["depth_alpha"][0] == (list[list[float]] | None) and METRIC_FIELDS["kind"][0] is MetricKind
    schemas = (ROOT / "docs" / "SCHEMAS.md").read_text()
    line = next(ln for ln in schemas.splitlines() if ln.startswith("## metrics.jsonl"))
    assert "METRIC_FIELDS" in line and '"kind": "train" | "eval"' in line and '"mfu": float | null' in line
    assert [k.value for k in MetricKind] == ["train", "eval"]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("`metrics.jsonl` rows"):].split("\n\n")[1]
    documented = {name.strip() for ln in table.splitlines()[2:] for name in ln.split("|")[1].split(",")}
    assert documented == set(METRIC_FIELDS)


def test_derived_json_round_trips_and_older_directories_fall_back_to_spec_json(tmp_path):
    d = Derived(params={"total": 10, "embedding": 4}, flops_per_token={"forward": 2.0, "train": 6.0},
                tokens_per_step=256, steps=30)
    new = RunDir(tmp_path / "new")
    new.write_spec({"run_id": "new"})
    assert new.read_derived() is None  # training has not started
    new.write_derived(d)
    assert new.read_derived() == d and "derived" not in new.read_spec()
    old = RunDir(tmp_path / "old")  # written by an earlier version: the block inside spec.json
    old.write_spec({"run_id": "old", "derived": d.to_dict()})
    assert old.read_derived() == d and not old.derived_path.exists()
    assert RunDir(tmp_path / "nothing").read_derived() is None
    new.derived_path.write_text("{")
    with pytest.raises(ValueError, match=r"derived\.json: not JSON .*fix: delete it"):
        new.read_derived()
    new.derived_path.write_text(json.dumps({"params": {}}))
    with pytest.raises(ValueError, match=r"derived\.json: expected the keys"):
        new.read_derived()


@pytest.mark.parametrize("tokens", [0, 3072, 10**12])
def test_kept_checkpoint_names_round_trip(tmp_path, tokens):
    rd = RunDir(tmp_path / "trunk")
    kept = KeptCheckpoint(tokens)
    assert KeptCheckpoint.from_path(rd.kept_ckpt(tokens)) == kept
    assert KeptCheckpoint.from_path(kept.init_from("trunk-id")) == kept
    assert kept.init_from("trunk-id") == f"trunk-id/ckpt/tokens_{tokens}.pt"


@pytest.mark.parametrize("path", ["trunk/ckpt/last.pt", "tokens_x.pt", "tokens_-5.pt", "tokens_12.pt.json",
                                  "tokens_012.pt", "tokens_.pt", "xtokens_12.pt", "tokens_١٢.pt"])
def test_other_files_are_not_kept_checkpoints(path):
    assert KeptCheckpoint.from_path(path) is None
