"""The built-in model (``--model msd``): its genre against the corpus's labels, and its cost per clip and per song.

    python -m benchmarks.builtin --corpus ../shared/data/gtzan-mini

Runs the real CLI: ``classify-dir CORPUS --model msd --workers 2`` once over the whole corpus, then
reads the table back and scores each GTZAN genre the MSD tags can name (``NAMED_BY``) against the
clip's folder. Cost: the work of one 30 s clip and of one 4-minute 44.1 kHz stereo MP3 (rock clips
end to end), timed in this process once warm (median over --repeats), and ``classify --model msd``
of that song as a user types it (a fresh process: start-up included).
"""

from __future__ import annotations

import collections
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import corpus_files, machine, median_seconds, parser

CLI = [sys.executable, "-m", "batchgenre.cli"]
SONG_SECONDS = 240
SONG_RATE = 44100
# The MSD genre tags that name each GTZAN genre; a clip agrees with its label when its genre is one of
# them. Classical, disco and reggae have no MSD tag (the nearest, "instrumental", "dance", "funk",
# name no such genre), so the built-in cannot name them.
NAMED_BY = {
    "blues": {"blues"},
    "country": {"country"},
    "hiphop": {"hip-hop"},
    "jazz": {"jazz"},
    "metal": {"metal", "heavy metal"},
    "pop": {"pop", "indie pop"},
    "rock": {"rock", "classic rock", "hard rock", "alternative rock", "indie rock", "progressive rock"},
}


def agreement(corpus: Path, out: Path) -> tuple[float, float]:
    """Run classify-dir on the corpus, print the table of agreement per genre; (agreement, wall seconds)."""
    from batchgenre.store.results import read_results

    started = time.perf_counter()
    subprocess.run([*CLI, "classify-dir", corpus, "--model", "msd", "--out", out, "--workers", "2"], check=True)
    wall = time.perf_counter() - started
    results = read_results(out)
    by_genre = collections.defaultdict(list)
    for row in results.rows:
        by_genre[Path(row["path"]).parts[0]].append(row)
    print("| GTZAN genre | MSD tags that name it | clips | agree | most often said |")
    print("|---|---|---|---|---|")
    agree = total = 0
    for genre, rows in sorted(by_genre.items()):
        said = collections.Counter(r["genre"] for r in rows).most_common(3)
        said_text = ", ".join(f"{g} {n}" for g, n in said)
        if genre in NAMED_BY:
            k = sum(r["genre"] in NAMED_BY[genre] for r in rows)
            agree, total = agree + k, total + len(rows)
            print(f"| {genre} | {', '.join(sorted(NAMED_BY[genre]))} | {len(rows)} | {k} | {said_text} |")
        else:
            print(f"| {genre} | (none) | {len(rows)} | - | {said_text} |")
    print(f"| **the {len(NAMED_BY)} it can name** | | {total} | {agree} ({agree / total:.0%}) | |")
    return agree / total, wall


def make_song(corpus: Path, path: Path) -> None:
    """A 4-minute 44.1 kHz stereo MP3 of the corpus's rock clips end to end."""
    import soundfile as sf

    from batchgenre.audio import resample

    clips = [c for c in corpus_files(corpus) if c.parent.name == "rock"]
    y = np.concatenate([resample(y, sr_native=sr, sr=SONG_RATE) for y, sr in map(_read, clips)])
    y = y[: SONG_SECONDS * SONG_RATE]
    sf.write(path, np.stack([y, 0.9 * y], axis=1), SONG_RATE, format="MP3")


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    return y, sr


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--cost-only", action="store_true", help="time the cost alone, not classify-dir's agreement")
    args = p.parse_args()
    corpus = Path(args.corpus).resolve()
    print(machine())
    from batchgenre.classify.client import classify_one

    with tempfile.TemporaryDirectory(prefix="batchgenre-builtin-") as tmp:
        if not args.cost_only:
            _, wall = agreement(corpus, Path(tmp) / "results.csv")
            print(f"classify-dir of {len(corpus_files(corpus))} clips, 2 workers: {wall:.1f} s wall")
        song = Path(tmp) / "song.mp3"
        make_song(corpus, song)
        clip = corpus_files(corpus)[0]
        classify_one(str(clip), model_path="msd")  # warm: weights, librosa's mel bank
        for name, path in (("30 s clip", clip), ("4-minute MP3", song)):
            cpu = time.process_time()
            seconds = median_seconds(lambda p=path: classify_one(str(p), model_path="msd"), repeats=args.repeats)
            cpu = (time.process_time() - cpu) / args.repeats
            print(f"{name}: {seconds:.2f} s wall (median of {args.repeats}), {cpu:.2f} CPU s, in this process")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([*CLI, "classify", song, "--model", "msd"], check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        print(
            f"`classify --model msd` of the 4-minute MP3: {time.perf_counter() - started:.2f} s wall, {used:.2f} CPU s"
        )


if __name__ == "__main__":
    main()
