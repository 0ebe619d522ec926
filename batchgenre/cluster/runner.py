"""Run one task per block on the cluster for featurize and classify-dir.

Submit, follow, count files, survive lost blocks.

A block's task calls ``file_done()`` after each file, so the count moves while blocks are still
running; a block that ends (or is lost) tops its count up to its size, so a late or missing
report never leaves the total short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import distributed

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# Events under this topic carry the key of the task that finished one more file.
FILE_DONE_TOPIC = "batchgenre-file-done"


def file_done() -> None:
    """Tell the client following this task that one more of its files is done; a no-op outside a Dask task.

    Costs one small message, batched with the worker's others to the scheduler.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # called in a plain process (a test, a benchmark): nobody is following
        return
    worker.log_event(FILE_DONE_TOPIC, worker.get_current_task())


def run_blocks(
    client: distributed.Client,
    task: Callable[..., Any],
    blocks: Mapping[K, tuple[tuple, int]],
    *,
    options: Mapping[str, Any],
    on_finished: Callable[[K, Any, Exception | None], None],
    what: str = "files",
) -> list[str]:
    """Run ``task(*args, **options)`` for every block ``key -> (args, n_files)`` and follow them to the end.

    ``on_finished(key, result, error)`` is called in this thread as each block ends, with the
    task's result, or with ``error`` (and result None) when the block could not run: a lost
    worker, an unwritable store. Either way the other blocks go on. Returns the addresses of
    workers that left unexpectedly during the run.
    """
    from distributed import as_completed

    from batchgenre.cluster.connection import lost_workers, stop_if_interrupted
    from batchgenre.cluster.progress import Progress

    files = {key: n for key, (_, n) in blocks.items()}
    counted = dict.fromkeys(blocks, 0)
    ended: set[K] = set()
    lock = threading.Lock()
    started = time.time()
    with Progress(sum(files.values()), what=what) as progress:

        def count(key: K, *, to_end: bool) -> None:
            # Reports arrive on the client's event-loop thread, block ends on this one.
            with lock:
                if key in ended:
                    return
                n = files[key] - counted[key] if to_end else min(1, files[key] - counted[key])
                counted[key] += n
                if to_end:
                    ended.add(key)
            progress.update(n)

        by_task: dict[str, K] = {}

        def on_file(event: tuple[float, Any]) -> None:
            key = by_task.get(event[1])
            if key is not None:
                count(key, to_end=False)

        # Subscribed before the first task is submitted, so no block's first files go uncounted.
        client.subscribe_topic(FILE_DONE_TOPIC, on_file)
        try:
            futures = {client.submit(task, *args, **options, pure=False): key for key, (args, _) in blocks.items()}
            by_task.update((future.key, key) for future, key in futures.items())
            finished = as_completed(futures)
            while not finished.is_empty():
                # Polled rather than blocked on, so that a Ctrl-C stops the run within a tenth of a
                # second even while every block is long (see cluster.stop_if_interrupted).
                stop_if_interrupted()
                if not finished.has_ready():
                    time.sleep(0.1)
                    continue
                future = next(finished)
                key = futures[future]
                try:
                    result, error = future.result(), None
                except Exception as failure:  # a lost worker or an unwritable store: keep the other blocks
                    result, error = None, failure
                on_finished(key, result, error)
                count(key, to_end=True)
        finally:
            client.unsubscribe_topic(FILE_DONE_TOPIC)
    return lost_workers(client, since=started)
