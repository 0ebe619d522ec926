"""Training configs in TOML: the schema with a default for every key, validation that names the key, overrides.

A config has five tables; any key left out takes its default::

    [data]    store, audio, feature_set, genres, workers
    [split]   train, validation, test, seed, folds, repeats, groups
    [model]   hidden_layers, activation, log_blocks, summaries, dropout, l2
    [train]   optimizer, learning_rate, loss, epochs, batch_size, early_stopping_patience, refit,
              shuffle_buffer, baseline, robustness
    [output]  dir
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from batchgenre.errors import BatchgenreError, shown

OPTIMIZERS = ("rmsprop", "adam", "sgd")
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "swish", "tanh")
LOSSES = ("sparse_categorical_crossentropy",)


@dataclass(frozen=True)
class DataConfig:
    store: str = "features.zarr"  # the zarr feature store to train on
    audio: str = ""  # an audio folder to featurize into `store` first; "" when the store is ready
    feature_set: str = ""  # "": the store's; when `audio` is featurized first, batchgenre's default set
    genres: tuple[str, ...] | str = "all"  # "all": every genre the store holds
    workers: int = 2  # Dask workers when `audio` is featurized first


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2
    seed: int = 0
    folds: int = 0  # 0: one split; K >= 2: repeated stratified K-fold cross-validation
    repeats: int = 3
    groups: str = ""  # a CSV of path,group (an artist, say): splits keep each group on one side; "": none


@dataclass(frozen=True)
class ModelConfig:
    hidden_layers: tuple[int, ...] = (300, 200)
    activation: str = "relu"
    # Feature blocks replaced by their log10 before standardising, where the feature set has them.
    log_blocks: tuple[str, ...] = ("melspectrogram",)
    # Which summaries over time the model reads, of those the feature set has; minima are left out by
    # default: over time they are mostly noise floor (of mel power above all).
    summaries: tuple[str, ...] = ("mean", "std", "max")
    dropout: float = 0.0
    l2: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "rmsprop"
    learning_rate: float = 0.001
    loss: str = "sparse_categorical_crossentropy"
    # Seed of the initial weights and the stream's shuffling; None: the [split] seed. Another
    # weight seed on the same splits shows how much of a figure is the luck of the initial weights.
    weight_seed: int | None = None
    epochs: int = 64
    batch_size: int = 32
    early_stopping_patience: int = 0  # epochs without a lower validation loss before stopping; 0: off
    refit: bool = False  # after early stopping, fit again on train + validation rows for the best epoch count
    shuffle_buffer: int = 1024  # rows
    baseline: bool = True  # also fit a standardised logistic regression on the same rows
    robustness: bool = False  # also score every test clip re-made as each variant in batchgenre.variants


@dataclass(frozen=True)
class OutputConfig:
    dir: str = ""  # "": runs/<config file name without .toml>


@dataclass(frozen=True)
class Config:
    """A validated run config. ``source`` is the file it came from."""

    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    source: str = "<defaults>"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config's tables as plain TOML-able values."""
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in _TABLES}


# -- checks of single values: each returns the value to keep, or raises _Bad --------------------------------


class _Bad(Exception):
    """A value a key does not accept; the message says what the key accepts."""


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Bad(f"must be an integer of at least {minimum}")
        return value

    return check


def _fraction(*, allow_zero: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (0 <= value < 1 if allow_zero else 0 < value < 1):
            raise _Bad("must be a number from 0 up to 1" if allow_zero else "must be a number between 0 and 1")
        return float(value)

    return check


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise _Bad("must be a positive number")
    return float(value)


def _non_negative_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise _Bad("must be a number of 0 or more")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("must be a string")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("must be a non-empty path")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Bad(f"must be one of {', '.join(choices)}")
        return value

    return check


def _feature_set(value: Any) -> str:
    from batchgenre.features import FEATURE_SETS

    if value == "":
        return value
    return _one_of(tuple(FEATURE_SETS))(value)


def _genres(value: Any) -> tuple[str, ...] | str:
    if value == "all":
        return value
    ok = isinstance(value, list) and value and all(isinstance(g, str) and g.strip() for g in value)
    if not ok or len(set(value)) != len(value):
        raise _Bad('must be "all" or a list of distinct genre names, like ["reggae", "classical", "rock"]')
    return tuple(value)


def _hidden_layers(value: Any) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    if not ok:
        raise _Bad("must be a list of positive integers, like [300, 200]")
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise _Bad('must be a list of feature block names, like ["melspectrogram"]')
    return tuple(value)


def _summaries(value: Any) -> tuple[str, ...]:
    from batchgenre.features import SUMMARY_FUNCTIONS

    known = ", ".join(SUMMARY_FUNCTIONS)
    ok = isinstance(value, list) and value and all(v in SUMMARY_FUNCTIONS for v in value)
    if not ok or len(set(value)) != len(value):
        raise _Bad(f'must be a list of distinct summaries from {known}, like ["mean", "max"]')
    return tuple(value)


def _folds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
        raise _Bad("must be 0 (one split) or a number of folds of at least 2")
    return value


_CHECKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "data": {"store": _path, "audio": _text, "feature_set": _feature_set, "genres": _genres, "workers": _integer(1)},
    "split": {
        "train": _fraction(allow_zero=False),
        "validation": _fraction(allow_zero=True),
        "test": _fraction(allow_zero=False),
        "seed": _integer(0),
        "folds": _folds,
        "repeats": _integer(1),
        "groups": _text,
    },
    "model": {
        "hidden_layers": _hidden_layers,
        "activation": _one_of(ACTIVATIONS),
        "log_blocks": _names,
        "summaries": _summaries,
        "dropout": _fraction(allow_zero=True),
        "l2": _non_negative_number,
    },
    "train": {
        "optimizer": _one_of(OPTIMIZERS),
        "learning_rate": _positive_number,
        "loss": _one_of(LOSSES),
        "weight_seed": _integer(0),
        "epochs": _integer(1),
        "batch_size": _integer(1),
        "early_stopping_patience": _integer(0),
        "refit": _boolean,
        "shuffle_buffer": _integer(1),
        "baseline": _boolean,
        "robustness": _boolean,
    },
    "output": {"dir": _text},
}
_TABLES: dict[str, type] = {
    "data": DataConfig,
    "split": SplitConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "output": OutputConfig,
}


def load(path: str | Path) -> Config:
    """Read and validate the config at ``path``; every error names the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BatchgenreError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BatchgenreError(f"{path}: cannot read it ({error})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BatchgenreError(f"{path}: not valid TOML: {error}") from None
    config = from_dict(raw, source=str(path))
    if not config.output.dir:
        config = dataclasses.replace(config, output=OutputConfig(dir=str(Path("runs") / path.stem)))
    return config


def from_dict(raw: dict[str, Any], *, source: str = "<config>") -> Config:
    """Validate parsed TOML: unknown tables and keys are refused with a suggestion, values checked one by one."""
    tables = {}
    for table, values in raw.items():
        if table not in _CHECKS:
            raise BatchgenreError(
                f"{source}: unknown table [{table}]{_did_you_mean(table, _CHECKS)}; the tables are {_listed(_CHECKS)}"
            )
        if not isinstance(values, dict):
            raise BatchgenreError(f"{source}: {table} must be a table, written [{table}]")
        checks = _CHECKS[table]
        checked = {}
        for key, value in values.items():
            if key not in checks:
                suggestion = _did_you_mean(key, checks)
                raise BatchgenreError(f"{source}: unknown key [{table}] {key}{suggestion}; [{table}] takes {_listed(checks)}")
            try:
                checked[key] = checks[key](value)
            except _Bad as bad:
                raise BatchgenreError(f"{source}: [{table}] {key} {bad}, got {shown(value)}") from None
        tables[table] = _TABLES[table](**checked)
    config = Config(**tables, source=source)
    _check_together(config)
    return config


def with_overrides(
    config: Config,
    *,
    store: str | None = None,
    out: str | None = None,
    seed: int | None = None,
    weight_seed: int | None = None,
    folds: int | None = None,
    repeats: int | None = None,
    epochs: int | None = None,
    groups: str | None = None,
    robustness: bool | None = None,
) -> Config:
    """``config`` with the command line's flags in place of its values; None leaves a value as it is."""
    flags = {
        ("data", "store", "--store"): store,
        ("output", "dir", "--out"): out,
        ("split", "seed", "--seed"): seed,
        ("train", "weight_seed", "--weight-seed"): weight_seed,
        ("split", "folds", "--folds"): folds,
        ("split", "repeats", "--repeats"): repeats,
        ("train", "epochs", "--epochs"): epochs,
        ("split", "groups", "--groups"): groups,
        ("train", "robustness", "--robustness"): robustness,
    }
    for (table, key, flag), value in flags.items():
        if value is None:
            continue
        try:
            value = _CHECKS[table][key](value)
        except _Bad as bad:
            raise BatchgenreError(f"{flag} {bad}, got {shown(value)}") from None
        config = dataclasses.replace(config, **{table: dataclasses.replace(getattr(config, table), **{key: value})})
    _check_together(config)
    return config


def _check_together(config: Config) -> None:
    """Rules that involve more than one key."""
    from batchgenre.features import FEATURE_SETS, get_feature_set

    src, split = config.source, config.split
    total = split.train + split.validation + split.test
    if abs(total - 1) > 1e-6:
        raise BatchgenreError(
            f"{src}: [split] train, validation and test must add up to 1, "
            f"got {split.train:g} + {split.validation:g} + {split.test:g} = {total:g}"
        )
    if config.train.early_stopping_patience and not split.validation:
        raise BatchgenreError(
            f"{src}: [train] early_stopping_patience needs validation rows: set [split] validation above 0"
        )
    known_blocks = sorted({name for fs in FEATURE_SETS.values() for name, _ in fs.blocks})
    for name in config.model.log_blocks:
        if name not in known_blocks:
            raise BatchgenreError(
                f"{src}: [model] log_blocks must name feature blocks ({', '.join(known_blocks)}), "
                f"got {name!r}{_did_you_mean(name, known_blocks)}"
            )
    if config.data.feature_set:
        check_feature_set(config, get_feature_set(config.data.feature_set))


def check_feature_set(config: Config, fs) -> None:
    """Refuse a config whose model would read none of the summaries of feature set ``fs``."""
    if not set(config.model.summaries) & set(fs.summaries):
        raise BatchgenreError(
            f"{config.source}: [model] summaries must include one of feature set {fs.name!r}'s summaries "
            f"({', '.join(fs.summaries)}), got {', '.join(config.model.summaries)}"
        )


def to_toml(config: Config) -> str:
    """The resolved config as TOML that :func:`load` reads back to an equal config."""
    lines = [f"# resolved from {config.source}"]
    for table, values in config.to_dict().items():
        lines += ["", f"[{table}]"] + [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)  # ints, and strings with TOML's basic-string escapes


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """TOML-able values; a key left unset (None) is left out, as TOML has no null, and so takes its default."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _listed(choices) -> str:
    return ", ".join(choices)

