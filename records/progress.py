"""Progress lines for long loops, readable in a terminal and in a batch log alike:

    collect demo: reading runs 340/1000 (34%), 120/s, ETA 6 s

A line at most every ``every_s`` seconds, the first only after ``every_s`` (short work stays
quiet), and a last one at the end if any was printed. Plain lines rather than a redrawn bar
(tqdm's), because Slurm logs and `make` output are not terminals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    def __init__(self, label: str, unit: str = "", every_s: float = 2.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.unit, self.every_s = label, unit, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.t0 = clock()
        self.last = self.t0
        self.printed = False

    def line(self, done: int, total: int) -> str:
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = done / elapsed
        text = f"{self.label} {done}/{total} ({100 * done / max(total, 1):.0f}%), {rate:.3g}{self.unit}/s"
        if 0 < done < total:
            text += f", ETA {_eta((total - done) / rate)}"
        return text

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if done >= total and self.printed or now - self.last >= self.every_s:
            print(self.line(done, total), file=self.stream, flush=True)
            self.last, self.printed = now, True
