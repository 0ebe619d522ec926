"""Feature sets: one module each (``tutorial``, ``fast``, ``robust``, ``musicnn``), what they share, and the registry.

Imports numpy, librosa and scipy, and ``batchgenre.audio`` for resampling; never TensorFlow.
"""

from batchgenre.features.base import HOP_LENGTH, N_FFT, SUMMARY_FUNCTIONS, FeatureError, FeatureSet
from batchgenre.features.fast import FAST
from batchgenre.features.musicnn import MUSICNN
from batchgenre.features.registry import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    JOIN,
    CombinedFeatureSet,
    get_feature_set,
)
from batchgenre.features.robust import ROBUST
from batchgenre.features.tutorial import TUTORIAL, estimate_tuning

__all__ = [
    "DEFAULT_FEATURE_SET",
    "FAST",
    "FEATURE_SETS",
    "HOP_LENGTH",
    "JOIN",
    "MUSICNN",
    "N_FFT",
    "ROBUST",
    "SUMMARY_FUNCTIONS",
    "TUTORIAL",
    "CombinedFeatureSet",
    "FeatureError",
    "FeatureSet",
    "estimate_tuning",
    "get_feature_set",
]
