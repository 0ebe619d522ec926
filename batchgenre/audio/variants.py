"""Altered copies of audio files, made the way users' files differ from a training set.

Each variant is written as a real file (rate, channels, codec, level), so it goes through the
same decode and feature code as any other file: robustness figures and augmented training rows
never take a shortcut through feature vectors.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class Variant:
    """How to alter a clip: resample to ``sr`` (None: keep), scale by ``gain_db`` and clip, low-pass, re-encode."""

    name: str
    description: str
    sr: int | None = None
    channels: int = 1
    gain_db: float = 0.0
    lowpass_hz: float | None = None
    codec: str = "wav"  # wav (16-bit PCM) or mp3 (128 kbit/s)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("8khz", "resampled to 8 kHz", sr=8000),
        Variant("16khz", "resampled to 16 kHz", sr=16000),
        Variant("44khz_stereo", "44.1 kHz stereo", sr=44100, channels=2),
        Variant("mp3", "MP3 at 128 kbit/s", codec="mp3"),
        Variant("quiet", "20 dB quieter", gain_db=-20.0),
        Variant("loud", "6 dB louder, clipped", gain_db=6.0),
        Variant("lowpass", "low-passed at 4 kHz", lowpass_hz=4000.0),
    )
}


def augmentation(relpath: str, copy: int) -> Variant:
    """The ``copy``-th altered copy of a training file: random gain (clipped), bandwidth, rate and codec.

    Drawn from a generator seeded by the file's path and the copy number, so a rerun or another
    worker makes the same copy. Its ranges are wider than the robustness variants', so a model
    that holds up under them has learnt more than those seven cases.
    """
    rng = np.random.default_rng([zlib.crc32(relpath.encode()), copy])
    gain = float(rng.uniform(-24.0, 8.0))
    lowpass = float(rng.uniform(3000.0, 9000.0)) if rng.random() < 0.5 else None
    rate = [None, 8000, 11025, 16000, 44100][int(rng.integers(5))]
    codec = "mp3" if rng.random() < 0.4 else "wav"
    parts = [f"gain {gain:+.1f} dB"]
    parts += [f"low-pass {lowpass / 1000:.1f} kHz"] if lowpass else []
    parts += [f"{rate / 1000:g} kHz"] if rate else []
    parts += [codec]
    return Variant(
        f"aug{copy}",
        ", ".join(parts),
        sr=rate,
        channels=2 if rate == 44100 else 1,
        gain_db=gain,
        lowpass_hz=lowpass,
        codec=codec,
    )


def get_variant(name: str) -> Variant:
    from batchgenre.errors import BatchgenreError

    try:
        return VARIANTS[name]
    except KeyError:
        raise BatchgenreError(f"unknown variant {name!r}: choose from {', '.join(VARIANTS)}") from None


def alter(y: np.ndarray, *, sr: int, variant: Variant) -> tuple[np.ndarray, int]:
    """The altered samples [shape=(n,) or (n, channels), dtype=float32] and their rate.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        mono samples at ``sr``.
    """
    if variant.lowpass_hz is not None:
        import scipy.signal

        sos = scipy.signal.butter(8, variant.lowpass_hz, btype="lowpass", fs=sr, output="sos")
        y = scipy.signal.sosfiltfilt(sos, y).astype(np.float32)
    if variant.sr is not None and variant.sr != sr:
        y, sr = soxr.resample(y, sr, variant.sr, quality="soxr_hq").astype(np.float32), variant.sr
    if variant.gain_db:
        y = np.clip(y * np.float32(10 ** (variant.gain_db / 20)), -1.0, 1.0)
    if variant.channels > 1:
        y = np.repeat(y[:, None], variant.channels, axis=1)
    return y, sr


def variant_path(path: Path, variant: Variant) -> Path:
    """Where ``write_variant`` writes: ``path`` plus the variant's extension."""
    path = Path(path)
    return path.with_name(f"{path.name}.{variant.codec}")


def write_variant(y: np.ndarray, *, sr: int, variant: Variant, path: Path) -> Path:
    """Write ``y`` (mono at ``sr``) altered by ``variant`` to ``variant_path(path, variant)``; returns that path."""
    altered, rate = alter(y, sr=sr, variant=variant)
    path = variant_path(path, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    if variant.codec == "mp3":
        _write_mp3(path, altered, sr=rate)
    else:
        sf.write(path, altered, rate, subtype="PCM_16")
    return path


def _write_mp3(path: Path, y: np.ndarray, *, sr: int, bit_rate: int = 128_000) -> None:
    import av

    planar = np.ascontiguousarray((y[:, None] if y.ndim == 1 else y).T, dtype=np.float32)
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sr)
        stream.layout = layout
        stream.bit_rate = bit_rate
        for start in range(0, planar.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + 4096]), format="fltp", layout=layout
            )
            frame.sample_rate = sr
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
