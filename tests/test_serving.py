"""The NumPy forward pass against Keras's on models the real trainer made, what it refuses, classify without Keras."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from batchgenre.classify.serving import load_classifier
from batchgenre.demo import synthesize
from batchgenre.errors import BatchgenreError
from batchgenre.store import FeatureStore
from batchgenre.store.artifact import read_metadata
from batchgenre.training.dataset import read_features, select_rows
from tests import synth
from tests.test_dataset import make_store
from tests.test_train import make_config

pytestmark = pytest.mark.slow

# Every model the config can ask for: the MLP with each activation ([model] activation), with
# dropout (inert when predicting), and softmax regression.
MODELS = {
    "mlp-relu-dropout": {"hidden_layers": [24, 12], "dropout": 0.3},
    "linear": {"type": "linear", "l2": 0.01},
    **{f"mlp-{name}": {"hidden_layers": [16], "activation": name} for name in ("elu", "gelu", "selu", "swish", "tanh")},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    url = tmp_path_factory.mktemp("store") / "f.zarr"
    make_store(url, per_genre=12, feature_set="robust")
    return url


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory) -> dict[str, Path]:
    """name -> model.keras written by `train` for each of MODELS."""
    from batchgenre.training.trainer import train

    runs = tmp_path_factory.mktemp("runs")
    return {
        name: train(make_config(store, runs / name, model=model, train={"epochs": 3})).run_dir / "model.keras"
        for name, model in MODELS.items()
    }


def feature_rows(store: Path) -> np.ndarray:
    """The store's rows, then rows that reach the log10 floor and the extremes: [shape=(n, D), dtype=float32]."""
    fs = FeatureStore.open(str(store))
    rows = read_features(fs, select_rows(fs, genres="all").index)
    rng = np.random.default_rng(1)
    odd = np.concatenate([np.zeros((2, rows.shape[1])), rng.normal(scale=1e3, size=(4, rows.shape[1]))])
    return np.concatenate([rows, odd.astype(np.float32)])


@pytest.mark.parametrize("name", list(MODELS))
def test_probabilities_match_keras_predict(trained, store, name):
    from batchgenre.training.model import load_model

    keras_model, _ = load_model(trained[name])
    x = feature_rows(store)
    expected = keras_model.predict(x, verbose=0)
    served = load_classifier(trained[name])
    got = served.probabilities(x)
    assert got.dtype == np.float32 and got.shape == (len(x), 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert served.genres == read_metadata(trained[name])["genres"] == ["low", "high", "noise"]


def rewritten(model: Path, target: Path, change, *, member: str = "config.json") -> Path:
    """A copy of ``model`` whose JSON ``member`` is ``change(member's content)``."""
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == member:
                data = json.dumps(change(json.loads(data))).encode()
            copy.writestr(item, data)
    return target


def set_layer(class_name: str | None = None, **settings):
    """A change to the last Dense layer of a config: another class, or other settings."""

    def change(config: dict) -> dict:
        layer = config["config"]["layers"][-1]
        layer["class_name"] = class_name or layer["class_name"]
        layer["config"].update(settings)
        return config

    return change


def drop_layer(kind: str):
    def change(config: dict) -> dict:
        config["config"]["layers"] = [layer for layer in config["config"]["layers"] if layer["class_name"] != kind]
        return config

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (set_layer("BatchNormalization"), "layer 'genre' is a BatchNormalization"),
        (set_layer(activation="softplus"), "layer 'genre' has activation 'softplus'"),
        (set_layer(activation={"class_name": "LeakyReLU"}), "layer 'genre' has activation"),
        (drop_layer("SelectColumns"), "layer 'standardise' does not take the previous layer's output"),
    ],
)
def test_a_layer_it_cannot_run_exactly_is_refused_by_name(trained, tmp_path, change, message):
    foreign = rewritten(trained["mlp-relu-dropout"], tmp_path / "foreign.keras", change)
    with pytest.raises(BatchgenreError, match="foreign.keras: ") as refused:
        load_classifier(foreign)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_model_whose_outputs_are_not_its_genres_is_refused(trained, tmp_path):
    def add_a_genre(metadata: dict) -> dict:
        return {**metadata, "genres": [*metadata["genres"], "jazz"]}

    four = rewritten(trained["linear"], tmp_path / "four.keras", add_a_genre, member="batchgenre.json")
    with pytest.raises(BatchgenreError, match="four.keras: the model gives 3 values a row for 4 genres"):
        load_classifier(four)


def test_a_model_without_its_weights_is_refused_in_one_line(trained, tmp_path):
    target = tmp_path / "weightless.keras"
    with zipfile.ZipFile(trained["linear"]) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            if item.filename != "model.weights.h5":
                copy.writestr(item, source.read(item))
    with pytest.raises(BatchgenreError, match="weightless.keras: the model's layers cannot be read"):
        load_classifier(target)


def test_classify_and_classify_dir_never_import_tensorflow(trained, tmp_path):
    synth.write(tmp_path / "music" / "a.wav", synthesize("drone", seconds=8))
    synth.write(tmp_path / "music" / "b.flac", synthesize("techno", seconds=8))
    model = trained["mlp-relu-dropout"]
    for args in (
        ["classify", tmp_path / "music" / "a.wav", "--model", model],
        ["classify-dir", tmp_path / "music", "--model", model, "--out", tmp_path / "r.csv", "--workers", "1"],
    ):
        code = (
            "import sys; from batchgenre.cli import main; status = main(sys.argv[1:]); "
            "print('loaded:', *sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})); "
            "sys.exit(status)"
        )
        command = [sys.executable, "-c", code, *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "loaded:"
    assert (tmp_path / "r.csv").read_text().count("classified") == 2
