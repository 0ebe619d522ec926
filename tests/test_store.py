"""The store's one-writer lock and chunk-aligned block writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from batchgenre.errors import BatchgenreError
from batchgenre.store import DONE, LOCK_PATTERN, PENDING, BlockRows, FeatureStore, writer_lock
from tests.conftest import run_cli
from tests.test_featurize import make_corpus


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def lock_files(folder) -> dict[int, dict]:
    """generation -> content of each writer lock file in a store folder."""
    found = ((LOCK_PATTERN.fullmatch(f.name), f) for f in folder.iterdir()) if folder.exists() else ()
    return {int(m.group(1)): json.loads(f.read_text()) for m, f in found if m}


def test_lock_is_released_on_exit_and_refuses_a_second_writer(tmp_path):
    url = str(tmp_path / "f.zarr")
    for generation in (0, 1):  # a released lock is the next run's to take
        with writer_lock(url):
            held = lock_files(tmp_path / "f.zarr.lock")
            assert list(held) == [generation] and not held[generation]["released"]
            assert held[generation]["pid"] == os.getpid() and held[generation]["host"] == socket.gethostname()
            with pytest.raises(BatchgenreError, match=f"being written by another featurize \\(pid {os.getpid()}"):
                with writer_lock(url):
                    pass
        assert lock_files(tmp_path / "f.zarr.lock")[generation]["released"]


@pytest.mark.parametrize(
    "lock, taken_over",
    [
        ({"host": socket.gethostname(), "pid": "dead", "age": 0}, True),
        ({"host": "elsewhere", "pid": 1, "age": 3600}, True),
        ({"host": "elsewhere", "pid": 1, "age": 0}, False),
    ],
)
def test_a_crashed_runs_lock_is_recovered_and_a_live_one_is_not(tmp_path, lock, taken_over):
    folder = tmp_path / "f.zarr.lock"
    folder.mkdir()
    # The heartbeat's age is set here, not at collection: the suite may take minutes to get here.
    lock = {
        "host": lock["host"],
        "pid": dead_pid() if lock["pid"] == "dead" else lock["pid"],
        "started": 0,
        "heartbeat": time.time() - lock["age"],
    }
    (folder / "writer.lock.0.json").write_text(json.dumps(lock))
    if taken_over:
        with writer_lock(str(tmp_path / "f.zarr")):
            assert lock_files(folder)[1]["pid"] == os.getpid() and 0 not in lock_files(folder)
    else:
        with pytest.raises(BatchgenreError, match="on elsewhere"):
            with writer_lock(str(tmp_path / "f.zarr")):
                pass
        assert lock_files(folder) == {0: lock}  # a live run's lock is left as it was


def test_a_second_featurize_on_a_store_being_written_is_refused(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=6, seconds=8)
    out = tmp_path / "f.zarr"
    first = subprocess.Popen(
        [sys.executable, "-m", "batchgenre.cli", "featurize", str(corpus), "--out", str(out), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock_files(tmp_path / "f.zarr.lock") and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli("featurize", corpus, "--out", out, "--workers", "1")
        assert second.returncode == 2 and "being written by another featurize" in second.stderr, second.stderr
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
    store = FeatureStore.open(str(out))
    assert (store.column("status") == DONE).all() and all(
        lock["released"] for lock in lock_files(tmp_path / "f.zarr.lock").values()
    )


def test_block_writes_cover_whole_chunks_and_status_goes_last(tmp_path):
    store = FeatureStore.create(str(tmp_path / "f.zarr"), attrs={}, n_features=3, rows_per_chunk=4)
    store.plan_rows([f"f{i}.wav" for i in range(10)], [0] * 10)
    assert store.n_blocks == 3 and store.block_bounds(2) == (8, 10)
    rows = BlockRows(np.ones((2, 3), np.float32), np.full(2, DONE, np.uint8), np.array(["", ""], dtype=object))
    store.write_block(2, rows)
    assert store.column("status").tolist() == [PENDING] * 8 + [DONE] * 2
    with pytest.raises(ValueError, match="block 0 has 4 rows"):
        store.write_block(0, rows)


def test_rows_left_without_a_path_by_a_killed_plan_are_filled_first(tmp_path):
    store = FeatureStore.create(str(tmp_path / "f.zarr"), attrs={}, n_features=3, rows_per_chunk=4)
    store.plan_rows(["a.wav", "b.wav"], [0, 1])
    for name in ("features", "label", "path", "augment", "status", "error"):  # grown, then killed before writing
        array = store.group[name]
        array.resize((5, *array.shape[1:]))
    store.plan_rows(["c.wav", "d.wav", "e.wav", "f.wav"], [2, 3, 4, 5], [0, 0, 1, 0])
    assert store.column("path").tolist() == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav"]
    assert store.column("label").tolist() == [0, 1, 2, 3, 4, 5] and store.column("augment").tolist() == [
        0,
        0,
        0,
        0,
        1,
        0,
    ]


@pytest.mark.parametrize("released, alive", [(True, True), (False, False), (False, True)])
def test_a_lock_an_earlier_version_left_inside_the_store_goes_once_its_run_is_over(tmp_path, released, alive):
    store = tmp_path / "f.zarr"
    store.mkdir()
    pid = os.getpid() if alive else dead_pid()
    old = {"host": socket.gethostname(), "pid": pid, "started": 0, "heartbeat": time.time(), "released": released}
    (store / "writer.lock.3.json").write_text(json.dumps(old))
    if released or not alive:
        with writer_lock(str(store)):
            assert lock_files(store) == {} and list(lock_files(tmp_path / "f.zarr.lock")) == [0]
    else:
        with pytest.raises(BatchgenreError, match="being written by an older batchgenre"):
            with writer_lock(str(store)):
                pass
        assert lock_files(store) == {3: old}


def test_zarr_lists_a_featurized_store_without_a_warning(tmp_path):
    import warnings

    import zarr

    url = str(tmp_path / "f.zarr")
    with writer_lock(url):
        FeatureStore.create(url, attrs={}, n_features=2, rows_per_chunk=2)
    assert lock_files(tmp_path / "f.zarr.lock")[0]["released"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr warns of any object in the group that is not its own
        names = {name for name, _ in zarr.open_group(url, mode="r").members(max_depth=None)}
    assert {"features", "status", "path"} <= names
