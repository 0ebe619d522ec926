"""Statistics of scored test rows: accuracy and its interval, over one split or over folds; per genre; per variant."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np

from batchgenre.audio.variants import VARIANTS
from batchgenre.training.config import Config, SplitConfig
from batchgenre.training.dataset import Rows, Split
from batchgenre.training.fit import Scored, Tested
from batchgenre.training.robustness import ORIGINAL


class Mode(enum.StrEnum):
    """How a run measures: one seeded train/validation/test split, or repeated K-fold cross-validation."""

    SPLIT = "split"
    FOLDS = "folds"

    @classmethod
    def of(cls, split: SplitConfig) -> Mode:
        return cls.FOLDS if split.folds else cls.SPLIT

    @property
    def accuracy_key(self) -> str:
        """The key of the headline accuracy: a mean over folds, or the one split's."""
        return "accuracy_mean" if self is Mode.FOLDS else "accuracy"


def accuracy_metrics(
    mode: Mode,
    tested: list[Tested],
    *,
    splits: list[Split],
    saved_split: Split,
    config: Config,
    baseline: str,
    grouped: bool,
) -> dict[str, Any]:
    """Test accuracy of the model and of the ``baseline`` (its description), with intervals, and the split sizes.

    ``grouped``: the splits kept groups (artists) whole.

    ``tested`` holds one result per split of ``splits`` (folds), or the one split's result.
    """
    if mode is Mode.FOLDS:
        return _folds_metrics(tested, splits, saved_split, config, baseline=baseline, grouped=grouped)
    return _split_metrics(tested[0], saved_split, grouped=grouped, baseline=baseline)


def several_groups_metrics(mode: Mode, tested: list[Tested], *, rows: Rows, splits: list[Split]) -> dict[str, Any]:
    """Test accuracy of the model and the baseline on the genres whose rows come from more than one group.

    A grouped split tests every genre on groups (artists) its model never heard, but a genre of
    one group has then never been heard at all on its test side: its rows measure nothing but
    failure. The genres of several groups are the ones the figure can speak for.
    """
    several = [i for i, _ in enumerate(rows.genres) if len(np.unique(rows.group[rows.label == i])) > 1]
    report: dict[str, Any] = {
        "genres": [rows.genres[i] for i in several],
        "single_group_genres": [g for i, g in enumerate(rows.genres) if i not in several],
    }
    scored = [t for t in tested if np.isin(t.y_true, several).any()]
    if not scored:
        return report

    def accuracy(t: Tested, predicted: np.ndarray) -> float:
        kept = np.isin(t.y_true, several)
        return float(np.mean(predicted[kept] == t.y_true[kept]))

    who = {"model": lambda t: t.y_pred}
    if scored[0].baseline_pred is not None:
        who["baseline"] = lambda t: t.baseline_pred
    for name, predicted in who.items():
        if mode is Mode.FOLDS:
            report[name] = fold_summary("accuracy", [accuracy(t, predicted(t)) for t in scored], held_out_share(splits))
        else:
            t = scored[0]
            kept = np.isin(t.y_true, several)
            report[name] = {
                "accuracy": accuracy(t, predicted(t)),
                "accuracy_ci95": binomial_interval(predicted(t)[kept] == t.y_true[kept]),
            }
    return report


def held_out_share(splits: list[Split]) -> float:
    """Test rows per row learnt from, over cross-validation ``splits`` (0 for none): the interval's correction."""
    if not splits:
        return 0.0
    # Each fold's model learns from its train and validation rows (refit) or its train rows alone.
    return float(np.mean([len(s.test) / (len(s.train) + len(s.validation)) for s in splits]))


def fold_summary(
    name: str, scores: list[float], test_share: float, *, bounds: tuple[float, float] = (0.0, 1.0)
) -> dict[str, Any]:
    """Mean, standard deviation and a 95% interval of per-fold scores: ``{name}_mean``, ``_std``, ``_ci95``, ``_folds``.

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


def binomial_interval(correct: np.ndarray) -> list[float]:
    """Wilson's 95% interval of an accuracy measured on ``correct.size`` test rows."""
    from scipy.stats import binomtest

    interval = binomtest(int(correct.sum()), int(correct.size)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def robustness_metrics(mode: Mode, tested: list[Tested], *, splits: list[Split]) -> dict[str, Any]:
    """Test accuracy of the model and the baseline on the original test clips and on each variant of them.

    With folds, each variant's figures are over the folds, as the originals' are; with one split,
    an accuracy and its Wilson interval. A split with no usable copy of its test clips as a
    variant is left out of that variant's figures; a variant with none in any split has
    ``test_rows`` 0 and no figures. ``worst_drop`` is the original's accuracy less the lowest
    variant's.
    """
    share = held_out_share(splits)

    def figures(results: list[Scored], baseline: bool) -> dict[str, Any]:
        if mode is Mode.FOLDS:
            return fold_summary("accuracy", [r.baseline_accuracy if baseline else r.accuracy for r in results], share)
        r = results[0]
        return {
            "accuracy": r.baseline_accuracy if baseline else r.accuracy,
            "accuracy_ci95": binomial_interval(r.y_true == (r.baseline_pred if baseline else r.y_pred)),
        }

    key = mode.accuracy_key
    who = ["model"] + (["baseline"] if tested[0].baseline_pred is not None else [])
    report: dict[str, Any] = {}
    for name in (ORIGINAL, *VARIANTS):
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


def per_genre(tested: list[Tested], *, genres: list[str]) -> dict[str, Any]:
    """Precision, recall, F1 and the confusion matrix over every test row of every split."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.concatenate([t.y_true for t in tested])
    y_pred = np.concatenate([t.y_pred for t in tested])
    labels = list(range(len(genres)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "per_genre": {
            g: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for g, p, r, f, s in zip(genres, precision, recall, f1, support, strict=True)
        },
        # Rows: true genre; columns: predicted genre; both in "genres" order.
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _folds_metrics(
    tested: list[Tested], splits: list[Split], saved_split: Split, config: Config, *, baseline: str, grouped: bool
) -> dict[str, Any]:
    share = held_out_share(splits)
    metrics: dict[str, Any] = {
        "mode": Mode.FOLDS.value,
        "evaluation": (
            f"stratified {'group ' if grouped else ''}{config.split.folds}-fold cross-validation "
            f"x {config.split.repeats} repeats"
        ),
        **fold_summary("accuracy", [t.accuracy for t in tested], share),
        "epochs_kept": [t.epochs for t in tested],
    }
    if all(t.validation_accuracy is not None for t in tested):
        # What settings are chosen on: each fold's validation rows, at the epoch kept, before any refit.
        metrics["validation_accuracy_mean"] = float(np.mean([t.validation_accuracy for t in tested]))
    if config.train.baseline:
        baseline_scores = [t.baseline_accuracy for t in tested]
        metrics["baseline"] = {"model": baseline, **fold_summary("accuracy", baseline_scores, share)}
        # Paired by fold: both models met the same test rows, so the difference has less noise than either.
        differences = [t.accuracy - t.baseline_accuracy for t in tested]
        metrics["model_minus_baseline"] = fold_summary("difference", differences, share, bounds=(-1.0, 1.0))
    metrics["split_sizes"] = {"folds": [s.sizes for s in splits], "saved_model": saved_split.sizes}
    return metrics


def _split_metrics(result: Tested, split: Split, *, grouped: bool, baseline: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "mode": Mode.SPLIT.value,
        "evaluation": f"one stratified {'group ' if grouped else ''}train/validation/test split",
        "accuracy": result.accuracy,
        "accuracy_ci95": binomial_interval(result.y_true == result.y_pred),
        "epochs_kept": result.epochs,
    }
    if result.baseline_pred is not None:
        metrics["baseline"] = {
            "model": baseline,
            "accuracy": result.baseline_accuracy,
            "accuracy_ci95": binomial_interval(result.y_true == result.baseline_pred),
        }
    metrics["split_sizes"] = split.sizes
    return metrics
