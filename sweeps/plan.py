"""`attnres plan SWEEP`: every run of a sweep with its size, budget and cost, before spending anything.

    attnres plan demo            # a table and totals
    attnres plan demo --json     # the same for machines
    plan = make_plan(load_sweep("demo")); print(format_plan(plan))

Parameters and FLOPs/token come from harness.accounting (the numbers training records in
spec.json). Compute = training FLOPs/token x the run's token budget (PF-days: / 8.64e19). A WSD
branch's budget includes the trunk tokens it starts from; its cost (``trained_tokens``,
device-hours, the totals) counts only the tokens it trains itself. Device-hours assume
[launch].device_flops effective training FLOP/s per device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.accounting import PF_DAY
from sweeps.rules import rule_sources
from sweeps.spec import PlannedRun, Sweep, expand


@dataclass(frozen=True)
class Plan:
    header: dict[str, Any]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        return {**self.header, "runs": self.rows, "totals": self.totals, "notes": self.notes}


def plan_row(run: PlannedRun, sweep: Sweep) -> dict[str, Any]:
    p = run.params
    tc = run.spec.train
    spent = run.flops_per_token * run.trained_tokens
    return {
        "run_id": run.run_id, "arm": run.arm, "variant": run.spec.model.variant, "size": run.spec.size,
        "budget": run.budget, "seed": tc.seed, "axes": dict(run.spec.axes),
        "params_total": p.total, "params_non_embedding": p.non_embedding,
        "tokens": tc.tokens, "trained_tokens": run.trained_tokens, "tokens_per_param": tc.tokens / p.total,
        "batch_size": tc.batch_size, "lr": tc.lr, "schedule": tc.schedule,
        "steps": max(1, round(tc.tokens / (tc.batch_size * run.spec.model.seq_len))),
        "flops_per_token": run.flops_per_token,
        "compute_flops": run.compute, "compute_pfdays": run.compute / PF_DAY,
        "device_hours": spent / sweep.launch.device_flops / 3600,
        "depends_on": run.depends_on,
    }


def make_plan(sweep: Sweep) -> Plan:
    rows = [plan_row(r, sweep) for r in expand(sweep)]
    spent = sum(r["flops_per_token"] * r["trained_tokens"] for r in rows)
    devices = sweep.launch.devices_per_run
    totals = {
        "runs": len(rows), "arms": len({r["arm"] for r in rows}), "sizes": len({r["size"] for r in rows}),
        "seeds": len(sweep.seeds),
        "tokens_trained": sum(r["trained_tokens"] for r in rows),
        "compute_flops": spent, "compute_pfdays": spent / PF_DAY,
        "device_hours": sum(r["device_hours"] for r in rows),
        "devices_per_run": devices,
        "wall_hours_largest_run": max((r["device_hours"] for r in rows), default=0.0) / devices,
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
    notes.append(f"device-hours assume {sweep.launch.device_flops:.3g} training FLOP/s per "
                 f"{sweep.launch.device_name} ([launch].device_flops) and {devices} device(s) per run")
    if any(r["depends_on"] for r in rows):
        notes.append("WSD: branches start from their trunk's kept checkpoint; their cost counts only "
                     "their own cool-down tokens")
    return Plan(header, rows, totals, notes)


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
    out = [f"sweep {h['sweep']} ({h['file']}): {h['description']}".rstrip(": "),
           f"ladder {h['ladder']}, rules {h['rules']}, budget mode {h['budget']['mode']}, data {h['data']['path']}",
           "", format_table(plan.rows), ""]
    out.append(f"total: {t['runs']} runs ({t['arms']} variants x {t['sizes']} sizes x {t['seeds']} seeds"
               f"{', with budgets/axes' if t['runs'] != t['arms'] * t['sizes'] * t['seeds'] else ''}), "
               f"{_si(t['tokens_trained'])} tokens, {t['compute_flops']:.3g} FLOPs = {t['compute_pfdays']:.3g} PF-days, "
               f"~{_hours(t['device_hours'])} device-hours; largest run ~{_hours(t['wall_hours_largest_run'])} "
               f"on {t['devices_per_run']} device(s)")
    out += [f"note: {n}" for n in plan.notes]
    return "\n".join(out)
