"""classify-dir files per second against the tutorial's per-file loop (get_feature, then model.predict).

    batchgenre featurize ../shared/data/gtzan-mini --genres reggae,classical,rock --out /tmp/three.zarr
    batchgenre train configs/three_genres.toml --store /tmp/three.zarr --out /tmp/three-run
    python -m benchmarks.classify --corpus ../shared/data/gtzan-mini --model /tmp/three-run/model.keras \
        --also runs/robust/model.keras

Both sides classify the same files with the same model; classify-dir's figure includes starting
its cluster, as a user running the command sees it. ``--also`` times classify-dir with more models
(of any feature set) against the same tutorial loop.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from batchgenre.classify.client import classify_dir
from batchgenre.features.reference import tutorial_feature
from batchgenre.store.artifact import read_metadata
from batchgenre.training.model import load_model
from benchmarks.common import corpus_files, machine, median_seconds, parser, quiet_logging


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", type=Path, required=True, help="a model.keras trained on the tutorial feature set")
    p.add_argument("--also", type=Path, nargs="*", default=[], help="more models, of any feature set, for classify-dir")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    quiet_logging()
    files = corpus_files(args.corpus)
    model, metadata = load_model(args.model)  # the tutorial predicts with Keras
    if metadata["feature_set"] != "tutorial":
        raise SystemExit(
            "the tutorial's loop computes the tutorial vector: give a model trained on --features tutorial"
        )

    def tutorial_loop() -> None:
        for f in files:
            model.predict(tutorial_feature(f)[None], verbose=0)

    def batch(model_path: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            summary = classify_dir(args.corpus, model_path=model_path, out=Path(tmp, "r.csv"), workers=args.workers)
            assert summary.classified == len(files), summary.failed

    tutorial_loop_s = median_seconds(tutorial_loop, repeats=args.repeats)
    print(f"# {len(files)} files, {args.repeats} repeats, medians; {machine()}")
    print(f"{'what':<48} {'files/s':>8} {'ratio':>7}")
    print(f"{'tutorial loop (get_feature + predict)':<48} {len(files) / tutorial_loop_s:8.2f} {1.0:6.1f}x")
    for model_path in [args.model, *args.also]:
        batch_s = median_seconds(functools.partial(batch, model_path), repeats=args.repeats)
        feature_set = read_metadata(model_path)["feature_set"]
        what = f"classify-dir, {args.workers} workers, {feature_set} set (incl. start-up)"
        print(f"{what:<48} {len(files) / batch_s:8.2f} {tutorial_loop_s / batch_s:6.1f}x")


if __name__ == "__main__":
    main()
