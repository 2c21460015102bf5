"""Progress lines for long preparation stages: amount done, rate and ETA, at most every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Log = Callable[[str], None]


def hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def size(n: float) -> str:
    """Bytes as a short human string (decimal units, as MB/s is)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}"


class Progress:
    """`update(done, extra)` logs "  <what>: 41% of 1.2 GB, <extra>, 12.3 MB/s, ETA 1m20s" every
    `every_s` seconds (and on `finish`). The rate is over the whole stage so far (`done` counts bytes
    of this stage; `skipped` bytes, e.g. units reused on a resume, are left out of the rate)."""

    def __init__(self, what: str, total: float, log: Log, every_s: float = 10.0, skipped: float = 0.0) -> None:
        self.what, self.total, self.log, self.every_s, self.skipped = what, total, log, every_s, skipped
        self.t0 = self.t_last = time.monotonic()

    def _rate(self, done: float, text: float | None) -> tuple[float, float, str]:
        dt = max(time.monotonic() - self.t0, 1e-9)
        if text is None:
            return dt, max(done - self.skipped, 0.0) / dt, "MB/s"
        return dt, text / dt, "MB/s of text"

    def line(self, done: float, extra: str = "", text: float | None = None) -> str:
        """`text`: bytes of text handled in this run; the MB/s is then of text (the % and ETA of input)."""
        dt, rate, unit = self._rate(done, text)
        input_rate = max(done - self.skipped, 0.0) / dt
        pct = f"{100 * done / self.total:.0f}% of {size(self.total)}" if self.total else size(done)
        eta = f", ETA {hms((self.total - done) / input_rate)}" if input_rate > 0 and self.total > done else ""
        return f"  {self.what}: {pct}{', ' + extra if extra else ''}, {rate / 1e6:.1f} {unit}{eta}"

    def update(self, done: float, extra: str = "", text: float | None = None) -> None:
        now = time.monotonic()
        if now - self.t_last >= self.every_s:
            self.t_last = now
            self.log(self.line(done, extra, text))

    def finish(self, done: float, extra: str = "", text: float | None = None) -> None:
        dt, rate, unit = self._rate(done, text)
        text_part = f", {size(text)} of text" if text is not None else ""
        self.log(f"  {self.what}: {size(done)}{text_part}{', ' + extra if extra else ''} in {dt:.1f} s "
                 f"({rate / 1e6:.1f} {unit})")
