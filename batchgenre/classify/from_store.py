"""Classify what a feature store already holds: featurize once, try many models, decode nothing again."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np

from batchgenre import __version__
from batchgenre.classify.client import (
    DEFAULT_MODEL,
    Summary,
    count_rows,
    load_classifier,
    min_confidence_for,
    result_row,
)
from batchgenre.classify.windows import FileWindows
from batchgenre.errors import BatchgenreError
from batchgenre.store import DONE, FAILED
from batchgenre.store.artifact import check_features

log = logging.getLogger(__name__)

# Files predicted at a time: their rows' features are read together, a few MB whatever the store's size.
FILES_PER_BATCH = 2048


def classify_store(
    urls: list[str],
    *,
    model_path: Path | None,
    out: Path,
    every_row: bool = False,
    min_confidence: float | None = None,
) -> Summary:
    """Predict the files of a store, or of stores of the same files one per feature set, into a results table.

    A file's rows (its windows, featurize --window) are averaged as classify-dir averages windows;
    altered copies (featurize --augment) are left out, and so are labelled files unless
    ``every_row``. The model must have been trained on the store's feature set and parameters.
    """
    from batchgenre.store.joined import open_stores
    from batchgenre.store.results import ResultsTable, write_meta

    store = open_stores(urls)
    model = load_classifier(model_path)
    where = ", ".join(urls)
    if model.reads != "features":
        raise BatchgenreError(
            f"the built-in model reads musicnn's tags, which {where} does not hold: classify the folder with it, "
            "or give --model a model trained on the store's feature set"
        )
    trained, held = model.metadata["feature_set"], store.attrs["feature_set"]
    if trained != held:
        raise BatchgenreError(
            f"{where} holds feature set {held!r}, the model was trained on {trained!r}: "
            f"featurize the folder with --features {trained}, or choose a model trained on {held}"
        )
    check_features(store.attrs, source=where)
    min_confidence = min_confidence_for(model, min_confidence)
    rows = _rows_to_classify(store, every_row=every_row)
    paths = store.column("path")[rows]
    order = np.argsort(paths, kind="stable")
    rows, paths = rows[order], paths[order]
    # File k's rows are rows[starts[k]:starts[k + 1]].
    starts = np.flatnonzero(np.r_[True, paths[1:] != paths[:-1]]) if len(rows) else np.zeros(0, int)
    bounds = np.r_[starts, len(rows)]
    status, errors = store.column("status")[rows], store.column("error")[rows]
    stats = {name: _column(store, name, rows) for name in ("size", "mtime_ns")}
    log.info("classifying %d files of %s from %d stored rows, decoding nothing", len(starts), where, len(rows))

    table = ResultsTable(out, genres=model.genres)
    meta = {"root": store.attrs["root"], "store": where, "feature_set": held, "genres": model.genres}
    write_meta(out, {**meta, "model": str(Path(model_path or DEFAULT_MODEL).resolve()), "batchgenre": __version__})
    features = store.group["features"]
    for first in range(0, len(starts), FILES_PER_BATCH):
        lo, hi = bounds[first], bounds[min(first + FILES_PER_BATCH, len(starts))]
        done = status[lo:hi] == DONE
        wanted = rows[lo:hi][done]
        ordered = np.unique(wanted)  # zarr reads rows in ascending order
        block = features.get_orthogonal_selection((ordered, slice(None)))[np.searchsorted(ordered, wanted)]
        probabilities = model.probabilities(block) if len(block) else block
        at = np.r_[0, np.cumsum(done)]  # where each row's probabilities start in the block
        for a, b in itertools.pairwise(bounds[first : min(first + FILES_PER_BATCH, len(starts)) + 1]):
            item = FileWindows(str(paths[a]), None, **{name: _value(column, a) for name, column in stats.items()})
            mine = probabilities[at[a - lo] : at[b - lo]]
            item.features = block[at[a - lo] : at[b - lo]]
            if not len(mine):
                failed = errors[a:b][status[a:b] == FAILED]
                item.error = str(failed[0]) if len(failed) else "not featurized yet: run featurize on its folder first"
            table.add(
                result_row(
                    item,
                    model.genres,
                    mine if len(mine) else None,
                    min_confidence=min_confidence,
                    novelty=model.novelty,
                )
            )
    table.finish()
    return count_rows(table, Summary(out=Path(out)))


def _rows_to_classify(store, *, every_row: bool) -> np.ndarray:
    """Indices of the rows of the files to classify: every file's own rows, or the unlabelled files' alone."""
    keep = store.column("augment") == 0
    if not every_row:
        keep &= store.column("label") < 0
    return np.flatnonzero(keep)


def _column(store, name: str, rows: np.ndarray) -> np.ndarray | None:
    """A stat column at ``rows``, or None for a store made before it existed."""
    try:
        return store.column(name)[rows]
    except KeyError:
        return None


def _value(column: np.ndarray | None, i: int) -> int | None:
    """Row ``i``'s stat; the store's -1 (unknown) and a missing column are None."""
    return None if column is None or column[i] < 0 else int(column[i])
