"""Where each container keeps a text field, read and written through mutagen's per-format classes.

A field is named once for every format: ``genre`` (ID3 ``TCON``, Vorbis ``GENRE``, MP4 ``©gen``) or
any other name, which becomes an ID3 ``TXXX:NAME`` frame, a Vorbis ``NAME`` comment or an MP4
freeform atom ``----:com.batchgenre:name``
(lower case, without a ``BATCHGENRE_`` prefix). A value is a list of strings, since every container
allows several; ``None`` is a field that is absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from batchgenre.errors import BatchgenreError

GENRE = "genre"
# The freeform MP4 atom's "mean" part: whose name the atom's name is.
MP4_MEAN = "com.batchgenre"


@dataclass(frozen=True)
class Kind:
    """One container's tag system: ``id3``, ``vorbis`` or ``mp4``, and the mutagen class that opens it."""

    family: str
    opener: str  # "module:Class" of mutagen, imported when first used

    def open(self, path: str | bytes) -> Any:
        """The mutagen object of the file at ``path``, its tags made empty if it had none."""
        module, _, name = self.opener.partition(":")
        cls = getattr(__import__(f"mutagen.{module}", fromlist=[name]), name)
        audio = cls(path)
        if audio.tags is None:
            audio.add_tags()
        return audio


KINDS = {
    ".mp3": Kind("id3", "mp3:MP3"),
    ".wav": Kind("id3", "wave:WAVE"),
    ".aif": Kind("id3", "aiff:AIFF"),
    ".aiff": Kind("id3", "aiff:AIFF"),
    ".flac": Kind("vorbis", "flac:FLAC"),
    ".ogg": Kind("vorbis", "oggvorbis:OggVorbis"),
    ".oga": Kind("vorbis", "oggvorbis:OggVorbis"),
    ".opus": Kind("vorbis", "oggopus:OggOpus"),
    ".m4a": Kind("mp4", "mp4:MP4"),
    ".mp4": Kind("mp4", "mp4:MP4"),
}


def kind_of(path: str | bytes) -> Kind:
    """The tag system of ``path`` by its extension; a format without one we write is refused in one line."""
    suffix = os.path.splitext(os.fsdecode(path))[1].lower()
    if suffix not in KINDS:
        raise BatchgenreError(f"no tag writer for {suffix or 'files without an extension'}")
    return KINDS[suffix]


def key_of(family: str, field: str) -> str:
    """The key under which ``family``'s tags keep ``field``: ``TCON``, ``TXXX:NAME``, ``GENRE``, ``©gen``..."""
    if family == "id3":
        return "TCON" if field == GENRE else f"TXXX:{field}"
    if family == "vorbis":
        return field.upper()
    # The atom's mean already says batchgenre: BATCHGENRE_GENRE is ----:com.batchgenre:genre.
    return "\xa9gen" if field == GENRE else f"----:{MP4_MEAN}:{field.lower().removeprefix('batchgenre_')}"


def get(audio: Any, family: str, field: str) -> list[str] | None:
    """The field's values as the file holds them (several if it has several), or None where it is absent."""
    tags, key = audio.tags, key_of(family, field)
    if family == "id3":
        frame = tags.get(key)
        return None if frame is None else [str(t) for t in frame.text]
    if family == "vorbis":
        return list(tags[key]) if key in tags else None
    if key not in tags:
        return None
    if key.startswith("----"):  # freeform atoms hold bytes; odd bytes survive the round trip as surrogates
        return [bytes(v).decode("utf-8", "surrogateescape") for v in tags[key]]
    return [str(v) for v in tags[key]]


def put(audio: Any, family: str, field: str, values: list[str] | None) -> None:
    """Set the field to ``values``, or remove it where ``values`` is None; every other tag is left alone."""
    tags, key = audio.tags, key_of(family, field)
    if values is None:
        if family == "id3":
            tags.delall(key)
        elif key in tags:
            del tags[key]
        return
    if family == "id3":
        from mutagen.id3 import TCON, TXXX

        frame = TCON(encoding=3, text=values) if key == "TCON" else TXXX(encoding=3, desc=field, text=values)
        tags.setall(key, [frame])
    elif family == "vorbis":
        tags[key] = values
    elif key.startswith("----"):
        from mutagen.mp4 import AtomDataType, MP4FreeForm

        tags[key] = [MP4FreeForm(v.encode("utf-8", "surrogateescape"), AtomDataType.UTF8) for v in values]
    else:
        tags[key] = values


def save(audio: Any, family: str) -> None:
    """Write ``audio``'s tags into the file it was opened from: an ID3 tag keeps its version (a new one is v2.4)."""
    if family == "id3":
        # Saving a v2.3 tag as v2.4 would rewrite every other frame (TYER -> TDRC, ...): keep what the file had.
        audio.save(v2_version=3 if audio.tags.version[:2] == (2, 3) else 4)
    else:
        audio.save()
