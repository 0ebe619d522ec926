"""One training epoch streamed from the zarr store against the same epoch from arrays held in memory.

    python -m benchmarks.stream --rows 100000

Builds a store of ``--rows`` random tutorial-sized rows (498 float32 values, 256 rows a chunk),
then times, for each ``--batch-size`` (32 and 256 by default), as medians over ``--repeats``:
reading every row through the tf.data stream alone, one epoch of the tutorial model fed by that
stream as training feeds it (endless, ``steps_per_epoch`` batches an epoch), and one epoch fed by
NumPy arrays with Keras's own shuffling. The in-memory run needs every row in memory (2 GB at
10^6 rows) and is left out with ``--stream-only``; the stream holds about four windows of 64 chunks.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from batchgenre.features import get_feature_set
from batchgenre.store import DONE, BlockRows, FeatureStore
from batchgenre.training.config import ModelConfig, TrainConfig
from batchgenre.training.dataset import batches, read_features, stream
from benchmarks.common import machine, median_seconds, parser

ROWS_PER_CHUNK = 256


def make_store(url: str, *, rows: int, genres: int = 10) -> FeatureStore:
    fs = get_feature_set("tutorial")
    attrs = {"feature_set": fs.name, "feature_names": fs.names, "genres": [f"g{i}" for i in range(genres)]}
    store = FeatureStore.create(url, attrs=attrs, n_features=fs.size, rows_per_chunk=ROWS_PER_CHUNK)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, genres, rows)
    store.plan_rows([f"g/{i}.wav" for i in range(rows)], labels.tolist())
    for block in range(store.n_blocks):
        start, stop = store.block_bounds(block)
        n = stop - start
        features = np.abs(rng.normal(size=(n, fs.size))).astype(np.float32) + labels[start:stop, None]
        store.write_block(block, BlockRows(features, np.full(n, DONE, np.uint8), np.full(n, "", dtype=object)))
    return store


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 256])
    p.add_argument("--stream-only", action="store_true", help="time the streamed epochs alone, no arrays in memory")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = make_store(str(Path(tmp, "bench.zarr")), rows=args.rows)
        made = time.perf_counter() - started
        print(f"# {args.rows} rows x 498 float32, {ROWS_PER_CHUNK} rows a chunk; {machine()}")
        print(f"store written in {made:.1f} s")
        print(f"{'batch':>5} {'what':<40} {'s/epoch':>8} {'rows/s':>10} {'CPU s':>8}")
        for batch_size in args.batch_size:
            epoch(store, rows=args.rows, batch_size=batch_size, repeats=args.repeats, stream_only=args.stream_only)


def epoch(store: FeatureStore, *, rows: int, batch_size: int, repeats: int, stream_only: bool = False) -> None:
    """Print the three timings and their ratio for one batch size.

    The streamed and in-memory epochs alternate, so that a change in the machine's load falls on
    both; the ratios are the medians of each pair's, in wall time and in this process's CPU time
    (which a loaded machine disturbs less).
    """
    from batchgenre.training.backend import seed_everything
    from batchgenre.training.model import build_model

    index = np.arange(rows)
    labels = store.column("label").astype(np.int32)
    seed_everything(0)
    start = peak_mib()
    model = build_model(
        n_genres=10,
        feature_names=store.attrs["feature_names"],
        model=ModelConfig(),
        train=TrainConfig(batch_size=batch_size),
        adapt_data=stream(store, index, labels, batch_size=4096),
    )
    one_pass = stream(store, index, labels, batch_size=batch_size, shuffle_seed=0, shuffle_buffer=4096)
    read_only = median_seconds(lambda: sum(1 for _ in one_pass), repeats=repeats)
    ds = stream(store, index, labels, batch_size=batch_size, shuffle_seed=0, shuffle_buffer=4096, repeat=True)
    steps = batches(rows, batch_size)

    def streamed():
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    streamed()  # trace the graph once
    streaming = peak_mib()
    if stream_only:
        costs = [cost(streamed) for _ in range(repeats)]
        wall, cpu = statistics.median(c[0] for c in costs), statistics.median(c[1] for c in costs)
        print(
            f"{batch_size:>5} {'stream alone (read, shuffle, batch)':<40} {read_only:>8.2f} {rows / read_only:>10.0f}"
        )
        print(f"{batch_size:>5} {'fit, streamed from the store':<40} {wall:>8.2f} {rows / wall:>10.0f} {cpu:>8.2f}")
        print(f"{batch_size:>5} peak memory grew {streaming - start:.0f} MiB while streaming", flush=True)
        return

    x = read_features(store, index)
    model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0)
    in_memory = peak_mib()

    def from_memory():
        model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    pairs = [(cost(streamed), cost(from_memory)) for _ in range(repeats)]
    fit_streamed, fit_memory = (
        (statistics.median(wall for wall, _ in costs), statistics.median(cpu for _, cpu in costs))
        for costs in zip(*pairs, strict=True)
    )
    for what, (seconds, cpu) in (
        ("stream alone (read, shuffle, batch)", (read_only, float("nan"))),
        ("fit, streamed from the store", fit_streamed),
        ("fit, from arrays in memory", fit_memory),
    ):
        print(f"{batch_size:>5} {what:<40} {seconds:>8.2f} {rows / seconds:>10.0f} {cpu:>8.2f}")
    ratio = statistics.median(s[0] / m[0] for s, m in pairs)
    cpu_ratio = statistics.median(s[1] / m[1] for s, m in pairs)
    print(
        f"{batch_size:>5} streamed / in memory: {ratio:.2f}x the time, {cpu_ratio:.2f}x the CPU time; "
        f"peak memory grew {streaming - start:.0f} MiB "
        f"while streaming, then {in_memory - streaming:.0f} MiB for the arrays ({x.nbytes / 2**20:.0f} MiB)",
        flush=True,
    )


def cost(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all its threads) of one call of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_mib() -> float:
    """This process's peak resident memory so far (it only grows: each figure is a growth over the last)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
