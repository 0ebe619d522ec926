"""Time to first result: `classify` of one 4-minute song and `classify-dir` of one and of three, through the real CLI.

    python -m benchmarks.fixed_costs --corpus ../shared/data/gtzan-mini
    python -m benchmarks.fixed_costs --code ../main .     # two checkouts' CLIs, run in turn: before and after

The songs are made from the corpus's clips as benchmarks.library makes them (44.1 kHz stereo,
4 minutes, MP3, FLAC and M4A), nothing downloaded. Each command runs in a fresh process, as a user
types it (``classify-dir`` starting its own local cluster); ``classify``'s time is to its first
line on stdout, the result, ``classify-dir``'s to its exit. CPU seconds are the command's and its
workers', not their decoding helpers'; on a loaded machine they say what wall time would be on a
quiet one better than wall time does. The work, what no run can avoid, is the songs' own: decoding
each and computing its window features and probabilities, timed in this process once warm. A
command's fixed cost is its time less its songs' work. Three files make one block (a block holds
at least four), so one worker does the three songs' work one after the other.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import add_cache_option, corpus_files, machine, median_seconds, parser, quiet_logging
from benchmarks.library import default_model, plan, song_audio, write_audio

SONG_SECONDS = 240.0
FORMATS = ("mp3", "flac", "m4a")
CLI = [sys.executable, "-m", "batchgenre.cli"]


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


@dataclass
class Timed:
    """One command's run: seconds to its first line on stdout and to its exit, CPU seconds of it and its workers."""

    to_first: float
    to_exit: float
    cpu: float


def timed(command: list, code: Path | None) -> Timed:
    """Run ``command`` with the batchgenre of checkout ``code`` (None: the one this process imports).

    CPU time is that of the processes it waited for: its helpers' is not counted.
    """
    # `python -m` puts the working folder first on sys.path, before PYTHONPATH: run in the checkout.
    where = dict(env={**os.environ, "PYTHONPATH": str(code)}, cwd=code) if code else {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with subprocess.Popen(list(map(str, command)), **where, **pipes) as run:
        first = run.stdout.readline()
        to_first = time.perf_counter() - started
        _, err = run.communicate()
    to_exit = time.perf_counter() - started
    if run.returncode != 0 or not first:
        raise SystemExit(f"`{' '.join(map(str, command))}` failed ({run.returncode}):\n{err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timed(to_first, to_exit, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def median_timed(runs: list[Timed]) -> Timed:
    return Timed(*(statistics.median(getattr(r, f) for r in runs) for f in Timed.__dataclass_fields__))


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--model",
        type=Path,
        nargs="+",
        help="a model.keras or msd (default: one trained here on configs/three_genres.toml); or one per --code, "
        "for checkouts whose feature sets differ",
    )
    p.add_argument(
        "--code", type=Path, nargs="+", default=[None], help="checkouts whose CLIs are timed in turn (default: this)"
    )
    p.add_argument("--workers", type=int, default=2)
    add_cache_option(p, what="the songs and the trained model")
    args = p.parse_args()
    args.code = [code.resolve() if code else None for code in args.code]
    if args.corpus is None:
        corpus_files(None)  # says what to give
    quiet_logging()
    songs = make_songs(args.corpus, args.cache / "fixed-costs-songs")
    given = args.model or [default_model(args.corpus, cache=args.cache, workers=args.workers)]
    if len(given) not in (1, len(args.code)):
        raise SystemExit("give one --model, or one per --code")
    given = given if len(given) == len(args.code) else given * len(args.code)
    models = {code: "msd" if str(m) == "msd" else m.resolve() for code, m in zip(args.code, given, strict=True)}

    from batchgenre.classify.client import load_classifier
    from batchgenre.classify.windows import Windows, file_windows

    # The work is timed with this process's batchgenre, on the model of the checkout that is this one
    # (the last one given): a checkout whose code differs has its own, so no "work" is printed beside it.
    mine = args.code[-1]
    classifier = load_classifier(models[mine])

    def work(song: Path) -> None:
        feature_set = classifier.metadata["feature_set"]
        item = file_windows(song, name=song.name, feature_set=feature_set, sr=22050, windows=Windows())
        classifier.probabilities(getattr(item, classifier.reads))

    work(songs[0])  # numba's kernels compile on first use
    own = [median_seconds(lambda s=s: work(s), repeats=args.repeats) for s in songs]

    def classify_dir(folder_songs: list[Path], code: Path | None) -> Timed:
        model = models[code]
        with tempfile.TemporaryDirectory() as tmp:
            for song in folder_songs:
                os.symlink(song, Path(tmp, song.name))
            out = Path(tmp, "out.csv")
            return timed([*CLI, "classify-dir", tmp, "--model", model, "--out", out, "--workers", args.workers], code)

    commands = {
        "classify, to its result": lambda code: timed([*CLI, "classify", songs[0], "--model", models[code]], code),
        "classify-dir, 1 song": lambda code: classify_dir(songs[:1], code),
        "classify-dir, 3 songs": lambda code: classify_dir(songs, code),
    }
    work_of = {"classify, to its result": own[0], "classify-dir, 1 song": own[0], "classify-dir, 3 songs": sum(own)}
    runs: dict[tuple, list[Timed]] = {}
    for _ in range(args.repeats):  # the checkouts in turn, so that a change in the machine's load reaches each alike
        for code in args.code:
            for what, run in commands.items():
                runs.setdefault((code, what), []).append(run(code))

    formats = ", ".join(FORMATS)
    print(f"# {len(songs)} songs of {SONG_SECONDS / 60:.0f} min ({formats}); medians of {args.repeats}; {machine()}")
    print(f"{'checkout':<24} {'command':<24} {'seconds':>8} {'to exit':>8} {'CPU s':>6} {'work':>6} {'fixed':>6}")
    for (code, what), measured in runs.items():
        m = median_timed(measured)
        seconds = m.to_first if what.startswith("classify,") else m.to_exit
        name = str(code) if code else "this"
        own_work = f"{work_of[what]:6.2f} {seconds - work_of[what]:6.2f}" if code == mine else ""
        print(f"{name:<24} {what:<24} {seconds:8.2f} {m.to_exit:8.2f} {m.cpu:6.2f} {own_work}")


if __name__ == "__main__":
    main()
