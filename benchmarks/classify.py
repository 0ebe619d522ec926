"""classify-dir files per second against the tutorial's per-file loop (get_feature, then model.predict).

    batchgenre featurize ../shared/data/gtzan-mini --genres reggae,classical,rock --out /tmp/three.zarr
    batchgenre train configs/three_genres.toml --store /tmp/three.zarr --out /tmp/three-run
    python -m benchmarks.classify --corpus ../shared/data/gtzan-mini --model /tmp/three-run/model.keras

Both sides classify the same files with the same model; classify-dir's figure includes starting
its cluster, as a user running the command sees it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from batchgenre.classify import classify_dir, load_classifier
from batchgenre.reference import tutorial_feature
from benchmarks.common import corpus_files, machine, median_seconds, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="a model.keras trained on the tutorial feature set")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    files = corpus_files(args.corpus)
    model, metadata = load_classifier(args.model)
    if metadata["feature_set"] != "tutorial":
        raise SystemExit("the tutorial's loop computes the tutorial vector: give a model trained on --features tutorial")

    def tutorial_loop() -> None:
        for f in files:
            model.predict(tutorial_feature(f)[None], verbose=0)

    def batch() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            summary = classify_dir(args.corpus, model_path=args.model, out=Path(tmp, "r.csv"), workers=args.workers)
            assert summary.classified == len(files), summary.failed

    tutorial_loop_s = median_seconds(tutorial_loop, repeats=args.repeats)
    batch_s = median_seconds(batch, repeats=args.repeats)
    print(f"# {len(files)} files, {args.repeats} repeats, medians; {machine()}")
    print(f"{'what':<40} {'files/s':>8} {'ratio':>7}")
    print(f"{'tutorial loop (get_feature + predict)':<40} {len(files) / tutorial_loop_s:8.2f} {1.0:6.1f}x")
    print(f"{f'classify-dir, {args.workers} workers (incl. start-up)':<40} {len(files) / batch_s:8.2f} {tutorial_loop_s / batch_s:6.1f}x")


if __name__ == "__main__":
    main()
