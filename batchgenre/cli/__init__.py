"""The command line, and nothing else: parse (here and in ``options``), call the API and print (``commands``)."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from batchgenre import __version__
from batchgenre.cli.commands import (
    run_classify,
    run_classify_dir,
    run_demo_command,
    run_featurize,
    run_playlists,
    run_plot_features,
    run_report,
    run_tag,
    run_train,
)
from batchgenre.cli.options import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    Parser,
    add_clip_options,
    add_cluster_options,
    add_confidence_option,
    add_model_options,
    add_window_options,
    escaped,
    genre_list,
    positive_seconds,
    probability,
    whole_number,
)
from batchgenre.errors import BatchgenreError
from batchgenre.features import DEFAULT_FEATURE_SET, FEATURE_SETS, JOIN
from batchgenre.store import MAX_AUGMENT

log = logging.getLogger("batchgenre")

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="batchgenre", description="Genre features and predictions for whole music collections.")
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
    p.add_argument("--genres", type=genre_list, help="comma-separated genre folders to include (default all)")
    p.add_argument(
        "--labels",
        metavar="tags|FILE.csv",
        help="label files by their genre tags (and group them by artist tag), or by a CSV of path,genre[,group] "
        "(default: genre folders)",
    )
    p.add_argument(
        "--min-files",
        type=whole_number(1),
        default=10,
        metavar="N",
        help="with --labels, leave genres of fewer than N files unlabelled (default 10)",
    )
    p.add_argument("--retry-failed", action="store_true", help="compute files that failed before again")
    p.add_argument(
        "--augment",
        type=whole_number(0, MAX_AUGMENT),
        default=0,
        metavar="K",
        help="also add K altered copies of each labelled file (gain, bandwidth, rate, codec) for training",
    )
    p.add_argument(
        "--window",
        type=positive_seconds,
        metavar="S",
        help="one row per S-second window of the excerpt instead of one per file (duration // S rows; "
        "train keeps a file's windows together, classify-dir cuts files the same way)",
    )
    add_clip_options(p)
    add_cluster_options(p)
    p.set_defaults(run=run_featurize)

    p = commands.add_parser("classify-dir", help="predict the genre of every audio file under a folder, in parallel")
    p.add_argument("folder", type=Path, nargs="?", help="audio folder, searched recursively (or --store)")
    add_model_options(p)
    p.add_argument(
        "--out", type=Path, default=Path("results.csv"), help="results .csv, .jsonl or .parquet (default results.csv)"
    )
    p.add_argument("--retry-failed", action="store_true", help="classify files that failed before again")
    p.add_argument(
        "--store",
        action="append",
        metavar="STORE",
        help="instead of a folder, predict a feature store's unlabelled files, decoding nothing (again for stores "
        "of the same files, one per feature set)",
    )
    p.add_argument("--all", action="store_true", help="with --store: every file of the store, labelled ones too")
    add_window_options(p)
    add_confidence_option(p)
    add_cluster_options(p)
    p.set_defaults(run=run_classify_dir)

    p = commands.add_parser("classify", help="predict the genre of one file or URL")
    p.add_argument("source", help="an audio file, or a URL that yt-dlp can fetch")
    add_model_options(p)
    add_window_options(p)
    add_confidence_option(p)
    p.set_defaults(run=run_classify)

    p = commands.add_parser("playlists", help="write one M3U8 playlist per genre from classify-dir's results")
    p.add_argument("results", type=Path, help="the results table classify-dir wrote")
    p.add_argument("--out", type=Path, default=Path("playlists"), help="the folder for them (default playlists)")
    p.set_defaults(run=run_playlists)

    p = commands.add_parser("report", help="write a self-contained HTML report of classify-dir's results")
    p.add_argument("results", type=Path, help="the results table classify-dir wrote")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file (default report.html)")
    p.set_defaults(run=run_report)
    _add_tag_command(commands)

    p = commands.add_parser("demo", help="run the whole flow on a small corpus it generates (no downloads)")
    p.add_argument(
        "--dir", type=Path, default=Path("batchgenre-demo"), help="where the demo writes (default batchgenre-demo)"
    )
    add_cluster_options(p)
    p.set_defaults(run=run_demo_command)
    _add_train_commands(commands)
    return parser


def _add_tag_command(commands) -> None:
    p = commands.add_parser("tag", help="write classify-dir's genres into the files' tags (pretends without --write)")
    p.add_argument("results", type=Path, nargs="?", help="a results table from classify-dir")
    p.add_argument("--write", action="store_true", help="change the files (default: print what would change)")
    p.add_argument("--force", action="store_true", help="replace a genre a file already has (default: keep it)")
    p.add_argument(
        "--field",
        metavar="NAME",
        help="write this field instead of the genre, e.g. BATCHGENRE_GENRE (ID3 TXXX, Vorbis comment, MP4 freeform)",
    )
    p.add_argument(
        "--min-confidence",
        type=probability,
        metavar="P",
        help="leave files whose top probability is below P (default: write whatever genre a row names)",
    )
    p.add_argument("--root", type=Path, metavar="DIR", help="the folder the rows' paths are in (default: recorded)")
    p.add_argument(
        "--undo",
        type=Path,
        metavar="JOURNAL",
        help="put back the old values a --write recorded in JOURNAL (results.csv.tag-journal.jsonl)",
    )
    p.set_defaults(run=run_tag)


def _add_train_commands(commands) -> None:
    from batchgenre.training import config

    p = commands.add_parser("train", help="train a genre classifier on a feature store, as a TOML config says")
    p.add_argument("config", type=Path, help="the run's config, e.g. configs/three_genres.toml")
    for flag in config.FLAGS:  # one per key that a flag overrides, as batchgenre.training.config states it
        if flag.kind is bool:
            p.add_argument(flag.name, action="store_true", default=None, help=escaped(flag.help))
        else:
            action = "append" if flag.many else "store"  # given again for each further value
            p.add_argument(flag.name, type=flag.kind, action=action, metavar=flag.metavar, help=escaped(flag.help))
    p.add_argument("--force", action="store_true", help="write over an existing run folder")
    p.set_defaults(run=run_train)

    p = commands.add_parser("plot-features", help="draw one audio file's MFCC, mel spectrogram, chroma and tonnetz")
    p.add_argument("file", type=Path, help="an audio file")
    p.add_argument("--out", type=Path, help="the PNG to write (default: the file's name with .png, here)")
    add_clip_options(p)
    p.set_defaults(run=run_plot_features)


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
