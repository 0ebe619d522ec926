"""Objects on disk and read speed of a feature store's layouts, with and without zarr v3 shards.

    python -m benchmarks.sharding --rows 250000

Four layouts of the same rows (``robust``'s 120 float32 features, 256 rows a block as featurize
makes them at this size): every array one chunk a block (stores before sharding); the client's
arrays (path, label, augment, window, group, size, mtime_ns) in shards of 64 blocks, the tasks'
arrays (features, status, error) one chunk a block; the client's arrays in plain chunks of 64
blocks instead; and the features sharded too, which no run can write, since every block's task
would rewrite a shard another task is writing. For each: the objects on disk, the seconds to read
the columns a rerun and a training run read whole, and a training epoch's feature reads as
``training.dataset.stream`` makes them (windows of 64 chunks in a seeded order), wall and CPU,
medians over ``--repeats``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import machine, median_wall_and_cpu, parser

BLOCK = 256
SHARD_BLOCKS = 64
FEATURES = 120
CLIENT = {"path": str, "label": "int16", "augment": "uint8", "window": "uint16", "group": str}
CLIENT_STATS = {"size": "int64", "mtime_ns": "int64"}
TASKS = {"status": "uint8", "error": str}


def make_store(folder: Path, rows: int, *, client: str, feature_shards: bool) -> Path:
    """A store of ``rows`` made-up rows in one of the layouts."""
    import zarr

    group = zarr.open_group(folder, mode="w")
    rng = np.random.default_rng(0)
    paths = np.array([f"d{i // 1000:04d}/f{i:07d}.wav" for i in range(rows)], dtype=np.dtypes.StringDType())
    values = {
        "features": rng.standard_normal((rows, FEATURES), dtype=np.float32),
        "path": paths,
        "label": rng.integers(0, 3, rows).astype("int16"),
        "augment": np.zeros(rows, "uint8"),
        "window": np.zeros(rows, "uint16"),
        "group": np.full(rows, "", dtype=np.dtypes.StringDType()),
        "size": np.full(rows, 44_144, "int64"),
        "mtime_ns": np.full(rows, 1_700_000_000_000_000_000, "int64"),
        "status": np.ones(rows, "uint8"),
        "error": np.full(rows, "", dtype=np.dtypes.StringDType()),
    }
    dtypes = {"features": "float32", **CLIENT, **CLIENT_STATS, **TASKS}
    for name, dtype in dtypes.items():
        mine = name not in TASKS and name != "features"  # the client's arrays
        sharded = feature_shards if name == "features" else mine and client == "shards"
        shape = values[name].shape
        chunks = (BLOCK * (SHARD_BLOCKS if mine and client == "chunks" else 1), *shape[1:])
        shards = (BLOCK * SHARD_BLOCKS, *shape[1:]) if sharded else None
        array = group.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=dtype)
        array[...] = values[name]
    return folder


def objects(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def read_columns(folder: Path) -> None:
    """The columns a rerun's plan and a training run's row selection read whole."""
    import zarr

    group = zarr.open_group(folder, mode="r")
    for name in ("path", "augment", "window", "size", "mtime_ns", "status", "label", "group"):
        group[name][:]


def epoch(folder: Path) -> None:
    """One pass over the features as ``training.dataset.stream`` reads them: 64 chunks at a time, seeded order."""
    import zarr

    features = zarr.open_group(folder, mode="r")["features"]
    n = features.shape[0]
    chunks = np.random.default_rng(1).permutation(-(-n // BLOCK))
    for start in range(0, len(chunks), 64):
        rows = np.concatenate(
            [np.arange(c * BLOCK, min((c + 1) * BLOCK, n)) for c in np.sort(chunks[start : start + 64])]
        )
        features.get_orthogonal_selection((rows, slice(None)))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=250_000)
    args = p.parse_args()
    print(f"# {machine()}; {args.rows} rows; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'layout':<28} {'objects':>8} {'columns s':>10} {'CPU s':>6} {'epoch s':>8} {'CPU s':>6}")
    layouts = {
        "a chunk a block": ("blocks", False),
        "client's arrays sharded": ("shards", False),
        "client's in 64-block chunks": ("chunks", False),
        "features sharded too": ("shards", True),
    }
    with tempfile.TemporaryDirectory(prefix="batchgenre-shards-") as tmp:
        for name, (client, feature_shards) in layouts.items():
            folder = make_store(
                Path(tmp) / name.replace(" ", "-"), args.rows, client=client, feature_shards=feature_shards
            )
            columns = median_wall_and_cpu(lambda folder=folder: read_columns(folder), repeats=args.repeats)
            one_epoch = median_wall_and_cpu(lambda folder=folder: epoch(folder), repeats=args.repeats)
            print(
                f"{name:<28} {objects(folder):>8} {columns[0]:10.2f} {columns[1]:6.2f} "
                f"{one_epoch[0]:8.2f} {one_epoch[1]:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
