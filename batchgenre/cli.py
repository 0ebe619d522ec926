"""The command line, and nothing else: parse, call, print."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from batchgenre import __version__
from batchgenre.errors import BatchgenreError

log = logging.getLogger("batchgenre")

# Exit statuses, documented in the README.
EXIT_OK = 0
EXIT_USAGE = 2  # a bad command line or unusable input: one line on stderr says what
EXIT_SOME_FAILED = 3  # the run finished, but some files failed; they are listed


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not s >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return s


def _genre_list(text: str) -> list[str]:
    genres = [g.strip() for g in text.split(",") if g.strip()]
    if not genres:
        raise argparse.ArgumentTypeError("give at least one genre, e.g. reggae,classical,rock")
    return genres


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("cluster")
    group.add_argument("--workers", type=_workers, default=2, help="local worker processes, one thread each (default 2)")
    group.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")


def _add_clip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offset", type=_seconds, default=0.0, help="seconds into each file to start (default 0)")
    p.add_argument("--duration", type=_seconds, default=30.0, help="seconds of audio per file (default 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgenre", description="Genre features and predictions for whole music collections.")
    parser.add_argument("--version", action="version", version=f"batchgenre {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("featurize", help="extract features of every audio file in a folder into a zarr store")
    p.add_argument("folder", type=Path, help="audio folder; genre subfolders (gtzan/rock/...) label the files")
    p.add_argument("--out", default="features.zarr", help="the store to create or resume (default features.zarr)")
    p.add_argument("--features", default="tutorial", help="feature set (default tutorial)")
    p.add_argument("--genres", type=_genre_list, help="comma-separated genre folders to include (default all)")
    p.add_argument("--retry-failed", action="store_true", help="compute files that failed before again")
    _add_clip_options(p)
    _add_cluster_options(p)
    p.set_defaults(run=_featurize)

    p = commands.add_parser("demo", help="run the whole flow on a small corpus it generates (no downloads)")
    p.add_argument("--dir", type=Path, default=Path("batchgenre-demo"), help="where the demo writes (default batchgenre-demo)")
    _add_cluster_options(p)
    p.set_defaults(run=_demo)
    return parser


def _featurize(args: argparse.Namespace) -> int:
    from batchgenre.featurize import Clip, featurize
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
    )
    for path, reason in summary.failed[:20]:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    if len(summary.failed) > 20:
        print(f"... and {len(summary.failed) - 20} more: see the store's error column", file=sys.stderr)
    for block, reason in summary.lost_blocks:
        print(f"block {block} was not written ({reason}): run the same command again to finish it", file=sys.stderr)
    print(f"{summary.done} done, {len(summary.failed)} failed -> {summary.store}")
    return EXIT_OK if not summary.failed and not summary.lost_blocks else EXIT_SOME_FAILED


def _demo(args: argparse.Namespace) -> int:
    from batchgenre.demo import make_corpus
    from batchgenre.featurize import featurize

    audio = args.dir / "audio"
    files = make_corpus(audio)
    log.info("demo corpus: %d generated clips in %s", len(files), audio)
    summary = featurize(audio, out=str(args.dir / "features.zarr"), workers=args.workers, scheduler=args.scheduler)
    print(f"features: {summary.store} ({summary.done} done, {len(summary.failed)} failed)")
    return EXIT_OK if not summary.failed else EXIT_SOME_FAILED


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
