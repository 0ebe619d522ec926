"""Accuracy of each feature set on altered copies of the test clips, for a model trained on the originals.

    python -m benchmarks.robustness_baseline --corpus ../shared/data/gtzan-mini

Every variant in batchgenre.audio.variants of every clip is written as a real file and decoded through
batchgenre.audio.load, as a user's file would be. The yardstick is StandardScaler +
LogisticRegression(max_iter=5000) trained on the original clips of each training fold
(RepeatedStratifiedKFold, 5 folds x 3 repeats, random_state=0) and tested on every variant of the
test-fold clips, for three genres (reggae, classical, rock: the ones loudness alone separates in
gtzan-mini) and for all of them. Variant files and feature vectors are kept in --workdir, so a
rerun costs only the cross-validation.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import batchgenre
from batchgenre.audio import load
from batchgenre.audio.variants import VARIANTS, write_variant
from batchgenre.cluster.connection import tune_worker
from batchgenre.features import FeatureSet, get_feature_set
from benchmarks.common import corpus_files, machine, parser

THREE_GENRES = ("reggae", "classical", "rock")
ORIGINAL = "original"
SR = 22050


def variant_files(files: list[Path], *, corpus: Path, workdir: Path) -> dict[str, list[Path]]:
    """Every clip as itself and as each variant, written once under ``workdir / "variants"``.

    A variant's folder is named after its definition too, so changing one writes its files again.
    """
    paths = {ORIGINAL: list(files)}
    for name, variant in VARIANTS.items():
        paths[name] = []
        folder = workdir / "variants" / f"{name}-{hashlib.sha256(repr(variant).encode()).hexdigest()[:8]}"
        for f in tqdm(files, desc=f"variant {name}", unit="file", leave=False):
            written = (folder / f.relative_to(corpus)).with_suffix("." + variant.codec)
            if not written.exists():
                y, sr = sf.read(f, dtype="float32", always_2d=True)
                # A partly written file from an interrupted run must not survive as a cached one.
                partial = written.with_name("partial-" + written.stem)  # write_variant adds the extension
                write_variant(y.mean(axis=1), sr=sr, variant=variant, path=partial).rename(written)
            paths[name].append(written)
    return paths


def _cache_key(fs: FeatureSet, files: list[Path]) -> str:
    """Changes with the set's definition, the source of its frames function, the versions and the files.

    A change elsewhere (a helper, a constant not in ``params``) needs --fresh.
    """
    import librosa

    blob = json.dumps(
        [fs.name, fs.params, fs.names, fs.description, inspect.getsource(fs.frames), librosa.__version__,
         batchgenre.__version__, [str(f) for f in files]],
        sort_keys=True,
        default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def vectors(
    fs: FeatureSet, paths: dict[str, list[Path]], *, workdir: Path, fresh: bool = False
) -> tuple[dict[str, np.ndarray], float | None]:
    """Feature vectors [shape=(clips, fs.size)] per variant, and seconds per file (None when read from the cache)."""
    cache = workdir / f"vectors-{fs.name}-{_cache_key(fs, [f for group in paths.values() for f in group])}.npz"
    if cache.exists() and not fresh:
        with np.load(cache) as z:
            return {name: z[name] for name in paths}, None
    out, started = {}, time.perf_counter()
    for name, files in paths.items():
        progress = tqdm(files, desc=f"{fs.name} {name}", unit="file", leave=False)
        out[name] = np.stack([fs.extract(load(f), sr=SR) for f in progress])
    seconds = (time.perf_counter() - started) / sum(map(len, paths.values()))
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, **out)
    partial.rename(cache)
    return out, seconds


def accuracies(X: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per variant, the accuracy [shape=(15,)] on each test fold of a model fitted to its training fold's originals."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0)
    scores: dict[str, list[float]] = {name: [] for name in X}
    for train, test in folds.split(X[ORIGINAL], labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(X[ORIGINAL][train], labels[train])
        for name, x in X.items():
            scores[name].append(model.score(x[test], labels[test]))
    return {name: np.array(s) for name, s in scores.items()}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sets", default="tutorial,fast,robust", help="comma-separated feature sets")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "batchgenre-robustness",
        help="where variant files and cached vectors live between runs",
    )
    p.add_argument("--fresh", action="store_true", help="compute the vectors again even where cached")
    args = p.parse_args()
    sets = [get_feature_set(name) for name in args.sets.split(",")]
    files = corpus_files(args.corpus)
    labels = np.array([f.parent.name for f in files])
    subsets = {f"all {len(set(labels))}": np.ones(len(files), bool)}
    if set(THREE_GENRES) <= set(labels):
        subsets = {"three": np.isin(labels, THREE_GENRES)} | subsets
    tune_worker()  # one thread and glibc tuned, as inside a worker; the other cores stay free
    with threadpool_limits(1):
        paths = variant_files(files, corpus=Path(args.corpus), workdir=args.workdir)
        results, timings = {}, {}
        for fs in sets:
            X, timings[fs.name] = vectors(fs, paths, workdir=args.workdir, fresh=args.fresh)
            results[fs.name] = {s: accuracies({k: v[m] for k, v in X.items()}, labels[m]) for s, m in subsets.items()}

    print(f"# {len(files)} clips in {len(set(labels))} genres, three = {'/'.join(THREE_GENRES)}; {machine()}")
    print("# StandardScaler + LogisticRegression(max_iter=5000) fitted to the original clips of each training fold,")
    print("# tested on each variant of the test-fold clips: accuracy, mean ± std over 5 folds x 3 repeats")
    width = 14
    print(f"{'':<{width}}" + "".join(f"{fs.name:<{width * len(subsets)}}" for fs in sets))
    print(f"{'variant':<{width}}" + "".join(f"{s:<{width}}" for s in subsets) * len(sets))
    columns = [results[fs.name][s] for fs in sets for s in subsets]
    for name in paths:
        cells = [f"{c[name].mean():.2f} ± {c[name].std():.2f}" for c in columns]
        print(f"{name:<{width}}" + "".join(f"{cell:<{width}}" for cell in cells))
    drops = [max(c[ORIGINAL].mean() - a.mean() for a in c.values()) for c in columns]
    print(f"{'worst drop':<{width}}" + "".join(f"{d:<+{width}.2f}" for d in drops))
    for fs in sets:
        t = timings[fs.name]
        when = "vectors from the cache" if t is None else f"{t:.4f} s/file to decode and extract, one core"
        print(f"# {fs.name}: {fs.size} values; {when}")


if __name__ == "__main__":
    main()
