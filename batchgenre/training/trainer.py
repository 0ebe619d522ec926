"""Train as a config says: choose the rows and splits, fit and score on each, then write the run folder.

The work is in three rooms: ``fit`` (the classifier and the baseline), ``evaluation`` (the
statistics of the scores) and ``run_outputs`` (what the run folder holds, and the printed table).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batchgenre.classify.novelty import QUANTILE, K, Novelty, fit_novelty
from batchgenre.errors import BatchgenreError
from batchgenre.features import DEFAULT_FEATURE_SET, FeatureSet, get_feature_set
from batchgenre.store import FeatureStore
from batchgenre.store.joined import JoinedStores, open_stores
from batchgenre.training.config import Config, SplitConfig, check_feature_set
from batchgenre.training.dataset import (
    Rows,
    Split,
    cross_validation,
    final_split,
    read_features,
    select_rows,
    split_rows,
    with_groups,
    with_store_groups,
)
from batchgenre.training.evaluation import Mode, accuracy_metrics, per_genre, robustness_metrics, several_groups_metrics
from batchgenre.training.fit import Models, Tested, describe_baseline, fit_and_test, fit_classifier
from batchgenre.training.robustness import featurize_variants
from batchgenre.training.run_outputs import run_facts, write_outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    run_dir: Path
    mode: Mode
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
    if config.train.robustness and store.window is not None:
        # Its copies are featurized whole (robustness.featurize_variants), so they would not match window rows.
        raise BatchgenreError(
            f"{store.url} holds {store.window:g}-second window rows; --robustness needs a store of whole excerpts"
        )
    # From here on the config names the set the store holds and the weight seed, as does the config.toml it writes.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, feature_set=store.attrs["feature_set"]))
    if config.train.weight_seed is None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, weight_seed=config.split.seed))
    feature_set = get_feature_set(config.data.feature_set)
    check_feature_set(config, feature_set)
    config = _as_used(config, feature_set)
    rows = select_rows(store, genres=config.data.genres)
    if len(rows.genres) < 2:
        raise BatchgenreError(f"{config.source}: [data] genres must name at least two genres, got {rows.genres}")
    cfg = config.split
    # A CSV named by [split] groups wins; else the artists featurize stored (from tags or its CSV), if any.
    rows = with_groups(rows, store, cfg.groups) if cfg.groups else with_store_groups(rows, store)
    mode = Mode.of(cfg)
    splits, saved_split = plan_splits(rows, cfg)

    with contextlib.ExitStack() as stack:
        variants = None
        if config.train.robustness:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchgenre-robustness-")))
            test_rows = rows.index if mode is Mode.FOLDS else saved_split.test
            variants = featurize_variants(store, test_rows, workdir=workdir, workers=config.data.workers)
        models = Models(store, rows, config)  # one model, built once, reset for every fit
        if mode is Mode.FOLDS:
            tested = []
            for i, split in enumerate(splits, 1):
                tested.append(fit_and_test(store, rows, split, config, variants=variants, models=models)[1])
                log.info("fold %d/%d: %s", i, len(splits), _fold_line(tested[-1]))
            held_out = len(saved_split.validation)
            log.info("fitting the model to save on all %d rows (%d of them for validation)", len(rows.index), held_out)
            saved = fit_classifier(store, rows, saved_split, config, models=models)
        else:
            saved, result = fit_and_test(store, rows, saved_split, config, variants=variants, models=models)
            tested = [result]
    baseline = describe_baseline(config)
    metrics = accuracy_metrics(
        mode,
        tested,
        splits=splits,
        saved_split=saved_split,
        config=config,
        baseline=baseline,
        grouped=rows.group is not None,
    )
    if variants is not None:
        _warn_of_unscored_variants(tested)
        metrics["robustness"] = robustness_metrics(mode, tested, splits=splits)
    if rows.group is not None:
        metrics["several_groups"] = several_groups_metrics(mode, tested, rows=rows, splits=splits)
    metrics.update(per_genre(tested, genres=rows.genres))
    metrics.update(run_facts(mode=mode, config=config, store=store, rows=rows, saved=saved, tested=tested))
    novelty = _novelty(store, rows, saved_split, seed=cfg.seed)
    metrics["novelty"] = {
        "measure": f"mean cosine distance to the {K} nearest training rows",
        "values": "musicnn" if len(novelty.columns) < len(feature_set.names) else "all",
        "calibrated_on": "training rows against other artists'"
        if rows.group is not None
        else "training rows against other files'",
        "quantile": QUANTILE,
        "threshold": round(novelty.threshold, 6),
        "reference_rows": len(novelty.reference),
    }
    write_outputs(
        run_dir, mode=mode, config=config, store=store, saved=saved, tested=tested, metrics=metrics, novelty=novelty
    )
    return Report(run_dir=run_dir, mode=mode, metrics=metrics)


def _novelty(store: FeatureStore | JoinedStores, rows: Rows, split: Split, *, seed: int) -> Novelty:
    """Novelty against the saved model's training rows (every window, no altered copy), grouped by artist or file."""
    windows = np.isin(rows.window_of, split.train)
    index = np.concatenate([split.train, rows.windows[windows]])
    source = np.concatenate([split.train, rows.window_of[windows]])
    groups = rows.group[np.searchsorted(rows.index, source)] if rows.group is not None else source
    order = np.argsort(index)
    return fit_novelty(read_features(store, index[order]), groups[order], names=store.attrs["feature_names"], seed=seed)


def plan_splits(rows: Rows, cfg: SplitConfig) -> tuple[list[Split], Split]:
    """The cross-validation splits (none with ``folds = 0``) and the split of the model that is saved."""
    holdout = cfg.validation / (cfg.train + cfg.validation)
    if cfg.folds:
        splits = cross_validation(rows, folds=cfg.folds, repeats=cfg.repeats, validation=holdout, seed=cfg.seed)
        return splits, final_split(rows, validation=holdout, seed=cfg.seed)
    return [], split_rows(rows, train=cfg.train, validation=cfg.validation, test=cfg.test, seed=cfg.seed)


def _open_store(config: Config) -> FeatureStore | JoinedStores:
    """The configured store (or stores, read as one), featurized first from ``[data] audio`` when that is set."""
    urls = [config.data.store] if isinstance(config.data.store, str) else list(config.data.store)
    if config.data.audio:  # into one store: the config refuses audio with several
        from batchgenre.cluster.featurize import featurize

        genres = None if config.data.genres == "all" else list(config.data.genres)
        data = config.data
        feature_set = data.feature_set or DEFAULT_FEATURE_SET
        summary = featurize(Path(data.audio), out=urls[0], feature_set=feature_set, genres=genres, workers=data.workers)
        if summary.failed:
            log.warning("%d files failed to featurize; they are left out", len(summary.failed))
    for url in urls:
        if not FeatureStore.exists(url):
            if Path(url).is_dir():
                raise BatchgenreError(
                    f'{url}: a folder, but not a feature store; to featurize it first, set [data] audio = "{url}"'
                )
            how = f" --features {config.data.feature_set}" if config.data.feature_set and len(urls) == 1 else ""
            raise BatchgenreError(
                f"{url}: no feature store there; make one with `batchgenre featurize AUDIO_FOLDER{how} --out {url}`"
            )
    store = open_stores(urls)
    made_with = store.attrs.get("feature_set")
    if config.data.feature_set and made_with != config.data.feature_set:
        raise BatchgenreError(
            f"{store.url} holds feature set {made_with!r}, but {config.source} asks for {config.data.feature_set!r}: "
            f"set [data] feature_set = {made_with!r} (or leave it out), "
            f"or featurize with --features {config.data.feature_set}"
        )
    return store


def _as_used(config: Config, feature_set: FeatureSet) -> Config:
    """``config`` with ``[model] log_blocks`` and ``summaries`` narrowed to those ``feature_set`` has: what is used.

    The model, the baseline, metrics.json and the config.toml written all read these.
    """
    blocks = {name for name, _ in feature_set.blocks}
    model = dataclasses.replace(
        config.model,
        log_blocks=tuple(b for b in config.model.log_blocks if b in blocks),
        summaries=tuple(s for s in config.model.summaries if s in feature_set.summaries),
    )
    return dataclasses.replace(config, model=model)


def _warn_of_unscored_variants(tested: list[Tested]) -> None:
    """Name each split that had no usable copy of its test clips as a variant: its figures leave that split out."""
    for name in tested[0].variants:
        empty = [i for i, t in enumerate(tested, 1) if len(t.y_true) and not len(t.variants[name].y_true)]
        if empty:
            log.warning(
                "variant %s: no test clip of split(s) %s could be made or featurized; "
                "its figures leave those splits out",
                name,
                ", ".join(map(str, empty)),
            )


def _fold_line(t: Tested) -> str:
    base = "" if t.baseline_pred is None else f", baseline {t.baseline_accuracy:.3f}"
    return f"accuracy {t.accuracy:.3f}{base}, {t.epochs} epochs"
