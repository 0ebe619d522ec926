"""Whole songs in a realistic library: classify-dir and featurize --duration 0 against the floor, decode + resample.

    python -m benchmarks.library --corpus ../shared/data/gtzan-mini            # 200 songs, 2 workers, 3 repeats
    python -m benchmarks.library --songs 8 --repeats 1 --jobs 1                # a quick look

The library is made from the corpus's clips, nothing downloaded: songs of 3-5 minutes, each from
clips of one genre looped with crossfades, 44.1 kHz stereo, in a seeded mix of MP3 (128-320
kbit/s CBR), FLAC, M4A (AAC) and Ogg Vorbis, in ``artist/album/NN title.ext`` folders, plus a
few broken files (truncated, empty, not audio). It is cached under ``--cache`` by its parameters,
so only the first run pays for the encoding.

The floor is what no whole-song run can avoid: decoding each song and resampling it to 22050 Hz
mono, on one core, in this process. classify-dir runs twice: as it comes (a few windows spread
over each song, decoding only those) and with ``--windows all``, the whole song against the
floor. Seconds per song per core of a command are its wall time x workers / songs (the broken
files count as no song); its ratio to the floor says how much more than decoding the command
costs. Each command runs through the real CLI against a fresh local cluster started here
(``--scheduler``), so that its workers' peak memory can be read after the run; the cluster's own
start-up is therefore left out of the wall time, but the CLI's start, its imports, the model's
load and the helpers' warm-up are in it.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import add_cache_option, corpus_files, machine, median_seconds, parser, quiet_logging

# Bump when the generator's output changes, so that cached libraries are made again.
GENERATOR_VERSION = 1

FORMATS = ("mp3", "flac", "m4a", "ogg")
MP3_KBPS = (128, 160, 192, 256, 320)
AAC_KBPS = (128, 192, 256)
VORBIS_LEVELS = (0.3, 0.5, 0.7)  # libsndfile's compression level: 0 is Vorbis's best quality, 1 its worst
SAMPLE_RATE = 44100
SONG_SECONDS = (180.0, 300.0)
CROSSFADE_SECONDS = 2.0
BLOCK_FRAMES = SAMPLE_RATE  # soundfile 0.14 crashes writing minutes of Ogg Vorbis in one call; a second at a time works
BROKEN_KINDS = ("truncated m4a", "empty mp3", "html as mp3", "truncated flac", "jpeg as ogg")
THREE_GENRES = "reggae,classical,rock"

_WORDS = (
    "Blue", "Night", "River", "Fire", "Heart", "Road", "Silver", "Morning", "Rain", "Dance", "Stone",
    "Home", "Light", "Shadow", "Summer", "Train", "Whisper", "Gold", "Ocean", "Wild", "Café",
    "Señorita", "Naïve", "Über", "Don't", "Rock & Roll", "Mañana", "Déjà Vu",
)  # fmt: skip


@dataclass(frozen=True)
class Song:
    """One planned song: where it goes, what it is made of, how it is encoded.

    ``kbps`` is the bit rate of MP3 (CBR) and M4A; ``vorbis_level`` libsndfile's compression
    level of Ogg Vorbis; FLAC is 16-bit.
    """

    path: str
    genre: str
    fmt: str
    seconds: float
    clips: tuple[str, ...]
    seed: int
    kbps: int | None = None
    vorbis_level: float | None = None


@dataclass(frozen=True)
class Broken:
    """A file that looks like a song by its name and is not one."""

    path: str
    kind: str
    source: str  # a clip whose audio the truncated kinds start from


@dataclass(frozen=True)
class Library:
    """A generated library on disk and what it holds."""

    root: Path
    songs: tuple[Song, ...]
    broken: tuple[Broken, ...]

    def write_manifest(self) -> None:
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "songs": [asdict(s) for s in self.songs],
            "broken": [asdict(b) for b in self.broken],
        }
        (self.root / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, root: Path) -> Library:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        songs = tuple(Song(**{**s, "clips": tuple(s["clips"])}) for s in manifest["songs"])
        return cls(root, songs, tuple(Broken(**b) for b in manifest["broken"]))


def genre_clips(corpus: Path) -> dict[str, list[str]]:
    """The corpus's clips by genre folder, as sorted paths relative to ``corpus``."""
    clips: dict[str, list[str]] = {}
    for f in corpus_files(corpus):
        rel = f.relative_to(corpus)
        if len(rel.parts) == 2:
            clips.setdefault(rel.parts[0], []).append(rel.as_posix())
    if not clips:
        raise SystemExit(f"{corpus}: no genre folders of audio clips (like gtzan/rock/x.wav)")
    return clips


def _artists(corpus: Path, genres: list[str]) -> dict[str, list[str]]:
    """Artist names per genre: from the corpus's artists.csv (path,group) where it has one, else made up."""
    named: dict[str, set[str]] = {}
    table = corpus / "artists.csv"
    if table.is_file():
        with table.open(newline="") as f:
            for row in csv.DictReader(f):
                if not row["group"].lower().startswith("unknown"):
                    named.setdefault(row["path"].split("/")[0], set()).add(row["group"].replace("/", "-"))
    return {g: sorted(named.get(g, ())) or [f"{g.title()} Band {k}" for k in range(1, 4)] for g in genres}


def _title(rng: np.random.Generator, words: int) -> str:
    return " ".join(str(w) for w in rng.choice(_WORDS, size=words, replace=False))


def plan(corpus: Path, *, songs: int, seed: int) -> tuple[list[Song], list[Broken]]:
    """Every song and broken file of a library, decided by ``seed`` alone before any audio is made.

    Formats are dealt evenly and shuffled, so any four songs hold all four formats.
    """
    clips = genre_clips(corpus)
    genres = sorted(clips)
    artists = _artists(corpus, genres)
    rng = np.random.default_rng(seed)
    formats = [FORMATS[i % len(FORMATS)] for i in range(songs)]
    rng.shuffle(formats)
    planned: list[Song] = []
    albums: list[tuple[str, int]] = []  # (folder, tracks)
    while len(planned) < songs:
        genre = genres[int(rng.integers(len(genres)))]
        artist = str(rng.choice(artists[genre]))
        album = f"{artist}/{_title(rng, 2)} ({int(rng.integers(1965, 2025))})"
        if any(folder == album for folder, _ in albums):
            album += f" {len(albums)}"
        tracks = min(int(rng.integers(6, 13)), songs - len(planned))
        for track in range(1, tracks + 1):
            fmt = formats[len(planned)]
            rates = {"mp3": MP3_KBPS, "m4a": AAC_KBPS}.get(fmt)
            seconds = round(float(rng.uniform(*SONG_SECONDS)), 2)
            # Enough clips, each ~30 s and overlapping the next by the crossfade, to outlast the song.
            n = math.ceil(seconds / (30.0 - 2 * CROSSFADE_SECONDS)) + 1
            planned.append(
                Song(
                    path=f"{album}/{track:02d} {_title(rng, int(rng.integers(1, 4)))}.{fmt}",
                    genre=genre,
                    fmt=fmt,
                    seconds=seconds,
                    clips=tuple(str(c) for c in rng.choice(clips[genre], size=n)),
                    seed=int(rng.integers(2**31)),
                    kbps=int(rng.choice(rates)) if rates else None,
                    vorbis_level=float(rng.choice(VORBIS_LEVELS)) if fmt == "ogg" else None,
                )
            )
        albums.append((album, tracks))
    broken = []
    for kind in BROKEN_KINDS:
        k = int(rng.integers(len(albums)))
        folder, tracks = albums[k]
        albums[k] = (folder, tracks + 1)
        ext = kind.split()[-1]
        source = str(rng.choice(clips[genres[0]]))
        broken.append(Broken(path=f"{folder}/{tracks + 1:02d} {_title(rng, 2)}.{ext}", kind=kind, source=source))
    return planned, broken


def _clip_at_44k(path: Path) -> np.ndarray:
    """A corpus clip as mono float32 at 44.1 kHz [shape=(n,)]."""
    import soundfile as sf
    import soxr

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(y.mean(axis=1), sr, SAMPLE_RATE).astype(np.float32)


def song_audio(song: Song, *, corpus: Path) -> np.ndarray:
    """The song's samples [shape=(seconds * 44100, 2), dtype=float32].

    Its clips crossfaded, faded in and out, levelled to a random peak, and made a little wide.
    """
    rng = np.random.default_rng(song.seed)
    n = int(song.seconds * SAMPLE_RATE)
    fade = int(CROSSFADE_SECONDS * SAMPLE_RATE)
    ramp = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
    fade_in, fade_out = np.sin(ramp), np.cos(ramp)  # equal power: no dip in loudness across a join
    y = np.zeros(n, dtype=np.float32)
    at = 0
    for k, clip in enumerate(itertools.cycle(song.clips)):  # round again where a corpus's clips are short
        x = _clip_at_44k(corpus / clip)[: n - at] * np.float32(10 ** (rng.uniform(-2, 2) / 20))
        if k > 0:
            x[:fade] *= fade_in[: len(x)]
        x[-fade:] *= fade_out[-len(x) :]
        y[at : at + len(x)] += x
        at += len(x) - fade
        if at + fade >= n:
            break
    y[: SAMPLE_RATE // 2] *= np.linspace(0, 1, SAMPLE_RATE // 2, dtype=np.float32)
    y[-3 * SAMPLE_RATE :] *= np.linspace(1, 0, 3 * SAMPLE_RATE, dtype=np.float32)
    y *= np.float32(10 ** (rng.uniform(-9, -1) / 20) / max(float(np.abs(y).max()), 1e-6))
    # A little width: the right channel a few milliseconds late and slightly quieter.
    delay = int(rng.integers(40, 400))
    right = np.concatenate([np.zeros(delay, np.float32), y[:-delay]]) * np.float32(rng.uniform(0.8, 1.0))
    return np.stack([y, right], axis=1)


def write_audio(
    path: Path, y: np.ndarray, *, fmt: str, kbps: int | None = None, vorbis_level: float | None = None
) -> None:
    """Encode ``y`` [shape=(n, 2), float32, 44.1 kHz] to ``path`` as ``fmt``.

    mp3 (CBR at ``kbps``), flac (16-bit) and ogg (Vorbis at ``vorbis_level``) through libsndfile;
    m4a (AAC at ``kbps``) through FFmpeg.
    """
    if fmt == "m4a":
        import av

        with av.open(str(path), "w", format="ipod") as container:
            stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
            stream.bit_rate = kbps * 1000
            for i in range(0, len(y), BLOCK_FRAMES):
                planar = np.ascontiguousarray(y[i : i + BLOCK_FRAMES].T)
                frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
                frame.sample_rate = SAMPLE_RATE
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return
    import soundfile as sf

    options = {
        # libsndfile maps level 0..1 linearly onto 320..32 kbit/s and rounds to MPEG's table.
        "mp3": dict(
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=(320 - (kbps or 320)) / 288,
            bitrate_mode="CONSTANT",
        ),
        "flac": dict(format="FLAC", subtype="PCM_16"),
        "ogg": dict(format="OGG", subtype="VORBIS", compression_level=vorbis_level),
    }[fmt]
    with sf.SoundFile(path, "w", SAMPLE_RATE, y.shape[1], **options) as f:
        for i in range(0, len(y), BLOCK_FRAMES):
            f.write(y[i : i + BLOCK_FRAMES])


def _render_song(song: Song, corpus: Path, root: Path) -> None:
    """Write one song, under a temporary name first, so that a file with the song's name is whole."""
    target = root / song.path
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial{target.suffix}")
    write_audio(partial, song_audio(song, corpus=corpus), fmt=song.fmt, kbps=song.kbps, vorbis_level=song.vorbis_level)
    os.replace(partial, target)


def _render_broken(broken: Broken, corpus: Path, root: Path) -> None:
    target = root / broken.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if broken.kind == "empty mp3":
        target.write_bytes(b"")
    elif broken.kind == "html as mp3":  # a download that saved the server's error page
        target.write_text("<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n")
    elif broken.kind == "jpeg as ogg":  # cover art under an audio name
        target.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + np.random.default_rng(0).bytes(4000))
    else:  # an interrupted copy: an M4A without its index (FFmpeg writes it last), a FLAC cut inside its first frame
        x = _clip_at_44k(corpus / broken.source)[: 10 * SAMPLE_RATE]
        fmt = broken.kind.split()[-1]
        with tempfile.TemporaryDirectory() as tmp:
            whole = Path(tmp, f"whole.{fmt}")
            write_audio(whole, 0.5 * np.stack([x, x], axis=1), fmt=fmt, kbps=128)
            data = whole.read_bytes()
        target.write_bytes(data[: len(data) // 2] if fmt == "m4a" else data[:4096])


def generate(corpus: Path, root: Path, *, songs: int, seed: int = 0, jobs: int = 1) -> Library:
    """Make a library of ``songs`` songs and the broken files under ``root``, in ``jobs`` processes.

    Songs already in ``root`` are kept, so an interrupted generation resumes; the manifest
    (``root/manifest.json``) is written last.
    """
    from tqdm import tqdm

    corpus = Path(corpus).resolve()
    planned, broken = plan(corpus, songs=songs, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    for b in broken:
        _render_broken(b, corpus, root)
    with tqdm(total=len(planned), desc="generating songs", unit="song") as bar:
        if jobs <= 1:
            for song in planned:
                _render_song(song, corpus, root)
                bar.update()
        else:
            with ProcessPoolExecutor(jobs) as pool:
                for done in as_completed([pool.submit(_render_song, s, corpus, root) for s in planned]):
                    done.result()
                    bar.update()
    library = Library(root, tuple(planned), tuple(broken))
    library.write_manifest()
    return library


def cached_library(corpus: Path, *, cache: Path, songs: int, seed: int, jobs: int) -> Library:
    """The library these parameters make, generated under ``cache`` the first time only."""
    corpus = Path(corpus).resolve()
    key = json.dumps(
        [GENERATOR_VERSION, songs, seed, str(corpus), [f for clips in genre_clips(corpus).values() for f in clips]]
    )
    root = cache / f"library-{songs}-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if (root / "manifest.json").is_file():
        return Library.read(root)
    partial = root.with_name(root.name + ".partial")  # kept when interrupted: the next run resumes it
    generate(corpus, partial, songs=songs, seed=seed, jobs=jobs)
    partial.rename(root)
    return Library.read(root)


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("batchgenre")
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchgenre.cli"]


def default_model(corpus: Path, *, cache: Path, workers: int) -> Path:
    """A model trained by the CLI on the three genres of configs/three_genres.toml, the default set; cached."""
    corpus = Path(corpus).resolve()
    run = cache / f"model-three-genres-{hashlib.sha256(str(corpus).encode()).hexdigest()[:10]}"
    if (run / "model.keras").is_file():
        return run / "model.keras"
    config = Path(__file__).resolve().parents[1] / "configs" / "three_genres.toml"
    return trained_through_cli(
        ["featurize", corpus, "--genres", THREE_GENRES, "--workers", workers],
        ["train", config],
        run,
        what="the default model",
    )


def trained_through_cli(featurize: list, train: list, run: Path, *, what: str) -> Path:
    """``batchgenre featurize`` into a temporary store, then ``batchgenre train`` on it.

    The run folder is moved to ``run``.

    Returns the model.keras; a failing command stops the benchmark with its last lines.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for args in (
            [*featurize, "--out", f"{tmp}/f.zarr"],
            [*train, "--store", f"{tmp}/f.zarr", "--out", f"{tmp}/run"],
        ):
            done = subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"training {what} failed at `batchgenre {args[0]}`:\n{done.stderr[-2000:]}")
        shutil.rmtree(run, ignore_errors=True)
        shutil.move(f"{tmp}/run", run)
    return run / "model.keras"


def per_audio_second(songs: list[Song], root: Path, job, *, repeats: int) -> float:
    """``job(path)``'s median seconds over repeats, summed over ``songs`` and divided by their length."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one core, as a worker has
        spent = sum(median_seconds(functools.partial(job, root / s.path), repeats=repeats) for s in songs)
    return spent / sum(s.seconds for s in songs)


# A process forked from this one carries this one's resident memory into its ru_maxrss through
# exec, so the CLI is started by a small interpreter that forks it and reports what wait4 says.
_MEASURED = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(f"measured: {usage.ru_maxrss} KiB peak, {usage.ru_utime + usage.ru_stime} CPU s")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    """One CLI run: wall time, the workers' share of it spent in tasks, the CLI's CPU time, peak memory (MiB)."""

    wall: float
    in_tasks: float
    cli_cpu: float
    helper_peak: float
    worker_peak: float
    cli_peak: float


def run_cli(args: list, *, workers: int, expect: tuple[int, int], summary: str) -> Run:
    """Run ``batchgenre *args`` on a fresh local cluster and check that its ``summary`` line gives ``expect``.

    ``summary`` is a regex with two groups: files that succeeded, files that failed.
    """
    from distributed import get_task_stream

    from batchgenre.cluster.connection import connect
    from benchmarks.memory import peaks_mib

    with connect(workers=workers) as client, get_task_stream(client) as stream:
        command = [sys.executable, "-c", _MEASURED, *cli_command(), *map(str, args)]
        started = time.perf_counter()
        done = subprocess.run([*command, "--scheduler", client.scheduler.address], capture_output=True, text=True)
        wall = time.perf_counter() - started
        peaks = list(client.run(peaks_mib).values())  # [(worker MiB, helper MiB)], one per worker
    found = re.search(summary, done.stdout)
    measured = re.search(r"measured: (\d+) KiB peak, ([\d.]+) CPU s", done.stdout)
    if found is None or measured is None or (int(found[1]), int(found[2])) != expect:
        raise SystemExit(
            f"`batchgenre {args[0]}` did not give {expect[0]} songs and {expect[1]} failures:\n{done.stderr[-3000:]}"
        )
    busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"] if s["action"] == "compute")
    return Run(
        wall=wall,
        in_tasks=busy / (workers * wall),
        cli_cpu=float(measured[2]),
        helper_peak=max(helper for _, helper in peaks),
        worker_peak=max(worker for worker, _ in peaks),
        cli_peak=int(measured[1]) / 1024,
    )


def median_run(runs: list[Run]) -> Run:
    """Each figure's median over the runs."""
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in Run.__dataclass_fields__))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--songs", type=int, default=200, help="songs in the library (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the library's seed")
    p.add_argument("--model", type=Path, help="a model.keras (default: one trained here on configs/three_genres.toml)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--floor-songs", type=int, default=3, help="songs of each format the floor is timed on")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="processes generating the library")
    add_cache_option(p, what="generated libraries and the trained model")
    args = p.parse_args()
    if args.corpus is None:
        corpus_files(None)  # says what to give
    quiet_logging()
    warnings.filterwarnings("ignore", message="Port .* is already in use")  # the dashboard moves to a free port
    library = cached_library(args.corpus, cache=args.cache, songs=args.songs, seed=args.seed, jobs=args.jobs)
    model = args.model or default_model(args.corpus, cache=args.cache, workers=args.workers)

    from batchgenre.audio import iter_spread_windows, iter_windows, load
    from batchgenre.classify.windows import DEFAULT_COUNT
    from batchgenre.features import FeatureError, get_feature_set
    from batchgenre.store.artifact import read_metadata

    feature_set = read_metadata(model)["feature_set"]
    fs = get_feature_set(feature_set)

    def featurized(windows) -> None:
        for _, y in windows:
            with contextlib.suppress(FeatureError):  # a silent window is left out, as classify-dir does
                fs.extract(y, sr=22050)

    songs = list(library.songs)
    mean_song = statistics.mean(s.seconds for s in songs)
    by_format = {fmt: [s for s in songs if s.fmt == fmt] for fmt in FORMATS if any(s.fmt == fmt for s in songs)}
    jobs = {  # what one core does to a song in-process: seconds per second of audio, by format
        "floor": lambda f: load(f, duration=None),
        "every window": lambda f: featurized(iter_windows(f)),
        "spread windows": lambda f: featurized(iter_spread_windows(f, count=DEFAULT_COUNT)),
    }
    rates = {
        (what, fmt): per_audio_second(group[: args.floor_songs], library.root, job, repeats=args.repeats)
        for fmt, group in by_format.items()
        for what, job in jobs.items()
    }
    mix = {what: sum(rates[what, s.fmt] * s.seconds for s in songs) / len(songs) for what in jobs}
    floor = mix["floor"]

    expect = (len(songs), len(library.broken))
    runs = {}
    classify = ["classify-dir", library.root, "--model", model]
    for what, command, summary in (
        (
            f"classify-dir, {feature_set} model, {DEFAULT_COUNT} windows (default)",
            lambda tmp: [*classify, "--out", f"{tmp}/results.csv"],
            r"(\d+) classified, (\d+) failed",
        ),
        (
            f"classify-dir, {feature_set} model, --windows all",
            lambda tmp: [*classify, "--windows", "all", "--out", f"{tmp}/results.csv"],
            r"(\d+) classified, (\d+) failed",
        ),
        (
            f"featurize --duration 0, {feature_set}",
            lambda tmp: ["featurize", library.root, "--features", feature_set, "--duration", 0, "--out", f"{tmp}/z"],
            r"(\d+) done, (\d+) failed",
        ),
    ):
        measured = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                measured.append(run_cli(command(tmp), workers=args.workers, expect=expect, summary=summary))
        runs[f"{what}, {args.workers} workers"] = median_run(measured)

    formats = ", ".join(f"{len(g)} {fmt}" for fmt, g in by_format.items())
    gib = sum(f.stat().st_size for f in library.root.rglob("*") if f.is_file()) / 2**30
    print(
        f"# {len(songs)} songs ({formats}; mean {mean_song / 60:.1f} min, {gib:.1f} GiB) "
        f"+ {len(library.broken)} broken in {library.root}; {args.repeats} repeats, medians; {machine()}"
    )
    print(
        f"{'what':<64} {'s/song/core':>11} {'s/audio-min':>11} {'vs floor':>8} "
        f"{'in tasks':>8} {'CLI CPU s':>9} {'helper MiB':>10} {'worker MiB':>10} {'CLI MiB':>8}"
    )

    def row(what: str, per_song: float, *more: str) -> None:
        print(f"{what:<64} {per_song:11.3f} {per_song / mean_song * 60:11.3f} {per_song / floor:7.2f}x", *more)

    for fmt in by_format:
        row(f"floor, {fmt} (decode + resample to 22050 Hz mono)", rates["floor", fmt] * mean_song)
    row("floor, this library's mix", floor)
    row(f"in-process, one core: floor + {feature_set} features", mix["every window"])
    row(f"in-process, one core: {DEFAULT_COUNT} spread windows + features", mix["spread windows"])
    for what, r in runs.items():
        row(
            what,
            r.wall * args.workers / len(songs),
            f"{r.in_tasks:8.0%} {r.cli_cpu:9.1f} {r.helper_peak:10.0f} {r.worker_peak:10.0f} {r.cli_peak:8.0f}",
        )


if __name__ == "__main__":
    main()
