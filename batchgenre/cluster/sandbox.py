"""Per-file work in a helper process.

There, a file that hangs, crashes its decoder or needs too much memory costs that file alone.

Each worker thread keeps one helper (``python -m batchgenre.cluster.sandbox``), warmed up once and reused
for every file; a helper that crashes, runs past the time limit or outgrows the memory cap is
killed and replaced, and on Linux it dies with its worker even in the middle of a file. The
helper gets the file's path as data over a pipe: no file name ever reaches a shell.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from batchgenre.errors import BatchgenreError

DEFAULT_FILE_TIMEOUT = 300.0
# MiB of resident memory (peak) a helper may reach. A warm helper holds about 250 MiB, and peaks at
# 250-300 MiB on a 30 s clip or on a 60-minute file in 30 s windows; decoding a whole hour at once
# (featurize --duration 0) takes about 2.1 GiB (README, benchmarks/README.md).
DEFAULT_MEMORY_CAP = 1024
STARTUP_TIMEOUT = 300.0
# How often the caller looks at a working helper's memory. Between two looks the helper can pass
# the cap by what it touches in that time; its peak is read once more before any reply is trusted.
_WATCH_INTERVAL = 0.05
_HEADER = struct.Struct("!Q")
_READY = b"batchgenre-sandbox-ready"
# The helper's name in ps and /proc/PID/comm (at most 15 bytes), which says what it is doing.
STARTING, IDLE, BUSY = b"batchgenre:warm", b"batchgenre:idle", b"batchgenre:busy"
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


class FileTimeout(BatchgenreError):
    """A file took longer than the per-file time limit."""


class HelperCrashed(BatchgenreError):
    """The helper process died while working on a file, or while warming up for one."""


class MemoryCapExceeded(BatchgenreError):
    """A file took the helper past its memory cap."""


class HelperDidNotStart(BatchgenreError):
    """The helper failed before it was ready for its first file; the message says why."""


class _OverCap(Exception):
    """The helper's peak resident memory passed the cap."""


class Sandbox:
    """One helper process; ``call`` runs a module-level function in it and returns its result or raises its error.

    Parameters
    ----------
    memory_cap : int > 0
        MiB of resident memory the helper may reach, warm-up included; past it the helper is
        killed and the call fails with MemoryCapExceeded. Watched through ``/proc``, so on Linux only.
    """

    def __init__(self, *, memory_cap: int = DEFAULT_MEMORY_CAP) -> None:
        self.memory_cap = memory_cap
        self._process: subprocess.Popen | None = None
        self._warmed: set[str] = set()  # feature sets the running helper has warmed up

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def call(self, function: Callable, *args: Any, timeout: float, **kwargs: Any) -> Any:
        process = self._running()
        feature_set = _feature_set_of(function, args, kwargs)
        if feature_set is not None and feature_set not in self._warmed:
            self._warm_up(process, feature_set)
        return self._ask(
            process,
            (function, args, kwargs),
            timeout=timeout,
            late=FileTimeout(f"timed out after {timeout:g} s (raise the limit with --file-timeout)"),
            too_big=MemoryCapExceeded(
                f"needs more than {self.memory_cap} MiB of memory (raise the cap with --memory-cap)"
            ),
        )

    def _warm_up(self, process: subprocess.Popen, feature_set: str) -> None:
        """Warm the run's feature set (numba, filter banks) before its first file, within the start's limits.

        Only the sets a run uses are warmed, and the file's own time limit never pays for it: under
        load a warm-up takes seconds, which a short --file-timeout would count against every first file.
        """
        from batchgenre.cluster.connection import warm_up

        self._ask(
            process,
            (warm_up, (feature_set,), {}),
            timeout=STARTUP_TIMEOUT,
            late=HelperDidNotStart(f"the decoder helper did not warm up within {STARTUP_TIMEOUT:g} s"),
            too_big=HelperDidNotStart(
                f"the decoder helper did not start: it needs more than {self.memory_cap} MiB of memory "
                "before any file (raise the cap with --memory-cap)"
            ),
        )
        self._warmed.add(feature_set)

    def _ask(
        self, process: subprocess.Popen, request: tuple, *, timeout: float, late: Exception, too_big: Exception
    ) -> Any:
        """Send ``request`` and return its result.

        Past ``timeout`` or over the memory cap, the helper is ended and ``late`` or ``too_big`` raised.
        """
        _send(process.stdin, request)
        try:
            status, value = _receive(process.stdout.fileno(), timeout=timeout, check=self._watch(process))
        except TimeoutError:
            self.close()
            raise late from None
        except _OverCap:
            self.close()
            raise too_big from None
        except EOFError:
            reason = _exit_reason(_exit_code(process))
            self.close()
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
        # Startup errors (a broken install, say) are written to stderr before any pipe protocol
        # exists, so stderr goes to a file until the helper is ready; after that it goes nowhere.
        with tempfile.TemporaryFile() as startup_log:
            process = _spawn(
                [sys.executable, "-m", "batchgenre.cluster.sandbox", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=startup_log,
                bufsize=0,
            )
            try:
                _receive(process.stdout.fileno(), timeout=STARTUP_TIMEOUT, check=self._watch(process))
            except TimeoutError:
                _end(process)
                raise HelperDidNotStart(f"the decoder helper did not start within {STARTUP_TIMEOUT:g} s") from None
            except _OverCap:
                _end(process)
                raise HelperDidNotStart(
                    f"the decoder helper did not start: it needs more than {self.memory_cap} MiB of memory "
                    "before any file (raise the cap with --memory-cap)"
                ) from None
            except EOFError:
                code = _exit_code(process)
                reason = _exit_reason(code)
                _end(process)
                if code is not None and code < 0:  # a crash reads the same whether in warm-up or in a file
                    raise HelperCrashed(f"the decoder crashed ({reason})") from None
                startup_log.seek(0)
                said = _last_line(startup_log.read())
                raise HelperDidNotStart(
                    f"the decoder helper did not start: {said} ({reason})"
                    if said
                    else f"the decoder helper did not start ({reason})"
                ) from None
        self._process = process
        return process

    def _watch(self, process: subprocess.Popen) -> Callable[[], None]:
        """A check that raises _OverCap once ``process`` has ever held more than the cap."""

        def check() -> None:
            peak = _peak_kib(process.pid)
            if peak is not None and peak > self.memory_cap * 1024:
                raise _OverCap

        return check

    def close(self) -> None:
        if self._process is not None:
            _end(self._process)
            self._process = None
        self._warmed = set()


_idle: list[Sandbox] = []
_idle_lock = threading.Lock()


@contextlib.contextmanager
def borrowed(*, memory_cap: int = DEFAULT_MEMORY_CAP) -> Iterator[Sandbox]:
    """A helper of this process's pool for the caller alone: one per concurrently running task.

    ``memory_cap`` (MiB) is the helper's cap for this borrowing; see Sandbox.
    """
    with _idle_lock:
        box = _idle.pop() if _idle else Sandbox(memory_cap=memory_cap)
    if box.memory_cap != memory_cap:
        box.close()  # its peak so far was judged by another cap; a fresh helper is judged by this one alone
        box.memory_cap = memory_cap
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


_spawner: tuple[int, queue.Queue] | None = None
_spawner_lock = threading.Lock()


def _spawn(command: list[str], **popen_args: Any) -> subprocess.Popen:
    """``subprocess.Popen(command, **popen_args)``, run by this process's one spawning thread.

    A helper's parent-death signal fires when the *thread* that forked it ends, not its process,
    and Dask ends pool threads while the worker lives on (``secede``, ``rejoin``): a helper forked
    by a task's thread would be killed between two files. The spawning thread lives as long as
    the process.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():  # none yet, or a forked copy without the thread
            requests: queue.Queue = queue.Queue()
            threading.Thread(
                target=_spawn_forever, args=(requests,), name="batchgenre-sandbox-spawner", daemon=True
            ).start()
            _spawner = (os.getpid(), requests)
        requests = _spawner[1]
    reply: queue.Queue = queue.Queue(maxsize=1)
    requests.put((command, popen_args, reply))
    process, error = reply.get()
    if error is not None:
        raise error
    return process


def _spawn_forever(requests: queue.Queue) -> None:
    while True:
        command, popen_args, reply = requests.get()
        try:
            reply.put((subprocess.Popen(command, **popen_args), None))
        except Exception as error:  # the caller raises it in its own thread
            reply.put((None, error))


def _send(pipe, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_HEADER.pack(len(payload)) + payload)
    pipe.flush()


def _read_exactly(fd: int, n: int, deadline: float, check: Callable[[], None]) -> bytes:
    chunks, left = [], n
    while left:
        check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if not select.select([fd], [], [], min(remaining, _WATCH_INTERVAL))[0]:
            continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, *, timeout: float, check: Callable[[], None]) -> tuple[str, Any]:
    """The helper's next message; ``check`` runs while waiting and once more after the message, so
    a peak between two looks still counts."""
    deadline = time.monotonic() + timeout
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline, check))
    payload = _read_exactly(fd, size, deadline, check)
    check()
    return ("ready", None) if payload == _READY else pickle.loads(payload)


def _peak_kib(pid: int) -> int | None:
    """Peak resident memory (VmHWM) of a live process in KiB; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None  # gone, a zombie, or not Linux


def _exit_code(process: subprocess.Popen) -> int | None:
    """The exit status of a helper whose pipe closed (negative: killed by that signal); None if it hangs on."""
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _end(process: subprocess.Popen) -> None:
    """Kill ``process`` if it still runs, reap it and close our ends of its pipes."""
    process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()


def _last_line(text: bytes) -> str:
    """The last non-empty line a failed helper wrote: for a Python traceback, the exception."""
    lines = [line.strip() for line in text.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent: int) -> None:
    """Have Linux SIGKILL this helper when the thread that started it ends (see _spawn); elsewhere nothing.

    Without it a helper deep in a file outlives a killed worker, holding its memory and core.
    """
    if sys.platform != "linux":
        return
    if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the worker died before the signal was asked for: none will come
        sys.exit("the worker that started this helper is gone")


def _set_state(name: bytes) -> None:
    """Show what the helper is doing as its process name (Linux only)."""
    if sys.platform == "linux":
        _libc().prctl(_PR_SET_NAME, name, 0, 0, 0)


def _serve(parent: int) -> None:
    """The helper's loop: answer each (function, args, kwargs) request with ("ok", result) or ("error", exception)."""
    _die_with_parent(parent)  # first, so that no later step can outlive the worker
    _set_state(STARTING)
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    requests = os.fdopen(0, "rb", buffering=0)
    from batchgenre.cluster.connection import tune_worker, warm_up

    tune_worker()
    warm_up()
    # Decoders write their complaints (libmpg123's resync notes, say) straight to stderr, once per
    # file over a whole corpus; the reasons that matter come back through the pipe instead.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    _set_state(IDLE)
    channel.write(_HEADER.pack(len(_READY)) + _READY)
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        function, args, kwargs = pickle.loads(_read_all(requests, _HEADER.unpack(header)[0]))
        _set_state(BUSY)
        try:
            reply = ("ok", function(*args, **kwargs))
        except Exception as error:  # the caller decides what a failure means
            reply = ("error", error if _picklable(error) else RuntimeError(f"{type(error).__name__}: {error}"))
        _set_state(IDLE)
        _send(channel, reply)


def _feature_set_of(function: Callable, args: tuple, kwargs: dict) -> str | None:
    """The ``feature_set`` argument of a request (featurize's and classify's per-file functions take one), or None."""
    import inspect

    try:
        value = inspect.signature(function).bind(*args, **kwargs).arguments.get("feature_set")
    except (TypeError, ValueError):  # no signature, or arguments it does not take: the call itself will say
        return None
    return value if isinstance(value, str) else None


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
    _serve(int(sys.argv[1]))
