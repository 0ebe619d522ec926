"""Feature sets: their definitions, the name of every value, and extraction from samples."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=8)
def _filter_banks(sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hann window [shape=(N_FFT,)], mel [shape=(128, 1 + N_FFT/2)] and chroma [shape=(12, 1 + N_FFT/2)] banks.

    Built once per process and sample rate: building them costs more than applying them.
    """
    import librosa

    window = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT).astype(np.float32)
    chroma = librosa.filters.chroma(sr=sr, n_fft=N_FFT, tuning=0.0).astype(np.float32)
    return window, mel, chroma


def power_spectrogram(y: np.ndarray, *, sr: int) -> np.ndarray:
    """|STFT|**2 in float32, centred with zero padding like librosa.stft's defaults.

    Returns
    -------
    np.ndarray [shape=(1 + N_FFT/2, t), dtype=float32]
    """
    import scipy.fft

    window = _filter_banks(sr)[0]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, N_FFT // 2), N_FFT)[::HOP_LENGTH]
    spectrum = scipy.fft.rfft(frames * window, axis=-1)
    return (spectrum.real**2 + spectrum.imag**2).T


def _fast_frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """One float32 STFT feeds all four blocks; chroma assumes A440 tuning, tonnetz comes from that chroma."""
    import librosa

    _, mel_bank, chroma_bank = _filter_banks(sr)
    power = power_spectrogram(y.astype(np.float32, copy=False), sr=sr)
    mel = mel_bank @ power
    chroma = librosa.util.normalize(chroma_bank @ power, norm=np.inf, axis=-2)
    return {
        "chroma_stft": chroma,
        "melspectrogram": mel,
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20),
        "tonnetz": librosa.feature.tonnetz(chroma=chroma),
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

FAST = FeatureSet(
    name="fast",
    description=(
        "The tutorial's four features from one float32 STFT (n_fft 2048, hop 512): mel power (128), MFCC (20) "
        "of its dB, chroma (12) from the STFT assuming A440 tuning, and tonnetz (6) from that chroma instead "
        "of a CQT; summarised as mean, min and max over time. Filter banks are built once per worker."
    ),
    params={"n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": 128, "n_mfcc": 20, "tonnetz_chroma": "stft", "tuning": 0.0},
    blocks=TUTORIAL.blocks,
    frames=_fast_frames,
)

FEATURE_SETS: dict[str, FeatureSet] = {fs.name: fs for fs in (TUTORIAL, FAST)}


def get_feature_set(name: str) -> FeatureSet:
    """The feature set called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(FEATURE_SETS)
        raise BatchgenreError(f"unknown feature set {name!r}: choose one of {known}") from None
