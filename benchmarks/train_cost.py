"""Training's fixed cost: `batchgenre train configs/three_genres.toml --folds 5 --repeats 3`, through the real CLI.

    python -m benchmarks.train_cost --store gtzan.zarr                    # this checkout
    python -m benchmarks.train_cost --store gtzan.zarr --code ../old .    # checkouts in turn: before and after

The store is any store of the config's genres (gtzan-mini: `batchgenre featurize gtzan-mini
--features robust --out gtzan.zarr`). Each checkout's CLI runs, in a fresh process, the command
itself (``--epochs``, 64 by the config), the same at 1 epoch, and one split (``--folds 0``) at 1
epoch; checkouts alternate within each repeat, so a change in the machine's load falls on all.
With F fits in the command (each fold's fit and refit, then the saved model's) and S the cost
of starting, T(E) = S + F (c + E e): the per-epoch cost e comes from the first two runs, the
per-fit fixed cost c from the second and third. Wall and CPU seconds (the command's process),
medians over ``--repeats``, with the load average around each run. The runs' fold accuracies,
confusion matrices and saved weights are compared between checkouts: equal seeds, equal figures.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine, parser

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "three_genres.toml"
CLI = [sys.executable, "-m", "batchgenre.cli"]


@dataclass
class Run:
    wall: float
    cpu: float
    load: float  # 1-minute load average, the mean of before and after
    figures: tuple  # fold accuracies, confusion matrix, saved weights: what equal seeds must repeat


def run(code: Path | None, store: Path, out: Path, *, epochs: int | None, folds: int, repeats: int) -> Run:
    """One `batchgenre train` with the batchgenre of checkout ``code`` (None: the one this process imports)."""
    command = [*CLI, "train", CONFIG, "--store", store, "--out", out, "--force", "--folds", folds]
    if folds:
        command += ["--repeats", repeats]
    if epochs is not None:
        command += ["--epochs", epochs]
    # `python -m` puts the working folder first on sys.path, before PYTHONPATH: run in the checkout.
    where = dict(env={**os.environ, "PYTHONPATH": str(code)}, cwd=code) if code else {}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(list(map(str, command)), **where, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(map(str, command))}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = json.loads((out / "metrics.json").read_text())
    weights = zipfile.ZipFile(out / "model.keras").read("model.weights.h5")
    accuracy = metrics.get("accuracy_folds", metrics.get("accuracy"))
    figures = (json.dumps(accuracy), json.dumps(metrics["confusion_matrix"]), weights)
    return Run(wall, cpu, (load + os.getloadavg()[0]) / 2, figures)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--store", type=Path, required=True, help="a store of the config's genres")
    p.add_argument("--code", type=Path, nargs="+", default=[None], help="checkouts whose CLI to run, in turn")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--cv-repeats", type=int, default=3, help="the command's --repeats")
    p.add_argument("--epochs", type=int, default=64)
    args = p.parse_args()

    fits = 2 * args.folds * args.cv_repeats + 2  # each fold's fit and refit, then the saved model's (the config refits)
    kinds = {
        f"folds, {args.epochs} epochs": dict(epochs=args.epochs, folds=args.folds, repeats=args.cv_repeats),
        "folds, 1 epoch": dict(epochs=1, folds=args.folds, repeats=args.cv_repeats),
        "one split, 1 epoch": dict(epochs=1, folds=0, repeats=1),
    }
    print(f"# {machine()}; {fits} fits of {args.epochs} epochs; {args.store}")
    runs: dict[tuple, list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for kind, flags in kinds.items():
                for code in args.code:
                    result = run(code, args.store, Path(tmp, "run"), **flags)
                    runs.setdefault((code, kind), []).append(result)
                    print(
                        f"  {code or '.'}: {kind}: {result.wall:.1f} s, {result.cpu:.1f} CPU-s, load {result.load:.1f}"
                    )

    print(f"{'checkout':<24} {'run':<22} {'wall s':>7} {'CPU s':>7} {'load':>5}")
    med = {}
    for (code, kind), results in runs.items():
        med[code, kind] = wall, cpu = (
            statistics.median(r.wall for r in results),
            statistics.median(r.cpu for r in results),
        )
        load = statistics.median(r.load for r in results)
        print(f"{str(code or '.'):<24} {kind:<22} {wall:>7.1f} {cpu:>7.1f} {load:>5.1f}")
    full, one, split = kinds
    for code in args.code:
        for i, what in enumerate(("wall", "CPU")):
            epoch = (med[code, full][i] - med[code, one][i]) / (fits * (args.epochs - 1))
            per_fit = (med[code, one][i] - med[code, split][i]) / (fits - 2) - epoch
            start = med[code, split][i] - 2 * (per_fit + epoch)
            print(
                f"{str(code or '.'):<24} {what}: {1000 * epoch:.1f} ms an epoch, {per_fit:.2f} s a fit, "
                f"{start:.1f} s to start"
            )
    if len(args.code) > 1:
        for kind in kinds:
            figures = {r.figures for code in args.code for r in runs[code, kind]}
            print(f"{kind}: fold accuracies, confusion matrix and weights {'equal' if len(figures) == 1 else 'DIFFER'}")


if __name__ == "__main__":
    main()
