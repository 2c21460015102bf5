"""`attnres plan`: one source of device throughput, memory and time warnings, repeated data."""

from __future__ import annotations

import pytest
from test_sweeps import micro_toml, write_sweep

from harness import devices
from sweeps.plan import format_plan, make_plan
from sweeps.spec import SweepError, available_sweeps, load_sweep

GPU = """
[launch]
gpus_per_node = 1
tasks_per_node = 1
device = "A100"
gpu_mem_gb = {mem}
time_min = {time_min}
"""


def _rate(row) -> float:
    return row["flops_per_token"] * row["trained_tokens"] / (row["device_hours"] * 3600)


def test_one_throughput_per_device_kind_in_every_sweep():
    """Every shipped sweep on CPU cores implies the same FLOP rate, so one run gets one estimate
    whichever sweep it is in (issue 12: the same run got 1.7 min in one sweep and 4.9 in another)."""
    rates = {}
    for name in available_sweeps():
        plan = make_plan(load_sweep(name), sinfo=False)
        rates[name] = {round(_rate(r) / 1e6) for r in plan.rows}
    cpu = {n: r for n, r in rates.items() if n != "paper"}
    assert all(r == {round(devices.CPU_CORE.peak_flops / 1e6)} for r in cpu.values()), cpu
    gpu = devices.KINDS["H100"].peak_flops * devices.DEFAULT_MFU
    assert rates["paper"] == {round(gpu / 1e6)}
    text = format_plan(make_plan(load_sweep("paper"), sinfo=False))
    assert "40% MFU (assumed)" in text and "989 TFLOP/s" in text


def test_device_flops_is_refused_with_the_new_keys(tmp_path, corpus):
    path = write_sweep(tmp_path, micro_toml(corpus, extra="[launch]\ndevice_flops = 2.5e9\n"))
    with pytest.raises(SweepError, match=r"\[launch\].device_flops.*harness/devices.py.*fix: .*device = "):
        load_sweep(path)
    bad = write_sweep(tmp_path, micro_toml(corpus, extra='[launch]\ndevice = "H900"\n'), name="bad")
    with pytest.raises(SweepError, match=r"\[launch\].device"):
        load_sweep(bad)


def test_memory_warning_names_the_run_and_the_fix(tmp_path, corpus):
    roomy = make_plan(load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra=GPU.format(mem=80, time_min=60)))),
                      sinfo=False)
    assert not [w for w in roomy.warnings if "per GPU" in w]
    row = roomy.rows[0]
    assert row["dtype"] == "bfloat16" and row["micro_batch"] == 8 and 0 < row["memory_gb"] < 0.1
    tight = GPU.format(mem=row["memory_gb"] * 0.8, time_min=60)
    plan = make_plan(load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra=tight), name="tight")), sinfo=False)
    mem = [w for w in plan.warnings if "per GPU" in w]
    assert len(mem) == 2 and all(w.startswith("tight-") for w in mem)
    assert "micro_batch_size = 4" in mem[0] and "activation_checkpointing = true" in mem[0]
    ckpt = micro_toml(corpus, extra=tight).replace("batch_size = 8", "batch_size = 8\nactivation_checkpointing = true")
    relieved = make_plan(load_sweep(write_sweep(tmp_path, ckpt, name="ckpt")), sinfo=False)
    assert relieved.rows[0]["memory_gb"] < plan.rows[0]["memory_gb"]


def test_time_and_epoch_warnings(tmp_path, corpus):  # corpus: isoflop.toml reads the default data
    slow = micro_toml(corpus, extra=GPU.format(mem=80, time_min=1)).replace(
        'device = "A100"', 'device = "A100"\nmfu = 1e-9')
    plan = make_plan(load_sweep(write_sweep(tmp_path, slow)), sinfo=False)
    assert any("> [launch].time_min = 1 min" in w and "attempts" in w for w in plan.warnings), plan.warnings
    iso = make_plan(load_sweep("isoflop"), sinfo=False)  # its largest budgets make 1.85 passes over the split
    epochs = [w for w in iso.warnings if "passes over the training split" in w]
    assert epochs and any("1.85 passes" in w for w in epochs)
    assert max(r["epochs"] for r in iso.rows) == pytest.approx(1.85, abs=0.01)


def test_planning_imports_no_torch():
    """`attnres plan` counts parameters, FLOPs and memory per variant without the training stack: a fresh
    interpreter that imports the planner and plans the demo sweep has not loaded torch."""
    import subprocess
    import sys

    code = ("import sys\nimport sweeps.plan\nfrom sweeps.spec import load_sweep\n"
            "plan = sweeps.plan.make_plan(load_sweep('demo'))\n"
            "assert plan.rows and all(r['params_total'] > 0 and r['flops_per_token'] > 0 for r in plan.rows)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout[:500]
