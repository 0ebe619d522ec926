"""The store's one-writer lock.

Generations of small JSON files beside the store, created only if absent, with a heartbeat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator

from batchgenre.errors import BatchgenreError

log = logging.getLogger(__name__)


LOCK_SUFFIX = ".lock"  # features.zarr's lock files live in features.zarr.lock/
LOCK_PATTERN = re.compile(r"writer\.lock\.(\d+)\.json")  # writer.lock.<generation>.json


LOCK_STALE_S = 120.0  # a lock whose heartbeat is older than this belongs to a dead run


_TAKE_ATTEMPTS = 20  # rounds of losing a race before giving up; each lost round means another run got in


class _LockLost(BaseException):
    """Raised in the main thread by the heartbeat thread's signal.

    A BaseException so no ``except Exception`` eats it.
    """


@contextlib.contextmanager
def writer_lock(url: str, *, heartbeat_s: float = 30.0) -> Iterator[None]:
    """Hold the store's one-writer lock while the with-block runs; refuse clearly when another run holds it.

    The lock is a series of small JSON files in a folder beside the store (any fsspec URL):
    ``features.zarr.lock/writer.lock.<n>.json``, one per generation, where zarr, xarray and anything
    else that lists the store's members never look; each naming a host, a process and a heartbeat.
    A run takes generation n+1
    when n is released or dead, by creating its file only if absent, so of two runs that start
    together, or take over the same dead lock together, exactly one wins the create; generations
    only grow, so a run that created one from an old listing sees a newer one and gives it up.
    "Only if absent" is ``os.link`` on a local path and a PUT with ``If-None-Match: *`` through
    s3fs; other fsspec filesystems get their ``pipe_file(mode="create")``, which in fsspec's
    generic version is check-then-write, so there two runs starting in the same instant can both
    proceed.

    A thread refreshes the heartbeat. When it cannot (the store is gone or unwritable, or a run
    took the lock over after this one stopped beating for ``LOCK_STALE_S``), it interrupts the
    main thread with SIGUSR1 (when the lock was taken there; the previous handler is put back at
    exit), and the run stops with a ``BatchgenreError`` naming the store and the reason. A run
    writes only its own generation and deletes only its own and older ones.
    """
    lock = _Lock(url)
    lock.take()
    heartbeat = _Heartbeat(lock, every_s=heartbeat_s)
    try:
        yield
    except _LockLost:  # the heartbeat's interrupt: its reason is raised below
        pass
    finally:
        heartbeat.stop()
        # Raised from finally on purpose: whatever else broke, losing the lock is why.
        if heartbeat.failure is not None:
            raise BatchgenreError(f"{url}: this run stopped: {heartbeat.failure}") from None
        try:
            lock.release()
        except _Stolen as error:  # lost between two heartbeats: the run's writes may have crossed another's
            raise BatchgenreError(f"{url}: {error}") from None
        except OSError as error:  # the work is done; the next run takes the lock over once it looks dead
            log.warning("%s: could not release the writer lock (%s: %s)", url, type(error).__name__, error)


class _Lock:
    """One run's generation of the writer lock: take it, refresh it, release it."""

    def __init__(self, url: str) -> None:
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as error:  # e.g. s3:// without s3fs installed
            raise BatchgenreError(f"{url}: {error}") from None
        self.url = url
        self.store_root = root.rstrip("/")
        self.root = self.store_root + LOCK_SUFFIX
        self.lock_url = url.rstrip("/") + LOCK_SUFFIX
        self.generation = -1
        self.store_seen = False  # the store folder existed at a heartbeat: its going away stops the run
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def path(self, generation: int) -> str:
        return f"{self.root}/writer.lock.{generation}.json"

    def take(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        self.clear_legacy()
        self.store_seen = self.fs.exists(self.store_root)
        for _ in range(_TAKE_ATTEMPTS):
            top = self.newest()
            held = self.read(top) if top >= 0 else {"released": True}
            if held is None:  # deleted since it was listed: look again
                continue
            if not held.get("released") and _alive(held):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.get("started", 0)))
                raise BatchgenreError(
                    f"{self.url} is being written by another featurize (pid {held.get('pid')} on {held.get('host')}, "
                    f"since {since}): wait for it to finish, "
                    f"or delete {self.lock_url}/writer.lock.{top}.json if that run is gone"
                )
            if not _create(self.fs, self.path(top + 1), self.content()):
                continue  # another run created it first: look at what it holds
            if self.newest() != top + 1:
                # Made from an old listing: a generation we never saw is newer, so ours was never the lock.
                self.fs.rm_file(self.path(top + 1))
                continue
            self.generation = top + 1
            if not held.get("released"):
                log.warning("taking over the lock of a run that died (pid %s on %s)", held.get("pid"), held.get("host"))
            for old in range(top + 1):  # superseded generations, which no run holds any more
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(self.path(old))
            return
        raise BatchgenreError(f"{self.url}: other runs kept taking the writer lock first; try again")

    def clear_legacy(self) -> None:
        """Remove the locks earlier versions kept inside the store, once their run is over; refuse while one runs.

        Inside the store they made zarr warn on every listing of its members.
        """
        self.fs.invalidate_cache(self.store_root)
        try:
            names = self.fs.ls(self.store_root, detail=False)
        except FileNotFoundError:
            return
        for name in names:
            if not LOCK_PATTERN.fullmatch(posixpath.basename(name)):
                continue
            try:
                held = json.loads(self.fs.cat_file(name))
            except (FileNotFoundError, json.JSONDecodeError):
                held = {"released": True}
            if not held.get("released") and _alive(held):
                raise BatchgenreError(
                    f"{self.url} is being written by an older batchgenre "
                    f"(pid {held.get('pid')} on {held.get('host')}): "
                    f"wait for it to finish, or delete {self.url}/{posixpath.basename(name)} if that run is gone"
                )
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(name)

    def renew(self) -> None:
        """Write a fresh heartbeat, after checking that the lock is still this run's and its store still there."""
        self.check_held()
        exists = self.fs.exists(self.store_root)
        if self.store_seen and not exists:
            raise _Stolen(f"its store {self.url} was deleted")
        self.store_seen = exists
        _put(self.fs, self.path(self.generation), self.content())

    def release(self) -> None:
        """Leave the generation as released.

        Never deleted: generations only grow, which is what makes takeover safe.
        """
        self.check_held()
        _put(self.fs, self.path(self.generation), self.content(released=True))

    def check_held(self) -> None:
        newest = self.newest()
        if newest == self.generation:
            return
        if newest < self.generation:
            raise _Stolen(f"its lock file {self.lock_url}/writer.lock.{self.generation}.json was deleted")
        held = self.read(newest) or {}
        raise _Stolen(
            f"another featurize (pid {held.get('pid')} on {held.get('host')}) took its writer lock over, "
            f"because this run's heartbeat had stopped for over {LOCK_STALE_S:g} s"
        )

    def newest(self) -> int:
        """The newest generation in the store, -1 when there is none."""
        self.fs.invalidate_cache(self.root)  # s3fs caches listings; another run's lock must be seen at once
        try:
            names = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return -1
        found = (LOCK_PATTERN.fullmatch(posixpath.basename(name)) for name in names)
        return max((int(m.group(1)) for m in found if m), default=-1)

    def read(self, generation: int) -> dict | None:
        path = self.path(generation)
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            raise BatchgenreError(
                f"{self.lock_url}/writer.lock.{generation}.json is not a batchgenre lock: "
                "delete it if no featurize is running"
            ) from None

    def content(self, *, released: bool = False) -> bytes:
        return json.dumps({**self.me, "heartbeat": time.time(), "released": released}).encode()


class _Stolen(Exception):
    """The lock is no longer this run's."""


class _Heartbeat:
    """A thread that refreshes the lock every ``every_s`` seconds and interrupts the main thread when it cannot."""

    def __init__(self, lock: _Lock, *, every_s: float) -> None:
        self.lock, self.every_s = lock, every_s
        self.failure: str | None = None
        self._stopping = threading.Event()
        # Only the main thread can be interrupted by a signal; elsewhere the failure is raised at exit.
        self._main = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_kill"):
            self._main = threading.get_ident()
            self._previous = signal.signal(signal.SIGUSR1, _raise_lock_lost)
        self._thread = threading.Thread(target=self._run, name="batchgenre-lock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.every_s):
            try:
                self.lock.renew()
            except _Stolen as error:
                self.failure = str(error)
            except Exception as error:  # the store's own error, whatever the filesystem: said, not swallowed
                reason = " ".join(f"{type(error).__name__}: {error}".split())
                self.failure = f"could not refresh its writer lock ({reason})"
            if self.failure is not None:
                if self._main is not None and not self._stopping.is_set():
                    signal.pthread_kill(self._main, signal.SIGUSR1)
                return

    def stop(self) -> None:
        while True:
            try:
                self._stopping.set()
                self._thread.join()
                break
            except _LockLost:  # sent just before stop: the failure it announces is reported by the caller
                pass
        if self._main is not None:
            signal.signal(signal.SIGUSR1, self._previous)


def _raise_lock_lost(signum, frame) -> None:
    raise _LockLost


def _create(fs, path: str, data: bytes) -> bool:
    """Write ``data`` at ``path`` only if nothing is there, whole; False when something is."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        # O_EXCL would expose a half-written file to readers; a link of a finished file is atomic and exclusive.
        tmp = _written_beside(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True
    try:
        fs.pipe_file(path, data, mode="create")  # s3fs: a PUT with If-None-Match: *
    except FileExistsError:
        return False
    return True


def _put(fs, path: str, data: bytes) -> None:
    """Overwrite ``path`` with ``data`` so that a reader sees the old content or the new, never half."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        os.replace(_written_beside(path, data), path)
    else:
        fs.pipe_file(path, data)  # an object PUT is atomic


def _alive(lock: dict) -> bool:
    if lock.get("host") == socket.gethostname():
        try:
            os.kill(int(lock.get("pid", -1)), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - float(lock.get("heartbeat", 0)) < LOCK_STALE_S


def _written_beside(path: str, data: bytes) -> str:
    """A finished file of ``data`` under a unique name beside ``path``, for an atomic link or rename onto it."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    return tmp
