"""The tutorial's own pipeline on the folds `batchgenre train --folds 5` uses, to stand beside the configs' figures.

    python -m benchmarks.tutorial_pipeline --store tutorial.zarr

The tutorial's model as it is: the raw 498-value vector (no log10, no standardisation),
Dense(300, relu) -> Dense(200, relu) -> Dense(n, softmax), RMSprop, sparse categorical
cross-entropy, 64 epochs, batch 32. It is fit on each fold's train rows (the tutorial watches its
validation rows but chooses nothing on them) and scored on the fold's test rows. The folds are
train's for each shipped config: repeated stratified 5-fold, 3 repeats, the config's seed, the
config's validation share of the non-test rows held out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from batchgenre.store import FeatureStore
from batchgenre.training import backend
from batchgenre.training.config import load, with_overrides
from batchgenre.training.dataset import read_features, select_rows
from batchgenre.training.evaluation import fold_summary, held_out_share
from batchgenre.training.trainer import plan_splits
from benchmarks.common import machine

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EPOCHS, BATCH = 64, 32


def tutorial_model(n_features: int, n_genres: int):
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(200, activation="relu"),
            keras.layers.Dense(n_genres, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fold_accuracies(store: FeatureStore, config_path: Path, folds: int) -> tuple[list[float], float]:
    """Test accuracy of the tutorial's model on each fold of ``config_path``'s cross-validation, and the test share."""
    cfg = with_overrides(load(config_path), folds=folds)
    rows = select_rows(store, genres=cfg.data.genres)
    splits, _ = plan_splits(rows, cfg.split)
    scores = []
    for split in splits:
        backend.seed_everything(cfg.split.seed)
        model = tutorial_model(store.group["features"].shape[1], len(rows.genres))
        x, y = read_features(store, split.train), rows.labels_of(split.train)
        model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
        predicted = model.predict(read_features(store, split.test), verbose=0).argmax(axis=1)
        scores.append(float(np.mean(predicted == rows.labels_of(split.test))))
    return scores, held_out_share(splits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="a store of the tutorial set (featurize --features tutorial)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--configs", default="three_genres,all_genres", help="comma-separated names in configs/")
    args = p.parse_args()
    store = FeatureStore.open(args.store)
    if store.attrs["feature_set"] != "tutorial":
        found = store.attrs["feature_set"]
        raise SystemExit(f"{args.store} holds feature set {found!r}; the tutorial's model reads 'tutorial'")
    print(f"# the tutorial's pipeline, {EPOCHS} epochs, on the folds of `train --folds {args.folds}`; {machine()}")
    for name in args.configs.split(","):
        scores, share = fold_accuracies(store, CONFIGS / f"{name}.toml", args.folds)
        s = fold_summary("accuracy", scores, share)
        lo, hi = s["accuracy_ci95"]
        print(f"{name:<14} {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} [{lo:.3f}, {hi:.3f}]", flush=True)


if __name__ == "__main__":
    main()
