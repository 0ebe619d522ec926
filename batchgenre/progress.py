"""Progress for anything a person waits for: a live bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """Counts files done of ``total``; use as a context manager and call ``update(n)``."""

    def __init__(self, total: int, *, what: str = "files", every_s: float = 10.0):
        self.total, self.what, self.every_s = total, what, every_s
        self.done = 0
        self._bar = None
        self._start = self._last_log = time.monotonic()

    def __enter__(self) -> "Progress":
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=" " + self.what, dynamic_ncols=True, smoothing=0.1)
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_log >= self.every_s or self.done >= self.total:
            self._last_log = now
            rate = self.done / max(now - self._start, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info("%d/%d %s, %.1f %s/s, %s left", self.done, self.total, self.what, rate, self.what, _clock(left))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
