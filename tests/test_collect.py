"""The collector (sweeps/collect/) on real run directories written through records.rundir.RunDir:
schemas, values, problems flagged, resumed and crashed attempts."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from collect_runs import (
    ENV,
    SWEEP,
    TOKENS_PER_STEP,
    by_id,
    files,
    make_run,
    metric_row,
    new_layout,
    read,
    write_rows,
)

from records import tables
from records.rundir import RunDir
from sweeps.collect import CURVES_SCHEMA, collect


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "runs", tmp_path / "results"

# --------------------------------------------------------------------------- schema and values


def _doc_columns(section: str) -> list[tuple[str, str]]:
    """(column, type) pairs of one table in docs/SCHEMAS.md, in order; axis_<name> left out."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "SCHEMAS.md").read_text()
    body = text.split(f"## results/<sweep>/{section}")[1].split("\n## ")[0]
    cols = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("column", "") or set(cells[0]) <= set("-"):
            continue
        names = [n.strip() for n in cells[0].split(",")]
        types = [t.strip().split(" ")[0] for t in cells[1].split(",")]
        types = types if len(types) == len(names) else [types[0]] * len(names)
        cols += [(n, t) for n, t in zip(names, types) if "<" not in n]
    return cols


_DOC_TYPES = {"string": pa.string(), "int64": pa.int64(), "Int64": pa.int64(), "float64": pa.float64(),
              "list<float64>": pa.list_(pa.float64()), "list<list<float64>>": pa.list_(pa.list_(pa.float64()))}


def test_written_schemas_are_the_documented_ones(roots):
    runs, results = roots
    make_run(runs, "a-base", axes={"lr": 3e-3, "tag": "x"})
    make_run(runs, "b-block", variant="block", attnres_blocks=2, axes={"lr": 1e-3, "tag": "y"})
    collect(SWEEP, runs, results)
    runs_s = pq.read_schema(results / SWEEP / "runs.parquet")
    curves_s = pq.read_schema(results / SWEEP / "curves.parquet")
    for schema, section in ((runs_s, "runs.parquet"), (curves_s, "curves.parquet")):
        documented = _doc_columns(section)
        written = [(f.name, f.type) for f in schema if not f.name.startswith("axis_")]
        assert [n for n, _ in written] == [n for n, _ in documented]
        for (name, typ), (_, doc_type) in zip(written, documented):
            assert typ.equals(_DOC_TYPES[doc_type]), (name, typ, doc_type)
    names = runs_s.names
    assert names[names.index("axes") + 1:names.index("status")] == ["axis_lr", "axis_tag"]
    assert runs_s.field("axis_lr").type == pa.float64() and runs_s.field("axis_tag").type == pa.string()
    assert pq.read_metadata(results / SWEEP / "runs.parquet").metadata.get(b"pandas") is None  # no index
    assert curves_s.equals(CURVES_SCHEMA) and tables.arrow_schema(tables.RUNS, {"lr": "float64", "tag": "string"}).equals(runs_s)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((results / SWEEP / "runs.parquet").stat().st_mode) == 0o666 & ~umask  # group can read


def test_rows_carry_the_run_and_its_curve(roots):
    runs, results = roots
    base = make_run(runs, "a-base", seed=1, axes={"lr": 3e-3})
    make_run(runs, "b-block", variant="block", n_blocks=3, attnres_blocks=3, axes={"lr": 1e-3})
    s = collect(SWEEP, runs, results)
    assert s.counts == {"done": 2} and s.problems == [] and s.n_runs == 2 and s.n_curve_rows == 8
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    spec = base.read_spec()
    evals = [r for r in base.read_metrics().rows if r["kind"] == "eval"]
    a = rows["a-base"]
    assert (a["variant"], a["size"], a["ladder"], a["seed"], a["status"]) == ("baseline", "d2", "demo", 1, "done")
    assert a["final_val_loss"] == evals[-1]["val_loss"] and a["best_val_loss"] == min(r["val_loss"] for r in evals)
    assert a["final_train_loss"] == evals[-1]["train_loss"] and a["n_evals"] == 4 and a["problems"] == ""
    assert a["n_layers"] == 4 and a["attnres_blocks"] is None and rows["b-block"]["attnres_blocks"] == 3
    assert a["params_total"] == spec["derived"]["params"]["total"] and a["params_attnres"] == 0
    assert a["tokens"] == a["target_tokens"] == spec["train"]["tokens"]
    assert a["compute_flops"] == spec["derived"]["flops_per_token"]["train"] * a["tokens"]
    assert a["compute_pfdays"] == pytest.approx(a["compute_flops"] / 8.64e19, rel=1e-12)
    assert (a["axes"], a["axis_lr"], rows["b-block"]["axis_lr"]) == ("lr", 3e-3, 1e-3)
    assert (a["torch_version"], a["git_commit"], a["device"], a["started_at"]) == ("2.13.0", "4fa132f", "cpu", 1.7e9)
    assert a["wall_s"] == pytest.approx(4.0) and a["tokens_per_s"] == pytest.approx(a["tokens"] / 4.0)

    curves = read(results / SWEEP / "curves.parquet")
    assert [(c["run_id"], c["step"]) for c in curves] == [(r, s) for r in ("a-base", "b-block") for s in (10, 20, 30, 40)]
    assert [c["val_loss"] for c in curves[:4]] == [r["val_loss"] for r in evals]
    assert curves[0]["layer_rms"] is None and curves[0]["depth_alpha"] is None
    blk = curves[-1]
    assert len(blk["layer_rms"]) == 6 and len(blk["depth_alpha"]) == 7 and blk["depth_alpha"][6] == [1 / 7] * 7
    assert blk["compute_pfdays"] == pytest.approx(blk["flops"] / 8.64e19, rel=1e-12)


def test_arm_and_variant_are_separate_columns_and_attnres_blocks_are_effective(roots):
    """Ablation arms may share a residual variant: runs.parquet and curves.parquet carry the arm (what
    the analysis compares) and the variant (what the model computes) apart; every AttnRes run has
    its effective N (attnres_blocks) and S (attnres_block_size), whichever of the two its spec set."""
    runs, results = roots
    make_run(runs, "a-base", arm="baseline")
    make_run(runs, "b-nokeynorm", variant="nokeynorm", arm="nokeynorm")  # Full-style: one block per layer
    make_run(runs, "c-block-nokeynorm", variant="nokeynorm", layers_per_block=2, arm="block_nokeynorm")
    make_run(runs, "d-block", variant="block", n_blocks=3, layers_per_block=3)  # no arm: the variant names it
    make_run(runs, "e-block", variant="block", n_blocks=5, attnres_blocks=4, arm="block")  # 10 = 3 + 3 + 3 + 1
    s = collect(SWEEP, runs, results)
    assert s.problems == []
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    got = {r: (rows[r]["arm"], rows[r]["variant"], rows[r]["attnres_blocks"], rows[r]["attnres_block_size"])
           for r in rows}
    # L = 2 x n_blocks sublayers; N = ceil(L / S), S = ceil(L / N) (the paper's block grouping)
    assert got == {"a-base": ("baseline", "baseline", None, None),
                   "b-nokeynorm": ("nokeynorm", "nokeynorm", 4, 1),
                   "c-block-nokeynorm": ("block_nokeynorm", "nokeynorm", 2, 2),
                   "d-block": ("block", "block", 2, 3),
                   "e-block": ("block", "block", 4, 3)}
    curves = read(results / SWEEP / "curves.parquet")
    assert {(c["run_id"], c["arm"], c["variant"]) for c in curves} == {(r, a, v) for r, (a, v, _, _) in got.items()}


def test_a_collected_ablation_sweep_keeps_arms_that_share_a_variant(roots):
    """The shipped ablations sweep, planned, written as launch and training write it (spec.json:
    RunSpec.to_dict(); derived.json: harness.runinfo.derived) and collected: `nokeynorm` and
    `block_nokeynorm` share the variant nokeynorm and stay two arms; Block's N and S are the sweep
    file's (S = 2 at L = 8: N = 4)."""
    from harness.runinfo import derived
    from sweeps.spec import expand, load_sweep

    runs, results = roots
    planned = [r for r in expand(load_sweep("ablations")) if r.spec.train.seed == 0]
    chosen = [r for r in planned if r.arm in ("baseline", "nokeynorm", "block_nokeynorm", "block")]
    for r in chosen:
        rd = RunDir(runs / "ablations" / r.run_id)
        rd.write_spec(r.spec.to_dict())
        rd.write_derived(derived(r.spec))
        rd.write_env(ENV)
        write_rows(rd, {**r.spec.to_dict(), "derived": derived(r.spec).to_dict()}, 0, 20)
        rd.set_status("running", step=20, attempts=1)
    s = collect("ablations", runs, results, expected_run_ids=[r.run_id for r in planned])
    rows = by_id(read(results / "ablations" / "runs.parquet"))
    assert s.counts == {"pending": len(planned) - 4, "running": 4} and s.problems == []
    got = {(rows[r.run_id]["arm"], rows[r.run_id]["variant"], rows[r.run_id]["attnres_blocks"],
            rows[r.run_id]["attnres_block_size"]) for r in chosen}
    assert got == {("baseline", "baseline", None, None), ("nokeynorm", "nokeynorm", 8, 1),
                   ("block_nokeynorm", "nokeynorm", 4, 2), ("block", "block", 4, 2)}
    arms_of_variant = {}
    for c in read(results / "ablations" / "curves.parquet"):
        arms_of_variant.setdefault(c["variant"], set()).add(c["arm"])
    assert arms_of_variant["nokeynorm"] == {"nokeynorm", "block_nokeynorm"}


def test_derived_json_and_the_older_spec_block_give_the_same_row(roots):
    """Training writes derived.json; run directories of earlier versions hold the same values in
    spec.json's "derived" block. Both collect to the same row, without problems."""
    runs, results = roots
    make_run(runs, "old", variant="block", n_blocks=3, attnres_blocks=3)
    new = make_run(runs, "new", variant="block", n_blocks=3, attnres_blocks=3)
    new_layout(new)
    assert "derived" not in new.read_spec() and new.derived_path.exists()
    s = collect(SWEEP, runs, results)
    assert s.problems == []
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert rows["new"]["params_total"] is not None and rows["new"]["flops_per_token"] is not None
    assert {k: v for k, v in rows["new"].items() if k not in ("run_id", "problems")} == \
        {k: v for k, v in rows["old"].items() if k not in ("run_id", "problems")}


# --------------------------------------------------------------------------- idempotent and incremental


def test_collecting_twice_gives_identical_bytes_and_rewrites_nothing(roots):
    runs, results = roots
    for i, tag in enumerate(("x", True, None)):  # a bool makes the tag axis a string column
        make_run(runs, f"r{i}", variant="full" if i else "baseline", seed=i, axes={"lr": 10.0 ** -i, "tag": tag})
    first = collect(SWEEP, runs, results)
    assert [r["axis_tag"] for r in read(results / SWEEP / "runs.parquet")] == ["x", "true", None]
    before = files(results)
    mtimes = {p: (results / SWEEP / p).stat().st_mtime_ns for p in before}
    second = collect(SWEEP, runs, results)
    assert (first.n_reread, second.n_reread, second.n_cached, second.written) == (3, 0, 3, [])
    assert files(results) == before
    assert {p: (results / SWEEP / p).stat().st_mtime_ns for p in before} == mtimes  # make sees no change
    (results / SWEEP / ".collect_cache.json").unlink()
    third = collect(SWEEP, runs, results)
    assert third.n_reread == 3 and files(results) == before


def test_only_changed_runs_are_reread_and_the_result_equals_a_fresh_collection(roots):
    runs, results = roots
    rds = [make_run(runs, f"r{i}", state="running", n_evals=6, evals_done=3) for i in range(3)]
    collect(SWEEP, runs, results)
    write_rows(rds[1], rds[1].read_spec(), 30, 40)
    s = collect(SWEEP, runs, results)
    assert (s.n_reread, s.n_cached) == (1, 2) and s.written == ["curves.parquet", "runs.parquet"]
    assert by_id(read(results / SWEEP / "runs.parquet"))["r1"]["n_evals"] == 4
    incremental = files(results)
    (results / SWEEP / ".collect_cache.json").unlink()
    assert collect(SWEEP, runs, results).n_reread == 3 and files(results) == incremental
    (results / SWEEP / "curves.parquet").unlink()  # the cache no longer describes it: read everything
    assert collect(SWEEP, runs, results).n_reread == 3 and files(results) == incremental


# --------------------------------------------------------------------------- damaged, partial, resumed runs


def test_truncated_last_line_is_reported_and_complete_rows_kept(roots):
    runs, results = roots
    rd = make_run(runs, "cut", state="running", n_evals=4, evals_done=2)
    with open(rd.metrics_path, "a") as f:
        f.write('{"kind":"eval","step":30,"tokens":30720,"val_lo')  # killed mid-write
    bad = make_run(runs, "corrupt", n_evals=2)
    text = bad.metrics_path.read_text().splitlines(keepends=True)
    bad.metrics_path.write_text("".join(text[:2] + ["not json\n"] + text[2:]))
    s = collect(SWEEP, runs, results)
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert rows["cut"]["status"] == "running" and rows["cut"]["n_evals"] == 2
    assert re.fullmatch(r"metrics\.jsonl:\d+: truncated last line", rows["cut"]["problems"])
    assert rows["corrupt"]["n_evals"] == 2 and rows["corrupt"]["problems"] == "metrics.jsonl:3: corrupt line"
    assert [p for p in s.problems if p[0] == "cut"] == [("cut", rows["cut"]["problems"])]
    assert [c["step"] for c in read(results / SWEEP / "curves.parquet") if c["run_id"] == "cut"] == [10, 20]


def test_done_run_without_metrics_or_final_eval_is_flagged(roots):
    runs, results = roots
    make_run(runs, "no-metrics").metrics_path.unlink()
    make_run(runs, "short", n_evals=4, evals_done=3)  # says done, but the last evaluation is missing
    bad = make_run(runs, "bad-values", variant="full", n_evals=2)
    with open(bad.metrics_path, "a") as f:  # a writer that broke the schema (RunDir.append_metrics refuses it)
        f.write(json.dumps({**metric_row(bad.read_spec(), "eval", 30), "val_loss": "n/a", "depth_alpha": [1.0]}) + "\n")
    s = collect(SWEEP, runs, results)
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert s.counts == {"done": 3}
    assert rows["no-metrics"]["problems"] == "no metrics.jsonl; status is done but there are no evaluation rows"
    assert rows["no-metrics"]["final_val_loss"] is None and rows["no-metrics"]["tokens"] == 0
    assert rows["short"]["problems"] == "status is done but the last evaluation is at step 30 of 40"
    assert "ill-typed val_loss" in rows["bad-values"]["problems"]
    assert "ill-typed depth_alpha" in rows["bad-values"]["problems"]
    last = [c for c in read(results / SWEEP / "curves.parquet") if c["run_id"] == "bad-values"][-1]
    assert last["step"] == 30 and last["val_loss"] is None and last["depth_alpha"] is None


def test_corrupt_spec_or_status_is_flagged_and_the_run_kept(roots):
    runs, results = roots
    make_run(runs, "bad-spec").spec_path.write_text('{"run_id": "bad-sp')
    make_run(runs, "bad-status").status_path.write_text("{")
    partial = make_run(runs, "partial-spec")
    spec = partial.read_spec()
    del spec["derived"]["flops_per_token"]
    partial.write_spec(spec)
    unparsed = make_run(runs, "unparsed-spec", variant="block", attnres_blocks=2)
    spec = unparsed.read_spec()
    spec["model"]["d_model"] = "wide"  # valid JSON, not a valid ModelConfig
    unparsed.write_spec(spec)
    s = collect(SWEEP, runs, results)
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert set(rows) == {"bad-spec", "bad-status", "partial-spec", "unparsed-spec"}
    assert rows["bad-spec"]["problems"] == "spec.json is corrupt" and rows["bad-spec"]["variant"] is None
    assert rows["bad-spec"]["n_evals"] == 4  # its curve is still collected
    assert rows["bad-status"]["status"] == "failed" and rows["bad-status"]["problems"] == "status.json is corrupt"
    assert re.fullmatch(r'.*/partial-spec/spec\.json \("derived"\): expected the keys .*; fix: .*', rows["partial-spec"]["problems"])
    assert rows["partial-spec"]["compute_flops"] is None and rows["partial-spec"]["final_val_loss"] is not None
    # a spec that does not parse as a RunSpec is a problem of the run, read no further, never a crash
    bad = rows["unparsed-spec"]
    assert bad["problems"].startswith("spec.json does not parse as a RunSpec (d_model: expected a whole number, "
                                      "got the string 'wide'"), bad["problems"]
    assert (bad["arm"], bad["variant"], bad["d_model"], bad["attnres_blocks"]) == (None, None, None, None)
    assert bad["n_evals"] == 4 and bad["params_total"] is not None  # metrics and "derived" are still read
    assert len(s.problems) == 4


def test_resumed_run_appears_once_with_each_evaluation_from_the_latest_attempt(roots):
    runs, results = roots
    # attempt 0 reaches step 40, is killed; attempt 1 resumes from the checkpoint at step 20 without
    # truncating metrics (re-writing 25..60); a twin run resumed the clean way (truncate_metrics)
    raw, clean = make_run(runs, "raw", state="running", n_evals=6, evals_done=4), None
    clean = make_run(runs, "clean", state="running", n_evals=6, evals_done=4)
    spec = raw.read_spec()
    clean.truncate_metrics(20)
    for rd in (raw, clean):
        write_rows(rd, spec, 20, 60, attempt=1)
        rd.set_status("done", attempts=2)
    s = collect(SWEEP, runs, results)
    assert s.problems == [] and s.counts == {"done": 2}
    curves = read(results / SWEEP / "curves.parquet")
    for run_id in ("raw", "clean"):
        mine = [c for c in curves if c["run_id"] == run_id]
        assert [c["step"] for c in mine] == [10, 20, 30, 40, 50, 60]
        assert [c["val_loss"] for c in mine] == [metric_row(spec, "eval", st, attempt=int(st > 20))["val_loss"]
                                                 for st in (10, 20, 30, 40, 50, 60)]
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert {k: v for k, v in rows["raw"].items() if k != "run_id"} == \
        {k: v for k, v in rows["clean"].items() if k != "run_id"}
    assert rows["raw"]["n_evals"] == 6


def test_rows_of_a_crashed_attempt_that_were_never_rewritten_are_dropped(roots):
    runs, results = roots
    rd = make_run(runs, "stale", state="running", n_evals=6, evals_done=4)  # attempt 0: evals 10..40
    write_rows(rd, rd.read_spec(), 20, 30, attempt=1)  # attempt 1 resumes at step 20, dies after eval 30
    collect(SWEEP, runs, results)
    curves = [c for c in read(results / SWEEP / "curves.parquet")]
    assert [c["step"] for c in curves] == [10, 20, 30]
    assert curves[-1]["val_loss"] == metric_row(rd.read_spec(), "eval", 30, attempt=1)["val_loss"]
    assert read(results / SWEEP / "runs.parquet")[0]["tokens"] == 30 * TOKENS_PER_STEP


def test_running_and_diverged_runs_are_kept_with_their_status(roots):
    runs, results = roots
    make_run(runs, "live", state="running", n_evals=4, evals_done=2)
    dv = make_run(runs, "nan", n_evals=4, evals_done=2, state="running")
    dv.append_metrics({**metric_row(dv.read_spec(), "eval", 30), "val_loss": math.nan, "train_loss": math.inf})
    dv.set_status("diverged", "loss is nan")
    s = collect(SWEEP, runs, results)
    assert s.counts == {"diverged": 1, "running": 1} and s.problems == []
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert rows["live"]["status"] == "running" and rows["live"]["n_evals"] == 2
    assert rows["live"]["final_val_loss"] == rows["live"]["best_val_loss"] is not None
    assert rows["nan"]["final_val_loss"] is None and rows["nan"]["best_val_loss"] is not None
    assert rows["nan"]["n_evals"] == 3


# --------------------------------------------------------------------------- missing runs


def test_planned_runs_without_a_directory_appear_as_pending(roots):
    runs, results = roots
    make_run(runs, "a")
    make_run(runs, "stray")  # has a directory, not in the plan
    RunDir(runs / SWEEP / "q").set_status("queued", job_id="123")  # launched, not started: no problem
    (runs / SWEEP / "junk").mkdir()
    s = collect(SWEEP, runs, results, expected_run_ids=["a", "never", "q"])
    rows = by_id(read(results / SWEEP / "runs.parquet"))
    assert list(rows) == ["a", "never", "q", "stray"]
    assert s.missing == ["never"] and s.counts == {"done": 2, "pending": 1, "queued": 1}
    never = rows["never"]
    assert never["status"] == "pending" and never["final_val_loss"] is None and never["params_total"] is None
    assert never["problems"] == "" and rows["q"]["problems"] == ""
    assert rows["stray"]["problems"] == "not one of the sweep's planned runs"
    assert [p[0] for p in s.problems] == ["junk", "stray"] and "junk" not in rows
    assert "never" in s.format() and "junk" in s.format()
