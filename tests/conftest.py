"""Shared fixtures: the real GTZAN clips when the environment points at them, and small generated corpora."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

GTZAN_ENV = "BATCHGENRE_GTZAN"


@pytest.fixture(scope="session")
def gtzan() -> Path:
    """The gtzan-mini folder (one folder per genre of 22050 Hz mono wavs), or a skip saying why."""
    folder = os.environ.get(GTZAN_ENV)
    if not folder:
        beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan-mini"
        where = f"={beside}" if beside.is_dir() else " to a folder of GTZAN clips, one folder per genre"
        pytest.skip(f"real-audio test: set {GTZAN_ENV}{where}")
    if not Path(folder, "rock").is_dir():
        pytest.skip(f"{GTZAN_ENV}={folder} holds no genre folders")
    return Path(folder)


# A training config for a tiny model of the demo corpus's three genres: .format(store=, out=, epochs=).
DEMO_CONFIG = """
[data]
store = "{store}"
genres = ["chiptune", "drone", "techno"]
[train]
epochs = {epochs}
[output]
dir = "{out}"
"""


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a fresh process, as a user types it."""
    script = Path(sys.executable).with_name("batchgenre")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "batchgenre.cli"]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def s3(monkeypatch):
    """An S3-compatible server on loopback (moto), with credentials and endpoint in the usual variables."""
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its buckets in this process, whichever server made them: start from none.
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")).close()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("batchgenre-test")
    yield "s3://batchgenre-test"
    server.stop()
