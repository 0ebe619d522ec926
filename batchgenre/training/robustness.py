"""Test clips as users' files come: every variant of every clip written as a real file and featurized on the cluster.

``batchgenre train --robustness`` scores each test fold's model on these copies of the fold's own
test clips. The copies go through the same decode and feature code as any file (written to a
temporary folder, then ``featurize``), never through a shortcut on feature vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchgenre.audio import load
from batchgenre.audio.corpus import Clip
from batchgenre.audio.variants import VARIANTS, variant_path, write_variant
from batchgenre.cluster.featurize import featurize
from batchgenre.errors import BatchgenreError, describe
from batchgenre.store import DONE, FeatureStore

log = logging.getLogger(__name__)

ORIGINAL = "original"
# Files one task writes the variants of: enough to keep task overhead small, few enough to spread.
FILES_PER_TASK = 8


@dataclass(frozen=True)
class VariantRows:
    """Where each source row's copy sits, per variant.

    source [shape=(n,), dtype=int64]: the source rows asked for, ascending.
    store: the feature store of every copy of every variant.
    rows: for each variant, [shape=(n,), dtype=int64] the row of each source row's copy in
        ``store``, or -1 where the copy could not be made or featurized.
    """

    source: np.ndarray
    store: FeatureStore
    rows: dict[str, np.ndarray]


def featurize_variants(store: FeatureStore, index: np.ndarray, *, workdir: Path, workers: int) -> VariantRows:
    """Write every variant of the files of store rows ``index`` (ascending) under ``workdir`` and featurize them there.

    The copies are made from the same excerpt the store's rows were computed from (its offset,
    duration and rate), on a local cluster of ``workers``, and featurized in one run into one store.
    """
    from batchgenre.cluster.connection import connect

    attrs = store.attrs
    root = Path(attrs["root"])
    paths = [str(p) for p in store.column("path")[index]]
    absent = [p for p in paths if not (root / p).is_file()]
    if absent:
        raise BatchgenreError(
            f"--robustness makes its test clips from the audio the store was featurized from, and "
            f"{len(absent)} of those files are gone, like {root / absent[0]}"
        )
    clip = Clip(sr=attrs["sample_rate"], offset=attrs["offset"], duration=attrs["duration"])
    audio, url = workdir / "audio", str(workdir / "variants.zarr")
    with connect(workers=workers) as client:
        log.info("writing %d variants of %d test clips", len(VARIANTS), len(paths))
        batches = [paths[i : i + FILES_PER_TASK] for i in range(0, len(paths), FILES_PER_TASK)]
        futures = client.map(write_variants, batches, root=root, clip=clip, out=audio, pure=False)
        for batch_errors in client.gather(futures):
            for path, error in batch_errors:
                log.warning("%s: its variants could not be written: %s", path, error)
        # A copy holds just the excerpt, so it is featurized whole.
        featurize(audio, out=url, feature_set=attrs["feature_set"], clip=Clip(sr=clip.sr, duration=None), client=client)
    copies = FeatureStore.open(url)
    done = copies.column("status") == DONE
    at = {str(p): i for i, p in zip(np.flatnonzero(done), copies.column("path")[done], strict=True)}
    rows = {
        name: np.array([at.get(variant_path(Path(name, p), variant).as_posix(), -1) for p in paths], dtype=np.int64)
        for name, variant in VARIANTS.items()
    }
    lost = {name: int(np.sum(r < 0)) for name, r in rows.items() if np.any(r < 0)}
    if lost:
        log.warning("copies that could not be made or featurized, left out of their variant: %s", lost)
    return VariantRows(source=np.asarray(index), store=copies, rows=rows)


def write_variants(paths: list[str], *, root: Path, clip: Clip, out: Path) -> list[tuple[str, str]]:
    """Decode each file's excerpt once and write every variant of it to ``out/<variant>/<path>.<codec>``.

    Runs on a worker.

    Returns (path, reason) of the files whose variants could not be written.
    """
    failed = []
    for path in paths:
        written: list[Path] = []
        try:
            y = load(root / path, sr=clip.sr, offset=clip.offset, duration=clip.duration)
            for name, variant in VARIANTS.items():
                written.append(variant_path(out / name / path, variant))
                write_variant(y, sr=clip.sr, variant=variant, path=out / name / path)
        except Exception as error:  # one file's failure leaves its copies out, not the report
            failed.append((path, describe(error)))
            for copy in written:  # all of a file's variants, or none
                copy.unlink(missing_ok=True)
    return failed
