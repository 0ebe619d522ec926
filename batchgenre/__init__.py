"""batchgenre: genre features and predictions for whole music collections, in parallel."""

__version__ = "0.1.0"
