"""Work on the Dask cluster.

Start or join one, featurize's blocks, the loop that runs blocks, the decoding helper, progress.

Imports distributed, and ``batchgenre.audio``, ``features`` and ``store``; never TensorFlow (tests/test_layout.py).
"""
