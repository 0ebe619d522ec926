"""Audio in: open any file, decode an excerpt or windows of it at one rate, find a corpus's files, make altered copies.

Imports numpy, soundfile, soxr and (lazily) PyAV; nothing of batchgenre's but ``errors``.
"""

from batchgenre.audio.decode import PREROLL_SECONDS, DecodeError, open_audio, resample
from batchgenre.audio.excerpts import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    iter_spread_spans,
    iter_spread_windows,
    iter_windows,
    load,
    probe_duration,
    spread_starts,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "PREROLL_SECONDS",
    "SAMPLE_RATE",
    "DecodeError",
    "iter_spread_spans",
    "iter_spread_windows",
    "iter_windows",
    "load",
    "open_audio",
    "probe_duration",
    "resample",
    "spread_starts",
]
