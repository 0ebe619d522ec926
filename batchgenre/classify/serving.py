"""The trained classifier read from its ``.keras`` file and run in NumPy, without TensorFlow.

Importing TensorFlow and Keras takes most of ten seconds on a small machine, far longer than
classifying a song; a prediction needs only the artifact's few layers, which are a handful of
array operations. ``load_classifier`` reads the zip's ``config.json`` (the layers, in order) and
``model.weights.h5`` (their variables) and refuses, in one line, any layer or activation it does
not know, so that a model it cannot serve exactly is never served approximately.
tests/test_serving.py holds the forward pass to Keras's own ``predict`` on trained models.

The artifact's metadata and the check of its features are in ``batchgenre.store.artifact``.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batchgenre.classify.novelty import MEMBER as NOVELTY
from batchgenre.classify.novelty import Novelty
from batchgenre.errors import BatchgenreError, shown
from batchgenre.store.artifact import read_metadata

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
# keras.backend.epsilon(): the Normalization layer divides by at least this.
KERAS_EPSILON = 1e-7
# SELU's fixed constants (Klambauer et al. 2017), as Keras has them.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

# batchgenre's own layers (training/model.py), registered with Keras under the package name "batchgenre".
CUSTOM_LAYERS = ("Log10Columns", "SelectColumns")

Array = np.ndarray


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exp-free, so no overflow warning for large |x|


def _gelu(x: Array) -> Array:
    from scipy.special import erf  # only gelu needs it; scipy.special takes a while to import

    return 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))  # Keras's default, exact (not tanh) GELU


def _softmax(x: Array) -> Array:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# The activations [model] activation offers and the output's softmax, as Keras computes them with
# their default arguments, by the names a Dense layer's config gives them.
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: np.float32(SELU_SCALE) * np.where(x > 0, x, np.float32(SELU_ALPHA) * np.expm1(np.minimum(x, 0))),
    "gelu": _gelu,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),  # swish's other name
    "tanh": np.tanh,
    "softmax": _softmax,
}


@dataclass(frozen=True)
class Classifier:
    """A model's forward pass: input rows [shape=(n, D)] -> probabilities [shape=(n, genres)].

    ``steps`` are the model's layers in order, each a function of [shape=(n, d)] float32 arrays;
    ``novelty`` measures how far rows lie from its training rows (None for a model trained before it,
    and for the built-in tagger). ``reads`` names the rows it takes of a file's windows
    (``windows.FileWindows``): a trained model its ``features``, the built-in tagger
    (``classify.builtin``) its musicnn ``tags``.
    """

    metadata: dict[str, Any]
    steps: tuple[Callable[[Array], Array], ...]
    novelty: Novelty | None = None
    reads: str = "features"

    @property
    def genres(self) -> list[str]:
        return self.metadata["genres"]

    def probabilities(self, features: Array) -> Array:
        """Genre probabilities [shape=(n, genres), dtype=float32] of input rows [shape=(n, D)], as ``reads`` says."""
        x = np.asarray(features, dtype=np.float32)
        for step in self.steps:
            x = step(x)
        return x


def load_classifier(path: str | Path) -> Classifier:
    """The model at ``path`` (a ``.keras`` file written by `batchgenre train`), ready to predict in NumPy."""
    path = Path(path)
    metadata = read_metadata(path)
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(CONFIG_MEMBER))
            # Models trained before novelty have none: they never call a file unknown for it.
            novelty = Novelty.from_bytes(archive.read(NOVELTY)) if NOVELTY in archive.namelist() else None
            with archive.open(WEIGHTS_MEMBER) as member, h5py.File(member, "r") as weights:
                classifier = Classifier(metadata, _steps(path, config, weights), novelty)
        # One row through every layer: arrays of the wrong shape fail here, not at the first prediction.
        shape = classifier.probabilities(np.ones((1, len(metadata["feature_names"])), np.float32)).shape
    except (KeyError, IndexError, ValueError, TypeError, OSError) as error:  # a member, key or array amiss
        raise BatchgenreError(f"{path}: the model's layers cannot be read ({type(error).__name__}: {error})") from None
    if shape != (1, len(metadata["genres"])):
        raise BatchgenreError(f"{path}: the model gives {shape[-1]} values a row for {len(metadata['genres'])} genres")
    return classifier


def _steps(path: Path, config: dict, weights) -> tuple[Callable[[Array], Array], ...]:
    """One function per layer of a model whose layers form one chain, input first."""
    if config.get("class_name") != "Functional":
        raise BatchgenreError(f"{path}: a {config.get('class_name')!r} model, not a chain of layers batchgenre serves")
    layers = config["config"]["layers"]
    steps = []
    for previous, layer, stored_as in zip([None, *layers[:-1]], layers, _weight_groups(layers), strict=True):
        name, kind, settings = layer["name"], layer["class_name"], layer["config"]
        if previous is not None and _inputs_of(layer) != [previous["name"]]:
            raise BatchgenreError(f"{path}: layer {name!r} does not take the previous layer's output alone")
        if kind in CUSTOM_LAYERS and layer.get("registered_name") != f"batchgenre>{kind}":
            raise BatchgenreError(f"{path}: layer {name!r} is another package's {kind}, not batchgenre's")
        variables = _variables(weights, stored_as)
        if kind in ("InputLayer", "Dropout"):  # dropout is active only while training
            continue
        if kind == "Log10Columns":
            steps.append(_log10_columns(settings, width=_width(layers[0])))
        elif kind == "SelectColumns":
            columns = np.asarray(settings["columns"], dtype=np.intp)
            steps.append(lambda x, columns=columns: x[:, columns])
        elif kind == "Normalization":
            steps.append(_normalization(path, name, settings, variables))
        elif kind == "Dense":
            steps.append(_dense(path, name, settings, variables))
        else:
            raise BatchgenreError(f"{path}: layer {name!r} is a {kind}, which batchgenre cannot serve without Keras")
    return tuple(steps)


def _inputs_of(layer: dict) -> list[str]:
    """Names of the layers whose outputs ``layer`` takes, from its config's inbound nodes."""
    names = []
    for node in layer.get("inbound_nodes", []):
        for arg in node.get("args", []):
            for tensor in arg if isinstance(arg, list) else [arg]:
                names.append(tensor["config"]["keras_history"][0])
    return names


def _weight_groups(layers: list[dict]) -> list[str]:
    """Where ``model.weights.h5`` keeps each layer's variables.

    Keras files them not under the layer's name but under its class's name in snake case,
    numbered from the second of a class on (``dense``, ``dense_1``, ...), in the model's layer order.
    """
    seen: dict[str, int] = {}
    groups = []
    for layer in layers:
        words = re.sub(r"\W+", "", layer["class_name"])
        words = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", words)
        base = re.sub("([a-z])([A-Z])", r"\1_\2", words).lower()
        groups.append(f"{base}_{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return groups


def _variables(weights, group_name: str) -> list[Array]:
    """A layer's saved variables in the order Keras created them ([] for a layer without any)."""
    group = weights.get(f"layers/{group_name}/vars")
    if group is None:
        return []
    return [np.asarray(group[str(i)]) for i in range(len(group))]


def _width(input_layer: dict) -> int:
    return int(input_layer["config"]["batch_shape"][-1])


def _log10_columns(settings: dict, *, width: int) -> Callable[[Array], Array]:
    mask = np.zeros(width, dtype=bool)
    mask[settings["columns"]] = True
    floor = np.float32(settings["floor"])
    return lambda x: np.where(mask, np.log10(np.maximum(x, floor)), x)


def _normalization(path: Path, name: str, settings: dict, variables: list[Array]) -> Callable[[Array], Array]:
    if settings.get("invert") or list(np.atleast_1d(settings.get("axis", -1))) != [-1] or len(variables) < 2:
        raise BatchgenreError(f"{path}: layer {name!r} is a Normalization other than an adapted one over the last axis")
    mean = variables[0].astype(np.float32)
    scale = np.maximum(np.sqrt(variables[1].astype(np.float32)), np.float32(KERAS_EPSILON))
    return lambda x: (x - mean) / scale


def _dense(path: Path, name: str, settings: dict, variables: list[Array]) -> Callable[[Array], Array]:
    activation = settings.get("activation", "linear")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise BatchgenreError(f"{path}: layer {name!r} has activation {shown(activation)}, which batchgenre cannot run")
    kernel = variables[0].astype(np.float32)
    bias = variables[1].astype(np.float32) if settings.get("use_bias", True) else np.float32(0)
    function = ACTIVATIONS[activation]
    return lambda x: function(x @ kernel + bias)
