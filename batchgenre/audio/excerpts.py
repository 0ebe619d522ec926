"""Excerpts of audio files as mono float32 at a fixed rate.

One excerpt, a stream of windows, or windows spread over a file.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator

import numpy as np

from batchgenre.audio.decode import DecodeError, Source, open_audio, resample

SAMPLE_RATE = 22050

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".au", ".snd", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga",
        ".mp3", ".m4a", ".mp4", ".aac", ".opus", ".wma", ".webm", ".mka",
    }
)  # fmt: skip

# Frames per soundfile read when streaming: large enough that per-call overhead vanishes,
# small next to a window.
_BLOCK_FRAMES = 1 << 16


def load(
    path: str | os.PathLike,
    *,
    sr: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = 30.0,
) -> np.ndarray:
    """Decode an excerpt of an audio file to mono at ``sr``.

    Agrees with ``librosa.load(path, sr=sr, mono=True, offset=offset, duration=duration)`` on the
    files librosa reads with soundfile, but decodes only the excerpt and downmixes faster.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile or FFmpeg can decode.
    sr : int > 0
        Sample rate of the result.
    offset : float >= 0
        Seconds into the file where the excerpt starts.
    duration : float > 0 or None
        Longest excerpt in seconds; ``None`` reads to the end of the file.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        The excerpt, C-contiguous. ``n = ceil(m * sr / sr_native)`` for the ``m`` frames read at
        the file's own rate ``sr_native``: at most ``int(duration * sr_native)`` of them, fewer
        where the file ends first.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable, not audio, corrupt, or ends before ``offset``.
    """
    _check_excerpt(sr=sr, offset=offset, duration=duration)
    with open_audio(path) as source:
        start = int(offset * source.samplerate)
        stop = None if duration is None else start + int(duration * source.samplerate)
        blocks = list(source.blocks(start, stop, block_frames=None))
        if not blocks:
            raise DecodeError(_no_audio(offset, source))
        native = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        return resample(native, sr_native=source.samplerate, sr=sr)


def probe_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in a file.

    Read from the header where the format says it (exact for libsndfile's formats, FFmpeg's
    estimate otherwise); decoded and counted only where nothing says.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable, not audio, or corrupt.
    """
    with open_audio(path) as source:
        if source.duration is not None:
            return source.duration
        frames = sum(len(block) for block in source.blocks(0, None, block_frames=_BLOCK_FRAMES))
        return frames / source.samplerate


def iter_windows(
    path: str | os.PathLike,
    *,
    sr: int = SAMPLE_RATE,
    window: float = 30.0,
    hop: float = 30.0,
    offset: float = 0.0,
    duration: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream consecutive windows of an excerpt of an audio file, decoding it once.

    Window ``k`` starts ``k * hop`` seconds into the excerpt ``[offset, offset + duration)`` and
    holds the same samples as ``load(path, sr=sr, offset=start, duration=window)``, up to the
    rounding of float32 downmixing; where FFmpeg decodes, ``load`` finds its start from
    timestamps, which Matroska, WebM and ASF keep in milliseconds, so there the two can be a
    millisecond apart. Memory stays in proportion to ``window + hop``, whatever the length of
    the file.

    Windows stop at the first one that reaches the end of the excerpt. That last window may be
    short; it is yielded when it is the only window, or when it holds at least half a window,
    and dropped otherwise, so a tail too short to describe the music never stands alone.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile or FFmpeg can decode.
    sr : int > 0
        Sample rate of the windows.
    window : float > 0
        Length of a window in seconds.
    hop : float > 0
        Seconds between the starts of consecutive windows; less than ``window`` overlaps them,
        more leaves gaps.
    offset : float >= 0
        Seconds into the file where the excerpt starts.
    duration : float > 0 or None
        Length of the excerpt in seconds; ``None`` runs to the end of the file.

    Yields
    ------
    start : float
        Seconds from the beginning of the file to the start of the window.
    y : np.ndarray [shape=(n,), dtype=float32]
        The window, C-contiguous; ``n`` is ``window * sr`` (up to rounding) but for a short
        last window.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable, not audio, corrupt, or ends before ``offset``.
    """
    _check_excerpt(sr=sr, offset=offset, duration=duration)
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive seconds, got {window=} and {hop=}")
    with open_audio(path) as source:
        sr_native = source.samplerate
        first = int(offset * sr_native)
        stop = None if duration is None else first + int(duration * sr_native)
        width = int(window * sr_native)
        blocks = source.blocks(first, stop, block_frames=_BLOCK_FRAMES)
        # A rolling buffer: consecutive native blocks covering frames [held_from, held_to).
        held: list[np.ndarray] = []
        held_from = held_to = first
        for k in itertools.count():
            start = offset + k * hop
            a = int(start * sr_native)
            b = a + width
            # Read one frame past the window, so that a window ending exactly at the end of the
            # file is known to be the last.
            while held_to <= b and (block := next(blocks, None)) is not None:
                held.append(block)
                held_to += len(block)
            while held and held_from + len(held[0]) <= a:
                held_from += len(held.pop(0))
            if not held:  # the excerpt ended before this window
                if k == 0:
                    raise DecodeError(_no_audio(offset, source))
                return
            # Keep only from this window on, so the next concatenation copies no dead frames.
            held = [np.concatenate(held)[a - held_from :]]
            held_from = a
            native = held[0][:width]
            if k > 0 and len(native) < width / 2:
                return
            yield start, resample(native, sr_native=sr_native, sr=sr)
            if held_to <= b:
                return


def spread_starts(duration: float, *, window: float, count: int) -> list[float]:
    """Starts, in seconds, of ``count`` windows of ``window`` s spread evenly over ``duration`` s.

    Window ``k`` is centred in the ``k``-th of equal parts of the file, so the intro and the
    fade-out weigh no more than any other stretch. Where fewer than ``count`` windows fit, as
    many as fit without overlapping are taken (at least one); a file shorter than a window
    gives one window from its start.
    """
    if duration <= window:
        return [0.0]
    fits = min(count, int(duration // window))
    part = duration / fits
    return [(k + 0.5) * part - window / 2 for k in range(fits)]


def iter_spread_windows(
    path: str | os.PathLike,
    *,
    sr: int = SAMPLE_RATE,
    window: float = 30.0,
    count: int = 3,
    duration: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode only ``count`` windows spread evenly over an audio file (``spread_starts``).

    Each window is read on its own: the decoder seeks to it and decodes nothing before it but
    FFmpeg's pre-roll, so the work is in proportion to ``count * window``, not to the song.
    Window ``k`` holds the same samples as ``load(path, sr=sr, offset=start, duration=window)``.
    The file's length comes from ``duration`` when the caller knows it (``probe_duration``),
    else from its header; a file whose header gives no length is decoded once to count its
    frames first.

    A header that overstates the length (FFmpeg estimates some from the bit rate) can leave
    the last window short: it is dropped when it holds less than half a window, unless it is
    the only one.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile or FFmpeg can decode.
    sr : int > 0
        Sample rate of the windows.
    window : float > 0
        Length of a window in seconds.
    count : int > 0
        Most windows to take.
    duration : float > 0 or None
        Seconds of audio in the file, as ``probe_duration`` gives them; None reads them here.

    Yields
    ------
    start : float
        Seconds from the beginning of the file to the start of the window.
    y : np.ndarray [shape=(n,), dtype=float32]
        The window, C-contiguous; ``n`` is ``window * sr`` (up to rounding) but for a file
        shorter than a window.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable, not audio, or corrupt.
    """
    if sr <= 0 or window <= 0 or count < 1:
        raise ValueError(f"sr and window must be positive and count at least 1, got {sr=}, {window=} and {count=}")
    if duration is None:
        duration = probe_duration(path)
    starts = spread_starts(duration, window=window, count=count)
    yielded = 0
    for start in starts:
        # A fresh decoder per window: FFmpeg finds a window from the file's first timestamp,
        # which only a decoder that starts at the top of the file reads.
        with open_audio(path) as source:
            a = int(start * source.samplerate)
            width = int(window * source.samplerate)
            blocks = list(source.blocks(a, a + width, block_frames=None))
            if not blocks:
                continue
            native = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
            if len(starts) > 1 and len(native) < width / 2:
                continue
            yielded += 1
            yield start, resample(native, sr_native=source.samplerate, sr=sr)
    if not yielded:
        with open_audio(path) as source:
            raise DecodeError(_no_audio(starts[0], source))


# Seconds decoded either side of a span (iter_spread_spans) and thrown away, so that the resampler's
# filter has settled by the span's first and last samples (soxr HQ's reaches about 5 ms).
SPAN_MARGIN = 0.1


def iter_spread_spans(
    path: str | os.PathLike,
    *,
    sr: int,
    window: float,
    count: int,
    spans: Callable[[int], list[tuple[int, int]]],
    duration: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """``iter_spread_windows``, decoding only the parts of each window that ``spans`` names; zeros elsewhere.

    For features that read a few short stretches of a window (musicnn's 3 s patches): a 30 s window
    whose features read five patches decodes 15 s of it. Each span is decoded with SPAN_MARGIN
    either side from a sample that falls on the ``sr`` grid of the whole window, so its samples are
    the whole window's up to the resampler's filter edge (float32 rounding). A window near the
    file's end, or in a file whose header gives no length, is decoded whole: its length, which
    decides where the spans lie, is known only once it is read.

    Parameters
    ----------
    spans : callable
        ``spans(n)``: the sample ranges ``[lo, hi)`` at ``sr`` that a window of ``n`` samples needs.
    path, sr, window, count, duration
        as ``iter_spread_windows``.

    Yields
    ------
    start : float
        Seconds from the beginning of the file to the start of the window.
    y : np.ndarray [shape=(n,), dtype=float32]
        The window, zero outside its spans.
    """
    if duration is None:
        duration = probe_duration(path)
    for start in spread_starts(duration, window=window, count=count):
        with open_audio(path) as source:
            rate, whole = source.samplerate, source.duration
        y = None if whole is None or start + window + 1.0 > whole else _spans_of(path, rate, start, window, sr, spans)
        if y is None:
            with open_audio(path) as source:
                a = int(start * rate)
                blocks = list(source.blocks(a, a + int(window * rate), block_frames=None))
            if not blocks:
                raise DecodeError(_no_audio(start, source))
            y = resample(np.concatenate(blocks), sr_native=rate, sr=sr)
        yield start, y


def _spans_of(
    path: str | os.PathLike, rate: int, start: float, window: float, sr: int, spans: Callable
) -> np.ndarray | None:
    """The window at ``start`` with only ``spans`` decoded (iter_spread_spans), or None where the file ends first."""
    a, width = int(start * rate), int(window * rate)
    n = int(np.ceil(width * (float(sr) / rate)))  # resample's length for the whole window
    step = sr // math.gcd(rate, sr)  # samples at sr between those that fall on a native sample
    margin = int(SPAN_MARGIN * sr)
    y = np.zeros(n, dtype=np.float32)
    for lo, hi in spans(n):
        first, last = max(0, (lo - margin) // step * step), min(n, hi + margin)
        with open_audio(path) as source:
            native = list(source.blocks(a + first * rate // sr, a + int(np.ceil(last * rate / sr)), block_frames=None))
        part = resample(np.concatenate(native), sr_native=rate, sr=sr) if native else np.zeros(0, np.float32)
        if len(part) < hi - first or not native or sum(map(len, native)) < (last - first) * rate // sr:
            return None  # a header that overstated the length
        y[lo:hi] = part[lo - first : hi - first]
    return y


def _check_excerpt(*, sr: int, offset: float, duration: float | None) -> None:
    if sr <= 0:
        raise ValueError(f"sr must be a positive sample rate in Hz, got {sr}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more seconds, got {offset}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive seconds or None for the whole file, got {duration}")


def _no_audio(offset: float, source: Source) -> str:
    if source.duration and offset < source.duration:
        return f"no audio at offset {offset:g} s, though the header says {source.duration:.3g} s (truncated?)"
    if offset == 0:
        return "no audio: the file holds no samples"
    if source.duration is None:
        return f"no audio at or after offset {offset:g} s"
    return f"no audio at offset {offset:g} s: the file is {source.duration:.3g} s long"
