"""Feature sets: their definitions, the name of every value, and extraction from samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from batchgenre.errors import BatchgenreError

N_FFT = 2048
HOP_LENGTH = 512
SILENCE_DBFS = -80.0

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# librosa.feature.tonnetz rows, in librosa's order.
TONNETZ_AXES = ("fifth_x", "fifth_y", "minor_x", "minor_y", "major_x", "major_y")
SUMMARIES = ("mean", "min", "max")


class FeatureError(BatchgenreError):
    """Audio that decoded but cannot give meaningful features (too short, silent)."""


@dataclass(frozen=True)
class FeatureSet:
    """A named recipe that turns mono samples into one fixed-length vector.

    ``frames`` gives the per-frame blocks, in vector order, each [shape=(d, t)];
    the vector is each block's mean, then min, then max over time.
    """

    name: str
    description: str
    params: dict = field(hash=False)
    blocks: tuple[tuple[str, tuple[str, ...]], ...]
    frames: Callable[[np.ndarray, int], dict[str, np.ndarray]] = field(hash=False, repr=False)

    @property
    def names(self) -> list[str]:
        """Every value's name, ``block.summary.row``, in vector order."""
        return [f"{block}.{summary}.{row}" for block, rows in self.blocks for summary in SUMMARIES for row in rows]

    @property
    def size(self) -> int:
        return sum(3 * len(rows) for _, rows in self.blocks)

    def extract(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Summarise one clip.

        Parameters
        ----------
        y : np.ndarray [shape=(n,), dtype=float32]
            mono samples at ``sr``.

        Returns
        -------
        np.ndarray [shape=(self.size,), dtype=float32]

        Raises
        ------
        FeatureError
            when the clip is shorter than one FFT frame, silent, or gives non-finite values.
        """
        _check_usable(y)
        blocks = self.frames(y, sr)
        vector = np.concatenate(
            [np.concatenate([m.mean(axis=1), m.min(axis=1), m.max(axis=1)]) for m in (blocks[b] for b, _ in self.blocks)]
        ).astype(np.float32)
        if not np.isfinite(vector).all():
            raise FeatureError("features are not finite (NaN or inf); the audio may be corrupt")
        return vector


def _check_usable(y: np.ndarray) -> None:
    if y.size < N_FFT:
        raise FeatureError(f"too short: {y.size} samples, one FFT frame needs {N_FFT}")
    peak = float(np.max(np.abs(y)))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise FeatureError(f"silent: peak level {level} dBFS, below {SILENCE_DBFS:.0f} dBFS")


def _tutorial_frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The tutorial's four librosa features from one STFT, bit-for-bit equal to calling them on ``y``.

    mel, MFCC and chroma_stft all start from |STFT|**2 with librosa's defaults, so they share it.
    tonnetz runs chroma_cqt, whose tuning estimate librosa takes from the magnitude STFT with
    36 bins per octave: computing that estimate from the same STFT spares a second one.
    """
    import librosa

    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH))
    power = magnitude**2.0
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    cqt_tuning = librosa.estimate_tuning(S=magnitude, sr=sr, bins_per_octave=36)
    chroma_cqt = librosa.feature.chroma_cqt(y=y, sr=sr, tuning=cqt_tuning)
    return {
        "chroma_stft": librosa.feature.chroma_stft(S=power, sr=sr),
        "melspectrogram": mel,
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), sr=sr),
        "tonnetz": librosa.feature.tonnetz(chroma=chroma_cqt, sr=sr),
    }


def _numbered(count: int, width: int) -> tuple[str, ...]:
    return tuple(f"{i:0{width}d}" for i in range(count))


TUTORIAL = FeatureSet(
    name="tutorial",
    description=(
        "The tutorial's vector: librosa chroma_stft (12), melspectrogram (128), mfcc (20) and tonnetz (6, "
        "from chroma_cqt), each with librosa's default parameters, summarised as mean, min and max over time."
    ),
    params={"n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": 128, "n_mfcc": 20, "tonnetz_chroma": "cqt"},
    blocks=(
        ("chroma_stft", PITCH_CLASSES),
        ("melspectrogram", _numbered(128, 3)),
        ("mfcc", _numbered(20, 2)),
        ("tonnetz", TONNETZ_AXES),
    ),
    frames=_tutorial_frames,
)

FEATURE_SETS: dict[str, FeatureSet] = {fs.name: fs for fs in (TUTORIAL,)}


def get_feature_set(name: str) -> FeatureSet:
    """The feature set called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(FEATURE_SETS)
        raise BatchgenreError(f"unknown feature set {name!r}: choose one of {known}") from None
