"""What each command does once its arguments are parsed: call the public API, print what a person reads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchgenre.cli.options import EXIT_OK, EXIT_SOME_FAILED, windows_of
from batchgenre.errors import BatchgenreError


def run_train(args: argparse.Namespace) -> int:
    import batchgenre
    from batchgenre.training import config
    from batchgenre.training.run_outputs import summary_table

    report = batchgenre.train(
        args.config, force=args.force, **{flag.dest: getattr(args, flag.dest) for flag in config.FLAGS}
    )
    print(summary_table(report.metrics))
    print(f"-> {report.run_dir}")
    return EXIT_OK


def run_plot_features(args: argparse.Namespace) -> int:
    from batchgenre.training.plots import plot_features

    if not args.file.is_file():
        raise BatchgenreError(f"{args.file}: no such file")
    out = args.out or Path(args.file.stem + ".png")
    plot_features(args.file, out, offset=args.offset, duration=args.duration or None)
    print(f"-> {out}")
    return EXIT_OK


def run_featurize(args: argparse.Namespace) -> int:
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
    print_failures(summary.failed, where="the store's error column")
    print_lost_workers(summary.lost_workers)
    for block, reason in summary.lost_blocks:
        print(f"block {block} was not written ({reason}): run the same command again to finish it", file=sys.stderr)
    if summary.files is None:
        print(f"{summary.done} done, {len(summary.failed)} failed -> {summary.store}")
    else:
        print(f"{summary.done} rows done, {len(summary.failed)} failed, from {summary.files} files -> {summary.store}")
    return EXIT_OK if not summary.failed and not summary.lost_blocks else EXIT_SOME_FAILED


def run_classify_dir(args: argparse.Namespace) -> int:
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
        tags=args.tags,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        file_timeout=args.file_timeout,
        memory_cap=args.memory_cap,
    )
    print_lost_workers(summary.lost_workers)
    print_failures(summary.failed, where="the results' error column")
    print(f"{summary.classified} classified, {len(summary.failed)} failed -> {summary.out}")
    return EXIT_OK if not summary.failed else EXIT_SOME_FAILED


def run_classify(args: argparse.Namespace) -> int:
    from batchgenre.classify.client import classify_one

    row = classify_one(
        args.source,
        model_path=args.model,
        windows=windows_of(args),
        min_confidence=args.min_confidence,
        tags=args.tags,
    )
    if row["status"] != "classified":
        raise BatchgenreError(f"{args.source}: {row['error']}")
    length = f", {row['duration']} s" if row["duration"] is not None else ""
    print(f"{row['genre']}  ({row['windows']} windows{length})")
    for name, value in sorted(((k[2:], v) for k, v in row.items() if k.startswith("p_")), key=lambda kv: -kv[1]):
        print(f"  {name:<16} {value:.3f}")
    if "tags" in row:
        print(f"tags: {row['tags'] or '(none likely)'}")
    return EXIT_OK


def print_lost_workers(workers: list[str]) -> None:
    if workers:
        print(
            f"{len(workers)} worker(s) were lost during the run ({', '.join(workers)}); "
            "Dask ran their tasks again elsewhere",
            file=sys.stderr,
        )


def print_failures(failed: list[tuple[str, str]], *, where: str) -> None:
    for path, reason in failed[:20]:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    if len(failed) > 20:
        print(f"... and {len(failed) - 20} more: see {where}", file=sys.stderr)


def run_demo_command(args: argparse.Namespace) -> int:
    from batchgenre.demo import run_demo

    report = run_demo(args.dir, workers=args.workers, scheduler=args.scheduler)
    print(f"features:  {report.store}")
    print(f"model:     {report.run_dir / 'model.keras'} (test accuracy {report.test_accuracy:.2f})")
    print(f"plots:     {report.run_dir / 'confusion.png'}, {report.run_dir / 'training.png'}")
    print(f"results:   {report.results} ({report.new_music_accuracy:.0%} of the unseen clips right)")
    return EXIT_OK
