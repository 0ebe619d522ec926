"""TensorFlow and Keras, imported quietly and seeded so that a run repeats exactly."""

from __future__ import annotations

import os

# Set before TensorFlow is first imported. oneDNN's custom CPU kernels are switched off because
# they print a banner that TF_CPP_MIN_LOG_LEVEL cannot hide and, in TensorFlow's words, may
# change results with the order of floating-point operations.
_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
for _name, _value in _ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)


def tensorflow():
    """The ``tensorflow`` module, imported with the quiet settings above and deterministic kernels."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    return tf


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, so that the same seed gives the same model."""
    import keras

    tensorflow()
    keras.utils.set_random_seed(seed)  # seeds Python's random, NumPy and TensorFlow together
