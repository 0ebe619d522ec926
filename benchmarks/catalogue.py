"""The client's side of a catalogue, at sizes where the workers' part would take hours: plan, table, reruns.

    python -m benchmarks.catalogue --sizes 100000 1000000 --folder /big/disk/growth --model model.keras

On ``benchmarks.growth``'s hard links (made once under ``--folder`` and kept), each step in a
fresh process, so that its peak memory is its own:

- plan: what featurize's client does before any task: walk, select, create the store, plan its
  rows, find its blocks (``featurize``'s own functions); then every block's status is set to done
  as its task would set it (features left NaN), and the real CLI runs featurize again;
- table: classify-dir's results table given one row a file, as the client records them when
  blocks come back, then finished (sorted by path); then the real CLI runs classify-dir again.

Each figure is wall seconds, CPU seconds and peak resident MiB of that process, with the load
average beside it; per-file costs are the difference between two sizes over the difference in files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, parser
from benchmarks.growth import linked_corpus, rerun, short_clip


def plan_step(root: Path, store: Path) -> dict:
    """featurize's client work before its first task, then every block marked done as its task would."""
    from batchgenre.audio.corpus import Clip, discover_paths, rows_per_chunk
    from batchgenre.cluster.featurize import store_attrs
    from batchgenre.cluster.plan import blocks_to_run, plan, select
    from batchgenre.store import DONE, FeatureStore

    wall, cpu = time.perf_counter(), time.process_time()
    relpaths, genres = select(root, discover_paths(root), None)
    attrs = store_attrs(feature_set_name="robust", clip=Clip(), root=root)
    made = FeatureStore.create(
        str(store), attrs=attrs, n_features=len(attrs["feature_names"]), rows_per_chunk=rows_per_chunk(len(relpaths), 2)
    )
    plan(made, relpaths, genres, root, augment=0)
    blocks = blocks_to_run(made, retry_failed=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    made.group["status"][:] = np.full(made.n_rows, DONE, dtype=np.uint8)
    return {"files": len(relpaths), "blocks": len(blocks), "wall_s": wall, "cpu_s": cpu, "peak_mib": peak}


def table_step(root: Path, out: Path, model: Path | None = None) -> dict:
    """classify-dir's results table fed one classified row a file, in the order blocks might return them."""
    from batchgenre.audio.corpus import discover_paths
    from batchgenre.classify.serving import load_classifier
    from batchgenre.store.results import ResultsTable

    genres = load_classifier(model).genres if model is not None else ["classical", "reggae", "rock"]
    paths = discover_paths(root)
    size = os.stat(root / paths[0]).st_size
    wall, cpu = time.perf_counter(), time.process_time()
    table = ResultsTable(out, genres=genres)
    probabilities = {f"p_{g}": 0.8 if i == 0 else 0.1 for i, g in enumerate(genres)}
    order = np.random.default_rng(0).permutation(-(-len(paths) // 256))  # blocks come back in no order
    for block in order:
        for path in paths[block * 256 : (block + 1) * 256].tolist():
            table.add(
                {"path": path, "genre": genres[0], "confidence": 0.8, "novelty": 1.2, **probabilities,
                 "windows": 1, "duration": 1.0, "status": "classified", "error": "", "size": size, "mtime_ns": 1}
            )  # fmt: skip
    table.finish()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"files": len(paths), "wall_s": wall, "cpu_s": cpu, "peak_mib": peak}


def _in_child(step: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.catalogue", "--step", step, *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--folder", type=Path, help="where the links are made and kept (required)")
    p.add_argument("--model", type=Path, help="a trained model for classify-dir's rerun (its genres are not used)")
    p.add_argument("--step", choices=["plan", "table"], help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step:
        print(json.dumps({"plan": plan_step, "table": table_step}[args.step](*args.paths)))
        return
    if args.folder is None:
        p.error("--folder is required: the links are made there and kept")
    print(f"# {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'step':<22} {'files':>8} {'wall s':>7} {'CPU s':>7} {'peak MiB':>8} {'load':>5}")
    args.folder.mkdir(parents=True, exist_ok=True)
    clip = short_clip(args.corpus, 1.0, args.folder)

    def line(step: str, n: int, wall: float, cpu: float, peak: float) -> None:
        print(f"{step:<22} {n:>8} {wall:7.2f} {cpu:7.2f} {peak:8.0f} {os.getloadavg()[0]:5.1f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="batchgenre-catalogue-") as tmp:
        for n in args.sizes:
            root = linked_corpus(clip, n, args.folder / f"corpus{n}")
            store, table = Path(tmp) / f"f{n}.zarr", Path(tmp) / f"r{n}.csv"
            planned = _in_child("plan", str(root), str(store))
            line("featurize plan", n, planned["wall_s"], planned["cpu_s"], planned["peak_mib"])
            line("featurize rerun (CLI)", n, *rerun(["featurize", str(root), "--out", str(store)]))
            written = _in_child("table", str(root), str(table), *([str(args.model)] if args.model else []))
            line("classify-dir table", n, written["wall_s"], written["cpu_s"], written["peak_mib"])
            if args.model is not None:
                line("classify-dir rerun (CLI)", n, *rerun(["classify-dir", str(root), "--model", str(args.model),
                                                            "--out", str(table)]))  # fmt: skip


if __name__ == "__main__":
    main()
