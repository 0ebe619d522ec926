"""Time to first result: `classify` of one 4-minute song and `classify-dir` of one and of three, through the real CLI.

    python -m benchmarks.fixed_costs --corpus ../shared/data/gtzan-mini
    python -m benchmarks.fixed_costs --code ../main         # the same figures for another checkout's CLI

The songs are made from the corpus's clips as benchmarks.library makes them (44.1 kHz stereo,
4 minutes, MP3, FLAC and M4A), nothing downloaded. Each command runs in a fresh process, as a user
types it, starting its own 2-worker cluster; ``classify``'s time is to its first line on stdout,
``classify-dir``'s to its exit. The work, what no run can avoid, is the songs' own: decoding each
and computing its window features and probabilities, timed here in this process once warm. A
command's fixed cost is its time less its songs' work. Three files make one block (a block holds
at least four), so one worker does the three songs' work one after the other.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import corpus_files, machine, median_seconds, parser, quiet_logging
from benchmarks.library import default_model, plan, song_audio, write_audio

SONG_SECONDS = 240.0
FORMATS = ("mp3", "flac", "m4a")


def make_songs(corpus: Path, folder: Path) -> list[Path]:
    """Three 4-minute songs, one per format in FORMATS, under ``folder`` (kept: made once)."""
    planned, _ = plan(Path(corpus).resolve(), songs=len(FORMATS) * 4, seed=0)
    paths = []
    for fmt in FORMATS:
        song = dataclasses.replace(next(s for s in planned if s.fmt == fmt), seconds=SONG_SECONDS)
        path = folder / f"{song.genre}.{fmt}"
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".partial.{fmt}")
            write_audio(partial, song_audio(song, corpus=Path(corpus).resolve()), fmt=fmt, kbps=song.kbps)
            os.replace(partial, path)
        paths.append(path)
    return paths


def first_line_seconds(command: list[str], *, env: dict) -> tuple[float, float]:
    """Seconds from starting ``command`` to its first line on stdout, and to its exit."""
    started = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        first = process.stdout.readline()
        to_first = time.perf_counter() - started
        out, err = process.communicate()
    if process.returncode != 0 or not first:
        raise SystemExit(f"`{' '.join(command)}` failed ({process.returncode}):\n{err[-2000:]}")
    return to_first, time.perf_counter() - started


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", type=Path, help="a model.keras (default: one trained here on configs/three_genres.toml)")
    p.add_argument("--code", type=Path, help="the checkout whose CLI is measured (default: the installed batchgenre)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "batchgenre-benchmarks"),
        help="where the songs and the trained model are kept between runs",
    )
    args = p.parse_args()
    if args.corpus is None:
        corpus_files(None)  # says what to give
    quiet_logging()
    songs = make_songs(args.corpus, args.cache / "fixed-costs-songs")
    model = args.model or default_model(args.corpus, cache=args.cache, workers=args.workers)
    env = dict(os.environ)
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    cli = [sys.executable, "-m", "batchgenre.cli"]

    from batchgenre.classify import load_classifier
    from batchgenre.windows import Windows, file_windows

    classifier = load_classifier(model)

    def work(song: Path) -> None:
        item = file_windows(song, name=song.name, feature_set=classifier.metadata["feature_set"], sr=22050, windows=Windows())
        classifier.probabilities(item.features)

    work(songs[0])  # numba's kernels compile on first use
    own = [median_seconds(lambda s=s: work(s), repeats=args.repeats) for s in songs]

    classify = [first_line_seconds([*cli, "classify", songs[0], "--model", model], env=env) for _ in range(args.repeats)]
    to_first = statistics.median(t for t, _ in classify)
    to_exit = statistics.median(t for _, t in classify)

    def classify_dir(folder_songs: list[Path]) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            for song in folder_songs:
                os.symlink(song, Path(tmp, song.name))
            command = [*cli, "classify-dir", tmp, "--model", model, "--out", f"{tmp}/out.csv", "--workers", args.workers]
            started = time.perf_counter()
            done = subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"classify-dir failed ({done.returncode}):\n{done.stderr[-2000:]}")
            return time.perf_counter() - started

    one_dir = statistics.median(classify_dir(songs[:1]) for _ in range(args.repeats))
    three_dir = statistics.median(classify_dir(songs) for _ in range(args.repeats))

    code = args.code.resolve() if args.code else "installed"
    print(f"# {code}; {len(songs)} songs of {SONG_SECONDS / 60:.0f} min ({', '.join(FORMATS)}); medians of {args.repeats}; {machine()}")
    print(f"{'command':<36} {'seconds':>8} {'songs work':>10} {'fixed':>7}")
    print(f"{'classify, to its result':<36} {to_first:8.2f} {own[0]:10.2f} {to_first - own[0]:7.2f}")
    print(f"{'classify, to its exit':<36} {to_exit:8.2f} {own[0]:10.2f} {to_exit - own[0]:7.2f}")
    print(f"{'classify-dir, 1 song':<36} {one_dir:8.2f} {own[0]:10.2f} {one_dir - own[0]:7.2f}")
    print(f"{'classify-dir, 3 songs':<36} {three_dir:8.2f} {sum(own):10.2f} {three_dir - sum(own):7.2f}")


if __name__ == "__main__":
    main()
