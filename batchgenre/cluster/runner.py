"""Run one task per block on the cluster for featurize and classify-dir.

Submit, follow, count files, survive lost blocks.

A block's task calls ``file_done()`` after each file; a worker adds these up and reports each
running task's count at most every ``REPORT_EVERY_S``, so the bar moves while blocks run at a few
messages a second per worker, whatever the files' rate. A block that ends (or is lost) tops its
count up to its size, so a late or missing report never leaves the total short.

Blocks are submitted a few per worker thread ahead of the ones running, and each is let go once
its result is handled: the client, the scheduler and the workers hold a bounded number of blocks,
not the corpus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import distributed

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# Events under this topic carry (task key, files that task finished since its last report).
FILE_DONE_TOPIC = "batchgenre-file-done"
# Seconds a worker gathers a task's finished files before reporting them in one event.
REPORT_EVERY_S = 0.5
# Blocks submitted ahead per worker thread: enough that no worker waits on the client's loop.
BLOCKS_AHEAD_PER_THREAD = 4
MIN_BLOCKS_AHEAD = 16

# Files done per running task on this worker, not reported yet; a timer reports and clears each.
_unreported: dict[str, int] = {}
_unreported_lock = threading.Lock()


def file_done() -> None:
    """Count one more file of this task as done; a no-op outside a Dask task.

    The first file since the task's last report starts a timer that reports the files counted
    by then (``REPORT_EVERY_S``): one small message per task per interval, batched with the
    worker's others to the scheduler.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # called in a plain process (a test, a benchmark): nobody is following
        return
    key = worker.get_current_task()
    with _unreported_lock:
        first = key not in _unreported
        _unreported[key] = _unreported.get(key, 0) + 1
    if first:
        timer = threading.Timer(REPORT_EVERY_S, _report, (worker, key))
        timer.daemon = True
        timer.start()


def _report(worker, key: str) -> None:
    with _unreported_lock:
        n = _unreported.pop(key, 0)
    worker.log_event(FILE_DONE_TOPIC, (key, n))  # safe from any thread: it hands over to the worker's loop


def blocks_ahead(client: distributed.Client) -> int:
    """How many blocks a run keeps submitted at once on ``client``'s cluster as it is now."""
    return max(MIN_BLOCKS_AHEAD, BLOCKS_AHEAD_PER_THREAD * sum(client.nthreads().values()))


def run_blocks(
    client: distributed.Client,
    task: Callable[..., Any],
    blocks: Iterable[tuple[K, tuple, int]],
    *,
    total: int,
    options: Mapping[str, Any],
    on_finished: Callable[[K, Any, Exception | None], None],
    what: str = "files",
) -> list[str]:
    """Run ``task(*args, **options)`` for every block ``(key, args, n_files)`` and follow them to the end.

    ``blocks`` is read lazily, ``blocks_ahead`` at a time; ``total`` is the sum of their files,
    for the bar. ``on_finished(key, result, error)`` is called in this thread as each block
    ends, with the task's result, or with ``error`` (and result None) when the block could not
    run: a lost worker, an unwritable store. Either way the other blocks go on. Returns the
    addresses of workers that left unexpectedly during the run.
    """
    from distributed import as_completed

    from batchgenre.cluster.connection import lost_workers, stop_if_interrupted
    from batchgenre.cluster.progress import Progress

    # Blocks submitted and not yet ended: task key -> [block key, its files, files counted so far].
    running: dict[str, list] = {}
    lock = threading.Lock()
    started = time.time()
    pending = iter(blocks)
    with Progress(total, what=what) as progress:

        def count(task_key: str, n: int | None) -> None:
            """Count ``n`` more files of a running block, or (None) the rest of one that ended."""
            # Reports arrive on the client's event-loop thread, block ends on this one.
            with lock:
                entry = running.get(task_key) if n is not None else running.pop(task_key, None)
                if entry is None:  # a report that came after its block ended
                    return
                n = entry[1] - entry[2] if n is None else min(n, entry[1] - entry[2])
                entry[2] += n
            progress.update(n)

        def on_files(event: tuple[float, Any]) -> None:
            task_key, n = event[1]
            count(task_key, n)

        def submit_more(finished, room: int) -> None:
            for key, args, n in pending:
                future = client.submit(task, *args, **options, pure=False)
                with lock:
                    running[future.key] = [key, n, 0]
                finished.add(future)
                room -= 1
                if room <= 0:
                    return

        # Subscribed before the first task is submitted, so no block's first files go uncounted.
        client.subscribe_topic(FILE_DONE_TOPIC, on_files)
        try:
            finished = as_completed()
            submit_more(finished, blocks_ahead(client))
            while not finished.is_empty():
                # Polled rather than blocked on, so that a Ctrl-C stops the run within a tenth of a
                # second even while every block is long (see cluster.stop_if_interrupted).
                stop_if_interrupted()
                if not finished.has_ready():
                    time.sleep(0.1)
                    continue
                future = next(finished)
                key = running[future.key][0]
                try:
                    result, error = future.result(), None
                except Exception as failure:  # a lost worker or an unwritable store: keep the other blocks
                    result, error = None, failure
                future.release()  # the worker may drop the result now: a run holds no more than its blocks ahead
                on_finished(key, result, error)
                count(future.key, None)
                submit_more(finished, 1)
        finally:
            client.unsubscribe_topic(FILE_DONE_TOPIC)
    return lost_workers(client, since=started)
