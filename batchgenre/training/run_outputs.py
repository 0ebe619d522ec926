"""The run folder (model.keras, metrics.json, config.toml, PNGs), the run facts in metrics.json, the printed table."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from batchgenre import __version__
from batchgenre.classify.novelty import MEMBER as NOVELTY_MEMBER
from batchgenre.classify.novelty import Novelty
from batchgenre.store import AUDIO_KEYS, FeatureStore
from batchgenre.training.config import Config, to_toml
from batchgenre.training.dataset import Rows
from batchgenre.training.evaluation import Mode
from batchgenre.training.fit import Fit, Tested
from batchgenre.training.robustness import ORIGINAL

MODEL_FILE, METRICS_FILE, CONFIG_FILE = "model.keras", "metrics.json", "config.toml"
CONFUSION_FILE, CURVES_FILE, ROBUSTNESS_FILE = "confusion.png", "training.png", "robustness.png"


def run_facts(
    *, mode: Mode, config: Config, store: FeatureStore, rows: Rows, saved: Fit, tested: list[Tested]
) -> dict[str, Any]:
    """What metrics.json says about the run beside its figures: the rows, seeds, epochs, any refit, the versions."""
    import keras
    import sklearn
    import tensorflow as tf
    import zarr

    attrs = store.attrs
    refit: dict[str, Any] | bool = False
    if saved.refit_history is not None:
        refit = {
            "rows": "train + validation",
            "epochs": [t.epochs for t in tested] if mode is Mode.FOLDS else saved.epochs,
            "saved_model_epochs": saved.epochs,
        }
    return {
        "genres": rows.genres,
        "rows": len(rows.index),
        **(
            {"groups": {"metadata": rows.group_source, "count": len(np.unique(rows.group))}}
            if rows.group is not None
            else {}
        ),
        "augmented_copies": len(rows.copies),
        **(
            {
                "windows": {
                    "seconds": store.window,
                    "rows": len(rows.index) + len(rows.windows),
                    # Accuracy, per-genre figures and the confusion matrix count files, as classify-dir does.
                    "scored": "files, each by the mean of its windows' probabilities (model and baseline)",
                }
            }
            if store.window is not None
            else {}
        ),
        "seed": config.split.seed,
        "weight_seed": config.train.weight_seed,
        "saved_model_epochs": saved.epochs,
        # After choosing the epochs on validation rows, each model was fit again, from new weights, on both.
        "refit": refit,
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


def write_outputs(
    run_dir: Path,
    *,
    mode: Mode,
    config: Config,
    store: FeatureStore,
    saved: Fit,
    tested: list[Tested],
    metrics: dict[str, Any],
    novelty: Novelty,
) -> None:
    """Write the saved model and its novelty, metrics.json, the resolved config.toml and the PNGs into ``run_dir``."""
    from batchgenre.training.model import save_model
    from batchgenre.training.plots import plot_confusion, plot_robustness

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
        extra={NOVELTY_MEMBER: novelty.to_bytes()},
    )
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    (run_dir / CONFIG_FILE).write_text(to_toml(config))
    folds = mode is Mode.FOLDS
    plot_confusion(
        np.asarray(metrics["confusion_matrix"]),
        metrics["genres"],
        run_dir / CONFUSION_FILE,
        title=f"{metrics['evaluation']}\n{'mean ' if folds else ''}test accuracy {metrics[mode.accuracy_key]:.3f}",
    )
    _plot_training(run_dir / CURVES_FILE, mode=mode, saved=saved, tested=tested)
    if "robustness" in metrics:
        variants = metrics["robustness"]["variants"]
        plot_robustness(variants, run_dir / ROBUSTNESS_FILE, title=metrics["evaluation"], folds=folds)


def _plot_training(path: Path, *, mode: Mode, saved: Fit, tested: list[Tested]) -> None:
    """The saved model's own fit, drawn solid: the refit when there was one; behind it, the fits that chose epochs."""
    from batchgenre.training.plots import plot_curves

    if mode is Mode.FOLDS:
        behind, note = [(t.history, t.epochs) for t in tested], f"the {len(tested)} cross-validation fits"
    elif saved.refit_history is not None:
        behind, note = [(saved.history, saved.epochs)], "the fit that chose the epochs"
    else:
        behind, note = [], ""
    if saved.refit_history is None:
        label, rows = "saved model", "training rows"
    else:
        label, rows = "saved model (refit)", "train + validation rows"
    plot_curves(
        saved.own_history, saved.epochs, path, saved_label=label, saved_rows=rows, behind=behind, behind_note=note
    )


def summary_table(metrics: dict[str, Any]) -> str:
    """The printed end of a run: per-genre figures, then the model's and the baseline's test accuracy."""
    lines = [f"{'genre':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for genre, m in metrics["per_genre"].items():
        lines.append(f"{genre:<16} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8d}")
    lines += ["", f"test accuracy, {metrics['evaluation']}:"]
    rows = [("model", metrics)] + ([("baseline", metrics["baseline"])] if "baseline" in metrics else [])
    mode = Mode(metrics["mode"])
    if mode is Mode.FOLDS:
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
    several = metrics.get("several_groups", {})
    if "model" in several:
        key = mode.accuracy_key
        figures = ", ".join(f"{w} {several[w][key]:.3f}" for w in ("model", "baseline") if w in several)
        lines += ["", f"on the genres of several groups ({', '.join(several['genres'])}): {figures}"]
    if several.get("single_group_genres"):
        lines.append(
            f"  one group only, so never tested on an unheard one: {', '.join(several['single_group_genres'])}"
        )
    if "robustness" in metrics:
        lines += ["", _robustness_table(metrics["robustness"], mode)]
    return "\n".join(lines)


def _robustness_table(robustness: dict[str, Any], mode: Mode) -> str:
    """Test accuracy per variant of the test clips, the model's beside the baseline's; '-' where a variant has none."""
    variants = robustness["variants"]
    who = [w for w in ("model", "baseline") if w in variants[ORIGINAL]]
    key = mode.accuracy_key
    lines = ["test accuracy on the test clips re-made as users' files come:"]
    lines.append(f"  {'variant':<24}" + "".join(f" {w:>8}" for w in who) + f" {'rows':>6}")
    for entry in variants.values():
        cells = "".join(f" {entry[w][key]:>8.3f}" if w in entry else f" {'-':>8}" for w in who)
        lines.append(f"  {entry['description'][:24]:<24}{cells} {entry['test_rows']:>6d}")
    drops = robustness["worst_drop"]
    lines.append(f"  {'worst drop':<24}" + "".join(f" {drops[w]:>+8.3f}" if w in drops else f" {'-':>8}" for w in who))
    return "\n".join(lines)
