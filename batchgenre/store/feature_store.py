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
    group     str     [N]      the file's artist (its group for honest splits), "" when unknown

With ``attrs["window"]`` S (featurize --window), each file has ``duration // S`` rows, window j
covering ``[offset + j*S, offset + (j+1)*S)``, planned together so a block holds its files' windows; without
it (None, or absent in older stores, which also lack the ``window`` array) a row is the whole excerpt.

The client writes ``path``, ``label``, ``augment``, ``window``, ``size`` and ``mtime_ns`` when it plans rows, and sends
rows whose file was replaced back to PENDING, before any task runs; the task of block k alone writes rows
[k*B, (k+1)*B) of ``features``, ``error`` and, last, ``status``. A chunk write is whole or absent (zarr-python
3.1.3 and later write a local chunk to a temporary file and rename it; an object store's PUT is atomic), so a
block whose status chunk still says PENDING is simply redone.

The client's arrays are chunked by ``CLIENT_CHUNK_BLOCKS`` blocks (one object for 64 blocks' rows), the
tasks' one chunk, one object, a block. Zarr v3 shards of 64 blocks gave the same object count but cost 4.5
times the CPU to read a column whole (every inner chunk is decoded apart), and sharded features made a
training epoch's reads 2 times slower; a shard is also rewritten whole, so it could not hold the rows of
blocks that tasks write side by side (benchmarks/README.md, sharding). A store made before reads and
writes the same, its client arrays chunked by the block.

Stores made before ``size`` and ``mtime_ns`` existed get them on their next featurize
(see ``FeatureStore.note_replaced_files``).

``attrs["labels"]`` says where labels and groups came from: ``"folders"`` (genre folders, no groups; a store
made before the attribute), ``"tags"`` (the files' genre and artist tags) or ``"csv:<file>"``. Labels and groups
are the client's to write, like ``path``: a run with labels from tags or a CSV writes them for every row, so a
retagged file is relabelled without being computed again. A store made before ``group`` reads it as all "".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchgenre.errors import BatchgenreError, shown
from batchgenre.store.paths import PATHS, UNKNOWN_STAT

log = logging.getLogger(__name__)

STORE_FORMAT = 1
# Blocks per chunk of the arrays only the client writes: it reads them whole on every run.
CLIENT_CHUNK_BLOCKS = 64
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
ROW_ARRAYS = ("features", "label", "path", "augment", "status", "error")
MAX_AUGMENT = int(np.iinfo(np.uint8).max)  # altered copies a file can have: the augment column is uint8
STAT_ARRAYS = ("size", "mtime_ns")  # not in ROW_ARRAYS: older stores lack them and must still open
GROUP = "group"  # not in ROW_ARRAYS either: made on a store's first plan after it existed
FOLDER_LABELS = "folders"  # attrs["labels"] of a store labelled by genre folders, or made before the attribute
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
    def create(cls, url: str, *, attrs: dict, n_features: int, rows_per_chunk: int) -> FeatureStore:
        """A new, empty store whose group attributes are ``attrs`` (plus format and chunking)."""
        import zarr

        group = zarr.open_group(url, mode="a")  # the folder already holds the writer lock
        b = rows_per_chunk
        group.attrs.update({**attrs, "store_format": STORE_FORMAT, "rows_per_chunk": b})
        store = cls(group, url)
        # Written by block tasks: one chunk (one object) a block.
        group.create_array(
            "features", shape=(0, n_features), chunks=(b, n_features), dtype="float32", fill_value=np.nan
        )
        group.create_array("status", shape=(0,), chunks=(b,), dtype="uint8", fill_value=PENDING)
        group.create_array("error", shape=(0,), chunks=(b,), dtype=str)
        # Written by the client alone, before any task runs.
        store._client_array("label", dtype="int16", fill_value=-1)
        store._client_array("path", dtype=str)
        store._client_array("augment", dtype="uint8", fill_value=0)
        store._client_array("window", dtype="uint16", fill_value=0)
        store._add_group_array()
        store._add_stat_arrays()
        return store

    @classmethod
    def open(cls, url: str, *, mode: str = "r") -> FeatureStore:
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

    @property
    def labels(self) -> str:
        """Where the labels and groups came from: "folders", "tags" or "csv:<file>"."""
        return self.group.attrs.get("labels", FOLDER_LABELS)

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one array; a store older than the ``window`` (``group``) array reads as all 0 ("")."""
        if name in ("window", GROUP) and name not in self.group:
            n = len(range(*slice(start, stop).indices(self.n_rows)))
            return np.zeros(n, dtype=np.uint16) if name == "window" else np.full(n, "", dtype=np.dtypes.StringDType())
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
        self,
        paths,
        labels,
        augment=None,
        windows=None,
        groups=None,
    ) -> np.ndarray:
        """Plan new rows (client only, before their tasks run): write path, label, augment, window and group.

        Each argument holds one value a row [shape=(n,)]: an array or a list. A plan killed between
        growing the arrays and writing their paths leaves rows with an empty path; they are filled
        first, and the arrays grow only for the rest. Their file stats start unknown;
        ``note_replaced_files`` records them. Returns the rows written [shape=(n,), dtype=int64].
        """
        n = len(paths)
        augment = augment if augment is not None else np.zeros(n, dtype=np.uint8)
        windows = windows if windows is not None else np.zeros(n, dtype=np.uint16)
        groups = groups if groups is not None else np.full(n, "", dtype=PATHS)
        self._add_group_array()
        free = np.flatnonzero(self.column("path") == "")
        rows = np.concatenate(
            [free[: len(paths)], np.arange(self.n_rows, self.n_rows + max(0, len(paths) - len(free)))]
        )
        stop = max(self.n_rows, int(rows.max()) + 1) if len(rows) else self.n_rows
        for name in ROW_ARRAYS + ("window", GROUP) + STAT_ARRAYS:
            if (
                name not in self.group
            ):  # a store older than these columns: no window, and note_replaced_files adds stats
                continue
            array = self.group[name]
            array.resize((stop, *array.shape[1:]))
            if name in STAT_ARRAYS:
                array.set_coordinate_selection(rows, UNKNOWN_STAT)  # a free row may hold a killed plan's stat
        columns = [("label", labels, "int16"), ("augment", augment, "uint8"), ("window", windows, "uint16")]
        for name, values, dtype in columns + [
            (GROUP, groups, PATHS),
            ("path", paths, PATHS),
        ]:  # path last: it marks the row planned
            if name not in self.group:
                continue
            self.group[name].set_coordinate_selection(rows, np.asarray(values, dtype=dtype))
        return rows

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
        if not differs.any():  # the usual rerun: no status to read
            return np.zeros(0, dtype=np.int64)
        replaced = np.flatnonzero(differs & ~unknown & (self.column("status") != PENDING))
        if len(replaced):
            self.group["status"].set_coordinate_selection(replaced, PENDING)
        update = np.flatnonzero(differs)
        if len(update):
            for i, name in enumerate(STAT_ARRAYS):
                self.group[name].set_coordinate_selection(update, stats[update, i])
        return replaced

    def relabel(self, labels: np.ndarray, groups: np.ndarray) -> int:
        """Write the label and group of every row (client only, before tasks run); returns how many rows changed.

        labels [shape=(N,), dtype=int16] index ``genres`` (-1 unlabelled); groups [shape=(N,), str].
        """
        self._add_group_array()
        changed = np.flatnonzero((self.column("label") != labels) | (self.column(GROUP) != groups))
        if len(changed):
            self.group["label"].set_coordinate_selection(changed, labels[changed].astype("int16"))
            self.group[GROUP].set_coordinate_selection(changed, np.asarray(groups[changed], dtype=PATHS))
        return len(changed)

    def _add_group_array(self) -> None:
        """Give a store made before ``group`` that array, all "" (no artist known)."""
        if GROUP not in self.group:
            self._client_array(GROUP, dtype=str)

    def _add_stat_arrays(self) -> None:
        """Give a store made before ``size`` and ``mtime_ns`` those arrays, all unknown."""
        for name in STAT_ARRAYS:
            if name not in self.group:
                self._client_array(name, dtype="int64", fill_value=UNKNOWN_STAT)

    def _client_array(self, name: str, *, dtype, fill_value=None) -> None:
        """A one-dimensional array as long as the store, in chunks of CLIENT_CHUNK_BLOCKS blocks."""
        self.group.create_array(
            name,
            shape=(self.n_rows if "path" in self.group else 0,),
            chunks=(self.rows_per_chunk * CLIENT_CHUNK_BLOCKS,),
            dtype=dtype,
            fill_value=fill_value,
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


def rows_to_compute(status: np.ndarray, *, retry_failed: bool) -> np.ndarray:
    """Mask [shape=(n,), dtype=bool] of the rows a run computes: pending ones, and failed ones on a retry."""
    return (status == PENDING) | (retry_failed & (status == FAILED))
