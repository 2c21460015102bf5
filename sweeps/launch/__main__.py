"""``python -m sweeps.launch RUN_DIR``: one local training process (what the local pool starts)."""

import sys

from sweeps.launch.training import main

sys.exit(main())
