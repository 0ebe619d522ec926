"""What the musicnn feature set costs (time, memory) and what each saving costs in accuracy.

    python -m benchmarks.musicnn --corpus ../shared/data/gtzan-mini --repeats 3

Seconds per 30 s clip and per 4-minute song (eight clips end to end), one BLAS thread, split into
preprocessing (resample, log-mel) and the forward pass; patches per product (``batch``) and BLAS
threads; peak resident memory of a fresh process that has run the set. Accuracy: 5-fold
cross-validation grouped by artist (the corpus's artists.csv) of a standardised logistic
regression on each summary vector, with every clip's patches computed once and subsets of them
taken for ``max_patches``; the robust set on the same folds for scale.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    add_cache_option,
    corpus_files,
    machine,
    median_seconds,
    median_wall_and_cpu,
    parser,
    quiet_logging,
)

SR = 22050
WINDOW = 30.0
# Windows a song (classify-dir's --windows) and patches a window (musicnn.MAX_PATCHES) that policies compares.
COUNTS = (1, 3, 5)
PATCHES = (1, 2, 3, 5, 10)
# A fresh process's peak memory: before the set is used, after its weights load, after a clip and a song.
_MEMORY_PROBE = """
import sys, time, numpy as np
def mib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024)
from batchgenre.audio import load
from batchgenre.features import get_feature_set
y = load(sys.argv[1])
get_feature_set("robust").extract(y, sr=22050)
print("imports, robust set run:", mib("VmHWM"), "MiB peak")
noise = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
started = time.perf_counter(), time.process_time()
get_feature_set("musicnn").extract(noise, sr=22050)
print(f"warm-up as cluster.warm_up does it (3 s of noise, first call): {time.perf_counter() - started[0]:.2f} s wall,",
      f"{time.process_time() - started[1]:.2f} s CPU; RSS {mib('VmRSS')} MiB")
get_feature_set("musicnn").extract(y, sr=22050)
print("peak after a 30 s clip:", mib("VmHWM"), "MiB")
get_feature_set("musicnn").extract(np.tile(y, 8), sr=22050)
print("peak after a 4-minute song:", mib("VmHWM"), "MiB")
"""
_TF_PROBE = """
def mib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024)
import tensorflow as tf
tf.constant(1.0) + 1
print("for scale, a process that imports TensorFlow:", mib("VmHWM"), "MiB peak")
"""


def cost(clip: Path, *, repeats: int) -> None:
    import tracemalloc

    from threadpoolctl import threadpool_limits

    from batchgenre.audio import load, resample
    from batchgenre.features import musicnn

    y = load(clip)
    song = np.tile(y, 8)
    musicnn.embed(y[: 22050 * 4], sr=22050)  # weights, librosa's first calls
    with threadpool_limits(limits=1):
        for name, audio in (("30 s clip", y), ("4-minute song", song)):

            def preprocess(audio=audio) -> np.ndarray:
                return musicnn.log_mel(resample(audio, sr_native=22050, sr=musicnn.SAMPLE_RATE))

            spectrogram = preprocess()
            x = musicnn.patches(spectrogram)
            pre = median_seconds(preprocess, repeats=repeats)
            wall, cpu = median_wall_and_cpu(functools.partial(musicnn.forward, x), repeats=repeats)
            print(
                f"{name}: {len(x)} patches, preprocessing {pre:.3f} s, forward {wall:.2f} s wall / {cpu:.2f} s CPU "
                f"({1000 * cpu / len(x):.0f} ms CPU a patch)"
            )
        x = musicnn.patches(musicnn.log_mel(resample(y, sr_native=22050, sr=musicnn.SAMPLE_RATE)))
        for batch in (1, 2, 5, 10):
            tracemalloc.start()
            musicnn.forward(x, batch=batch)
            scratch = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            wall, cpu = median_wall_and_cpu(functools.partial(musicnn.forward, x, batch=batch), repeats=repeats)
            print(f"batch {batch:2d}: {wall:.2f} s wall / {cpu:.2f} s CPU per clip, peak scratch {scratch:.0f} MiB")
        for k in (5, 3, 1):
            few = musicnn.patches(spectrogram, max_patches=k)
            wall, cpu = median_wall_and_cpu(functools.partial(musicnn.forward, few), repeats=repeats)
            print(f"max_patches {k}: {wall:.2f} s wall / {cpu:.2f} s CPU per window of any length ({len(few)} patches)")
    with threadpool_limits(limits=2):
        wall, cpu = median_wall_and_cpu(functools.partial(musicnn.forward, x), repeats=repeats)
        print(f"2 BLAS threads: {wall:.2f} s wall / {cpu:.2f} s CPU per clip")


def memory(clip: Path) -> None:
    import os

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for probe, args in ((_MEMORY_PROBE, [str(clip)]), (_TF_PROBE, [])):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True, env=env)
        for line in out.stdout.splitlines():
            print(f"fresh process, {line}")


def worker_memory(files: list[Path]) -> None:
    """A real worker's decoding helper (benchmarks.memory's measure): 10 clips, and a 4-minute FLAC in 30 s windows."""
    import tempfile

    from batchgenre.classify.client import Windows, classify_block
    from batchgenre.cluster.featurize import featurize
    from benchmarks.memory import worker_peaks, write_long_file

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "c")
        for f in files[:10]:
            (corpus / f.parent.name).mkdir(parents=True, exist_ok=True)
            (corpus / f.parent.name / f.name).symlink_to(f)
        jobs = {
            "featurize 10 clips": lambda c: featurize(corpus, out=f"{tmp}/m.zarr", feature_set="musicnn", client=c),
            "4-minute FLAC in 30 s windows": lambda c: c.submit(
                classify_block, tmp, ["long.flac"], "musicnn", 22050, Windows(), file_timeout=3600, pure=False
            ).result(),
        }
        write_long_file(Path(tmp, "long.flac"), minutes=4)
        for job, run in jobs.items():
            before, after, worker = worker_peaks(run)
            print(
                f"worker memory, {job}: helper after warm-up {before:.0f} MiB, helper peak {after:.0f}, "
                f"worker peak {worker:.0f}"
            )


def accuracy(files: list[Path], corpus: Path) -> None:
    import csv

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from batchgenre.audio import load, resample
    from batchgenre.features import get_feature_set, musicnn

    artists = {row["path"]: row["group"] for row in csv.DictReader(open(corpus / "artists.csv"))}
    relpaths = [f.relative_to(corpus).as_posix() for f in files]
    labels = [p.split("/")[0] for p in relpaths]
    groups = [artists.get(p, p) for p in relpaths]
    spectrograms, penultimates, robust = [], [], []
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        for f in files:
            y = load(f)
            spectrograms.append(musicnn.log_mel(resample(y, sr_native=22050, sr=musicnn.SAMPLE_RATE)))
            penultimates.append(musicnn.forward(musicnn.patches(spectrograms[-1]))[1])
            robust.append(get_feature_set("robust").extract(y, sr=22050))
    print(f"accuracy: {len(files)} clips featurized in {time.perf_counter() - started:.0f} s")

    def score(vectors) -> str:
        # Held-out artists (no artist in both train and test), then plain stratified folds.
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1))
        x = np.stack(vectors)
        artist = cross_val_score(model, x, labels, groups=groups, cv=GroupKFold(n_splits=5))
        folds = cross_val_score(model, x, labels, cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0))
        return (
            f"artists held out {artist.mean():.2f} ± {artist.std():.2f}, "
            f"stratified {folds.mean():.2f} ± {folds.std():.2f}"
        )

    def summary(pen: np.ndarray) -> np.ndarray:
        return np.concatenate([pen.mean(axis=0), pen.max(axis=0)])

    print(f"accuracy robust: {score(robust)}")
    print(f"accuracy musicnn, all patches: {score([summary(p) for p in penultimates])}")
    for k in (5, 3, 1):
        # The patches max_patches keeps, taken from the full set rather than recomputed.
        chosen = [p[musicnn.spread(len(p), max_patches=k)] for p in penultimates]
        print(f"accuracy musicnn, max_patches {k}: {score([summary(p) for p in chosen])}")
    print(f"accuracy musicnn, mean only (200 values): {score([p.mean(axis=0) for p in penultimates])}")


# Each front- and mid-end product of one patch, (rows, inner, columns): musicnn's im2col shapes.
LAYER_SHAPES = {
    "timbral 7x38": (187 * 59, 7 * 38, 204),
    "timbral 7x67": (187 * 30, 7 * 67, 204),
    "temporal 128": (187 * 96, 128, 51),
    "temporal 64": (187 * 96, 64, 51),
    "temporal 32": (187 * 96, 32, 51),
    "mid-end 1": (187, 7 * 561, 64),
    "mid-end 2": (187, 7 * 64, 64),
    "mid-end 3": (187, 7 * 64, 64),
    "dense": (1, 1506, 200),
}


def peak(clip: Path, *, repeats: int) -> None:
    """One core's float32 matrix-product rate (a large square product, each layer's shapes) against the forward pass.

    Fastest of ``repeats`` (at least 15) CPU timings: on a shared machine, the one least slowed by the others.
    """
    from threadpoolctl import threadpool_limits

    from batchgenre.audio import load
    from batchgenre.features import musicnn

    def fastest(run, n: int) -> float:
        spent = []
        for _ in range(n):
            cpu = time.process_time()
            run()
            spent.append(time.process_time() - cpu)
        return min(spent)

    n = max(repeats, 15)
    rng = np.random.default_rng(0)
    layers_alone = 0.0
    with threadpool_limits(limits=1):
        for name, (m, k, c) in {"square 2048": (2048, 2048, 2048), **LAYER_SHAPES}.items():
            a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, c), dtype=np.float32)
            spent = fastest(lambda a=a, b=b: a @ b, 5 if name.startswith("square") else n)
            layers_alone += 0 if name.startswith("square") else spent
            print(f"peak: {name:<13} {m}x{k}x{c}: {1000 * spent:7.2f} ms, {2 * m * k * c / spent / 1e9:5.1f} GFLOP/s")
        flop = 2 * sum(m * k * c for m, k, c in LAYER_SHAPES.values())
        rate = flop / layers_alone / 1e9
        print(f"peak: the products of one patch alone: {1000 * layers_alone:.1f} ms, {rate:.1f} GFLOP/s")
        y = load(clip)
        x = musicnn.patches(musicnn.log_mel(musicnn.resample(y, sr_native=SR, sr=musicnn.SAMPLE_RATE)))
        musicnn.forward(x[:1])
        spent = fastest(lambda: musicnn.forward(x), max(3, n // 3)) / len(x)
        print(
            f"peak: forward pass, {len(x)} patches: {1000 * spent:.1f} ms a patch, {flop / spent / 1e9:.1f} GFLOP/s, "
            f"{layers_alone / spent:.0%} of its products' own rate"
        )


def stages(songs: list[Path], *, repeats: int) -> None:
    """CPU seconds a song per stage of the ten-genre set (robust+musicnn, 5 spread 30 s windows), as a worker runs it.

    Each stage as ``classify.windows.file_windows`` runs it, timed apart, one BLAS thread, fastest of
    ``repeats``; then file_windows itself, and the floor (the whole song decoded and resampled to 22050
    Hz). Runs against whichever batchgenre is first on the path, so an older checkout can be timed too.
    """
    from threadpoolctl import threadpool_limits

    from batchgenre.audio import load, probe_duration, resample, spread_starts
    from batchgenre.audio.decode import open_audio
    from batchgenre.classify.windows import Windows, file_windows
    from batchgenre.features import get_feature_set, musicnn

    spent: dict[str, float] = {}

    @contextlib.contextmanager
    def clock(stage: str):
        cpu = time.process_time()
        yield
        spent[stage] = spent.get(stage, 0.0) + time.process_time() - cpu

    def song(path: Path) -> None:
        with clock("probe"):
            starts = spread_starts(probe_duration(path), window=WINDOW, count=5)
        for start in starts:
            with clock("decode (native rate)"), open_audio(path) as source:
                a, rate = int(start * source.samplerate), source.samplerate
                native = np.concatenate(list(source.blocks(a, a + int(WINDOW * rate), block_frames=None)))
            with clock("resample to 22050 Hz"):
                y = resample(native, sr_native=rate, sr=SR)
            with clock("robust features"):
                get_feature_set("robust").extract(y, sr=SR)
            with clock("resample to 16 kHz"):
                y16 = resample(y, sr_native=SR, sr=musicnn.SAMPLE_RATE)
            with clock("log-mel"):
                if hasattr(musicnn, "patch_starts"):  # this checkout: the chosen patches' frames alone
                    at = musicnn.patch_starts(1 + len(y16) // musicnn.HOP_LENGTH, max_patches=musicnn.MAX_PATCHES)
                    frames = (at[:, None] + np.arange(musicnn.PATCH_FRAMES)).ravel()
                    x = musicnn.log_mel(y16, frames=frames).reshape(len(at), musicnn.PATCH_FRAMES, musicnn.N_MELS)
                else:
                    x = musicnn.patches(musicnn.log_mel(y16))
            with clock("forward pass"):
                musicnn.forward(x)
            spent["patches"] = spent.get("patches", 0) + len(x)

    def cpu_of(run) -> float:
        return min(median_wall_and_cpu(run, repeats=1)[1] for _ in range(repeats))

    with threadpool_limits(limits=1):
        song(songs[0])  # weights, kernels
        for path in songs:
            best: dict[str, float] = {}
            for _ in range(repeats):
                spent.clear()
                song(path)
                best = {k: min(v, best.get(k, np.inf)) for k, v in spent.items()}
            windows = Windows(count=5)
            whole = cpu_of(
                lambda p=path, w=windows: file_windows(p, name="", feature_set="robust+musicnn", sr=SR, windows=w)
            )
            floor = cpu_of(lambda p=path: load(p, duration=None))
            patches = best.pop("patches")
            cells = ", ".join(f"{k} {v:.3f}" for k, v in best.items())
            print(
                f"stages {path.name}: {cells}; {int(patches)} patches; sum {sum(best.values()):.3f}; "
                f"file_windows {whole:.3f}; floor {floor:.3f} CPU s ({whole / floor:.1f}x)"
            )


def _window_embeddings(y: np.ndarray, starts: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window of 30 s at ``starts`` (s) of ``y`` at 22050 Hz: the robust vector and every patch's penultimate."""
    from batchgenre.features import get_feature_set, musicnn

    out = []
    for start in starts:
        window = y[round(start * SR) : round(start * SR) + round(WINDOW * SR)]
        out.append((get_feature_set("robust").extract(window, sr=SR), musicnn.embed(window, sr=SR)[1]))
    return out


def _song_starts(duration: float, count: int | None) -> list[float]:
    """Where classify-dir's windows start: ``count`` spread, or every window (a last one under half dropped)."""
    from batchgenre.audio import spread_starts

    if count is not None:
        return spread_starts(duration, window=WINDOW, count=count)
    starts = list(np.arange(0.0, duration, WINDOW))
    return starts[:-1] if len(starts) > 1 and duration - starts[-1] < WINDOW / 2 else starts


def policies(corpus: Path, *, per_genre: int, seed: int, cache: Path) -> None:
    """Accuracy of robust+musicnn vectors with k patches a window and N windows a song, against all of both.

    Grouped: 5-fold GroupKFold by artist over the corpus's clips (one 30 s window each). Held-out
    songs: benchmarks.windows's halves and songs (each of one genre, made of the other half's
    clips), a model trained on one half's clips and tested on the other's songs, then swapped; a
    song's genre is the argmax of its windows' mean probabilities, as classify-dir gives it. The
    model is a standardised logistic regression (not the MLP: 10 x 3 settings in minutes); every
    patch is computed once, and k patches taken as ``musicnn.spread`` takes them.
    """
    import csv

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from batchgenre.audio import load
    from batchgenre.features import musicnn
    from benchmarks.windows import halves, held_out_songs

    def vector(robust: np.ndarray, pen: np.ndarray, k: int) -> np.ndarray:
        pen = pen[musicnn.spread(len(pen), max_patches=k)]
        return np.concatenate([robust, pen.mean(axis=0), pen.max(axis=0)])

    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1))

    started = time.perf_counter()
    artists = {row["path"]: row["group"] for row in csv.DictReader(open(corpus / "artists.csv"))}
    clips = {}
    with threadpool_limits(limits=1):
        for f in corpus_files(corpus):
            clips[f.relative_to(corpus).as_posix()] = _window_embeddings(load(f), [0.0])[0]
        songs = []
        for train, test in (halves(corpus), halves(corpus)[::-1]):
            for song in held_out_songs(corpus, test, per_genre=per_genre, cache=cache, seed=seed):
                y = load(song.path, duration=None)
                duration = len(y) / SR
                starts = {n: _song_starts(duration, n) for n in (*COUNTS, None)}
                unique = sorted({s for v in starts.values() for s in v})
                embedded = dict(zip(unique, _window_embeddings(y, unique), strict=True))
                songs.append((train, song.genre, {n: [embedded[s] for s in v] for n, v in starts.items()}))
    print(f"policies: {len(clips)} clips and {len(songs)} songs embedded in {time.perf_counter() - started:.0f} s")
    paths = sorted(clips)
    labels = [p.split("/")[0] for p in paths]
    groups = [artists.get(p, p) for p in paths]
    for k in PATCHES:
        x = np.stack([vector(*clips[p], k) for p in paths])
        artist = cross_val_score(model(), x, labels, groups=groups, cv=GroupKFold(n_splits=5))
        folds = cross_val_score(model(), x, labels, cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0))
        cells = []
        for n in (*COUNTS, None):
            right = []
            for half in (0, 1):
                train = halves(corpus)[half]
                rows = [p for g, c in train.items() for p in c]
                fitted = model().fit(np.stack([vector(*clips[p], k) for p in rows]), [p.split("/")[0] for p in rows])
                for song_train, genre, windows in songs:
                    if song_train == train:
                        probs = fitted.predict_proba(np.stack([vector(r, pen, k) for r, pen in windows[n]]))
                        right.append(fitted.classes_[int(np.argmax(probs.mean(axis=0)))] == genre)
            cells.append(f"N={n or 'all'} {np.mean(right):.3f}")
        print(
            f"policies k={k:2d} patches/window: grouped {artist.mean():.3f} ± {artist.std():.3f}, "
            f"stratified {folds.mean():.3f} ± {folds.std():.3f}; held-out songs ({len(songs)}): " + ", ".join(cells)
        )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    parts = ("peak", "stages", "cost", "memory", "workers", "accuracy", "policies")
    p.add_argument("--only", choices=parts, action="append", help="run only these parts (default: all)")
    p.add_argument("--per-genre", type=int, default=2, help="policies: held-out songs per genre per half")
    p.add_argument("--songs", type=Path, nargs="*", default=[], help="stages: the songs (4-minute MP3, FLAC, M4A)")
    add_cache_option(p, what="held-out songs")
    args = p.parse_args()
    files = corpus_files(args.corpus)
    only = args.only or parts
    print(machine())
    if "peak" in only:
        peak(files[0], repeats=args.repeats)
    if "stages" in only:
        stages(args.songs, repeats=args.repeats)
    if "cost" in only:
        cost(files[0], repeats=args.repeats)
    if "memory" in only:
        memory(files[0])
    if "workers" in only:
        quiet_logging()
        worker_memory(files)
    if "accuracy" in only:
        accuracy(files, Path(args.corpus))
    if "policies" in only:
        policies(Path(args.corpus).resolve(), per_genre=args.per_genre, seed=0, cache=args.cache)


if __name__ == "__main__":
    main()
