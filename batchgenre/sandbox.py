"""Per-file work in a helper process, so a file that hangs or crashes its decoder costs that file alone.

Each worker thread keeps one helper (``python -m batchgenre.sandbox``), warmed up once and reused
for every file; a helper that crashes or runs past the time limit is killed and replaced. The
helper gets the file's path as data over a pipe: no file name ever reaches a shell.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

from batchgenre.errors import BatchgenreError

DEFAULT_FILE_TIMEOUT = 300.0
STARTUP_TIMEOUT = 300.0
_HEADER = struct.Struct("!Q")
_READY = b"batchgenre-sandbox-ready"


class FileTimeout(BatchgenreError):
    """A file took longer than the per-file time limit."""


class HelperCrashed(BatchgenreError):
    """The helper process died while working on a file."""


class Sandbox:
    """One helper process; ``call`` runs a module-level function in it and returns its result or raises its error."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def call(self, function: Callable, *args: Any, timeout: float, **kwargs: Any) -> Any:
        process = self._running()
        _send(process.stdin, (function, args, kwargs))
        try:
            status, value = _receive(process.stdout.fileno(), timeout=timeout)
        except TimeoutError:
            self.close()
            raise FileTimeout(f"timed out after {timeout:g} s (raise the limit with --file-timeout)") from None
        except EOFError:
            reason = _death(process)
            self._process = None
            raise HelperCrashed(f"the decoder crashed ({reason})") from None
        if status == "error":
            raise value
        return value

    def start(self) -> None:
        """Start the helper now rather than at the first file."""
        self._running()

    def _running(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        # Decoders write their complaints (libmpg123's resync notes, say) straight to stderr, once
        # per file over a whole corpus; the reasons that matter come back through the pipe instead.
        process = subprocess.Popen(
            [sys.executable, "-m", "batchgenre.sandbox"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
        )
        try:
            status, _ = _receive(process.stdout.fileno(), timeout=STARTUP_TIMEOUT)
        except (TimeoutError, EOFError):
            process.kill()
            raise RuntimeError(f"the sandbox helper did not start ({_death(process)})") from None
        self._process = process
        return process

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


_idle: list[Sandbox] = []
_idle_lock = threading.Lock()


@contextlib.contextmanager
def borrowed() -> Iterator[Sandbox]:
    """A helper of this process's pool for the caller alone: one per concurrently running task."""
    with _idle_lock:
        box = _idle.pop() if _idle else Sandbox()
    try:
        yield box
    finally:
        with _idle_lock:
            _idle.append(box)


def start() -> int:
    """Start a helper in this process's pool (``client.run(start)`` warms workers up); returns its pid."""
    with borrowed() as box:
        box.start()
        return box.pid


def _send(pipe, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_HEADER.pack(len(payload)) + payload)
    pipe.flush()


def _read_exactly(fd: int, n: int, deadline: float) -> bytes:
    chunks, left = [], n
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, *, timeout: float) -> tuple[str, Any]:
    deadline = time.monotonic() + timeout
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    payload = _read_exactly(fd, size, deadline)
    return ("ready", None) if payload == _READY else pickle.loads(payload)


def _death(process: subprocess.Popen) -> str:
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        return "it stopped answering"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _serve() -> None:
    """The helper's loop: answer each (function, args, kwargs) request with ("ok", result) or ("error", exception)."""
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    requests = os.fdopen(0, "rb", buffering=0)
    from batchgenre.cluster import tune_worker, warm_up

    tune_worker()
    warm_up()
    channel.write(_HEADER.pack(len(_READY)) + _READY)
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        function, args, kwargs = pickle.loads(_read_all(requests, _HEADER.unpack(header)[0]))
        try:
            reply = ("ok", function(*args, **kwargs))
        except Exception as error:  # the caller decides what a failure means
            reply = ("error", error if _picklable(error) else RuntimeError(f"{type(error).__name__}: {error}"))
        _send(channel, reply)


def _read_all(stream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _picklable(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


if __name__ == "__main__":
    _serve()
