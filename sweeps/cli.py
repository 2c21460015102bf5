"""Subcommands of `attnres` for sweeps: plan, launch, status, cancel, logs, collect.

    attnres plan demo [--json] [--power [--noise-from SWEEP]]
    attnres launch demo [--executor local|slurm|debug] [--workers N] [--dry-run] [--wait] [--include-cancelled]
    attnres status demo [--json] [--logs]
    attnres cancel demo [RUN ...]
    attnres logs RUN [--tail N]
    attnres collect demo [--strict]

SWEEP is a name (sweeps/<name>.toml in the package) or the path of a .toml file. Runs live in
RUNS_ROOT/<sweep>/<run_id>/ (--runs-root, default $ATTNRES_RUNS_ROOT or runs).

The work is imported inside each command (sweeps.spec pulls in the model code and torch,
sweeps.collect pyarrow), so building this parser stays cheap.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from pathlib import Path

from records.choices import Executor, RunState, choices


def _sweep_names() -> list[str]:
    """The shipped sweeps (sweeps.spec.available_sweeps, without importing sweeps.spec)."""
    return sorted(p.stem for p in Path(__file__).resolve().parent.glob("*.toml"))


def _add_common(p: argparse.ArgumentParser, runs_root: bool = True) -> None:
    p.add_argument("sweep", metavar="SWEEP",
                   help=f"sweep name ({', '.join(_sweep_names())}) or path to a .toml file")
    if runs_root:
        p.add_argument("--runs-root", default=None,
                       help="directory with one folder per sweep (default: $ATTNRES_RUNS_ROOT or runs)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """The sweep commands' parsers. Long on purpose: argument declarations only, one command after
    another, so each command's --help reads in one place."""
    p = subparsers.add_parser("plan", help="every run of a sweep with params, FLOPs and device-hours; spends nothing",
                              description="List every run of SWEEP: variant, size, parameters (total and "
                              "non-embedding), tokens, FLOPs/token, compute (FLOPs, PF-days) and estimated "
                              "device-hours, with totals. Nothing is written or submitted.")
    _add_common(p, runs_root=False)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--power", action="store_true",
                   help="also print the statistical power of the design: per arm, the expected 90%% interval "
                   "half-width of the multiplier, the smallest multiplier it detects with 80%% power, and the seeds "
                   "per size needed to detect 1.1x and 1.25x (analysis/power.py)")
    p.add_argument("--noise-from", metavar="SWEEP", default=None,
                   help="--power: take the noise level from this sweep's results (RESULTS_ROOT/SWEEP/runs.parquet); "
                   "default: this sweep's own results when collected, else the ladder's documented default")
    p.add_argument("--results-root", default="results", help="--power: where sweeps' results live (default: results)")
    p.set_defaults(func=_cmd_plan)

    p = subparsers.add_parser("launch", help="train every unfinished run of a sweep (local, Slurm or debug)",
                              description="Submit every run of SWEEP that is not done and not in flight. "
                              "Re-running skips finished runs, resumes partial ones from their checkpoints, "
                              "and never duplicates a run that is queued or running.")
    _add_common(p)
    p.add_argument("--executor", choices=choices(Executor), default=Executor.LOCAL.value,
                   help="local: this machine, --workers runs at a time (default); slurm: job arrays through "
                   "submitit (returns once queued); debug: in this process, one run after another")
    p.add_argument("--workers", type=int, default=None,
                   help="local: concurrent training processes, one thread each (default: number of cores)")
    p.add_argument("--dry-run", action="store_true", help="say what would be submitted, submit nothing")
    p.add_argument("--only", metavar="PATTERN", default=None,
                   help="only runs whose id matches this shell pattern (e.g. 'demo-block-*')")
    p.add_argument("--force", action="store_true",
                   help="resubmit runs whose owner cannot be verified (a job with no squeue, a pid on another host)")
    p.add_argument("--wait", action="store_true", help="slurm: block until the submitted jobs have left the queue")
    p.add_argument("--wait-timeout", type=float, default=7 * 86400, help="slurm --wait: give up after this many seconds")
    p.add_argument("--progress-every", type=float, default=15.0, help="local: seconds between progress lines")
    p.add_argument("--include-cancelled", action="store_true",
                   help="also resubmit runs stopped by `attnres cancel` (they resume from their checkpoints)")
    p.set_defaults(func=_cmd_launch)

    p = subparsers.add_parser("status", help="per-run state of a sweep (from run directories and the scheduler)",
                              description="One line per planned run (pending, queued, running, done, failed, "
                              "diverged, preempted) with progress and latest losses, and a summary line.")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--logs", action="store_true", help="also list where each run's logs are")
    p.set_defaults(func=_cmd_status)

    p = subparsers.add_parser("cancel", help=CANCEL_HELP,
                              description="Mark runs of SWEEP cancelled, then cancel their Slurm jobs or send "
                              "SIGTERM to their local trainers (which checkpoint first). The next `attnres launch` "
                              "skips them unless --include-cancelled.")
    _add_common(p)
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids or shell patterns (default: every run)")
    p.set_defaults(func=_cmd_cancel)

    p = subparsers.add_parser("logs", help=LOGS_HELP,
                              description="Find RUN under RUNS_ROOT/*/RUN and print its training log and its "
                              "Slurm job's or local worker's output (paths, then the last --tail lines).")
    p.add_argument("run", metavar="RUN", help="a run id")
    p.add_argument("--runs-root", default=None, help="default: $ATTNRES_RUNS_ROOT or runs")
    p.add_argument("--tail", type=int, default=20, help="lines of each log to print (0: paths only)")
    p.set_defaults(func=_cmd_logs)

    register_collect(subparsers)


CANCEL_HELP = "stop runs on purpose (Slurm jobs or local trainers); launch leaves them"
LOGS_HELP = "where a run's logs are, and their last lines"


_COLLECT_DESCRIPTION = (
    "Read RUNS_ROOT/SWEEP/*/ (spec, status, env, metrics) into RESULTS_ROOT/SWEEP/runs.parquet (one row per run) "
    "and curves.parquet (one row per evaluation point); schemas in docs/SCHEMAS.md. Incremental and idempotent; "
    "problems (truncated metrics, missing files, unfinished runs) are reported, never fatal. A sweep file of "
    "that name is validated first and its planned runs listed as pending; a missing runs root is refused.")


def register_collect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("collect", help="collect every run's losses into results/SWEEP/{runs,curves}.parquet",
                              description=_COLLECT_DESCRIPTION)
    _collect_arguments(p)


def _collect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", metavar="SWEEP", help="sweep name (its runs are in RUNS_ROOT/SWEEP/), or sweeps/SWEEP.toml")
    p.add_argument("--runs-root", default=None,
                   help="directory with one folder per sweep (default: $ATTNRES_RUNS_ROOT or runs)")
    p.add_argument("--results-root", default=None, help="where RESULTS_ROOT/SWEEP/ is written (default: results)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes reading changed runs (default: one per CPU, at most 8, for 64+ runs)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any problem was found")
    p.add_argument("--progress-every", type=float, default=2.0,
                   help="seconds between progress lines while reading runs (stderr; default 2)")
    p.set_defaults(func=_cmd_collect)


def _planned_run_ids(sweep: str) -> list[str] | None:
    """The run ids the sweep file plans, so runs never launched show up as pending; None when
    there is no sweep file of that name (results collected from a runs directory alone). A sweep
    file that exists but is invalid raises its SweepError: collect validates it like plan does."""
    from sweeps.spec import SweepError, expand, load_sweep, sweep_path

    try:
        sweep_path(sweep)
    except SweepError:
        return None
    return [r.run_id for r in expand(load_sweep(sweep))]


def _cmd_collect(args: argparse.Namespace) -> int:
    from records import paths
    from records.progress import Progress
    from sweeps.collect import collect

    name = Path(args.sweep).stem if args.sweep.endswith(".toml") else args.sweep
    try:
        summary = collect(name, runs_root=args.runs_root or paths.runs_root(),
                          results_root=args.results_root or paths.results_root(), workers=args.workers,
                          expected_run_ids=_planned_run_ids(args.sweep),
                          progress=Progress(f"collect {name}: reading runs", every_s=args.progress_every))
    except (FileNotFoundError, ValueError) as e:  # SweepError is a ValueError: one line per problem
        return _fail("collect", e)
    print(summary.format())
    return 1 if args.strict and summary.problems else 0


def collect_main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.collect SWEEP [options]``."""
    parser = argparse.ArgumentParser(prog="python -m sweeps.collect", description=_COLLECT_DESCRIPTION)
    _collect_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


def _fail(cmd: str, e: Exception) -> int:
    for problem in getattr(e, "problems", None) or [str(e)]:  # a SweepError: one line per problem
        print(f"attnres {cmd}: {problem}", file=sys.stderr)
    return 2


def _cmd_plan(args: argparse.Namespace) -> int:
    from sweeps.plan import format_plan, make_plan
    from sweeps.spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.sweep)
        plan = make_plan(sweep)
    except SweepError as e:
        return _fail("plan", e)
    print(json.dumps(plan.as_json(), indent=2) if args.json else format_plan(plan))
    if args.power:
        try:
            print("\n".join(_power_lines(sweep, plan, args)))
        except (SweepError, ValueError) as e:
            return _fail("plan --power", e)
    return 0


def _power_lines(sweep, plan, args: argparse.Namespace) -> list[str]:
    """The design's power (analysis.power) from its plan and a measured or default noise level."""
    from pathlib import Path

    from analysis.load import AnalysisInputError
    from analysis.pipeline import noise_from_results
    from analysis.power import plan_power
    from sweeps.spec import SweepError

    arms = sorted({r["arm"] for r in plan.rows if r["arm"] != "baseline"})
    if not arms or "baseline" not in {r["arm"] for r in plan.rows}:
        return ["power: needs a `baseline` arm and at least one other arm"]
    cells = {(r["size"], r["budget"]) for r in plan.rows if r["arm"] == arms[0]}
    hparam = bool(sweep.axes) or any(a.axes for a in sweep.arms)
    lost = 1 if hparam and len(sweep.seeds) >= 2 else 0
    source = args.noise_from or sweep.name
    results = Path(args.results_root) / source
    measured = {}
    if (results / "runs.parquet").exists():
        try:
            measured = noise_from_results(results)
        except AnalysisInputError as e:
            if args.noise_from:
                raise SweepError(f"--noise-from {args.noise_from}: {e}") from e
    elif args.noise_from:
        raise SweepError(f"--noise-from {args.noise_from}: {results / 'runs.parquet'} not found; collect that sweep "
                         f"first (`attnres collect {args.noise_from}`) or pass --results-root")
    return [""] + plan_power(arms, len(cells), len(sweep.seeds), lost, sweep.ladder, measured)


def _cmd_launch(args: argparse.Namespace) -> int:
    from sweeps.launch import LaunchError, launch, wait_slurm
    from sweeps.spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.sweep)
        only = (lambda r: fnmatch.fnmatchcase(r.run_id, args.only)) if args.only else None
        result = launch(sweep, executor=args.executor, runs_root=args.runs_root, workers=args.workers,
                        force=args.force, dry_run=args.dry_run, only=only, progress_every_s=args.progress_every,
                        include_cancelled=args.include_cancelled)
    except (SweepError, LaunchError) as e:
        return _fail("launch", e)
    for d in result.decisions:
        if args.dry_run or d.action == "skip":
            print(f"  {'would submit' if d.action == 'submit' else 'skip'} {d.run.run_id}: {d.reason}")
    for script in result.sbatch:
        print("--- the sbatch script (one job array) that would be submitted:\n" + script.rstrip() + "\n---")
    print(result.summary() if not args.dry_run else
          f"{sweep.name}: dry run: {sum(d.action == 'submit' for d in result.decisions)} of "
          f"{len(result.decisions)} runs would be submitted ({args.executor})")
    if args.executor == Executor.SLURM and result.job_ids:
        print(f"follow with: attnres status {args.sweep}"
              + (f" --runs-root {args.runs_root}" if args.runs_root else ""))
        if args.wait:
            wait_slurm(sorted(set(result.job_ids.values())), timeout_s=args.wait_timeout)
            return _cmd_status(argparse.Namespace(sweep=args.sweep, runs_root=args.runs_root, json=False, logs=False))
    bad = [s for s in result.final_states.values() if s != RunState.DONE]
    return 1 if bad else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sweeps.spec import SweepError, load_sweep
    from sweeps.status import format_status, status_json, sweep_status

    try:
        sweep = load_sweep(args.sweep)
        rows, extra = sweep_status(sweep, runs_root=args.runs_root)
    except SweepError as e:
        return _fail("status", e)
    print(json.dumps(status_json(sweep, rows, extra), indent=2) if args.json
          else format_status(sweep, rows, extra, logs=args.logs))
    return 0


def _runs_root(args: argparse.Namespace) -> Path:
    from records import paths

    return Path(args.runs_root) if args.runs_root is not None else paths.runs_root()


def _cmd_cancel(args: argparse.Namespace) -> int:
    from sweeps.control import cancel
    from sweeps.spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.sweep)
        lines = cancel(sweep, _runs_root(args), args.runs)
    except SweepError as e:
        return _fail("cancel", e)
    print("\n".join(lines + [f"{sweep.name}: {len(lines)} run(s); `attnres status {args.sweep}` shows them"]))
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from sweeps.control import find_run, logs
    from sweeps.spec import SweepError

    try:
        print(logs(find_run(_runs_root(args), args.run), tail=args.tail))
    except SweepError as e:
        return _fail("logs", e)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sweeps.cli plan demo`` (the same as ``attnres plan demo``)."""
    parser = argparse.ArgumentParser(prog="python -m sweeps.cli")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
