"""Shared fixtures: the real GTZAN clips when the environment points at them, and small generated corpora."""

from __future__ import annotations

import os
import subprocess
import sys
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
