"""Sweep files, their expansion into runs, plan, and launching with the debug and local executors.

The Slurm executor is tested against a real cluster in tests/test_slurm.py (marker ``slurm``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.accounting import flops_per_token, param_counts
from harness.ladder import LADDERS, model_config
from records.rundir import TIMING_FIELDS, RunDir
from sweeps import cli as sweeps_cli
from sweeps.launch import LaunchError, decide, launch
from sweeps.plan import format_plan, make_plan
from sweeps.spec import SweepError, available_sweeps, branch_point, expand, load_sweep
from sweeps.status import sweep_status

ID_RE = re.compile(r"^[A-Za-z0-9._-]+-s\d+-[0-9a-f]{8}$")


def micro_toml(data: Path | str, variants: str = 'baseline = {}\nblock = { variant = "block", layers_per_block = 2 }',
               budget: str = 'mode = "tokens"\ntokens = 8192', extra: str = "", sizes: str = '["d2"]') -> str:
    """A sweep of very small runs (d2 at context 32: ~2 s each on one core)."""
    return f"""
[sweep]
ladder = "tiny"
sizes = {sizes}
seeds = [0]
[budget]
{budget}
[variants]
{variants}
[model]
seq_len = 32
[train]
batch_size = 8
eval_tokens = 2048
eval_every_tokens = 2048
ckpt_every_s = 1.0
[data]
path = "{data}"
{extra}
"""


def write_sweep(tmp_path: Path, text: str, name: str = "micro") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]


# ----------------------------------------------------------------------------- parsing and expansion


def test_shipped_sweeps_load_and_expand():
    assert {"demo", "paper", "isoflop", "ablations"} <= set(available_sweeps())
    for name in available_sweeps():
        runs = expand(load_sweep(name))
        assert runs, name
        ids = [r.run_id for r in runs]
        assert len(set(ids)) == len(ids), name
        assert all(ID_RE.match(i) and i.startswith(f"{name}-") for i in ids), ids[:3]


@pytest.mark.parametrize("name,arms", [("demo", {"baseline", "block"}), ("demo-full", {"baseline", "block", "full"})])
def test_demo_shape(name, arms):
    """The demo's design (README "What the demo measured"): 3 sizes x 5 seeds, every arm at every
    (size, seed), so the arms are paired."""
    sweep = load_sweep(name)
    runs = expand(sweep)
    assert len(runs) == len(arms) * 3 * 5
    assert {r.arm for r in runs} == arms
    units = {(r.spec.size, r.spec.train.seed) for r in runs}
    assert len(units) == 15 and all(sum((r.spec.size, r.spec.train.seed) == u for r in runs) == len(arms) for u in units)
    for r in runs:
        m = r.spec.model
        if r.arm == "block":  # a real block variant at every size: 1 < N < L
            assert 1 < m.n_attnres_blocks < m.n_layers
        assert r.spec.train.tokens % (r.spec.train.batch_size * m.seq_len) == 0  # whole steps
        assert 16 <= r.spec.train.batch_size <= 32 and r.spec.train.lr == 3e-3


def test_ids_stable_across_processes():
    """The id hash is of canonical JSON, not Python's randomised hash(): same ids in a fresh process."""
    ids = [r.run_id for r in expand(load_sweep("demo"))]
    code = "from sweeps.spec import expand, load_sweep; print(' '.join(r.run_id for r in expand(load_sweep('demo'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == ids


def test_id_changes_with_config_not_with_execution(tmp_path, corpus):
    base = {r.run_id for r in expand(load_sweep(write_sweep(tmp_path, micro_toml(corpus))))}
    threads = micro_toml(corpus).replace("ckpt_every_s = 1.0", "ckpt_every_s = 7.0\nthreads = 2")
    assert {r.run_id for r in expand(load_sweep(write_sweep(tmp_path, threads)))} == base
    lr = micro_toml(corpus).replace("batch_size = 8", "batch_size = 8\nlr = 1e-3")
    changed = {r.run_id for r in expand(load_sweep(write_sweep(tmp_path, lr)))}
    assert not changed & base


def test_plan_counts():
    """plan of demo.toml: variants x sizes x seeds runs, with harness.accounting's params and FLOPs."""
    sweep = load_sweep("demo")
    plan = make_plan(sweep)
    assert plan.totals["runs"] == len(sweep.arms) * len(sweep.sizes) * len(sweep.seeds) == len(plan.rows)
    for row in plan.rows:
        arm = next(a for a in sweep.arms if a.name == row["arm"])
        overrides = {k: v for k, v in arm.model.items()}
        cfg = model_config("tiny", row["size"], vocab_size=256, seq_len=128, **overrides)
        assert row["params_total"] == param_counts(cfg).total
        assert row["params_non_embedding"] == param_counts(cfg).non_embedding
        assert row["flops_per_token"] == flops_per_token(cfg).train
        assert row["compute_flops"] == pytest.approx(row["flops_per_token"] * row["tokens"])
        assert row["compute_pfdays"] == pytest.approx(row["compute_flops"] / 8.64e19)
        base = param_counts(model_config("tiny", row["size"], vocab_size=256)).total
        assert abs(row["tokens"] - 20 * base) <= row["batch_size"] * 128  # 20 tokens/param, whole steps
    assert plan.totals["compute_flops"] == pytest.approx(sum(r["compute_flops"] for r in plan.rows))
    text = format_plan(plan)
    assert all(r["run_id"] in text for r in plan.rows) and "PF-days" in text and f"total: {len(plan.rows)} runs" in text


def test_plan_cli_json(capsys):
    assert sweeps_cli.main(["plan", "paper", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["runs"] == 15 and doc["launch"]["gpus_per_node"] > 0
    by_size = {r["size"]: r for r in doc["runs"] if r["variant"] == "baseline"}
    for size, shape in LADDERS["paper"].items():  # Table 2's budget, lr and batch
        assert by_size[size]["lr"] == shape.reference["lr"]
        assert by_size[size]["batch_size"] == shape.reference["batch_size"]
        assert abs(by_size[size]["tokens"] - shape.reference["tokens"]) <= shape.reference["batch_size"] * 8192


def test_lr_axis_per_variant(tmp_path, corpus):
    variants = ('baseline = { axes = { lr = [1e-3, 3e-3, 1e-2] } }\n'
                'full = { axes = { lr = [3e-3, 1e-2] } }')
    runs = expand(load_sweep(write_sweep(tmp_path, micro_toml(corpus, variants=variants, sizes='["d2", "d3"]'))))
    assert len(runs) == (3 + 2) * 2
    assert all(r.spec.axes == {"lr": r.spec.train.lr} for r in runs)
    assert {r.spec.train.lr for r in runs if r.arm == "full"} == {3e-3, 1e-2}
    assert any("-lr0.001-" in r.run_id for r in runs)


def test_global_axis_and_arm_name(tmp_path, corpus):
    text = micro_toml(corpus, variants='block4 = { variant = "block", attnres_blocks = 2 }') + \
        "[axes]\nwarmup_frac = [0.0, 0.1]\n"
    runs = expand(load_sweep(write_sweep(tmp_path, text)))
    assert len(runs) == 2
    assert all(r.spec.arm == "block4" and set(r.spec.axes) == {"warmup_frac"} for r in runs)
    ablations = expand(load_sweep("ablations"))  # arms sharing a variant: every run records its arm
    assert {r.spec.arm for r in ablations} == {a.name for a in load_sweep("ablations").arms}
    assert all(r.spec.arm == r.spec.model.variant for r in expand(load_sweep("demo")))


def test_isoflop_expansion():
    sweep = load_sweep("isoflop")
    runs = expand(sweep)
    for c in sweep.budget.compute:
        group = [r for r in runs if r.spec.axes.get("compute") == c]
        assert len({r.spec.size for r in group}) >= 3, c
        for r in group:  # each run spends its budget, up to rounding to whole steps
            step = r.spec.train.batch_size * r.spec.model.seq_len
            assert abs(r.compute - c) <= r.flops_per_token * step / 2 + 1


def test_wsd_expansion_and_schedule(tmp_path, corpus):
    from harness.train import make_schedule

    budget = 'mode = "wsd"\ntokens = [4096, 8192, 16384]\ncooldown_frac = 0.25'
    runs = expand(load_sweep(write_sweep(tmp_path, micro_toml(corpus, budget=budget))))
    assert len(runs) == 2 * 3  # 2 arms x (1 trunk + 2 branches)
    for trunk in [r for r in runs if r.depends_on is None]:
        branches = [r for r in runs if r.depends_on == trunk.run_id]
        assert len(branches) == 2 and trunk.spec.train.tokens == 16384
        points = sorted(branch_point(b.spec) for b in branches)
        assert list(trunk.spec.train.save_at_tokens) == points
        ts = make_schedule(trunk.spec)
        for b in branches:
            assert b.spec.train.init_from == f"{trunk.run_id}/ckpt/tokens_{branch_point(b.spec)}.pt"
            bs = make_schedule(b.spec)
            start = branch_point(b.spec) // (b.spec.train.batch_size * 32)
            assert bs.total_steps - bs.decay_steps == start  # the cool-down starts at the branch point
            assert [bs(s) for s in range(start)] == [ts(s) for s in range(start)]  # same schedule up to it
            assert bs(bs.total_steps - 1) == pytest.approx(b.spec.train.lr * b.spec.train.min_lr_ratio)
            assert b.trained_tokens == b.spec.train.tokens - branch_point(b.spec)


BAD = [  # (toml edit, key that must be named)
    (lambda t: t + "\n[bogus]\nx = 1\n", ".bogus"),
    (lambda t: t.replace("batch_size = 8", "batch_size = 8\nlr = -1.0"), "[train].lr"),
    (lambda t: t.replace('sizes = ["d2"]', 'sizes = ["d99"]'), "[sweep].sizes"),
    (lambda t: t.replace('ladder = "tiny"', 'ladder = "huge"'), "[sweep].ladder"),
    (lambda t: t.replace('block = { variant = "block", layers_per_block = 2 }', 'block = {}'),
     "[variants.block].attnres_blocks"),
    (lambda t: t.replace("layers_per_block = 2", "attnres_blocks = 3"), "[variants.block].attnres_blocks"),
    (lambda t: t.replace('block = { variant = "block", layers_per_block = 2 }', 'foo = {}'), "[variants.foo].variant"),
    (lambda t: t.replace('mode = "tokens"', 'mode = "ratio"'), "[budget] (mode 'ratio').tokens"),
    (lambda t: t.replace('mode = "tokens"', 'mode = "lots"'), "[budget].mode"),
    (lambda t: t.replace("batch_size = 8", "batch_size = 8\ntokens = 5"), "[train].tokens"),
    (lambda t: t.replace("batch_size = 8", "batch_size = 8\nlearning_rate = 1e-3"), "[train].learning_rate"),
    (lambda t: t + "\n[axes]\nlr = []\n", "[axes].lr"),
    (lambda t: t + "\n[launch]\ngpus = 1\n", "[launch].gpus"),
    (lambda t: t.replace("seeds = [0]", "seeds = [0, 0]"), "[sweep].seeds"),
    (lambda t: t.replace("seq_len = 32", "seq_len = 0"), "[model].seq_len"),
    (lambda t: t.replace('path = "', 'corpus = "wiki"\npath = "'), "[data].path"),
    (lambda t: t.replace("[train]", "[train\n"), "not valid TOML"),
    (lambda t: t.replace('mode = "tokens"\ntokens = 8192', 'mode = "isoflop"\ncompute = [1e9]\n'
                         'max_tokens_per_param = 1'), "[budget].compute"),
]


@pytest.mark.parametrize("edit,key", BAD, ids=[k for _, k in BAD])
def test_bad_sweep_files(tmp_path, corpus, edit, key):
    """A bad file fails with '<file>: <key>: <problem>; fix: <fix>'."""
    path = write_sweep(tmp_path, edit(micro_toml(corpus)), name="bad")
    with pytest.raises(SweepError) as e:
        expand(load_sweep(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") or msg.startswith("bad.toml") or str(path) in msg, msg
    assert key in msg, msg
    assert "fix: " in msg, msg


def test_sweep_names_and_paths(tmp_path, corpus):
    assert load_sweep("demo").file == "sweeps/demo.toml"
    with pytest.raises(SweepError, match="demo"):  # lists the available sweeps
        load_sweep("no-such-sweep")
    assert load_sweep(write_sweep(tmp_path, micro_toml(corpus))).name == "micro"


def test_plan_without_prepared_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNRES_DATA_DIR", str(tmp_path / "nothing-here"))
    sweep = load_sweep("demo")
    assert sweep.data.vocab_size == 256 and "assumed" in sweep.data.vocab_source
    assert any("attnres data prepare" in n for n in make_plan(sweep).notes)
    with pytest.raises(LaunchError, match="attnres data prepare"):
        launch(sweep, executor="debug", runs_root=tmp_path / "runs")


# ----------------------------------------------------------------------------- launching


def test_debug_launch_relaunch_and_status(tmp_path, corpus, capsys):
    """debug executor: every run reaches done; re-launching submits nothing; status agrees."""
    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus)))
    runs_root = tmp_path / "runs"
    first = launch(sweep, executor="debug", runs_root=runs_root)
    assert len(first.submitted) == 2 and set(first.final_states.values()) == {"done"}
    for r in expand(sweep):
        rd = RunDir(runs_root / "micro" / r.run_id)
        assert rd.read_status()["state"] == "done"
        assert rd.read_derived().params["total"] == r.params.total and "derived" not in rd.read_spec()
    again = launch(sweep, executor="debug", runs_root=runs_root)
    assert again.submitted == [] and {d.reason for d in again.decisions} == {"done"}
    rows, extra = sweep_status(sweep, runs_root)
    assert [r.state for r in rows] == ["done", "done"] and extra == 0
    assert all(r.val_loss is not None and r.fraction == 1.0 for r in rows)
    capsys.readouterr()  # drop the training progress lines
    assert sweeps_cli.main(["status", str(sweep.path), "--runs-root", str(runs_root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"done": 2}


def test_never_duplicates_in_flight(tmp_path, corpus):
    """A run whose lock is held (here: by this process) is skipped whatever status.json says; a stale
    one (status "running", its process gone, no lock) is resubmitted and resumes."""
    from harness.runlock import RunLock

    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus)))
    sweep_dir = tmp_path / "runs" / "micro"
    live, stale = expand(sweep)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for r in (live, stale):  # both name a dead process: only the lock tells them apart
        RunDir(sweep_dir / r.run_id).set_status("running", pid=dead.pid, host=os.uname().nodename)
    with RunLock(sweep_dir / live.run_id) as lock:
        assert lock.acquire()
        decisions = {d.run.run_id: d for d in decide([live, stale], tmp_path / "runs")}
    assert {k: d.action for k, d in decisions.items()} == {live.run_id: "skip", stale.run_id: "submit"}
    assert f"locked by pid {os.getpid()}" in decisions[live.run_id].reason


def test_wsd_branch_equals_fresh_run(tmp_path, corpus):
    """A WSD branch (cool-down from the trunk's kept checkpoint) ends exactly where a run trained
    from scratch with the same WSD schedule ends."""
    budget = 'mode = "wsd"\ntokens = [4096, 8192]\ncooldown_frac = 0.25'
    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus, variants="baseline = {}", budget=budget)))
    result = launch(sweep, executor="debug", runs_root=tmp_path / "runs")
    assert set(result.final_states.values()) == {"done"}
    branch = next(r for r in expand(sweep) if r.depends_on)
    branch_rows = RunDir(tmp_path / "runs" / "micro" / branch.run_id).read_metrics().rows

    import dataclasses

    from harness.train import train_run

    fresh = dataclasses.replace(branch.spec, train=dataclasses.replace(branch.spec.train, init_from=None))
    rd = RunDir(tmp_path / "fresh" / "run")
    rd.write_spec(fresh.to_dict())
    assert train_run(rd.path) == "done"
    assert comparable(rd.read_metrics().rows) == comparable(branch_rows)


def test_local_executor_two_workers(tmp_path, corpus):
    """local: separate one-thread processes (never this one), at most --workers at a time."""
    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus)))
    lines: list[str] = []
    result = launch(sweep, executor="local", workers=2, runs_root=tmp_path / "runs", log=lines.append,
                    progress_every_s=1.0)
    assert set(result.final_states.values()) == {"done"}, lines
    assert any(line.startswith("[launch] 2/2") for line in lines)
    for r in expand(sweep):
        status = RunDir(tmp_path / "runs" / "micro" / r.run_id).read_status()
        assert status["executor"] == "local" and status["pid"] != os.getpid() and status["state"] == "done"


@pytest.mark.slow
@pytest.mark.timeout(40 * 60)
def test_demo_local_two_workers(tmp_path, corpus):
    """demo.toml end to end with the local executor and 2 workers (the README's laptop path)."""
    sweep = load_sweep("demo")
    assert sweep.data.path and Path(sweep.data.path).resolve() == Path(corpus).resolve()
    result = launch(sweep, executor="local", workers=2, runs_root=tmp_path / "runs", progress_every_s=60.0)
    assert len(result.submitted) == len(expand(sweep)) == 30
    assert set(result.final_states.values()) == {"done"}, result.final_states
    rows, _ = sweep_status(sweep, tmp_path / "runs")
    assert all(r.state == "done" and r.val_loss is not None for r in rows)


def test_train_threads_are_honoured_locally_and_checked_on_slurm(tmp_path, corpus):
    """[train] threads reaches the local runs' specs (it used to be replaced by 1); on Slurm a task's
    threads are its cpus_per_task, so a contradicting threads is refused, naming both keys."""
    from sweeps.launch import run_threads, write_spec

    two = load_sweep(write_sweep(tmp_path, micro_toml(corpus).replace("ckpt_every_s = 1.0",
                                                                     "ckpt_every_s = 1.0\nthreads = 2")))
    assert run_threads(two, "local") is None
    run = expand(two)[0]
    write_spec(run, tmp_path / "r", run_threads(two, "local"))
    assert RunDir(tmp_path / "r").read_spec()["train"]["threads"] == 2
    with pytest.raises(LaunchError, match=r"threads = \[2\] but \[launch\] cpus_per_task = 1"):
        run_threads(two, "slurm")
    plain = load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra="[launch]\ncpus_per_task = 4"), name="m4"))
    assert run_threads(plain, "slurm") == 4
    write_spec(expand(plain)[0], tmp_path / "s", run_threads(plain, "slurm"))
    assert RunDir(tmp_path / "s").read_spec()["train"]["threads"] == 4
