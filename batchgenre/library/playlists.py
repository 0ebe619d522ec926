"""One extended M3U8 playlist per genre from a results table, entries relative so the folder can move with the music.

Each playlist is ``#EXTM3U``, then per file ``#EXTINF:<seconds>,<artist - title>`` and the file's path relative
to the playlist, with forward slashes, in UTF-8, most confident first. Failed files get no playlist.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgenre.errors import BatchgenreError
from batchgenre.store.results import Results

UNKNOWN = "unknown"
SUFFIX = ".m3u8"
# Characters no Windows, macOS or Linux file name may hold, and control characters (which none should).
_FORBIDDEN = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
# Names Windows keeps for devices, whatever follows the first dot ("con.m3u8" opens the console).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# Well under the 255 bytes most file systems allow a name, leaving room for " (2)" and the suffix.
_MAX_NAME_BYTES = 200


@dataclass
class Playlist:
    """One playlist written: its genre, where it is and how many files it lists."""

    genre: str
    path: Path
    count: int


@dataclass
class Playlists:
    """What :func:`write_playlists` wrote, and the (path, reason) of classified files it had to leave out."""

    playlists: list[Playlist]
    left_out: list[tuple[str, str]] = field(default_factory=list)


def safe_name(genre: str, *, taken: set[str]) -> str:
    """A file name stem for ``genre`` that every file system accepts and no earlier name in ``taken`` matches.

    Forbidden characters become ``_``, trailing dots and spaces go, Windows' device names get a ``_``,
    and a name equal to one already taken but for case (``Rock`` after ``rock``, or ``a/b`` after
    ``a_b``) gets `` (2)``, `` (3)``, ... ``taken`` holds the case-folded names so far and gains this one.
    """
    name = _FORBIDDEN.sub("_", genre).encode()[:_MAX_NAME_BYTES].decode(errors="ignore").rstrip(". ") or "_"
    if name.split(".")[0].rstrip(" ").upper() in _RESERVED:
        name += "_"
    candidate, n = name, 2
    while candidate.casefold() in taken:
        candidate, n = f"{name} ({n})", n + 1
    taken.add(candidate.casefold())
    return candidate


def entry_for(target: Path, *, folder: Path) -> str:
    """``target``'s path relative to ``folder`` as an M3U entry: forward slashes, and ``./`` before a leading ``#``.

    Falls back to the absolute path where no relative one exists (another drive on Windows).
    """
    try:
        entry = Path(os.path.relpath(target, folder)).as_posix()
    except ValueError:
        return target.as_posix()
    # A line starting with # is a comment or directive to every player.
    return "./" + entry if entry.startswith("#") else entry


def display_title(path: Path) -> str:
    """``artist - title`` from the file's tags (ID3, Vorbis comments, MP4 atoms), else its name without extension."""
    import mutagen

    try:
        tags = mutagen.File(path, easy=True)
    except (mutagen.MutagenError, OSError, ValueError):  # an unreadable tag is no reason to leave a song out
        tags = None
    artist = _first(tags, "artist")
    title = _first(tags, "title")
    text = f"{artist} - {title}" if artist and title else path.stem
    # One #EXTINF line: a newline in a tag would start a new entry.
    return " ".join(text.split())


def _first(tags: Any, key: str) -> str:
    try:
        values = tags.get(key) if tags is not None else None
    except (KeyError, ValueError):
        return ""
    return str(values[0]).strip() if values else ""


def _seconds(duration: float | None) -> int:
    return -1 if duration is None or not math.isfinite(duration) else round(duration)


def write_playlists(results: Results, *, out: Path) -> Playlists:
    """Write ``<genre>.m3u8`` into ``out`` for every genre of the model and for ``unknown``, replacing each whole.

    Every genre gets its playlist, even an empty one, so that a rerun leaves no stale list behind.
    Classified files that no longer exist, or whose path no M3U line can hold, are left out and reported.

    Parameters
    ----------
    results : batchgenre.store.results.Results
        A finished classify-dir table; its ``root`` says where the files are.
    out : pathlib.Path
        The folder for the playlists; created if missing.
    """
    root, out = results.root, Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BatchgenreError(f"{out}: playlists go into a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    genres = [*results.genres, *([UNKNOWN] if UNKNOWN not in results.genres else [])]
    by_genre: dict[str, list[dict[str, Any]]] = {g: [] for g in genres}
    left_out = []
    for row in results.rows:
        if row["status"] != "classified":
            continue
        target = root / row["path"]
        if "\n" in row["path"] or "\r" in row["path"]:
            left_out.append((row["path"], "a line break in its name, which no M3U line can hold"))
        elif not target.is_file():
            left_out.append((row["path"], f"no longer in {root}"))
        else:
            by_genre.setdefault(row["genre"], []).append(row)
    taken: set[str] = set()
    written = []
    for genre, rows in by_genre.items():
        rows.sort(key=lambda r: (-r["confidence"], r["path"]))
        lines = ["#EXTM3U"]
        for row in rows:
            target = root / row["path"]
            lines.append(f"#EXTINF:{_seconds(row['duration'])},{display_title(target)}")
            lines.append(entry_for(target, folder=out))
        path = out / (safe_name(genre, taken=taken) + SUFFIX)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
        written.append(Playlist(genre, path, len(rows)))
    return Playlists(written, left_out)
