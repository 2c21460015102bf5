"""`python -m corpus prepare ...` / `python -m corpus info DIR`: `attnres data ...` on a CPU node."""

import sys

from corpus.cli import main

sys.exit(main())
