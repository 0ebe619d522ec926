"""The library benchmark's generator makes what the benchmark says it measures.

Real songs in the stated formats, and broken files.
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest

from batchgenre.audio import DecodeError, load
from benchmarks.library import AAC_KBPS, BROKEN_KINDS, FORMATS, MP3_KBPS, SONG_SECONDS, cached_library, plan

CODECS = {"mp3": {"mp3", "mp3float"}, "flac": {"flac"}, "m4a": {"aac"}, "ogg": {"vorbis"}}


@pytest.fixture(scope="module")
def library(gtzan, tmp_path_factory):
    # Four songs: formats are dealt evenly, so every writer runs once.
    return cached_library(gtzan, cache=tmp_path_factory.mktemp("cache"), songs=4, seed=0, jobs=1)


def test_songs_are_stereo_44k_in_their_format_and_length(library):
    assert sorted(s.fmt for s in library.songs) == sorted(FORMATS)
    for song in library.songs:
        assert re.fullmatch(r"[^/]+/[^/]+ \(\d{4}\)/\d\d [^/]+\.(mp3|flac|m4a|ogg)", song.path), song.path
        assert song.path.endswith(f".{song.fmt}")
        with av.open(str(library.root / song.path)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.name in CODECS[song.fmt], song.path
            assert (stream.sample_rate, stream.channels) == (44100, 2), song.path
            seconds = container.duration / av.time_base
            if song.fmt == "mp3":
                assert stream.bit_rate == song.kbps * 1000
            if song.fmt == "m4a":
                assert abs(stream.bit_rate / 1000 - song.kbps) < 0.1 * song.kbps
        assert song.seconds == pytest.approx(seconds, abs=0.1), song.path
        assert SONG_SECONDS[0] <= seconds <= SONG_SECONDS[1] + 0.1
    mono = load(library.root / library.songs[0].path, duration=None)
    assert len(mono) == pytest.approx(library.songs[0].seconds * 22050, abs=0.1 * 22050)
    assert 0.01 < float(abs(mono).max()) <= 1.0


def test_broken_files_fail_to_decode(library):
    assert [b.kind for b in library.broken] == list(BROKEN_KINDS)
    for broken in library.broken:
        path = library.root / broken.path
        assert path.is_file() and path.parent.parent.parent == library.root
        with pytest.raises(DecodeError):
            load(path, duration=None)
    assert (library.root / next(b.path for b in library.broken if b.kind == "empty mp3")).stat().st_size == 0


def test_the_cache_returns_the_same_library_without_making_it_again(library, gtzan):
    cache = library.root.parent
    before = {f: f.stat().st_mtime_ns for f in cache.rglob("*")}
    again = cached_library(gtzan, cache=cache, songs=4, seed=0, jobs=1)
    assert again == library
    assert {f: f.stat().st_mtime_ns for f in cache.rglob("*")} == before


def test_the_plan_is_seeded_and_uses_the_issue_s_bit_rates(gtzan):
    first, broken = plan(gtzan, songs=40, seed=3)
    assert (first, broken) == plan(gtzan, songs=40, seed=3)
    assert first != plan(gtzan, songs=40, seed=4)[0]
    assert {s.fmt for s in first} == set(FORMATS)
    assert {s.kbps for s in first if s.fmt == "mp3"} <= set(MP3_KBPS) and min(MP3_KBPS) >= 128 and max(MP3_KBPS) <= 320
    assert {s.kbps for s in first if s.fmt == "m4a"} <= set(AAC_KBPS)
    assert len({s.path for s in first} | {b.path for b in broken}) == 40 + len(BROKEN_KINDS)
    assert all(len(Path(s.path).parts) == 3 for s in first)
