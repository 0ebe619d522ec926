"""Which rows a featurize run adds to the store, with each file's label and group, planned before any task runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.store import GROUP, FeatureStore, file_stats, rows_to_compute

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


def genre_of(relpath: str) -> str | None:
    """The genre folder of a file in GTZAN's layout (root/genre/file), None for any other depth."""
    parts = relpath.split("/")
    return parts[0] if len(parts) == 2 else None


def select(root: Path, relpaths: list[str], genres: list[str] | None) -> tuple[list[str], list[str | None]]:
    """Keep the files to featurize and give each its genre, or None when the corpus is unlabelled.

    A corpus is labelled when every file sits in a genre folder directly under ``root``.
    """
    folder_genres = [genre_of(p) for p in relpaths]
    outside = [p for p, g in zip(relpaths, folder_genres, strict=True) if g is None]
    labelled = not outside
    if outside and len(outside) < len(relpaths):
        # Half a genre layout is most likely a stray file; say so rather than drop every label in silence.
        log.warning(
            "%d of %d files are not in a genre folder directly under %s (like %r), so no file is labelled "
            "by its folder; to label them, move those files into a genre folder (or out) "
            "and featurize into a new --out",
            len(outside),
            len(relpaths),
            root,
            outside[0],
        )
    if genres is None:
        return relpaths, folder_genres if labelled else [None] * len(relpaths)
    if not labelled:
        raise BatchgenreError(
            f"{root}: --genres needs every file in a genre folder directly under it (like gtzan/rock/x.wav), "
            f"but {len(outside)} are not, like {outside[0]!r}"
        )
    available = sorted(set(folder_genres))
    unknown = [g for g in genres if g not in available]
    if unknown:
        raise BatchgenreError(
            f"unknown genre {unknown[0]!r}: the genre folders under {root} are {', '.join(available)}"
        )
    keep = [i for i, g in enumerate(folder_genres) if g in genres]
    return [relpaths[i] for i in keep], [folder_genres[i] for i in keep]


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
    relpaths: list[str],
    file_genres: list[str | None],
    root: Path,
    *,
    augment: int,
    windows: int = 1,
    labels: FileLabels | None = None,
) -> list[str]:
    """Add rows for files (altered copies, windows) the store lacks, redo replaced ones.

    With ``labels`` (whose genres are ``file_genres``), every row's label and group is written
    again from them (a file's altered copies and windows with it), so a file retagged since the last run is
    relabelled without being computed again.
    Returns the files gone from ``root``.
    """
    # Rows without a path are what a killed plan left; plan_rows fills them first.
    paths = store.column("path")
    known = {
        (p, k, j)
        for p, k, j in zip(paths.tolist(), *(store.column(n).tolist() for n in ("augment", "window")), strict=True)
        if p
    }
    group_of = dict(zip(relpaths, labels.groups, strict=True)) if labels is not None else {}
    new = [
        (p, g, k, j)
        for p, g in zip(relpaths, file_genres, strict=True)
        for k in range(1 + (augment if g is not None else 0))
        for j in range(windows)  # a file's windows side by side: row i*windows + j of a new store
        if (p, k, j) not in known
    ]
    store.add_genres(sorted({g for g in file_genres if g is not None}))
    index = {g: i for i, g in enumerate(store.genres)}
    if new:
        new_paths, genres, copies, js = zip(*new, strict=True)
        store.plan_rows(
            list(new_paths),
            [index[g] if g is not None else -1 for g in genres],
            list(copies),
            list(js),
            groups=[group_of.get(p, "") for p in new_paths],
        )
        if known:
            log.info("%d new rows since the store was last written", len(new))
        paths = store.column("path")
    if labels is not None:
        genre_of_file = dict(zip(relpaths, file_genres, strict=True))
        listed = paths.tolist()
        # A file gone from the folder keeps the label and group it had.
        here = np.array([p in genre_of_file for p in listed], dtype=bool)
        wanted = np.array([index.get(genre_of_file.get(p), -1) for p in listed], dtype=np.int16)
        groups = np.array([group_of.get(p, "") for p in listed], dtype=object)
        changed = store.relabel(
            np.where(here, wanted, store.column("label")), np.where(here, groups, store.column(GROUP).astype(object))
        )
        if changed and known:
            log.info("%d rows relabelled from %s", changed, labels.source)
    replaced = store.note_replaced_files(file_stats(root, paths.tolist()))
    if len(replaced):
        log.info("%d files were replaced since they were featurized; computing them again", len(set(paths[replaced])))
    present = set(relpaths)
    vanished = sorted({p for p, _, _ in known if p and p not in present and not (root / p).exists()})
    if vanished:
        log.warning("%d files in the store no longer exist under %s; their rows are kept", len(vanished), root)
    return vanished


def blocks_to_run(store: FeatureStore, retry_failed: bool) -> dict[int, int]:
    """Blocks with rows left to compute, and how many files (or altered copies) each will decode for them."""
    wanted = rows_to_compute(store.column("status"), retry_failed=retry_failed)
    if not wanted.any():  # a rerun with nothing left reads no more of a large store
        return {}
    paths = store.column("path")
    redo = np.flatnonzero(wanted & (paths != ""))
    files = {
        (int(i // store.rows_per_chunk), p, k)
        for i, p, k in zip(redo, paths[redo], store.column("augment")[redo], strict=True)
    }
    counts = np.bincount([block for block, _, _ in files], minlength=store.n_blocks)
    return {int(k): int(n) for k, n in enumerate(counts) if n}
