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
    """librosa.stft's periodic Hann window [shape=(N_FFT,)] in float32, built once per process.

    scipy.signal.windows.hann(N_FFT, sym=False)'s arithmetic, so the same values, without importing
    scipy.signal (through librosa.filters: 1-2 s of a fresh process).
    """
    fac = np.linspace(-np.pi, np.pi, N_FFT + 1)
    return (np.zeros(N_FFT + 1) + 0.5 * np.cos(0 * fac) + 0.5 * np.cos(fac))[:-1].astype(np.float32)


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


@functools.lru_cache(maxsize=8)
def mel_bank(*, sr: int, n_fft: int, n_mels: int, fmax: float | None = None) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=fmax): Slaney scale and area norm.

    The same float64 arithmetic in the same order, so the same float32 values (tests/test_features.py),
    without ``librosa.filters``, whose import (scipy.signal, scipy.stats) costs a fresh process 1-2 s.
    Returns np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32].
    """
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0

    def to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / logstep

    mels = np.linspace(to_mel(0.0), to_mel(sr / 2 if fmax is None else fmax), n_mels + 2)
    edges = 0.0 + f_sp * mels
    log = mels >= min_log_mel
    edges[log] = min_log_hz * np.exp(logstep * (mels[log] - min_log_mel))
    ramps = np.subtract.outer(edges, np.fft.rfftfreq(n=n_fft, d=1.0 / sr))
    widths = np.diff(edges)
    bank = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        bank[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    bank *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return bank


def n_frames(y: np.ndarray) -> int:
    return 1 + len(y) // HOP_LENGTH


def numbered(count: int, width: int) -> tuple[str, ...]:
    return tuple(f"{i:0{width}d}" for i in range(count))
