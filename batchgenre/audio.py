"""Decode audio files to mono float32 at a fixed rate: one excerpt, a stream of windows, or windows spread over a file.

libsndfile (through soundfile) reads what it can; FFmpeg (through PyAV) reads the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import stat
import sys
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

from batchgenre.errors import BatchgenreError

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

# FFmpeg seeks land on a packet boundary, and the first packets after a seek decode badly for
# codecs that carry state across packets (Opus pre-roll, AAC overlap, the MP3 bit reservoir),
# so seek this far before the wanted offset and throw the extra away.
PREROLL_SECONDS = 0.5

log = logging.getLogger(__name__)


class DecodeError(BatchgenreError):
    """A file that cannot be decoded.

    The message is the reason alone, in one line, without the path: the caller names the file.
    """


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
    with _open(path) as source:
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
    with _open(path) as source:
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
    with _open(path) as source:
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
        with _open(path) as source:
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
        with _open(path) as source:
            raise DecodeError(_no_audio(starts[0], source))


def _check_excerpt(*, sr: int, offset: float, duration: float | None) -> None:
    if sr <= 0:
        raise ValueError(f"sr must be a positive sample rate in Hz, got {sr}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more seconds, got {offset}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive seconds or None for the whole file, got {duration}")


def _no_audio(offset: float, source: _SoundfileSource | _AvSource) -> str:
    if source.duration and offset < source.duration:
        return f"no audio at offset {offset:g} s, though the header says {source.duration:.3g} s (truncated?)"
    if offset == 0:
        return "no audio: the file holds no samples"
    if source.duration is None:
        return f"no audio at or after offset {offset:g} s"
    return f"no audio at offset {offset:g} s: the file is {source.duration:.3g} s long"


def _downmix(y: np.ndarray) -> np.ndarray:
    """Average the channels of ``y`` [shape=(n, c)] into [shape=(n,)].

    A matrix-vector product is ~30x faster than ``y.mean(axis=1)`` and equal to float32
    rounding.
    """
    c = y.shape[1]
    if c == 1:
        return y[:, 0]
    return y @ np.full(c, 1 / c, dtype=y.dtype)


def resample(y: np.ndarray, *, sr_native: int, sr: int) -> np.ndarray:
    """Resample as ``librosa.resample(res_type="soxr_hq", fix=True)`` does, length included."""
    if sr_native == sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    # librosa's own length formula, float ratio and all, so lengths agree to the sample.
    n = int(np.ceil(len(y) * (float(sr) / sr_native)))
    y = soxr.resample(y, sr_native, sr, quality="soxr_hq")
    if len(y) >= n:
        return np.ascontiguousarray(y[:n], dtype=np.float32)
    return np.pad(y, (0, n - len(y))).astype(np.float32, copy=False)


def _check_path(path: str | os.PathLike) -> None:
    """Fail early, with a plain reason, on what no decoder could read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DecodeError("broken symbolic link: its target does not exist") from None
        raise DecodeError("file vanished before it could be read") from None
    except OSError as e:
        raise DecodeError(_os_reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("a directory, not an audio file")
    if st.st_size == 0:
        raise DecodeError("empty file (0 bytes)")


def _os_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read: {e.strerror or e}"


# Everything libsndfile reports comes as soundfile's LibsndfileError, a RuntimeError.
_SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, EOFError)


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[_SoundfileSource | _AvSource]:
    """Open ``path`` with libsndfile, or FFmpeg where libsndfile can't.

    Any failure of either decoder, here or while reading inside the block, leaves as a
    DecodeError.
    """
    _check_path(path)
    try:
        with _mpg123_quiet():
            f = sf.SoundFile(path)
    except _SOUNDFILE_ERRORS as e:
        # libsndfile's reasons are unreliable (random bytes in a .mp3 read as "not a regular
        # file"), so FFmpeg gets its turn and the last word.
        log.debug("libsndfile cannot open %s (%s); trying FFmpeg", path, _decoder_reason(e))
    else:
        with _translated(_SOUNDFILE_ERRORS), f:
            yield _SoundfileSource(f)
        return

    import av  # FFmpeg takes a while to import, and most collections never need it.

    av_errors = (av.error.FFmpegError, RuntimeError, EOFError)
    not_audio = "not an audio file libsndfile or FFmpeg can decode"
    with _translated(av_errors, reason=not_audio):
        container = av.open(os.fspath(path))
    with _translated(av_errors), container:
        if not container.streams.audio:
            raise DecodeError("no audio stream")
        stream = container.streams.audio[0]
        if not stream.codec_context.sample_rate:
            # FFmpeg's probe takes almost any bytes for MPEG audio, at a rate of 0.
            raise DecodeError(not_audio)
        yield _AvSource(container, stream)


@contextlib.contextmanager
def _translated(errors: tuple[type[Exception], ...], *, reason: str | None = None) -> Iterator[None]:
    """Turn a decoder's ``errors`` and any OSError into DecodeError.

    The message is ``reason`` when given, else the decoder's own words.
    """
    try:
        yield
    except MemoryError:  # PyAV's MemoryError is an FFmpegError too; it stays what it is.
        raise
    except OSError as e:
        raise DecodeError(_os_reason(e)) from e
    except errors as e:
        raise DecodeError(reason or f"corrupt or truncated: {_decoder_reason(e)}") from e


@contextlib.contextmanager
def _mpg123_quiet() -> Iterator[None]:
    """Send the C library's stderr to /dev/null for one libsndfile call.

    libmpg123, inside libsndfile, prints "Note: Trying to resync..." and the like straight to
    file descriptor 2 on damaged MP3s, with no switch to stop it; what it means arrives as the
    call's result or error anyway. Only the call is covered, so Python's own messages still
    reach the terminal.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _decoder_reason(e: Exception) -> str:
    """The decoder's own words, without the path that soundfile and PyAV put in str(e)."""
    reason = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)
    return reason.removeprefix("Error : ").strip().rstrip(".")


class _SoundfileSource:
    """Mono native-rate blocks from an open libsndfile handle."""

    def __init__(self, f: sf.SoundFile):
        self._f = f
        self.samplerate: int = f.samplerate
        self.duration: float | None = f.frames / f.samplerate

    def blocks(self, start: int, stop: int | None, *, block_frames: int | None) -> Iterator[np.ndarray]:
        """Yield frames ``[start, stop)`` (``stop=None``: to the end) as mono float32 blocks.

        ``block_frames=None`` reads everything in one block. Fewer frames come when the file
        ends first, none when it ends before ``start``.
        """
        f = self._f
        if start >= f.frames:  # seeking past the end is an error in libsndfile
            return
        if start:
            with _mpg123_quiet():
                f.seek(start)
        remaining = (f.frames if stop is None else min(stop, f.frames)) - start
        while remaining > 0:
            # Never read at the end of the file: libmpg123 reports a bogus frame error there.
            n = remaining if block_frames is None else min(remaining, block_frames)
            with _mpg123_quiet():
                y = f.read(n, dtype="float32", always_2d=True)
            if not len(y):
                return
            yield _downmix(y)
            remaining -= len(y)


class _AvSource:
    """Mono native-rate blocks from the first audio stream of an open PyAV container."""

    def __init__(self, container, stream):
        import av

        self._container = container
        self._stream = stream
        self.samplerate: int = stream.codec_context.sample_rate
        if stream.duration is not None:
            self.duration: float | None = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            self.duration = container.duration / av.time_base
        else:
            self.duration = None

    def blocks(self, start: int, stop: int | None, *, block_frames: int | None) -> Iterator[np.ndarray]:
        """Yield frames ``[start, stop)`` (``stop=None``: to the end) as mono float32 blocks.

        Blocks are FFmpeg's decoded frames, whatever ``block_frames`` says. Frame ``0`` is the
        first sample the decoder gives from the top of the file; seeking finds ``start`` from
        the timestamps relative to it.
        """
        import av

        container, stream = self._container, self._stream
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None:
            return
        if start and first.pts is not None:
            target = max(0.0, start / self.samplerate - PREROLL_SECONDS)
            container.seek(first.pts + int(target / stream.time_base), stream=stream)
            frames = container.decode(stream)
            pos = None
        else:
            frames = itertools.chain([first], frames)
            pos = 0
        # Planar float whatever the codec gives; the rate changes only for streams whose
        # frames disagree with the header (HE-AAC, for one).
        resampler = av.AudioResampler(format="fltp", rate=self.samplerate)
        for frame in itertools.chain(frames, [None]):
            if pos is None and frame is not None:
                pos = round((frame.pts - first.pts) * stream.time_base * self.samplerate)
            for out in resampler.resample(frame):
                y = _downmix(out.to_ndarray().T)
                lo, hi = max(start - pos, 0), len(y) if stop is None else min(stop - pos, len(y))
                pos += len(y)
                if lo < hi:
                    yield y[lo:hi]
                if stop is not None and pos >= stop:
                    return
