"""Many files' paths kept compactly: numpy StringDType arrays, matched to each other and stat-ed a slice at a time.

A list of 10^6 Python strings costs about 110 bytes a path; a StringDType array about 40 (16 for
the entry, the text itself past 15 bytes). Matching two such arrays goes through 64-bit hashes,
8 bytes a path, each match checked against the text, so a shared hash never makes two paths one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PATHS = np.dtypes.StringDType()
UNKNOWN_STAT = -1
# Paths turned into Python strings at a time: a few MB, whatever the corpus.
SLICE = 65_536


def as_paths(paths) -> np.ndarray:
    """``paths`` (any sequence of str) as a StringDType array [shape=(n,)]."""
    if isinstance(paths, np.ndarray) and paths.dtype == PATHS:
        return paths
    return np.asarray(paths, dtype=PATHS)


def hashes(paths: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each path [shape=(n,), dtype=int64], valid within this process."""
    out = np.empty(len(paths), dtype=np.int64)
    for start in range(0, len(paths), SLICE):
        chunk = paths[start : start + SLICE].tolist()
        out[start : start + len(chunk)] = np.fromiter(map(hash, chunk), dtype=np.int64, count=len(chunk))
    return out


def locate(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """Where each of ``needles`` is in ``haystack`` [shape=(len(needles),), dtype=int64]: an index, -1 where absent.

    A path that ``haystack`` holds more than once is found at one of its places.
    """
    found = np.full(len(needles), -1, dtype=np.int64)
    if not len(needles) or not len(haystack):
        return found
    wanted, held = hashes(needles), hashes(haystack)
    order = np.argsort(held, kind="stable")
    ordered = held[order]
    at = np.minimum(np.searchsorted(ordered, wanted), len(held) - 1)
    del ordered
    hit = np.flatnonzero(held[order[at]] == wanted)
    found[hit] = order[at[hit]]
    del order, at
    # Two paths with one hash: settle those few by their text (compared a slice at a time: copies cost 40 B a path).
    wrong = np.concatenate(
        [
            part[needles[part] != haystack[found[part]]]
            for part in (hit[start : start + SLICE] for start in range(0, max(len(hit), 1), SLICE))
        ]
    )
    if len(wrong):
        suspects = np.flatnonzero(np.isin(held, wanted[wrong]))
        exact: dict[str, int] = {}
        for i, path in zip(suspects.tolist(), haystack[suspects].tolist(), strict=True):
            exact.setdefault(path, i)
        found[wrong] = [exact.get(path, -1) for path in needles[wrong].tolist()]
    return found


def distinct(paths: np.ndarray) -> int:
    """How many different paths ``paths`` holds."""
    return len(np.unique(paths)) if len(paths) else 0


def file_stats(root: Path, relpaths: np.ndarray) -> np.ndarray:
    """Size and mtime_ns [shape=(n, 2), dtype=int64] of each file under ``root``; -1 for one that is gone, or "".

    One ``os.stat`` a path: callers pass each file once (``locate`` spreads a file's stat over its rows).
    """
    stats = np.full((len(relpaths), 2), UNKNOWN_STAT, dtype=np.int64)
    folder = str(root)  # joined as strings: a Path per file cost more than its stat
    for start in range(0, len(relpaths), SLICE):
        for i, relpath in enumerate(relpaths[start : start + SLICE].tolist(), start):
            if not relpath:
                continue
            try:
                st = os.stat(os.path.join(folder, relpath))
            except OSError:
                continue
            stats[i] = st.st_size, st.st_mtime_ns
    return stats
