"""The `fast` set: the tutorial's four features and names from one float32 STFT, A440 chroma, tonnetz from it."""

from __future__ import annotations

import functools

import numpy as np

from batchgenre.features.base import HOP_LENGTH, N_FFT, N_MELS, FeatureSet, n_frames, power_slices
from batchgenre.features.tutorial import TUTORIAL


@functools.lru_cache(maxsize=8)
def _filter_banks(sr: int) -> np.ndarray:
    """The mel bank over the chroma bank [shape=(N_MELS + 12, 1 + N_FFT/2)].

    Stacked, one product gives both from a slice of power. Built once per process and sample
    rate: building them costs more than applying them.
    """
    import librosa

    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    chroma = librosa.filters.chroma(sr=sr, n_fft=N_FFT, tuning=0.0)
    return np.vstack([mel, chroma]).astype(np.float32)


def _fast_frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """One float32 STFT feeds all four blocks; chroma assumes A440 tuning, tonnetz comes from that chroma."""
    import librosa

    bank = _filter_banks(sr)
    projected = np.empty((len(bank), n_frames(y)), dtype=np.float32)
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


FAST = FeatureSet(
    name="fast",
    description=(
        "The tutorial's four features from one float32 STFT (n_fft 2048, hop 512): mel power (128), MFCC (20) "
        "of its dB, chroma (12) from the STFT assuming A440 tuning, and tonnetz (6) from that chroma instead "
        "of a CQT; summarised as mean, min and max over time. Filter banks are built once per worker."
    ),
    params={
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "n_mels": 128,
        "n_mfcc": 20,
        "tonnetz_chroma": "stft",
        "tuning": 0.0,
    },
    blocks=TUTORIAL.blocks,
    frames=_fast_frames,
)
