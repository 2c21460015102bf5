"""``python -m sweeps.collect SWEEP [--strict] ...``: the same as ``attnres collect``."""

import sys

from sweeps.cli import collect_main

sys.exit(collect_main())
