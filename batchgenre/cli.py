"""The command line, and nothing else: parse, call, print."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from batchgenre import __version__
from batchgenre.errors import BatchgenreError
from batchgenre.features import DEFAULT_FEATURE_SET, FEATURE_SETS
from batchgenre.sandbox import DEFAULT_FILE_TIMEOUT

log = logging.getLogger("batchgenre")

# Exit statuses, documented in the README.
EXIT_OK = 0
EXIT_USAGE = 2  # a bad command line or unusable input: one line on stderr says what
EXIT_SOME_FAILED = 3  # the run finished, but some files failed; they are listed


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least ``minimum``, refused in words otherwise."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {n}")
        return n

    return parse


_positive = _whole_number(1)
_count = _whole_number(0)


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not s >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return s


def _positive_seconds(text: str) -> float:
    s = _seconds(text)
    if s == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return s


def _genre_list(text: str) -> list[str]:
    genres = [g.strip() for g in text.split(",") if g.strip()]
    if not genres:
        raise argparse.ArgumentTypeError("give at least one genre, e.g. reggae,classical,rock")
    return genres


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("cluster")
    group.add_argument("--workers", type=_positive, default=2, help="local worker processes, one thread each (default 2)")
    group.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    group.add_argument(
        "--file-timeout", type=_positive_seconds, default=DEFAULT_FILE_TIMEOUT, metavar="SECONDS",
        help=f"give up on a file after this long (default {DEFAULT_FILE_TIMEOUT:g})",
    )


def _add_clip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offset", type=_seconds, default=0.0, help="seconds into each file to start (default 0)")
    p.add_argument("--duration", type=_seconds, default=30.0, help="seconds of audio per file (default 30)")


def _add_window_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("which audio", "by default every file is cut into windows and their probabilities averaged")
    group.add_argument("--window", type=_seconds, default=30.0, help="window length in seconds (default 30)")
    group.add_argument("--hop", type=_seconds, default=30.0, help="seconds between window starts (default 30)")
    group.add_argument("--offset", type=_seconds, help="classify one excerpt starting here instead (seconds)")
    group.add_argument("--duration", type=_seconds, help="length of that excerpt in seconds (default 30)")


def _windows(args: argparse.Namespace):
    from batchgenre.windows import Windows

    if args.offset is None and args.duration is None:
        if args.window <= 0 or args.hop <= 0:
            raise BatchgenreError("--window and --hop must be more than 0 seconds")
        return Windows(window=args.window, hop=args.hop)
    duration = 30.0 if args.duration is None else args.duration
    if duration <= 0:
        raise BatchgenreError("--duration must be more than 0 seconds")
    return Windows.excerpt(offset=args.offset or 0.0, duration=duration)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgenre", description="Genre features and predictions for whole music collections.")
    parser.add_argument("--version", action="version", version=f"batchgenre {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("featurize", help="extract features of every audio file in a folder into a zarr store")
    p.add_argument("folder", type=Path, help="audio folder; genre subfolders (gtzan/rock/...) label the files")
    p.add_argument("--out", default="features.zarr", help="the store to create or resume (default features.zarr)")
    p.add_argument(
        "--features", default=DEFAULT_FEATURE_SET, help=f"feature set: {', '.join(FEATURE_SETS)} (default {DEFAULT_FEATURE_SET})"
    )
    p.add_argument("--genres", type=_genre_list, help="comma-separated genre folders to include (default all)")
    p.add_argument("--retry-failed", action="store_true", help="compute files that failed before again")
    p.add_argument(
        "--augment", type=_count, default=0, metavar="K",
        help="also add K altered copies of each labelled file (gain, bandwidth, rate, codec) for training",
    )
    _add_clip_options(p)
    _add_cluster_options(p)
    p.set_defaults(run=_featurize)

    p = commands.add_parser("classify-dir", help="predict the genre of every audio file under a folder, in parallel")
    p.add_argument("folder", type=Path, help="audio folder, searched recursively")
    p.add_argument("--model", type=Path, help="a model.keras from `batchgenre train` (default runs/three_genres/model.keras)")
    p.add_argument("--out", type=Path, default=Path("results.csv"), help="results .csv, .jsonl or .parquet (default results.csv)")
    p.add_argument("--retry-failed", action="store_true", help="classify files that failed before again")
    _add_window_options(p)
    _add_cluster_options(p)
    p.set_defaults(run=_classify_dir)

    p = commands.add_parser("classify", help="predict the genre of one file or URL")
    p.add_argument("source", help="an audio file, or a URL that yt-dlp can fetch")
    p.add_argument("--model", type=Path, help="a model.keras from `batchgenre train` (default runs/three_genres/model.keras)")
    _add_window_options(p)
    p.set_defaults(run=_classify)

    p = commands.add_parser("demo", help="run the whole flow on a small corpus it generates (no downloads)")
    p.add_argument("--dir", type=Path, default=Path("batchgenre-demo"), help="where the demo writes (default batchgenre-demo)")
    _add_cluster_options(p)
    p.set_defaults(run=_demo)
    _add_train_commands(commands)
    return parser


def _add_train_commands(commands) -> None:
    p = commands.add_parser("train", help="train a genre classifier on a feature store, as a TOML config says")
    p.add_argument("config", type=Path, help="the run's config, e.g. configs/three_genres.toml")
    p.add_argument("--store", help="the feature store to train on (overrides [data] store)")
    p.add_argument("--out", help="the run folder to write (overrides [output] dir)")
    p.add_argument(
        "--seed", type=_count, help="seed of the splits, and of the model unless --weight-seed (overrides [split] seed)"
    )
    p.add_argument(
        "--weight-seed",
        type=_count,
        help="seed of the initial weights and the shuffling alone, same splits (overrides [train] weight_seed)",
    )
    p.add_argument("--folds", type=_count, help="K of repeated stratified K-fold cross-validation; 0: one split")
    p.add_argument("--repeats", type=_positive, help="repeats of the cross-validation (overrides [split] repeats)")
    p.add_argument("--epochs", type=_positive, help="most epochs to train (overrides [train] epochs)")
    p.add_argument(
        "--groups", metavar="CSV", help="a CSV of path,group (an artist, say): keep each group on one side of every split"
    )
    p.add_argument(
        "--robustness",
        action="store_true",
        default=None,
        help="also score the test clips re-made as users' files come (8/16 kHz, stereo, MP3, quieter, louder, low-passed)",
    )
    p.add_argument("--force", action="store_true", help="write over an existing run folder")
    p.set_defaults(run=_train)

    p = commands.add_parser("plot-features", help="draw one audio file's MFCC, mel spectrogram, chroma and tonnetz")
    p.add_argument("file", type=Path, help="an audio file")
    p.add_argument("--out", type=Path, help="the PNG to write (default: the file's name with .png, here)")
    _add_clip_options(p)
    p.set_defaults(run=_plot_features)


def _train(args: argparse.Namespace) -> int:
    from batchgenre import config
    from batchgenre.train import summary_table, train

    cfg = config.with_overrides(
        config.load(args.config),
        store=args.store,
        out=args.out,
        seed=args.seed,
        weight_seed=args.weight_seed,
        folds=args.folds,
        repeats=args.repeats,
        epochs=args.epochs,
        groups=args.groups,
        robustness=args.robustness,
    )
    report = train(cfg, force=args.force)
    print(summary_table(report.metrics))
    print(f"-> {report.run_dir}")
    return EXIT_OK


def _plot_features(args: argparse.Namespace) -> int:
    from batchgenre.plots import plot_features

    out = args.out or Path(args.file.stem + ".png")
    plot_features(args.file, out, offset=args.offset, duration=args.duration or None)
    print(f"-> {out}")
    return EXIT_OK


def _featurize(args: argparse.Namespace) -> int:
    from batchgenre.corpus import Clip
    from batchgenre.featurize import featurize
    from batchgenre.features import get_feature_set

    get_feature_set(args.features)  # refuse an unknown name before starting a cluster
    summary = featurize(
        args.folder,
        out=args.out,
        feature_set=args.features,
        genres=args.genres,
        clip=Clip(offset=args.offset, duration=args.duration or None),
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        file_timeout=args.file_timeout,
        augment=args.augment,
    )
    _print_failures(summary.failed, where="the store's error column")
    _print_lost_workers(summary.lost_workers)
    for block, reason in summary.lost_blocks:
        print(f"block {block} was not written ({reason}): run the same command again to finish it", file=sys.stderr)
    print(f"{summary.done} done, {len(summary.failed)} failed -> {summary.store}")
    return EXIT_OK if not summary.failed and not summary.lost_blocks else EXIT_SOME_FAILED


def _classify_dir(args: argparse.Namespace) -> int:
    from batchgenre.classify import classify_dir

    summary = classify_dir(
        args.folder,
        model_path=args.model,
        out=args.out,
        windows=_windows(args),
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        file_timeout=args.file_timeout,
    )
    _print_lost_workers(summary.lost_workers)
    _print_failures(summary.failed, where="the results' error column")
    print(f"{summary.classified} classified, {len(summary.failed)} failed -> {summary.out}")
    return EXIT_OK if not summary.failed else EXIT_SOME_FAILED


def _classify(args: argparse.Namespace) -> int:
    from batchgenre.classify import classify_one

    row = classify_one(args.source, model_path=args.model, windows=_windows(args))
    if row["status"] != "classified":
        raise BatchgenreError(f"{args.source}: {row['error']}")
    print(f"{row['genre']}  ({row['windows']} windows, {row['duration']} s)")
    for name, value in sorted(((k[2:], v) for k, v in row.items() if k.startswith("p_")), key=lambda kv: -kv[1]):
        print(f"  {name:<16} {value:.3f}")
    return EXIT_OK


def _print_lost_workers(workers: list[str]) -> None:
    if workers:
        print(
            f"{len(workers)} worker(s) were lost during the run ({', '.join(workers)}); Dask ran their tasks again elsewhere",
            file=sys.stderr,
        )


def _print_failures(failed: list[tuple[str, str]], *, where: str) -> None:
    for path, reason in failed[:20]:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    if len(failed) > 20:
        print(f"... and {len(failed) - 20} more: see {where}", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    from batchgenre.demo import run_demo

    report = run_demo(args.dir, workers=args.workers, scheduler=args.scheduler)
    print(f"features:  {report.store}")
    print(f"model:     {report.run_dir / 'model.keras'} (test accuracy {report.test_accuracy:.2f})")
    print(f"plots:     {report.run_dir / 'confusion.png'}, {report.run_dir / 'training.png'}")
    print(f"results:   {report.results} ({report.new_music_accuracy:.0%} of the unseen clips right)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own log lines only: Dask's chatter about workers coming and going is not the user's business.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    log.propagate = False
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    try:
        return args.run(args)
    except BatchgenreError as error:
        print(f"batchgenre: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("batchgenre: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
