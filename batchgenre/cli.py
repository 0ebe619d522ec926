"""The command line, and nothing else: parse, call, print."""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
import warnings
from pathlib import Path

from batchgenre import __version__
from batchgenre.cluster.sandbox import DEFAULT_FILE_TIMEOUT, DEFAULT_MEMORY_CAP
from batchgenre.errors import BatchgenreError
from batchgenre.features import DEFAULT_FEATURE_SET, FEATURE_SETS, JOIN
from batchgenre.store import MAX_AUGMENT

log = logging.getLogger("batchgenre")

# Exit statuses, documented in the README.
EXIT_OK = 0
EXIT_USAGE = 2  # a bad command line or unusable input: one line on stderr says what
EXIT_SOME_FAILED = 3  # the run finished, but some files failed; they are listed


def _whole_number(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number from ``minimum`` to ``maximum``, refused in words otherwise."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {n}")
        if maximum is not None and n > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {n}")
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


_MIB_PER_UNIT = {"": 1, "m": 1, "mib": 1, "g": 1024, "gib": 1024}


def _mebibytes(text: str) -> int:
    """An argparse type: a size in MiB, bare (1024) or with a unit (512M, 1.5G, 2GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", text, flags=re.IGNORECASE)
    if not match or match[2].lower() not in _MIB_PER_UNIT:
        raise argparse.ArgumentTypeError(
            f"must be a size in MiB like 1024, or with a unit like 512M or 2G, got {text!r}"
        )
    mib = round(float(match[1]) * _MIB_PER_UNIT[match[2].lower()])
    if mib < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 MiB, got {text!r}")
    return mib


def _genre_list(text: str) -> list[str]:
    genres = [g.strip() for g in text.split(",") if g.strip()]
    if not genres:
        raise argparse.ArgumentTypeError("give at least one genre, e.g. reggae,classical,rock")
    return genres


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("cluster")
    group.add_argument(
        "--workers", type=_positive, default=2, help="local worker processes, one thread each (default 2)"
    )
    group.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    group.add_argument(
        "--file-timeout",
        type=_positive_seconds,
        default=DEFAULT_FILE_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on a file after this long (default {DEFAULT_FILE_TIMEOUT:g})",
    )
    group.add_argument(
        "--memory-cap",
        type=_mebibytes,
        default=DEFAULT_MEMORY_CAP,
        metavar="SIZE",
        help="give up on a file whose decoding helper needs more memory than this: MiB, or 512M, 2G "
        f"(default {DEFAULT_MEMORY_CAP})",
    )


def _add_clip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offset", type=_seconds, default=0.0, help="seconds into each file to start (default 0)")
    p.add_argument("--duration", type=_seconds, default=30.0, help="seconds of audio per file (default 30)")


def _probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text!r}") from None
    if not 0 <= p <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return p


def _add_confidence_option(p: argparse.ArgumentParser) -> None:
    from batchgenre.classify.client import DEFAULT_MIN_CONFIDENCE

    p.add_argument(
        "--min-confidence",
        type=_probability,
        default=DEFAULT_MIN_CONFIDENCE,
        metavar="P",
        help="call a file 'unknown' when no genre's mean probability reaches P, keeping the probabilities "
        f"(default {DEFAULT_MIN_CONFIDENCE:g}; 0 always names a genre)",
    )


def _window_count(text: str) -> int:
    """An argparse type: how many windows to classify per file; ``all`` is 0, every window."""
    if text.strip().lower() == "all":
        return 0
    try:
        return _count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a whole number of windows, or all, got {text!r}") from None


def _add_window_options(p: argparse.ArgumentParser) -> None:
    from batchgenre.classify.windows import DEFAULT_COUNT

    group = p.add_argument_group(
        "which audio", "by default a few windows spread over each file are decoded and their probabilities averaged"
    )
    group.add_argument(
        "--windows",
        type=_window_count,
        metavar="N",
        help=f"classify N windows spread evenly over each file, decoding only those; all (or 0): every window, "
        f"--hop apart (default {DEFAULT_COUNT}, or all when --hop is given)",
    )
    group.add_argument(
        "--window",
        type=_seconds,
        help="window length in seconds (default: the model's, from featurize --window; else 30)",
    )
    group.add_argument(
        "--hop", type=_seconds, help="seconds between window starts with --windows all (default: the window)"
    )
    group.add_argument("--offset", type=_seconds, help="classify one excerpt starting here instead (seconds)")
    group.add_argument("--duration", type=_seconds, help="length of that excerpt in seconds (default 30)")


def _windows(args: argparse.Namespace):
    from batchgenre.classify.windows import Windows

    return Windows.choose(
        count=args.windows, window=args.window, hop=args.hop, offset=args.offset, duration=args.duration
    )


class _Parser(argparse.ArgumentParser):
    """argparse with whole option names only, and usage errors said in one line.

    A misspelt option is named before argparse can take it for something else: ``featurize
    --wrkers 2 gtzan/`` would otherwise blame ``gtzan/``, and ``--ouput`` would print the
    top-level usage.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        self._refuse_unknown_options(args)
        return super().parse_args(args, namespace)

    def _refuse_unknown_options(self, args: list[str]) -> None:
        subparsers = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        parser, known = self, set(self._option_string_actions)
        for arg in args:
            if arg == "--":
                return
            if subparsers is not None and parser is self and arg in subparsers.choices:
                parser = subparsers.choices[arg]
                known = set(parser._option_string_actions)
            elif arg.startswith("--") and arg.split("=", 1)[0] not in known:
                name = arg.split("=", 1)[0]
                close = difflib.get_close_matches(name, sorted(k for k in known if k.startswith("--")), n=1)
                parser.error(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))

    def error(self, message: str):
        positionals = " ".join(a.metavar or a.dest for a in self._actions if not a.option_strings)
        usage = f"{self.prog} [options] {positionals}".rstrip()
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; usage: {usage} (more in `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batchgenre", description="Genre features and predictions for whole music collections.")
    parser.add_argument("--version", action="version", version=f"batchgenre {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("featurize", help="extract features of every audio file in a folder into a zarr store")
    p.add_argument("folder", type=Path, help="audio folder; genre subfolders (gtzan/rock/...) label the files")
    p.add_argument("--out", default="features.zarr", help="the store to create or resume (default features.zarr)")
    p.add_argument(
        "--features",
        default=DEFAULT_FEATURE_SET,
        help=f"feature set: {', '.join(FEATURE_SETS)}, or several joined with {JOIN}, computed together into one store "
        f"(robust{JOIN}musicnn) (default {DEFAULT_FEATURE_SET})",
    )
    p.add_argument("--genres", type=_genre_list, help="comma-separated genre folders to include (default all)")
    p.add_argument("--retry-failed", action="store_true", help="compute files that failed before again")
    p.add_argument(
        "--augment",
        type=_whole_number(0, MAX_AUGMENT),
        default=0,
        metavar="K",
        help="also add K altered copies of each labelled file (gain, bandwidth, rate, codec) for training",
    )
    p.add_argument(
        "--window",
        type=_positive_seconds,
        metavar="S",
        help="one row per S-second window of the excerpt instead of one per file (duration // S rows; "
        "train keeps a file's windows together, classify-dir cuts files the same way)",
    )
    _add_clip_options(p)
    _add_cluster_options(p)
    p.set_defaults(run=_featurize)

    p = commands.add_parser("classify-dir", help="predict the genre of every audio file under a folder, in parallel")
    p.add_argument("folder", type=Path, help="audio folder, searched recursively")
    p.add_argument(
        "--model", type=Path, help="a model.keras from `batchgenre train` (default runs/three_genres/model.keras)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("results.csv"), help="results .csv, .jsonl or .parquet (default results.csv)"
    )
    p.add_argument("--retry-failed", action="store_true", help="classify files that failed before again")
    _add_window_options(p)
    _add_confidence_option(p)
    _add_cluster_options(p)
    p.set_defaults(run=_classify_dir)

    p = commands.add_parser("classify", help="predict the genre of one file or URL")
    p.add_argument("source", help="an audio file, or a URL that yt-dlp can fetch")
    p.add_argument(
        "--model", type=Path, help="a model.keras from `batchgenre train` (default runs/three_genres/model.keras)"
    )
    _add_window_options(p)
    _add_confidence_option(p)
    p.set_defaults(run=_classify)

    p = commands.add_parser("demo", help="run the whole flow on a small corpus it generates (no downloads)")
    p.add_argument(
        "--dir", type=Path, default=Path("batchgenre-demo"), help="where the demo writes (default batchgenre-demo)"
    )
    _add_cluster_options(p)
    p.set_defaults(run=_demo)
    _add_train_commands(commands)
    return parser


def _add_train_commands(commands) -> None:
    from batchgenre.training import config

    p = commands.add_parser("train", help="train a genre classifier on a feature store, as a TOML config says")
    p.add_argument("config", type=Path, help="the run's config, e.g. configs/three_genres.toml")
    for flag in config.FLAGS:  # one per key that a flag overrides, as batchgenre.training.config states it
        if flag.kind is bool:
            p.add_argument(flag.name, action="store_true", default=None, help=_escaped(flag.help))
        else:
            action = "append" if flag.many else "store"  # given again for each further value
            p.add_argument(flag.name, type=flag.kind, action=action, metavar=flag.metavar, help=_escaped(flag.help))
    p.add_argument("--force", action="store_true", help="write over an existing run folder")
    p.set_defaults(run=_train)

    p = commands.add_parser("plot-features", help="draw one audio file's MFCC, mel spectrogram, chroma and tonnetz")
    p.add_argument("file", type=Path, help="an audio file")
    p.add_argument("--out", type=Path, help="the PNG to write (default: the file's name with .png, here)")
    _add_clip_options(p)
    p.set_defaults(run=_plot_features)


def _escaped(text: str) -> str:
    """``text`` as argparse shows it: argparse formats help with %, so a literal % is doubled."""
    return text.replace("%", "%%")


def _train(args: argparse.Namespace) -> int:
    import batchgenre
    from batchgenre.training import config
    from batchgenre.training.run_outputs import summary_table

    report = batchgenre.train(
        args.config, force=args.force, **{flag.dest: getattr(args, flag.dest) for flag in config.FLAGS}
    )
    print(summary_table(report.metrics))
    print(f"-> {report.run_dir}")
    return EXIT_OK


def _plot_features(args: argparse.Namespace) -> int:
    from batchgenre.training.plots import plot_features

    if not args.file.is_file():
        raise BatchgenreError(f"{args.file}: no such file")
    out = args.out or Path(args.file.stem + ".png")
    plot_features(args.file, out, offset=args.offset, duration=args.duration or None)
    print(f"-> {out}")
    return EXIT_OK


def _featurize(args: argparse.Namespace) -> int:
    import batchgenre

    summary = batchgenre.featurize(
        args.folder,
        out=args.out,
        feature_set=args.features,
        genres=args.genres,
        offset=args.offset,
        duration=args.duration or None,
        window=args.window,
        augment=args.augment,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        file_timeout=args.file_timeout,
        memory_cap=args.memory_cap,
    )
    _print_failures(summary.failed, where="the store's error column")
    _print_lost_workers(summary.lost_workers)
    for block, reason in summary.lost_blocks:
        print(f"block {block} was not written ({reason}): run the same command again to finish it", file=sys.stderr)
    if summary.files is None:
        print(f"{summary.done} done, {len(summary.failed)} failed -> {summary.store}")
    else:
        print(f"{summary.done} rows done, {len(summary.failed)} failed, from {summary.files} files -> {summary.store}")
    return EXIT_OK if not summary.failed and not summary.lost_blocks else EXIT_SOME_FAILED


def _classify_dir(args: argparse.Namespace) -> int:
    import batchgenre

    summary = batchgenre.classify_dir(
        args.folder,
        out=args.out,
        model=args.model,
        windows=args.windows,
        window=args.window,
        hop=args.hop,
        offset=args.offset,
        duration=args.duration,
        min_confidence=args.min_confidence,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        file_timeout=args.file_timeout,
        memory_cap=args.memory_cap,
    )
    _print_lost_workers(summary.lost_workers)
    _print_failures(summary.failed, where="the results' error column")
    print(f"{summary.classified} classified, {len(summary.failed)} failed -> {summary.out}")
    return EXIT_OK if not summary.failed else EXIT_SOME_FAILED


def _classify(args: argparse.Namespace) -> int:
    from batchgenre.classify.client import classify_one

    row = classify_one(args.source, model_path=args.model, windows=_windows(args), min_confidence=args.min_confidence)
    if row["status"] != "classified":
        raise BatchgenreError(f"{args.source}: {row['error']}")
    length = f", {row['duration']} s" if row["duration"] is not None else ""
    print(f"{row['genre']}  ({row['windows']} windows{length})")
    for name, value in sorted(((k[2:], v) for k, v in row.items() if k.startswith("p_")), key=lambda kv: -kv[1]):
        print(f"  {name:<16} {value:.3f}")
    return EXIT_OK


def _print_lost_workers(workers: list[str]) -> None:
    if workers:
        print(
            f"{len(workers)} worker(s) were lost during the run ({', '.join(workers)}); "
            "Dask ran their tasks again elsewhere",
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
    from batchgenre.cluster.connection import ctrl_c_handled

    try:
        with ctrl_c_handled():
            return args.run(args)
    except BatchgenreError as error:
        print(f"batchgenre: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("batchgenre: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
