"""The tutorial's vector (498 values): librosa's four features with its defaults, from one shared STFT."""

from __future__ import annotations

import numpy as np

from batchgenre.features.base import HOP_LENGTH, N_FFT, FeatureSet, numbered

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


# librosa.feature.tonnetz rows, in librosa's order.
TONNETZ_AXES = ("fifth_x", "fifth_y", "minor_x", "minor_y", "major_x", "major_y")


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


def estimate_tuning(
    S: np.ndarray, *, sr: int, bins_per_octave: int, fmin: float = 150.0, fmax: float = 4000.0
) -> float:
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
    return float(
        librosa.pitch_tuning(pitch[(magnitude >= threshold) & voiced], resolution=0.01, bins_per_octave=bins_per_octave)
    )


TUTORIAL = FeatureSet(
    name="tutorial",
    description=(
        "The tutorial's vector: librosa chroma_stft (12), melspectrogram (128), mfcc (20) and tonnetz (6, "
        "from chroma_cqt), each with librosa's default parameters, summarised as mean, min and max over time."
    ),
    params={"n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": 128, "n_mfcc": 20, "tonnetz_chroma": "cqt"},
    blocks=(
        ("chroma_stft", PITCH_CLASSES),
        ("melspectrogram", numbered(128, 3)),
        ("mfcc", numbered(20, 2)),
        ("tonnetz", TONNETZ_AXES),
    ),
    frames=_tutorial_frames,
)
