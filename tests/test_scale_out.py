"""Scale-out: a cluster started separately (`dask scheduler` + `dask worker` on loopback) and an S3 store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchgenre.store import DONE
from tests.conftest import run_cli
from tests.test_featurize import make_corpus, store_rows

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A scheduler and two single-threaded workers, each its own process, as on a real cluster."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = Path(sys.executable).with_name("dask")
    logs = tmp_path_factory.mktemp("cluster")
    processes = [
        subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=open(logs / "scheduler.log", "w"),
        )
    ]
    processes.append(
        subprocess.Popen(
            [str(dask), "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=open(logs / "workers.log", "w"),
            cwd=logs,
        )
    )
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout="2s") as client:
                if len(client.scheduler_info(n_workers=-1)["workers"]) == 2:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the cluster did not come up: " + (logs / "workers.log").read_text()[-2000:])
        time.sleep(0.5)
    yield address
    for process in reversed(processes):
        process.terminate()
        process.wait(timeout=30)


def test_featurize_on_an_existing_cluster_equals_a_local_run(tmp_path, scheduler):
    corpus = make_corpus(tmp_path / "corpus", per_genre=4, seconds=3)
    local, remote = tmp_path / "local.zarr", tmp_path / "remote.zarr"
    assert run_cli("featurize", corpus, "--out", local, "--workers", "2").returncode == 0
    result = run_cli("featurize", corpus, "--out", remote, "--scheduler", scheduler)
    assert result.returncode == 0, result.stderr
    assert f"connected to {scheduler} (2 workers)" in result.stderr
    expected, got = store_rows(local), store_rows(remote)
    assert sorted(got) == sorted(expected)
    for path, (status, error, vector) in expected.items():
        assert got[path][:2] == (status, error)
        np.testing.assert_array_equal(got[path][2], vector)


def test_a_relative_out_means_the_clients_folder_not_the_workers(tmp_path, scheduler):
    corpus = make_corpus(tmp_path / "corpus", per_genre=2, seconds=1)
    here = tmp_path / "client"
    here.mkdir()
    result = run_cli("featurize", corpus, "--out", "rel.zarr", "--scheduler", scheduler, cwd=here)
    assert result.returncode == 0, result.stderr
    rows = store_rows(here / "rel.zarr")
    assert len(rows) == 6 and all(status == DONE for status, _, _ in rows.values())


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=1)
    result = run_cli("featurize", corpus, "--out", tmp_path / "f.zarr", "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    assert (
        result.returncode == 2
        and "cannot reach the Dask scheduler" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_featurize_writes_an_s3_store_equal_to_a_local_one(tmp_path, s3):
    corpus = make_corpus(tmp_path / "corpus", per_genre=3, seconds=2)
    local = tmp_path / "local.zarr"
    assert run_cli("featurize", corpus, "--out", local, "--workers", "2").returncode == 0
    remote = f"{s3}/features.zarr"
    result = run_cli("featurize", corpus, "--out", remote, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert run_cli("featurize", corpus, "--out", remote, "--workers", "1").stderr.count("nothing to do") == 1
    expected, got = store_rows(local), store_rows(remote)
    assert sorted(got) == sorted(expected)
    for path, (_status, _error, vector) in expected.items():
        np.testing.assert_array_equal(got[path][2], vector)
