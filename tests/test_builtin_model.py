"""The built-in model (musicnn's MSD tagger, --model msd) and musicnn's tags from trained models, via the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import batchgenre
from batchgenre.classify import serving
from batchgenre.classify.builtin import DEFAULT_MIN_CONFIDENCE, GENRE_TAGS, TAG_COLUMNS, TAG_THRESHOLD, tag_name
from batchgenre.classify.client import classify_one, with_tags
from batchgenre.classify.windows import Windows
from batchgenre.demo import make_corpus, synthesize
from batchgenre.errors import BatchgenreError
from batchgenre.features import musicnn
from batchgenre.store.results import ResultsTable, columns, read_results
from tests import synth
from tests.conftest import DEMO_CONFIG, run_cli

pytestmark = pytest.mark.slow

GENRES = [tag_name(t) for t in GENRE_TAGS]
CLIPS = ("blues/blues.00000.wav", "jazz/jazz.00001.wav", "hiphop/hiphop.00002.wav", "metal/metal.00000.wav")
EXTRA = "rock/rock.00003.wav"  # added later, to resume onto


@pytest.fixture(scope="module")
def folder(gtzan, tmp_path_factory) -> Path:
    """A few real GTZAN clips (copies in a temporary folder)."""
    root = tmp_path_factory.mktemp("clips") / "music"
    for rel in CLIPS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gtzan / rel, root / rel)
    return root


@pytest.fixture(scope="module")
def builtin_run(folder, tmp_path_factory):
    """classify-dir with no --model, from a folder where no trained model is: the built-in's table."""
    cwd = tmp_path_factory.mktemp("cwd")
    assert not (cwd / "runs/three_genres/model.keras").exists()
    run = run_cli("classify-dir", folder, "--out", "results.csv", "--workers", "1", cwd=cwd)
    return run, cwd / "results.csv"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny model trained by `batchgenre train` on generated clips featurized with robust+musicnn."""
    where = tmp_path_factory.mktemp("model")
    make_corpus(where / "audio", per_genre=4, seconds=6)
    featurized = run_cli(
        "featurize", where / "audio", "--out", where / "f.zarr", "--features", "robust+musicnn", "--workers", "1"
    )
    assert featurized.returncode == 0, featurized.stderr
    (where / "config.toml").write_text(DEMO_CONFIG.format(epochs=6, store=where / "f.zarr", out=where / "run"))
    trained = run_cli("train", where / "config.toml")
    assert trained.returncode == 0, trained.stderr
    return where / "run" / "model.keras"


def test_without_a_trained_model_classify_dir_says_it_uses_the_builtin_in_one_line(builtin_run):
    run, _ = builtin_run
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if "no trained model" in line]
    assert len(said) == 1 and "runs/three_genres/model.keras" in said[0] and "built-in model msd" in said[0]
    assert f"{len(CLIPS)} classified, 0 failed" in run.stdout


def test_builtin_rows_have_genre_tag_columns_and_tags_most_likely_first(builtin_run):
    _, out = builtin_run
    results = read_results(out)
    assert results.genres == GENRES and len(GENRES) == 27
    assert results.tags == list(TAG_COLUMNS) and len(TAG_COLUMNS) == 50
    assert all(c == c.lower() and " " not in c for c in TAG_COLUMNS)
    assert out.read_text(encoding="utf-8").splitlines()[0].split(",") == columns(GENRES, TAG_COLUMNS)
    by_path = {r["path"]: r for r in results.rows}
    assert sorted(by_path) == sorted(CLIPS)
    for row in results.rows:
        p = {g: row[f"p_{g}"] for g in GENRES}
        tag = {c: row[f"tag_{c}"] for c in TAG_COLUMNS}
        # A genre's probability is its tag's; the genre is the likeliest genre tag, named when it reaches 0.2.
        assert all(p[g] == tag[g.replace(" ", "_")] for g in GENRES)
        best = max(p, key=p.get)
        assert row["confidence"] == p[best]
        assert row["genre"] == (best if p[best] >= DEFAULT_MIN_CONFIDENCE else "unknown")
        listed = row["tags"].split("; ") if row["tags"] else []
        listed_p = [tag[name.replace(" ", "_")] for name in listed]
        assert listed_p == sorted(listed_p, reverse=True)
        assert all(q >= TAG_THRESHOLD - 1e-4 for q in listed_p)
        unlisted = [q for c, q in tag.items() if c not in {n.replace(" ", "_") for n in listed}]
        assert all(q < TAG_THRESHOLD + 1e-4 for q in unlisted)
        assert row["windows"] == 1 and row["status"] == "classified"
    # Genres it knows well on gtzan-mini (README, classify-dir: 10 of 10 jazz and blues clips).
    assert by_path["jazz/jazz.00001.wav"]["genre"] == "jazz"
    assert by_path["blues/blues.00000.wav"]["genre"] == "blues"
    assert "jazz" in by_path["jazz/jazz.00001.wav"]["tags"].split("; ")


def test_a_table_with_tags_reads_back_in_every_format_and_resumes(builtin_run, gtzan, folder, tmp_path):
    _, out = builtin_run
    results = read_results(out)
    assert results.root == folder.resolve()
    for suffix in (".jsonl", ".parquet"):
        other = tmp_path / f"results{suffix}"
        table = ResultsTable(other, genres=results.genres, tags=results.tags)
        for row in results.rows:
            table.add(row)
        table.finish()
        again = read_results(other)
        assert (again.genres, again.tags, again.rows) == (results.genres, results.tags, results.rows)
    # Resuming: a new file is classified alone, the rows already there kept as they were.
    (folder / EXTRA).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(gtzan / EXTRA, folder / EXTRA)
    resumed = run_cli("classify-dir", folder, "--model", "msd", "--out", out, "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(CLIPS)} files already in" in resumed.stderr
    after = read_results(out)
    assert [r for r in after.rows if r["path"] != EXTRA] == results.rows
    assert {r["path"]: r for r in after.rows}[EXTRA]["tags"]


def test_classify_one_file_with_the_builtin(gtzan):
    run = run_cli("classify", gtzan / "jazz/jazz.00001.wav", "--model", "msd")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("jazz  (1 windows")
    assert lines[1].split()[0] == "jazz"
    assert lines[-1].startswith("tags: jazz")


def test_load_model_msd_predicts_genre_tag_probabilities(builtin_run, folder):
    row = {r["path"]: r for r in read_results(builtin_run[1]).rows}["jazz/jazz.00001.wav"]
    model = batchgenre.load_model("msd")
    assert model.genres == GENRES and model.feature_set == "musicnn"
    predicted = model.predict(folder / "jazz/jazz.00001.wav")
    assert list(predicted) == GENRES
    assert max(predicted, key=predicted.get) == "jazz"
    assert all(abs(predicted[g] - row[f"p_{g}"]) < 1e-4 for g in GENRES)


def test_tags_from_a_trained_robust_musicnn_model_equal_the_builtins(model, builtin_run, folder, tmp_path):
    builtin = {r["path"]: r for r in read_results(builtin_run[1]).rows}
    out = tmp_path / "trained.csv"
    run = run_cli("classify-dir", folder, "--model", model, "--tags", "--out", out, "--workers", "1")
    assert run.returncode == 0, run.stderr
    trained = read_results(out)
    assert trained.genres == ["chiptune", "drone", "techno"] and trained.tags == list(TAG_COLUMNS)
    for row in trained.rows:
        if row["path"] not in builtin:
            continue  # the clip the resume test added
        mine = np.array([row[f"tag_{c}"] for c in TAG_COLUMNS])
        theirs = np.array([builtin[row["path"]][f"tag_{c}"] for c in TAG_COLUMNS])
        np.testing.assert_allclose(mine, theirs, atol=1.5e-4)
        assert row["tags"] == builtin[row["path"]]["tags"]


def test_tags_cost_no_second_forward_pass(model, tmp_path, monkeypatch):
    """musicnn's network runs once per window whether or not the tags are kept."""
    song = tmp_path / "song.wav"
    synth.write(song, synthesize("techno", seconds=12, seed=[5]))
    calls = []
    embed = musicnn.embed

    def counted(*args, **kwargs):
        calls.append(1)
        return embed(*args, **kwargs)

    monkeypatch.setattr(musicnn, "embed", counted)
    windows = Windows.choose(count=3, window=4.0)
    row = classify_one(str(song), model_path=model, windows=windows, tags=True)
    assert row["windows"] == 3 and row["tags"] is not None and row["tag_rock"] is not None
    assert len(calls) == 3
    plain = classify_one(str(song), model_path=model, windows=windows)
    assert len(calls) == 6 and "tags" not in plain
    assert {k: v for k, v in row.items() if k in plain} == plain


def test_tags_need_a_model_whose_features_include_musicnn():
    robust = serving.Classifier({"feature_set": "robust", "genres": ["a", "b"]}, ())
    with pytest.raises(BatchgenreError, match="--tags needs a model whose features include musicnn"):
        with_tags(robust, True)
    assert with_tags(robust, False) is False
