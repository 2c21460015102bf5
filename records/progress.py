"""Progress lines for long loops, readable in a terminal and in a batch log alike:

    collect demo: reading runs 340/1000 (34%), 120/s, ETA 6 s                       Progress (items)
      tokenizing (2 workers): 41% of 1.2 GB, 9,120 documents, 12.3 MB/s, ETA 1 min 20 s   ByteProgress

A line at most every ``every_s`` seconds, the first only after ``every_s`` (short work stays
quiet). ``Progress`` ends with a last line if any was printed; ``ByteProgress`` (bytes of input,
data preparation) always ends with a summary line from ``finish``. Plain lines rather than a
redrawn bar (tqdm's), because Slurm logs and `make` output are not terminals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Log = Callable[[str], None]


def stderr(msg: str) -> None:
    """The default Log: a line on stderr, flushed (progress of long work belongs there, not on stdout)."""
    print(msg, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """Seconds as "42 s", "2 min 05 s" or "1 h 05 min" (ETAs and elapsed times)."""
    s = max(0, int(round(seconds)))
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def size(n: float) -> str:
    """Bytes as a short human string (decimal units, as MB/s is)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def count(n: float) -> str:
    """A count as a short human string: 1.23M, 45.60k."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}"


class _Throttle:
    """The start time and the at-most-every-``every_s`` rule both kinds of progress share."""

    def __init__(self, every_s: float, clock: Callable[[], float]) -> None:
        self.every_s, self.clock = every_s, clock
        self.t0 = self.last = clock()

    def elapsed(self) -> float:
        return max(self.clock() - self.t0, 1e-9)

    def due(self) -> bool:
        """True (and the clock restarted) when ``every_s`` has passed since the last line."""
        now = self.clock()
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True


class Progress(_Throttle):
    """``p(done, total)`` for a loop over items; lines go to ``stream`` (stderr)."""

    def __init__(self, label: str, unit: str = "", every_s: float = 2.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(every_s, clock)
        self.label, self.unit = label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.printed = False

    def line(self, done: int, total: int) -> str:
        rate = done / self.elapsed()
        text = f"{self.label} {done}/{total} ({100 * done / max(total, 1):.0f}%), {rate:.3g}{self.unit}/s"
        if 0 < done < total:
            text += f", ETA {duration((total - done) / rate)}"
        return text

    def __call__(self, done: int, total: int) -> None:
        if (done >= total and self.printed) or self.due():
            print(self.line(done, total), file=self.stream, flush=True)
            self.last, self.printed = self.clock(), True


class ByteProgress(_Throttle):
    """``update(done, extra)`` logs "  <what>: 41% of 1.2 GB, <extra>, 12.3 MB/s, ETA 1 min 20 s" every
    ``every_s`` seconds, ``finish`` a summary. The rate is over the whole stage so far (``done`` counts
    bytes of this stage's input; ``skipped`` bytes, e.g. units reused on a resume, are left out of the
    rate). With ``text`` (bytes of text handled in this run) the MB/s is of text, the % and ETA of input."""

    def __init__(self, what: str, total: float, log: Log, every_s: float = 10.0, skipped: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(every_s, clock)
        self.what, self.total, self.log, self.skipped = what, total, log, skipped

    def _rate(self, done: float, text: float | None) -> tuple[float, float, str]:
        dt = self.elapsed()
        if text is None:
            return dt, max(done - self.skipped, 0.0) / dt, "MB/s"
        return dt, text / dt, "MB/s of text"

    def line(self, done: float, extra: str = "", text: float | None = None) -> str:
        dt, rate, unit = self._rate(done, text)
        input_rate = max(done - self.skipped, 0.0) / dt
        pct = f"{100 * done / self.total:.0f}% of {size(self.total)}" if self.total else size(done)
        eta = f", ETA {duration((self.total - done) / input_rate)}" if input_rate > 0 and self.total > done else ""
        return f"  {self.what}: {pct}{', ' + extra if extra else ''}, {rate / 1e6:.1f} {unit}{eta}"

    def update(self, done: float, extra: str = "", text: float | None = None) -> None:
        if self.due():
            self.log(self.line(done, extra, text))

    def finish(self, done: float, extra: str = "", text: float | None = None) -> None:
        dt, rate, unit = self._rate(done, text)
        text_part = f", {size(text)} of text" if text is not None else ""
        self.log(f"  {self.what}: {size(done)}{text_part}{', ' + extra if extra else ''} in {dt:.1f} s "
                 f"({rate / 1e6:.1f} {unit})")
