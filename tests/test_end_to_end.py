"""The whole pipeline on a tiny sweep: plan -> launch (local executor, real training processes) ->
collect (real parquet) -> fit (the shift headline) -> report, through the same functions the CLI
calls, with every layer's output checked against the next layer's expectations."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

SWEEP = """
[sweep]
ladder = "tiny"
sizes = ["d2", "d3", "d4"]
seeds = [0, 1]
[budget]
mode = "tokens"
tokens = 8192
[variants]
baseline = {{}}
block = {{ variant = "block", layers_per_block = 2 }}
[model]
seq_len = 32
[train]
batch_size = 8
eval_tokens = 2048
eval_every_tokens = 4096
ckpt_every_s = 60.0
[data]
path = "{data}"
"""


@pytest.mark.timeout(600)
def test_train_collect_fit_report(tmp_path, corpus):
    from analysis.pipeline import AnalysisOptions
    from analysis.regenerate import regenerate
    from records.rundir import RunDir
    from sweeps.collect import collect
    from sweeps.launch import launch
    from sweeps.spec import expand, load_sweep

    path = tmp_path / "e2e.toml"
    path.write_text(SWEEP.format(data=corpus))
    sweep = load_sweep(path)
    planned = expand(sweep)
    assert len(planned) == 2 * 3 * 2
    runs_root, results = tmp_path / "runs", tmp_path / "results"
    result = launch(sweep, executor="local", workers=2, runs_root=runs_root, log=lambda m: None)
    assert set(result.final_states.values()) == {"done"}, result.final_states

    # each run directory holds what the collector reads; every metrics row carries the documented fields
    for r in planned:
        rd = RunDir(runs_root / "e2e" / r.run_id)
        assert rd.state == "done"
        rows = rd.read_metrics().rows
        assert rows and rows[-1]["kind"] == "eval" and rows[-1]["tokens"] == r.spec.train.tokens

    summary = collect("e2e", runs_root=runs_root, results_root=results, expected_run_ids=[r.run_id for r in planned])
    assert summary.n_runs == 12 and not summary.problems, summary.problems
    table = pq.read_table(results / "e2e" / "runs.parquet").to_pandas()
    assert set(table["status"]) == {"done"} and len(table) == 12
    arm_col = "arm" if "arm" in table.columns else "variant"  # the collected arm name
    assert sorted(set(table[arm_col])) == ["baseline", "block"]

    r = regenerate(results / "e2e", AnalysisOptions(n_boot=0))
    a = r.analysis
    assert a.headline_form == "shift" and set(a.headline) == {"block"}
    h = a.headline["block"]
    assert h.design == "3 sizes x 2 seeds" and h.value.low < h.value.estimate < h.value.high
    assert a.shift.arms["block"].n_units == 6  # every (size, seed) paired
    doc = json.loads((results / "e2e" / "fits.json").read_text())
    assert doc["headline"]["block"]["estimate"] == pytest.approx(h.value.estimate, rel=1e-8)
    report = (results / "e2e" / "report.md").read_text()
    assert "Answer: Block AttnRes buys" in report and "3 sizes x 2 seeds" in report
