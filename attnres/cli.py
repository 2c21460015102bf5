"""The `attnres` command line (also `python -m attnres`).

Each package registers its own subcommands:
    corpus    data prepare, data info
    harness   train
    sweeps    plan, launch, status, cancel, logs, collect
    analysis  fit, figures, report

Only the module of the command being run is imported (COMMANDS), so `attnres --help`, `attnres
--version` and the argument parsing of the commands that do not need them never pay the seconds
torch, pandas and scipy take to import (tests/test_cli.py checks which modules get loaded).
"""

from __future__ import annotations

import argparse
import signal
import sys

# command -> (module whose register() adds it, one line for `attnres --help`); the one-line help
# must match the module's own (tests/test_cli.py), it is repeated here so listing needs no import
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("corpus.cli", "prepare and inspect token data"),
    "train": ("harness.train_cli", "train (or resume) a single run"),
    "plan": ("sweeps.cli", "every run of a sweep with params, FLOPs and device-hours; spends nothing"),
    "launch": ("sweeps.cli", "train every unfinished run of a sweep (local, Slurm or debug)"),
    "status": ("sweeps.cli", "per-run state of a sweep (from run directories and the scheduler)"),
    "cancel": ("sweeps.cli", "stop runs on purpose (Slurm jobs or local trainers); launch leaves them"),
    "logs": ("sweeps.cli", "where a run's logs are, and their last lines"),
    "collect": ("sweeps.cli", "collect every run's losses into results/SWEEP/{runs,curves}.parquet"),
    "fit": ("analysis.cli", "fit scaling laws and the compute multiplier (writes fits.json)"),
    "figures": ("analysis.cli", "draw the figures (PNG + SVG) from the parquet alone"),
    "report": ("analysis.cli", "regenerate fits.json, the figures and report.md from the parquet alone"),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("attnres-scaling")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the given commands fully registered (default: all); the others are listed
    by name and help only, so `--help` and an unknown command's error still show every command."""
    parser = argparse.ArgumentParser(
        prog="attnres",
        description="Scaling-law harness for Attention Residuals: plan, launch, collect, fit, report.",
        epilog="Pipeline: attnres data prepare -> plan SWEEP -> launch SWEEP -> status SWEEP -> "
        "collect SWEEP -> fit/figures/report SWEEP. Run `attnres COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"attnres {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = list(COMMANDS) if commands is None else commands
    for module in dict.fromkeys(COMMANDS[c][0] for c in wanted if c in COMMANDS):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError as e:  # a package under construction must not break the others
            if getattr(e, "name", None) == module:
                continue
            raise
        mod.register(sub)
    for name, (module, help_line) in COMMANDS.items():
        if name not in sub.choices:  # listed only; chosen, its module could not be imported
            sub.add_parser(name, help=help_line).set_defaults(func=lambda _args, m=module: _unavailable(m))
    return parser


def _unavailable(module: str) -> int:
    print(f"attnres: this command's module {module} is not available in this installation", file=sys.stderr)
    return 2


def _command_of(argv: list[str]) -> str | None:
    """The command word: the first argument that is not an option (the top level has no option
    that takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `attnres plan demo | head` ends quietly, like any Unix tool
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser([command] if command in COMMANDS else [])
    args = parser.parse_args(argv)
    rc = args.func(args)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
