"""Feature sets combined: one store of both, or one store per set read as one, trained and served alike."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from batchgenre.audio.variants import VARIANTS
from batchgenre.demo import make_corpus
from batchgenre.errors import BatchgenreError
from batchgenre.features import get_feature_set
from batchgenre.store import FAILED, FeatureStore
from batchgenre.store.artifact import read_metadata
from batchgenre.store.joined import JoinedStores, open_stores
from batchgenre.training import config
from batchgenre.training.dataset import read_features, select_rows
from batchgenre.training.robustness import ORIGINAL
from tests.conftest import run_cli
from tests.test_dataset import make_store

SETS = ("robust", "musicnn", "robust+musicnn")
TRAIN = """
[data]
genres = ["chiptune", "drone", "techno"]
[split]
train = 0.5
validation = 0.25
test = 0.25
[model]
type = "linear"
[train]
epochs = 30
"""


@pytest.fixture(scope="module")
def featurized(tmp_path_factory) -> Path:
    """The demo corpus (8 s clips) featurized by the real command line into a store per set of SETS."""
    folder = tmp_path_factory.mktemp("joined")
    make_corpus(folder / "audio", per_genre=6, seconds=8)
    for name in SETS:
        done = run_cli(
            "featurize", folder / "audio", "--out", folder / f"{name}.zarr", "--features", name, "--workers", "2"
        )
        assert done.returncode == 0, done.stderr
    (folder / "train.toml").write_text(TRAIN)
    return folder


@pytest.mark.slow
def test_two_stores_read_as_one_equal_the_store_of_both_sets(featurized):
    joined = open_stores([str(featurized / "robust.zarr"), str(featurized / "musicnn.zarr")])
    both = FeatureStore.open(str(featurized / "robust+musicnn.zarr"))
    assert isinstance(joined, JoinedStores)
    for key in (
        "feature_set",
        "feature_params",
        "feature_names",
        "feature_description",
        "sample_rate",
        "offset",
        "duration",
    ):
        assert json.dumps(joined.attrs[key]) == json.dumps(both.attrs[key]), key
    rows = select_rows(joined, genres="all")
    assert np.array_equal(rows.index, select_rows(both, genres="all").index) and len(rows.index) == 18
    assert np.array_equal(read_features(joined, rows.index), read_features(both, rows.index))
    robust = read_features(FeatureStore.open(str(featurized / "robust.zarr")), rows.index)
    assert np.array_equal(read_features(joined, rows.index)[:, : robust.shape[1]], robust)


@pytest.mark.slow
def test_two_stores_train_the_model_one_store_of_both_trains_and_classify_dir_serves_it(featurized, tmp_path):
    """featurize, train and classify-dir as a user types them; the two ways to combine train the same model."""
    f = featurized
    one = run_cli("train", f / "train.toml", "--store", f / "robust+musicnn.zarr", "--out", tmp_path / "one")
    two = run_cli(
        "train",
        f / "train.toml",
        "--store",
        f / "robust.zarr",
        "--store",
        f / "musicnn.zarr",
        "--out",
        tmp_path / "two",
        "--robustness",  # the test clips re-made as files and featurized with both sets
    )
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two")]
    assert metrics[0]["feature_set"] == metrics[1]["feature_set"] == "robust+musicnn"
    assert metrics[1]["store"] == f"{f / 'robust.zarr'} + {f / 'musicnn.zarr'}"
    for key in ("accuracy", "confusion_matrix", "split_sizes"):
        assert metrics[0][key] == metrics[1][key], key
    variants = metrics[1]["robustness"]["variants"]
    assert list(variants) == [ORIGINAL, *VARIANTS]
    assert all(v["test_rows"] == metrics[1]["split_sizes"]["test"] > 0 for v in variants.values()), variants
    assert config.load(tmp_path / "two" / "config.toml").data.store == (str(f / "robust.zarr"), str(f / "musicnn.zarr"))
    model = tmp_path / "two" / "model.keras"
    assert read_metadata(model)["feature_names"] == get_feature_set("robust+musicnn").names

    out = tmp_path / "results.csv"
    # --min-confidence 0 names a genre for every clip, the 40% of them it never trained on included
    # (novelty would call some of those unknown, as it should).
    served = run_cli(
        "classify-dir", f / "audio", "--model", model, "--out", out, "--workers", "2", "--min-confidence", "0"
    )
    assert served.returncode == 0, served.stderr
    with open(out, newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    assert len(rows) == 18 and all(r["status"] == "classified" for r in rows)
    # Trained on these very clips, the model must call nearly all of them right.
    right = sum(r["genre"] == r["path"].split("/")[0] for r in rows)
    assert right >= 16, rows


def two_stores(tmp_path: Path, **other) -> list[str]:
    """A tutorial store and a musicnn store of the same 30 files, the second made with ``other`` options."""
    a = make_store(tmp_path / "tutorial.zarr", per_genre=10, feature_set="tutorial")
    b = make_store(tmp_path / "musicnn.zarr", **{"per_genre": 10, "feature_set": "musicnn", **other})
    return [a.url, b.url]


def test_a_row_is_usable_only_where_every_store_has_it_done(tmp_path):
    urls = [make_store(tmp_path / "t.zarr", per_genre=10, failed=(3,)).url]
    urls.append(make_store(tmp_path / "m.zarr", per_genre=10, feature_set="musicnn", failed=(5, 6)).url)
    joined = open_stores(urls)
    rows = select_rows(joined, genres="all")
    assert sorted(set(range(30)) - set(rows.index.tolist())) == [3, 5, 6]
    assert joined.column("status")[[3, 5]].tolist() == [FAILED, FAILED]
    assert read_features(joined, rows.index).shape == (27, 498 + 400)


def edit(url: str, *, array: str | None = None, row: int = 0, value=None, attr: str | None = None) -> None:
    store = FeatureStore.open(url, mode="r+")
    if array is not None:
        store.group[array][row] = value
    else:
        store.group.attrs[attr] = value


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(array="path", row=7, value="low/elsewhere.wav"),
            "row 7 has path 'high/00007.wav' in one and 'low/elsewhere.wav' in the other",
        ),
        (dict(array="augment", row=2, value=1), "row 2 has augment 0 in one and 1 in the other"),
        (dict(array="label", row=4, value=0), "row 4 has label 'high' in one and 'low' in the other"),
        (dict(attr="duration", value=10.0), "duration is 30.0 in one and 10.0 in the other"),
        (dict(attr="root", value="/elsewhere"), "root is '/synthetic' in one and '/elsewhere' in the other"),
    ],
)
def test_stores_of_other_rows_are_refused_naming_both_and_the_first_difference(tmp_path, change, message):
    urls = two_stores(tmp_path)
    edit(urls[1], **change)
    with pytest.raises(BatchgenreError) as caught:
        open_stores(urls)
    assert str(caught.value).startswith(f"{urls[0]} and {urls[1]} cannot be read as one: ")
    assert message in str(caught.value)


def test_stores_of_other_sizes_or_of_one_set_twice_are_refused(tmp_path):
    urls = two_stores(tmp_path, per_genre=9)
    with pytest.raises(BatchgenreError, match="cannot be read as one: they hold 30 and 27 rows"):
        open_stores(urls)
    twice = [urls[0], make_store(tmp_path / "again.zarr", per_genre=10).url]
    with pytest.raises(
        BatchgenreError, match="cannot be read as one: feature set 'tutorial\\+tutorial' names 'tutorial' twice"
    ):
        open_stores(twice)


def test_labels_are_compared_by_genre_name_not_by_their_index(tmp_path):
    a = make_store(tmp_path / "a.zarr", per_genre=4, feature_set="tutorial")
    b = make_store(tmp_path / "b.zarr", per_genre=4, feature_set="musicnn")
    # The same genres listed in another order, the labels renumbered to match: the same rows.
    store = FeatureStore.open(b.url, mode="r+")
    order = ["noise", "low", "high"]
    store.group["label"][:] = [order.index(b.genres[i]) for i in b.column("label")]
    store.group.attrs["genres"] = order
    joined = open_stores([a.url, b.url])
    assert joined.genres == a.genres and np.array_equal(joined.column("label"), a.column("label"))


def test_a_config_names_several_stores_or_one_and_refuses_featurizing_into_several(tmp_path):
    two = config.from_dict({"data": {"store": ["a.zarr", "b.zarr"]}})
    assert (
        two.data.store == ("a.zarr", "b.zarr")
        and config.from_dict({"data": {"store": ["a.zarr"]}}).data.store == "a.zarr"
    )
    assert config.with_overrides(config.Config(), store=["a.zarr", "b.zarr"]).data.store == ("a.zarr", "b.zarr")
    with pytest.raises(
        BatchgenreError, match=r"t.toml: \[data\] store must be a non-empty path, or a list of distinct paths"
    ):
        config.from_dict({"data": {"store": ["a.zarr", "a.zarr"]}}, source="t.toml")
    with pytest.raises(
        BatchgenreError, match=r"t.toml: \[data\] audio is featurized into one store, but \[data\] store names 2"
    ):
        config.from_dict({"data": {"store": ["a.zarr", "b.zarr"], "audio": "music"}}, source="t.toml")
    with pytest.raises(
        BatchgenreError, match=r"\[data\] feature_set must name sets that combine \(feature set 'robust\+fast'"
    ):
        config.from_dict({"data": {"feature_set": "robust+fast"}}, source="t.toml")
    with pytest.raises(BatchgenreError, match="summaries must include one of feature set 'musicnn''s summaries"):
        config.from_dict({"data": {"feature_set": "robust+musicnn"}, "model": {"summaries": ["std"]}}, source="t.toml")


def test_train_refuses_stores_whose_set_is_not_the_configs(tmp_path, capsys):
    from batchgenre import cli

    urls = two_stores(tmp_path)
    (tmp_path / "t.toml").write_text(f"[data]\nstore = {json.dumps(urls)}\nfeature_set = 'tutorial'\n")
    assert cli.main(["train", str(tmp_path / "t.toml")]) != 0
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        f"{urls[0]} + {urls[1]} holds feature set 'tutorial+musicnn', but {tmp_path / 't.toml'} asks for 'tutorial': "
        "set [data] feature_set = 'tutorial+musicnn' (or leave it out), or featurize with --features tutorial"
    )
    assert len(error.splitlines()) == 1
