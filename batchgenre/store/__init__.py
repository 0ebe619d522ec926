"""What lasts on disk.

The zarr feature store and its writer lock, joined stores, results tables, the model artifact's metadata.

Imports numpy, zarr and fsspec (lazily), and ``batchgenre.features`` for feature-set names only.
"""

from batchgenre.store.feature_store import (
    AUDIO_KEYS,
    DONE,
    FAILED,
    FOLDER_LABELS,
    GROUP,
    MAX_AUGMENT,
    MAX_WINDOWS,
    PENDING,
    STAT_ARRAYS,
    BlockRows,
    FeatureStore,
    rows_to_compute,
)
from batchgenre.store.lock import LOCK_PATTERN, writer_lock
from batchgenre.store.paths import file_stats

__all__ = [
    "AUDIO_KEYS",
    "DONE",
    "FAILED",
    "FOLDER_LABELS",
    "GROUP",
    "LOCK_PATTERN",
    "MAX_AUGMENT",
    "MAX_WINDOWS",
    "PENDING",
    "STAT_ARRAYS",
    "BlockRows",
    "FeatureStore",
    "file_stats",
    "rows_to_compute",
    "writer_lock",
]
