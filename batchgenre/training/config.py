"""Training configs in TOML: each key stated once (default, check, help, flag); errors that name the key; overrides.

A config has five tables, ``[data] [split] [model] [train] [output]``; any key left out takes its
default. Each key is one field below, made by :func:`_key`: its checks, the ``train`` command's
override flags and the key table of configs/README.md (:func:`key_table`) all read that field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgenre.errors import BatchgenreError, shown
from batchgenre.training import checks
from batchgenre.training.checks import Bad

OPTIMIZERS = ("rmsprop", "adam", "sgd")
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "swish", "tanh")
MODEL_TYPES = ("mlp", "linear")
LOSSES = ("sparse_categorical_crossentropy",)


# -- the schema -----------------------------------------------------------------------------------------------


def _key(
    default: Any,
    check: Callable[[Any], Any],
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    shown_default: str | None = None,
) -> Any:
    """One config key, stated once.

    Parameters
    ----------
    default : the value an absent key takes (immutable: the tables are frozen and shared).
    check : returns the value to keep from a TOML value, or raises ``Bad`` saying what the key accepts.
    help : what the key means and accepts, in Markdown; the README's table and ``train --help`` show it.
    flag : the ``train`` option that overrides the key (``"--seed"``), if any; ``metavar`` names its value.
    shown_default : how the README states the default when the value itself would mislead (None: it is computed).
    """
    metadata = {"check": check, "help": help, "flag": flag, "metavar": metavar, "shown_default": shown_default}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class DataConfig:
    store: str | tuple[str, ...] = _key(
        "features.zarr",
        checks.stores,
        "the feature store (a path or an fsspec URL); or a list of stores of the same files, one per feature set "
        '(`["robust.zarr", "musicnn.zarr"]`, `--store robust.zarr --store musicnn.zarr`), '
        "read as one store of the sets "
        "combined (`robust+musicnn`)",
        flag="--store",
        metavar="STORE",
    )
    audio: str = _key(
        "",
        checks.text,
        'an audio folder to featurize into `store` first (resumed, so cheap to repeat); `""`: the store is ready',
    )
    feature_set: str = _key(
        "",
        checks.feature_set,
        "a feature set name, which the store must hold, or several joined with `+` (`robust+musicnn`); "
        '`""`: whichever set the store holds (and batchgenre\'s default set when `audio` is featurized first)',
        flag="--features",
        metavar="SET",
    )
    genres: tuple[str, ...] | str = _key(
        "all",
        checks.genres,
        'a list of genres, in the order the model reports them, or `"all"` '
        "(every genre of the store with featurized rows)",
    )
    workers: int = _key(
        2, checks.integer(1), "Dask workers when `audio` is featurized first, or test clips re-made for robustness"
    )


@dataclass(frozen=True)
class SplitConfig:
    train: float = _key(
        0.6, checks.fraction(allow_zero=False), "share of the rows to fit on; train, validation and test add up to 1"
    )
    validation: float = _key(
        0.2, checks.fraction(allow_zero=True), "share held out to choose the epoch and settings on; may be 0"
    )
    test: float = _key(0.2, checks.fraction(allow_zero=False), "share held out for the figures")
    seed: int = _key(
        0,
        checks.integer(0),
        "seed of the splits, and of the shuffling and the weights unless `[train] weight_seed` is set",
        flag="--seed",
    )
    folds: int = _key(
        0,
        checks.folds,
        "0: one split; K >= 2: repeated stratified K-fold cross-validation",
        flag="--folds",
        metavar="K",
    )
    repeats: int = _key(3, checks.integer(1), "repeats of the K-fold", flag="--repeats")
    groups: str = _key(
        "",
        checks.text,
        "a CSV with columns `path` and `group` (an artist, an album): every split keeps each group on one side; "
        '`""`: no groups',
        flag="--groups",
        metavar="CSV",
    )


@dataclass(frozen=True)
class ModelConfig:
    type: str = _key(
        "mlp",
        checks.one_of(MODEL_TYPES),
        "`mlp`: the hidden layers below, then a softmax layer; `linear`: softmax regression on the "
        "standardised features, with `l2` on its weights (hidden_layers, activation and dropout unused)",
    )
    hidden_layers: tuple[int, ...] = _key(
        (300, 200), checks.hidden_layers, "sizes of the hidden Dense layers: positive integers"
    )
    activation: str = _key("relu", checks.one_of(ACTIVATIONS), ", ".join(ACTIVATIONS))
    log_blocks: tuple[str, ...] = _key(
        ("melspectrogram",),
        checks.names,
        "feature blocks replaced by their log10 inside the model, where the set has them",
    )
    # Minima over time are left out by default: they are mostly noise floor (of mel power above all).
    summaries: tuple[str, ...] = _key(
        ("mean", "std", "max"),
        checks.summaries,
        "which summaries over time (mean, std, min, max) the model reads, of those the set has "
        "(`tutorial`, `fast`: mean, min, max; `robust`: mean, std)",
    )
    dropout: float = _key(0.0, checks.fraction(allow_zero=True), "0 to 1, after each hidden layer")
    l2: float = _key(
        0.0,
        checks.non_negative_number,
        "L2 penalty on the weights of the hidden layers (`mlp`) or the softmax layer (`linear`)",
    )


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = _key("rmsprop", checks.one_of(OPTIMIZERS), ", ".join(OPTIMIZERS))
    learning_rate: float = _key(0.001, checks.positive_number, "a positive number")
    loss: str = _key(LOSSES[0], checks.one_of(LOSSES), ", ".join(LOSSES))
    weight_seed: int | None = _key(
        None,
        checks.integer(0),
        "seed of the initial weights and the shuffling alone: another value trains on the same splits, "
        "to see how much of a figure is the luck of the initial weights",
        flag="--weight-seed",
        shown_default="the `[split] seed`",
    )
    epochs: int = _key(64, checks.integer(1), "the most epochs to train", flag="--epochs")
    batch_size: int = _key(32, checks.integer(1), "rows per step")
    early_stopping_patience: int = _key(
        0,
        checks.integer(0),
        "epochs without a lower validation loss before stopping (the best epoch's weights are kept); 0: off",
    )
    refit: bool = _key(
        False,
        checks.boolean,
        "after the run on train rows, fit a fresh model on train + validation rows for the epoch count kept",
    )
    shuffle_buffer: int = _key(
        1024,
        checks.integer(1),
        "rows read and shuffled together, at least (the stream reads up to 64 chunks at a time)",
    )
    baseline: bool = _key(True, checks.boolean, "also fit the logistic-regression baseline on the same rows")
    robustness: bool = _key(
        False,
        checks.boolean,
        "also score every test clip re-made as each variant of batchgenre.audio.variants "
        "(8 and 16 kHz, stereo, MP3, quieter, louder, low-passed)",
        flag="--robustness",
    )


@dataclass(frozen=True)
class OutputConfig:
    dir: str = _key("", checks.text, "the run folder", flag="--out", shown_default="`runs/<config name>`")


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


# The tables are Config's fields that hold one; each table's keys are its fields.
_TABLES: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name != "source"}
_KEYS: dict[str, dict[str, dataclasses.Field]] = {
    table: {f.name: f for f in dataclasses.fields(cls)} for table, cls in _TABLES.items()
}


@dataclass(frozen=True)
class Flag:
    """A ``train`` option that overrides one key.

    ``kind`` is the type the option's text converts to (int, float, str; bool for an on-switch),
    ``many`` whether it may be given more than once (a key that holds one value or a list), and
    ``help`` the key's help, without Markdown, naming the key.
    """

    name: str
    table: str
    key: str
    kind: type
    help: str
    metavar: str | None
    many: bool = False

    @property
    def dest(self) -> str:
        """The keyword :func:`with_overrides` takes it by, as argparse names it (``--weight-seed``: ``weight_seed``)."""
        return self.name.removeprefix("--").replace("-", "_")


def _flags() -> tuple[Flag, ...]:
    """The `train` flags, in the order of the tables and keys; an option's type is its key's, less None."""
    flags = []
    for table, cls in _TABLES.items():
        hints = typing.get_type_hints(cls)
        for key, f in _KEYS[table].items():
            if f.metadata["flag"] is None:
                continue
            kinds = typing.get_args(hints[key]) or (hints[key],)
            kind = next(t for t in kinds if t is not type(None))
            many = any(typing.get_origin(t) is tuple for t in kinds)
            text = f.metadata["help"].replace("`", "")
            described = f"{text} (overrides [{table}] {key})"
            flags.append(Flag(f.metadata["flag"], table, key, kind, described, f.metadata["metavar"], many))
    return tuple(flags)


FLAGS: tuple[Flag, ...] = _flags()


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
        if table not in _KEYS:
            raise BatchgenreError(
                f"{source}: unknown table [{table}]{_did_you_mean(table, _KEYS)}; the tables are {_listed(_KEYS)}"
            )
        if not isinstance(values, dict):
            raise BatchgenreError(f"{source}: {table} must be a table, written [{table}]")
        keys = _KEYS[table]
        checked = {}
        for key, value in values.items():
            if key not in keys:
                suggestion = _did_you_mean(key, keys)
                raise BatchgenreError(
                    f"{source}: unknown key [{table}] {key}{suggestion}; [{table}] takes {_listed(keys)}"
                )
            try:
                checked[key] = keys[key].metadata["check"](value)
            except Bad as bad:
                raise BatchgenreError(f"{source}: [{table}] {key} {bad}, got {shown(value)}") from None
        tables[table] = _TABLES[table](**checked)
    config = Config(**tables, source=source)
    _check_together(config)
    return config


def with_overrides(config: Config, **flags: Any) -> Config:
    """``config`` with the ``train`` command's flags in place of its values.

    Takes each of :data:`FLAGS` by its ``dest`` (``store=``, ``out=``, ``seed=``, ``weight_seed=``, ...);
    None leaves a value as it is. A value the key does not accept is refused naming the flag.
    """
    by_dest = {flag.dest: flag for flag in FLAGS}
    unknown = set(flags) - set(by_dest)
    if unknown:
        raise TypeError(f"with_overrides() takes no flag {_listed(sorted(unknown))}; the flags are {_listed(by_dest)}")
    for dest, value in flags.items():
        if value is None:
            continue
        flag = by_dest[dest]
        if flag.many and isinstance(value, list) and len(value) == 1:
            value = value[0]  # given once: what the key holds when the TOML names one value
        try:
            value = _KEYS[flag.table][flag.key].metadata["check"](value)
        except Bad as bad:
            raise BatchgenreError(f"{flag.name} {bad}, got {shown(value)}") from None
        table = getattr(config, flag.table)
        config = dataclasses.replace(config, **{flag.table: dataclasses.replace(table, **{flag.key: value})})
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
    if config.data.audio and not isinstance(config.data.store, str):
        raise BatchgenreError(
            f"{src}: [data] audio is featurized into one store, but [data] store names {len(config.data.store)}; "
            'name one (and set feature_set = "robust+musicnn" to compute several sets into it), '
            "or leave audio out and featurize each store with `batchgenre featurize --features SET`"
        )
    if config.data.feature_set:
        check_feature_set(config, get_feature_set(config.data.feature_set))


def check_feature_set(config: Config, fs) -> None:
    """Refuse a config whose model would read none of the summaries of feature set ``fs``, or of one of its parts."""
    for part in fs.parts:
        if not set(config.model.summaries) & set(part.summaries):
            raise BatchgenreError(
                f"{config.source}: [model] summaries must include one of feature set {part.name!r}'s summaries "
                f"({', '.join(part.summaries)}), got {', '.join(config.model.summaries)}"
            )


def to_toml(config: Config) -> str:
    """The resolved config as TOML that :func:`load` reads back to an equal config."""
    lines = [f"# resolved from {config.source}"]
    for table, values in config.to_dict().items():
        lines += ["", f"[{table}]"] + [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def key_table() -> str:
    """The Markdown table of every key (its default, its flag, what it accepts) that configs/README.md shows."""
    lines = ["| key | default | flag | accepts |", "|---|---|---|---|"]
    for table, keys in _KEYS.items():
        for key, f in keys.items():
            default = f.metadata["shown_default"] or f"`{_toml_value(f.default)}`"
            flag = f"`{f.metadata['flag']}`" if f.metadata["flag"] else ""
            lines.append(f"| `[{table}] {key}` | {default} | {flag} | {f.metadata['help']} |")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
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
