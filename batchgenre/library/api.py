"""The library half of the public API (re-exported by ``batchgenre``): tags, playlists and the report.

Like ``batchgenre/__init__.py``, nothing heavy is imported until a function is called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchgenre.library.journal import UndoSummary
    from batchgenre.library.playlists import Playlists
    from batchgenre.library.report import Report as HtmlReport
    from batchgenre.library.tagging import TagSummary

PathLike = str | os.PathLike


def playlists(results: PathLike, *, out: PathLike) -> Playlists:
    """Write one extended M3U8 playlist per genre (and one for ``unknown``) from a classify-dir results table.

    Each lists its genre's files, most confident first, as paths relative to the playlist (so the folder
    can move with the music), with ``#EXTINF`` durations and ``artist - title`` from the files' tags.
    Failed files are in none; files gone since they were classified are left out and reported.

    Parameters
    ----------
    results : str or os.PathLike
        The ``.csv``, ``.jsonl`` or ``.parquet`` table classify-dir wrote, with its ``.meta.json`` beside it.
    out : str or os.PathLike
        The folder for the playlists (``<genre>.m3u8``, names made safe on every file system).

    Returns
    -------
    batchgenre.library.playlists.Playlists
        ``playlists``, each ``genre``, ``path`` and ``count``; ``left_out`` (path, reason) pairs.
    """
    from batchgenre.library.playlists import write_playlists
    from batchgenre.store.results import read_results

    return write_playlists(read_results(Path(results).expanduser()), out=Path(out).expanduser())


def report(results: PathLike, *, out: PathLike = "report.html") -> HtmlReport:
    """Write a self-contained HTML report of a classify-dir results table: readable offline, no network.

    Files per genre, each genre's confidence histogram, a map of the collection (each file placed by its
    probabilities), each genre's files by confidence, and the unknowns and failures with their reasons.
    Its size is bounded whatever the table's: the map is a seeded sample of at most 5000 files and the
    lists show each genre's 250 most and least confident files.

    Parameters
    ----------
    results : str or os.PathLike
        The table classify-dir wrote.
    out : str or os.PathLike
        The HTML file to write.

    Returns
    -------
    batchgenre.library.report.Report
        ``out``, the number of ``files``, of ``plots`` drawn and of ``map_points``.
    """
    from batchgenre.library.report import write_report
    from batchgenre.store.results import read_results

    return write_report(read_results(Path(results).expanduser()), out=Path(out).expanduser())


def tag(
    results: PathLike,
    *,
    write: bool = False,
    force: bool = False,
    field: str | None = None,
    min_confidence: float | None = None,
    root: PathLike | None = None,
) -> TagSummary:
    """Write each classified file's genre from a results table into the file's own tags; pretend unless ``write``.

    Genres go to ID3 ``TCON`` (MP3, WAV, AIFF), the Vorbis comment ``GENRE`` (FLAC, Ogg Vorbis, Opus)
    or MP4 ``©gen`` (M4A). Before a file changes, its old values go to a journal beside the results
    (``results.csv.tag-journal.jsonl``) that :func:`undo_tags` reads; each file is written as a copy
    that replaces it, so a kill leaves it as it was or as intended, and a rerun finishes the rest.
    Only the tag changes: the audio bytes stay as they were; the file's mtime becomes the write's.

    Parameters
    ----------
    results : str or os.PathLike
        A results table written by :func:`classify_dir` (``.csv``, ``.jsonl`` or ``.parquet``).
    write : bool
        Change the files; without it, only say what would change.
    force : bool
        Replace a genre the file already has (by default it is kept, and counted).
    field : str, optional
        Write this field instead of the genre, leaving the user's genre alone: ``BATCHGENRE_GENRE``
        is an ID3 ``TXXX:BATCHGENRE_GENRE`` frame, a Vorbis comment, an MP4 ``----:com.batchgenre:genre`` atom.
    min_confidence : float, optional
        Leave files whose top probability is below this (default: write whatever genre a row names).
    root : str or os.PathLike, optional
        The folder the rows' paths are in (default: the one classify-dir recorded).

    Returns
    -------
    batchgenre.library.tagging.TagSummary
        Counts ``changed``, ``kept``, ``already``, ``skipped``, ``failed``; ``lines`` (one per changed
        or failed file, ``path: old -> new``); ``journal``; ``count_line()``.
    """
    from batchgenre.library.tagging import tag as run

    return run(
        Path(results).expanduser(),
        write=write,
        force=force,
        field_name=field,
        min_confidence=min_confidence,
        root=None if root is None else Path(root).expanduser(),
    )


def undo_tags(journal: PathLike) -> UndoSummary:
    """Put back every tag value that :func:`tag` changed, as its journal recorded them; safe to run again.

    A field that was absent is removed; old values come back exactly, several values included. A file
    whose field someone changed since batchgenre wrote it is left as it is, with a line.

    Parameters
    ----------
    journal : str or os.PathLike
        The ``<results>.tag-journal.jsonl`` that ``tag(..., write=True)`` wrote.

    Returns
    -------
    batchgenre.library.journal.UndoSummary
        ``restored`` and ``already`` counts, ``lines`` for files not restored (``failed`` of them).
    """
    from batchgenre.library.journal import undo

    return undo(os.fspath(Path(journal).expanduser()))
