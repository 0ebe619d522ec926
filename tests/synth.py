"""Generated test audio: tones and noise, written in any format the decoders are tested on."""

from __future__ import annotations

import pathlib

import numpy as np
import soundfile as sf

# Extensions written through PyAV: (container format, codec, codec sample rate or None to keep sr).
# Opus encodes only at 8/12/16/24/48 kHz, so the encoder resamples to 48 kHz.
_AV_FORMATS = {
    "m4a": ("mp4", "aac", None),
    "mp4": ("mp4", "aac", None),
    "aac": ("adts", "aac", None),
    "opus": ("ogg", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "wma": ("asf", "wmav2", None),
    "mka": ("matroska", "aac", None),
}

# Extensions libsndfile knows by another name.
_SF_FORMATS = {"wave": "WAV", "aif": "AIFF", "aifc": "AIFF", "snd": "AU", "oga": "OGG"}


def tone(
    *,
    freq: float = 440.0,
    seconds: float = 3.0,
    sr: int = 22050,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """A sine tone, the same on every channel.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (n, channels), dtype=float32]
        ``n = round(seconds * sr)``; 1-D when ``channels == 1``.
    """
    t = np.arange(round(seconds * sr)) / sr
    y = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return y if channels == 1 else np.repeat(y[:, None], channels, axis=1)


def noise(
    *,
    seconds: float = 3.0,
    sr: int = 22050,
    amplitude: float = 0.1,
    seed: int = 0,
    channels: int = 1,
) -> np.ndarray:
    """Uniform white noise in ``[-amplitude, amplitude)``, independent per channel.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (n, channels), dtype=float32]
        ``n = round(seconds * sr)``; 1-D when ``channels == 1``.
    """
    shape = (round(seconds * sr),) if channels == 1 else (round(seconds * sr), channels)
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, size=shape).astype(np.float32)


def write(path, y: np.ndarray, *, sr: int = 22050, fmt: str | None = None) -> pathlib.Path:
    """Write ``y`` to ``path`` in the format its extension (or ``fmt``) names.

    wav, flac, ogg, mp3, aiff, au and the rest of libsndfile's formats go through soundfile;
    m4a, mp4, aac, opus, webm, wma and mka are encoded with PyAV.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; missing parent directories are created.
    y : np.ndarray [shape=(n,) or (n, channels)]
        Samples in [-1, 1].
    sr : int
        Sample rate of ``y``.
    fmt : str or None
        Extension to use instead of the path's own, without the dot.

    Returns
    -------
    path : pathlib.Path
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    y = np.asarray(y, dtype=np.float32)
    y2 = y[:, None] if y.ndim == 1 else y
    if fmt in _AV_FORMATS:
        _write_av(path, y2, sr=sr, fmt=fmt)
        return path
    sf_format = _SF_FORMATS.get(fmt, fmt.upper())
    if sf_format == "OGG":
        # One sf.write of long stereo Vorbis segfaults libsndfile 1.2.2; ~1 s blocks do not.
        with sf.SoundFile(path, "w", sr, y2.shape[1], format="OGG", subtype="VORBIS") as f:
            for start in range(0, len(y2), sr):
                f.write(y2[start : start + sr])
    else:
        sf.write(path, y2, sr, format=sf_format)
    return path


def _write_av(path: pathlib.Path, y: np.ndarray, *, sr: int, fmt: str) -> None:
    import av

    container_format, codec, rate = _AV_FORMATS[fmt]
    layout = "mono" if y.shape[1] == 1 else "stereo"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate or sr)
        stream.layout = layout
        if codec == "wmav2":
            stream.bit_rate = 128_000  # wmav2 refuses to open without one
        # The encoder's own resampler converts format, rate and frame size as needed.
        for start in range(0, len(y), 4096):
            block = np.ascontiguousarray(y[start : start + 4096].T)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = sr
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
