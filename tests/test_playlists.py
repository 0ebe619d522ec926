"""batchgenre playlists through the real CLI, read back the way a player reads an M3U8."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from batchgenre.library.playlists import safe_name
from batchgenre.store.results import read_results
from tests.conftest import run_cli
from tests.library_results import TAGGED, classified_library

pytestmark = pytest.mark.slow


def player_entries(playlist: Path) -> list[tuple[str, Path]]:
    """(the #EXTINF line, the file it resolves to) per entry, as a player does: skip # lines, resolve
    each other line against the playlist's folder, unquote nothing."""
    entries, extinf = [], None
    for line in playlist.read_text(encoding="utf-8").splitlines():
        if line.startswith("#EXTINF:"):
            extinf = line
        elif line and not line.startswith("#"):
            entries.append((extinf, playlist.parent / line))
            extinf = None
    return entries


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return classified_library(tmp_path_factory.getbasetemp())


@pytest.fixture
def copy(library, tmp_path) -> tuple[Path, Path]:
    """A copy of the classified folder (``collection/music``) and of its results, which name the copy as root."""
    shutil.copytree(library.parent, tmp_path / "collection")
    shutil.copy(library.results, tmp_path / "results.csv")
    meta = json.loads(Path(f"{library.results}.meta.json").read_text(encoding="utf-8"))
    meta["root"] = str(tmp_path / "collection" / "music")
    Path(tmp_path / "results.csv.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return tmp_path / "collection", tmp_path / "results.csv"


def test_one_playlist_per_genre_in_confidence_order_that_a_player_resolves(copy, tmp_path):
    parent, results_path = copy
    results = read_results(results_path)
    out = parent / "playlists"
    done = run_cli("playlists", results_path, "--out", out)
    assert done.returncode == 0, done.stderr
    lists = sorted(out.glob("*.m3u8"))
    assert [p.stem for p in lists] == sorted([*results.genres, "unknown"])
    printed = done.stdout.splitlines()
    assert len(printed) == len(lists)
    classified = [r for r in results.rows if r["status"] == "classified"]
    assert any(r["status"] == "failed" for r in results.rows)
    for playlist in lists:
        rows = sorted((r for r in classified if r["genre"] == playlist.stem), key=lambda r: -r["confidence"])
        assert f"{len(rows):>7}  {playlist}" in printed
        text = playlist.read_bytes().decode("utf-8")
        assert text.startswith("#EXTM3U\n") and "\\" not in text
        entries = player_entries(playlist)
        assert [path.resolve() for _, path in entries] == [(parent / "music" / r["path"]).resolve() for r in rows]
        assert all(path.is_file() for _, path in entries)
        for (extinf, _), row in zip(entries, rows, strict=True):
            assert extinf.startswith(f"#EXTINF:{round(row['duration'])},")
    # The whole of it moved elsewhere, music and playlists together: every entry still resolves.
    shutil.move(parent, tmp_path / "moved")
    assert not parent.exists()
    for playlist in (tmp_path / "moved" / "playlists").glob("*.m3u8"):
        assert all(path.is_file() for _, path in player_entries(playlist)), playlist


def test_titles_come_from_tags_else_the_file_name(library):
    run_cli("playlists", library.results, "--out", library.parent / "titles")
    extinfs = [e for p in (library.parent / "titles").glob("*.m3u8") for e, _ in player_entries(p)]
    assert sum(e.endswith(",{} - {}".format(*TAGGED)) for e in extinfs) == 1
    assert sum(e.endswith(",with space") for e in extinfs) == 1
    assert sum(e.endswith(",träck") for e in extinfs) == 1


def test_a_file_name_starting_with_hash_is_written_as_dot_slash(copy):
    """Playlists beside the music: `#hash.wav` would read as a comment, so it is written `./#hash.wav`."""
    parent, results = copy
    done = run_cli("playlists", results, "--out", parent / "music")
    assert done.returncode == 0, done.stderr
    lists = list((parent / "music").glob("*.m3u8"))
    lines = [line for p in lists for line in p.read_text(encoding="utf-8").splitlines()]
    assert "./#hash.wav" in lines and "#hash.wav" not in lines
    entries = [path for p in lists for _, path in player_entries(p)]
    assert len(entries) == sum(r["status"] == "classified" for r in read_results(results).rows)
    assert all(path.is_file() for path in entries)


def test_files_gone_since_classified_are_left_out_and_named(copy):
    parent, results = copy
    os.remove(parent / "music" / "with space.wav")
    done = run_cli("playlists", results, "--out", parent / "lists")
    assert done.returncode == 0, done.stderr
    assert "left out: with space.wav: no longer in" in done.stderr
    entries = [path for p in (parent / "lists").glob("*.m3u8") for _, path in player_entries(p)]
    assert entries and all(path.is_file() for path in entries)


def test_results_without_their_meta_file_are_refused_in_one_line(library, tmp_path):
    shutil.copy(library.results, tmp_path / "results.csv")
    done = run_cli("playlists", tmp_path / "results.csv", "--out", tmp_path / "lists")
    assert done.returncode == 2
    assert done.stderr.startswith("batchgenre: ") and done.stderr.count("\n") == 1 and "meta.json" in done.stderr


@pytest.mark.parametrize(
    ("genres", "names"),
    [
        (["rock", "Rock", "ROCK"], ["rock", "Rock (2)", "ROCK (3)"]),
        (["a/b", "a_b", "a:b"], ["a_b", "a_b (2)", "a_b (3)"]),
        (["CON", "nul", "com1", "con.live", "lpt9 ", "console"],
         ["CON_", "nul_", "com1_", "con.live_", "lpt9_", "console"]),
        (["drum & bass.", "  ", 'r*&"b?"', "tab\there"], ["drum & bass", "_", "r_&_b__", "tab_here"]),
    ],
)  # fmt: skip
def test_playlist_names_are_safe_and_distinct_on_every_file_system(genres, names):
    taken: set[str] = set()
    assert [safe_name(g, taken=taken) for g in genres] == names
