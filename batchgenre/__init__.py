"""batchgenre: genre features and predictions for whole music collections, in parallel.

The public Python API, which the command line calls too::

    import batchgenre

    batchgenre.featurize("gtzan/", out="features.zarr", workers=2)     # the store, on a Dask cluster
    table = batchgenre.open_store("features.zarr")                      # a pandas DataFrame, a row per file
    report = batchgenre.train("configs/three_genres.toml", store="features.zarr", out="runs/three")
    model = batchgenre.load_model(report.run_dir / "model.keras")
    model.predict("song.mp3")                                           # {"classical": 0.01, ...}
    batchgenre.classify_dir("~/Music", model="runs/three/model.keras", out="results.csv")
    batchgenre.playlists("results.csv", out="playlists/")                # one rock.m3u8 ... per genre
    batchgenre.report("results.csv", out="report.html")                 # a self-contained page to look at
    batchgenre.tag("results.csv", write=True)                          # the genres into the files' tags
    batchgenre.undo_tags("results.csv.tag-journal.jsonl")               # and back
    batchgenre.classify_dir("~/Music", model="msd", out="tags.csv")    # the built-in tagger, no training

Each name imports its heavy parts (librosa, Dask, zarr, TensorFlow) only when called, so
``import batchgenre`` itself stays fast; only ``train`` loads TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgenre.library.api import playlists, report, tag, undo_tags

if TYPE_CHECKING:
    import pandas

    from batchgenre.classify.client import Summary as ClassifySummary
    from batchgenre.classify.genre_model import GenreModel
    from batchgenre.cluster.featurize import Summary as FeaturizeSummary
    from batchgenre.training.trainer import Report

__version__ = "0.1.0"
__all__ = [
    "classify_dir",
    "classify_store",
    "featurize",
    "load_model",
    "open_store",
    "playlists",
    "report",
    "tag",
    "train",
    "undo_tags",
]

PathLike = str | os.PathLike


def featurize(
    folder: PathLike,
    *,
    out: str | os.PathLike = "features.zarr",
    feature_set: str | None = None,
    genres: list[str] | None = None,
    offset: float = 0.0,
    duration: float | None = 30.0,
    window: float | None = None,
    augment: int = 0,
    workers: int = 2,
    scheduler: str | None = None,
    retry_failed: bool = False,
    file_timeout: float | None = None,
    memory_cap: int | None = None,
    labels: str | os.PathLike | None = None,
    min_files: int = 10,
) -> FeaturizeSummary:
    """Compute a feature vector for every audio file under ``folder`` into a zarr store, in parallel on Dask.

    Resumes what the store at ``out`` already holds: finished blocks are skipped, new files appended.
    Files directly in genre folders (``folder/rock/x.wav``) are labelled by them, unless ``labels`` says otherwise.

    Parameters
    ----------
    folder : str or os.PathLike
        The corpus; hidden files are skipped, symlinked folders followed once.
    out : str or os.PathLike
        The store: a path or an fsspec URL (``s3://bucket/features.zarr``).
    feature_set : str, optional
        ``robust`` (the default), ``tutorial``, ``fast``, ``musicnn``, or several joined with ``+``.
    genres : list of str, optional
        Featurize only these genre folders.
    offset, duration : float
        The excerpt of each file, in seconds; ``duration=None`` reads the whole file.
    window : float, optional
        Store one row per ``window`` seconds of the excerpt instead of one per file.
    augment : int
        Altered copies (gain, low-pass, resampling, MP3) per labelled file, as extra rows.
    workers : int
        Processes of a local Dask cluster; ignored with ``scheduler``.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``).
    retry_failed : bool
        Compute again the files that failed before.
    file_timeout : float, optional
        Seconds one file may take before it fails alone (default 300).
    memory_cap : int, optional
        Bytes one file's decoding helper may use before that file fails alone (default 1 GiB).
    labels : {None, "tags"} or path, optional
        Where the genre labels come from: None, genre folders; ``"tags"``, each file's genre tag (and its
        artist tag, stored as its group for train's splits); a CSV path, its ``path,genre[,group]`` rows.
    min_files : int
        With ``labels``, genres of fewer files are left unlabelled.

    Returns
    -------
    batchgenre.cluster.featurize.Summary
        ``store``, rows ``done``, ``failed`` (path, reason) pairs, lost blocks and workers.
    """
    from batchgenre.audio.corpus import Clip
    from batchgenre.cluster.featurize import featurize as run
    from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP
    from batchgenre.features import DEFAULT_FEATURE_SET, get_feature_set

    feature_set = feature_set or DEFAULT_FEATURE_SET
    get_feature_set(feature_set)  # refuse an unknown name before starting a cluster
    labeller = None
    if labels is not None:
        from batchgenre.library.labels import labeller_for

        labeller = labeller_for(labels, min_files=min_files)
    return run(
        Path(folder).expanduser(),
        out=os.fspath(out),
        feature_set=feature_set,
        genres=genres,
        clip=Clip(offset=offset, duration=duration, window=window),
        workers=workers,
        scheduler=scheduler,
        retry_failed=retry_failed,
        file_timeout=DEFAULT_FILE_TIMEOUT if file_timeout is None else file_timeout,
        memory_cap=DEFAULT_MEMORY_CAP if memory_cap is None else memory_cap,
        augment=augment,
        labeller=labeller,
    )


def open_store(path: str | os.PathLike) -> pandas.DataFrame:
    """A feature store as a pandas DataFrame: one row per store row, its facts first, then one column per value.

    Parameters
    ----------
    path : str or os.PathLike
        A store written by :func:`featurize` (a path or an fsspec URL).

    Returns
    -------
    pandas.DataFrame [shape=(rows, 6 + D)]
        ``path`` (relative to the store's root), ``label`` (the genre, or None), ``status`` (``done``,
        ``failed`` or ``pending``), ``error``, ``window``, ``augment``, then the D feature values
        (float32, NaN until done) named as the feature set names them (``mfcc.mean.00``, ...).
        ``DataFrame.attrs`` holds the store's attributes (feature set, genres, root, excerpt, versions).
    """
    from batchgenre.store.table import store_frame

    return store_frame(os.fspath(path))


def train(
    config: PathLike | dict[str, dict[str, Any]],
    *,
    store: PathLike | list[PathLike] | None = None,
    out: PathLike | None = None,
    force: bool = False,
    **overrides: Any,
) -> Report:
    """Train a genre classifier on a feature store as a TOML config says, and write its run folder.

    Parameters
    ----------
    config : str, os.PathLike or dict
        A config such as ``configs/three_genres.toml``, or its tables as a dict
        (``{"data": {"store": "f.zarr"}, "model": {"type": "linear"}}``); a key left out takes its default.
    store : str, os.PathLike or a list of them, optional
        The store, or stores of the same files one per feature set (overrides ``[data] store``).
    out : str or os.PathLike, optional
        The run folder (overrides ``[output] dir``).
    force : bool
        Write over an existing run folder.
    **overrides
        Any other key that ``batchgenre train`` has a flag for, by the flag's name: ``seed=7``,
        ``folds=5``, ``repeats=3``, ``epochs=32``, ``groups="artists.csv"``, ``robustness=True``, ...

    Returns
    -------
    batchgenre.training.trainer.Report
        ``run_dir`` (holding ``model.keras``, ``metrics.json``, plots) and ``metrics`` (a dict).
    """
    from batchgenre.errors import BatchgenreError
    from batchgenre.training import config as configs
    from batchgenre.training.trainer import train as run

    if store is not None:
        overrides["store"] = os.fspath(store) if isinstance(store, str | os.PathLike) else [os.fspath(s) for s in store]
    if out is not None:
        overrides["out"] = os.fspath(out)
    loaded = configs.from_dict(config, source="the config given") if isinstance(config, dict) else configs.load(config)
    if not loaded.output.dir and out is None:
        raise BatchgenreError("a config given as a dict needs [output] dir, or out=, to say where the run goes")
    return run(configs.with_overrides(loaded, **overrides), force=force)


def load_model(path: PathLike, *, windows: int | str | None = None, window: float | None = None) -> GenreModel:
    """A trained model, ready to predict files or samples without TensorFlow.

    Parameters
    ----------
    path : str or os.PathLike
        A ``model.keras`` written by :func:`train`, or ``"msd"``: the built-in model, musicnn's MSD
        tagger, whose genres are its genre tags (``batchgenre.classify.builtin.GENRE_TAGS``).
    windows : int or "all", optional
        Windows spread over each file or clip whose probabilities are averaged (default 5; "all": every one).
    window : float, optional
        Window length in seconds (default: the model's).

    Returns
    -------
    batchgenre.classify.genre_model.GenreModel
        ``.genres``, ``.feature_set`` and ``.predict(path_or_samples, sr=None)``, which returns
        genre -> probability.
    """
    from batchgenre.classify.genre_model import load_genre_model
    from batchgenre.classify.windows import Windows

    return load_genre_model(path, windows=Windows.choose(count=windows, window=window))


def classify_dir(
    folder: PathLike,
    *,
    out: PathLike = "results.csv",
    model: PathLike | None = None,
    windows: int | str | None = None,
    window: float | None = None,
    hop: float | None = None,
    offset: float | None = None,
    duration: float | None = None,
    min_confidence: float | None = None,
    tags: bool = False,
    workers: int = 2,
    scheduler: str | None = None,
    retry_failed: bool = False,
    file_timeout: float | None = None,
    memory_cap: int | None = None,
) -> ClassifySummary:
    """Classify every audio file under ``folder`` into a results table, in parallel on Dask; resumes a killed run.

    Parameters
    ----------
    folder : str or os.PathLike
        The music to classify.
    out : str or os.PathLike
        The results table: ``.csv``, ``.jsonl`` or ``.parquet``; files already in it are skipped.
    model : str or os.PathLike, optional
        A ``model.keras`` written by :func:`train`, or ``"msd"``, the built-in model (musicnn's MSD
        tagger, no training). Default ``runs/three_genres/model.keras``, or the built-in where there is none.
    windows : int or "all", optional
        Windows spread over each file, decoding only those (default 5); "all": every window, ``hop`` apart.
    window, hop : float, optional
        Window length and spacing in seconds (default: the model's window, end to end).
    offset, duration : float, optional
        Classify this one excerpt of each file instead of windows.
    min_confidence : float, optional
        Below this top mean probability a file's genre is ``unknown`` (default 0.7; the built-in's 0.2).
    tags : bool
        Add musicnn's tags: a ``tags`` column (the likely ones, most likely first) and a ``tag_<name>``
        probability column per tag. Needs a model whose features include musicnn; the built-in always adds them.
    workers, scheduler, retry_failed, file_timeout, memory_cap
        As for :func:`featurize`.

    Returns
    -------
    batchgenre.classify.client.Summary
        ``out``, the count ``classified``, ``failed`` (path, reason) pairs, lost workers.
    """
    from batchgenre.classify.builtin import BUILTIN
    from batchgenre.classify.client import classify_dir as run
    from batchgenre.classify.windows import Windows
    from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP

    return run(
        Path(folder).expanduser(),
        model_path=model if model is None or model == BUILTIN else Path(model).expanduser(),
        out=Path(out).expanduser(),
        windows=Windows.choose(count=windows, window=window, hop=hop, offset=offset, duration=duration),
        workers=workers,
        scheduler=scheduler,
        retry_failed=retry_failed,
        file_timeout=DEFAULT_FILE_TIMEOUT if file_timeout is None else file_timeout,
        memory_cap=DEFAULT_MEMORY_CAP if memory_cap is None else memory_cap,
        min_confidence=min_confidence,
        tags=tags,
    )


def classify_store(
    store: PathLike | list[PathLike],
    *,
    out: PathLike = "results.csv",
    model: PathLike | None = None,
    every_row: bool = False,
    min_confidence: float | None = None,
) -> ClassifySummary:
    """Classify the files a feature store holds into a results table, decoding nothing: featurize once, try many models.

    Parameters
    ----------
    store : str, os.PathLike or a list of them
        A store written by :func:`featurize`, or stores of the same files one per feature set.
    out : str or os.PathLike
        The results table, as for :func:`classify_dir`; its paths are relative to the store's folder.
    model : str or os.PathLike, optional
        A ``model.keras`` trained on the store's feature set (default ``runs/three_genres/model.keras``).
    every_row : bool
        Every file of the store; by default only the unlabelled ones (those left to fill in).
    min_confidence : float, optional
        As for :func:`classify_dir`.

    Returns
    -------
    batchgenre.classify.client.Summary
        ``out``, the count ``classified``, ``failed`` (path, reason) pairs.
    """
    from batchgenre.classify.from_store import classify_store as run

    stores = [store] if isinstance(store, str | os.PathLike) else list(store)
    return run(
        [os.fspath(s) for s in stores],
        model_path=model,
        out=Path(out).expanduser(),
        every_row=every_row,
        min_confidence=min_confidence,
    )
