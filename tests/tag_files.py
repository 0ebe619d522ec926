"""Tagged audio files for the tagging tests, and what must not change in them: audio bytes, samples, other tags."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import mutagen
import numpy as np

from batchgenre.store.results import ResultsTable, write_meta
from tests import synth

SR = 44100
COVER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # bytes enough to tell a cover survived


def write_tagged(path: Path, *, seconds: float = 1.0, genre: list[str] | None = None, seed: int = 0) -> Path:
    """A stereo 44.1 kHz file with title, artist, album, track (and a cover in MP3/FLAC/M4A), ``genre`` if given."""
    synth.write(path, synth.noise(seconds=seconds, sr=SR, channels=2, seed=seed, amplitude=0.3), sr=SR)
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags, ext = audio.tags, path.suffix.lower()
    if ext in (".mp3", ".wav", ".aiff"):
        from mutagen.id3 import APIC, TALB, TCON, TIT2, TPE1, TRCK

        tags.add(TIT2(encoding=3, text=[f"Title {seed}"]))
        tags.add(TPE1(encoding=3, text=["Artist Ü"]))
        tags.add(TALB(encoding=3, text=["Album"]))
        tags.add(TRCK(encoding=3, text=[f"{seed}/9"]))
        tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=COVER))
        if genre:
            tags.add(TCON(encoding=3, text=genre))
    elif ext == ".m4a":
        from mutagen.mp4 import MP4Cover

        tags.update({"\xa9nam": [f"Title {seed}"], "\xa9ART": ["Artist Ü"], "\xa9alb": ["Album"], "trkn": [(seed, 9)]})
        tags["covr"] = [MP4Cover(COVER, imageformat=MP4Cover.FORMAT_PNG)]
        if genre:
            tags["\xa9gen"] = genre
    else:
        tags.update(
            {"TITLE": [f"Title {seed}"], "ARTIST": ["Artist Ü"], "ALBUM": ["Album"], "TRACKNUMBER": [str(seed)]}
        )
        if genre:
            tags["GENRE"] = genre
        if ext == ".flac":
            from mutagen.flac import Picture

            picture = Picture()
            picture.type, picture.mime, picture.data = 3, "image/png", COVER
            audio.add_picture(picture)
    audio.save()
    return path


def write_results(out: Path, root: Path, rows: dict[str, dict]) -> Path:
    """A results table of ``rows`` (path -> genre, status, confidence...) as classify-dir writes it, stats read now."""
    table = ResultsTable(out, genres=["rock"])
    for rel, row in rows.items():
        full = os.path.join(root, rel)
        st = os.stat(full) if os.path.exists(full) else None
        table.add(
            {
                "path": rel,
                "genre": "rock",
                "confidence": 0.9,
                "p_rock": 0.9,
                "windows": 1,
                "duration": 1.0,
                "status": "classified",
                "error": "",
                "size": st and st.st_size,
                "mtime_ns": st and st.st_mtime_ns,
                **row,
            }
        )
    table.finish()
    write_meta(out, {"root": str(root)})
    return out


def other_tags(path: Path, *, skip: set[str]) -> dict[str, str]:
    """Every tag of the file but the keys in ``skip``, as comparable text; FLAC pictures included."""
    audio = mutagen.File(path)
    found = {} if audio.tags is None else {k: repr(v) for k, v in audio.tags.items() if k not in skip}
    found.update({f"picture{i}": repr(p.data) for i, p in enumerate(getattr(audio, "pictures", []))})
    return found


def payload(path: Path) -> bytes | list[bytes]:
    """The audio bytes of the file, without any tag: MP3 frames, FLAC frames, WAV/AIFF data, MP4 mdat, Ogg packets."""
    data, ext = Path(path).read_bytes(), Path(path).suffix.lower()
    if ext == ".mp3":
        start = 0
        if data[:3] == b"ID3":
            size = sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
            start = 10 + size + (10 if data[5] & 0x10 else 0)
        end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
        return data[start:end]
    if ext == ".flac":
        at = 4
        while True:
            last, length = data[at] & 0x80, int.from_bytes(data[at + 1 : at + 4], "big")
            at += 4 + length
            if last:
                return data[at:]
    if ext in (".wav", ".aiff", ".m4a"):
        return _chunk(data, ext)
    from mutagen.ogg import OggPage

    pages = []
    with open(path, "rb") as f:
        while True:
            try:
                pages.append(OggPage(f))
            except EOFError:
                break
    packets = OggPage.to_packets(pages)
    return packets[3:] if ext == ".ogg" else packets[2:]  # Vorbis has 3 header packets, Opus 2


def _chunk(data: bytes, ext: str) -> bytes:
    if ext == ".m4a":  # top-level atoms: 32-bit size, type
        at = 0
        while at < len(data):
            size, kind = struct.unpack(">I4s", data[at : at + 8])
            if kind == b"mdat":
                return data[at + 8 : at + size]
            at += size
    else:  # RIFF (little-endian sizes) or IFF (big-endian), chunks padded to even sizes
        order, name = ("<", b"data") if ext == ".wav" else (">", b"SSND")
        at = 12
        while at < len(data):
            kind, size = data[at : at + 4], struct.unpack(order + "I", data[at + 4 : at + 8])[0]
            if kind == name:
                return data[at + 8 : at + 8 + size]
            at += 8 + size + (size & 1)
    raise AssertionError(f"no audio chunk in a {ext} file")


def samples(path: Path) -> np.ndarray:
    """The decoded samples, through PyAV, every frame concatenated: shape (channels, n)."""
    import av

    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
