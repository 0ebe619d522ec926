"""The tutorial's own per-file code, kept as the yardstick for exactness tests and benchmarks.

Four ``librosa.load`` calls and librosa's feature functions with their default parameters,
as the tutorial wrote them; the vector is each feature's mean, min and max over time.
"""

from __future__ import annotations

import numpy as np


def tutorial_feature(path, *, offset: float = 0.0, duration: float | None = 30.0) -> np.ndarray:
    """The tutorial's ``get_feature``: np.ndarray [shape=(498,), dtype=float32].

    One change from the tutorial's text, not its values: both tuning estimates are passed in,
    computed by :func:`safe_tuning`, because librosa computing them itself can crash the process
    on some hosts.
    """
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
    # chroma_stft(y=y, sr=sr) estimates its tuning on the power STFT with 12 bins per octave.
    power = np.abs(librosa.stft(y)) ** 2
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=safe_tuning(power, sr=sr, bins_per_octave=12))
    y, sr = load()
    # tonnetz(y=y, sr=sr) runs chroma_cqt, whose CQT estimates its tuning on the magnitude STFT
    # with chroma_cqt's 36 bins per octave.
    magnitude = np.abs(librosa.stft(y))
    chroma_cqt = librosa.feature.chroma_cqt(y=y, sr=sr, tuning=safe_tuning(magnitude, sr=sr, bins_per_octave=36))
    tonnetz = librosa.feature.tonnetz(chroma=chroma_cqt, sr=sr)
    return np.concatenate([summary(m) for m in (chroma, melspectrogram, mfcc, tonnetz)]).astype(np.float32)


def safe_tuning(S: np.ndarray, *, sr: int, bins_per_octave: int) -> float:
    """``librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=...)``, the same value, without librosa's float32 kernels.

    librosa 0.11's piptrack finds peaks with ``util.localmax``, whose numba float32 kernel
    segfaults with numba 0.68.1 / llvmlite 0.50 on some AMD EPYC hosts (issue 14, item 10).
    This is librosa's piptrack and estimate_tuning step for step over every bin (so it costs what
    librosa's does), with the two numba stencils written in NumPy and the same float32 / float64
    arithmetic, so the same peaks, pitches and tuning come out.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft/2, t), dtype=float32]
        magnitude or power spectrogram.
    """
    import librosa

    S = np.abs(S)
    n_fft = 2 * (S.shape[0] - 1)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    in_band = ((150.0 <= freqs) & (freqs < min(4000.0, sr / 2)))[:, None]
    # The parabolic-interpolation stencil: numba promotes to float64 inside, stores in S's dtype.
    up, mid, down = S[2:], S[1:-1], S[:-2]
    a = (up + down).astype(np.float64) - 2.0 * mid.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    shift = np.zeros_like(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift[1:-1] = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)
    dskew = 0.5 * np.gradient(S, axis=-2) * shift
    # The localmax stencil: strictly above the bin below, at least the bin above; the last bin
    # only needs to beat the one below it, the first is never a peak.
    x = S * (S > 0.1 * np.max(S, axis=-2, keepdims=True))
    peak = np.zeros(S.shape, dtype=bool)
    peak[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    peak[-1] = x[-1] > x[-2]
    rows, cols = np.nonzero(in_band & peak)
    pitch, magnitude = np.zeros_like(S), np.zeros_like(S)
    pitch[rows, cols] = (rows + shift[rows, cols]) * float(sr) / n_fft
    magnitude[rows, cols] = S[rows, cols] + dskew[rows, cols]
    voiced = pitch > 0
    threshold = np.median(magnitude[voiced]) if voiced.any() else 0.0
    return float(
        librosa.pitch_tuning(pitch[(magnitude >= threshold) & voiced], resolution=0.01, bins_per_octave=bins_per_octave)
    )
