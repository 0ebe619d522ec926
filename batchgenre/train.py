"""Fit, evaluate and save the classifier a config describes, beside a linear baseline on the same rows."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batchgenre import __version__, backend  # sets TensorFlow's quiet, deterministic environment before Keras loads
from batchgenre.config import Config, SplitConfig, check_feature_set, to_toml
from batchgenre.dataset import (
    Rows,
    Split,
    cross_validation,
    final_split,
    read_features,
    select_rows,
    split_rows,
    stream,
    with_groups,
)
from batchgenre.errors import BatchgenreError
from batchgenre.features import DEFAULT_FEATURE_SET, get_feature_set
from batchgenre.robustness import ORIGINAL, VariantRows, featurize_variants
from batchgenre.store import AUDIO_KEYS, FeatureStore
from batchgenre.variants import VARIANTS

log = logging.getLogger(__name__)

MODEL_FILE, METRICS_FILE, CONFIG_FILE = "model.keras", "metrics.json", "config.toml"
CONFUSION_FILE, CURVES_FILE, ROBUSTNESS_FILE = "confusion.png", "training.png", "robustness.png"
BASELINE = "standardised logistic regression (scikit-learn) on the whole vector, log10 of the mel block"


@dataclass(frozen=True)
class Fit:
    """A trained model; ``history`` holds Keras's per-epoch metrics of the run that saw the validation rows."""

    model: Any
    history: dict[str, list[float]]
    epochs: int  # epochs kept: the best on validation loss with early stopping, else all of them


@dataclass(frozen=True)
class Scored:
    """Test rows scored: true labels, the model's and the baseline's predictions [shape=(n_test,)]."""

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
    """One split's test rows scored, the fit's history, and its test clips scored as each variant (--robustness)."""

    history: dict[str, list[float]]
    epochs: int
    variants: dict[str, Scored]

    @property
    def validation_accuracy(self) -> float | None:
        """Accuracy on the split's validation rows at the epoch kept; None without validation rows."""
        values = self.history.get("val_accuracy")
        return float(values[self.epochs - 1]) if values else None


@dataclass(frozen=True)
class Report:
    run_dir: Path
    metrics: dict[str, Any]


def train(config: Config, *, force: bool = False) -> Report:
    """Train as ``config`` says and write the run folder.

    With ``[split] folds`` the figures come from repeated stratified K-fold cross-validation and
    the saved model is then fit on all rows (less the validation share); otherwise from the one
    seeded train/validation/test split whose model is saved.
    """
    run_dir = Path(config.output.dir)
    if run_dir.exists() and not force:
        raise BatchgenreError(
            f"{run_dir}: the run folder exists; pass --force to write over it, or choose another --out"
        )
    store = _open_store(config)
    # From here on the config names the set the store holds and the weight seed, as does the config.toml it writes.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, feature_set=store.attrs["feature_set"]))
    if config.train.weight_seed is None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, weight_seed=config.split.seed))
    check_feature_set(config, get_feature_set(config.data.feature_set))
    rows = select_rows(store, genres=config.data.genres)
    if len(rows.genres) < 2:
        raise BatchgenreError(f"{config.source}: [data] genres must name at least two genres, got {rows.genres}")
    cfg = config.split
    if cfg.groups:
        rows = with_groups(rows, store, cfg.groups)
    splits, saved_split = plan_splits(rows, cfg)

    with contextlib.ExitStack() as stack:
        variants = None
        if config.train.robustness:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchgenre-robustness-")))
            test_rows = rows.index if splits else saved_split.test
            variants = featurize_variants(store, test_rows, workdir=workdir, workers=config.data.workers)
        if splits:
            tested = []
            for i, split in enumerate(splits, 1):
                tested.append(_fit_and_test(store, rows, split, config, variants)[1])
                log.info("fold %d/%d: %s", i, len(splits), _fold_line(tested[-1]))
            held_out = len(saved_split.validation)
            log.info("fitting the model to save on all %d rows (%d of them for validation)", len(rows.index), held_out)
            saved = _fit(store, rows, saved_split, config)
            metrics = _cv_metrics(tested, splits, saved_split, config)
        else:
            saved, result = _fit_and_test(store, rows, saved_split, config, variants)
            tested = [result]
            metrics = _split_metrics(result, saved_split, grouped=bool(cfg.groups))
    if variants is not None:
        metrics["robustness"] = _robustness_metrics(tested, splits)
    metrics.update(_per_genre(tested, rows.genres))
    metrics.update(_run_facts(config, store, rows, saved))
    _write_outputs(run_dir, config, store, saved, tested, metrics)
    return Report(run_dir=run_dir, metrics=metrics)


def plan_splits(rows: Rows, cfg: SplitConfig) -> tuple[list[Split], Split]:
    """The cross-validation splits (none with ``folds = 0``) and the split of the model that is saved."""
    holdout = cfg.validation / (cfg.train + cfg.validation)
    if cfg.folds:
        splits = cross_validation(rows, folds=cfg.folds, repeats=cfg.repeats, validation=holdout, seed=cfg.seed)
        return splits, final_split(rows, validation=holdout, seed=cfg.seed)
    return [], split_rows(rows, train=cfg.train, validation=cfg.validation, test=cfg.test, seed=cfg.seed)


def _open_store(config: Config) -> FeatureStore:
    """The configured store, featurized first from ``[data] audio`` when that is set."""
    url = config.data.store
    if config.data.audio:
        from batchgenre.featurize import featurize

        genres = None if config.data.genres == "all" else list(config.data.genres)
        data = config.data
        feature_set = data.feature_set or DEFAULT_FEATURE_SET
        summary = featurize(Path(data.audio), out=url, feature_set=feature_set, genres=genres, workers=data.workers)
        if summary.failed:
            log.warning("%d files failed to featurize; they are left out", len(summary.failed))
    elif not FeatureStore.exists(url):
        if Path(url).is_dir():
            raise BatchgenreError(
                f'{url}: a folder, but not a feature store; to featurize it first, set [data] audio = "{url}"'
            )
        raise BatchgenreError(f"{url}: no feature store there; make one with `batchgenre featurize`")
    store = FeatureStore.open(url)
    made_with = store.attrs.get("feature_set")
    if config.data.feature_set and made_with != config.data.feature_set:
        raise BatchgenreError(
            f"{url} holds feature set {made_with!r}, but {config.source} asks for {config.data.feature_set!r}: "
            f"set [data] feature_set = {made_with!r} (or leave it out), "
            f"or featurize with --features {config.data.feature_set}"
        )
    return store


def _stream(store: FeatureStore, rows: Rows, index: np.ndarray, config: Config, *, shuffle: bool = False):
    return stream(
        store,
        index,
        rows.labels_of(index),
        batch_size=config.train.batch_size,
        shuffle_seed=config.train.weight_seed if shuffle else None,
        shuffle_buffer=config.train.shuffle_buffer,
    )


def _new_model(store: FeatureStore, rows: Rows, index: np.ndarray, config: Config):
    """A compiled model whose standardisation is adapted on rows ``index`` alone."""
    import keras

    from batchgenre.model import build_model

    keras.backend.clear_session()  # models of earlier folds would otherwise pile up in the graph
    backend.seed_everything(config.train.weight_seed)
    return build_model(
        n_genres=len(rows.genres),
        feature_names=store.attrs["feature_names"],
        model=config.model,
        train=config.train,
        adapt_data=_stream(store, rows, index, config),
    )


def _fit(store: FeatureStore, rows: Rows, split: Split, config: Config) -> Fit:
    """Fit on the training rows, stopping early on validation rows if configured; then refit on both if configured."""
    import keras

    cfg = config.train
    train_rows = rows.fit_rows(split.train)
    model = _new_model(store, rows, train_rows, config)
    stopping = cfg.early_stopping_patience
    callbacks = []
    if stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=stopping, restore_best_weights=True))
    history = model.fit(
        _stream(store, rows, train_rows, config, shuffle=True),
        validation_data=_stream(store, rows, split.validation, config) if len(split.validation) else None,
        epochs=cfg.epochs,
        callbacks=callbacks,
        shuffle=False,  # the stream shuffles
        verbose=0,
    ).history
    epochs = callbacks[0].best_epoch + 1 if stopping else cfg.epochs  # the epoch whose weights were restored
    if cfg.refit and len(split.validation):
        both = rows.fit_rows(np.union1d(split.train, split.validation))
        model = _new_model(store, rows, both, config)
        model.fit(_stream(store, rows, both, config, shuffle=True), epochs=epochs, shuffle=False, verbose=0)
    return Fit(model=model, history={k: [float(v) for v in vs] for k, vs in history.items()}, epochs=epochs)


def _fit_and_test(
    store: FeatureStore, rows: Rows, split: Split, config: Config, variants: VariantRows | None = None
) -> tuple[Fit, Tested]:
    """Fit on the split and score its test rows, and, with ``variants``, every variant of those test clips."""
    fit = _fit(store, rows, split, config)
    baseline = _baseline(store, rows, split) if config.train.baseline else None
    labels = rows.labels_of(split.test)
    scored = _score(fit.model, baseline, store, split.test, labels, config)
    by_variant = {}
    if variants is not None:
        at = np.searchsorted(variants.source, split.test)
        for name, rows_of_copies in variants.rows.items():
            copies = rows_of_copies[at]
            made = copies >= 0
            by_variant[name] = _score(fit.model, baseline, variants.store, copies[made], labels[made], config)
    return fit, Tested(scored.y_true, scored.y_pred, scored.baseline_pred, fit.history, fit.epochs, by_variant)


def _score(model, baseline, store: FeatureStore, index: np.ndarray, labels: np.ndarray, config: Config) -> Scored:
    """The model's and the baseline's predictions for rows ``index`` of ``store``, whose true labels are ``labels``."""
    order = np.argsort(index)  # the stream reads rows in store order
    index, labels = index[order], labels[order]
    batches = stream(store, index, labels, batch_size=config.train.batch_size)
    predicted = model.predict(batches, verbose=0).argmax(axis=1)
    baseline_pred = None if baseline is None else baseline.predict(read_features(store, index))
    return Scored(labels, predicted, baseline_pred)


def _baseline(store: FeatureStore, rows: Rows, split: Split):
    """A standardised logistic regression (a scikit-learn pipeline) fit on all non-test rows and their copies.

    It has no setting to choose on validation rows, so it learns from them too. Its rows are
    held in memory.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from batchgenre.model import LOG_FLOOR, columns_of

    columns = columns_of(store.attrs["feature_names"], blocks=("melspectrogram",))

    def log10(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, columns] = np.log10(np.maximum(x[:, columns], LOG_FLOOR))
        return x

    fit_rows = rows.fit_rows(np.union1d(split.train, split.validation))
    pipeline = make_pipeline(FunctionTransformer(log10), StandardScaler(), LogisticRegression(max_iter=5000))
    return pipeline.fit(read_features(store, fit_rows), rows.labels_of(fit_rows))


# -- metrics ------------------------------------------------------------------------------------------------


def _test_share(splits: list[Split]) -> float:
    """Test rows per row learnt from, over cross-validation ``splits`` (0 for one split): the interval's correction."""
    if not splits:
        return 0.0
    # Each fold's model learns from its train and validation rows (refit) or its train rows alone.
    return float(np.mean([len(s.test) / (len(s.train) + len(s.validation)) for s in splits]))


def _cv_metrics(tested: list[Tested], splits: list[Split], saved_split: Split, config: Config) -> dict[str, Any]:
    test_share = _test_share(splits)
    metrics: dict[str, Any] = {
        "evaluation": (
            f"stratified {'group ' if config.split.groups else ''}{config.split.folds}-fold cross-validation "
            f"x {config.split.repeats} repeats"
        ),
        **_scores("accuracy", [t.accuracy for t in tested], test_share),
        "epochs_kept": [t.epochs for t in tested],
    }
    if all(t.validation_accuracy is not None for t in tested):
        # What settings are chosen on: each fold's validation rows, at the epoch kept, before any refit.
        metrics["validation_accuracy_mean"] = float(np.mean([t.validation_accuracy for t in tested]))
    if config.train.baseline:
        baseline = [t.baseline_accuracy for t in tested]
        metrics["baseline"] = {"model": BASELINE, **_scores("accuracy", baseline, test_share)}
        # Paired by fold: both models met the same test rows, so the difference has less noise than either.
        differences = [t.accuracy - t.baseline_accuracy for t in tested]
        metrics["model_minus_baseline"] = _scores("difference", differences, test_share, bounds=(-1.0, 1.0))
    metrics["split_sizes"] = {"folds": [s.sizes for s in splits], "saved_model": saved_split.sizes}
    return metrics


def _scores(
    name: str, scores: list[float], test_share: float, *, bounds: tuple[float, float] = (0.0, 1.0)
) -> dict[str, Any]:
    """Mean, standard deviation and a 95% interval of per-fold scores.

    Folds of repeated cross-validation share training rows, so their scores are correlated and
    the plain t interval is too narrow. The interval uses Nadeau and Bengio's corrected variance
    (Machine Learning 52, 2003): var * (1/k + n_test/n_train) over k folds.
    """
    from scipy import stats

    values = np.asarray(scores, dtype=float)
    k, mean = len(values), float(values.mean())
    std = float(values.std(ddof=1)) if k > 1 else 0.0
    half = float(stats.t.ppf(0.975, k - 1)) * math.sqrt((1 / k + test_share) * std**2) if k > 1 else 0.0
    return {
        f"{name}_mean": mean,
        f"{name}_std": std,
        f"{name}_ci95": [max(bounds[0], mean - half), min(bounds[1], mean + half)],
        f"{name}_folds": [float(v) for v in values],
    }


def _split_metrics(result: Tested, split: Split, *, grouped: bool) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "evaluation": f"one stratified {'group ' if grouped else ''}train/validation/test split",
        "accuracy": result.accuracy,
        "accuracy_ci95": _binomial_interval(result.y_true == result.y_pred),
        "epochs_kept": result.epochs,
    }
    if result.baseline_pred is not None:
        metrics["baseline"] = {
            "model": BASELINE,
            "accuracy": result.baseline_accuracy,
            "accuracy_ci95": _binomial_interval(result.y_true == result.baseline_pred),
        }
    metrics["split_sizes"] = split.sizes
    return metrics


def _robustness_metrics(tested: list[Tested], splits: list[Split]) -> dict[str, Any]:
    """Test accuracy of the model and the baseline on the original test clips and on each variant of them.

    With folds, each variant's figures are over the folds, as the originals' are; with one split,
    an accuracy and its Wilson interval. ``worst_drop`` is the original's accuracy less the
    lowest variant's.
    """
    folds, test_share = bool(splits), _test_share(splits)

    def figures(results: list[Scored], baseline: bool) -> dict[str, Any]:
        if folds:
            return _scores("accuracy", [r.baseline_accuracy if baseline else r.accuracy for r in results], test_share)
        r = results[0]
        return {
            "accuracy": r.baseline_accuracy if baseline else r.accuracy,
            "accuracy_ci95": _binomial_interval(r.y_true == (r.baseline_pred if baseline else r.y_pred)),
        }

    key = "accuracy_mean" if folds else "accuracy"
    who = ["model"] + (["baseline"] if tested[0].baseline_pred is not None else [])
    report: dict[str, Any] = {}
    for name in (ORIGINAL, *VARIANTS):
        # A split whose every copy failed to featurize has nothing to score for that variant.
        results = [r for r in (t if name == ORIGINAL else t.variants[name] for t in tested) if len(r.y_true)]
        entry = {
            "description": "original clips" if name == ORIGINAL else VARIANTS[name].description,
            "test_rows": sum(len(r.y_true) for r in results),
        }
        if results:
            entry.update({w: figures(results, baseline=w == "baseline") for w in who})
        report[name] = entry
    scored = [v for v in VARIANTS if "model" in report[v]]
    drops = {w: report[ORIGINAL][w][key] - min(report[v][w][key] for v in scored) for w in who} if scored else {}
    return {
        "how": (
            "each test clip re-made as each variant (a real file, featurized on the cluster) "
            "and scored by its split's model"
        ),
        "variants": report,
        "worst_drop": drops,
    }


def _binomial_interval(correct: np.ndarray) -> list[float]:
    """Wilson's 95% interval of an accuracy measured on ``correct.size`` test rows."""
    from scipy.stats import binomtest

    interval = binomtest(int(correct.sum()), int(correct.size)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def _per_genre(tested: list[Tested], genres: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and the confusion matrix over every test row of every split."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.concatenate([t.y_true for t in tested])
    y_pred = np.concatenate([t.y_pred for t in tested])
    labels = list(range(len(genres)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "per_genre": {
            g: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for g, p, r, f, s in zip(genres, precision, recall, f1, support)
        },
        # Rows: true genre; columns: predicted genre; both in "genres" order.
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _run_facts(config: Config, store: FeatureStore, rows: Rows, saved: Fit) -> dict[str, Any]:
    import keras
    import sklearn
    import tensorflow as tf
    import zarr

    attrs = store.attrs
    return {
        "genres": rows.genres,
        "rows": len(rows.index),
        **(
            {"groups": {"metadata": config.split.groups, "count": len(np.unique(rows.group))}}
            if rows.group is not None
            else {}
        ),
        "augmented_copies": len(rows.copies),
        "seed": config.split.seed,
        "weight_seed": config.train.weight_seed,
        "saved_model_epochs": saved.epochs,
        "config": config.source,
        "store": store.url,
        "feature_set": attrs["feature_set"],
        "versions": {
            "batchgenre": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "scikit-learn": sklearn.__version__,
            "zarr": zarr.__version__,
            "store": attrs.get("versions", {}),
        },
    }


def _fold_line(t: Tested) -> str:
    base = "" if t.baseline_pred is None else f", baseline {t.baseline_accuracy:.3f}"
    return f"accuracy {t.accuracy:.3f}{base}, {t.epochs} epochs"


# -- outputs ------------------------------------------------------------------------------------------------


def _write_outputs(
    run_dir: Path, config: Config, store: FeatureStore, saved: Fit, tested: list[Tested], metrics: dict
) -> None:
    from batchgenre.model import save_model
    from batchgenre.plots import plot_confusion, plot_curves, plot_robustness

    run_dir.mkdir(parents=True, exist_ok=True)
    attrs = store.attrs
    summary = {k: v for k, v in metrics.items() if k.startswith("accuracy") and not k.endswith("_folds")}
    save_model(
        saved.model,
        run_dir / MODEL_FILE,
        metadata={
            "genres": metrics["genres"],
            **{key: attrs.get(key) for key in AUDIO_KEYS},
            "store": store.url,
            "rows": metrics["rows"],
            "augmented_copies": metrics["augmented_copies"],
            "metrics": summary,
            "versions": metrics["versions"],
        },
    )
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    (run_dir / CONFIG_FILE).write_text(to_toml(config))
    accuracy = metrics.get("accuracy", metrics.get("accuracy_mean"))
    plot_confusion(
        np.asarray(metrics["confusion_matrix"]),
        metrics["genres"],
        run_dir / CONFUSION_FILE,
        title=f"{metrics['evaluation']}\n{'mean ' if 'accuracy_mean' in metrics else ''}test accuracy {accuracy:.3f}",
    )
    folds = [(t.history, t.epochs) for t in tested] if "accuracy_mean" in metrics else []
    plot_curves(saved.history, saved.epochs, run_dir / CURVES_FILE, folds=folds)
    if "robustness" in metrics:
        plot_robustness(metrics["robustness"]["variants"], run_dir / ROBUSTNESS_FILE, title=metrics["evaluation"])


def summary_table(metrics: dict[str, Any]) -> str:
    """The printed end of a run: per-genre figures, then the model's and the baseline's test accuracy."""
    lines = [f"{'genre':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for genre, m in metrics["per_genre"].items():
        lines.append(f"{genre:<16} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8d}")
    lines += ["", f"test accuracy, {metrics['evaluation']}:"]
    rows = [("model", metrics)] + ([("baseline", metrics["baseline"])] if "baseline" in metrics else [])
    if "accuracy_mean" in metrics:
        lines.append(f"  {'':<16} {'mean':>6} {'std':>6}  95% interval")
        for name, m in rows:
            lo, hi = m["accuracy_ci95"]
            lines.append(f"  {name:<16} {m['accuracy_mean']:>6.3f} {m['accuracy_std']:>6.3f}  [{lo:.3f}, {hi:.3f}]")
        if "model_minus_baseline" in metrics:
            d = metrics["model_minus_baseline"]
            lo, hi = d["difference_ci95"]
            mean, std = d["difference_mean"], d["difference_std"]
            lines.append(f"  {'model - baseline':<16} {mean:>+6.3f} {std:>6.3f}  [{lo:+.3f}, {hi:+.3f}]")
    else:
        lines.append(f"  {'':<16} {'value':>6}  95% interval ({metrics['split_sizes']['test']} test rows)")
        for name, m in rows:
            lo, hi = m["accuracy_ci95"]
            lines.append(f"  {name:<16} {m['accuracy']:>6.3f}  [{lo:.3f}, {hi:.3f}]")
    if "robustness" in metrics:
        lines += ["", _robustness_table(metrics["robustness"])]
    return "\n".join(lines)


def _robustness_table(robustness: dict[str, Any]) -> str:
    """Test accuracy per variant of the test clips, the model's beside the baseline's."""
    variants = robustness["variants"]
    who = [w for w in ("model", "baseline") if w in variants[ORIGINAL]]
    key = "accuracy_mean" if "accuracy_mean" in variants[ORIGINAL]["model"] else "accuracy"
    lines = ["test accuracy on the test clips re-made as users' files come:"]
    lines.append(f"  {'variant':<24}" + "".join(f" {w:>8}" for w in who) + f" {'rows':>6}")
    for entry in variants.values():
        cells = "".join(f" {entry[w][key]:>8.3f}" if w in entry else f" {'-':>8}" for w in who)
        lines.append(f"  {entry['description'][:24]:<24}{cells} {entry['test_rows']:>6d}")
    drops = robustness["worst_drop"]
    lines.append(f"  {'worst drop':<24}" + "".join(f" {drops[w]:>+8.3f}" if w in drops else f" {'-':>8}" for w in who))
    return "\n".join(lines)
