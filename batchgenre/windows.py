"""Window features of audio files for classification: what runs on a worker, and never imports TensorFlow.

A file is cut into windows (``Windows``) and each usable window featurized with the code featurize
uses; ``classify`` turns them into predictions in the client.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from batchgenre.errors import describe
from batchgenre.sandbox import DEFAULT_MEMORY_CAP


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
    def excerpt(cls, *, offset: float, duration: float) -> "Windows":
        """One window: the excerpt itself, as the tutorial classifies 60-90 s of a song."""
        return cls(window=duration, hop=duration, offset=offset, duration=duration)

    def for_model(self, model_window: float | None) -> "Windows":
        """These windows with their length filled in: the model's window rows' (featurize --window), else 30 s."""
        window = self.window or model_window or DEFAULT_WINDOW
        return replace(self, window=window, hop=self.hop or window)


@dataclass
class FileWindows:
    """One file's window features [shape=(windows, D), dtype=float32], or why it has none."""

    path: str
    features: np.ndarray | None
    duration: float | None = None
    error: str = ""


def file_windows(path: Path, *, name: str, feature_set: str, sr: int, windows: Windows) -> FileWindows:
    """Decode ``path`` window by window and featurize every window that is usable.

    Silent or too-short windows (an intro, a fade-out) are left out; the file fails only when
    none is usable, with the first window's reason.
    """
    from batchgenre.audio import iter_spread_windows, iter_windows, probe_duration
    from batchgenre.features import FeatureError, get_feature_set

    fs = get_feature_set(feature_set)
    windows = windows.for_model(None)  # a length left open by a caller that knows no model: 30 s
    try:
        length = probe_duration(path)  # read once: the spread windows are placed by it, and the row reports it
        vectors, reasons = [], []
        if windows.count is None:
            cut = iter_windows(
                path, sr=sr, window=windows.window, hop=windows.hop, offset=windows.offset, duration=windows.duration
            )
        else:
            cut = iter_spread_windows(path, sr=sr, window=windows.window, count=windows.count, duration=length)
        for _, y in cut:
            try:
                vectors.append(fs.extract(y, sr=sr))
            except FeatureError as error:
                reasons.append(str(error))
        if not vectors:
            return FileWindows(name, None, error=reasons[0] if reasons else "no audio in the chosen excerpt")
        return FileWindows(name, np.stack(vectors), duration=length)
    except Exception as error:  # one bad file never stops the block
        return FileWindows(name, None, error=describe(error))


def classify_block(
    root: str, relpaths: list[str], feature_set: str, sr: int, windows: Windows, *, file_timeout: float,
    memory_cap: int = DEFAULT_MEMORY_CAP,
) -> list[FileWindows]:
    """Window features of a block of files; runs on a worker.

    Each file is decoded in a sandbox helper, so one that hangs or crashes fails alone.
    """
    from batchgenre.runner import file_done
    from batchgenre.sandbox import borrowed

    results = []
    with borrowed(memory_cap=memory_cap) as box:
        for rel in relpaths:
            try:
                results.append(
                    box.call(
                        file_windows, Path(root) / rel, name=rel, feature_set=feature_set, sr=sr, windows=windows,
                        timeout=file_timeout,
                    )
                )
            except Exception as error:  # a timeout or a crashed helper: this file alone fails
                results.append(FileWindows(rel, None, error=describe(error)))
            file_done()
    return results
