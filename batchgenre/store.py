"""The zarr v3 feature store: create, open, plan rows, write a block, read slices, resume state.

Layout (N rows, D features, B rows per chunk; every array is chunked by B rows):

    features  float32 [N, D]   NaN until the row is done
    label     int16   [N]      index into attrs["genres"], -1 when unlabelled
    path      str     [N]      relative to attrs["root"]
    augment   uint8   [N]      0 for the file itself, k > 0 for its k-th altered copy (featurize --augment)
    status    uint8   [N]      PENDING, DONE or FAILED
    error     str     [N]      the reason a row failed, "" otherwise

The client writes ``path``, ``label`` and ``augment`` when it plans rows, before any task runs; the task of
block k alone writes rows [k*B, (k+1)*B) of ``features``, ``error`` and, last, ``status``.
Chunks are written atomically, so a block whose status chunk still says PENDING is simply redone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from batchgenre.errors import BatchgenreError, shown

log = logging.getLogger(__name__)

STORE_FORMAT = 1
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
ROW_ARRAYS = ("features", "label", "path", "augment", "status", "error")
MAX_AUGMENT = int(np.iinfo(np.uint8).max)  # altered copies a file can have: the augment column is uint8
# Attributes that decide what a feature vector means: a rerun must agree on all of them.
AUDIO_KEYS = ("feature_set", "feature_params", "feature_names", "sample_rate", "offset", "duration")


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
        group.create_array("status", shape=(0,), chunks=(b,), dtype="uint8", fill_value=PENDING)
        group.create_array("error", shape=(0,), chunks=(b,), dtype=str)
        group.attrs.update({**attrs, "store_format": STORE_FORMAT, "rows_per_chunk": b})
        return cls(group, url)

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
    def genres(self) -> list[str]:
        return list(self.group.attrs.get("genres", []))

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one array."""
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

    def plan_rows(self, paths: list[str], labels: list[int], augment: list[int] | None = None) -> None:
        """Plan new rows (client only, before their tasks run): write path, label and augment.

        A plan killed between growing the arrays and writing their paths leaves rows with an
        empty path; they are filled first, and the arrays grow only for the rest.
        """
        augment = augment if augment is not None else [0] * len(paths)
        free = np.flatnonzero(self.column("path") == "")
        rows = np.concatenate([free[: len(paths)], np.arange(self.n_rows, self.n_rows + max(0, len(paths) - len(free)))])
        stop = max(self.n_rows, int(rows.max()) + 1) if len(rows) else self.n_rows
        for name in ROW_ARRAYS:
            array = self.group[name]
            array.resize((stop, *array.shape[1:]))
        for name, values, dtype in (("label", labels, "int16"), ("augment", augment, "uint8"), ("path", paths, str)):
            self.group[name].set_coordinate_selection(rows, np.asarray(values, dtype=object).astype(dtype))

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


LOCK_NAME = "writer.lock.json"
LOCK_STALE_S = 120.0  # a lock whose heartbeat is older than this belongs to a dead run


@contextlib.contextmanager
def writer_lock(url: str, *, heartbeat_s: float = 30.0) -> Iterator[None]:
    """Hold the store's one-writer lock while the block runs; refuse clearly when another run holds it.

    The lock is a small JSON file in the store (any fsspec URL) naming the host, process and a
    heartbeat that a thread refreshes. A lock left by a crashed run is taken over: on the same
    host when its process is gone, anywhere once its heartbeat is stale.
    """
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:  # e.g. s3:// without s3fs installed
        raise BatchgenreError(f"{url}: {error}") from None
    fs.makedirs(root, exist_ok=True)
    path = f"{root.rstrip('/')}/{LOCK_NAME}"
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    held = _read_lock(fs, path)
    if held is not None and _alive(held):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.get("started", 0)))
        raise BatchgenreError(
            f"{url} is being written by another featurize (pid {held.get('pid')} on {held.get('host')}, since {since}): "
            f"wait for it to finish, or delete {url}/{LOCK_NAME} if that run is gone"
        )
    if held is not None:
        log.warning("taking over the lock of a run that died (pid %s on %s)", held.get("pid"), held.get("host"))
    stop = threading.Event()

    def beat() -> None:
        while True:
            _write_lock(fs, path, {**me, "heartbeat": time.time()})
            if stop.wait(heartbeat_s):
                return

    thread = threading.Thread(target=beat, name="batchgenre-lock", daemon=True)
    _write_lock(fs, path, {**me, "heartbeat": time.time()})
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        fs.rm_file(path)


def _read_lock(fs, path: str) -> dict | None:
    try:
        with fs.open(path, "r") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_lock(fs, path: str, content: dict) -> None:
    # Write then rename, so a reader never sees half a lock (and takes it for none).
    tmp = f"{path}.{os.getpid()}.tmp"
    fs.pipe_file(tmp, json.dumps(content).encode())
    fs.mv(tmp, path)


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


def rows_to_compute(status: np.ndarray, *, retry_failed: bool) -> np.ndarray:
    """Mask [shape=(n,), dtype=bool] of the rows a run computes: pending ones, and failed ones on a retry."""
    return (status == PENDING) | (retry_failed & (status == FAILED))

