"""The audio files of a run, shared by featurize and classify: find them, say which part to read, size their blocks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchgenre.audio import AUDIO_EXTENSIONS, SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_ROWS_PER_CHUNK = 256
MIN_ROWS_PER_CHUNK = 4
BLOCKS_PER_WORKER = 4


@dataclass(frozen=True)
class Clip:
    """Which audio a row is computed from: ``duration`` s (None: to the end) from ``offset`` s, at ``sr`` Hz.

    With a ``window`` of S s, a file gives ``windows`` rows instead of one: row j holds
    ``[offset + j*S, offset + (j+1)*S)``, and a tail shorter than S is left out.
    """

    sr: int = SAMPLE_RATE
    offset: float = 0.0
    duration: float | None = 30.0
    window: float | None = None

    @property
    def windows(self) -> int:
        """Rows per file: 1 for the whole excerpt, else the whole windows the excerpt holds."""
        if self.window is None:
            return 1
        return int(self.duration / self.window + 1e-9)  # 30 / 0.1 is 299.99999999999994 in floats

    def window_bounds(self, j: int) -> tuple[int, int | None]:
        """Samples [start, stop) of window ``j`` in the decoded excerpt; (0, None), all of it, without a window."""
        if self.window is None:
            return 0, None
        return round(j * self.window * self.sr), round((j + 1) * self.window * self.sr)


def discover(root: Path) -> list[str]:
    """Audio files under ``root`` as sorted POSIX paths relative to it.

    Hidden files and folders are skipped; symlinked folders are followed once, so loops end.
    """
    return sorted(path for names in _audio_by_folder(root) for path in names)


def discover_paths(root: Path) -> np.ndarray:
    """``discover``'s paths [shape=(n,), dtype=StringDType], about 40 bytes a file instead of a list's 110.

    Each folder's names become an array as the walk reaches them, so no list of the whole corpus is made.
    """
    found = [np.array(_utf8_only(root, names), dtype=np.dtypes.StringDType()) for names in _audio_by_folder(root)]
    paths = np.concatenate(found) if found else np.array([], dtype=np.dtypes.StringDType())
    paths.sort()  # in place: UTF-8 order, which is code point order, as sorted() gives
    return paths


def _utf8_only(root: Path, names: list[str]) -> list[str]:
    """``names`` less those that are not UTF-8 (the compact path arrays hold UTF-8 text), each said in one line."""
    kept = []
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(root / name).decode("utf-8", "backslashreplace")  # its odd bytes as \xNN
            log.warning("%s: skipped: its name is not UTF-8 text; rename it to include it", shown)
            continue
        kept.append(name)
    return kept


def _audio_by_folder(root: Path) -> Iterator[list[str]]:
    """The audio files of each folder under ``root`` in turn, as POSIX paths relative to it."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        # Plain strings, not Path objects: at 10^5 files pathlib's joins were most of a rerun's walk.
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        yield [
            prefix + name
            for name in files
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
        ]


def rows_per_chunk(n_files: int, n_workers: int) -> int:
    """Enough blocks to keep every worker busy and the bar moving, few enough that scheduling is noise."""
    wanted = -(-n_files // (BLOCKS_PER_WORKER * max(n_workers, 1)))
    return int(np.clip(wanted, MIN_ROWS_PER_CHUNK, MAX_ROWS_PER_CHUNK))
