"""Faults a real cluster meets.

Files that hang or crash the decoder, killed workers, repeated kills, hostile corpora.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchgenre.cluster.sandbox import BUSY, STARTING
from batchgenre.store import DONE, FAILED, FeatureStore
from tests import synth
from tests.conftest import run_cli
from tests.test_featurize import make_corpus, store_rows, write_bad_files

pytestmark = pytest.mark.slow


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def descendants(pid: int) -> dict[int, str]:
    table, found, frontier = processes(), {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                frontier.append(child)
    return found


def helpers(pid: int, state: bytes | None = None) -> list[int]:
    """Sandbox helpers under process ``pid``; only those whose process name says ``state`` when given."""
    found = []
    for child, cmdline in descendants(pid).items():
        if "batchgenre.cluster.sandbox" in cmdline:
            try:
                name = Path(f"/proc/{child}/comm").read_bytes().strip()
            except OSError:
                continue
            if state is None or name == state:
                found.append(child)
    return found


def start_featurize(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchgenre.cli", "featurize", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition, *, timeout: float = 120, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_file_past_the_time_limit_fails_alone(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=2, seconds=2)
    synth.write(corpus / "low" / "low.00050.wav", synth.tone(freq=100, seconds=15 * 60))
    out = tmp_path / "f.zarr"
    # The tutorial set, the slowest, takes about 30 s on those 15 minutes, and past 1 GiB: the cap is
    # lifted so that the clock alone stops it, however fast the machine.
    result = run_cli(
        "featurize",
        corpus,
        "--out",
        out,
        "--workers",
        "1",
        "--duration",
        "0",
        "--file-timeout",
        "1",
        "--features",
        "tutorial",
        "--memory-cap",
        "64G",
    )
    assert result.returncode == 3, result.stderr
    rows = store_rows(out)
    assert rows["low/low.00050.wav"][:2] == (FAILED, "timed out after 1 s (raise the limit with --file-timeout)")
    assert sum(status == DONE for status, _, _ in rows.values()) == 6


@pytest.mark.parametrize("state", [STARTING, BUSY], ids=["warming-up", "mid-file"])
def test_a_crash_in_the_decoder_fails_that_file_alone(tmp_path, state):
    corpus = tmp_path / "corpus"
    for i in range(3):
        synth.write(corpus / f"long{i}.wav", synth.tone(freq=200 + 100 * i, seconds=3 * 60))
    out = tmp_path / "f.zarr"
    # The helper names its state, so the crash lands in its warm-up or in its first file, however fast
    # the machine; either way the file that was waiting for it fails alone, with the same reason.
    process = start_featurize(corpus, "--out", out, "--workers", "1", "--duration", "0", "--features", "tutorial")
    try:
        helper = wait_for(lambda: next(iter(helpers(process.pid, state)), None), what=f"a helper in state {state}")
        os.kill(helper, signal.SIGSEGV)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 3, stderr
    rows = store_rows(out)
    crashed = [p for p, (status, error, _) in rows.items() if status == FAILED]
    assert len(crashed) == 1, {p: r[:2] for p, r in rows.items()}
    assert rows[crashed[0]][1] == "the decoder crashed (killed by SIGSEGV)"
    assert sum(status == DONE for status, _, _ in rows.values()) == 2


def test_a_killed_worker_loses_nothing_and_is_reported(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=20, seconds=10)
    out = tmp_path / "f.zarr"
    process = start_featurize(corpus, "--out", out, "--workers", "2")
    try:
        status_chunks = out / "status" / "c"
        wait_for(lambda: status_chunks.exists() and any(status_chunks.iterdir()), what="the first block")
        workers = [p for p, c in descendants(process.pid).items() if "spawn_main" in c]
        assert workers, "no worker processes found"
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "1 worker(s) were lost during the run" in stderr
    rows = store_rows(out)
    assert len(rows) == 60 and all(status == DONE for status, _, _ in rows.values())


def test_repeated_sigkills_at_different_points_leave_the_uninterrupted_store(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=30, seconds=20)  # about 7 s of work on 2 workers
    whole, killed = tmp_path / "whole.zarr", tmp_path / "killed.zarr"
    assert run_cli("featurize", corpus, "--out", whole, "--workers", "2", "--features", "tutorial").returncode == 0
    status_chunks = killed / "status" / "c"

    def blocks_written() -> int:
        return sum(1 for _ in status_chunks.iterdir()) if status_chunks.exists() else 0

    # Kill points by progress, not by the clock: each run resumes the last, so it has less to do.
    points = [
        lambda: time.sleep(0.3) or True,  # starting up
        lambda: any(killed.parent.glob("killed.zarr.lock/writer.lock.*.json")),  # holding the lock, planning
        lambda: blocks_written() >= 1,
        lambda: blocks_written() >= 3,
        lambda: blocks_written() >= 5,
    ]
    kills = 0
    for point in points:
        process = start_featurize(corpus, "--out", killed, "--workers", "2", "--features", "tutorial")
        deadline = time.monotonic() + 120
        while process.poll() is None and not point() and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 4
    result = run_cli("featurize", corpus, "--out", killed, "--workers", "2", "--features", "tutorial")
    assert result.returncode == 0, result.stderr
    expected, resumed = store_rows(whole), store_rows(killed)
    assert sorted(resumed) == sorted(expected)
    assert len(FeatureStore.open(str(killed)).column("path")) == len(expected)
    for path, (status, error, vector) in expected.items():
        assert resumed[path][:2] == (status, error)
        np.testing.assert_array_equal(resumed[path][2], vector)


def test_a_hostile_corpus_finishes_with_every_good_file(tmp_path):
    corpus = tmp_path / "hostile"
    rng = np.random.default_rng(0)
    formats = ("wav", "flac", "ogg", "mp3")
    good = []
    for i in range(200):
        y = synth.tone(freq=float(rng.uniform(100, 4000)), seconds=0.5) + synth.noise(
            seconds=0.5, seed=i, amplitude=0.05
        )
        good.append(synth.write(corpus / "good" / f"{i:04d}.{formats[i % 4]}", y))
    bad = {}
    for k in range(8):
        for name, reason in write_bad_files(corpus / f"bad{k:02d}").items():
            bad[f"bad{k:02d}/{name}"] = reason
        (corpus / f"bad{k:02d}" / "good.wav").rename(corpus / "good" / f"from_bad{k:02d}.wav")
    assert len(bad) == 64
    block = np.random.default_rng(1).bytes(1 << 24)
    with open(corpus / "noise.wav", "wb") as f:
        for _ in range(128):  # 2 GiB of noise named .wav
            f.write(block)
    synth.write(corpus / "slow.wav", synth.tone(freq=150, seconds=20 * 60))
    out = tmp_path / "f.zarr"
    result = run_cli(
        "featurize",
        corpus,
        "--out",
        out,
        "--workers",
        "2",
        "--features",
        "tutorial",
        "--duration",
        "0",
        "--file-timeout",
        "3",
        "--memory-cap",
        "64G",
        timeout=900,  # slow.wav must meet the clock, not the cap
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "208 done, 66 failed" in result.stdout
    rows = store_rows(out)
    assert all(rows[f"good/{p.name}"][0] == DONE for p in good)
    for path, reason in bad.items():
        assert rows[path][0] == FAILED and reason in rows[path][1]
    assert rows["noise.wav"][0] == FAILED and "not an audio file" in rows["noise.wav"][1]
    assert rows["slow.wav"][:2] == (FAILED, "timed out after 3 s (raise the limit with --file-timeout)")
