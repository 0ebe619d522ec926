"""A trained model for Python users: loaded once, it predicts the genres of files or of samples in memory."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from batchgenre.audio import SAMPLE_RATE, resample, spread_starts
from batchgenre.classify import serving
from batchgenre.classify.windows import Windows, file_windows, window_features
from batchgenre.errors import BatchgenreError


@dataclass(frozen=True)
class GenreModel:
    """A trained model or the built-in ``msd``, run in NumPy, cutting audio into ``windows`` as classify-dir does.

    Attributes
    ----------
    classifier : the model's forward pass (``batchgenre.classify.serving.Classifier``).
    windows : how a file or a clip is cut; its length is the model's.
    """

    classifier: serving.Classifier
    windows: Windows

    @property
    def genres(self) -> list[str]:
        """The genres the model knows, in the order of its probabilities."""
        return self.classifier.genres

    @property
    def feature_set(self) -> str:
        return self.classifier.metadata["feature_set"]

    def predict(self, audio: str | os.PathLike | np.ndarray, *, sr: int | None = None) -> dict[str, float]:
        """Each genre's probability for one file or one clip: the mean over its windows.

        Parameters
        ----------
        audio : str, os.PathLike or np.ndarray [shape=(n,) or (n, channels)]
            An audio file any of batchgenre's decoders read, or samples (channels are averaged).
        sr : int > 0
            The samples' rate in Hz; required with samples, not used with a file.

        Returns
        -------
        dict
            genre -> probability (float), in the order of ``genres``: a trained model's sum to 1, the
            built-in's are each its genre tag's own (independent sigmoid) probability.

        Raises
        ------
        BatchgenreError
            The file cannot be decoded, or no window of it gives features (silent, too short).
        """
        if isinstance(audio, np.ndarray):
            features, tags, error = self._sample_features(audio, sr=sr)
            name = "the samples"
        else:
            item = file_windows(
                audio, name=os.fspath(audio), feature_set=self.feature_set, sr=SAMPLE_RATE, windows=self.windows
            )
            features, tags, error, name = item.features, item.tags, item.error, item.path
        if features is None:
            raise BatchgenreError(f"{name}: {error}")
        rows = tags if self.classifier.reads == "tags" else features
        mean = self.classifier.probabilities(rows).mean(axis=0, dtype=np.float64)
        return {genre: float(p) for genre, p in zip(self.genres, mean, strict=True)}

    def _sample_features(self, y: np.ndarray, *, sr: int | None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """``window_features`` of samples, cut as ``windows`` cuts a file of the same length."""
        if sr is None or sr <= 0:
            raise BatchgenreError("predict(samples) needs their sample rate: pass sr=, in Hz")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=1, dtype=np.float32)
        elif y.ndim != 1:
            raise BatchgenreError(f"samples must have shape (n,) or (n, channels), got {y.shape}")
        y = resample(y, sr_native=sr, sr=SAMPLE_RATE)
        seconds = len(y) / SAMPLE_RATE
        w = self.windows
        if w.count is not None:
            starts = spread_starts(seconds, window=w.window, count=w.count)
        else:
            end = seconds if w.duration is None else min(seconds, w.offset + w.duration)
            starts = list(np.arange(w.offset, end, w.hop))
            # As for a file: a last window under half a window is dropped unless it is the only one.
            if len(starts) > 1 and end - starts[-1] < w.window / 2:
                starts.pop()
        cut = (y[round(s * SAMPLE_RATE) : round(s * SAMPLE_RATE) + round(w.window * SAMPLE_RATE)] for s in starts)
        return window_features(cut, feature_set=self.feature_set, sr=SAMPLE_RATE)


def load_genre_model(path: str | os.PathLike, *, windows: Windows | None = None) -> GenreModel:
    """The built-in ``"msd"`` or the trained model at ``path`` (``client.load_classifier``), windows of its length."""
    from batchgenre.classify.client import load_classifier

    classifier = load_classifier(path)
    windows = windows or Windows.choose()
    return GenreModel(classifier, windows.for_model(classifier.metadata.get("window")))
