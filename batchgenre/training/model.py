"""The classifier and its artifact.

The model: the feature transform and the standardisation live inside it, then the tutorial's
dense layers. The artifact is one ``.keras`` file: Keras writes the model, and an extra
``batchgenre.json`` member of the same zip holds what a prediction must agree with: the genre
list, the feature set, its parameters and value names, the store's sample rate and clip offset
and duration, a summary of the metrics and the versions; ``novelty.npz`` holds the training rows
novelty is measured against (classify/novelty.py). Keras ignores the extra members, so
``keras.saving.load_model(path, safe_mode=True)`` loads the file as it is. Classification reads
it without Keras (classify/serving.py); ``load_model`` is Keras's view of it, for training's checks.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras  # noqa: E402
import numpy as np
from keras import ops  # noqa: E402

from batchgenre.errors import BatchgenreError  # noqa: E402
from batchgenre.store import AUDIO_KEYS  # noqa: E402
from batchgenre.store.artifact import ARTIFACT_FORMAT, METADATA_MEMBER, read_metadata  # noqa: E402
from batchgenre.training import backend  # noqa: F401  (quiet, deterministic TensorFlow before Keras loads it)
from batchgenre.training.config import ModelConfig, TrainConfig  # noqa: E402

# log10 of values below this is taken as log10 of this: librosa's `amin` for decibels.
LOG_FLOOR = 1e-10
# A training column whose standard deviation is below this share of its mean's size is constant
# (chroma maxima are 1.0 in nearly every clip). Dividing by its rounding-noise deviation would
# turn a small difference in a new clip into thousands of standard deviations, so it is left
# unscaled, as scikit-learn's StandardScaler does.
CONSTANT_RELATIVE_STD = 1e-5
_OPTIMIZERS = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


@keras.saving.register_keras_serializable(package="batchgenre")
class Log10Columns(keras.layers.Layer):
    """Replace the values of some feature columns by their base-10 logarithm.

    The tutorial's mel-band summaries span ten orders of magnitude; on a log scale, as decibels
    are, standardisation makes them comparable.

    Parameters
    ----------
    columns : list of int
        positions in the feature vector to transform; values below ``floor`` count as ``floor``.
    """

    def __init__(self, columns: list[int], floor: float = LOG_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]
        self.floor = float(floor)

    def build(self, input_shape) -> None:
        mask = np.zeros(input_shape[-1], dtype=bool)
        mask[self.columns] = True
        self._mask = mask

    def call(self, x):
        return ops.where(self._mask, ops.log10(ops.maximum(x, self.floor)), x)

    def get_config(self) -> dict:
        return {**super().get_config(), "columns": self.columns, "floor": self.floor}


@keras.saving.register_keras_serializable(package="batchgenre")
class SelectColumns(keras.layers.Layer):
    """Keep some feature columns, in the order given: [shape=(b, D)] -> [shape=(b, len(columns))]."""

    def __init__(self, columns: list[int], **kwargs):
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]

    def call(self, x):
        return ops.take(x, self.columns, axis=-1)

    def compute_output_shape(self, input_shape) -> tuple:
        return (*input_shape[:-1], len(self.columns))

    def get_config(self) -> dict:
        return {**super().get_config(), "columns": self.columns}


def columns_of(feature_names: list[str], *, blocks: tuple[str, ...] = (), summaries: tuple[str, ...] = ()) -> list[int]:
    """Positions of the values of some feature blocks or summaries.

    A name reads ``block.summary.row``: ``melspectrogram.max.017`` is in block ``melspectrogram``
    and summary ``max``.
    """
    parts = [name.split(".") for name in feature_names]
    return [i for i, (block, summary, *_) in enumerate(parts) if block in blocks or summary in summaries]


def log10_of_blocks(feature_names: list[str], *, blocks: tuple[str, ...]) -> Log10Columns:
    """The one log10 step: a layer taking the log10 of the values of feature ``blocks`` ([model] log_blocks).

    The model's first layer, and the baseline's first step (called on [shape=(n, D)] arrays),
    so both read the same values.
    """
    return Log10Columns(columns_of(feature_names, blocks=blocks), name="log10")


def build_model(
    *, n_genres: int, feature_names: list[str], model: ModelConfig, train: TrainConfig, adapt_data
) -> keras.Model:
    """Input -> log10 of some blocks -> the chosen summaries -> standardisation -> hidden Dense layers -> softmax.

    ``model.type == "linear"`` has no hidden layers: softmax regression, its weights penalised by ``model.l2``.

    Parameters
    ----------
    feature_names : list of str
        the name of every value of the input vector, as the store holds them.
    adapt_data : tf.data.Dataset of (features [shape=(b, D)], label)
        the training rows; the standardisation's mean and variance come from them alone and
        are saved with the model.

    Returns
    -------
    keras.Model, compiled, mapping [shape=(b, D)] features to [shape=(b, n_genres)] probabilities.
    """
    log10 = log10_of_blocks(feature_names, blocks=model.log_blocks)
    select = SelectColumns(columns_of(feature_names, summaries=model.summaries), name="summaries")
    standardise = keras.layers.Normalization(axis=-1, name="standardise")
    _adapt(standardise, log10, select, adapt_data)

    inputs = keras.Input(shape=(len(feature_names),), name="features")
    x = standardise(select(log10(inputs)))
    regulariser = keras.regularizers.L2(model.l2) if model.l2 else None
    linear = model.type == "linear"
    for i, units in enumerate(() if linear else model.hidden_layers):
        x = keras.layers.Dense(units, activation=model.activation, kernel_regularizer=regulariser, name=f"dense_{i}")(x)
        if model.dropout:
            x = keras.layers.Dropout(model.dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(
        n_genres, activation="softmax", kernel_regularizer=regulariser if linear else None, name="genre"
    )(x)
    net = keras.Model(inputs, outputs, name="genre_classifier")
    optimizer = _OPTIMIZERS[train.optimizer](learning_rate=train.learning_rate)
    net.compile(optimizer=optimizer, loss=train.loss, metrics=["accuracy"])
    return net


def adapt_standardisation(net: keras.Model, adapt_data) -> None:
    """Adapt the standardisation of ``net`` (from ``build_model``) anew to ``adapt_data``, as ``build_model`` did.

    For a model reused from fit to fit: its traced functions read the new mean and variance.
    """
    _adapt(net.get_layer("standardise"), net.get_layer("log10"), net.get_layer("summaries"), adapt_data)


def _adapt(standardise: keras.layers.Normalization, log10: Log10Columns, select: SelectColumns, adapt_data) -> None:
    standardise.adapt(adapt_data.map(lambda x, _: select(log10(x))))
    _leave_constant_columns_unscaled(standardise)
    # finalize_state() made the mean and variance constant tensors, which a traced train step would keep
    # for good; the layer reads its variables instead, so that one traced model follows every adapt. The
    # values are the same: [shape=(D,)] broadcasts over a batch [shape=(b, D)] as [shape=(1, D)] does.
    standardise.mean, standardise.variance = standardise.adapt_mean, standardise.adapt_variance


def _leave_constant_columns_unscaled(layer: keras.layers.Normalization) -> None:
    mean = np.asarray(layer.adapt_mean.numpy())
    variance = np.asarray(layer.adapt_variance.numpy())
    constant = np.sqrt(variance) <= CONSTANT_RELATIVE_STD * np.maximum(np.abs(mean), 1e-3)
    layer.adapt_variance.assign(np.where(constant, 1.0, variance).astype(variance.dtype))
    layer.finalize_state()


# -- the artifact -------------------------------------------------------------------------------------------


def save_model(model, path: str | Path, *, metadata: dict[str, Any], extra: dict[str, bytes] | None = None) -> None:
    """Save ``model`` to ``path`` (a ``.keras`` file) with ``metadata`` (the store's AUDIO_KEYS, ``genres`` and more).

    ``extra`` members (name -> bytes) go into the zip beside it, as the novelty reference does.
    """
    missing = [key for key in (*AUDIO_KEYS, "genres") if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks {', '.join(missing)}")
    model.save(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_MEMBER, json.dumps({"artifact_format": ARTIFACT_FORMAT, **metadata}, indent=2))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)


def load_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The Keras model at ``path``, loaded in safe mode, and its metadata."""
    metadata = read_metadata(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise BatchgenreError(f"{path}: Keras cannot load the model ({type(error).__name__}: {error})") from None
    return model, metadata
