"""A worker's peak memory: featurizing 30 s clips (does it grow with the number of files?) and a 60-minute file.

    python benchmarks/memory.py --corpus ../shared/data/gtzan-mini

Peak resident memory (VmHWM) of a fresh single worker's sandbox helper, the process that decodes
and computes features, after each job, against its resident memory right after warm-up; and the
peak of the worker process itself, which only moves results and writes the store.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from batchgenre.classify.windows import Windows, classify_block
from batchgenre.cluster.connection import connect
from batchgenre.cluster.featurize import featurize
from batchgenre.features import FEATURE_SETS
from benchmarks.common import corpus_files, machine, parser, quiet_logging


def peaks_mib() -> tuple[float, float]:
    """(worker, helper) high-water marks of resident memory, in MiB."""
    from batchgenre.cluster import sandbox

    def hwm(pid: int | str) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    return hwm("self"), hwm(sandbox.start())


def worker_peaks(job) -> tuple[float, float, float]:
    """(helper MiB after warm-up, helper peak MiB, worker peak MiB) of one fresh worker around ``job(client)``."""
    with connect(workers=1) as client:
        ((_, before),) = client.run(peaks_mib).values()
        job(client=client)
        ((worker, after),) = client.run(peaks_mib).values()
    return before, after, worker


def classify_long_file(folder: str, feature_set: str, *, client) -> None:
    """Window features of ``folder/long.flac`` in 30 s windows, on the client's one worker."""
    client.submit(
        classify_block, folder, ["long.flac"], feature_set, 22050, Windows(), file_timeout=3600, pure=False
    ).result()


def write_long_file(path: Path, *, minutes: float, sr: int = 44100) -> Path:
    """A stereo FLAC of slowly changing chords, written a minute at a time."""
    with sf.SoundFile(path, "w", sr, 2, format="FLAC") as f:
        for m in range(int(minutes)):
            t = np.arange(60 * sr) / sr + 60 * m
            y = 0.2 * np.sin(2 * np.pi * (220 + m) * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
            f.write(np.stack([y, y], axis=1).astype(np.float32))
    return path


def report(job: str, before: float, after: float, worker: float) -> None:
    print(f"{job:<46} {before:11.0f} {after:11.0f} {after - before:7.0f} {worker:11.0f}")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--minutes", type=float, default=60.0, help="length of the long file")
    args = p.parse_args()
    quiet_logging()
    files = corpus_files(args.corpus)
    print(f"# one worker, peak resident memory (MiB); {machine()}")
    print(f"{'job':<46} {'helper warm':>11} {'helper peak':>11} {'growth':>7} {'worker peak':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10, len(files)):
            corpus = Path(tmp, f"c{n}")
            for f in files[:n]:
                (corpus / f.parent.name).mkdir(parents=True, exist_ok=True)
                (corpus / f.parent.name / f.name).symlink_to(f)
            for name in FEATURE_SETS:
                job = functools.partial(featurize, corpus, out=f"{tmp}/{name}{n}.zarr", feature_set=name)
                report(f"featurize {n} clips, {name}", *worker_peaks(job))
        write_long_file(Path(tmp, "long.flac"), minutes=args.minutes)
        for name in FEATURE_SETS:
            job = functools.partial(classify_long_file, tmp, name)
            report(f"{args.minutes:g}-minute file in 30 s windows, {name}", *worker_peaks(job))


if __name__ == "__main__":
    main()
