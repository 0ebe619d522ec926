"""A small tagged music library made from gtzan-mini clips: ``artist/album/NN title.ext``, genres and artists in tags.

For tests of anything that reads or writes a library's tags (``make_tagged_library``).
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from batchgenre.library.labels import normalise_genre
from tests.synth import write

FORMATS = ("mp3", "flac", "ogg", "m4a")
# Each genre as owners spell it, with ID3v1 numbers and tags of several genres among them.
SPELLINGS = {
    "classical": ("Classical", "classical", "(32)", "Classical/Orchestral"),
    "metal": ("Metal", "METAL ", "(9)", "Metal; Rock"),
    "hiphop": ("Hip-Hop", "hip hop", "hiphop", "Hip Hop, Rap"),
    "reggae": ("Reggae", "reggae", "(16)", "Reggae; Dub"),
}


def make_tagged_library(
    gtzan: Path,
    folder: Path,
    *,
    genres: tuple[str, ...] = ("classical", "metal", "hiphop"),
    artists: int = 4,
    clips: int = 2,
    seconds: float = 10.0,
    untagged: int = 1,
) -> dict[str, tuple[str | None, str | None]]:
    """Write ``genres`` x ``artists`` x ``clips`` excerpts of gtzan-mini clips under ``folder`` as a library.

    Files are ``Artist/Album/NN Title.ext``, their formats cycling through MP3 (ID3), FLAC and Ogg
    Vorbis (Vorbis comments) and M4A/AAC (MP4 atoms); each artist's genre tag is spelt one of the
    ways ``SPELLINGS`` gives. The last ``untagged`` artists of each genre have one file with no
    tags at all (their other files keep theirs).

    Returns
    -------
    dict
        Each file's path under ``folder`` -> (its genre as ``normalise_genre`` spells it, its artist),
        both None for an untagged file.
    """
    written: dict[str, tuple[str | None, str | None]] = {}
    n = 0
    for genre in genres:
        clip_paths = sorted(Path(gtzan, genre).glob("*.wav"))
        for a in range(artists):
            artist = f"{genre.title()} Artist {a + 1}"
            spelling = SPELLINGS[genre][a % len(SPELLINGS[genre])]
            for c in range(clips):
                source = clip_paths[(a * clips + c) % len(clip_paths)]
                y, sr = sf.read(source, frames=round(seconds * 22050), dtype="float32")
                ext = FORMATS[n % len(FORMATS)]
                n += 1
                relpath = f"{artist}/First Album/{c + 1:02d} {genre.title()} Song {c + 1}.{ext}"
                write(folder / relpath, y, sr=sr)
                if a >= artists - untagged and c == clips - 1:
                    written[relpath] = (None, None)
                    continue
                write_tags(folder / relpath, genre=spelling, artist=artist)
                # Every spelling names the folder's genre: (32) is Classical in ID3v1, (9) Metal, (16) Reggae.
                written[relpath] = (normalise_genre(genre), artist)
    return written


def write_tags(path: Path, *, genre: str | None = None, artist: str | None = None) -> None:
    """Set the genre and artist tags of one file the way its format keeps them (mutagen)."""
    import mutagen
    from mutagen.id3 import ID3, TCON, TPE1

    suffix = path.suffix.lower()
    if suffix in (".mp3", ".wav", ".aiff"):
        tags = ID3()
        if genre is not None:
            tags.add(TCON(encoding=3, text=[genre]))
        if artist is not None:
            tags.add(TPE1(encoding=3, text=[artist]))
        tags.save(path)
        return
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    keys = ("\xa9gen", "\xa9ART") if suffix in (".m4a", ".mp4") else ("genre", "artist")
    for key, value in zip(keys, (genre, artist), strict=True):
        if value is not None:
            audio.tags[key] = [value]
    audio.save()
