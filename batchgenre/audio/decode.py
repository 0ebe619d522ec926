"""Open any audio file and read its frames: libsndfile (through soundfile) where it can, FFmpeg (through PyAV) else.

The one place that talks to a decoder: every failure leaves as a ``DecodeError`` whose message is the
reason alone; blocks come mono, float32, at the file's own rate, and ``resample`` takes them to ours.
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

log = logging.getLogger(__name__)


# FFmpeg seeks land on a packet boundary, and the first packets after a seek decode badly for
# codecs that carry state across packets (Opus pre-roll, AAC overlap, the MP3 bit reservoir),
# so seek this far before the wanted offset and throw the extra away.
PREROLL_SECONDS = 0.5


class DecodeError(BatchgenreError):
    """A file that cannot be decoded.

    The message is the reason alone, in one line, without the path: the caller names the file.
    """


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
def open_audio(path: str | os.PathLike) -> Iterator[Source]:
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


# What ``open_audio`` yields: either reader, with ``samplerate``, ``duration`` (s, or None) and ``blocks``.
Source = _SoundfileSource | _AvSource
