"""Seeded, stratified splits of a store's rows, and the tf.data pipeline that streams them from the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.store import DONE, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """The rows a run may use: done rows of the configured genres.

    Splits are drawn over source rows, one per file. Augmented copies of a file (featurize
    --augment) are training rows only: they follow their source into whatever a model is fit
    on and never into the rows it is scored on, so no file is on both sides of a split.

    index [shape=(n,), dtype=int64]: store row numbers of the source rows, ascending.
    label [shape=(n,), dtype=int32]: position of each source row's genre in ``genres``.
    copies [shape=(m,), dtype=int64]: store row numbers of augmented copies, ascending.
    copy_of [shape=(m,), dtype=int64]: the source row of each copy.
    """

    index: np.ndarray
    label: np.ndarray
    genres: list[str]
    copies: np.ndarray
    copy_of: np.ndarray

    def labels_of(self, index: np.ndarray) -> np.ndarray:
        """Labels [shape=(k,), dtype=int32] of store rows ``index``: source rows, or copies (their source's label)."""
        rows, labels = self._lookup
        return labels[np.searchsorted(rows, index)]

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate([self.index, self.copies])
        labels = np.concatenate([self.label, self.label[np.searchsorted(self.index, self.copy_of)]])
        order = np.argsort(rows)
        return rows[order], labels[order]

    def fit_rows(self, index: np.ndarray) -> np.ndarray:
        """Source rows ``index`` and every copy of them, ascending: the rows a model is fit on."""
        return np.union1d(index, self.copies[np.isin(self.copy_of, index)])


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
    counts = {g: int(np.sum(done & ~copy & (label == i))) for i, g in enumerate(store_genres)}
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
        log.info("left out %d files of these genres that are not featurized (failed or pending)", failed)
    index = np.flatnonzero(done & ~copy & (mapped >= 0))
    copies, copy_of = _copies(store, index, done & copy & (mapped >= 0))
    return Rows(index=index, label=mapped[index], genres=wanted, copies=copies, copy_of=copy_of)


def _copies(store: FeatureStore, sources: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Usable copy rows whose source file is among ``sources``, and the source row of each; found by path."""
    if not usable.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    paths = store.column("path")
    order = np.argsort(paths[sources])
    source_paths = paths[sources][order]
    candidates = np.flatnonzero(usable)
    at = np.clip(np.searchsorted(source_paths, paths[candidates]), 0, len(sources) - 1)
    found = source_paths[at] == paths[candidates]
    return candidates[found], sources[order][at[found]]


def split_rows(rows: Rows, *, train: float, validation: float, test: float, seed: int) -> Split:
    """One seeded split of ``rows``, stratified by genre, in the proportions given (they add up to 1)."""
    from sklearn.model_selection import train_test_split

    _check_counts(rows, at_least=2, why=f"a stratified {train:g}/{validation:g}/{test:g} split")
    try:
        rest, test_rows = train_test_split(rows.index, test_size=test, stratify=rows.label, random_state=seed)
        train_rows, validation_rows = _hold_out(rows, rest, validation / (train + validation), seed=seed)
    except ValueError as error:  # too few rows of some genre for these proportions
        shares = f"{train:g}/{validation:g}/{test:g}"
        raise BatchgenreError(f"cannot split {len(rows.index)} rows {shares} by genre: {error}") from None
    return Split(train=np.sort(train_rows), validation=np.sort(validation_rows), test=np.sort(test_rows))


def cross_validation(rows: Rows, *, folds: int, repeats: int, validation: float, seed: int) -> list[Split]:
    """Repeated stratified K-fold: ``folds * repeats`` splits, each fold the test part once per repeat.

    ``validation`` is the share of each fold's non-test rows held out for early stopping.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    _check_counts(rows, at_least=folds, why=f"{folds}-fold cross-validation")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    splits = []
    for rest, test in splitter.split(rows.index, rows.label):
        try:
            train_rows, validation_rows = _hold_out(rows, rows.index[rest], validation, seed=seed)
        except ValueError as error:
            raise BatchgenreError(f"cannot hold out {validation:g} of each fold for validation: {error}") from None
        splits.append(Split(np.sort(train_rows), np.sort(validation_rows), np.sort(rows.index[test])))
    return splits


def final_split(rows: Rows, *, validation: float, seed: int) -> Split:
    """All rows for the model that is saved after cross-validation: no test part, ``validation`` held out."""
    try:
        train_rows, validation_rows = _hold_out(rows, rows.index, validation, seed=seed)
    except ValueError as error:
        raise BatchgenreError(f"cannot hold out {validation:g} of {len(rows.index)} rows for validation: {error}") from None
    return Split(np.sort(train_rows), np.sort(validation_rows), test=np.empty(0, dtype=rows.index.dtype))


def _hold_out(rows: Rows, index: np.ndarray, share: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if share == 0:
        return index, np.empty(0, dtype=index.dtype)
    return tuple(train_test_split(index, test_size=share, stratify=rows.labels_of(index), random_state=seed))


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
):
    """A tf.data pipeline of (features, label) batches of store rows ``index``, read one chunk at a time.

    With a ``shuffle_seed``, every pass (epoch) visits the chunks in a new seeded order and
    shuffles rows within a buffer of ``shuffle_buffer`` rows; each row comes exactly once per
    pass. Without one, rows come in the order of ``index``. Memory holds a few chunks and the
    buffer, never the store.

    Parameters
    ----------
    index : np.ndarray [shape=(n,), ascending]
        store row numbers.
    labels : np.ndarray [shape=(n,)]
        the label of each row.

    Returns
    -------
    tf.data.Dataset of (features [shape=(b, D), float32], label [shape=(b,), int32])
    """
    from batchgenre.backend import tensorflow

    tf = tensorflow()
    index, labels = np.asarray(index, dtype=np.int64), np.asarray(labels, dtype=np.int32)
    if np.any(np.diff(index) <= 0):
        raise ValueError("index must be ascending store row numbers without repeats")
    b, n_features = store.rows_per_chunk, store.group["features"].shape[1]
    chunks, first = np.unique(index // b, return_index=True)
    bounds = np.append(first, len(index))
    features = store.group["features"]

    def read_chunk(k: np.int64) -> tuple[np.ndarray, np.ndarray]:
        # One whole chunk per read: zarr decodes whole chunks anyway, so a chunk-aligned slice costs no more.
        lo, hi = bounds[k], bounds[k + 1]
        start = chunks[k] * b
        block = features[start : min(start + b, features.shape[0])]
        return block[index[lo:hi] - start], labels[lo:hi]

    def read(k):
        x, y = tf.numpy_function(read_chunk, [k], (tf.float32, tf.int32), stateful=False)
        x.set_shape((None, n_features))
        y.set_shape((None,))
        return x, y

    ds = tf.data.Dataset.range(len(chunks))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(chunks), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if shuffle_seed is not None:
        ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed + 1, reshuffle_each_iteration=True)
    # unbatch hides the length from Keras, which would then warn at the end of the first epoch.
    n_batches = -(-len(index) // batch_size)
    return ds.batch(batch_size).apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)
