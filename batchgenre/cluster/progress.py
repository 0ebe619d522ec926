"""Progress for anything a person waits for: a live bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger(__name__)

# Seconds between log lines when no terminal shows a bar.
EVERY_S = 10.0
# A rate from fewer files than this, after the first, is mostly noise: no time-left guess before it.
MIN_FILES_FOR_ESTIMATE = 10


class Progress:
    """Counts files done of ``total``; use as a context manager and call ``update(n)`` from any thread.

    Without a terminal it logs a line every ``every_s`` seconds (``EVERY_S``) from the start, whether or not
    files finish (workers warming up on a loaded machine can take a minute), and one at the end.
    The rate is measured from the first file done, so start-up does not drag it down, and the
    time left is given only once ``MIN_FILES_FOR_ESTIMATE`` more files have finished.
    """

    def __init__(self, total: int, *, what: str = "files", every_s: float | None = None):
        self.total, self.what = total, what
        self.every_s = EVERY_S if every_s is None else every_s
        self.done = 0
        self._bar = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._start = time.monotonic()
        self._first: tuple[float, int] | None = None  # (when, how many) the first update brought

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=" " + self.what, dynamic_ncols=True, smoothing=0.1)
        self._ticker = threading.Thread(target=self._tick, name="batchgenre-progress", daemon=True)
        self._ticker.start()
        return self

    def update(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.done += n
            if self._first is None:
                self._first = (time.monotonic(), self.done)
            if self._bar is not None:
                self._bar.update(n)

    def line(self) -> str:
        """Where things stand, in words: done of total, then a rate and the time left once they mean something."""
        with self._lock:
            now, done, first = time.monotonic(), self.done, self._first
        head = f"{done}/{self.total} {self.what}"
        if first is None or done - first[1] < MIN_FILES_FOR_ESTIMATE or now <= first[0]:
            return f"{head}, {_clock(now - self._start)} elapsed"
        rate = (done - first[1]) / (now - first[0])
        return f"{head}, {rate:.1f} {self.what}/s, {_clock((self.total - done) / rate)} left"

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            if self._bar is not None:
                with self._lock:
                    self._bar.refresh()  # keeps the elapsed time moving while no file finishes
            else:
                log.info("%s", self.line())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()
        elif exc[0] is None:
            log.info("%s", self.line())


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
