"""Featurize a corpus into the store: plan its rows into blocks (``plan``), run the blocks, report failures."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batchgenre import __version__
from batchgenre.audio.corpus import Clip, discover_paths, rows_per_chunk
from batchgenre.cluster.plan import FileLabels, blocks_to_run, check_labels, plan, say_if_genres_are_ignored, select
from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP
from batchgenre.errors import BatchgenreError, describe
from batchgenre.features import DEFAULT_FEATURE_SET, get_feature_set
from batchgenre.store import (
    DONE,
    FAILED,
    FOLDER_LABELS,
    MAX_WINDOWS,
    BlockRows,
    FeatureStore,
    rows_to_compute,
    writer_lock,
)
from batchgenre.store.paths import distinct

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What a featurize run leaves in the store."""

    store: str
    done: int  # rows
    failed: list[tuple[str, str]] = field(default_factory=list)
    files: int | None = None  # the files behind the rows, where a file has several (windows, altered copies)
    vanished: list[str] = field(default_factory=list)
    lost_blocks: list[tuple[int, str]] = field(default_factory=list)
    lost_workers: list[str] = field(default_factory=list)


def store_attrs(*, feature_set_name: str, clip: Clip, root: Path, labels: str = FOLDER_LABELS) -> dict:
    """Group attributes that make a store usable without the command line that made it."""
    import librosa

    from batchgenre.features import get_feature_set

    fs = get_feature_set(feature_set_name)
    return {
        "feature_set": fs.name,
        "feature_description": fs.description,
        "feature_params": fs.params,
        "feature_names": fs.names,
        "sample_rate": clip.sr,
        "offset": clip.offset,
        "duration": clip.duration,
        "window": clip.window,
        "root": str(root),
        "genres": [],
        "labels": labels,
        "versions": {"batchgenre": __version__, "librosa": librosa.__version__, "numpy": np.__version__},
    }


def featurize(
    root: Path,
    *,
    out: str,
    feature_set: str = DEFAULT_FEATURE_SET,
    genres: list[str] | None = None,
    clip: Clip = Clip(),
    workers: int = 2,
    scheduler: str | None = None,
    retry_failed: bool = False,
    file_timeout: float = DEFAULT_FILE_TIMEOUT,
    memory_cap: int = DEFAULT_MEMORY_CAP,
    augment: int = 0,
    labeller: Callable[[Path, list[str]], FileLabels] | None = None,
    client=None,
) -> Summary:
    """Featurize every audio file under ``root`` into the store at ``out``, resuming what is there.

    With ``augment`` k, each labelled file also gets k rows made from altered copies of it
    (``variants.augmentation``), marked in the store's ``augment`` column. With ``clip.window``,
    each file (and copy) gets one row per window of its excerpt (``Clip.windows``).

    ``labeller`` labels the files (from their tags, say: ``library.labels``) in place of their genre folders;
    it is given ``root`` and the files' paths under it, before any cluster starts.

    Runs on ``client`` when given (a ``distributed.Client``), else on a cluster made from ``workers``/``scheduler``.
    """
    from batchgenre.cluster.connection import connect

    root = Path(root).resolve()
    if not root.is_dir():
        raise BatchgenreError(f"{root}: no such folder")
    _check_window(clip)
    _check_long_enough(clip, get_feature_set(feature_set))
    if labeller is not None and genres is not None:
        raise BatchgenreError("--genres picks genre folders; with --labels there are none to pick: leave one out")
    relpaths = discover_paths(root)
    if not len(relpaths):
        raise BatchgenreError(f"{root}: no audio files found (looked for wav, flac, ogg, mp3, m4a and more)")
    labels = labeller(root, relpaths.tolist()) if labeller is not None else None
    relpaths, file_genres = select(root, relpaths, genres) if labels is None else (relpaths, labels.genres)
    source = labels.source if labels is not None else FOLDER_LABELS
    attrs = store_attrs(feature_set_name=feature_set, clip=clip, root=root, labels=source)
    # Workers on another machine (``scheduler``) would resolve a relative path in their own folder.
    url = out if "://" in out else str(Path(out).expanduser().absolute())
    lost, workers_lost = [], []
    with writer_lock(url):
        store = FeatureStore.open(url, mode="r+") if FeatureStore.exists(url) else None
        if store is not None:
            store.check_compatible(attrs)
            if store.attrs.get("root") != str(root):
                raise BatchgenreError(
                    f"{out} holds files from {store.attrs.get('root')}, not {root}: choose another --out"
                )
            check_labels(store, source)
            say_if_genres_are_ignored(store, genres)
            # Planned before any cluster starts, so a run with nothing left to do starts none.
            vanished = plan(store, relpaths, file_genres, root, augment=augment, windows=clip.windows, labels=labels)
            status = store.column("status")  # read once: a large store's status is a chunk a block
            todo = blocks_to_run(store, retry_failed, status=status)
        if store is None or todo:
            with (
                contextlib.nullcontext(client)
                if client is not None
                else connect(workers=workers, scheduler=scheduler) as client
            ):
                if store is None:
                    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
                    # Blocks are sized in files, so a block holds its files' windows whole and decodes each file once.
                    chunk = rows_per_chunk(len(relpaths), n_workers) * clip.windows
                    store = FeatureStore.create(
                        url, attrs=attrs, n_features=len(attrs["feature_names"]), rows_per_chunk=chunk
                    )
                    vanished = plan(
                        store, relpaths, file_genres, root, augment=augment, windows=clip.windows, labels=labels
                    )
                    todo = blocks_to_run(store, retry_failed)
                status = None  # the tasks write it
                lost, workers_lost = _run_blocks(
                    client,
                    store,
                    root,
                    todo,
                    retry_failed=retry_failed,
                    file_timeout=file_timeout,
                    memory_cap=memory_cap,
                )
        else:
            log.info("nothing to do: every file in %s is already featurized", store.url)

    status = store.column("status") if status is None else status
    failed_rows = np.flatnonzero(status == FAILED)
    copies = store.column("augment")
    several_rows = store.window is not None or copies.any()  # a file's windows, its altered copies
    # The paths of a large store are read only when the summary needs them.
    paths = store.column("path") if len(failed_rows) or several_rows else None
    failed = []
    if len(failed_rows):
        errors, windows = store.column("error"), store.column("window")
        failed = [
            (str(paths[i]) + _row_part(store.window, int(copies[i]), int(windows[i])), str(errors[i]))
            for i in failed_rows
        ]
    files = distinct(paths[(status == DONE) | (status == FAILED)]) if several_rows else None
    return Summary(
        store=out,
        done=int((status == DONE).sum()),
        failed=failed,
        files=files,
        vanished=vanished,
        lost_blocks=lost,
        lost_workers=workers_lost,
    )


def _check_window(clip: Clip) -> None:
    """Window rows need a fixed excerpt, so that every file has the same number of rows, known when it is planned."""
    if clip.window is None:
        return
    if clip.window <= 0:
        raise BatchgenreError(f"--window must be more than 0 seconds, got {clip.window:g}")
    if clip.duration is None:
        raise BatchgenreError(
            "--window needs a fixed --duration (each file gets duration / window rows), not --duration 0"
        )
    if not 1 <= clip.windows <= MAX_WINDOWS:
        raise BatchgenreError(
            f"--window {clip.window:g} gives {clip.windows} windows in --duration {clip.duration:g}: "
            f"choose a window from {clip.duration / MAX_WINDOWS:g} to {clip.duration:g} seconds"
        )


def _check_long_enough(clip: Clip, fs) -> None:
    """A row shorter than the set can use would fail every file: refuse it before any is decoded."""
    row, option = (clip.window, "--window") if clip.window is not None else (clip.duration, "--duration")
    if row is not None and row < fs.min_seconds:
        raise BatchgenreError(
            f"--features {fs.name} needs at least {fs.min_seconds:.2f} s of audio a row, "
            f"{option} {row:g} gives {row:g} s"
        )


def _row_part(window: float | None, copy: int, j: int) -> str:
    """What a row is of its file, for a failure's line: an altered copy, a window, both or neither."""
    parts = ([f"altered copy {copy}"] if copy else []) + ([f"window {j} at {j * window:g} s"] if window else [])
    return f" ({', '.join(parts)})" if parts else ""


def _run_blocks(
    client,
    store: FeatureStore,
    root: Path,
    todo: dict[int, int],
    *,
    retry_failed: bool,
    file_timeout: float,
    memory_cap: int,
) -> tuple[list[tuple[int, str]], list[str]]:
    """Run the blocks of ``todo`` (block -> rows to compute); returns the blocks not written and the workers lost."""
    from batchgenre.cluster.runner import run_blocks

    attrs = store.attrs
    clip = Clip(sr=attrs["sample_rate"], offset=attrs["offset"], duration=attrs["duration"], window=attrs.get("window"))
    log.info("featurizing %d files in %d blocks of up to %d rows", sum(todo.values()), len(todo), store.rows_per_chunk)
    lost = []

    def finished(block: int, _: int | None, error: Exception | None) -> None:
        if error is not None:
            lost.append((block, f"{type(error).__name__}: {error}"))
            log.error("block %d could not be written: %s", block, error)

    workers_lost = run_blocks(
        client,
        featurize_block,
        ((block, (store.url, block, str(root), attrs["feature_set"], clip), n) for block, n in todo.items()),
        total=sum(todo.values()),
        options={"retry_failed": retry_failed, "file_timeout": file_timeout, "memory_cap": memory_cap},
        on_finished=finished,
    )
    return lost, workers_lost


def featurize_block(
    store_url: str,
    block: int,
    root: str,
    feature_set: str,
    clip: Clip,
    *,
    retry_failed: bool,
    file_timeout: float,
    memory_cap: int = DEFAULT_MEMORY_CAP,
) -> int:
    """Compute the rows of one block that are not done and write the block's chunks; runs on a worker.

    Each file (or altered copy) is decoded once for all its rows, in a sandbox helper, so one that
    hangs or crashes fails alone. Returns the number of files decoded. Errors of single files
    fail their rows; a window that cannot be featurized (silent, say) fails its own row alone.
    """
    from batchgenre.cluster.runner import file_done
    from batchgenre.cluster.sandbox import borrowed

    store = FeatureStore.open(store_url, mode="r+")
    start, stop = store.block_bounds(block)
    rows = BlockRows(
        features=store.column("features", start, stop),
        status=store.column("status", start, stop),
        error=store.column("error", start, stop).astype(object),
    )
    paths, copies = store.column("path", start, stop), store.column("augment", start, stop)
    windows = store.column("window", start, stop)
    todo = np.flatnonzero(rows_to_compute(rows.status, retry_failed=retry_failed) & (paths != ""))
    files: dict[tuple[str, int], list[int]] = {}
    for i in todo:
        files.setdefault((str(paths[i]), int(copies[i])), []).append(int(i))
    with borrowed(memory_cap=memory_cap) as box:
        for (path, copy), at in files.items():
            try:
                results = box.call(
                    extract_file,
                    Path(root),
                    path,
                    feature_set,
                    clip,
                    copy,
                    tuple(int(windows[i]) for i in at),
                    timeout=file_timeout,
                )
            except Exception as error:  # one bad file never stops the block
                results = [describe(error)] * len(at)
            for i, result in zip(at, results, strict=True):
                if isinstance(result, str):
                    rows.features[i], rows.status[i], rows.error[i] = np.nan, FAILED, result
                else:
                    rows.features[i], rows.status[i], rows.error[i] = result, DONE, ""
            file_done()
    store.write_block(block, rows)
    return len(files)


def extract_file(
    root: Path, relpath: str, feature_set: str, clip: Clip, copy: int = 0, windows: tuple[int, ...] = (0,)
) -> list[np.ndarray | str]:
    """Rows of one file, or of its altered ``copy``, from one decode: for each of ``windows``
    (``Clip.window_bounds``), its feature vector [shape=(D,), dtype=float32], or the reason it has none.

    An altered copy is written as a real file and decoded again, so it takes the same path as any
    file. A file that cannot be decoded raises; a window too short or silent to featurize is a reason.
    """
    import tempfile

    from batchgenre.audio import load
    from batchgenre.audio.variants import augmentation, write_variant
    from batchgenre.features import FeatureError, get_feature_set

    y = load(root / relpath, sr=clip.sr, offset=clip.offset, duration=clip.duration)
    if copy:
        with tempfile.TemporaryDirectory(prefix="batchgenre-augment-") as tmp:
            altered = write_variant(y, sr=clip.sr, variant=augmentation(relpath, copy), path=Path(tmp, "copy"))
            y = load(altered, sr=clip.sr, duration=None)
    fs = get_feature_set(feature_set)
    results = []
    for j in windows:
        start, stop = clip.window_bounds(j)
        try:
            results.append(fs.extract(y[start:stop], sr=clip.sr))
        except FeatureError as error:
            results.append(describe(error))
    return results
