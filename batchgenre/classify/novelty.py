""" "None of these": how far a file's features lie from every training row, and the line past which it is unknown.

A softmax model is confident far outside its genres (the three-genre model gives gtzan-mini's other
genres a median top probability of 0.96), so novelty is measured in the feature space instead: the
mean cosine distance from a row to its ``K`` nearest training rows, after standardising each value
by the training rows' mean and spread. Where the feature set has musicnn's embedding, only its
values are used: on gtzan-mini's artist-grouped folds they separate foreign genres far better than
the hand-made features (benchmarks/README.md, "None of these"). The threshold is calibrated when
the model is trained, on training rows scored against the training rows of *other* artists (or
other files, where the store names no artists): a new artist in a known genre is what a user's
library holds, and ``QUANTILE`` of those rows fall inside the line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

K = 3  # nearest training rows averaged: 1 is noisy, 5 and up reach into the next genre (benchmarks/README.md)
QUANTILE = 0.9  # share of other artists' training rows that must fall inside the line
MAX_REFERENCE_ROWS = 5000  # training rows kept in the artifact: 8 MB of musicnn values, and a fast search
MEMBER = "novelty.npz"  # its place in the model.keras zip
CALIBRATION_BLOCK = 1024  # rows scored at a time while calibrating: 20 MB of distances at the most rows kept


@dataclass(frozen=True)
class Novelty:
    """The training rows a model's novelty is measured against, and its threshold.

    columns [shape=(d,), dtype=int64]: which feature values it looks at.
    mean, scale [shape=(d,), dtype=float32]: the training rows' mean and standard deviation of them.
    reference [shape=(n, d), dtype=float32]: training rows, standardised and scaled to unit length.
    threshold: novelty past which a file is called unknown.
    """

    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    threshold: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Novelty [shape=(n,), dtype=float32] of feature rows [shape=(n, D)]: 0 on a training row, up to 2."""
        return _mean_nearest(self.reference, _unit((features[:, self.columns] - self.mean) / self.scale))

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer, **{k: getattr(self, k) for k in ("columns", "mean", "scale", "reference")}, threshold=self.threshold
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Novelty:
        with np.load(io.BytesIO(data)) as saved:
            return cls(
                **{k: saved[k] for k in ("columns", "mean", "scale", "reference")}, threshold=float(saved["threshold"])
            )


def novelty_columns(names: list[str]) -> np.ndarray:
    """The values novelty looks at [shape=(d,)]: musicnn's embedding where the set has it, else every value."""
    embedding = [i for i, name in enumerate(names) if name.startswith("musicnn.")]
    return np.asarray(embedding or range(len(names)), dtype=np.int64)


def fit_novelty(features: np.ndarray, groups: np.ndarray, *, names: list[str], seed: int) -> Novelty:
    """Novelty against training rows [shape=(n, D)], calibrated on each row scored against other groups' rows.

    ``groups`` [shape=(n,)] are the rows' artists, or their files where no artist is known (a file's
    windows are one group); a row whose group is alone gets no calibration score. At most
    ``MAX_REFERENCE_ROWS`` rows are kept, drawn with ``seed``, and the threshold is calibrated on those.
    """
    columns = novelty_columns(names)
    values = features[:, columns].astype(np.float32)
    if len(values) > MAX_REFERENCE_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(values), MAX_REFERENCE_ROWS, replace=False))
        values, groups = values[keep], groups[keep]
    mean, scale = values.mean(axis=0), values.std(axis=0) + np.float32(1e-6)
    reference = _unit((values - mean) / scale)
    codes = np.unique(groups, return_inverse=True)[1]
    outside = []
    for lo in range(0, len(reference), CALIBRATION_BLOCK):
        distance = 1.0 - reference[lo : lo + CALIBRATION_BLOCK] @ reference.T
        distance[codes[lo : lo + CALIBRATION_BLOCK, None] == codes[None, :]] = np.inf  # its own artist or file
        nearest = np.partition(distance, min(K, len(reference)) - 1, axis=1)[:, :K]
        outside.append(nearest[np.isfinite(nearest).all(axis=1)].mean(axis=1))
    outside = np.concatenate(outside)
    threshold = float(np.quantile(outside, QUANTILE)) if len(outside) else 2.0
    return Novelty(columns, mean, scale, reference, threshold)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _mean_nearest(reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean cosine distance [shape=(n,)] from unit ``rows`` to their ``K`` nearest unit ``reference`` rows."""
    distance = 1.0 - rows @ reference.T
    k = min(K, reference.shape[0])
    return np.partition(distance, k - 1, axis=1)[:, :k].mean(axis=1, dtype=np.float64).astype(np.float32)
