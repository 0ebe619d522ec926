"""Labels from a library's own tags (or a CSV): read in every format, spelt once, through featurize, train and back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from batchgenre.errors import BatchgenreError
from batchgenre.library.labels import csv_labels, normalise_genre, read_tags
from batchgenre.store import FeatureStore
from tests.conftest import run_cli
from tests.library import make_tagged_library, write_tags
from tests.synth import tone, write

CONFIG = """
[data]
store = "{store}"
genres = "all"
[train]
epochs = 8
[output]
dir = "{out}"
"""


@pytest.mark.parametrize(
    ("spellings", "genre"),
    [
        (["Rock", " ROCK ", "rock", "Rock\t "], "rock"),
        (["Hip-Hop", "Hip Hop", "hiphop", "hip hop", "HIP_HOP"], "hip hop"),
        (["R&B", "RnB", "rnb", "R and B"], "r&b"),
        (["Rock & Roll", "rock n roll", "Rock 'n' Roll", "rock and roll"], "rock and roll"),
        (["Drum & Bass", "drum_and  bass"], "drum and bass"),
        (["演歌"], "演歌"),
        (["", "   ", "Unknown", "999", "(12)"], None),
    ],
)
def test_each_spelling_of_a_genre_is_one_genre(spellings, genre):
    assert [normalise_genre(s) for s in spellings] == [genre] * len(spellings)


@pytest.fixture(scope="module")
def library(gtzan, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("library") / "Music"
    return folder, make_tagged_library(gtzan, folder)


def test_tags_are_read_in_every_format(library):
    folder, truth = library
    read = {p: read_tags(folder / p) for p in truth}
    assert {p: (t.genre, t.artist) for p, t in read.items()} == truth
    assert {Path(p).suffix for p in truth} == {".mp3", ".flac", ".ogg", ".m4a"}
    # "Classical/Orchestral", "Metal; Rock", "Hip Hop, Rap": the first genre, and the tag said it held several.
    assert sum(t.several for t in read.values()) == 3
    assert not any(t.problem for t in read.values())


def test_the_library_loop_from_tags_to_splits_by_artist_to_untagged_files_classified(library, tmp_path):
    folder, truth = library
    store_url = tmp_path / "f.zarr"
    featurized = run_cli(
        "featurize", folder, "--labels", "tags", "--min-files", "2", "--duration", "10", "--out", store_url
    )
    assert featurized.returncode == 0, featurized.stderr
    assert "21 with a genre (8 spellings of 3 genres), 21 with an artist; 3 named several genres" in featurized.stderr
    assert "24 done, 0 failed" in featurized.stdout
    store = FeatureStore.open(str(store_url))
    assert store.labels == "tags" and sorted(store.genres) == ["classical", "hip hop", "metal"]
    names = [*store.genres, None]
    rows = {
        p: (names[label], group or None)
        for p, label, group in zip(
            store.column("path").tolist(), store.column("label").tolist(), store.column("group").tolist(), strict=True
        )
    }
    assert rows == truth  # the untagged files are rows too, unlabelled and of no artist

    (tmp_path / "run.toml").write_text(CONFIG.format(store=store_url, out=tmp_path / "run"))
    trained = run_cli("train", tmp_path / "run.toml")
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["groups"] == {"metadata": "store artist tags", "count": 12}
    assert metrics["evaluation"].startswith("one stratified group") and metrics["rows"] == 21

    untagged = sorted(p for p, (genre, _) in truth.items() if genre is None)
    results = tmp_path / "results.csv"
    model = tmp_path / "run" / "model.keras"
    classified = run_cli("classify-dir", folder, "--model", model, "--out", results, "--min-confidence", "0")
    assert classified.returncode == 0, classified.stderr
    with results.open(newline="") as f:
        genre_of = {row["path"]: row["genre"] for row in csv.DictReader(f)}
    assert all(genre_of[p] in store.genres for p in untagged), {p: genre_of[p] for p in untagged}

    # A rerun reads the tags again: with a higher --min-files every genre is too small, every row unlabelled.
    again = run_cli("featurize", folder, "--labels", "tags", "--min-files", "8", "--duration", "10", "--out", store_url)
    assert again.returncode == 0, again.stderr
    assert "3 genres have fewer than 8 files and are left unlabelled: classical (7), hip hop (7), metal (7)" in (
        again.stderr
    )
    assert "21 rows relabelled from tags" in again.stderr and "nothing to do" in again.stderr
    assert (FeatureStore.open(str(store_url)).column("label") == -1).all()
    folders = run_cli("featurize", folder, "--duration", "10", "--out", store_url)
    assert folders.returncode == 2 and "holds labels from tags, this run asks for labels from folders" in folders.stderr


def test_bad_genre_tags_cost_a_file_its_label_never_its_features(tmp_path):
    folder = tmp_path / "Music"
    y = tone(freq=440.0, seconds=3.0)
    bad = {
        "A/B/01 empty.mp3": " ",  # mutagen writes no frame for "", but does for a blank one
        "A/B/02 numbered.mp3": "(999)",
        "A/B/03 long.flac": "x" * 10_000,
        "A/B/04 not utf-8.flac": "GENREBYTES",
        "A/B/05 corrupt.mp3": "Rock",
    }
    for relpath, genre in bad.items():
        write(folder / relpath, y)
        write_tags(folder / relpath, genre=genre, artist="A")
    # Vorbis comments are UTF-8: bytes that are not, in place of the genre's.
    raw = (folder / "A/B/04 not utf-8.flac").read_bytes()
    (folder / "A/B/04 not utf-8.flac").write_bytes(raw.replace(b"GENREBYTES", b"\xff\xfe\xc3(\xa0\xa1GENR"))
    # An ID3 version mutagen does not know: it cannot read the tag at all; the decoder skips it.
    raw = bytearray((folder / "A/B/05 corrupt.mp3").read_bytes())
    raw[3] = 5
    (folder / "A/B/05 corrupt.mp3").write_bytes(bytes(raw))
    problems = {p: read_tags(folder / p).problem for p in bad}
    assert problems == {
        "A/B/01 empty.mp3": "an empty genre tag",
        "A/B/02 numbered.mp3": "a genre tag that names no genre ('Unknown')",
        "A/B/03 long.flac": "a 10000-character genre tag",
        "A/B/04 not utf-8.flac": "a genre tag that is not valid UTF-8",
        "A/B/05 corrupt.mp3": problems["A/B/05 corrupt.mp3"],
    }
    assert problems["A/B/05 corrupt.mp3"].startswith("unreadable tags (ID3UnsupportedVersionError")

    out = tmp_path / "f.zarr"
    result = run_cli("featurize", folder, "--labels", "tags", "--min-files", "1", "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "5 files are featurized unlabelled because of their genre tag, like A/B/01 empty.mp3" in result.stderr
    assert "5 done, 0 failed" in result.stdout
    store = FeatureStore.open(str(out))
    assert (store.column("label") == -1).all() and not np.isnan(store.column("features")).any()


def test_labels_from_a_csv_name_what_they_cannot_use(tmp_path, caplog):
    table = tmp_path / "labels.csv"
    table.write_text("path,genre,group\nrock/a.wav,Rock,X\n./jazz/b.wav,Jazz,Y\ngone.wav,Rock,Z\nrock/c.wav,rock,X\n")
    labels = csv_labels(tmp_path, ["rock/a.wav", "jazz/b.wav", "rock/c.wav", "other.wav"], table=table, min_files=2)
    assert labels.genres == ["rock", None, "rock", None] and labels.groups == ["X", "Y", "X", ""]
    assert labels.source == f"csv:{table}"
    lines = [r.getMessage() for r in caplog.records]
    assert any("1 paths in" in line and "gone.wav" in line for line in lines)
    assert any("fewer than 2 files and are left unlabelled: jazz (1)" in line for line in lines)
    table.write_text("file,label\nrock/a.wav,Rock\n")
    with pytest.raises(BatchgenreError, match="needs the columns path,genre\\[,group\\]; its header is file,label"):
        csv_labels(tmp_path, ["rock/a.wav"], table=table, min_files=1)


def test_a_bad_labels_csv_is_refused_in_one_line_before_any_cluster(tmp_path):
    write(tmp_path / "music" / "x.wav", tone(freq=440.0, seconds=1.0))
    (tmp_path / "labels.csv").write_text("name;genre\nx.wav;rock\n")
    result = run_cli("featurize", tmp_path / "music", "--labels", tmp_path / "labels.csv", "--out", tmp_path / "f.zarr")
    assert result.returncode == 2 and "its header is name;genre" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.zarr").exists()


def test_a_store_made_before_groups_opens_reads_no_artists_and_gains_the_column_when_planned(tmp_path):
    from batchgenre.cluster.plan import plan
    from batchgenre.training.dataset import select_rows, with_store_groups
    from tests.test_dataset import make_store

    store = make_store(tmp_path / "f.zarr", per_genre=4)
    del store.group["group"]  # as stores were made before it
    store = FeatureStore.open(store.url, mode="r+")
    assert store.labels == "folders" and (store.column("group") == "").all()
    rows = select_rows(store, genres="all")
    assert with_store_groups(rows, store) is rows  # no artists: splits as before, ungrouped
    write(tmp_path / "audio" / "low" / "new.wav", tone(freq=110.0, seconds=1.0))
    paths = store.column("path").tolist()
    plan(store, [*paths, "low/new.wav"], [p.split("/")[0] for p in paths] + ["low"], tmp_path / "audio", augment=0)
    assert store.n_rows == len(paths) + 1 and (store.column("group") == "").all()


def test_the_python_api_takes_labels_and_min_files_and_refuses_what_it_cannot_use(tmp_path):
    import batchgenre

    write(tmp_path / "music" / "x.wav", tone(freq=440.0, seconds=1.0))
    with pytest.raises(BatchgenreError, match="nope.csv: no such file; --labels takes tags or a CSV"):
        batchgenre.featurize(tmp_path / "music", out=tmp_path / "f.zarr", labels=tmp_path / "nope.csv")
    with pytest.raises(BatchgenreError, match="min_files must be a whole number of at least 1, got 0"):
        batchgenre.featurize(tmp_path / "music", out=tmp_path / "f.zarr", labels="tags", min_files=0)
    with pytest.raises(BatchgenreError, match="--genres picks genre folders; with --labels there are none"):
        batchgenre.featurize(tmp_path / "music", out=tmp_path / "f.zarr", labels="tags", genres=["rock"])
    assert not (tmp_path / "f.zarr").exists()
