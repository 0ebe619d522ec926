"""How well "none of these" works: music of genres a model never saw flagged, its own genres' clips lost.

    python -m benchmarks.novelty --store gtzan-rm.zarr --groups gtzan-mini/artists.csv --known country,jazz,metal

A store of gtzan-mini featurized with ``--features robust+musicnn``. On artist-grouped folds of the
``--known`` genres (each fold's test artists unseen in training), novelty is fitted on the training
rows exactly as ``batchgenre train`` fits it (``classify.novelty.fit_novelty``); a known genre's test
clip past the threshold is lost, an unknown genre's clip past it is flagged. The softmax confidence of
a logistic regression below ``--min-confidence`` is shown beside it, as classify-dir's other flag.
Without ``--groups`` (or where a genre has one artist) folds are stratified, groups being files.
"""

from __future__ import annotations

import argparse
import csv
import statistics

import numpy as np

from batchgenre.classify.novelty import fit_novelty, novelty_columns
from batchgenre.store import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--groups", help="CSV of path,group (the artists); without it folds are stratified")
    parser.add_argument("--known", required=True, help="the genres the model learns, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-confidence", type=float, default=0.7)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    store = FeatureStore.open(args.store)
    names, genres = store.attrs["feature_names"], store.genres
    x = store.column("features")
    label = np.array([genres[i] for i in store.column("label")])
    paths = store.column("path").tolist()
    groups = np.array(paths)
    if args.groups:
        with open(args.groups, newline="", encoding="utf-8") as f:
            artist = {row["path"]: row["group"] for row in csv.DictReader(f)}
        groups = np.array([artist[p] for p in paths])
    known = args.known.split(",")
    inside, outside = np.flatnonzero(np.isin(label, known)), np.flatnonzero(~np.isin(label, known))
    columns = novelty_columns(names)
    flagged, lost, soft_flagged, soft_lost = [], [], [], []
    for seed in range(args.repeats):
        folds = (
            StratifiedGroupKFold(args.folds, shuffle=True, random_state=seed).split(
                x[inside], label[inside], groups[inside]
            )
            if args.groups
            else StratifiedKFold(args.folds, shuffle=True, random_state=seed).split(x[inside], label[inside])
        )
        for train, test in folds:
            train, test = inside[train], inside[test]
            novelty = fit_novelty(x[train], groups[train], names=names, seed=seed)
            lost.append(float((novelty.scores(x[test]) > novelty.threshold).mean()))
            flagged.append(float((novelty.scores(x[outside]) > novelty.threshold).mean()))
            mean, scale = x[train][:, columns].mean(0), x[train][:, columns].std(0) + 1e-6
            softmax = LogisticRegression(max_iter=2000).fit((x[train][:, columns] - mean) / scale, label[train])
            top = softmax.predict_proba((x[np.r_[test, outside]][:, columns] - mean) / scale).max(axis=1)
            soft_lost.append(float((top[: len(test)] < args.min_confidence).mean()))
            soft_flagged.append(float((top[len(test) :] < args.min_confidence).mean()))
    n = len(flagged)
    values = "musicnn" if len(columns) < len(names) else "all"
    print(f"known {args.known}, {'artist-grouped' if args.groups else 'stratified'}, {n} folds, values: {values}")
    for name, f, lo in (("novelty", flagged, lost), (f"softmax < {args.min_confidence:g}", soft_flagged, soft_lost)):
        print(
            f"  {name:<16} flagged {statistics.mean(f):.2f} ± {statistics.stdev(f):.2f}   "
            f"lost {statistics.mean(lo):.2f} ± {statistics.stdev(lo):.2f}"
        )


if __name__ == "__main__":
    main()
