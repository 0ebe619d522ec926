"""What every feature set shares: the FeatureSet type, its error, summaries over time, and the sliced STFT."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from batchgenre.errors import BatchgenreError

N_FFT = 2048


HOP_LENGTH = 512


N_MELS = 128


SILENCE_DBFS = -80.0


SUMMARIES = ("mean", "min", "max")


# Statistics over time a feature set may summarise its blocks with; each maps (d, t) -> (d,).
SUMMARY_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}


class FeatureError(BatchgenreError):
    """Audio that decoded but cannot give meaningful features (too short, silent)."""


@dataclass(frozen=True)
class FeatureSet:
    """A named recipe that turns mono samples into one fixed-length vector.

    ``frames`` gives the per-frame blocks, in vector order, each [shape=(d, t)];
    the vector is, block by block, each of ``summaries`` over time in turn (by default the
    mean, then the min, then the max).
    """

    name: str
    description: str
    params: dict = field(hash=False)
    blocks: tuple[tuple[str, tuple[str, ...]], ...]
    frames: Callable[[np.ndarray, int], dict[str, np.ndarray]] = field(hash=False, repr=False)
    summaries: tuple[str, ...] = SUMMARIES
    # Whether a new worker computes the set once on noise before its first file: worth it where
    # librosa's numba kernels would otherwise compile during a real file, not for a set whose
    # first call only loads weights that most runs never use.
    warm_up: bool = field(default=True, compare=False)
    # The shortest audio a row can be computed from, so that featurize refuses a shorter --duration
    # or --window up front instead of failing every file.
    min_seconds: float = field(default=0.0, compare=False)
    # Blocks ``frames`` also returns that are outputs, not features (musicnn's tag probabilities):
    # ``extract_with_extras`` hands back their mean over time from the same computation.
    extras: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        unknown = [s for s in self.summaries if s not in SUMMARY_FUNCTIONS]
        if unknown:
            known = ", ".join(SUMMARY_FUNCTIONS)
            raise ValueError(f"feature set {self.name!r}: unknown summaries {unknown}; choose from {known}")

    @property
    def parts(self) -> tuple[FeatureSet, ...]:
        """The sets computed, in vector order: this one alone (a :class:`CombinedFeatureSet` has several)."""
        return (self,)

    @property
    def names(self) -> list[str]:
        """Every value's name, ``block.summary.row``, in vector order."""
        return [f"{block}.{summary}.{row}" for block, rows in self.blocks for summary in self.summaries for row in rows]

    @property
    def size(self) -> int:
        return sum(len(self.summaries) * len(rows) for _, rows in self.blocks)

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
        return self.extract_with_extras(y, sr=sr)[0]

    def extract_with_extras(self, y: np.ndarray, *, sr: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Summarise one clip as :meth:`extract` does, and hand back the set's ``extras`` from the same pass.

        Returns
        -------
        vector : np.ndarray [shape=(self.size,), dtype=float32]
        extras : dict
            name -> np.ndarray [shape=(d,), dtype=float32], each of ``extras``' mean over time.
        """
        _check_usable(y)
        blocks = self.frames(y, sr)
        summaries = [SUMMARY_FUNCTIONS[s] for s in self.summaries]
        vector = np.concatenate(
            [np.concatenate([f(m, axis=1) for f in summaries]) for m in (blocks[b] for b, _ in self.blocks)]
        ).astype(np.float32)
        if not np.isfinite(vector).all():
            raise FeatureError("features are not finite (NaN or inf); the audio may be corrupt")
        return vector, {name: blocks[name].mean(axis=1, dtype=np.float32) for name in self.extras}


def _check_usable(y: np.ndarray) -> None:
    if y.size < N_FFT:
        raise FeatureError(f"too short: {y.size} samples, one FFT frame needs {N_FFT}")
    peak = float(np.max(np.abs(y)))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise FeatureError(f"silent: peak level {level} dBFS, below {SILENCE_DBFS:.0f} dBFS")


# Frames per slice of the STFT: 128 frames of 2048 float32 samples, their spectrum and its power
# fit in a core's 2 MiB L2 cache. Whole-clip spectrograms (10 MB) went through memory instead, and
# two workers on two cores then slowed each other by 9% per file; in slices they do not.
STFT_SLICE_FRAMES = 128


@functools.lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    """librosa.stft's periodic Hann window [shape=(N_FFT,)] in float32, built once per process."""
    import librosa

    return librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)


def power_slices(y: np.ndarray, *, sr: int) -> Iterator[tuple[slice, np.ndarray]]:
    """|STFT|**2 in float32, a slice of frames at a time, centred with zero padding like librosa.stft's defaults.

    Yields
    ------
    (frames, power) : (slice, np.ndarray [shape=(frames, 1 + N_FFT/2), dtype=float32])
        which frames of the whole spectrogram (1 + len(y) // HOP_LENGTH of them) and their power.
    """
    import scipy.fft

    window = _hann_window()
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, N_FFT // 2), N_FFT)[::HOP_LENGTH]
    for start in range(0, len(frames), STFT_SLICE_FRAMES):
        part = slice(start, min(start + STFT_SLICE_FRAMES, len(frames)))
        spectrum = scipy.fft.rfft(frames[part] * window, axis=-1)
        yield part, spectrum.real**2 + spectrum.imag**2


def n_frames(y: np.ndarray) -> int:
    return 1 + len(y) // HOP_LENGTH


def numbered(count: int, width: int) -> tuple[str, ...]:
    return tuple(f"{i:0{width}d}" for i in range(count))
