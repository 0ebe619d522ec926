"""Training configs: defaults for every key, errors that name the key, overrides, and the shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from batchgenre.errors import BatchgenreError
from batchgenre.training import config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_empty_config_takes_every_default(tmp_path):
    loaded = config.load(write(tmp_path, "", name="my_run.toml"))
    assert dataclasses.replace(loaded, source="<defaults>", output=config.OutputConfig()) == config.Config()
    assert loaded.output.dir == str(Path("runs") / "my_run")
    assert loaded.model.hidden_layers == (300, 200) and loaded.train.optimizer == "rmsprop"
    assert loaded.train.loss == "sparse_categorical_crossentropy"


def test_the_shipped_configs_are_the_tutorial_and_all_ten_genres():
    three = config.load(CONFIGS / "three_genres.toml")
    assert three.data.genres == ("reggae", "classical", "rock")
    assert (three.split.train, three.split.validation, three.split.test) == (0.6, 0.2, 0.2)
    assert three.model.hidden_layers == (300, 200) and three.model.activation == "relu"
    assert (three.train.optimizer, three.train.loss, three.train.epochs) == (
        "rmsprop",
        "sparse_categorical_crossentropy",
        64,
    )
    assert three.output.dir == "runs/three_genres" and three.data.store == "features.zarr"
    everything = config.load(CONFIGS / "all_genres.toml")
    assert len(everything.data.genres) == 10 and everything.output.dir == "runs/all_genres"
    mine = config.load(CONFIGS / "my_library.toml")
    assert mine.data.genres == "all" and mine.data.feature_set == "robust+musicnn" and not mine.split.groups
    assert (mine.data.store, mine.output.dir) == ("my-library.zarr", "runs/my_library")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[model]\nhidden_layers = 'abc'",
            "[model] hidden_layers must be a list of positive integers, like [300, 200], got 'abc'",
        ),
        ("[model]\nhidden_layers = [300, 0]", "[model] hidden_layers must be a list of positive integers"),
        ("[model]\nhiden_layers = [30]", "unknown key [model] hiden_layers (did you mean hidden_layers?)"),
        ("[modle]\nhidden_layers = [30]", "unknown table [modle] (did you mean model?)"),
        ("[train]\noptimizer = 'adamw'", "[train] optimizer must be one of rmsprop, adam, sgd, got 'adamw'"),
        ("[train]\nepochs = 0", "[train] epochs must be an integer of at least 1, got 0"),
        ("[train]\nepochs = 6.5", "[train] epochs must be an integer of at least 1, got 6.5"),
        ("[train]\nrefit = 'yes'", "[train] refit must be true or false, got 'yes'"),
        ("[train]\nlearning_rate = -1", "[train] learning_rate must be a positive number, got -1"),
        ("[train]\nweight_seed = -1", "[train] weight_seed must be an integer of at least 0, got -1"),
        ("[split]\ntrain = 1.5", "[split] train must be a number between 0 and 1, got 1.5"),
        ("[split]\ntrain = 0.7", "[split] train, validation and test must add up to 1, got 0.7 + 0.2 + 0.2 = 1.1"),
        ("[split]\nfolds = 1", "[split] folds must be 0 (one split) or a number of folds of at least 2, got 1"),
        ("[data]\ngenres = []", '[data] genres must be "all" or a list of distinct genre names'),
        ("[data]\ngenres = ['rock', 'rock']", '[data] genres must be "all" or a list of distinct genre names'),
        ("[data]\nfeature_set = 'mfcc'", "[data] feature_set must be one of tutorial"),
        ("[model]\nlog_blocks = ['mel']", "[model] log_blocks must name feature blocks (chroma_stft, melspectrogram,"),
        (
            "[model]\nsummaries = ['mean', 'median']",
            "[model] summaries must be a list of distinct summaries from mean, std, min, max",
        ),
        (
            "[data]\nfeature_set = 'robust'\n[model]\nsummaries = ['min', 'max']",
            "[model] summaries must include one of feature set 'robust''s summaries (mean, std), got min, max",
        ),
        (
            "[split]\nvalidation = 0\ntrain = 0.8\n[train]\nearly_stopping_patience = 5",
            "early_stopping_patience needs validation rows",
        ),
        ("model = 3", "model must be a table, written [model]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_a_wrong_key_or_value_is_refused_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BatchgenreError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(BatchgenreError, match="no such config file"):
        config.load(tmp_path / "nope.toml")


def test_command_line_flags_override_the_file(tmp_path):
    loaded = config.load(write(tmp_path, "[split]\nseed = 1\nfolds = 0\n[train]\nepochs = 64"))
    changed = config.with_overrides(loaded, store="other.zarr", out="runs/x", seed=7, folds=5, repeats=2, epochs=3)
    assert (changed.data.store, changed.output.dir) == ("other.zarr", "runs/x")
    assert (changed.split.seed, changed.split.folds, changed.split.repeats, changed.train.epochs) == (7, 5, 2, 3)
    assert config.with_overrides(loaded) == loaded
    with pytest.raises(
        BatchgenreError, match="--folds must be 0 \\(one split\\) or a number of folds of at least 2, got 1"
    ):
        config.with_overrides(loaded, folds=1)


def test_the_resolved_config_reads_back_equal(tmp_path):
    original = config.with_overrides(config.load(CONFIGS / "three_genres.toml"), seed=11, folds=5)
    again = config.load(write(tmp_path, config.to_toml(original)))
    assert dataclasses.replace(again, source=original.source) == original


def test_the_readme_key_table_is_the_one_the_schema_makes():
    readme = (CONFIGS / "README.md").read_text(encoding="utf-8")
    table = config.key_table()
    assert table in readme, f"configs/README.md's key table is stale; put this in its place:\n{table}"
    defaults = config.Config()
    for table_name in ("data", "split", "model", "train", "output"):
        for key in dataclasses.fields(getattr(defaults, table_name)):
            assert f"| `[{table_name}] {key.name}` |" in table


@pytest.mark.parametrize("table", ["data", "split", "model", "train", "output"])
def test_every_default_is_a_value_its_own_check_accepts(table):
    defaults = config.Config().to_dict()[table]
    raw = {table: defaults}
    assert getattr(config.from_dict(raw), table) == getattr(config.Config(), table)


def train_flags(*argv: str):
    from batchgenre.cli import build_parser

    args = build_parser().parse_args(["train", "run.toml", *argv])
    return {flag.dest: getattr(args, flag.dest) for flag in config.FLAGS}


@pytest.mark.parametrize(
    "argv, table, key, value",
    [
        (["--store", "s.zarr"], "data", "store", "s.zarr"),
        (["--store", "a.zarr", "--store", "b.zarr"], "data", "store", ("a.zarr", "b.zarr")),
        (["--out", "runs/x"], "output", "dir", "runs/x"),
        (["--seed", "7"], "split", "seed", 7),
        (["--weight-seed", "3"], "train", "weight_seed", 3),
        (["--folds", "5"], "split", "folds", 5),
        (["--repeats", "2"], "split", "repeats", 2),
        (["--epochs", "9"], "train", "epochs", 9),
        (["--groups", "artists.csv"], "split", "groups", "artists.csv"),
        (["--robustness"], "train", "robustness", True),
    ],
)
def test_each_train_flag_lands_on_its_key(argv, table, key, value):
    changed = config.with_overrides(config.Config(), **train_flags(*argv))
    assert getattr(getattr(changed, table), key) == value
    assert config.with_overrides(config.Config(), **train_flags()) == config.Config()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--folds", "1"], "--folds must be 0 (one split) or a number of folds of at least 2, got 1"),
        (["--seed", "-1"], "--seed must be an integer of at least 0, got -1"),
        (["--repeats", "0"], "--repeats must be an integer of at least 1, got 0"),
        (
            ["--store", " "],
            '--store must be a non-empty path, or a list of distinct paths, like ["robust.zarr", "musicnn.zarr"], '
            "got ' '",
        ),
        (
            ["--store", "a.zarr", "--store", "a.zarr"],
            '--store must be a non-empty path, or a list of distinct paths, like ["robust.zarr", "musicnn.zarr"], '
            "got ['a.zarr', 'a.zarr']",
        ),
    ],
)
def test_a_bad_flag_value_is_refused_naming_the_flag(argv, message):
    with pytest.raises(BatchgenreError) as caught:
        config.with_overrides(config.Config(), **train_flags(*argv))
    assert str(caught.value) == message


def test_train_help_names_every_flag_and_the_key_it_overrides():
    from tests.conftest import run_cli

    result = run_cli("train", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for flag in config.FLAGS:
        assert flag.name in text and f"(overrides [{flag.table}] {flag.key})" in text


def test_with_overrides_refuses_a_keyword_that_is_no_flag():
    with pytest.raises(TypeError, match="no flag epoch"):
        config.with_overrides(config.Config(), epoch=3)
