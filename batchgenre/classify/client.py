"""Batch prediction in the client: whole directories on the Dask cluster, single files and URLs in this process.

Workers compute window features (``windows``); the model is loaded once, here, and predicts a
block's windows in one batch. A file's genre comes from the mean of its windows' probabilities.
Neither side imports TensorFlow: the model runs in NumPy (``serving``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batchgenre import __version__
from batchgenre.audio import SAMPLE_RATE
from batchgenre.classify import serving
from batchgenre.classify.novelty import Novelty
from batchgenre.classify.windows import FileWindows, Windows, classify_block, file_windows
from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP
from batchgenre.errors import BatchgenreError
from batchgenre.store.artifact import check_features

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path("runs/three_genres/model.keras")
UNKNOWN = "unknown"  # the genre of a file no genre reaches --min-confidence for
# Below it a file is called unknown: it flags a fifth of gtzan-mini's other genres through the
# three-genre model and lost none of its own out of fold (README, classify-dir).
DEFAULT_MIN_CONFIDENCE = 0.7


@dataclass
class Summary:
    out: Path
    classified: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    lost_workers: list[str] = field(default_factory=list)


def load_classifier(model_path: str | Path | None) -> serving.Classifier:
    """The model ``--model`` names, ready to predict.

    The string ``"msd"`` is the built-in (``builtin``); a path is a trained model, checked against the
    features this version computes; None is the default path's model, or the built-in where there is none.
    """
    from batchgenre.classify.builtin import BUILTIN, builtin_classifier

    if isinstance(model_path, str) and model_path == BUILTIN:
        return builtin_classifier()
    if model_path is None and not DEFAULT_MODEL.is_file():
        log.info(
            "no trained model at %s: classifying with the built-in model %s (musicnn's MSD tagger); "
            "--model chooses another",
            DEFAULT_MODEL,
            BUILTIN,
        )
        return builtin_classifier()
    model = serving.load_classifier(Path(model_path) if model_path is not None else DEFAULT_MODEL)
    check_features(model.metadata)
    return model


def with_tags(model: serving.Classifier, tags: bool) -> bool:
    """Whether results get tag columns: always from the built-in; with ``tags``, from a model whose set has musicnn.

    musicnn's tags come from the forward pass that computes its features, so they cost nothing more.
    """
    from batchgenre.features import get_feature_set

    if model.reads == "tags":
        return True
    feature_set = model.metadata["feature_set"]
    if tags and "tags" not in get_feature_set(feature_set).extras:
        raise BatchgenreError(
            f"--tags needs a model whose features include musicnn (like robust+musicnn); this one's are "
            f"{feature_set!r}: train on such a store, or use --model msd"
        )
    return tags


def min_confidence_for(model: serving.Classifier, given: float | None) -> float:
    """``given``, else the model's own default (the built-in's), else DEFAULT_MIN_CONFIDENCE."""
    return given if given is not None else model.metadata.get("min_confidence", DEFAULT_MIN_CONFIDENCE)


def result_row(
    item: FileWindows,
    genres: list[str],
    probabilities: np.ndarray | None,
    *,
    min_confidence: float,
    novelty: Novelty | None = None,
    tags: bool = False,
) -> dict:
    """One results row; ``probabilities`` [shape=(windows, genres)] or None for a failed file.

    A file whose top mean probability is below ``min_confidence``, or whose windows' mean novelty
    (their features' distance from the model's training rows) is past the model's threshold, gets
    the genre ``unknown``; its probabilities are kept. With ``tags``, the row also has the tag
    cells of ``item.tags`` (``builtin.tag_cells``).
    """
    from batchgenre.classify.builtin import tag_cells

    if tags:
        return {
            **result_row(item, genres, probabilities, min_confidence=min_confidence, novelty=novelty),
            **tag_cells(item.tags if probabilities is not None else None),
        }
    row = {
        "path": item.path,
        "windows": 0,
        "duration": None,
        "status": "failed",
        "error": item.error,
        "size": item.size,
        "mtime_ns": item.mtime_ns,
    }
    if probabilities is None:
        return {**row, "genre": "", "confidence": None, "novelty": None, **{f"p_{g}": None for g in genres}}
    mean = probabilities.mean(axis=0, dtype=np.float64)
    best = int(np.argmax(mean))
    distance = None if novelty is None else float(novelty.scores(item.features).mean())
    # --min-confidence 0 always names a genre: neither flag applies.
    novel = min_confidence > 0 and distance is not None and distance > novelty.threshold
    known = mean[best] >= min_confidence and not novel
    return {
        **row,
        "genre": genres[best] if known else UNKNOWN,
        "confidence": round(float(mean[best]), 4),
        "novelty": None if distance is None else round(distance, 4),
        **{f"p_{g}": round(float(p), 4) for g, p in zip(genres, mean, strict=True)},
        "windows": len(probabilities),
        "duration": round(item.duration, 2) if item.duration is not None else None,
        "status": "classified",
        "error": "",
    }


def classify_dir(
    root: Path,
    *,
    model_path: Path | None,
    out: Path,
    windows: Windows = Windows(),
    workers: int = 2,
    scheduler: str | None = None,
    retry_failed: bool = False,
    file_timeout: float = DEFAULT_FILE_TIMEOUT,
    memory_cap: int = DEFAULT_MEMORY_CAP,
    min_confidence: float | None = None,
    tags: bool = False,
) -> Summary:
    """Classify every audio file under ``root`` into the results table ``out``, skipping files already in it.

    Windows of no length (``Windows.window`` None) are cut as long as the model's (``Windows.for_model``).
    ``model_path`` as ``load_classifier`` takes it; ``min_confidence`` None is the model's default;
    ``tags`` adds musicnn's tag columns (``with_tags``).
    """
    from batchgenre.audio.corpus import discover_paths, rows_per_chunk
    from batchgenre.classify.builtin import TAG_COLUMNS
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.runner import run_blocks
    from batchgenre.store.paths import locate
    from batchgenre.store.results import ResultsTable, write_meta

    root = Path(root).resolve()
    if not root.is_dir():
        raise BatchgenreError(f"{root}: no such folder")
    relpaths = discover_paths(root)
    if not len(relpaths):
        raise BatchgenreError(f"{root}: no audio files found (looked for wav, flac, ogg, mp3, m4a and more)")
    model = load_classifier(model_path)
    metadata, genres = model.metadata, model.genres
    tags = with_tags(model, tags)
    min_confidence = min_confidence_for(model, min_confidence)
    windows = windows.for_model(metadata.get("window"))
    _warn_if_windows_differ(metadata, windows)
    table = ResultsTable(out, genres=genres, tags=TAG_COLUMNS if tags else ())
    write_meta(
        out,
        {
            "root": str(root),
            "model": metadata.get("builtin") or str(Path(model_path or DEFAULT_MODEL).resolve()),
            "feature_set": metadata["feature_set"],
            "genres": genres,
            "batchgenre": __version__,
        },
    )
    held, classified = table.files()
    skip = held[classified | (not retry_failed)]
    todo = relpaths[locate(relpaths, skip) < 0] if len(skip) else relpaths  # no copy of a fresh run's paths
    del held, classified, skip
    summary = Summary(out=Path(out), skipped=len(relpaths) - len(todo))
    if summary.skipped:
        log.info("%d files already in %s are skipped", summary.skipped, out)

    if len(todo):
        # A local cluster gets no more workers than the files make blocks: one without a block would
        # only take a core from the others while they start (a few songs make one block).
        blocks_at_most = -(-len(todo) // rows_per_chunk(len(todo), workers))
        if scheduler is None and blocks_at_most < workers:
            log.info("%d files make %d block(s): that many of the %d workers start", len(todo), blocks_at_most, workers)
        with connect(workers=min(workers, blocks_at_most), scheduler=scheduler) as client:
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
            size = rows_per_chunk(len(todo), n_workers)
            starts = range(0, len(todo), size)
            log.info("classifying %d files in %d blocks of up to %d", len(todo), len(starts), size)

            def finished(start: int, items: list[FileWindows] | None, error: Exception | None) -> None:
                if error is not None:  # a lost worker: its files get failed rows, the run goes on
                    reason = f"worker failed: {type(error).__name__}: {error}"
                    items = [FileWindows(p, None, error=reason) for p in todo[start : start + size].tolist()]
                _predict_into(table, model, items, min_confidence=min_confidence, tags=tags)

            # A block's paths become a list only as it is submitted: the run holds the corpus as one array.
            summary.lost_workers = run_blocks(
                client,
                classify_block,
                (
                    (start, (str(root), block, metadata["feature_set"], SAMPLE_RATE, windows), len(block))
                    for start in starts
                    for block in [todo[start : start + size].tolist()]
                ),
                total=len(todo),
                options={"file_timeout": file_timeout, "memory_cap": memory_cap},
                on_finished=finished,
            )
    table.finish()
    return count_rows(table, summary)


def count_rows(table, summary: Summary) -> Summary:
    """``summary`` with the finished table's classified files counted and its failed ones listed, by path."""
    summary.classified += int(table.files()[1].sum())
    summary.failed += sorted(table.failures.items())
    return summary


def _predict_into(
    table, model: serving.Classifier, items: list[FileWindows], *, min_confidence: float, tags: bool
) -> None:
    """Predict every window of a block in one batch and record one row per file."""
    good = [getattr(item, model.reads) for item in items if item.features is not None]
    probabilities = model.probabilities(np.concatenate(good)) if good else None
    start = 0
    for item in items:
        rows = None
        if item.features is not None:
            rows, start = probabilities[start : start + len(item.features)], start + len(item.features)
        table.add(result_row(item, model.genres, rows, min_confidence=min_confidence, novelty=model.novelty, tags=tags))


def _warn_if_windows_differ(metadata: dict, windows: Windows) -> None:
    trained = metadata.get("window") or metadata.get("duration")
    if trained and abs(windows.window - trained) > 1e-6:
        log.warning(
            "the model learnt from %g s clips; classifying %g s windows may be less accurate", trained, windows.window
        )


def classify_one(
    source: str,
    *,
    model_path: str | Path | None,
    windows: Windows = Windows(),
    min_confidence: float | None = None,
    tags: bool = False,
) -> dict:
    """Classify one file or URL in this process; returns its results row. Windows of no length get the model's.

    ``model_path``, ``min_confidence`` and ``tags`` as for ``classify_dir``.
    """
    if "://" not in source and not Path(source).is_file():
        raise BatchgenreError(f"{source}: no such file")
    model = load_classifier(model_path)
    tags = with_tags(model, tags)
    min_confidence = min_confidence_for(model, min_confidence)
    metadata = model.metadata
    windows = windows.for_model(metadata.get("window"))
    _warn_if_windows_differ(metadata, windows)
    if "://" in source:
        with tempfile.TemporaryDirectory(prefix="batchgenre-") as tmp:
            path = fetch(source, Path(tmp))
            return _classify_path(path, model, windows, name=source, min_confidence=min_confidence, tags=tags)
    return _classify_path(Path(source), model, windows, name=source, min_confidence=min_confidence, tags=tags)


def _classify_path(
    path: Path, model: serving.Classifier, windows: Windows, *, name: str, min_confidence: float, tags: bool
) -> dict:
    started = time.perf_counter()
    item = file_windows(path, name=name, feature_set=model.metadata["feature_set"], sr=SAMPLE_RATE, windows=windows)
    probabilities = model.probabilities(getattr(item, model.reads)) if item.features is not None else None
    log.debug("%s classified in %.2f s", name, time.perf_counter() - started)
    return result_row(
        item, model.genres, probabilities, min_confidence=min_confidence, novelty=model.novelty, tags=tags
    )


def fetch(url: str, folder: Path) -> Path:
    """Download the audio at ``url`` into ``folder`` with yt-dlp (file:// URLs included) and return its path."""
    try:
        import yt_dlp
    except ImportError:
        raise BatchgenreError("classifying a URL needs yt-dlp: pip install 'batchgenre[url]'") from None
    options = {
        "format": "bestaudio/best",
        "outtmpl": str(folder / "audio.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "enable_file_urls": True,
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
            path = Path(ydl.prepare_filename(info))
    except yt_dlp.utils.DownloadError as error:
        reason = str(error).removeprefix("ERROR: ").splitlines()[0]
        raise BatchgenreError(f"{url}: cannot fetch the audio: {reason}") from None
    if not path.exists():
        found = sorted(folder.iterdir())
        if not found:
            raise BatchgenreError(f"{url}: yt-dlp fetched no file")
        path = found[0]
    return path
