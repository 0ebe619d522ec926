"""The zarr v3 feature store: create, open, plan rows, write a block, read slices, resume state.

Layout (N rows, D features, B rows per chunk; every array is chunked by B rows):

    features  float32 [N, D]   NaN until the row is first done
    label     int16   [N]      index into attrs["genres"], -1 when unlabelled
    path      str     [N]      relative to attrs["root"]
    augment   uint8   [N]      0 for the file itself, k > 0 for its k-th altered copy (featurize --augment)
    window    uint16  [N]      which window of its file (or copy) the row is: 0 for a whole-excerpt row
    status    uint8   [N]      PENDING, DONE or FAILED
    error     str     [N]      the reason a row failed, "" otherwise
    size      int64   [N]      the file's size in bytes when its row was planned, -1 unknown
    mtime_ns  int64   [N]      the file's modification time (ns) then, -1 unknown

With ``attrs["window"]`` S (featurize --window), each file has ``duration // S`` rows, window j
covering ``[offset + j*S, offset + (j+1)*S)``, planned together so a block holds its files' windows; without
it (None, or absent in older stores, which also lack the ``window`` array) a row is the whole excerpt.

The client writes ``path``, ``label``, ``augment``, ``window``, ``size`` and ``mtime_ns`` when it plans rows, and sends
rows whose file was replaced back to PENDING, before any task runs; the task of block k alone writes rows
[k*B, (k+1)*B) of ``features``, ``error`` and, last, ``status``. A chunk write is whole or absent (zarr-python
3.1.3 and later write a local chunk to a temporary file and rename it; an object store's PUT is atomic), so a
block whose status chunk still says PENDING is simply redone. Stores made before ``size`` and ``mtime_ns``
existed get them on their next featurize (see ``FeatureStore.note_replaced_files``).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from batchgenre.errors import BatchgenreError, shown

log = logging.getLogger(__name__)

STORE_FORMAT = 1
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
ROW_ARRAYS = ("features", "label", "path", "augment", "status", "error")
MAX_AUGMENT = int(np.iinfo(np.uint8).max)  # altered copies a file can have: the augment column is uint8
STAT_ARRAYS = ("size", "mtime_ns")  # not in ROW_ARRAYS: older stores lack them and must still open
UNKNOWN_STAT = -1
MAX_WINDOWS = int(np.iinfo(np.uint16).max)  # windows a file can have: the window column is uint16
# Attributes that decide what a feature vector means: a rerun must agree on all of them.
AUDIO_KEYS = ("feature_set", "feature_params", "feature_names", "sample_rate", "offset", "duration", "window")


@dataclass(frozen=True)
class BlockRows:
    """What one block task writes.

    features [shape=(n, D), dtype=float32], status [shape=(n,), dtype=uint8], error [shape=(n,), str].
    """

    features: np.ndarray
    status: np.ndarray
    error: np.ndarray


class FeatureStore:
    """A feature store on disk (or any fsspec URL), opened by the client or by a block task."""

    def __init__(self, group: Any, url: str):
        self.group = group
        self.url = url

    # -- creating and opening ---------------------------------------------------------------

    @classmethod
    def create(cls, url: str, *, attrs: dict, n_features: int, rows_per_chunk: int) -> "FeatureStore":
        """A new, empty store whose group attributes are ``attrs`` (plus format and chunking)."""
        import zarr

        group = zarr.open_group(url, mode="a")  # the folder already holds the writer lock
        b = rows_per_chunk
        group.create_array("features", shape=(0, n_features), chunks=(b, n_features), dtype="float32", fill_value=np.nan)
        group.create_array("label", shape=(0,), chunks=(b,), dtype="int16", fill_value=-1)
        group.create_array("path", shape=(0,), chunks=(b,), dtype=str)
        group.create_array("augment", shape=(0,), chunks=(b,), dtype="uint8", fill_value=0)
        group.create_array("window", shape=(0,), chunks=(b,), dtype="uint16", fill_value=0)
        group.create_array("status", shape=(0,), chunks=(b,), dtype="uint8", fill_value=PENDING)
        group.create_array("error", shape=(0,), chunks=(b,), dtype=str)
        group.attrs.update({**attrs, "store_format": STORE_FORMAT, "rows_per_chunk": b})
        store = cls(group, url)
        store._add_stat_arrays()
        return store

    @classmethod
    def open(cls, url: str, *, mode: str = "r") -> "FeatureStore":
        """Open an existing store; a clear error when ``url`` holds none."""
        import zarr

        try:
            group = zarr.open_group(url, mode=mode)
        except FileNotFoundError:
            raise BatchgenreError(f"{url}: no feature store there; make one with `batchgenre featurize`") from None
        missing = [name for name in ROW_ARRAYS if name not in group]
        if group.attrs.get("store_format") != STORE_FORMAT or missing:
            raise BatchgenreError(f"{url}: not a batchgenre feature store (format {STORE_FORMAT})")
        return cls(group, url)

    @staticmethod
    def exists(url: str) -> bool:
        import zarr

        try:
            zarr.open_group(url, mode="r")
        except FileNotFoundError:
            return False
        return True

    # -- what it holds ----------------------------------------------------------------------

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def rows_per_chunk(self) -> int:
        return int(self.group.attrs["rows_per_chunk"])

    @property
    def n_rows(self) -> int:
        return int(self.group["path"].shape[0])

    @property
    def window(self) -> float | None:
        """Seconds per window row (featurize --window); None when a row is a file's whole excerpt."""
        return self.group.attrs.get("window")

    @property
    def genres(self) -> list[str]:
        return list(self.group.attrs.get("genres", []))

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one array; a store older than the ``window`` array reads as all window 0."""
        if name == "window" and name not in self.group:
            return np.zeros(len(range(*slice(start, stop).indices(self.n_rows))), dtype=np.uint16)
        return self.group[name][start:stop]

    def block_bounds(self, block: int) -> tuple[int, int]:
        b = self.rows_per_chunk
        return block * b, min((block + 1) * b, self.n_rows)

    @property
    def n_blocks(self) -> int:
        return -(-self.n_rows // self.rows_per_chunk)

    def check_compatible(self, attrs: dict) -> None:
        """Refuse to mix feature vectors that mean different things in one store."""
        mine = self.attrs
        for key in AUDIO_KEYS:
            if mine.get(key) != attrs.get(key):
                raise BatchgenreError(
                    f"{self.url} was made with {key}={shown(mine.get(key))}, this run asks for "
                    f"{key}={shown(attrs.get(key))}: pass the store's options or choose another --out"
                )

    # -- writing ----------------------------------------------------------------------------

    def plan_rows(
        self, paths: list[str], labels: list[int], augment: list[int] | None = None, windows: list[int] | None = None
    ) -> None:
        """Plan new rows (client only, before their tasks run): write path, label, augment and window.

        A plan killed between growing the arrays and writing their paths leaves rows with an
        empty path; they are filled first, and the arrays grow only for the rest. Their file
        stats start unknown; ``note_replaced_files`` records them.
        """
        augment = augment if augment is not None else [0] * len(paths)
        windows = windows if windows is not None else [0] * len(paths)
        free = np.flatnonzero(self.column("path") == "")
        rows = np.concatenate([free[: len(paths)], np.arange(self.n_rows, self.n_rows + max(0, len(paths) - len(free)))])
        stop = max(self.n_rows, int(rows.max()) + 1) if len(rows) else self.n_rows
        for name in ROW_ARRAYS + ("window",) + STAT_ARRAYS:
            if name not in self.group:  # a store older than these columns: no window, and note_replaced_files adds stats
                continue
            array = self.group[name]
            array.resize((stop, *array.shape[1:]))
            if name in STAT_ARRAYS:
                array.set_coordinate_selection(rows, UNKNOWN_STAT)  # a free row may hold a killed plan's stat
        columns = [("label", labels, "int16"), ("augment", augment, "uint8"), ("window", windows, "uint16")]
        for name, values, dtype in columns + [("path", paths, str)]:  # path last: it marks the row planned
            if name not in self.group:
                continue
            self.group[name].set_coordinate_selection(rows, np.asarray(values, dtype=object).astype(dtype))

    def note_replaced_files(self, stats: np.ndarray) -> np.ndarray:
        """Send rows whose file was replaced since it was planned back to PENDING (client only, before tasks run).

        Parameters
        ----------
        stats : np.ndarray [shape=(N, 2), dtype=int64]
            Each row's file size and mtime_ns now (``file_stats``), -1 where the file is gone.

        Returns
        -------
        np.ndarray [shape=(k,), dtype=int64]
            The rows sent back to PENDING.

        A row with no recorded stat (planned by a run killed before recording it, or a store made
        before these columns) takes the current one without being computed again: nothing tells
        whether its file changed, and recomputing a whole older store on upgrade would cost hours.
        Status is written before the stats, so a run killed in between leaves the row pending.
        """
        self._add_stat_arrays()
        recorded = np.stack([self.column(name) for name in STAT_ARRAYS], axis=1)
        present = (stats >= 0).all(axis=1)
        unknown = (recorded == UNKNOWN_STAT).any(axis=1)
        differs = present & (recorded != stats).any(axis=1)
        replaced = np.flatnonzero(differs & ~unknown & (self.column("status") != PENDING))
        if len(replaced):
            self.group["status"].set_coordinate_selection(replaced, PENDING)
        update = np.flatnonzero(differs)
        if len(update):
            for i, name in enumerate(STAT_ARRAYS):
                self.group[name].set_coordinate_selection(update, stats[update, i])
        return replaced

    def _add_stat_arrays(self) -> None:
        """Give a store made before ``size`` and ``mtime_ns`` those arrays, all unknown."""
        for name in STAT_ARRAYS:
            if name not in self.group:
                self.group.create_array(
                    name, shape=(self.n_rows,), chunks=(self.rows_per_chunk,), dtype="int64", fill_value=UNKNOWN_STAT
                )

    def add_genres(self, genres: list[str]) -> None:
        self.group.attrs["genres"] = self.genres + [g for g in genres if g not in self.genres]

    def write_block(self, block: int, rows: BlockRows) -> None:
        """Write one block's whole chunks; status goes last, so a half-written block reads as pending."""
        start, stop = self.block_bounds(block)
        if len(rows.status) != stop - start:
            raise ValueError(f"block {block} has {stop - start} rows, got {len(rows.status)}")
        self.group["features"][start:stop] = rows.features
        self.group["error"][start:stop] = rows.error
        self.group["status"][start:stop] = rows.status


LOCK_PATTERN = re.compile(r"writer\.lock\.(\d+)\.json")  # writer.lock.<generation>.json
LOCK_STALE_S = 120.0  # a lock whose heartbeat is older than this belongs to a dead run
_TAKE_ATTEMPTS = 20  # rounds of losing a race before giving up; each lost round means another run got in


class _LockLost(BaseException):
    """Raised in the main thread by the heartbeat thread's signal; a BaseException so no ``except Exception`` eats it."""


@contextlib.contextmanager
def writer_lock(url: str, *, heartbeat_s: float = 30.0) -> Iterator[None]:
    """Hold the store's one-writer lock while the with-block runs; refuse clearly when another run holds it.

    The lock is a series of small JSON files in the store (any fsspec URL), ``writer.lock.<n>.json``,
    one per generation, each naming a host, a process and a heartbeat. A run takes generation n+1
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
        self.url, self.root = url, root.rstrip("/")
        self.generation = -1
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def path(self, generation: int) -> str:
        return f"{self.root}/writer.lock.{generation}.json"

    def take(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        for _ in range(_TAKE_ATTEMPTS):
            top = self.newest()
            held = self.read(top) if top >= 0 else {"released": True}
            if held is None:  # deleted since it was listed: look again
                continue
            if not held.get("released") and _alive(held):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.get("started", 0)))
                raise BatchgenreError(
                    f"{self.url} is being written by another featurize (pid {held.get('pid')} on {held.get('host')}, "
                    f"since {since}): wait for it to finish, or delete {self.url}/writer.lock.{top}.json if that run is gone"
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

    def renew(self) -> None:
        """Write a fresh heartbeat, after checking that the lock is still this run's."""
        self.check_held()
        _put(self.fs, self.path(self.generation), self.content())

    def release(self) -> None:
        """Leave the generation as released (never deleted: generations only grow, which is what makes takeover safe)."""
        self.check_held()
        _put(self.fs, self.path(self.generation), self.content(released=True))

    def check_held(self) -> None:
        newest = self.newest()
        if newest == self.generation:
            return
        if newest < self.generation:
            raise _Stolen(f"its lock file {self.url}/writer.lock.{self.generation}.json was deleted")
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
                f"{self.url}/writer.lock.{generation}.json is not a batchgenre lock: delete it if no featurize is running"
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


def file_stats(root: Path, relpaths: list[str]) -> np.ndarray:
    """Size and mtime_ns [shape=(n, 2), dtype=int64] of each file under ``root``; -1 for one that is gone, or ""."""
    stats = np.full((len(relpaths), 2), UNKNOWN_STAT, dtype=np.int64)
    seen: dict[str, tuple[int, int]] = {}  # a file's altered copies are more rows of the same file
    folder = str(root)  # joined as strings: a Path per file cost more than its stat
    for i, relpath in enumerate(relpaths):
        if not relpath:
            continue
        if relpath not in seen:
            try:
                st = os.stat(os.path.join(folder, relpath))
                seen[relpath] = (st.st_size, st.st_mtime_ns)
            except OSError:
                seen[relpath] = (UNKNOWN_STAT, UNKNOWN_STAT)
        stats[i] = seen[relpath]
    return stats


def rows_to_compute(status: np.ndarray, *, retry_failed: bool) -> np.ndarray:
    """Mask [shape=(n,), dtype=bool] of the rows a run computes: pending ones, and failed ones on a retry."""
    return (status == PENDING) | (retry_failed & (status == FAILED))


def _written_beside(path: str, data: bytes) -> str:
    """A finished file of ``data`` under a unique name beside ``path``, for an atomic link or rename onto it."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    return tmp
