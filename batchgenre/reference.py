"""The tutorial's own per-file code, kept as the yardstick for exactness tests and benchmarks.

Four ``librosa.load`` calls and librosa's feature functions with their default parameters,
as the tutorial wrote them; the vector is each feature's mean, min and max over time.
"""

from __future__ import annotations

import numpy as np


def tutorial_feature(path, *, offset: float = 0.0, duration: float | None = 30.0) -> np.ndarray:
    """The tutorial's ``get_feature``: np.ndarray [shape=(498,), dtype=float32]."""
    import librosa

    def load():
        y, sr = librosa.load(path, offset=offset, duration=duration)
        return y, sr

    def summary(m: np.ndarray) -> np.ndarray:
        return np.concatenate((m.mean(axis=1), m.min(axis=1), m.max(axis=1)))

    y, sr = load()
    mfcc = librosa.feature.mfcc(y=y, sr=sr)
    y, sr = load()
    melspectrogram = librosa.feature.melspectrogram(y=y, sr=sr)
    y, sr = load()
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    y, sr = load()
    tonnetz = librosa.feature.tonnetz(y=y, sr=sr)
    return np.concatenate([summary(m) for m in (chroma, melspectrogram, mfcc, tonnetz)]).astype(np.float32)
