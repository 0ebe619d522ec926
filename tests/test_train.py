"""Training from the store: outputs, honest figures beside the baseline, determinism, bad input, the real CLI."""

from __future__ import annotations

import collections
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from batchgenre import cli
from batchgenre.errors import BatchgenreError
from batchgenre.store import FeatureStore
from batchgenre.training import config
from batchgenre.training.dataset import read_features, select_rows, split_rows
from tests import synth
from tests.conftest import run_cli
from tests.test_dataset import make_store

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OUTPUTS = ("model.keras", "metrics.json", "confusion.png", "training.png", "config.toml")


def make_config(store: Path, out: Path, **tables) -> config.Config:
    raw = {"data": {"store": str(store)}, "train": {"epochs": 12}, "output": {"dir": str(out)}}
    for table, values in tables.items():
        raw[table] = {**raw.get(table, {}), **values}
    return config.from_dict(raw, source="test.toml")


@pytest.fixture(scope="module")
def separable(tmp_path_factory) -> Path:
    url = tmp_path_factory.mktemp("store") / "f.zarr"
    make_store(url, per_genre=20, failed=(4,))
    return url


@pytest.fixture(scope="module")
def one_split(separable, tmp_path_factory):
    from batchgenre.training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "split"
    cfg = make_config(separable, out)
    return cfg, train(cfg)


def test_one_split_learns_separable_genres_and_writes_every_output(one_split):
    cfg, report = one_split
    metrics = json.loads((report.run_dir / "metrics.json").read_text())
    assert all((report.run_dir / name).stat().st_size > 0 for name in OUTPUTS)
    assert metrics["accuracy"] >= 0.9 and metrics["baseline"]["accuracy"] >= 0.9 and metrics["mode"] == "split"
    assert metrics["baseline"]["model"].endswith("on the whole vector, log10 of the melspectrogram block")
    assert metrics["split_sizes"] == {"train": 35, "validation": 12, "test": 12}
    assert set(metrics["per_genre"]) == {"low", "high", "noise"}
    assert set(metrics["per_genre"]["low"]) == {"precision", "recall", "f1", "support"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 12
    assert metrics["seed"] == 0 and {"tensorflow", "keras", "scikit-learn", "zarr", "numpy"} <= set(metrics["versions"])
    assert config.load(report.run_dir / "config.toml").data.store == cfg.data.store


def test_the_saved_model_needs_nothing_else_to_predict(one_split, separable):
    import keras

    from batchgenre.store import FeatureStore
    from batchgenre.store.artifact import check_features
    from batchgenre.training.model import load_model

    cfg, report = one_split
    model, metadata = load_model(report.run_dir / "model.keras")
    assert metadata["genres"] == ["low", "high", "noise"] and metadata["feature_set"] == "tutorial"
    assert metadata["sample_rate"] == 22050 and len(metadata["feature_names"]) == 498
    assert metadata["metrics"]["accuracy"] == report.metrics["accuracy"]
    check_features(metadata)
    keras.saving.load_model(report.run_dir / "model.keras", safe_mode=True)  # plain Keras reads it too

    store = FeatureStore.open(str(separable))
    rows = select_rows(store, genres="all")
    split = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=0)
    raw = read_features(store, split.test)  # as the store holds them: no scaling, no log
    predicted = model.predict(raw, verbose=0).argmax(axis=1)
    assert np.mean(predicted == rows.labels_of(split.test)) == report.metrics["accuracy"]

    # Standardised with statistics of the training rows alone, after log10 of the mel block,
    # on the mean and max summaries.
    train = read_features(store, split.train).astype(np.float64)
    names = metadata["feature_names"]
    mel = [i for i, n in enumerate(names) if n.startswith("melspectrogram.")]
    train[:, mel] = np.log10(train[:, mel])
    kept = [i for i, n in enumerate(names) if n.split(".")[1] in ("mean", "max")]
    mean = model.get_layer("standardise").adapt_mean.numpy()
    np.testing.assert_allclose(mean, train[:, kept].mean(axis=0), rtol=1e-4, atol=1e-4)


def test_a_linear_model_is_softmax_regression_saved_and_served_like_the_mlp(separable, tmp_path):
    import keras

    from batchgenre.training.model import load_model
    from batchgenre.training.trainer import train

    cfg = make_config(
        separable,
        tmp_path / "linear",
        model={"type": "linear", "l2": 0.01},
        train={"epochs": 40, "learning_rate": 0.01},
    )
    report = train(cfg)
    model, metadata = load_model(report.run_dir / "model.keras")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.name for layer in dense] == ["genre"]
    n_inputs = model.get_layer("standardise").adapt_mean.shape[-1]
    assert dense[0].kernel.shape == (n_inputs, 3) and dense[0].kernel_regularizer.l2 == pytest.approx(0.01)
    assert report.metrics["accuracy"] >= 0.9
    assert config.load(report.run_dir / "config.toml").model.type == "linear"


def test_cross_validation_reports_spread_beside_the_baseline_and_repeats_exactly(separable, tmp_path):
    from batchgenre.training.run_outputs import summary_table
    from batchgenre.training.trainer import train

    runs = [
        train(make_config(separable, tmp_path / name, split={"folds": 2, "repeats": 2, "seed": 5}, train={"epochs": 6}))
        for name in ("a", "b")
    ]
    metrics = runs[0].metrics
    assert metrics["accuracy_mean"] >= 0.9 and len(metrics["accuracy_folds"]) == 4 and metrics["mode"] == "folds"
    lo, hi = metrics["accuracy_ci95"]
    assert lo <= metrics["accuracy_mean"] <= hi and metrics["accuracy_std"] >= 0
    assert 0.5 <= metrics["validation_accuracy_mean"] <= 1
    assert {"accuracy_mean", "accuracy_std", "accuracy_ci95", "accuracy_folds"} <= set(metrics["baseline"])
    paired = np.subtract(metrics["accuracy_folds"], metrics["baseline"]["accuracy_folds"])
    assert metrics["model_minus_baseline"]["difference_mean"] == pytest.approx(paired.mean())
    assert np.asarray(metrics["confusion_matrix"]).sum() == 2 * 59  # every row tested once per repeat
    assert len(metrics["split_sizes"]["folds"]) == 4 and metrics["split_sizes"]["saved_model"]["test"] == 0
    table = summary_table(metrics)
    assert "baseline" in table and "model - baseline" in table and "95% interval" in table and "noise" in table

    # The same config and seed: the same folds, the same figures, the same saved model.
    again = runs[1].metrics
    assert again["accuracy_folds"] == metrics["accuracy_folds"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["baseline"]["accuracy_folds"] == metrics["baseline"]["accuracy_folds"]
    weights = [zipfile.ZipFile(r.run_dir / "model.keras").read("model.weights.h5") for r in runs]
    assert weights[0] == weights[1]


def test_folds_reuse_one_traced_model_and_train_as_a_model_built_anew_for_each_fit(separable, tmp_path, monkeypatch):
    """A run builds its model and traces its steps once; each fit still starts where a new model would.

    Dropout (its random-seed state), early stopping (weights restored) and a refit, on three folds:
    each fit's per-epoch history, test predictions and weights equal those of a model built anew.
    """
    import keras

    from batchgenre.training.fit import Models, fit_and_test
    from batchgenre.training.trainer import plan_splits

    traced = collections.Counter()

    def counting(step: str, original):
        def counted(self, data):
            traced[step] += 1
            return original(self, data)

        return counted

    for step in ("train_step", "test_step", "predict_step"):  # Keras runs a step's Python only to trace it
        monkeypatch.setattr(keras.Model, step, counting(step, getattr(keras.Model, step)))

    training = {"epochs": 8, "early_stopping_patience": 2, "weight_seed": 0}
    cfg = make_config(separable, tmp_path, split={"folds": 3, "repeats": 1}, model={"dropout": 0.3}, train=training)
    store = FeatureStore.open(str(separable))
    rows = select_rows(store, genres="all")
    splits = plan_splits(rows, cfg.split)[0]

    def outcome(fit, tested) -> tuple:
        return fit.history, fit.refit_history, tested.y_pred.tolist(), [w.tobytes() for w in fit.model.get_weights()]

    models = Models(store, rows, cfg)
    reused = [outcome(*fit_and_test(store, rows, split, cfg, models=models)) for split in splits]
    # Traced once, or twice where a batch of another size made TensorFlow trace it again for any size.
    assert models.builds == 1 and set(traced) == {"train_step", "test_step", "predict_step"}
    assert max(traced.values()) <= 2 < 2 * len(splits)
    before = traced.copy()
    anew = [outcome(*fit_and_test(store, rows, split, cfg)) for split in splits]  # Models of their own
    assert all(traced[step] - before[step] >= len(splits) for step in before)  # the count can tell
    assert reused == anew
    assert len({str(r[0]) for r in reused}) == len(splits)  # the folds did differ


def test_a_weight_seed_changes_the_weights_on_the_same_splits(separable, tmp_path):
    def run(name: str, *flags: str) -> tuple[dict, bytes, config.Config]:
        (tmp_path / "run.toml").write_text("[split]\nseed = 5\nfolds = 2\nrepeats = 1\n[train]\nepochs = 6\n")
        args = ["--store", str(separable), "--out", str(tmp_path / name), *flags]
        assert cli.main(["train", str(tmp_path / "run.toml"), *args]) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        weights = zipfile.ZipFile(tmp_path / name / "model.keras").read("model.weights.h5")
        return metrics, weights, config.load(tmp_path / name / "config.toml")

    default, explicit, other = run("default"), run("explicit", "--weight-seed", "5"), run("other", "--weight-seed", "6")
    assert default[0]["weight_seed"] == default[2].train.weight_seed == 5  # the split seed, written out
    assert other[0]["weight_seed"] == other[2].train.weight_seed == 6 and other[2].split.seed == 5
    assert explicit[1] == default[1] and other[1] != default[1]
    # The same folds: the baseline, which has no weights to seed, scores the same on each.
    assert other[0]["baseline"]["accuracy_folds"] == default[0]["baseline"]["accuracy_folds"]
    assert other[0]["split_sizes"] == default[0]["split_sizes"]


def test_the_baseline_takes_the_models_own_log10_of_the_configured_blocks(one_split, separable):
    import keras

    from batchgenre.store import FeatureStore
    from batchgenre.training.fit import describe_baseline, fit_baseline
    from batchgenre.training.model import load_model

    store = FeatureStore.open(str(separable))
    rows = select_rows(store, genres="all")
    split = split_rows(rows, train=0.6, validation=0.2, test=0.2, seed=0)
    x = read_features(store, split.test)
    mel = [i for i, n in enumerate(store.attrs["feature_names"]) if n.startswith("melspectrogram.")]
    for log_blocks in ((), ("melspectrogram",)):
        cfg = make_config(separable, one_split[1].run_dir, model={"log_blocks": list(log_blocks)})
        logged = fit_baseline(store, rows, split, cfg)[0].transform(x)
        expected = x.astype(np.float64)
        if log_blocks:
            expected[:, mel] = np.log10(expected[:, mel])
        np.testing.assert_allclose(logged, expected, rtol=1e-6, atol=1e-6)
        assert ("log10" in describe_baseline(cfg)) == bool(log_blocks)
    # The very step the saved model (default log_blocks: the mel block) starts with.
    model, _ = load_model(one_split[1].run_dir / "model.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("log10")(x)), logged)


def test_training_png_draws_the_saved_models_own_fit_and_metrics_say_it_was_refit(separable, tmp_path):
    """A refit model never watched validation rows, so no solid validation curve is drawn as its own."""
    from matplotlib.image import imread

    from batchgenre.training.trainer import train

    orange = np.array([0xFF, 0x7F, 0x0E]) / 255  # matplotlib's C1: the validation curves' colour

    def run(refit: bool) -> tuple[dict, int]:
        report = train(make_config(separable, tmp_path / str(refit), train={"epochs": 4, "refit": refit}))
        rgb = imread(report.run_dir / "training.png")[..., :3]
        return report.metrics, int(np.sum(np.all(np.abs(rgb - orange) < 0.02, axis=-1)))

    (plain, plain_orange), (refit, refit_orange) = run(False), run(True)
    assert plain_orange > 100 and refit_orange == 0  # the fit that chose the epochs is drawn faintly behind
    assert plain["refit"] is False
    assert refit["refit"] == {"rows": "train + validation", "epochs": 4, "saved_model_epochs": 4}


def test_early_stopping_keeps_the_best_epoch_on_validation_rows(separable, tmp_path):
    from batchgenre.training.trainer import train

    # A step this large makes validation loss climb after the first epochs.
    cfg = make_config(
        separable, tmp_path / "run", train={"epochs": 40, "early_stopping_patience": 2, "learning_rate": 0.5}
    )
    metrics = train(cfg).metrics
    assert 1 <= metrics["epochs_kept"] < 10


def test_a_config_without_a_feature_set_trains_on_the_stores_and_says_so(tmp_path):
    from batchgenre.training.trainer import train

    store = make_store(tmp_path / "robust.zarr", per_genre=20, feature_set="robust")
    report = train(make_config(store.url, tmp_path / "run"))
    assert report.metrics["feature_set"] == "robust" and report.metrics["accuracy"] >= 0.9
    written = config.load(report.run_dir / "config.toml")
    assert written.data.feature_set == "robust"
    # What was used: the set has neither a mel block nor maxima, and the baseline took no log10.
    assert written.model.log_blocks == () and written.model.summaries == ("mean", "std")
    assert report.metrics["baseline"]["model"].endswith("on the whole vector")
    # The default summaries are those the set has (robust: mean and std), so the model reads all 120 values.
    from batchgenre.training.model import load_model

    model, _ = load_model(report.run_dir / "model.keras")
    assert model.get_layer("standardise").adapt_mean.shape[-1] == 120


def test_groups_from_the_command_line_reach_the_splits_and_the_metrics(tmp_path, capsys):
    from tests.test_dataset import write_groups

    store = make_store(tmp_path / "f.zarr", per_genre=12)
    write_groups(tmp_path / "artists.csv", store, per_group=3)
    (tmp_path / "run.toml").write_text("[train]\nepochs = 12\n")
    args = ["--store", store.url, "--groups", str(tmp_path / "artists.csv"), "--folds", "3", "--repeats", "1"]
    assert cli.main(["train", str(tmp_path / "run.toml"), *args, "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["groups"] == {"metadata": str(tmp_path / "artists.csv"), "count": 12}
    assert metrics["evaluation"].startswith("stratified group 3-fold") and metrics["accuracy_mean"] >= 0.8
    assert "stratified group 3-fold" in capsys.readouterr().out


def test_grouped_figures_speak_for_the_genres_of_several_groups(tmp_path, capsys):
    store = make_store(tmp_path / "f.zarr", per_genre=12)
    paths = sorted({str(p) for p in store.column("path")})
    # Every "low" file is one artist, as every gtzan-mini blues clip is John Lee Hooker.
    groups = {p: "one artist" if p.startswith("low/") else f"artist {i // 3}" for i, p in enumerate(paths)}
    (tmp_path / "artists.csv").write_text("path,group\n" + "".join(f'"{p}",{g}\n' for p, g in groups.items()))
    (tmp_path / "run.toml").write_text("[train]\nepochs = 12\n")
    args = ["--store", store.url, "--groups", str(tmp_path / "artists.csv"), "--folds", "3", "--repeats", "1"]
    assert cli.main(["train", str(tmp_path / "run.toml"), *args, "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    several = metrics["several_groups"]
    assert several["genres"] == ["high", "noise"] and several["single_group_genres"] == ["low"]
    # The low rows sit in one fold's test side alone, and that fold's model never saw a low row.
    assert metrics["per_genre"]["low"]["recall"] == 0.0
    assert several["model"]["accuracy_mean"] > metrics["accuracy_mean"]
    out = capsys.readouterr().out
    assert "on the genres of several groups (high, noise): model" in out and "one group only" in out


def test_a_failed_row_is_left_out(separable, one_split):
    _, report = one_split
    assert report.metrics["rows"] == 59  # 60 planned, row 4 failed


def test_augmented_copies_are_trained_on_but_never_scored(tmp_path):
    from batchgenre.training.trainer import train

    store = make_store(tmp_path / "f.zarr", per_genre=10, copies=2)
    metrics = train(make_config(store.url, tmp_path / "run", train={"epochs": 3})).metrics
    assert metrics["rows"] == 30 and metrics["augmented_copies"] == 60
    assert metrics["split_sizes"] == {"train": 18, "validation": 6, "test": 6}  # files, not rows
    assert np.asarray(metrics["confusion_matrix"]).sum() == 6


def test_window_rows_are_trained_on_and_each_test_file_is_scored_by_its_mean_probability(tmp_path):
    from batchgenre.training.fit import fit_baseline, fit_classifier, score
    from batchgenre.training.trainer import plan_splits

    store = make_store(tmp_path / "f.zarr", per_genre=10, windows=3, failed=(7,))  # file 2 lost its second window
    cfg = make_config(store.url, tmp_path / "run", train={"epochs": 3, "weight_seed": 0})
    metrics = train_and_read(cfg)
    assert metrics["rows"] == 30 and metrics["windows"]["seconds"] == 10.0 and metrics["windows"]["rows"] == 89
    assert metrics["split_sizes"] == {"train": 18, "validation": 6, "test": 6}  # files, not windows
    assert np.asarray(metrics["confusion_matrix"]).sum() == 6  # each test file counted once
    assert json.loads(zipfile.ZipFile(tmp_path / "run" / "model.keras").read("batchgenre.json"))["window"] == 10.0

    rows = select_rows(store, genres="all")
    split = plan_splits(rows, cfg.split)[1]
    model, baseline = fit_classifier(store, rows, split, cfg).model, fit_baseline(store, rows, split, cfg)
    test_rows, files = rows.file_rows(split.test)
    scored = score(model, baseline, store, test_rows, rows.labels_of(test_rows), cfg, files=files)
    x = read_features(store, test_rows)
    for _who, probabilities, predicted in (
        (model, model.predict(x, verbose=0), scored.y_pred),
        (baseline, baseline.predict_proba(x), scored.baseline_pred),
    ):
        means = [probabilities[files == f].mean(axis=0) for f in split.test]
        np.testing.assert_array_equal(predicted, np.argmax(means, axis=1))
    np.testing.assert_array_equal(scored.y_true, rows.labels_of(split.test))


def train_and_read(cfg: config.Config) -> dict:
    from batchgenre.training.trainer import train

    train(cfg)
    return json.loads((Path(cfg.output.dir) / "metrics.json").read_text())


def test_robustness_on_window_rows_is_refused_in_one_line(tmp_path):
    from batchgenre.training.trainer import train

    store = make_store(tmp_path / "f.zarr", per_genre=4, windows=3)
    with pytest.raises(
        BatchgenreError, match="holds 10-second window rows; --robustness needs a store of whole excerpts"
    ):
        train(make_config(store.url, tmp_path / "run", train={"robustness": True}))


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "missing store",
            "nowhere.zarr: no feature store there; make one with `batchgenre featurize AUDIO_FOLDER --out ",
        ),
        ("audio folder as store", "a folder, but not a feature store; to featurize it first, set [data] audio"),
        ("genre without rows", "no featurized rows of genre 'jazz'"),
        ("other feature set", "fast.zarr holds feature set 'fast', but "),
        ("typo", "run.toml: unknown key [train] epoch (did you mean epochs?)"),
        ("run folder exists", "the run folder exists; pass --force to write over it"),
        ("bad flag value", "--folds must be 0 (one split) or a number of folds of at least 2, got 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tmp_path, capsys, separable, case, message):
    store, args = str(separable), []
    text = "[data]\ngenres = ['low', 'high']\n"
    if case == "missing store":
        store = str(tmp_path / "nowhere.zarr")
    elif case == "audio folder as store":
        store = str(synth.write(tmp_path / "music" / "rock" / "a.wav", synth.tone(seconds=0.5)).parents[1])
    elif case == "genre without rows":
        text = "[data]\ngenres = ['low', 'jazz']\n"
    elif case == "other feature set":
        store = str(make_store(tmp_path / "fast.zarr", per_genre=2, feature_set="fast").url)
        text = "[data]\nfeature_set = 'tutorial'\ngenres = ['low', 'high']\n"
    elif case == "typo":
        text += "[train]\nepoch = 3\n"
    elif case == "run folder exists":
        (tmp_path / "run").mkdir()
    elif case == "bad flag value":
        args = ["--folds", "1"]
    (tmp_path / "run.toml").write_text(text)
    status = cli.main(["train", str(tmp_path / "run.toml"), "--store", store, "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err.strip()
    assert status != 0
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_file_that_is_not_a_batchgenre_model_is_named(tmp_path):
    from batchgenre.store.artifact import check_features
    from batchgenre.training.model import load_model

    with pytest.raises(BatchgenreError, match="no model there"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("hello")
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    for name in ("text.keras", "plain.keras"):
        with pytest.raises(BatchgenreError, match="not a batchgenre model"):
            load_model(tmp_path / name)
    with pytest.raises(BatchgenreError, match="trained on feature set 'tutorial' with feature_params"):
        check_features(
            {"feature_set": "tutorial", "sample_rate": 22050, "feature_params": {"n_fft": 4096}, "feature_names": []}
        )


def test_plot_features_draws_a_png(tmp_path, capsys):
    from matplotlib.image import imread

    audio = synth.write(tmp_path / "tone.wav", synth.tone(freq=440, seconds=3))
    assert cli.main(["plot-features", str(audio), "--out", str(tmp_path / "tone.png")]) == 0
    height, width, _ = imread(tmp_path / "tone.png").shape
    assert height > width > 500


@pytest.mark.slow
def test_the_real_command_line_trains_on_a_featurized_generated_corpus(tmp_path):
    """featurize (real Dask cluster) then train, both as a user types them."""
    for i in range(8):
        synth.write(tmp_path / "audio" / "low" / f"low.{i:05d}.wav", synth.tone(freq=100 + 15 * i, seconds=3))
        synth.write(tmp_path / "audio" / "high" / f"high.{i:05d}.wav", synth.tone(freq=2000 + 150 * i, seconds=3))
        synth.write(tmp_path / "audio" / "noise" / f"noise.{i:05d}.wav", synth.noise(seconds=3, seed=i, amplitude=0.2))
    done = run_cli("featurize", tmp_path / "audio", "--out", tmp_path / "f.zarr", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "run.toml").write_text('[data]\ngenres = ["low", "high", "noise"]\n[split]\nfolds = 3\nrepeats = 1\n')
    trained = run_cli("train", "run.toml", "--store", "f.zarr", "--epochs", "20", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "E0000" not in trained.stderr, trained.stderr
    assert "baseline" in trained.stdout and "-> runs/run" in trained.stdout
    metrics = json.loads((tmp_path / "runs" / "run" / "metrics.json").read_text())
    assert metrics["accuracy_mean"] >= 0.9 and metrics["rows"] == 24
    assert (tmp_path / "runs" / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_real_clips_featurized_by_train_itself(gtzan, tmp_path):
    """The shipped three-genre config on the real clips, its audio folder featurized first.

    3 folds x 1 repeat, fewer epochs.
    """
    from batchgenre.training.trainer import train

    shipped = config.load(CONFIGS / "three_genres.toml")
    cfg = config.with_overrides(
        shipped, store=str(tmp_path / "f.zarr"), out=str(tmp_path / "run"), folds=3, repeats=1, epochs=24
    )
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, audio=str(gtzan)))
    metrics = train(cfg).metrics
    assert metrics["rows"] == 31
    assert metrics["accuracy_mean"] >= 0.9 and metrics["baseline"]["accuracy_mean"] >= 0.9
