"""Seconds per file on one core: the tutorial's loop, each feature set, and the decode + STFT floor.

python benchmarks/features.py --corpus ../shared/data/gtzan-mini --files 20 --repeats 3
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from batchgenre.audio import load
from batchgenre.cluster.connection import tune_worker
from batchgenre.features import FEATURE_SETS
from batchgenre.features.reference import tutorial_feature
from benchmarks.common import corpus_files, machine, median_seconds, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--files", type=int, default=20, help="files per pass (spread over the genres)")
    args = p.parse_args()
    every = corpus_files(args.corpus)
    files = every[:: max(1, len(every) // args.files)][: args.files]
    tune_worker()  # one thread, as inside a worker
    with threadpool_limits(1):
        import librosa

        for f in files[:2]:  # warm up numba and the filter-bank caches
            tutorial_feature(f)
            for fs in FEATURE_SETS.values():
                fs.extract(load(f), sr=22050)

        def per_file(run) -> float:
            return median_seconds(lambda: [run(f) for f in files], repeats=args.repeats) / len(files)

        tutorial = per_file(tutorial_feature)
        floor = per_file(lambda f: np.abs(librosa.stft(load(f))))
        print(f"# {len(files)} files, {args.repeats} repeats, one core; {machine()}")
        print(f"{'what':<28} {'s/file':>8} {'vs tutorial loop':>17} {'vs floor':>9}")
        print(f"{'tutorial loop (4 loads)':<28} {tutorial:8.4f} {1.0:16.1f}x {tutorial / floor:8.1f}x")
        print(f"{'floor: decode + one STFT':<28} {floor:8.4f} {tutorial / floor:16.1f}x {1.0:8.1f}x")
        for name, fs in FEATURE_SETS.items():
            t = per_file(lambda f, fs=fs: fs.extract(load(f), sr=22050))
            print(f"{'set ' + name:<28} {t:8.4f} {tutorial / t:16.1f}x {t / floor:8.2f}x")


if __name__ == "__main__":
    main()
