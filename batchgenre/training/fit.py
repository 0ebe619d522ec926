"""Fitting: the Keras classifier and the linear baseline on a split's rows, and their predictions on its test rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batchgenre.store import FeatureStore
from batchgenre.training import backend  # sets TensorFlow's quiet, deterministic environment before Keras loads
from batchgenre.training.config import Config
from batchgenre.training.dataset import Rows, Split, batches, read_features, stream
from batchgenre.training.robustness import VariantRows


@dataclass(frozen=True)
class Fit:
    """A trained model and the Keras per-epoch metrics of the fits that made it.

    ``history``: the fit on the training rows that watched the validation rows and chose
    ``epochs``. ``refit_history``: the fit again, from new weights, on train + validation rows for
    ``epochs`` epochs, whose model ``model`` then is; None without a refit.
    """

    model: Any
    history: dict[str, list[float]]
    epochs: int  # epochs kept: the best on validation loss with early stopping, else all of them
    refit_history: dict[str, list[float]] | None = None

    @property
    def own_history(self) -> dict[str, list[float]]:
        """The history of the fit that made ``model``: the refit's when there was one."""
        return self.history if self.refit_history is None else self.refit_history


@dataclass(frozen=True)
class Scored:
    """Test files scored: true labels, the model's and the baseline's predictions [shape=(n_test,)].

    A file is one row, or, in a store of window rows, all its windows (see ``score``).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    baseline_pred: np.ndarray | None

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_true == self.y_pred))

    @property
    def baseline_accuracy(self) -> float | None:
        return None if self.baseline_pred is None else float(np.mean(self.y_true == self.baseline_pred))


@dataclass(frozen=True)
class Tested(Scored):
    """One split's test rows scored, its fit's history, and its test clips scored as each variant (--robustness).

    A variant none of whose copies of the split's test clips could be made or featurized has
    an empty ``Scored``.
    """

    history: dict[str, list[float]]
    epochs: int
    variants: dict[str, Scored]

    @property
    def validation_accuracy(self) -> float | None:
        """Accuracy on the split's validation rows at the epoch kept; None without validation rows."""
        values = self.history.get("val_accuracy")
        return float(values[self.epochs - 1]) if values else None


class Models:
    """The one compiled classifier of a run's fits on ``store``'s ``rows``, reset for each fit.

    Keras builds the model and traces its train, test and predict steps once, for the first fit;
    every later fit starts from the weights, optimizer state and random-seed state that the first
    one started from: those a model built anew with the same seed would have, so that a seeded run
    gives the same figures and weights either way. Only its standardisation is adapted anew, to the
    rows of each fit. A fit's model is that of every fit: use it before the next one starts.
    """

    def __init__(self, store: FeatureStore, rows: Rows, config: Config):
        self._store, self._rows, self._config = store, rows, config
        self._model = None
        self._initial: list[np.ndarray] = []
        self.builds = 0  # models built (and traced): one for a whole run

    def fresh(self, index: np.ndarray):
        """The model as newly built, its standardisation adapted on rows ``index`` alone."""
        from batchgenre.training.model import adapt_standardisation, build_model

        adapt_data = _stream(self._store, self._rows, index, self._config)
        if self._model is None:
            import keras

            keras.backend.clear_session()  # models of an earlier run would otherwise pile up in the graph
            backend.seed_everything(self._config.train.weight_seed)
            self._model = build_model(
                n_genres=len(self._rows.genres),
                feature_names=self._store.attrs["feature_names"],
                model=self._config.model,
                train=self._config.train,
                adapt_data=adapt_data,
            )
            # Built now, not in the first fit, so that its state (zeros and step 0) is kept with the weights'.
            self._model.optimizer.build(self._model.trainable_variables)
            self._initial = [v.numpy() for v in self._state()]
            self.builds += 1
        else:
            for variable, value in zip(self._state(), self._initial, strict=True):
                variable.assign(value)
            adapt_standardisation(self._model, adapt_data)
        return self._model

    def _state(self) -> list:
        # Layer variables include the random-seed state of dropout layers; the optimizer's, its step and slots.
        return [*self._model.variables, *self._model.optimizer.variables]


def fit_and_test(
    store: FeatureStore,
    rows: Rows,
    split: Split,
    config: Config,
    *,
    variants: VariantRows | None = None,
    models: Models | None = None,
) -> tuple[Fit, Tested]:
    """Fit on the split and score its test rows, and, with ``variants``, every variant of those test clips.

    ``models``: the run's model to reset and reuse (by default, one of this fit's own).
    """
    fit = fit_classifier(store, rows, split, config, models=models)
    baseline = fit_baseline(store, rows, split, config) if config.train.baseline else None
    test_rows, test_files = rows.file_rows(split.test)
    scored = score(fit.model, baseline, store, test_rows, rows.labels_of(test_rows), config, files=test_files)
    labels = rows.labels_of(split.test)
    by_variant = {}
    if variants is not None:
        at = np.searchsorted(variants.source, split.test)
        for name, rows_of_copies in variants.rows.items():
            copies = rows_of_copies[at]
            made = copies >= 0
            by_variant[name] = score(fit.model, baseline, variants.store, copies[made], labels[made], config)
    return fit, Tested(scored.y_true, scored.y_pred, scored.baseline_pred, fit.history, fit.epochs, by_variant)


def fit_classifier(
    store: FeatureStore, rows: Rows, split: Split, config: Config, *, models: Models | None = None
) -> Fit:
    """Fit on the training rows, stopping early on validation rows if configured; then refit on both if configured.

    ``models``: the run's model to reset and reuse (by default, one of this fit's own).
    """
    import keras

    cfg = config.train
    models = models or Models(store, rows, config)
    train_rows = rows.fit_rows(split.train)
    model = models.fresh(train_rows)
    stopping = cfg.early_stopping_patience
    callbacks = []
    if stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=stopping, restore_best_weights=True)
        )
    validation_rows = rows.file_rows(split.validation)[0]
    history = model.fit(
        _stream(store, rows, train_rows, config, shuffle=True, repeat=True),
        steps_per_epoch=batches(len(train_rows), cfg.batch_size),
        validation_data=_stream(store, rows, validation_rows, config) if len(split.validation) else None,
        epochs=cfg.epochs,
        callbacks=callbacks,
        shuffle=False,  # the stream shuffles
        verbose=0,
    ).history
    epochs = callbacks[0].best_epoch + 1 if stopping else cfg.epochs  # the epoch whose weights were restored
    refit_history = None
    if cfg.refit and len(split.validation):
        both = rows.fit_rows(np.union1d(split.train, split.validation))
        model = models.fresh(both)
        refit_history = model.fit(
            _stream(store, rows, both, config, shuffle=True, repeat=True),
            steps_per_epoch=batches(len(both), cfg.batch_size),
            epochs=epochs,
            shuffle=False,
            verbose=0,
        ).history
    refit = None if refit_history is None else _floats(refit_history)
    return Fit(model=model, history=_floats(history), epochs=epochs, refit_history=refit)


def fit_baseline(store: FeatureStore, rows: Rows, split: Split, config: Config):
    """A standardised logistic regression (a scikit-learn pipeline) fit on all non-test rows and their copies.

    Its first step is the model's own log10 of ``[model] log_blocks``. It has no setting to
    choose on validation rows, so it learns from them too. Its rows are held in memory.
    """
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from batchgenre.training.model import log10_of_blocks

    log10 = log10_of_blocks(store.attrs["feature_names"], blocks=config.model.log_blocks)
    fit_rows = rows.fit_rows(np.union1d(split.train, split.validation))
    pipeline = make_pipeline(
        FunctionTransformer(lambda x: keras.ops.convert_to_numpy(log10(x))),
        StandardScaler(),
        LogisticRegression(max_iter=5000),
    )
    return pipeline.fit(read_features(store, fit_rows), rows.labels_of(fit_rows))


def describe_baseline(config: Config) -> str:
    """What ``fit_baseline`` fits, in words, for a config whose ``[model] log_blocks`` are those its set has."""
    blocks = config.model.log_blocks
    logged = f", log10 of the {', '.join(blocks)} block{'s' if len(blocks) > 1 else ''}" if blocks else ""
    return f"standardised logistic regression (scikit-learn) on the whole vector{logged}"


def score(
    model,
    baseline,
    store: FeatureStore,
    index: np.ndarray,
    labels: np.ndarray,
    config: Config,
    *,
    files: np.ndarray | None = None,
) -> Scored:
    """The model's and the baseline's predictions for rows ``index`` of ``store``, whose true labels are ``labels``.

    With ``files`` [shape=(len(index),)], the file of each row (window rows of one file share it), a
    file is predicted once, as classify-dir predicts it: the genre of the mean of its rows'
    probabilities; the result then holds one entry per file, in the order of ``np.unique(files)``.
    Without it, each row is a file. No rows give an empty ``Scored``: Keras cannot predict on an empty stream.
    """
    if not len(index):
        empty = np.asarray(labels)[:0]
        return Scored(empty, empty, None if baseline is None else empty)
    files = index if files is None else files
    order = np.argsort(index)  # the stream reads rows in store order
    index, labels, files = index[order], labels[order], files[order]
    _, first, file_at = np.unique(files, return_index=True, return_inverse=True)
    batches = stream(store, index, labels, batch_size=config.train.batch_size)
    predicted = _mean_by_file(model.predict(batches, verbose=0), file_at, len(first)).argmax(axis=1)
    baseline_pred = None
    if baseline is not None:
        # Columns of predict_proba are the genres the baseline met in training, which may be fewer than all.
        probabilities = _mean_by_file(baseline.predict_proba(read_features(store, index)), file_at, len(first))
        baseline_pred = baseline.classes_[probabilities.argmax(axis=1)]
    return Scored(labels[first], predicted, baseline_pred)


def _mean_by_file(probabilities: np.ndarray, file_at: np.ndarray, n_files: int) -> np.ndarray:
    """Mean probabilities [shape=(n_files, genres)] of rows, by file.

    The rows are [shape=(n, genres)]; the file of each is ``file_at`` [shape=(n,)].
    """
    sums = np.zeros((n_files, probabilities.shape[1]))
    np.add.at(sums, file_at, probabilities)
    return sums / np.bincount(file_at, minlength=n_files)[:, None]


def _stream(
    store: FeatureStore, rows: Rows, index: np.ndarray, config: Config, *, shuffle: bool = False, repeat: bool = False
):
    # A fit's stream repeats: Keras then keeps one iterator for all its epochs, epoch e reading pass e.
    return stream(
        store,
        index,
        rows.labels_of(index),
        batch_size=config.train.batch_size,
        shuffle_seed=config.train.weight_seed if shuffle else None,
        shuffle_buffer=config.train.shuffle_buffer,
        repeat=repeat,
    )


def _floats(history: dict[str, list]) -> dict[str, list[float]]:
    return {k: [float(v) for v in vs] for k, vs in history.items()}
