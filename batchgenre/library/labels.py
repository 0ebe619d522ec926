"""Genre labels and artist groups for featurize, from the files' own tags (mutagen) or from a CSV."""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchgenre.cluster.plan import FileLabels
from batchgenre.errors import BatchgenreError

log = logging.getLogger(__name__)

TAGS = "tags"
MAX_GENRE_CHARS = 64  # longer is a comment or junk pasted into the field, not a genre
# Several genres in one value: "Rock; Pop", "Rock/Pop", "Rock, Pop", "Rock | Pop".
_SEPARATORS = re.compile(r"\s*[;/,|\x00]\s*")
# Spellings that differ beyond case and spaces, keyed by the letters and digits they share ("&" read as "and").
_ALIASES = {
    "hiphop": "hip hop",
    "rnb": "r&b",
    "randb": "r&b",
    "rhythmandblues": "r&b",
    "rocknroll": "rock and roll",
    "rockandroll": "rock and roll",
}


def normalise_genre(text: str) -> str | None:
    """The one spelling of a genre, or None for a value that names none. The only place genres are spelt.

    ========================================  ==============
    the tag says                              genre
    ========================================  ==============
    ``Rock``, `` ROCK ``, ``rock``            ``rock``
    ``Hip-Hop``, ``Hip Hop``, ``hiphop``      ``hip hop``
    ``R&B``, ``RnB``, ``rnb``, ``R and B``    ``r&b``
    ``Rock & Roll``, ``rock n roll``,         ``rock and roll``
    ``Rock 'n' Roll``, ``rock and roll``
    ``Drum & Bass``, ``drum_and  bass``       ``drum and bass``
    ``""``, ``Unknown``, ``999``              None
    ========================================  ==============

    Case is folded, ``_``, ``-`` and runs of whitespace become one space, `` & `` becomes `` and ``.
    ID3v1 genre numbers (``(17)``, ``17``) are mutagen's to read (``read_tags``); a number left
    over here names no genre.
    """
    spelt = re.sub(r"[\s_-]+", " ", text).strip().casefold().replace(" & ", " and ")
    key = re.sub(r"[\W_]", "", spelt.replace("&", "and").replace("'n'", "n"))
    if not key or key.isdigit() or spelt == "unknown":
        return None
    return _ALIASES.get(key, spelt)


@dataclass(frozen=True)
class FileTags:
    """What one file's tags say: its first genre (normalised), its artist, and what stood in the way."""

    genre: str | None = None
    artist: str | None = None
    several: bool = False  # the tag named more than one genre; the first is used
    raw: str | None = None  # the first genre as spelt in the tag
    problem: str | None = None  # why its tags could not be read, or its genre tag names no genre


def read_tags(path: Path) -> FileTags:
    """The genre and artist tags of one file, per format: ID3 (MP3, WAV, AIFF), Vorbis comments (FLAC, Ogg,
    Opus), MP4 atoms (M4A). Never raises: a tag that cannot be read is a ``problem``."""
    import mutagen

    try:
        audio = mutagen.File(path)
        tags = audio.tags if audio is not None else None
    except Exception as error:  # mutagen raises many kinds on a corrupt tag; the file keeps its features
        return FileTags(problem=f"unreadable tags ({type(error).__name__}: {error})")
    genres, artists = _genres_and_artists(tags)
    artist = next((a.strip() for a in artists if a and a.strip()), None)
    values = [part for value in genres for part in _SEPARATORS.split(str(value)) if part.strip()]
    if not values:
        return FileTags(artist=artist, problem="an empty genre tag" if genres else None)
    first = values[0]
    if "\ufffd" in first:
        return FileTags(artist=artist, problem="a genre tag that is not valid UTF-8")
    if len(first) > MAX_GENRE_CHARS:
        return FileTags(artist=artist, problem=f"a {len(first)}-character genre tag")
    genre = normalise_genre(first)
    if genre is None:
        return FileTags(artist=artist, problem=f"a genre tag that names no genre ({first[:20]!r})")
    return FileTags(genre=genre, artist=artist, several=len(values) > 1, raw=first.strip())


def _genres_and_artists(tags) -> tuple[list[str], list[str]]:
    """The genre and artist values of a file's tags, whatever their format; ([], []) for none."""
    from mutagen.id3 import ID3, TCON
    from mutagen.mp4 import MP4Tags

    # A genre frame with no genre in it reads as [""], so that it counts as an empty tag, not as none.
    if isinstance(tags, ID3):
        # TCON.genres reads ID3v1 references: "(17)", "17", "(17)Rock" are all Rock; "(999)" is "Unknown".
        genres = (tags["TCON"].genres or [""]) if "TCON" in tags else []
        return genres, list(tags["TPE1"].text) if "TPE1" in tags else []
    if isinstance(tags, MP4Tags):
        # mutagen reads a numbered genre (gnre, ID3v1's number plus one) into ©gen by name.
        return list(tags.get("\xa9gen", [])), list(tags.get("\xa9ART", []))
    if hasattr(tags, "vendor"):  # Vorbis comments of FLAC, Ogg and Opus (mutagen's VCommentDict); case-blind keys
        values = tags.get("genre", [])
        # Read as ID3 reads TCON, so that "(17)" in a Vorbis comment is Rock too.
        return (TCON(encoding=3, text=values).genres or [""]) if values else [], tags.get("artist", [])
    return [], []  # no tags, or a format with other tags (APEv2, ASF): unlabelled


def labeller_for(labels: str | os.PathLike, *, min_files: int) -> Callable[[Path, list[str]], FileLabels]:
    """What featurize calls to label a folder's files: from their tags (``"tags"``) or from the CSV ``labels``."""
    if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 1:
        raise BatchgenreError(f"min_files must be a whole number of at least 1, got {min_files!r}")
    if os.fspath(labels) == TAGS:
        return functools.partial(tag_labels, min_files=min_files)
    table = Path(labels).expanduser()
    if not table.is_file():
        raise BatchgenreError(f"{table}: no such file; --labels takes tags or a CSV of path,genre[,group]")
    return functools.partial(csv_labels, table=table, min_files=min_files)


def tag_labels(root: Path, relpaths: list[str], *, min_files: int) -> FileLabels:
    """Labels from each file's genre tag and groups from its artist tag; ``min_files`` as in :func:`keep_common`.

    Logs one line of what the tags held, one naming the files whose genre tag could not be
    used, and one naming the genres left unlabelled for having too few files.
    """
    started = time.perf_counter()
    tags = [read_tags(root / p) for p in relpaths]
    seconds = time.perf_counter() - started
    problems = [(p, t.problem) for p, t in zip(relpaths, tags, strict=True) if t.problem]
    spellings = {t.raw for t in tags if t.genre is not None}
    genres = [t.genre for t in tags]
    log.info(
        "tags of %d files read in %.1f s: %d with a genre (%d spellings of %d genres), %d with an artist; "
        "%d named several genres (the first is used)",
        len(tags),
        seconds,
        sum(g is not None for g in genres),
        len(spellings),
        len(set(genres) - {None}),
        sum(t.artist is not None for t in tags),
        sum(t.several for t in tags),
    )
    if problems:
        log.warning(
            "%d files are featurized unlabelled because of their genre tag, like %s: %s",
            len(problems),
            problems[0][0],
            problems[0][1],
        )
    return FileLabels(
        genres=keep_common(genres, min_files=min_files),
        groups=[t.artist or "" for t in tags],
        source=TAGS,
    )


def csv_labels(root: Path, relpaths: list[str], *, table: Path, min_files: int) -> FileLabels:
    """Labels (and groups) from a CSV with columns ``path``, ``genre`` and, optionally, ``group``.

    Paths are relative to ``root``; files it does not name are unlabelled, and paths it names that
    are not among the files are named in one line.
    """
    given: dict[str, tuple[str | None, str]] = {}
    try:
        with Path(table).open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if not {"path", "genre"} <= set(columns) or not set(columns) <= {"path", "genre", "group"}:
                raise BatchgenreError(
                    f"{table}: needs the columns path,genre[,group]; its header is {','.join(columns) or 'empty'}"
                )
            for record in reader:
                path = (record["path"] or "").strip().removeprefix("./")
                given[path] = (normalise_genre(record["genre"] or ""), (record.get("group") or "").strip())
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BatchgenreError(f"{table}: cannot read it as CSV ({error})") from None
    found = set(relpaths)
    absent = [p for p in given if p not in found]
    if absent:
        log.warning("%d paths in %s are not audio files under %s: %s", len(absent), table, root, ", ".join(absent[:5]))
    genres = [given.get(p, (None, ""))[0] for p in relpaths]
    return FileLabels(
        genres=keep_common(genres, min_files=min_files),
        groups=[given.get(p, (None, ""))[1] for p in relpaths],
        source=f"csv:{Path(table).resolve()}",
    )


def keep_common(genres: list[str | None], *, min_files: int) -> list[str | None]:
    """``genres`` with those of fewer than ``min_files`` files made None (unlabelled), named in one line."""
    counts = Counter(g for g in genres if g is not None)
    rare = {g: n for g, n in sorted(counts.items()) if n < min_files}
    if rare:
        log.warning(
            "%d genres have fewer than %d files and are left unlabelled: %s",
            len(rare),
            min_files,
            ", ".join(f"{g} ({n})" for g, n in rare.items()),
        )
    return [g if g is not None and g not in rare else None for g in genres]
