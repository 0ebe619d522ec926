""" "None of these": novelty against the training rows, calibrated on other artists, through train and classify-dir."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from batchgenre.classify.novelty import MEMBER, QUANTILE, Novelty, fit_novelty, novelty_columns
from batchgenre.classify.serving import load_classifier
from batchgenre.demo import make_corpus, make_new_music
from batchgenre.store.results import read_results
from tests.conftest import run_cli


def clusters(rng, centres, per, spread=0.1):
    """Rows [shape=(len(centres) * per, d)] around each centre [d], and the index of the centre each came from."""
    rows = np.concatenate([c + spread * rng.standard_normal((per, len(c))) for c in centres])
    return rows.astype(np.float32), np.repeat(np.arange(len(centres)), per)


def test_calibration_scores_each_row_against_other_groups_only():
    # An embedding's many values (musicnn has 400): genres are far apart, each of three artists near its genre.
    rng, values = np.random.default_rng(0), 64
    genres = rng.standard_normal((3, values)) * 3
    artists = np.repeat(genres, 3, axis=0) + rng.standard_normal((9, values))
    rows, artist = clusters(rng, artists, per=10)
    names = [f"robust.mean.{i}" for i in range(values)]
    novelty = fit_novelty(rows, artist, names=names, seed=0)
    # Scored against their own artist the rows would sit at distance ~0 and the threshold with them.
    alone = fit_novelty(rows, np.arange(len(rows)), names=names, seed=0)
    assert novelty.threshold > 5 * alone.threshold
    assert (novelty.scores(rows) <= novelty.threshold).mean() >= QUANTILE
    # A new artist of a known genre mostly falls inside; artists of genres never seen fall outside.
    new_artist, _ = clusters(rng, genres + rng.standard_normal((3, values)), per=10)
    foreign, _ = clusters(rng, rng.standard_normal((3, values)) * 3, per=10)
    assert (novelty.scores(new_artist) <= novelty.threshold).mean() >= 2 / 3
    assert (novelty.scores(foreign) > novelty.threshold).all()
    again = Novelty.from_bytes(novelty.to_bytes())
    assert again.threshold == novelty.threshold and np.array_equal(again.scores(foreign), novelty.scores(foreign))


def test_where_the_set_has_musicnn_only_its_values_count():
    names = ["mfcc.mean.00", "musicnn.mean.000", "mfcc.std.00", "musicnn.max.000"]
    assert novelty_columns(names).tolist() == [1, 3]
    assert novelty_columns(names[::2]).tolist() == [0, 1]


CONFIG = """
[data]
store = "{store}"
genres = ["chiptune", "drone"]
[train]
epochs = 16
[output]
dir = "{out}"
"""


@pytest.mark.slow
def test_a_genre_the_model_never_saw_is_unknown_and_its_own_are_not(tmp_path):
    make_corpus(tmp_path / "audio", per_genre=8, seconds=6)
    store = tmp_path / "f.zarr"
    assert run_cli("featurize", tmp_path / "audio", "--out", store, "--workers", "2").returncode == 0
    (tmp_path / "c.toml").write_text(CONFIG.format(store=store, out=tmp_path / "run"))
    trained = run_cli("train", tmp_path / "c.toml")
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["novelty"]["values"] == "all" and metrics["novelty"]["reference_rows"] > 0
    assert metrics["novelty"]["calibrated_on"] == "training rows against other files'"
    model = tmp_path / "run" / "model.keras"
    assert load_classifier(model).novelty.threshold == pytest.approx(metrics["novelty"]["threshold"], abs=1e-6)

    truth = make_new_music(tmp_path / "new", per_genre=3, seconds=20)
    out = tmp_path / "r.csv"
    result = run_cli("classify-dir", tmp_path / "new", "--model", model, "--out", out, "--min-confidence", "0.5")
    assert result.returncode == 0, result.stderr
    rows = {r["path"]: r for r in read_results(out).rows}
    techno = [r for p, r in rows.items() if truth[p] == "techno"]
    known = [r for p, r in rows.items() if truth[p] != "techno"]
    assert all(r["genre"] == "unknown" for r in techno), [(r["genre"], r["novelty"]) for r in techno]
    assert sum(r["genre"] == truth[r["path"]] for r in known) >= len(known) - 1
    threshold = metrics["novelty"]["threshold"]
    assert min(r["novelty"] for r in techno) > threshold >= np.median([r["novelty"] for r in known])

    # A model saved before novelty existed has no member for it: it serves, and calls nothing unknown for it.
    older = tmp_path / "older.keras"
    with zipfile.ZipFile(model) as original, zipfile.ZipFile(older, "w") as copy:
        assert MEMBER in original.namelist()
        for member in original.namelist():
            if member != MEMBER:
                copy.writestr(member, original.read(member))
    assert load_classifier(older).novelty is None
    result = run_cli(
        "classify-dir", tmp_path / "new", "--model", older, "--out", tmp_path / "o.csv", "--min-confidence", "0"
    )
    assert result.returncode == 0, result.stderr
    assert all(r["novelty"] is None and r["genre"] != "unknown" for r in read_results(tmp_path / "o.csv").rows)
