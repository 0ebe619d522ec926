"""The Dask cluster: start a local one or connect to one by address, and tune worker processes."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from batchgenre.errors import BatchgenreError

if TYPE_CHECKING:
    import distributed

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def tune_worker() -> None:
    """Make this process fast for feature extraction; cheap to call once per task.

    distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_``, and setting any glibc malloc variable
    freezes the mmap threshold at 128 KiB: every spectrogram then becomes a fresh mmap and
    page-faults on first touch (0.24 s/file instead of 0.155 s measured for the tutorial set).
    Raising the thresholds here, inside the task, also fixes workers the user started with
    ``dask worker``. BLAS pools are pinned to one thread: Dask already runs one task per core.
    """
    global _tuned
    if _tuned:
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name and "libc.so" in libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's maximum on 64-bit
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 2**20)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # librosa warns per file about short or toneless clips; over a corpus that is noise in the log.
    warnings.filterwarnings("ignore", category=UserWarning)
    _tuned = True


# The feature sets this process has warmed up (warm_up), by name.
_warmed: set[str] = set()


def warm_up(feature_set: str | None = None) -> None:
    """Pay once per process what the first file of ``feature_set`` would: numba compilation and filter banks.

    None: only the imports every file needs (decoders, resampler, the feature sets' modules).
    A set's parts are each warmed once per process, and only those that ask for it
    (``FeatureSet.warm_up``): a run of musicnn alone compiles none of librosa's kernels, and a
    run of ``robust`` no longer pays for ``tutorial`` and ``fast`` too.
    """
    import numpy as np

    import batchgenre.audio  # noqa: F401  (decoders and resampler: every file needs them)
    from batchgenre.features import get_feature_set

    if feature_set is None:
        return
    y = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    for part in get_feature_set(feature_set).parts:
        if part.warm_up and part.name not in _warmed:
            part.extract(y, sr=22050)
            _warmed.add(part.name)


class _ShutdownHeartbeatRace(logging.Filter):
    """Drop a local worker's "Failed to communicate with scheduler during heartbeat" at shutdown.

    When a LocalCluster closes, a worker's heartbeat can still be in flight as the scheduler
    drops its connection (dask/distributed#7105); the worker then logs the closed stream as an
    ERROR with a traceback, after the run's last line. The scheduler lives in this command's own
    process, so a closed heartbeat stream only ever means that the command is ending.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to communicate with scheduler during heartbeat")


def dask_setup(worker) -> None:
    """Worker preload (distributed calls it in each local worker process as it starts)."""
    logging.getLogger("distributed.worker").addFilter(_ShutdownHeartbeatRace())


_interrupted = threading.Event()
_clients_live = 0  # connect() blocks open: a Ctrl-C then waits for a safe point


def _on_ctrl_c(signum: int, frame) -> None:
    """SIGINT: remember it; raise KeyboardInterrupt at once unless a Dask client is live.

    An interrupt raised inside one of distributed's blocking client calls leaves it half
    cancelled (it logs a NameError traceback from its own cancel callback), and Python drops one
    raised inside a finalizer; so while a client is live the run stops at the next safe point,
    :func:`stop_if_interrupted`, and closes its cluster in the ordinary way.
    """
    _interrupted.set()
    if not _clients_live:
        raise KeyboardInterrupt


def stop_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed: called where a run can stop cleanly."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_handled() -> Iterator[None]:
    """Install the command line's Ctrl-C handling (main thread only) for the block, and forget earlier presses."""
    _interrupted.clear()
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _client_live() -> Iterator[None]:
    global _clients_live
    _clients_live += 1
    try:
        yield
    finally:
        _clients_live -= 1


@contextlib.contextmanager
def connect(*, workers: int = 2, scheduler: str | None = None) -> Iterator[distributed.Client]:
    """A Client on a new LocalCluster of ``workers`` single-threaded processes, or on ``scheduler``.

    Yields the client; the local cluster, if one was started, is closed on exit.
    """
    with _client_live():
        with _connected(workers=workers, scheduler=scheduler) as client:
            stop_if_interrupted()
            yield client


@contextlib.contextmanager
def _connected(*, workers: int, scheduler: str | None) -> Iterator[distributed.Client]:
    from distributed import Client

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise BatchgenreError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        with client:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            if n == 0:
                raise BatchgenreError(
                    f"the Dask scheduler at {scheduler} has no workers: start some with `dask worker {scheduler}`"
                )
            log.info("connected to %s (%d workers); dashboard: %s", scheduler, n, client.dashboard_link)
            yield client
        return

    if workers < 1:
        raise BatchgenreError(f"--workers must be at least 1, got {workers}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers > cores:
        log.warning(
            "--workers %d is more than this machine's %d CPU cores: they will share them, "
            "which adds memory and start-up time, not speed",
            workers,
            cores,
        )
    log.info("starting a local Dask cluster of %d workers", workers)
    # Workers inherit these at spawn; they keep numpy/numba from oversubscribing the cores.
    env = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environ(env))
        cluster = stack.enter_context(_start_local(workers))
        client = stack.enter_context(Client(cluster))
        log.info("started a local Dask cluster of %d workers; dashboard: %s", workers, client.dashboard_link)
        yield client


@contextlib.contextmanager
def _start_local(workers: int) -> Iterator[distributed.LocalCluster]:
    """A LocalCluster whose worker processes never see the terminal's Ctrl-C; closed on exit, even when interrupted.

    Ctrl-C reaches every process in the terminal's foreground group: workers killed by it print
    their own tracebacks, and a cluster interrupted halfway through starting cannot be closed
    (distributed's atexit hook then fails on it). So the cluster is built in a thread that blocks
    SIGINT: its event loop, and every worker process spawned from it, inherit the blocked signal,
    while this thread stays interruptible. Interrupted here, it lets the start finish, closes the
    cluster and passes the interrupt on; the client alone decides when workers stop.
    """
    from multiprocessing import resource_tracker

    from distributed import LocalCluster

    built: dict[str, object] = {}

    def build() -> None:
        try:
            built["cluster"] = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:8787",
                silence_logs=logging.ERROR,
                preload=[__name__],  # dask_setup above
            )
        except BaseException as error:  # handed to the caller's thread
            built["error"] = error

    # Starting multiprocessing's resource tracker unblocks SIGINT in the thread that starts it
    # (bpo-33613); started here first, it leaves the cluster's threads as they are.
    resource_tracker.ensure_running()
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        builder = threading.Thread(target=build, name="batchgenre-start-cluster", daemon=True)
        builder.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
    # A Ctrl-C meanwhile is only noted (a client is live, see _on_ctrl_c): the start finishes, so
    # that the whole cluster can be closed.
    builder.join()
    if "error" in built:
        raise built["error"]
    if _interrupted.is_set():
        built["cluster"].close()
        raise KeyboardInterrupt
    with built["cluster"] as cluster:
        yield cluster


def lost_workers(client: distributed.Client, *, since: float) -> list[str]:
    """Addresses of workers that left unexpectedly (killed, crashed, out of memory) after ``since`` (time.time())."""
    return [
        event.get("worker", "?")
        for stamp, event in client.get_events("all")
        if stamp >= since and event.get("action") == "remove-worker" and not event.get("expected", False)
    ]


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
