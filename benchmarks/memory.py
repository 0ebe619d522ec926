"""A worker's peak memory: featurizing 30 s clips (does it grow with the number of files?) and a 60-minute file.

    python benchmarks/memory.py --corpus ../shared/data/gtzan-mini

Peak resident memory (ru_maxrss) of a fresh single worker after each job, against the same
worker's resident memory right after start-up and warm-up.
"""

from __future__ import annotations

import logging
import resource
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from batchgenre.classify import Windows, classify_block
from batchgenre.cluster import connect
from batchgenre.featurize import featurize
from benchmarks.common import corpus_files, machine, parser


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_peak(job) -> tuple[float, float]:
    """(resident MiB after warm-up, peak MiB after ``job(client)``) of one fresh worker."""
    with connect(workers=1) as client:
        (before,) = client.run(_peak_mib).values()
        job(client)
        (after,) = client.run(_peak_mib).values()
    return before, after


def write_long_file(path: Path, *, minutes: float, sr: int = 44100) -> Path:
    """A stereo FLAC of slowly changing chords, written a minute at a time."""
    with sf.SoundFile(path, "w", sr, 2, format="FLAC") as f:
        for m in range(int(minutes)):
            t = np.arange(60 * sr) / sr + 60 * m
            y = 0.2 * np.sin(2 * np.pi * (220 + m) * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
            f.write(np.stack([y, y], axis=1).astype(np.float32))
    return path


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--minutes", type=float, default=60.0, help="length of the long file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    files = corpus_files(args.corpus)
    print(f"# one worker, peak resident memory (MiB); {machine()}")
    print(f"{'job':<46} {'after warm-up':>13} {'peak':>8} {'growth':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10, len(files)):
            corpus = Path(tmp, f"c{n}")
            for f in files[:n]:
                (corpus / f.parent.name).mkdir(parents=True, exist_ok=True)
                (corpus / f.parent.name / f.name).symlink_to(f)
            for name in ("tutorial", "fast"):
                job = lambda c: featurize(corpus, out=f"{tmp}/{name}{n}.zarr", feature_set=name, client=c)  # noqa: E731
                before, after = _worker_peak(job)
                print(f"{f'featurize {n} clips, {name}':<46} {before:13.0f} {after:8.0f} {after - before:8.0f}")
        long = write_long_file(Path(tmp, "long.flac"), minutes=args.minutes)
        for name in ("tutorial", "fast"):
            job = lambda c: c.submit(classify_block, tmp, ["long.flac"], name, 22050, Windows(), pure=False).result()  # noqa: E731
            before, after = _worker_peak(job)
            print(f"{f'{args.minutes:g}-minute file in 30 s windows, {name}':<46} {before:13.0f} {after:8.0f} {after - before:8.0f}")


if __name__ == "__main__":
    main()
