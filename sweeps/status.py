"""`attnres status SWEEP`: the state of every planned run, from its run directory and the scheduler.

    attnres status demo            # one line per run and a summary line
    attnres status demo --json
    rows = sweep_status(load_sweep("demo"), runs_root="runs")

States: pending (no run directory yet), queued, running, done, failed, diverged, preempted.
status.json says what training last wrote; for a run that is not finished, the owner it records
(a Slurm job id, or a pid on this host) is checked: a job still pending in ``squeue`` is
``queued`` (``preempted`` if it ran before and was requeued), a running one ``running``; a run
whose job or process is gone without a final state is reported ``preempted`` if it had started
(``attnres launch`` resumes it from its checkpoint), else ``pending``. Run directories the sweep
does not plan are counted in the summary, not listed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.rundir import STATES, RunDir
from sweeps.launch import ACTIVE_STATES, _tail_row, default_runs_root, run_owner, squeue_states
from sweeps.spec import Sweep, expand


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    arm: str
    size: str
    seed: int
    state: str
    tokens: int  # reached
    target_tokens: int
    train_loss: float | None  # latest metrics row
    val_loss: float | None  # latest evaluation
    job_id: str | None
    detail: str  # what the scheduler says, or status.json's message

    @property
    def fraction(self) -> float:
        return self.tokens / max(1, self.target_tokens)


def _last_val(run_dir: Path) -> float | None:
    rows = RunDir(run_dir).read_metrics().rows
    for row in reversed(rows):
        if row.get("kind") == "eval" and row.get("val_loss") is not None:
            return float(row["val_loss"])
    return None


def _scheduler_state(file_state: str, status: dict[str, Any], run_dir: Path,
                     slurm: dict[str, str] | None) -> tuple[str, str]:
    """Reconcile what status.json says with the process or job that owns the run."""
    owner = run_owner(status, run_dir, slurm)
    if owner.alive is None:
        return file_state, f"{owner.what}; not verified"
    if not owner.alive:
        if status.get("attempts") or status.get("step"):
            return "preempted", f"interrupted ({owner.what}); `attnres launch` resumes it"
        return "pending", f"never started ({owner.what}); `attnres launch` submits it"
    job = status.get("job_id")
    if job and slurm is not None:
        sq = slurm.get(str(job), "")
        if sq == "PENDING" or sq.startswith("REQUEUE"):  # requeued after it ran: preempted
            return ("preempted" if file_state in ("running", "preempted") else "queued"), owner.what
        return "running", owner.what
    return file_state, owner.what


def sweep_status(sweep: Sweep, runs_root: str | os.PathLike[str] | None = None) -> tuple[list[RunStatus], int]:
    """Status of every planned run, and the number of run directories the sweep does not plan."""
    runs = expand(sweep)
    sweep_dir = Path(runs_root if runs_root is not None else default_runs_root()) / sweep.name
    statuses = {r.run_id: RunDir(sweep_dir / r.run_id).read_status() for r in runs}
    jobs = [str(s["job_id"]) for s in statuses.values() if s.get("job_id") and s.get("state") in ACTIVE_STATES]
    slurm = squeue_states(jobs) if jobs else {}
    out = []
    for r in runs:
        run_dir = sweep_dir / r.run_id
        st = statuses[r.run_id]
        state = st.get("state", "pending")
        detail = st.get("message", "") or ""
        if state in ACTIVE_STATES:
            state, detail = _scheduler_state(state, st, run_dir, slurm)
        row = _tail_row(run_dir / "metrics.jsonl") if run_dir.exists() else None
        out.append(RunStatus(
            run_id=r.run_id, arm=r.arm, size=r.spec.size, seed=r.spec.train.seed, state=state,
            tokens=int(row["tokens"]) if row else int(st.get("tokens") or 0), target_tokens=r.spec.train.tokens,
            train_loss=row.get("train_loss") if row else None,
            val_loss=_last_val(run_dir) if row else None,
            job_id=str(st["job_id"]) if st.get("job_id") else None, detail=detail))
    planned = {r.run_id for r in runs}
    extra = 0
    if sweep_dir.is_dir():
        extra = sum(1 for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and p.name not in planned)
    return out, extra


def summary_line(sweep: Sweep, rows: list[RunStatus], extra: int = 0) -> str:
    counts = Counter(r.state for r in rows)
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    tokens = sum(r.tokens for r in rows)
    target = sum(r.target_tokens for r in rows)
    line = f"{sweep.name}: {len(rows)} runs: " + ", ".join(parts) + f" ({tokens / max(1, target):.0%} of tokens)"
    if extra:
        line += f"; {extra} run director{'y' if extra == 1 else 'ies'} not in the sweep file"
    return line


def format_status(sweep: Sweep, rows: list[RunStatus], extra: int = 0) -> str:
    header = ["run_id", "state", "progress", "train", "val", "job", "detail"]
    cells = [header] + [[r.run_id, r.state, f"{r.fraction:.0%}",
                         "" if r.train_loss is None else f"{r.train_loss:.4f}",
                         "" if r.val_loss is None else f"{r.val_loss:.4f}", r.job_id or "", r.detail[:60]]
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + ["", summary_line(sweep, rows, extra)])


def status_json(sweep: Sweep, rows: list[RunStatus], extra: int = 0) -> dict[str, Any]:
    return {"sweep": sweep.name, "runs": [asdict(r) for r in rows],
            "counts": dict(Counter(r.state for r in rows)), "unplanned_run_dirs": extra,
            "summary": summary_line(sweep, rows, extra)}
