"""Seeded, stratified splits of a store's rows, and the tf.data pipeline that streams them from the store."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.store import DONE, GROUP, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """The rows a run may use: done rows of the configured genres.

    Splits are drawn over source rows, one per file. Augmented copies of a file (featurize
    --augment) are training rows only: they follow their source into whatever a model is fit
    on and never into the rows it is scored on, so no file is on both sides of a split. In a
    store of window rows (featurize --window), a file's first done window is its source row and
    its other windows follow it everywhere: into the rows a model is fit on, validated on and
    scored on, where the file is scored once, by the mean of its windows' probabilities.

    index [shape=(n,), dtype=int64]: store row numbers of the source rows, ascending.
    label [shape=(n,), dtype=int32]: position of each source row's genre in ``genres``.
    copies [shape=(m,), dtype=int64]: store row numbers of augmented copies (any window), ascending.
    copy_of [shape=(m,), dtype=int64]: the source row of each copy.
    group [shape=(n,), dtype=int64] or None: each source row's group (an artist, say; see
        ``with_groups`` and ``with_store_groups``); splits then keep every group on one side.
    group_source: where the groups came from (a CSV's path, "store artist tags"), "" without groups.
    windows [shape=(w,), dtype=int64]: store row numbers of the source files' other windows, ascending.
    window_of [shape=(w,), dtype=int64]: the source row of each of them.
    """

    index: np.ndarray
    label: np.ndarray
    genres: list[str]
    copies: np.ndarray
    copy_of: np.ndarray
    group: np.ndarray | None = None
    group_source: str = ""
    windows: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, dtype=np.int64))
    window_of: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def labels_of(self, index: np.ndarray) -> np.ndarray:
        """Labels [shape=(k,), dtype=int32] of store rows ``index``: source rows, or their windows and copies."""
        rows, labels = self._lookup
        return labels[np.searchsorted(rows, index)]

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate([self.index, self.windows, self.copies])
        sources = np.concatenate([self.index, self.window_of, self.copy_of])
        order = np.argsort(rows)
        return rows[order], self.label[np.searchsorted(self.index, sources[order])]

    def file_rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows a model is validated or scored on for source rows ``index``: each with its file's other windows.

        Returns store rows [shape=(k,), ascending] and the source row (the file) of each [shape=(k,)].
        """
        kept = np.isin(self.window_of, index)
        rows = np.concatenate([index, self.windows[kept]])
        files = np.concatenate([index, self.window_of[kept]])
        order = np.argsort(rows)
        return rows[order], files[order]

    def fit_rows(self, index: np.ndarray) -> np.ndarray:
        """The rows a model is fit on.

        Source rows ``index``, their files' other windows and every copy of them, ascending.
        """
        return np.union1d(self.file_rows(index)[0], self.copies[np.isin(self.copy_of, index)])


@dataclass(frozen=True)
class Split:
    """Source rows [shape=(n_*,), ascending] of each part; ``test`` is empty for a model fit on all rows."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def select_rows(store: FeatureStore, *, genres: list[str] | str) -> Rows:
    """The done rows of ``genres``, labelled in that order; ``"all"``: every genre of the store that has done rows.

    Rows that failed in featurize are left out; a genre named without a single done row is an error.
    """
    store_genres = store.genres
    status, label = store.column("status"), store.column("label").astype(np.int64)
    copy = store.column("augment") > 0
    done = status == DONE
    source = done & ~copy
    if store.window is not None:
        # A file's first done window stands for it in splits; the others follow it (Rows.windows).
        candidates = np.flatnonzero(source)
        first = {}
        for row, path in zip(candidates.tolist(), store.column("path")[candidates].tolist(), strict=True):
            first.setdefault(path, row)
        source = np.zeros_like(source)
        source[list(first.values())] = True
    counts = {g: int(np.sum(source & (label == i))) for i, g in enumerate(store_genres)}
    if genres == "all":
        wanted = [g for g in store_genres if counts[g]]
        if len(wanted) < len(store_genres):
            left_out = ", ".join(g for g in store_genres if not counts[g])
            log.warning("left out genres without featurized rows: %s", left_out)
    else:
        wanted = list(genres)
    empty = [g for g in wanted if counts.get(g, 0) == 0]
    if empty or not wanted:
        held = ", ".join(f"{g} ({n})" for g, n in counts.items() if n) or "none"
        what = f"genre {empty[0]!r}" if empty else "any genre"
        raise BatchgenreError(f"{store.url}: no featurized rows of {what}; the genres it holds (done rows): {held}")
    # Store genre index -> position in `wanted`, -1 for genres the run leaves out (and for unlabelled rows).
    remap = np.full(len(store_genres) + 1, -1, dtype=np.int32)
    for i, g in enumerate(store_genres):
        if g in wanted:
            remap[i] = wanted.index(g)
    mapped = remap[np.where(label >= 0, label, len(store_genres))]
    failed = int(np.sum((status != DONE) & ~copy & (mapped >= 0)))
    if failed:
        what = "files" if store.window is None else "windows"
        log.info("left out %d %s of these genres that are not featurized (failed or pending)", failed, what)
    index = np.flatnonzero(source & (mapped >= 0))
    copies, copy_of = _copies(store, index, done & copy & (mapped >= 0))
    windows, window_of = _copies(store, index, done & ~copy & ~source & (mapped >= 0))
    return Rows(
        index=index,
        label=mapped[index],
        genres=wanted,
        copies=copies,
        copy_of=copy_of,
        windows=windows,
        window_of=window_of,
    )


def _copies(store: FeatureStore, sources: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Usable rows (copies, or other windows) whose file is among ``sources``, and the source row of each.

    Found by path.
    Matched in a dict: NumPy 2.4's ``searchsorted`` on the store's StringDType paths misplaces strings
    longer than 15 bytes (``tests/test_dataset.py`` shows it).
    """
    if not usable.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    source_of = dict(zip(store.column("path")[sources].tolist(), sources.tolist(), strict=True))
    candidates = np.flatnonzero(usable)
    found = np.array([source_of.get(p, -1) for p in store.column("path")[candidates].tolist()], dtype=np.int64)
    return candidates[found >= 0], found[found >= 0]


def with_groups(rows: Rows, store: FeatureStore, metadata: str | Path) -> Rows:
    """``rows`` with the group of each source file, read from a CSV with columns ``path`` and ``group``.

    Paths are relative to the store's audio root (as featurize stores them) or absolute under it.
    Every file of the run needs a group: a file left out would land on either side of a split.
    """
    metadata = Path(metadata)
    root = Path(store.attrs.get("root", ""))
    try:
        with metadata.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"path", "group"} - set(reader.fieldnames or [])
            if missing:
                found = ", ".join(reader.fieldnames or []) or "none"
                raise BatchgenreError(f"{metadata}: needs the columns path and group; its columns are {found}")
            groups: dict[str, str] = {}
            for line, record in enumerate(reader, start=2):
                path, group = _relative(record["path"] or "", root), (record["group"] or "").strip()
                if not path or not group:
                    raise BatchgenreError(f"{metadata}, line {line}: an empty path or group")
                if groups.setdefault(path, group) != group:
                    other = groups[path]
                    raise BatchgenreError(f"{metadata}, line {line}: {path} is in two groups, {other!r} and {group!r}")
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BatchgenreError(f"{metadata}: cannot read it as CSV ({error})") from None
    paths = store.column("path")[rows.index]
    lacking = [str(p) for p in paths if str(p) not in groups]
    if lacking:
        raise BatchgenreError(
            f"{metadata}: no group for {len(lacking)} of the {len(paths)} files of this run, "
            f"like {lacking[0]!r}; give every file a group (paths relative to {root})"
        )
    names = sorted({groups[str(p)] for p in paths})
    group = np.searchsorted(names, [groups[str(p)] for p in paths]).astype(np.int64)
    return dataclasses.replace(rows, group=group, group_source=str(metadata))


def with_store_groups(rows: Rows, store: FeatureStore) -> Rows:
    """``rows`` grouped by the store's ``group`` column (the artists featurize read from tags or a CSV).

    Unchanged when no row of the run has a group. A file whose artist is unknown is a group of its
    own: nothing says it shares an artist with any other.
    """
    names = store.column(GROUP)[rows.index].astype(object)
    if not (names != "").any():
        return rows
    unknown = names == ""
    if unknown.any():
        log.info("%d of %d files have no artist; each is a group of its own", int(unknown.sum()), len(names))
        names[unknown] = ["\x00" + str(p) for p in store.column("path")[rows.index[unknown]]]
    _, group = np.unique(names.astype(str), return_inverse=True)
    source = "store artist tags" if store.labels == "tags" else f"store groups ({store.labels})"
    return dataclasses.replace(rows, group=group.astype(np.int64), group_source=source)


def _relative(path: str, root: Path) -> str:
    path = path.strip()
    if Path(path).is_absolute() and Path(path).is_relative_to(root):
        return Path(path).relative_to(root).as_posix()
    return Path(path).as_posix() if path else ""


def split_rows(rows: Rows, *, train: float, validation: float, test: float, seed: int) -> Split:
    """One seeded split of ``rows``, stratified by genre (and keeping groups whole), in the proportions given."""
    _check_counts(rows, at_least=2, why=f"a stratified {train:g}/{validation:g}/{test:g} split")
    try:
        rest, test_rows = _hold_out(rows, rows.index, test, seed=seed)
        train_rows, validation_rows = _hold_out(rows, rest, validation / (train + validation), seed=seed)
    except ValueError as error:  # too few rows (or groups) of some genre for these proportions
        shares = f"{train:g}/{validation:g}/{test:g}"
        raise BatchgenreError(f"cannot split {len(rows.index)} rows {shares} by genre: {error}") from None
    return Split(train=np.sort(train_rows), validation=np.sort(validation_rows), test=np.sort(test_rows))


def cross_validation(rows: Rows, *, folds: int, repeats: int, validation: float, seed: int) -> list[Split]:
    """Repeated stratified K-fold: ``folds * repeats`` splits, each fold the test part once per repeat.

    ``validation`` is the share of each fold's non-test rows held out for early stopping. With
    groups, each repeat is a seeded StratifiedGroupKFold, so no group is on both sides of a split.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    _check_counts(rows, at_least=folds, why=f"{folds}-fold cross-validation")
    if rows.group is None:
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        parts = [(rows.index[rest], rows.index[test]) for rest, test in splitter.split(rows.index, rows.label)]
    else:
        try:
            parts = [p for r in range(repeats) for p in _group_folds(rows, rows.index, folds, seed=seed + r)]
        except ValueError as error:
            raise BatchgenreError(f"cannot make {folds} folds that keep groups whole: {error}") from None
    splits = []
    for rest, test in parts:
        try:
            train_rows, validation_rows = _hold_out(rows, rest, validation, seed=seed)
        except ValueError as error:
            raise BatchgenreError(f"cannot hold out {validation:g} of each fold for validation: {error}") from None
        splits.append(Split(np.sort(train_rows), np.sort(validation_rows), np.sort(test)))
    return splits


def final_split(rows: Rows, *, validation: float, seed: int) -> Split:
    """All rows for the model that is saved after cross-validation: no test part, ``validation`` held out."""
    try:
        train_rows, validation_rows = _hold_out(rows, rows.index, validation, seed=seed)
    except ValueError as error:
        raise BatchgenreError(
            f"cannot hold out {validation:g} of {len(rows.index)} rows for validation: {error}"
        ) from None
    return Split(np.sort(train_rows), np.sort(validation_rows), test=np.empty(0, dtype=rows.index.dtype))


def _hold_out(rows: Rows, index: np.ndarray, share: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Source rows ``index`` cut in two, the second about ``share`` of them, stratified by genre, groups kept whole."""
    from sklearn.model_selection import train_test_split

    if share == 0:
        return index, np.empty(0, dtype=index.dtype)
    if rows.group is not None:
        # The first of round(1 / share) group folds: the nearest a group split comes to ``share``.
        return _group_folds(rows, index, max(2, round(1 / share)), seed=seed)[0]
    return tuple(train_test_split(index, test_size=share, stratify=rows.labels_of(index), random_state=seed))


def _group_folds(rows: Rows, index: np.ndarray, folds: int, *, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rest, part) source rows of each of ``folds`` seeded stratified group folds of ``index``."""
    from sklearn.model_selection import StratifiedGroupKFold

    at = np.searchsorted(rows.index, index)
    groups = rows.group[at]
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ValueError(f"{n_groups} groups, fewer than the {folds} parts asked for")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(index[rest], index[part]) for rest, part in splitter.split(index, rows.label[at], groups)]


def _check_counts(rows: Rows, *, at_least: int, why: str) -> None:
    counts = np.bincount(rows.label, minlength=len(rows.genres))
    smallest = int(np.argmin(counts))
    if counts[smallest] < at_least:
        genre, count = rows.genres[smallest], counts[smallest]
        raise BatchgenreError(f"genre {genre!r} has {count} featurized rows, too few for {why} (needs {at_least})")


def read_features(store: FeatureStore, index: np.ndarray) -> np.ndarray:
    """Feature rows [shape=(len(index), D), dtype=float32] held in memory, for models that need them all at once."""
    return store.group["features"].get_orthogonal_selection((index, slice(None)))


def stream(
    store: FeatureStore,
    index: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    shuffle_buffer: int = 1024,
    shuffle_chunks: int = 64,
    repeat: bool = False,
):
    """A tf.data pipeline of (features, label) batches of store rows ``index``, read whole chunks at a time.

    Rows are read a window at a time: up to ``shuffle_chunks`` chunks, or ``shuffle_buffer``
    rows' worth of chunks where that is more. With a ``shuffle_seed``, a window takes one chunk
    from each of as many equal stretches of the store (which chunk of a stretch is drawn anew
    every pass), so every window, and so every batch, holds the genres (and artists, folders,
    ...) of the whole store in their proportions, however the store orders its rows; the rows of
    a window are shuffled together, and windows come in a seeded random order. Each row comes
    exactly once per pass (epoch), and the same seed gives the same passes. Without a seed, a
    window is consecutive chunks and rows come in the order of ``index``. Memory holds up to
    four windows (about 130 MB for 64 chunks of 256 tutorial vectors), never the store. Rows that
    fit in one window are read once and kept for every pass.

    With ``repeat``, the pipeline runs pass after pass without end, each pass cut into batches of
    its own, as a new iteration of the pipeline without it would be: Keras then keeps one iterator
    for a whole fit (given ``steps_per_epoch`` = ``batches(len(index), batch_size)``) instead of
    starting a new one, and its Python generator, for each epoch.

    Parameters
    ----------
    index : np.ndarray [shape=(n,), ascending]
        store row numbers.
    labels : np.ndarray [shape=(n,)]
        the label of each row.
    shuffle_chunks : int
        chunks read (and shuffled) together: more mix a window closer to the whole store's
        proportions (within about one chunk in ``shuffle_chunks`` per genre), fewer hold less memory.
    repeat : bool
        pass ``p`` (0, 1, ...) of the endless pipeline is the ``p``-th iteration of the pipeline without it.

    Returns
    -------
    tf.data.Dataset of (features [shape=(b, D), float32], label [shape=(b,), int32])
    """
    from batchgenre.training.backend import tensorflow

    tf = tensorflow()
    index, labels = np.asarray(index, dtype=np.int64), np.asarray(labels, dtype=np.int32)
    if np.any(np.diff(index) <= 0):
        raise ValueError("index must be ascending store row numbers without repeats")
    b, n_features = store.rows_per_chunk, store.group["features"].shape[1]
    chunks, first = np.unique(index // b, return_index=True)
    bounds = np.append(first, len(index))
    features = store.group["features"]
    per_window = max(shuffle_chunks, -(-shuffle_buffer // b))
    if shuffle_seed is None and len(chunks) <= per_window:
        # Rows that fit in one window, in order: read now and held as tensors, so that a new iteration
        # (Keras starts one for every validation) costs no Python generator, thread or read.
        x = features.get_orthogonal_selection((index, slice(None)))
        ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch_size)
        return (ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE)
    whole: list[np.ndarray] = []  # all rows, once read, when they fit in one window

    def read_window(window: np.ndarray, seed: np.int64) -> tuple[np.ndarray, np.ndarray]:
        if len(window) == len(chunks):  # every row: read them once, then only permute them pass after pass
            if not whole:
                whole.append(features.get_orthogonal_selection((index, slice(None))))
            x, at = whole[0], np.arange(len(index))
        else:
            # One read of the window's rows: zarr fetches and decodes its chunks concurrently, and only those.
            at = np.concatenate([np.arange(bounds[k], bounds[k + 1]) for k in np.sort(window)])
            x = features.get_orthogonal_selection((index[at], slice(None)))
        if seed < 0:  # in order
            return x, labels[at]
        order = np.random.default_rng(seed).permutation(len(at))
        return x[order], labels[at[order]]

    def one_pass(number: int):
        rng = None if shuffle_seed is None else np.random.default_rng([shuffle_seed, int(number)])
        windows = _windows(len(chunks), per_window=per_window, rng=rng)
        seeds = np.full(len(windows), -1) if rng is None else rng.integers(2**62, size=len(windows))
        # The next window is read in a thread of our own while TensorFlow cuts this one into batches:
        # with op determinism on (backend.tensorflow), tf.data runs a map of Python code one call at a time.
        with ThreadPoolExecutor(max_workers=1) as reader:
            ahead = None
            for window, seed in zip(windows, seeds, strict=True):
                read = reader.submit(read_window, window, seed)
                if ahead is not None:
                    yield ahead.result()
                ahead = read
            if ahead is not None:
                yield ahead.result()

    spec = (tf.TensorSpec((None, n_features), tf.float32), tf.TensorSpec((None,), tf.int32))

    def batched(generator, args=()):
        # Whole windows cross into TensorFlow, and rebatch cuts them without handling rows one by one.
        return tf.data.Dataset.from_generator(generator, args=args, output_signature=spec).rebatch(batch_size)

    if repeat:
        ds = tf.data.Dataset.counter().flat_map(lambda number: batched(one_pass, args=(number,)))
        return ds.prefetch(tf.data.AUTOTUNE)
    passes = itertools.count()
    ds = batched(lambda: one_pass(next(passes)))
    # from_generator hides the length from Keras
    return ds.apply(tf.data.experimental.assert_cardinality(batches(len(index), batch_size))).prefetch(tf.data.AUTOTUNE)


def batches(n_rows: int, batch_size: int) -> int:
    """Batches of one pass of ``stream`` over ``n_rows`` rows: the last one may be short."""
    return -(-n_rows // batch_size)


def _windows(n_chunks: int, *, per_window: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Positions [shape=(k,)] of the chunks read together, window by window, ``k <= per_window``.

    Without ``rng``: consecutive chunks, in order. With it: the chunks are cut into up to
    ``per_window`` consecutive stretches of ``ceil(n_chunks / per_window)`` chunks (the number of
    windows); each window gets one chunk of every stretch (the last, shorter stretch has none for
    some windows), which one drawn at random, and the windows come in random order.
    """
    if n_chunks == 0:
        return []
    n_windows = -(-n_chunks // min(per_window, n_chunks))
    if rng is None:
        return np.array_split(np.arange(n_chunks), n_windows)
    n_stretches = -(-n_chunks // n_windows)
    # Row s of ``window_of`` says which window gets each chunk of stretch s: a permutation of the windows.
    window_of = np.argsort(rng.random((n_stretches, n_windows)), axis=1).ravel()[:n_chunks]
    by_window = np.argsort(window_of, kind="stable")
    windows = np.split(by_window, np.cumsum(np.bincount(window_of, minlength=n_windows))[:-1])
    return [windows[w] for w in rng.permutation(n_windows)]
