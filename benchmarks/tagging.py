"""`batchgenre tag --write` against copying the same files once with cp, on 30 s clips and on 4-minute songs.

Each repeat copies a pristine corpus afresh (that copy is the cp baseline; cp followed by sync is the
baseline with the bytes on disk, as tag's fsync puts them), writes a results table
for it, then tags it: in-process with 1, 2 and 4 threads, through the CLI, through the CLI of another
checkout (``--before``, e.g. main's, for a before/after in the same run) and, for comparison, with
mutagen's own in-place save (no copy, no journal, no fsync: what a plain tagger does). The variants
take turns within each repeat, so the machine's load falls on all alike. Medians over ``--repeats``;
files/s and MB/s of audio tagged.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import parser

SR = 44100


def make_sources(folder: Path, *, seconds: float) -> list[Path]:
    """One MP3 and one FLAC of ``seconds`` of 44.1 kHz stereo: a chord with a little noise, tagged like a library."""
    from tests.tag_files import write_tagged

    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for ext in ("mp3", "flac"):
        path = folder / f"source.{ext}"
        if not path.exists():
            write_tagged(path, seconds=seconds, seed=1)
        found.append(path)
    return found


def make_corpus(folder: Path, sources: list[Path], *, count: int) -> None:
    """``count`` real copies, MP3 and FLAC alternating, in folders of 100 as albums are."""
    for k in range(count):
        dest = folder / f"{k // 100:03d}" / f"{k:05d}{sources[k % 2].suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[k % 2], dest)


def results_for(root: Path, out: Path) -> Path:
    from tests.tag_files import write_results

    return write_results(out, root, {str(p.relative_to(root)): {} for p in sorted(root.rglob("*.*"))})


def in_place(root: Path) -> None:
    """mutagen's default: the genre written into the file itself, inside its padding where it fits."""
    from batchgenre.library import formats

    for path in sorted(root.rglob("*.*")):
        kind = formats.kind_of(str(path))
        audio = kind.open(str(path))
        formats.put(audio, kind.family, formats.GENRE, ["rock"])
        formats.save(audio, kind.family)


def cli(results: Path, *, checkout: Path | None = None) -> None:
    """``batchgenre tag --write`` in a subprocess, importing the package from ``checkout`` where given."""
    env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout else None
    command = [sys.executable, "-m", "batchgenre.cli", "tag", str(results), "--write"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=checkout)


def measure(
    sources: list[Path], work: Path, *, count: int, repeats: int, before: Path | None
) -> dict[str, list[float]]:
    from batchgenre.library.tagging import tag

    pristine = work / "pristine"
    if not pristine.exists():
        make_corpus(pristine, sources, count=count)
    times: dict[str, list[float]] = {}

    def fresh() -> Path:
        target = work / "copy"
        shutil.rmtree(target, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(pristine), str(target)], check=True)
        times.setdefault("cp -r (once)", []).append(time.perf_counter() - started)
        return target

    runs = {
        "tag, 1 thread": lambda results: tag(results, write=True, threads=1),
        "tag, 2 threads": lambda results: tag(results, write=True, threads=2),
        "tag, 4 threads": lambda results: tag(results, write=True, threads=4),
        "tag CLI": lambda results: cli(results),
        "mutagen in place": lambda results: in_place(results.parent / "copy"),
    }
    if before is not None:
        runs[f"tag CLI of {before}"] = lambda results: cli(results, checkout=before)
    for _ in range(repeats):
        # cp then sync: the same bytes made durable, as tag makes each file before replacing the original.
        shutil.rmtree(work / "copy", ignore_errors=True)
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(pristine), str(work / "copy")], check=True)
        subprocess.run(["sync"], check=True)
        times.setdefault("cp -r + sync", []).append(time.perf_counter() - started)
        for name, run in runs.items():
            root = fresh()
            results = results_for(root, work / "results.csv")
            Path(f"{results}.tag-journal.jsonl").unlink(missing_ok=True)
            started = time.perf_counter()
            run(results)
            times.setdefault(name, []).append(time.perf_counter() - started)
    shutil.rmtree(work / "copy", ignore_errors=True)
    return times


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/batchgenre-tag-bench"), help="where corpora are made")
    p.add_argument("--clips", type=int, default=300, help="30 s clips (half MP3, half FLAC)")
    p.add_argument("--songs", type=int, default=20, help="4-minute songs (half MP3, half FLAC)")
    p.add_argument("--before", type=Path, help="another checkout whose `tag --write` runs alongside (e.g. main's)")
    args = p.parse_args()
    for label, seconds, count in (("30 s clips", 30.0, args.clips), ("4-minute songs", 240.0, args.songs)):
        work = args.work / label.replace(" ", "-")
        sources = make_sources(work / "sources", seconds=seconds)
        megabytes = sum(s.stat().st_size for s in sources) / 2 * count / 1e6
        times = measure(sources, work, count=count, repeats=args.repeats, before=args.before)
        copy = statistics.median(times["cp -r (once)"])
        print(f"\n{label}: {count} files, {megabytes:.0f} MB, medians of {args.repeats}")
        print("| what | s | files/s | MB/s | vs cp |\n|---|---|---|---|---|")
        for name, values in times.items():
            s = statistics.median(values)
            print(f"| {name} | {s:.2f} | {count / s:.0f} | {megabytes / s:.0f} | {s / copy:.2f}x |")


if __name__ == "__main__":
    main()
