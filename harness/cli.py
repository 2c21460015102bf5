"""The `attnres` command line (also `python -m harness`).

Each package registers its own subcommands:
    harness   data prepare, train
    sweeps    plan, launch, status, collect
    analysis  fit, figures, report
"""

from __future__ import annotations

import argparse
import signal
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnres",
        description="Scaling-law harness for Attention Residuals: plan, launch, collect, fit, report.",
        epilog="Pipeline: attnres data prepare -> plan SWEEP -> launch SWEEP -> status SWEEP -> "
        "collect SWEEP -> fit/figures/report SWEEP. Run `attnres COMMAND --help` for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in ("harness.data", "harness.train", "sweeps.cli", "analysis.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError as e:  # a package under construction must not break the others
            if getattr(e, "name", None) == module:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `attnres plan demo | head` ends quietly, like any Unix tool
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    rc = args.func(args)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
