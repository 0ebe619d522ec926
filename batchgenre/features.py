"""Feature sets: their definitions, the name of every value, and extraction from samples."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from batchgenre import musicnn
from batchgenre.errors import BatchgenreError

N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
SILENCE_DBFS = -80.0

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# librosa.feature.tonnetz rows, in librosa's order.
TONNETZ_AXES = ("fifth_x", "fifth_y", "minor_x", "minor_y", "major_x", "major_y")
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
        _check_usable(y)
        blocks = self.frames(y, sr)
        summaries = [SUMMARY_FUNCTIONS[s] for s in self.summaries]
        vector = np.concatenate(
            [np.concatenate([f(m, axis=1) for f in summaries]) for m in (blocks[b] for b, _ in self.blocks)]
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
    Both tuning estimates (chroma_stft's on the power STFT, chroma_cqt's on the magnitude STFT
    with 36 bins per octave) come from that same STFT, through a band-limited piptrack.
    """
    import librosa

    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH))
    power = magnitude**2.0
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    stft_tuning = estimate_tuning(power, sr=sr, bins_per_octave=12)
    cqt_tuning = estimate_tuning(magnitude, sr=sr, bins_per_octave=36)
    chroma_cqt = librosa.feature.chroma_cqt(y=y, sr=sr, tuning=cqt_tuning)
    return {
        "chroma_stft": librosa.feature.chroma_stft(S=power, sr=sr, tuning=stft_tuning),
        "melspectrogram": mel,
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), sr=sr),
        "tonnetz": librosa.feature.tonnetz(chroma=chroma_cqt, sr=sr),
    }


def estimate_tuning(S: np.ndarray, *, sr: int, bins_per_octave: int, fmin: float = 150.0, fmax: float = 4000.0) -> float:
    """``librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=...)``, equal to it, in a third of its time.

    librosa's piptrack interpolates peaks over every FFT bin and then keeps those in
    [fmin, fmax); here only that band (plus one guard bin each side) is computed, with the same
    arithmetic, so the same peaks, pitches and magnitudes come out.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft/2, t)]
        magnitude or power spectrogram.
    """
    import librosa

    n_fft = 2 * (S.shape[0] - 1)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    band = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    k0, k1 = band[0], band[-1] + 1
    sub = S[k0 - 1 : k1 + 1]
    above = sub * (sub > 0.1 * np.max(S, axis=0, keepdims=True))
    rows, cols = np.nonzero((above[1:-1] > above[:-2]) & (above[1:-1] >= above[2:]))
    up, mid, down = sub[2:][rows, cols], sub[1:-1][rows, cols], sub[:-2][rows, cols]
    # librosa's numba stencil promotes to float64 here; so must we, to land on the same values.
    a = (up + down).astype(np.float64) - 2.0 * mid.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(S.dtype)
    pitch = ((rows + k0 + shift) * float(sr) / n_fft).astype(S.dtype)
    magnitude = mid + 0.5 * ((up - down) / 2.0) * shift
    voiced = pitch > 0
    threshold = np.median(magnitude[voiced]) if voiced.any() else 0.0
    return float(librosa.pitch_tuning(pitch[(magnitude >= threshold) & voiced], resolution=0.01, bins_per_octave=bins_per_octave))


@functools.lru_cache(maxsize=8)
def _filter_banks(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann window [shape=(N_FFT,)] and the mel bank over the chroma bank [shape=(N_MELS + 12, 1 + N_FFT/2)].

    Stacked, one product gives both from a slice of power. Built once per process and sample
    rate: building them costs more than applying them.
    """
    import librosa

    window = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    chroma = librosa.filters.chroma(sr=sr, n_fft=N_FFT, tuning=0.0)
    return window, np.vstack([mel, chroma]).astype(np.float32)


# Frames per slice of the STFT: 128 frames of 2048 float32 samples, their spectrum and its power
# fit in a core's 2 MiB L2 cache. Whole-clip spectrograms (10 MB) went through memory instead, and
# two workers on two cores then slowed each other by 9% per file; in slices they do not.
STFT_SLICE_FRAMES = 128


def power_slices(y: np.ndarray, *, sr: int) -> Iterator[tuple[slice, np.ndarray]]:
    """|STFT|**2 in float32, a slice of frames at a time, centred with zero padding like librosa.stft's defaults.

    Yields
    ------
    (frames, power) : (slice, np.ndarray [shape=(frames, 1 + N_FFT/2), dtype=float32])
        which frames of the whole spectrogram (1 + len(y) // HOP_LENGTH of them) and their power.
    """
    import scipy.fft

    window = _filter_banks(sr)[0]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, N_FFT // 2), N_FFT)[::HOP_LENGTH]
    for start in range(0, len(frames), STFT_SLICE_FRAMES):
        part = slice(start, min(start + STFT_SLICE_FRAMES, len(frames)))
        spectrum = scipy.fft.rfft(frames[part] * window, axis=-1)
        yield part, spectrum.real**2 + spectrum.imag**2


def _n_frames(y: np.ndarray) -> int:
    return 1 + len(y) // HOP_LENGTH


def _fast_frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """One float32 STFT feeds all four blocks; chroma assumes A440 tuning, tonnetz comes from that chroma."""
    import librosa

    bank = _filter_banks(sr)[1]
    projected = np.empty((len(bank), _n_frames(y)), dtype=np.float32)
    for frames, power in power_slices(y.astype(np.float32, copy=False), sr=sr):
        projected[:, frames] = bank @ power.T
    mel, chroma = projected[:N_MELS], projected[N_MELS:]
    chroma = librosa.util.normalize(chroma, norm=np.inf, axis=-2)
    return {
        "chroma_stft": chroma,
        "melspectrogram": mel,
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20),
        "tonnetz": librosa.feature.tonnetz(chroma=chroma),
    }


# The robust set looks only below ROBUST_FMAX, the band every copy of a clip keeps: audio resampled
# to 8 kHz is flat to about 3.7 kHz and gone by 3.9 kHz, a 4 kHz low-pass is already -0.6 dB at
# 3.5 kHz, and codecs and clipping change the top of the spectrum most.
ROBUST_FMAX = 3500.0
ROBUST_N_MELS = 128
ROBUST_N_MFCC = 30
# Mel power is taken relative to the clip's own mean in-band power, floored this far below it,
# so that neither gain nor the 16-bit quantisation noise of a quiet copy reaches the features.
ROBUST_FLOOR_DB = -60.0
# A clip with less than this share of its energy in the band has nothing there for the set to describe.
ROBUST_MIN_BAND_SHARE = 1e-4
# Min and max over time are what clipping, codecs and quantisation noise move most.
ROBUST_SUMMARIES = ("mean", "std")


@functools.lru_cache(maxsize=8)
def _robust_banks(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mel bank [shape=(ROBUST_N_MELS, k)] on the first ``k`` STFT bins; DCT-II [shape=(ROBUST_N_MFCC, ROBUST_N_MELS)].

    The mel triangles end at ROBUST_FMAX, so the bank is cut to the ``k`` bins they touch and
    the rest of the spectrum is never multiplied. The DCT is librosa.feature.mfcc's (type 2,
    orthonormal) as a matrix. Built once per process and sample rate, in float32.
    """
    import librosa
    import scipy.fft

    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=ROBUST_N_MELS, fmin=0.0, fmax=ROBUST_FMAX)
    k = int(np.flatnonzero(mel.any(axis=0))[-1]) + 1
    dct = scipy.fft.dct(np.eye(ROBUST_N_MELS), type=2, norm="ortho", axis=0)[:ROBUST_N_MFCC]
    return np.ascontiguousarray(mel[:, :k], dtype=np.float32), dct.astype(np.float32)


def _robust_frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """MFCC [shape=(ROBUST_N_MFCC, t)] of the band-limited, level-relative log-mel, and its frame-to-frame change.

    ``mfcc_abs_delta`` [shape=(ROBUST_N_MFCC, t - 1)] is ``|mfcc[:, 1:] - mfcc[:, :-1]|``: how fast
    the timbre moves, which tells genres apart that share an average spectrum. Its absolute
    value makes the mean meaningful; the mean of a signed difference is only
    ``(last - first) / t``, noise that cost 7 points of ten-genre accuracy when it was tried.
    """
    mel_bank, dct = _robust_banks(sr)
    bins = mel_bank.shape[1]
    mel = np.empty((len(mel_bank), _n_frames(y)), dtype=np.float32)
    band_power = total_power = 0.0
    for frames, power in power_slices(y.astype(np.float32, copy=False), sr=sr):
        band = power[:, :bins]
        mel[:, frames] = mel_bank @ band.T
        band_power += band.sum(dtype=np.float64)
        total_power += power.sum(dtype=np.float64)
    # Normalising to the band's own level would blow window leakage up into features.
    if band_power < ROBUST_MIN_BAND_SHARE * total_power:
        raise FeatureError(
            f"no usable energy below {ROBUST_FMAX:.0f} Hz, the only band the robust feature set uses "
            f"(less than {ROBUST_MIN_BAND_SHARE:g} of the clip's energy)"
        )
    # dB relative to the clip's own level: a gain of g dB shifts every frame by g and cancels here,
    # where the tutorial's absolute dB let loudness alone tell classical from rock.
    log_mel = 10.0 * np.log10(mel / mel.mean() + np.float32(10.0 ** (ROBUST_FLOOR_DB / 10.0)))
    mfcc = dct @ log_mel
    return {"mfcc": mfcc, "mfcc_abs_delta": np.abs(np.diff(mfcc, axis=1))}


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

ROBUST = FeatureSet(
    name="robust",
    description=(
        f"Level-, rate- and codec-robust timbre: {ROBUST_N_MFCC} MFCC (DCT-II of a {ROBUST_N_MELS}-band mel "
        f"spectrogram over 0-{ROBUST_FMAX:.0f} Hz only, in dB relative to the clip's mean in-band power, floored "
        f"{-ROBUST_FLOOR_DB:.0f} dB below it) and the absolute frame-to-frame change of each MFCC, from one float32 "
        "STFT (n_fft 2048, hop 512); summarised as mean and standard deviation over time, never min or max, "
        "which clipping, codecs and quantisation noise move most."
    ),
    params={
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "n_mels": ROBUST_N_MELS,
        "fmin": 0.0,
        "fmax": ROBUST_FMAX,
        "n_mfcc": ROBUST_N_MFCC,
        "level": "mean in-band mel power",
        "floor_db": ROBUST_FLOOR_DB,
        "summaries": list(ROBUST_SUMMARIES),
    },
    blocks=(
        ("mfcc", _numbered(ROBUST_N_MFCC, 2)),
        ("mfcc_abs_delta", _numbered(ROBUST_N_MFCC, 2)),
    ),
    frames=_robust_frames,
    summaries=ROBUST_SUMMARIES,
)

MUSICNN = FeatureSet(
    name="musicnn",
    description=(
        "The 200-unit penultimate layer of musicnn's MSD-trained tagger (Pons & Serra 2019; weights ISC-licensed, "
        "batchgenre/weights/MUSICNN-LICENSE.md) on 3 s patches end to end of a 16 kHz, 96-band log-mel spectrogram "
        "(n_fft 512, hop 256, log10(1 + 10000 mel)), summarised as mean and max over the patches; "
        "clips need at least 3 s. A NumPy forward pass: no TensorFlow on the workers."
    ),
    params=musicnn.PARAMS,
    blocks=(("musicnn", _numbered(musicnn.PENULTIMATE_UNITS, 3)),),
    frames=musicnn.frames,
    summaries=musicnn.SUMMARIES,
    warm_up=False,
    min_seconds=musicnn.MIN_SAMPLES / musicnn.SAMPLE_RATE,
)

FEATURE_SETS: dict[str, FeatureSet] = {fs.name: fs for fs in (TUTORIAL, FAST, ROBUST, MUSICNN)}
# The set featurize uses unless told otherwise: the one whose accuracy holds on files recorded unlike
# the training set (quieter, band-limited, re-encoded), and the fastest (benchmarks/README.md).
DEFAULT_FEATURE_SET = ROBUST.name
# Sets computed together are named by joining their names with this: "robust+musicnn".
JOIN = "+"


@dataclass(frozen=True)
class CombinedFeatureSet:
    """Several feature sets computed on the same samples, their vectors end to end.

    Each part keeps its own blocks and summaries (robust: mean and std; musicnn: mean and max),
    so a value's name is its part's name for it, and the parts' names never repeat (see
    :func:`get_feature_set`): a model's columns (``block.summary.row``) each say which part they are.
    """

    parts: tuple[FeatureSet, ...]

    @property
    def name(self) -> str:
        return JOIN.join(part.name for part in self.parts)

    @property
    def description(self) -> str:
        return " ".join(f"{part.name}: {part.description}" for part in self.parts)

    @property
    def params(self) -> dict:
        """Each part's parameters, by its name."""
        return {part.name: part.params for part in self.parts}

    @property
    def blocks(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(block for part in self.parts for block in part.blocks)

    @property
    def summaries(self) -> tuple[str, ...]:
        """Every summary some part uses, in order of first use."""
        return tuple(dict.fromkeys(s for part in self.parts for s in part.summaries))

    @property
    def warm_up(self) -> bool:
        return any(part.warm_up for part in self.parts)

    @property
    def min_seconds(self) -> float:
        return max(part.min_seconds for part in self.parts)

    @property
    def names(self) -> list[str]:
        return [name for part in self.parts for name in part.names]

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    def extract(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Each part's vector of one clip, end to end [shape=(self.size,), dtype=float32]; see :meth:`FeatureSet.extract`."""
        return np.concatenate([part.extract(y, sr=sr) for part in self.parts])


def get_feature_set(name: str) -> FeatureSet | CombinedFeatureSet:
    """The feature set called ``name``, or the sets ``a+b`` name combined; a one-line error otherwise.

    A combination is refused when a part is unknown or named twice, or when two parts have a
    value of the same name (``robust`` and ``fast`` both have ``mfcc.mean.00``).
    """
    parts = []
    for part in name.split(JOIN):
        if part not in FEATURE_SETS:
            known = ", ".join(FEATURE_SETS)
            unknown = "" if part == name else f" ({part!r} is not one)"
            raise BatchgenreError(
                f"unknown feature set {name!r}{unknown}: choose one of {known}, "
                f"or several joined with {JOIN} (like robust{JOIN}musicnn)"
            )
        if FEATURE_SETS[part] in parts:
            raise BatchgenreError(f"feature set {name!r} names {part!r} twice")
        parts.append(FEATURE_SETS[part])
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, str] = {}
    for part in parts:
        for value in part.names:
            if seen.setdefault(value, part.name) != part.name:
                raise BatchgenreError(
                    f"feature set {name!r}: {seen[value]!r} and {part.name!r} both have a value named {value!r}, "
                    "so a model could not tell them apart; combine sets whose values differ (like robust+musicnn)"
                )
    return CombinedFeatureSet(tuple(parts))
