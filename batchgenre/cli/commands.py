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
        labels=args.labels,
        min_files=args.min_files,
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

    if args.store:
        summary = _classify_store(args)
    elif args.folder is None:
        raise BatchgenreError("classify-dir needs a folder of audio, or --store STORE")
    elif args.all:
        raise BatchgenreError("--all chooses the rows of a --store; a folder is classified whole")
    else:
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


def _classify_store(args: argparse.Namespace):
    import batchgenre

    if args.folder is not None:
        raise BatchgenreError(f"give a folder or --store, not both ({args.folder} and {', '.join(args.store)})")
    audio = [name for name in ("windows", "window", "hop", "offset", "duration") if getattr(args, name) is not None]
    audio += [name for name in ("retry_failed", "tags") if getattr(args, name)]
    if audio:
        given = ", ".join(f"--{name.replace('_', '-')}" for name in audio)
        raise BatchgenreError(f"--store predicts the rows featurize stored, as they are: {given} cannot apply")
    return batchgenre.classify_store(
        args.store, out=args.out, model=args.model, every_row=args.all, min_confidence=args.min_confidence
    )


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


def run_tag(args: argparse.Namespace) -> int:
    import batchgenre

    if args.undo is not None:
        if args.results is not None:
            raise BatchgenreError("give either RESULTS to tag or --undo JOURNAL, not both")
        undone = batchgenre.undo_tags(args.undo)
        for line in undone.lines:
            print(line)
        print(f"{undone.restored} restored, {undone.already} already as they were, {undone.failed} not restored")
        return EXIT_OK if not undone.failed else EXIT_SOME_FAILED
    if args.results is None:
        raise BatchgenreError("name the results table to tag (batchgenre tag results.csv), or --undo JOURNAL")
    summary = batchgenre.tag(
        args.results,
        write=args.write,
        force=args.force,
        field=args.field,
        min_confidence=args.min_confidence,
        root=args.root,
    )
    for line in summary.lines:
        print(line)
    print(summary.count_line())
    if not args.write and summary.changed:
        print("nothing was written: add --write to change the files")
    return EXIT_OK if not summary.failed else EXIT_SOME_FAILED


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


def run_playlists(args: argparse.Namespace) -> int:
    import batchgenre

    written = batchgenre.playlists(args.results, out=args.out)
    for path, reason in written.left_out:
        print(f"left out: {path}: {reason}", file=sys.stderr)
    for playlist in written.playlists:
        print(f"{playlist.count:>7}  {playlist.path}")
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    import batchgenre

    report = batchgenre.report(args.results, out=args.out)
    print(f"{report.files} files, {report.plots} plots -> {report.out}")
    return EXIT_OK
