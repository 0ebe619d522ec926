"""Which rows a featurize run adds to the store, with each file's label and group, planned before any task runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.store import GROUP, FeatureStore, file_stats, rows_to_compute
from batchgenre.store.paths import PATHS, as_paths, distinct, hashes, locate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileLabels:
    """Labels of a run's files from somewhere other than genre folders (``batchgenre.library.labels``).

    genres: each file's genre, None for an unlabelled one; groups: each file's artist, "" when
    unknown; source: what the store's ``labels`` attribute records ("tags", "csv:<file>").
    """

    genres: list[str | None]
    groups: list[str]
    source: str


def select(root: Path, relpaths, genres: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Keep the files to featurize and give each its genre, or "" when the corpus is unlabelled.

    A corpus is labelled when every file sits in a genre folder directly under ``root``. Returns
    the kept paths and their genres [shape=(n,), dtype=StringDType] each.
    """
    relpaths = as_paths(relpaths)
    folder = np.strings.partition(relpaths, np.array("/", dtype=PATHS))[0]
    outside = np.flatnonzero(np.strings.count(relpaths, "/") != 1)
    labelled = not len(outside)
    if len(outside) and len(outside) < len(relpaths):
        # Half a genre layout is most likely a stray file; say so rather than drop every label in silence.
        log.warning(
            "%d of %d files are not in a genre folder directly under %s (like %r), so no file is labelled "
            "by its folder; to label them, move those files into a genre folder (or out) "
            "and featurize into a new --out",
            len(outside),
            len(relpaths),
            root,
            str(relpaths[outside[0]]),
        )
    if genres is None:
        return relpaths, folder if labelled else np.full(len(relpaths), "", dtype=PATHS)
    if not labelled:
        raise BatchgenreError(
            f"{root}: --genres needs every file in a genre folder directly under it (like gtzan/rock/x.wav), "
            f"but {len(outside)} are not, like {str(relpaths[outside[0]])!r}"
        )
    available = genre_names(folder)
    unknown = [g for g in genres if g not in available]
    if unknown:
        raise BatchgenreError(
            f"unknown genre {unknown[0]!r}: the genre folders under {root} are {', '.join(available)}"
        )
    keep = np.zeros(len(relpaths), dtype=bool)
    for genre in genres:
        keep |= folder == genre
    return relpaths[keep], folder[keep]


def genre_codes(genres: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each file's genre [shape=(n,), StringDType, "" for none] as an index [dtype=int16] into the sorted names.

    Files of one genre mostly come together (folders, sorted paths): each run of equal names is
    looked up once.
    """
    if not len(genres):
        return np.zeros(0, dtype=np.int16), []
    starts = np.r_[0, np.flatnonzero(genres[1:] != genres[:-1]) + 1]
    heads = genres[starts].tolist()
    names = sorted(set(heads) - {""})
    index = {g: i for i, g in enumerate(names)} | {"": -1}
    lengths = np.diff(np.r_[starts, len(genres)])
    return np.repeat(np.array([index[h] for h in heads], dtype=np.int16), lengths), names


def genre_names(genres: np.ndarray) -> list[str]:
    """The different genres of ``genres`` [shape=(n,), StringDType], sorted, "" (none) left out."""
    return genre_codes(genres)[1]


def say_if_genres_are_ignored(store: FeatureStore, genres: list[str] | None) -> None:
    """``--genres`` picks the files to add; it cannot take rows out of a store that already holds other genres."""
    others = sorted(set(store.genres) - set(genres or store.genres))
    if others:
        log.warning(
            "--genres %s adds only those genres' files; %s already holds %s too, and keeps them "
            "(train reads the genres its config names: [data] genres)",
            ",".join(genres),
            store.url,
            ", ".join(others),
        )


def check_labels(store: FeatureStore, source: str) -> None:
    """One store holds labels of one source: a rerun that asks for another is refused rather than mixing them."""
    if store.labels != source:
        raise BatchgenreError(
            f"{store.url} holds labels from {store.labels}, this run asks for labels from {source}: "
            "pass the store's --labels or choose another --out"
        )


def plan(
    store: FeatureStore,
    relpaths,
    file_genres,
    root: Path,
    *,
    augment: int,
    windows: int = 1,
    labels: FileLabels | None = None,
) -> list[str]:
    """Add rows for files (altered copies, windows) the store lacks, redo replaced ones.

    ``relpaths`` and ``file_genres`` hold a value a file (arrays as ``select`` gives them, or
    lists; a genre of None or "" is none). With ``labels`` (whose genres are ``file_genres``),
    every row's label and group is written again from them (a file's altered copies and windows
    with it), so a file retagged since the last run is relabelled without being computed again.
    Returns the files gone from ``root``.

    Memory: the run's paths (about 40 bytes a file) and arrays of a few numbers a file or row,
    never a Python object a file.
    """
    relpaths = as_paths(relpaths)
    codes, names = genre_codes(
        as_paths([g or "" for g in file_genres] if isinstance(file_genres, list) else file_genres)
    )
    n = len(relpaths)
    # Rows without a path are what a killed plan left; plan_rows fills them first.
    paths = store.column("path")
    at = locate(paths, relpaths)  # each row's file in this run, -1 for another's (or no file: "")
    held = np.flatnonzero(at >= 0)
    known = _row_keys(at[held], store.column("augment")[held], store.column("window")[held])
    # Every row this run wants: file f's copies k (altered ones for a labelled file) and windows j side by side.
    per_file = np.where(codes >= 0, 1 + augment, 1) * windows
    file_of = np.repeat(np.arange(n, dtype=np.int64), per_file)
    place = np.arange(len(file_of), dtype=np.int64) - np.repeat(np.cumsum(per_file) - per_file, per_file)
    new = np.flatnonzero(~np.isin(_row_keys(file_of, place // windows, place % windows), known))
    new_files, new_copies, new_windows = file_of[new], place[new] // windows, place[new] % windows
    del file_of, place
    store.add_genres(names)
    index = np.array([store.genres.index(g) for g in names] + [-1], dtype=np.int16)  # code -1 is the last
    groups = as_paths(labels.groups) if labels is not None else None
    if len(new):
        rows = store.plan_rows(
            relpaths[new_files],
            index[codes[new_files]],
            new_copies.astype(np.uint8),
            new_windows.astype(np.uint16),
            groups=groups[new_files] if groups is not None else None,
        )
        if len(held):
            log.info("%d new rows since the store was last written", len(new))
        at = np.concatenate([at, np.full(store.n_rows - len(at), -1, dtype=np.int64)])
        at[rows] = new_files
    here = np.flatnonzero(at >= 0)
    if labels is not None:
        # A file gone from the folder keeps the label and group it had.
        label, group = store.column("label"), store.column(GROUP)
        label[here], group[here] = index[codes[at[here]]], groups[at[here]]
        changed = store.relabel(label, group)
        if changed and len(held):
            log.info("%d rows relabelled from %s", changed, labels.source)
    # One stat a file of this run, and one for each other file the store holds.
    stats = np.full((len(at), 2), -1, dtype=np.int64)
    stats[here] = file_stats(root, relpaths)[at[here]]
    others = np.flatnonzero((at[: len(paths)] < 0) & (paths != ""))
    stats[others] = file_stats(root, paths[others])
    replaced = store.note_replaced_files(stats)
    if len(replaced):
        log.info(
            "%d files were replaced since they were featurized; computing them again",
            distinct(store.column("path")[replaced]),
        )
    gone = paths[others][stats[others, 0] < 0]
    vanished = np.unique(gone).tolist() if len(gone) else []
    if vanished:
        log.warning("%d files in the store no longer exist under %s; their rows are kept", len(vanished), root)
    return vanished


def _row_keys(files: np.ndarray, copies: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """One int64 a row for (file, altered copy, window): copies are uint8, windows uint16."""
    return (files.astype(np.int64) << 24) | (copies.astype(np.int64) << 16) | windows.astype(np.int64)


def blocks_to_run(store: FeatureStore, retry_failed: bool, *, status: np.ndarray | None = None) -> dict[int, int]:
    """Blocks with rows left to compute, and how many files (or altered copies) each will decode for them.

    ``status`` is the store's status column when the caller has read it already.
    """
    status = store.column("status") if status is None else status
    wanted = rows_to_compute(status, retry_failed=retry_failed)
    if not wanted.any():  # a rerun with nothing left reads no more of a large store
        return {}
    paths = store.column("path")
    redo = np.flatnonzero(wanted & (paths != ""))
    block = redo // store.rows_per_chunk
    copies = store.column("augment")[redo]
    if store.window is None and not copies.any():  # a row a file
        counts = np.bincount(block, minlength=store.n_blocks)
    else:
        # A file's rows in a block are decoded once. Counted by hash: a shared one would only shorten the bar.
        files = np.unique(np.stack([block, hashes(paths[redo]), copies.astype(np.int64)], axis=1), axis=0)
        counts = np.bincount(files[:, 0], minlength=store.n_blocks)
    return {int(k): int(n) for k in np.flatnonzero(counts) for n in [counts[k]]}
