"""Classification: the client that classifies files and folders, the worker's window features, the model run in NumPy,
and the built-in model (musicnn's MSD tagger, ``builtin``).

Imports ``audio``, ``features``, ``store`` and ``cluster``; never ``training`` or TensorFlow (tests/test_layout.py).
"""
