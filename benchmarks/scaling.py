"""featurize files per second on one worker and on two, the cluster's fixed cost, and scheduling overhead.

    python benchmarks/scaling.py --corpus ../shared/data/gtzan-mini --repeats 3

Scheduling overhead is the share of worker time not spent inside tasks:
1 - (sum of task compute time) / (workers x wall time), from distributed's task stream.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from distributed import get_task_stream

from batchgenre.cluster import sandbox
from batchgenre.cluster.connection import connect
from batchgenre.cluster.featurize import featurize
from batchgenre.features import FEATURE_SETS
from benchmarks.common import corpus_files, machine, parser, quiet_logging


def run(corpus: Path, *, workers: int, feature_set: str, repeats: int) -> dict:
    starts, walls, overheads = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        with connect(workers=workers) as client:
            client.run(sandbox.start)  # each worker's decoding helper: interpreter, imports, numba warm-up
            starts.append(time.perf_counter() - started)
            with tempfile.TemporaryDirectory() as tmp, get_task_stream(client) as stream:
                began = time.perf_counter()
                summary = featurize(corpus, out=f"{tmp}/f.zarr", feature_set=feature_set, client=client)
                wall = time.perf_counter() - began
            busy = sum(
                s["stop"] - s["start"] for task in stream.data for s in task["startstops"] if s["action"] == "compute"
            )
            walls.append(wall)
            overheads.append(1 - busy / (workers * wall))
    return {
        "files": summary.done + len(summary.failed),
        "start": statistics.median(starts),
        "wall": statistics.median(walls),
        "overhead": statistics.median(overheads),
    }


def replicated(corpus: Path, copies: int, folder: Path) -> Path:
    """``copies`` symlinked copies of every file of ``corpus`` under ``folder``, in the same genre layout."""
    for f in corpus_files(corpus):
        for k in range(copies):
            target = folder / f.parent.name / f"{f.stem}.{k}{f.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return folder


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--copies", type=int, default=1, help="featurize each file this many times (a bigger corpus)")
    p.add_argument(
        "--sets", nargs="+", default=list(FEATURE_SETS), choices=list(FEATURE_SETS), help="feature sets to measure"
    )
    args = p.parse_args()
    if args.corpus is None:
        raise SystemExit("give --corpus or set BATCHGENRE_GTZAN")
    quiet_logging()
    tmp = tempfile.TemporaryDirectory()
    corpus = replicated(args.corpus, args.copies, Path(tmp.name)) if args.copies > 1 else args.corpus
    print(f"# {args.repeats} repeats, medians; {machine()}")
    print(
        f"{'set':<10} {'workers':>7} {'files':>6} {'files/s':>8} {'scaling':>8} {'efficiency':>10} "
        f"{'start s':>8} {'sched. overhead':>16}"
    )
    for name in args.sets:
        one = None
        for workers in (1, 2):
            r = run(corpus, workers=workers, feature_set=name, repeats=args.repeats)
            rate = r["files"] / r["wall"]
            one = one or rate
            print(
                f"{name:<10} {workers:>7} {r['files']:>6} {rate:8.2f} {rate / one:7.2f}x {rate / one / workers:9.0%} "
                f"{r['start']:8.2f} {r['overhead']:15.1%}"
            )


if __name__ == "__main__":
    main()
