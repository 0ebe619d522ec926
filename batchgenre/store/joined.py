"""Several feature stores of the same files, one per feature set, read as one store of the sets combined."""

from __future__ import annotations

import numpy as np

from batchgenre.errors import BatchgenreError, shown
from batchgenre.features import JOIN, get_feature_set
from batchgenre.store import DONE, FAILED, PENDING, STAT_ARRAYS, FeatureStore

# Attributes that say which audio a row's features come from: stores joined row by row must agree on them.
CLIP_KEYS = ("sample_rate", "offset", "duration", "window", "root")
# Arrays that say what a row is, rather than what became of it, less ``label`` (compared by genre name).
_OUTCOME_ARRAYS = {"features", "label", "status", "error", *STAT_ARRAYS}


class JoinedStores:
    """Stores of the same rows side by side: row i is row i of each, its features each store's end to end.

    Read as train reads a :class:`FeatureStore` (``url``, ``attrs``, ``genres``, ``rows_per_chunk``,
    ``n_rows``, ``window``, ``labels``, ``column`` and ``group["features"]``), so the splits and the stream need
    nothing of their own. The feature set is the stores' sets joined (``robust+musicnn``), with each part's
    parameters and value names as :func:`features.get_feature_set` gives them for that name; a row
    is done only where every store has it done. Chunks are the first store's.
    """

    def __init__(self, stores: list[FeatureStore]):
        self.stores = stores
        self.url = f" {JOIN} ".join(store.url for store in stores)
        # All that the splits and the stream read of a store's zarr group.
        self.group = {"features": _SideBySide([store.group["features"] for store in stores])}
        self._attrs = _joined_attrs(stores)

    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    @property
    def rows_per_chunk(self) -> int:
        return self.stores[0].rows_per_chunk

    @property
    def n_rows(self) -> int:
        return self.stores[0].n_rows

    @property
    def genres(self) -> list[str]:
        return self.stores[0].genres

    @property
    def window(self) -> float | None:
        return self.stores[0].window

    @property
    def labels(self) -> str:
        return self.stores[0].labels

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one array: the first store's, but ``status`` (done where every store's is, failed
        where one's is) and ``error`` (the reason of the first store that gives one)."""
        if name == "status":
            columns = [store.column("status", start, stop) for store in self.stores]
            done = np.logical_and.reduce([c == DONE for c in columns])
            failed = np.logical_or.reduce([c == FAILED for c in columns])
            return np.where(done, DONE, np.where(failed, FAILED, PENDING)).astype(columns[0].dtype)
        if name == "error":
            errors = [store.column("error", start, stop).astype(object) for store in self.stores]
            first = errors[0]
            for more in errors[1:]:
                first = np.where(first != "", first, more)
            return first
        return self.stores[0].column(name, start, stop)


class _SideBySide:
    """Feature arrays of the same rows read as one [shape=(N, D_1 + D_2 + ...)]."""

    def __init__(self, arrays: list):
        self.arrays = arrays

    @property
    def shape(self) -> tuple[int, int]:
        return self.arrays[0].shape[0], sum(a.shape[1] for a in self.arrays)

    def get_orthogonal_selection(self, selection: tuple[np.ndarray, slice]) -> np.ndarray:
        """Rows ``selection[0]`` of every array, end to end, then columns ``selection[1]`` [shape=(k, d), float32]."""
        rows, columns = selection
        return np.concatenate([a.get_orthogonal_selection((rows, slice(None))) for a in self.arrays], axis=1)[
            :, columns
        ]


def open_stores(urls: list[str]) -> FeatureStore | JoinedStores:
    """The store at the one url, or the stores at several read as one; a one-line refusal where they differ.

    Stores join when they hold the same files in the same order (as featurize makes them from
    one folder), with the same labels and the same excerpt of each file, and feature sets that
    combine (no set twice, no value name in two).
    """
    stores = [FeatureStore.open(url) for url in urls]
    if len(stores) == 1:
        return stores[0]
    try:
        get_feature_set(JOIN.join(store.attrs["feature_set"] for store in stores))
    except BatchgenreError as error:
        raise BatchgenreError(f"{', '.join(urls)} cannot be read as one: {error}") from None
    first = stores[0]
    for other in stores[1:]:
        _check_same_rows(first, other)
    return JoinedStores(stores)


def _check_same_rows(a: FeatureStore, b: FeatureStore) -> None:
    both = f"{a.url} and {b.url}"
    for key in CLIP_KEYS:
        if a.attrs.get(key) != b.attrs.get(key):
            raise BatchgenreError(
                f"{both} cannot be read as one: {key} is {shown(a.attrs.get(key))} in one "
                f"and {shown(b.attrs.get(key))} "
                "in the other; featurize both from the same folder with the same options"
            )
    if a.n_rows != b.n_rows:
        raise BatchgenreError(
            f"{both} cannot be read as one: they hold {a.n_rows} and {b.n_rows} rows; "
            "featurize both from the same folder, and again after adding files"
        )
    named = {"label": (_genre_names(a), _genre_names(b))}
    identity = [name for name in a.group.array_keys() if name not in _OUTCOME_ARRAYS]
    for name, (mine, theirs) in {**named, **{n: (a.column(n), b.column(n)) for n in sorted(identity)}}.items():
        differ = np.flatnonzero(mine != theirs)
        if len(differ):
            i = int(differ[0])
            mine_i, theirs_i = mine[i : i + 1].tolist()[0], theirs[i : i + 1].tolist()[0]  # Python values, to show
            raise BatchgenreError(
                f"{both} cannot be read as one: row {i} has {name} {shown(mine_i)} in one and {shown(theirs_i)} "
                f"in the other ({len(differ)} rows differ); featurize both from the same folder"
            )


def _genre_names(store: FeatureStore) -> np.ndarray:
    """Each row's genre name [shape=(N,), object], None when unlabelled: labels index each store's own genre list."""
    names = np.array([*store.genres, None], dtype=object)
    return names[store.column("label").astype(np.int64)]


def _joined_attrs(stores: list[FeatureStore]) -> dict:
    """The first store's attributes, with the feature set, its parameters, names and description of them all."""
    name = JOIN.join(store.attrs["feature_set"] for store in stores)
    fs = get_feature_set(name)
    params: dict = {}
    for store in stores:
        attrs = store.attrs
        # A store of one set holds that set's parameters; a store of sets combined, each part's by name.
        combined = len(get_feature_set(attrs["feature_set"]).parts) > 1
        params.update(attrs["feature_params"] if combined else {attrs["feature_set"]: attrs["feature_params"]})
    return {
        **stores[0].attrs,
        "feature_set": name,
        "feature_description": fs.description,
        "feature_params": params,
        "feature_names": [n for store in stores for n in store.attrs["feature_names"]],
        "versions": {store.attrs["feature_set"]: store.attrs.get("versions", {}) for store in stores},
    }
