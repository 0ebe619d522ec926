"""Window features of audio files for classification: what runs on a worker, and never imports TensorFlow.

A file is cut into windows (``Windows``) and each usable window featurized with the code featurize
uses; ``classify`` turns them into predictions in the client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from batchgenre.cluster.sandbox import DEFAULT_MEMORY_CAP
from batchgenre.errors import BatchgenreError, describe

# Windows the command line classifies per file unless told otherwise; the figures that chose it are
# in benchmarks/README.md (benchmarks.windows).
DEFAULT_COUNT = 5
# The window length of a model trained on whole clips (featurize without --window).
DEFAULT_WINDOW = 30.0


@dataclass(frozen=True)
class Windows:
    """How a file is cut: ``window`` s every ``hop`` s over ``[offset, offset + duration)`` (None: to the end).

    ``window`` None is the model's (``for_model``), ``hop`` None the window. With a ``count``, only
    that many windows, spread evenly over the whole file, are decoded (``audio.iter_spread_windows``),
    and ``hop``, ``offset`` and ``duration`` are not used.
    """

    window: float | None = None
    hop: float | None = None
    offset: float = 0.0
    duration: float | None = None
    count: int | None = None

    @classmethod
    def excerpt(cls, *, offset: float, duration: float) -> Windows:
        """One window: the excerpt itself, as the tutorial classifies 60-90 s of a song."""
        return cls(window=duration, hop=duration, offset=offset, duration=duration)

    @classmethod
    def choose(
        cls,
        *,
        count: int | str | None = None,
        window: float | None = None,
        hop: float | None = None,
        offset: float | None = None,
        duration: float | None = None,
    ) -> Windows:
        """The windows that classify's options ask for, refused in one line where they disagree.

        ``count`` windows spread over each file (``"all"`` or 0: every window, ``hop`` apart; None:
        ``DEFAULT_COUNT``, or every window when a ``hop`` is given), each ``window`` s long (None: the
        model's); or, with ``offset`` or ``duration``, the one excerpt they name (30 s by default).
        """
        if isinstance(count, str):
            if count.strip().lower() != "all":
                raise BatchgenreError(f"--windows must be a whole number of windows, or all, got {count!r}")
            count = 0
        if offset is None and duration is None:
            if (window is not None and window <= 0) or (hop is not None and hop <= 0):
                raise BatchgenreError("--window and --hop must be more than 0 seconds")
            if hop is not None and count:
                raise BatchgenreError(
                    f"--hop spaces the windows of --windows all; --windows {count} spreads its own evenly"
                )
            if count is None:  # not given: a hop asks for every window
                count = None if hop is not None else DEFAULT_COUNT
            return cls(window=window, hop=hop, count=count or None)  # no length: the model's
        if count is not None:
            raise BatchgenreError("--windows and --offset/--duration choose the audio two ways: give one of them")
        duration = 30.0 if duration is None else duration
        if duration <= 0:
            raise BatchgenreError("--duration must be more than 0 seconds")
        return cls.excerpt(offset=offset or 0.0, duration=duration)

    def for_model(self, model_window: float | None) -> Windows:
        """These windows with their length filled in: the model's window rows' (featurize --window), else 30 s."""
        window = self.window or model_window or DEFAULT_WINDOW
        return replace(self, window=window, hop=self.hop or window)


@dataclass
class FileWindows:
    """One file's window features [shape=(windows, D), dtype=float32], or why it has none.

    ``tags`` [shape=(windows, 50), dtype=float32] are musicnn's tag probabilities of the same
    windows, from the forward pass that gave the features, where the feature set includes musicnn.
    ``size`` and ``mtime_ns`` are the file's as it was read, so that what acts on the results later
    (``batchgenre tag``) can tell a file that changed since.
    """

    path: str
    features: np.ndarray | None
    duration: float | None = None
    error: str = ""
    size: int | None = None
    mtime_ns: int | None = None
    tags: np.ndarray | None = None


def file_windows(path: Path, *, name: str, feature_set: str, sr: int, windows: Windows) -> FileWindows:
    """Decode ``path`` window by window and featurize every window that is usable.

    Silent or too-short windows (an intro, a fade-out) are left out; the file fails only when
    none is usable, with the first window's reason.
    """
    from batchgenre.audio import iter_spread_spans, iter_spread_windows, iter_windows, probe_duration
    from batchgenre.features import musicnn

    windows = windows.for_model(None)  # a length left open by a caller that knows no model: 30 s
    stat = {}
    try:
        st = os.stat(path)
        stat = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        length = probe_duration(path)  # read once: the spread windows are placed by it, and the row reports it
        if windows.count is None:
            cut = iter_windows(
                path, sr=sr, window=windows.window, hop=windows.hop, offset=windows.offset, duration=windows.duration
            )
        elif feature_set == musicnn.MUSICNN.name:
            # musicnn alone reads a few 3 s patches of a window: decode only those, straight to its rate.
            sr = musicnn.SAMPLE_RATE
            cut = iter_spread_spans(
                path, sr=sr, window=windows.window, count=windows.count, spans=musicnn.needed_spans, duration=length
            )
        else:
            cut = iter_spread_windows(path, sr=sr, window=windows.window, count=windows.count, duration=length)
        features, tags, error = window_features((y for _, y in cut), feature_set=feature_set, sr=sr)
        duration = length if features is not None else None
        return FileWindows(name, features, duration=duration, error=error, tags=tags, **stat)
    except Exception as error:  # one bad file never stops the block
        return FileWindows(name, None, error=describe(error), **stat)


def window_features(
    cut: Iterable[np.ndarray], *, feature_set: str, sr: int
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Features of every usable window [shape=(n,)], its musicnn tags where the set has them, or why none.

    Silent or too-short windows (an intro, a fade-out) are left out.

    Returns
    -------
    features : np.ndarray [shape=(windows, D), dtype=float32] or None when no window is usable
    tags : np.ndarray [shape=(windows, 50), dtype=float32] or None when the set does not include musicnn
    reason : str
        the first window's reason when no window is usable, else ""
    """
    from batchgenre.features import FeatureError, get_feature_set

    fs = get_feature_set(feature_set)
    vectors, tags, reasons = [], [], []
    for y in cut:
        try:
            vector, extras = fs.extract_with_extras(y, sr=sr)
        except FeatureError as error:
            reasons.append(str(error))
            continue
        vectors.append(vector)
        if "tags" in extras:
            tags.append(extras["tags"])
    if not vectors:
        return None, None, reasons[0] if reasons else "no audio in the chosen excerpt"
    return np.stack(vectors), np.stack(tags) if tags else None, ""


def classify_block(
    root: str,
    relpaths: list[str],
    feature_set: str,
    sr: int,
    windows: Windows,
    *,
    file_timeout: float,
    memory_cap: int = DEFAULT_MEMORY_CAP,
) -> list[FileWindows]:
    """Window features of a block of files; runs on a worker.

    Each file is decoded in a sandbox helper, so one that hangs or crashes fails alone.
    """
    from batchgenre.cluster.runner import file_done
    from batchgenre.cluster.sandbox import borrowed

    results = []
    with borrowed(memory_cap=memory_cap) as box:
        for rel in relpaths:
            try:
                results.append(
                    box.call(
                        file_windows,
                        Path(root) / rel,
                        name=rel,
                        feature_set=feature_set,
                        sr=sr,
                        windows=windows,
                        timeout=file_timeout,
                    )
                )
            except Exception as error:  # a timeout or a crashed helper: this file alone fails
                results.append(FileWindows(rel, None, error=describe(error)))
            file_done()
    return results
