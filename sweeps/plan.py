"""`attnres plan SWEEP`: every run of a sweep with its size, budget, cost and memory, before spending anything.

    attnres plan demo            # a table, totals, notes and warnings
    attnres plan demo --json     # the same for machines
    plan = make_plan(load_sweep("demo")); print(format_plan(plan))

Parameters and FLOPs/token come from harness.accounting (the numbers training records in
spec.json). Compute = training FLOPs/token x the run's token budget (PF-days: / 8.64e19). A WSD
branch's budget includes the trunk tokens it starts from; its cost (``trained_tokens``,
device-hours, the totals) counts only the tokens it trains itself.

Device-hours = model FLOPs / one device's rate from harness/devices.py, the one source of throughput
assumptions (so a run has one estimate whichever sweep it is in): a GPU's datasheet dense bf16 peak
times an assumed MFU (40%, or [launch].mfu), which the plan states; a CPU core's measured rate.
Per-GPU memory comes from harness/memory.py for each run's micro-batch. Warnings (each naming the
run and the fix): memory above 90% of [launch].gpu_mem_gb (or the device's), a run longer than
[launch].time_min (it will be requeued), resources beyond what `sinfo` says the partition's nodes
have, and token budgets larger than the training split (more than one epoch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from harness import devices
from harness.memory import memory_estimate
from records.steps import step_plan
from records.units import PF_DAY
from sweeps.rules import rule_sources
from sweeps.spec import PlannedRun, Sweep, expand

MEMORY_HEADROOM = 0.9  # the estimate leaves out fragmentation, the CUDA context and NCCL buffers


@dataclass(frozen=True)
class Plan:
    header: dict[str, Any]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    notes: list[str]
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {**self.header, "runs": self.rows, "totals": self.totals, "notes": self.notes,
                "warnings": self.warnings}


def _micro_batch(run: PlannedRun, sweep: Sweep) -> int:
    """Sequences per forward on one device, as the trainer cuts the global batch."""
    world = max(1, sweep.launch.nodes * sweep.launch.tasks_per_node)
    local = max(1, run.spec.train.batch_size // world)
    return min(run.spec.train.micro_batch_size or local, local)


def _train_split_tokens(sweep: Sweep) -> int | None:
    if sweep.data.vocab_source != "meta.json":
        return None
    from records.tokens import DataError, read_meta

    try:
        return int(read_meta(sweep.data.path)["splits"]["train"]["n_tokens"])
    except (DataError, KeyError, TypeError, ValueError):
        return None


def plan_row(run: PlannedRun, sweep: Sweep, rate: devices.Throughput, train_tokens: int | None = None) -> dict[str, Any]:
    p = run.params
    tc = run.spec.train
    spent = run.flops_per_token * run.trained_tokens
    gpus = sweep.launch.gpus_per_node > 0
    dtype = tc.dtype if tc.dtype != "auto" else ("bfloat16" if gpus else "float32")
    micro = _micro_batch(run, sweep)
    mem = memory_estimate(run.spec.model, micro, dtype, tc.activation_checkpointing)
    device_hours = spent / rate.flops / 3600
    return {
        "run_id": run.run_id, "arm": run.arm, "variant": run.spec.model.variant, "size": run.spec.size,
        "budget": run.budget, "seed": tc.seed, "axes": dict(run.spec.axes),
        "params_total": p.total, "params_non_embedding": p.non_embedding,
        "tokens": tc.tokens, "trained_tokens": run.trained_tokens, "tokens_per_param": tc.tokens / p.total,
        "batch_size": tc.batch_size, "micro_batch": micro, "lr": tc.lr, "schedule": tc.schedule,
        "steps": step_plan(tc, run.spec.model.seq_len).total,
        "flops_per_token": run.flops_per_token,
        "compute_flops": run.compute, "compute_pfdays": run.compute / PF_DAY,
        "device_hours": device_hours, "wall_hours": device_hours / sweep.launch.devices_per_run,
        "memory_gb": mem.total_gb, "memory": mem.as_dict(), "dtype": dtype,
        "epochs": tc.tokens / train_tokens if train_tokens else None,
        "depends_on": run.depends_on,
    }


def make_plan(sweep: Sweep, sinfo: bool = True) -> Plan:
    rate = devices.throughput(sweep.launch.device, sweep.launch.gpus_per_node > 0, sweep.launch.mfu)
    train_tokens = _train_split_tokens(sweep)
    rows = [plan_row(r, sweep, rate, train_tokens) for r in expand(sweep)]
    spent = sum(r["flops_per_token"] * r["trained_tokens"] for r in rows)
    devices_per_run = sweep.launch.devices_per_run
    totals = {
        "runs": len(rows), "arms": len({r["arm"] for r in rows}), "sizes": len({r["size"] for r in rows}),
        "seeds": len(sweep.seeds),
        "tokens_trained": sum(r["trained_tokens"] for r in rows),
        "compute_flops": spent, "compute_pfdays": spent / PF_DAY,
        "device_hours": sum(r["device_hours"] for r in rows),
        "devices_per_run": devices_per_run,
        "wall_hours_largest_run": max((r["wall_hours"] for r in rows), default=0.0),
        "device": rate.kind.name, "device_flops": rate.flops, "mfu_assumed": rate.mfu,
    }
    header = {"sweep": sweep.name, "file": sweep.file, "description": sweep.description,
              "ladder": sweep.ladder, "rules": sweep.rules, "rule_sources": rule_sources(sweep.rules),
              "budget": asdict(sweep.budget), "data": asdict(sweep.data), "launch": asdict(sweep.launch)}
    explicit = set(sweep.train) | {k for a in sweep.arms for k in a.train} | set(sweep.axes) | \
        {k for a in sweep.arms for k in a.axes}
    notes = [f"rule {k} = {src}" for k, src in rule_sources(sweep.rules).items() if k not in explicit]
    notes.append(f"vocab_size {sweep.data.vocab_size}: {sweep.data.vocab_source}")
    if sweep.data.vocab_source != "meta.json":
        notes.append(f"prepare the data before launching: {sweep.data.prepare_cmd}")
    notes.append(f"device-hours assume {rate.statement()}, {devices_per_run} device(s) per run ([launch].device"
                 + (", [launch].mfu" if rate.mfu is not None else "") + ")")
    if any(r["depends_on"] for r in rows):
        notes.append("WSD: branches start from their trunk's kept checkpoint; their cost counts only "
                     "their own cool-down tokens")
    if sweep.launch.gpus_per_node:
        notes.append("memory per GPU: parameters, gradients, AdamW state, activations of one micro-batch and "
                     "logits (harness/memory.py), without the CUDA context, NCCL buffers and fragmentation")
    warnings = _warnings(sweep, rows, train_tokens, sinfo)
    return Plan(header, rows, totals, notes, warnings)


def _warnings(sweep: Sweep, rows: list[dict[str, Any]], train_tokens: int | None, sinfo: bool) -> list[str]:
    ls = sweep.launch
    out: list[str] = []
    if ls.gpus_per_node:
        kind = devices.KINDS.get(ls.device or devices.DEFAULT_GPU)
        cap = ls.gpu_mem_gb or (kind.memory_gb if kind else None)
        where = "[launch].gpu_mem_gb" if ls.gpu_mem_gb else f"the {kind.name}'s {kind.memory_gb:g} GB (assumed)"
        for r in rows:
            if cap and r["memory_gb"] > MEMORY_HEADROOM * cap:
                fixes = [f"micro_batch_size = {max(1, r['micro_batch'] // 2)}"]
                if not any(a.train.get("activation_checkpointing") for a in sweep.arms) and \
                        not sweep.train.get("activation_checkpointing"):
                    fixes.append("activation_checkpointing = true")
                out.append(f"{r['run_id']}: ~{r['memory_gb']:.0f} GB per GPU at micro-batch {r['micro_batch']} "
                           f"(activations {r['memory']['activations']:.0f}, logits {r['memory']['logits']:.0f} GB) "
                           f"exceeds {MEMORY_HEADROOM:.0%} of {where}; fix: set [train] " + " or ".join(fixes))
    for r in rows:
        if r["wall_hours"] * 60 > ls.time_min:
            attempts = math.ceil(r["wall_hours"] * 60 / ls.time_min)
            level = "exceeds [launch].max_num_timeout" if attempts - 1 > ls.max_num_timeout else "requeued"
            out.append(f"{r['run_id']}: ~{r['wall_hours']:.1f} h at the assumed rate > [launch].time_min = "
                       f"{ls.time_min} min: {attempts} attempts ({level}); fix: raise time_min, or "
                       "max_num_timeout if the requeues are fine")
    if train_tokens:
        for r in rows:
            if r["epochs"] and r["epochs"] > 1:
                out.append(f"{r['run_id']}: {r['tokens']:,} tokens are {r['epochs']:.2f} passes over the training "
                           f"split ({train_tokens:,} tokens): repeated data; fix: prepare more data, or lower the budget")
    if sinfo:  # only where sinfo answers (a Slurm login node)
        out += _partition_warnings(sweep)
    return out


def _partition_warnings(sweep: Sweep) -> list[str]:
    from sweeps.slurm import partition_limits

    ls = sweep.launch
    node = partition_limits(ls.partition)
    if node is None:
        return []
    part = ls.partition or "the default partition"
    out = []
    asks = [("CPUs", ls.cpus_per_task * ls.tasks_per_node, node["cpus"], "cpus_per_task x tasks_per_node"),
            ("GPUs", ls.gpus_per_node, node["gpus"], "gpus_per_node"),
            ("GB of memory", ls.mem_gb or 0, node["mem_gb"], "mem_gb")]
    for what, want, have, key in asks:
        if want > have:
            out.append(f"[launch]: {want:g} {what} per node ({key}) but the largest node of {part} has {have:g} "
                       f"(sinfo); fix: lower {key} or choose another partition")
    return out


# ----------------------------------------------------------------------------- text


def _si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f}s"
    if h < 1:
        return f"{h * 60:.1f}m"
    return f"{h:.1f}h"


COLUMNS = [  # header, row key, formatter
    ("run_id", "run_id", str), ("variant", "variant", str), ("size", "size", str),
    ("params", "params_total", _si), ("non-emb", "params_non_embedding", _si),
    ("tokens", "tokens", _si), ("tok/param", "tokens_per_param", lambda x: f"{x:.3g}"),
    ("batch", "batch_size", str), ("lr", "lr", lambda x: f"{x:.3g}"), ("steps", "steps", str),
    ("FLOPs/tok", "flops_per_token", lambda x: f"{x:.3g}"),
    ("compute", "compute_flops", lambda x: f"{x:.3g}"), ("PF-days", "compute_pfdays", lambda x: f"{x:.3g}"),
    ("dev-hours", "device_hours", _hours),
]
GPU_COLUMNS = [("micro", "micro_batch", str), ("GB/GPU", "memory_gb", lambda x: f"{x:.1f}")]
EPOCH_COLUMN = [("epochs", "epochs", lambda x: "" if x is None else f"{x:.2g}")]


def format_table(rows: list[dict[str, Any]], columns=COLUMNS) -> str:
    cells = [[h for h, _, _ in columns]] + [[fmt(r[k]) for _, k, fmt in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    left = {0, 1, 2}
    lines = []
    for j, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_plan(plan: Plan) -> str:
    h, t = plan.header, plan.totals
    columns = COLUMNS + (GPU_COLUMNS if h["launch"]["gpus_per_node"] else [])
    if any(r["epochs"] is not None for r in plan.rows):
        columns = columns + EPOCH_COLUMN
    out = [f"sweep {h['sweep']} ({h['file']}): {h['description']}".rstrip(": "),
           f"ladder {h['ladder']}, rules {h['rules']}, budget mode {h['budget']['mode']}, data {h['data']['path']}",
           "", format_table(plan.rows, columns), ""]
    out.append(f"total: {t['runs']} runs ({t['arms']} variants x {t['sizes']} sizes x {t['seeds']} seeds"
               f"{', with budgets/axes' if t['runs'] != t['arms'] * t['sizes'] * t['seeds'] else ''}), "
               f"{_si(t['tokens_trained'])} tokens, {t['compute_flops']:.3g} FLOPs = {t['compute_pfdays']:.3g} PF-days, "
               f"~{_hours(t['device_hours'])} device-hours; largest run ~{_hours(t['wall_hours_largest_run'])} "
               f"on {t['devices_per_run']} device(s)")
    out += [f"note: {n}" for n in plan.notes]
    out += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(out)
