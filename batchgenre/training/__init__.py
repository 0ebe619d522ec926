"""Training.

Configs, seeded splits and the tf.data stream, the Keras model and its fit, evaluation, the run folder, plots.

The only folder that imports TensorFlow or Keras (tests/test_layout.py holds that line);
it may import every other folder.
"""
