"""A feature store as one pandas DataFrame, for notebooks: each row's facts, then its values by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgenre.store.feature_store import STATUS_NAMES, FeatureStore

if TYPE_CHECKING:
    import pandas


def store_frame(url: str) -> pandas.DataFrame:
    """Every row of the store at ``url`` [shape=(rows, 6 + D)]: path, label, status, error, window, augment, values.

    ``label`` and ``status`` are categoricals (an unlabelled row's label is missing); the values keep
    the store's float32 and its names; ``attrs`` holds the store's attributes.
    """
    import pandas as pd

    store = FeatureStore.open(url)
    facts = pd.DataFrame(
        {
            "path": store.column("path").astype(object),
            "label": pd.Categorical.from_codes(store.column("label").astype(int), categories=store.genres),
            "status": pd.Categorical.from_codes(
                store.column("status").astype(int), categories=[STATUS_NAMES[s] for s in sorted(STATUS_NAMES)]
            ),
            "error": store.column("error").astype(object),
            "window": store.column("window"),
            "augment": store.column("augment"),
        }
    )
    values = pd.DataFrame(store.column("features"), columns=store.attrs["feature_names"])
    frame = pd.concat([facts, values], axis=1)
    frame.attrs = store.attrs
    return frame
