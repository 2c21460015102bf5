"""``python -m sweeps.collect SWEEP [--strict] ...``: the same as ``attnres collect``."""

import sys

from sweeps.collect import main

sys.exit(main())
