"""The store under races and kills: two runs starting together, a lock that cannot be kept, a block
killed mid-write, a file replaced between runs."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from batchgenre.audio.corpus import Clip, discover
from batchgenre.cluster.featurize import store_attrs
from batchgenre.cluster.plan import plan, select
from batchgenre.errors import BatchgenreError
from batchgenre.store import DONE, PENDING, FeatureStore, writer_lock
from tests import synth
from tests.conftest import run_cli
from tests.test_featurize import make_corpus, store_rows
from tests.test_store import lock_files

RACES = 200  # half on fresh stores, half on stores whose lock a killed run left
REFUSED = "being written by another featurize"


def hold_and_die(urls: list[str], holding) -> None:
    """Take the lock of every store in ``urls`` and wait to be killed (in a child process)."""
    with contextlib.ExitStack() as stack:
        for url in urls:
            stack.enter_context(writer_lock(url))
        holding.set()
        threading.Event().wait()


def race(urls: list[str], start, tried, results) -> None:
    """For each store: wait for the other racer, take the lock, say how it went, hold it until both have tried."""
    for i, url in enumerate(urls):
        start.wait(timeout=60)
        try:
            with writer_lock(url):
                results.put((i, "won"))
                tried.wait(timeout=60)
        except BatchgenreError as error:
            results.put((i, str(error)))
            tried.wait(timeout=60)
        except Exception as error:  # said, so that the race that broke is the one that fails
            results.put((i, f"{type(error).__name__}: {error}"))


def run_races(urls: list[str]) -> None:
    """Two processes released together by a barrier for each store; fails at the first race that did
    not end in one lock taken and one refusal."""
    context = multiprocessing.get_context("spawn")
    holding = context.Event()
    killed = context.Process(target=hold_and_die, args=(urls[1::2], holding))
    killed.start()
    assert holding.wait(timeout=120), "the run to kill never took its locks"
    killed.kill()  # SIGKILL: its locks stay behind, naming a process that is gone
    killed.join()

    start, tried, results = context.Barrier(2), context.Barrier(2), context.Queue()
    racers = [context.Process(target=race, args=(urls, start, tried, results)) for _ in range(2)]
    for racer in racers:
        racer.start()
    outcomes: dict[int, list[str]] = {i: [] for i in range(len(urls))}
    try:
        for _ in range(2 * len(urls)):
            i, outcome = results.get(timeout=120)
            outcomes[i].append(outcome)
            if len(outcomes[i]) == 2:
                first, second = outcomes[i]
                assert sorted([first == "won", second == "won"]) == [False, True], f"race {i}: {first!r} / {second!r}"
                assert REFUSED in (second if first == "won" else first), f"race {i}: {first!r} / {second!r}"
    except BaseException:
        for racer in racers:
            racer.kill()
        raise
    for racer in racers:  # let the last winner release its lock
        racer.join(timeout=60)


def test_of_two_runs_started_together_exactly_one_takes_the_lock(tmp_path):
    urls = [str(tmp_path / f"{i}.zarr") for i in range(RACES)]
    run_races(urls)
    for i, url in enumerate(urls):  # every store ends with one released lock; a taken-over one is gone
        assert [(g, lock["released"]) for g, lock in lock_files(Path(url + ".lock")).items()] == [(i % 2, True)]


@pytest.mark.slow
def test_of_two_runs_started_together_on_s3_exactly_one_takes_the_lock(s3):
    run_races([f"{s3}/{i}.zarr" for i in range(20)])


HOLD_AND_BREAK = """
import json, os, shutil, sys, threading
from batchgenre.errors import BatchgenreError
from batchgenre.store import writer_lock

url, how = sys.argv[1:3]
if how == "store deleted":
    os.makedirs(url)
try:
    with writer_lock(url, heartbeat_s=0.05):
        if how == "deleted":
            shutil.rmtree(url + ".lock")
        elif how == "store deleted":
            shutil.rmtree(url)
        else:  # what a run that found this one's heartbeat stale leaves
            with open(f"{url}.lock/writer.lock.1.json", "x") as f:
                json.dump({"host": "elsewhere", "pid": 7, "started": 0, "heartbeat": 0, "released": False}, f)
        threading.Event().wait(300)
    print("the run went on without its lock")
except BatchgenreError as error:
    print(f"batchgenre: {error}")
"""


@pytest.mark.parametrize(
    "how, reason",
    [
        ("deleted", "its lock file {url}.lock/writer.lock.0.json was deleted"),
        ("store deleted", "its store {url} was deleted"),
        ("taken over", "another featurize (pid 7 on elsewhere) took its writer lock over"),
    ],
)
def test_a_run_that_loses_its_lock_stops_with_one_line(tmp_path, how, reason):
    url = str(tmp_path / "f.zarr")
    result = subprocess.run(
        [sys.executable, "-c", HOLD_AND_BREAK, url, how], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"batchgenre: {url}: this run stopped: {reason.format(url=url)}"), (
        lines
    )
    if how == "taken over":  # the other run's lock is left alone
        assert lock_files(tmp_path / "f.zarr.lock")[1]["host"] == "elsewhere"


def test_two_featurize_commands_started_together_write_once(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=4, seconds=4)
    out = tmp_path / "f.zarr"
    command = [sys.executable, "-m", "batchgenre.cli", "featurize", str(corpus), "--out", str(out), "--workers", "1"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert sum("featurizing 12 files" in err for _, err in results) == 1
    assert sum(REFUSED in err and err.count("\n") == 1 for _, err in results) == 1
    assert all(status == DONE for status, _, _ in store_rows(out).values())


TEAR_A_CHUNK = """
import os, sys, threading
from pathlib import Path

url, root, mark = sys.argv[1:4]
open_file = Path.open


class HalfThenStop:
    # The point to kill at: half a chunk's bytes on disk, the rest never written.
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

    def write(self, data):
        data = memoryview(data).cast("B")
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        Path(mark).touch()
        threading.Event().wait()


def open_chunk(self, mode="r", *args, **kwargs):
    f = open_file(self, mode, *args, **kwargs)
    return HalfThenStop(f) if "/features/c/" in self.as_posix() and ("w" in mode or "x" in mode) else f


Path.open = open_chunk  # zarr's LocalStore opens every chunk it writes through Path.open
from batchgenre.cluster.featurize import Clip, featurize_block

featurize_block(url, 0, root, "fast", Clip(), retry_failed=False, file_timeout=60)
"""


def test_a_block_killed_mid_write_reads_as_not_done_and_a_resume_completes_it(tmp_path):
    corpus = (make_corpus(tmp_path / "corpus", per_genre=2, seconds=1)).resolve()
    whole, torn = tmp_path / "whole.zarr", tmp_path / "torn.zarr"
    assert run_cli("featurize", corpus, "--out", whole, "--workers", "1", "--features", "fast").returncode == 0
    attrs = store_attrs(feature_set_name="fast", clip=Clip(), root=corpus)
    store = FeatureStore.create(str(torn), attrs=attrs, n_features=len(attrs["feature_names"]), rows_per_chunk=4)
    plan(store, *select(corpus, discover(corpus), None), corpus, augment=0)

    mark = tmp_path / "half-written"
    writer = subprocess.Popen(
        [sys.executable, "-c", TEAR_A_CHUNK, str(torn), str(corpus), str(mark)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mark.exists(), (
            f"the block never started its features chunk: {writer.stderr.read() if writer.poll() is not None else ''}"
        )
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # the writer and its decoding helper
        writer.wait()

    reopened = FeatureStore.open(str(torn))
    features, status = reopened.column("features"), reopened.column("status")  # reads without error
    assert (status == PENDING).all()
    assert np.isnan(features[:4]).all()  # block 0's chunk is absent, not half there

    result = run_cli("featurize", corpus, "--out", torn, "--workers", "1", "--features", "fast")
    assert result.returncode == 0, result.stderr
    expected, resumed = store_rows(whole), store_rows(torn)
    assert sorted(resumed) == sorted(expected)
    for path, (status, error, vector) in expected.items():
        assert resumed[path][:2] == (status, error)
        np.testing.assert_array_equal(resumed[path][2], vector)


def test_a_replaced_file_is_computed_again_and_the_rest_is_kept(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=2, seconds=1)
    out = tmp_path / "f.zarr"
    assert run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast").returncode == 0
    before = store_rows(out)

    same_size = corpus / "low" / "low.00000.wav"  # other audio, same length: only the mtime tells
    size = same_size.stat().st_size
    synth.write(same_size, synth.tone(freq=440, seconds=1))
    assert same_size.stat().st_size == size
    same_mtime = corpus / "high" / "high.00001.flac"  # other audio, other size, its old mtime put back
    stat = same_mtime.stat()
    synth.write(same_mtime, synth.noise(seconds=2, seed=9, amplitude=0.5), sr=44100)
    os.utime(same_mtime, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert same_mtime.stat().st_size != stat.st_size

    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast")
    assert result.returncode == 0, result.stderr
    assert (
        "2 files were replaced since they were featurized" in result.stderr and "featurizing 2 files" in result.stderr
    )
    fresh = tmp_path / "fresh.zarr"
    assert run_cli("featurize", corpus, "--out", fresh, "--workers", "1", "--features", "fast").returncode == 0
    after, expected = store_rows(out), store_rows(fresh)
    assert sorted(after) == sorted(expected)
    for path, (status, error, vector) in expected.items():
        assert after[path][:2] == (status, error)
        np.testing.assert_array_equal(after[path][2], vector)
    for path in ("low/low.00000.wav", "high/high.00001.flac"):
        assert not np.array_equal(after[path][2], before[path][2])
    rerun = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast")
    assert "nothing to do" in rerun.stderr and "were replaced" not in rerun.stderr


def test_a_store_from_before_file_stats_opens_resumes_and_then_notices_replacements(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=1)
    out = tmp_path / "f.zarr"
    assert run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast").returncode == 0
    for name in ("size", "mtime_ns"):  # the store as batchgenre made it before these columns
        shutil.rmtree(out / name)
    before = store_rows(out)

    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast")
    assert result.returncode == 0 and "nothing to do" in result.stderr, result.stderr
    store = FeatureStore.open(str(out))
    paths = store.column("path").tolist()
    assert store.column("size").tolist() == [(corpus / p).stat().st_size for p in paths]
    assert store.column("mtime_ns").tolist() == [(corpus / p).stat().st_mtime_ns for p in paths]

    synth.write(corpus / "noise" / "noise.00000.mp3", synth.noise(seconds=1, seed=5, amplitude=0.2))
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "fast")
    assert result.returncode == 0 and "featurizing 1 files" in result.stderr, result.stderr
    after = store_rows(out)
    assert not np.array_equal(after["noise/noise.00000.mp3"][2], before["noise/noise.00000.mp3"][2])
    np.testing.assert_array_equal(after["low/low.00000.wav"][2], before["low/low.00000.wav"][2])
