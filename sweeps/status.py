"""`attnres status SWEEP`: the state of every planned run, from its run directory and the scheduler.

    attnres status demo            # one line per run (state, progress, tokens/s, ETA, losses) and a summary
    attnres status demo --logs     # where each run's logs are
    attnres status demo --json
    rows = sweep_status(load_sweep("demo"), runs_root="runs")

How the state is decided (status.json says what training last wrote; it is checked against who
holds the run now):
    locked                          running: a process holds <run_dir>/lock (harness.runlock)
    done / diverged / failed        as written; a done run whose Slurm job is still queued says so
                                    (`attnres launch` cancels that job)
    cancelled.json present          cancelled (`attnres cancel`)
    queued by a live local launcher queued (it holds its launcher lock)
    Slurm job in squeue             queued (with Slurm's pending reason), "preempted" if it ran before
                                    and waits to run again, running while it starts
    Slurm job gone, not finished    how it ended, from accounting (sacct): cancelled, timeout,
                                    out_of_memory, node_fail, preempted, failed
    local, not locked, not finished preempted if it had started (its process is gone; `attnres launch`
                                    resumes it), else pending
Run directories the sweep does not plan are counted in the summary, not listed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.runlock import describe_holder, is_locked
from records import paths
from records.choices import Executor, RunState
from records.rundir import RunDir, is_cancelled
from sweeps import slurm
from sweeps.expand import PlannedRun, expand
from sweeps.inflight import ACTIVE, launcher_alive, state_of
from sweeps.progress import fmt_duration, fmt_rate, run_progress, sweep_progress, tail_row
from sweeps.slurm import JobEnd
from sweeps.sweepfile import Sweep

# what status can call a run: the run-directory states and the endings accounting tells apart
STATUS_STATES = (*RunState, *JobEnd)


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
    tokens_per_s: float | None = None  # latest row, while training
    eta_s: float | None = None  # to the end of the run at that rate
    elapsed: str = ""  # Slurm's elapsed time of the job, else training seconds
    logs: tuple[str, ...] = ()  # train.log, then the job's or worker's stdout/stderr

    @property
    def fraction(self) -> float:
        return self.tokens / max(1, self.target_tokens)


def _last_val(run_dir: Path) -> float | None:
    rows = RunDir(run_dir).read_metrics().rows
    for row in reversed(rows):
        if row.get("kind") == "eval" and row.get("val_loss") is not None:
            return float(row["val_loss"])
    return None


@dataclass(frozen=True)
class _View:
    state: str
    detail: str
    elapsed: str = ""


def _job_view(st: dict[str, Any], job_id: str, jobs: dict[str, slurm.SlurmJob] | None,
              ends: dict[str, slurm.Ending] | None) -> _View | None:
    """The state a Slurm job gives an unfinished, unlocked run; None: no information."""
    if jobs is None:
        return _View(state_of(st), f"Slurm job {job_id} (squeue unavailable; not verified)")
    job = slurm.find_job(jobs, job_id)
    if job is not None and job.alive:
        if job.state == "RUNNING":
            return _View(RunState.RUNNING, f"Slurm job {job_id} RUNNING (starting)", job.elapsed)
        ran = bool(st.get("attempts") or st.get("step"))
        return _View(RunState.PREEMPTED if ran else RunState.QUEUED,
                     f"Slurm job {job_id} {job.state}, reason {job.reason}" + ("; ran before, resumes" if ran else ""),
                     job.elapsed)
    end = (ends or {}).get(job_id)
    if end is not None and end.kind:
        return _View(end.kind, f"Slurm job {job_id} ended {end.state} (exit {end.exit_code}); `attnres launch` "
                     "resubmits it", end.elapsed)
    return None


def _view(st: dict[str, Any], runs_root: Path, run: PlannedRun, jobs: dict[str, slurm.SlurmJob] | None,
          ends: dict[str, slurm.Ending] | None) -> _View:
    run_dir = paths.run_dir(runs_root, run.spec.sweep, run.run_id)
    state = state_of(st)
    detail = st.get("message", "") or ""
    job_id = str(st["job_id"]) if st.get("job_id") else None
    if is_locked(run_dir):
        job = slurm.find_job(jobs or {}, job_id) if job_id else None
        return _View(RunState.RUNNING, describe_holder(run_dir), job.elapsed if job else "")
    if state in (RunState.DONE, RunState.DIVERGED, RunState.FAILED):
        job = slurm.find_job(jobs or {}, job_id) if job_id else None
        if state == RunState.DONE and job is not None and job.alive:
            detail = (f"done, but Slurm job {job_id} is {job.state}: it would start and exit at once; "
                      "`attnres launch` cancels it")
        return _View(state, detail)
    if is_cancelled(run_dir):
        return _View(RunState.CANCELLED, detail or "stopped by `attnres cancel`; `attnres launch --include-cancelled` "
                     "resumes it")
    if state not in ACTIVE and state != RunState.CANCELLED:
        return _View(state, detail)
    if job_id:
        view = _job_view(st, job_id, jobs, ends)
        if view is not None:
            return view
    if state == RunState.QUEUED and launcher_alive(runs_root, run.spec.sweep, st):
        return _View(RunState.QUEUED, f"waits for a worker of the launcher pid {st.get('pid')}")
    if st.get("attempts") or st.get("step"):
        why = detail if state == RunState.PREEMPTED and detail else "interrupted (no process holds the run)"
        return _View(RunState.PREEMPTED, f"{why}; `attnres launch` resumes it" if "launch" not in why else why)
    return _View(RunState.PENDING, "never started (no process holds the run); `attnres launch` submits it")


def _logs(runs_root: Path, sweep: str, run_id: str, st: dict[str, Any]) -> tuple[str, ...]:
    logs = [RunDir(paths.run_dir(runs_root, sweep, run_id)).log_path]
    if st.get("job_id"):
        logs += slurm.job_log_paths(paths.submitit_dir(runs_root, sweep), str(st["job_id"]))
    elif st.get("executor") == Executor.LOCAL:
        logs.append(paths.worker_output(runs_root, sweep, run_id))
    return tuple(str(p) for p in logs)


def sweep_status(sweep: Sweep, runs_root: str | os.PathLike[str] | None = None) -> tuple[list[RunStatus], int]:
    """Status of every planned run, and the number of run directories the sweep does not plan."""
    runs = expand(sweep)
    root = Path(runs_root) if runs_root is not None else paths.runs_root()
    statuses = {r.run_id: RunDir(paths.run_dir(root, sweep.name, r.run_id)).read_status() for r in runs}
    job_ids = [str(s["job_id"]) for s in statuses.values() if s.get("job_id")]
    jobs = slurm.squeue_jobs(job_ids) if job_ids else {}
    # accounting, for unfinished runs whose job has left the queue: how did it end?
    gone = [str(s["job_id"]) for s in statuses.values() if s.get("job_id") and state_of(s) in ACTIVE
            and jobs is not None and slurm.find_job(jobs, str(s["job_id"])) is None]
    ends = slurm.sacct_endings(gone) if gone else {}
    out = [_run_status(r, root, statuses[r.run_id], jobs, ends) for r in runs]
    planned = {r.run_id for r in runs}
    extra = 0
    sweep_dir = paths.sweep_dir(root, sweep.name)
    if sweep_dir.is_dir():
        extra = sum(1 for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and p.name not in planned)
    return out, extra


def _run_status(r: PlannedRun, runs_root: Path, st: dict[str, Any], jobs: dict[str, slurm.SlurmJob] | None,
                ends: dict[str, slurm.Ending] | None) -> RunStatus:
    run_dir = paths.run_dir(runs_root, r.spec.sweep, r.run_id)
    view = _view(st, runs_root, r, jobs, ends)
    row = tail_row(RunDir(run_dir).metrics_path) if run_dir.exists() else None
    prog = run_progress(run_dir, r.spec.train.tokens, r.flops_per_token, training=view.state == RunState.RUNNING,
                        row=row)
    elapsed = view.elapsed or (fmt_duration(row["elapsed_s"]) if row and row.get("elapsed_s") else "")
    return RunStatus(
        run_id=r.run_id, arm=r.arm, size=r.spec.size, seed=r.spec.train.seed, state=view.state,
        tokens=int(row["tokens"]) if row else int(st.get("tokens") or 0), target_tokens=r.spec.train.tokens,
        train_loss=row.get("train_loss") if row else None, val_loss=_last_val(run_dir) if row else None,
        job_id=str(st["job_id"]) if st.get("job_id") else None, detail=view.detail,
        tokens_per_s=prog.tokens_per_s if view.state == RunState.RUNNING else None, eta_s=prog.eta_s, elapsed=elapsed,
        logs=_logs(runs_root, r.spec.sweep, r.run_id, st))


def _sweep_line(sweep: Sweep, rows: list[RunStatus]) -> str:
    runs = {r.run_id: r for r in expand(sweep)}
    prog = [run_progress(Path("."), r.target_tokens, runs[r.run_id].flops_per_token, r.state == RunState.RUNNING,
                         row={"tokens": r.tokens, "tokens_per_s": r.tokens_per_s}) for r in rows]
    unfinished = [r.state not in (RunState.DONE, RunState.DIVERGED, RunState.CANCELLED) for r in rows]
    return sweep_progress(prog, unfinished).describe()


def summary_line(sweep: Sweep, rows: list[RunStatus], extra: int = 0) -> str:
    counts = Counter(r.state for r in rows)
    parts = [f"{counts[s]} {s}" for s in STATUS_STATES if counts.get(s)]
    tokens = sum(r.tokens for r in rows)
    target = sum(r.target_tokens for r in rows)
    line = (f"{sweep.name}: {len(rows)} runs: " + ", ".join(parts) + f" ({tokens / max(1, target):.0%} of tokens); "
            + _sweep_line(sweep, rows))
    if extra:
        line += f"; {extra} run director{'y' if extra == 1 else 'ies'} not in the sweep file"
    return line


def format_status(sweep: Sweep, rows: list[RunStatus], extra: int = 0, logs: bool = False) -> str:
    header = ["run_id", "state", "progress", "tok/s", "ETA", "elapsed", "train", "val", "job", "detail"]
    cells = [header] + [[r.run_id, r.state, f"{r.fraction:.0%}", fmt_rate(r.tokens_per_s).replace(" tok/s", ""),
                         fmt_duration(r.eta_s), r.elapsed,
                         "" if r.train_loss is None else f"{r.train_loss:.4f}",
                         "" if r.val_loss is None else f"{r.val_loss:.4f}", r.job_id or "", r.detail[:70]]
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if logs:
        lines.append("")
        for r in rows:
            lines.append(f"{r.run_id}:")
            lines += [f"  {p}{'' if Path(p).exists() else '  (not written yet)'}" for p in r.logs]
    return "\n".join(lines + ["", summary_line(sweep, rows, extra)])


def status_json(sweep: Sweep, rows: list[RunStatus], extra: int = 0) -> dict[str, Any]:
    return {"sweep": sweep.name, "runs": [asdict(r) for r in rows],
            "counts": dict(Counter(r.state for r in rows)), "unplanned_run_dirs": extra,
            "summary": summary_line(sweep, rows, extra)}
