"""The decoding helper: it dies with its worker, keeps to its memory cap, and says why it could not start."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batchgenre.cluster.sandbox import BUSY, HelperDidNotStart, Sandbox
from batchgenre.store import DONE, FAILED
from tests import synth
from tests.conftest import run_cli
from tests.test_faults import helpers, wait_for
from tests.test_featurize import make_corpus, store_rows

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie whose new parent has not reaped it yet counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def pause_in_a_helper() -> None:
    """A task whose helper never finishes its 'file'."""
    from batchgenre.cluster.sandbox import borrowed

    with borrowed() as box:
        box.call(signal.pause, timeout=3600)


def test_a_helper_dies_with_its_worker_even_mid_file():
    from batchgenre.cluster.connection import connect

    with connect(workers=1) as client:
        (worker,) = client.run(os.getpid).values()
        task = client.submit(pause_in_a_helper, pure=False)
        (helper,) = wait_for(lambda: helpers(worker, BUSY), what="the worker's helper at work")
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: gone(helper), timeout=60, what="the helper to die with its worker")
        # Dask runs the task again on the worker its nanny restarts; end that one's pause too.
        for again in wait_for(lambda: helpers(os.getpid(), BUSY), what="the task run again"):
            os.kill(again, signal.SIGKILL)
        assert "the decoder crashed (killed by SIGKILL)" in str(task.exception(timeout=60))


def test_a_helper_outlives_the_thread_that_started_it():
    # Linux sends the parent-death signal when the forking *thread* ends, and Dask ends pool
    # threads while their worker lives on.
    box, starter_ids = Sandbox(), []

    def start() -> None:
        starter_ids.append(threading.get_native_id())
        box.start()

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    wait_for(lambda: not Path(f"/proc/self/task/{starter_ids[0]}").exists(), what="the starting thread to end")
    helper = box.pid
    try:
        assert box.call(os.getpid, timeout=60) == helper
    finally:
        box.close()


def test_why_a_helper_did_not_start_reaches_the_caller(tmp_path, monkeypatch):
    # A broken install only the helper meets: its warm-up imports soxr, this process has it already.
    (tmp_path / "soxr.py").write_text('raise ImportError("this soxr is broken")\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    with pytest.raises(HelperDidNotStart) as failure:
        Sandbox().start()
    assert str(failure.value) == "the decoder helper did not start: ImportError: this soxr is broken (exit status 1)"


def write_long_wav(path: Path, *, minutes: int, sr: int = 44100) -> Path:
    """A 44.1 kHz stereo tone, a minute at a time (a whole number of cycles, so the minutes join)."""
    minute = np.repeat(synth.tone(freq=220, seconds=60, sr=sr)[:, None], 2, axis=1)
    with sf.SoundFile(path, "w", sr, 2) as f:
        for _ in range(minutes):
            f.write(minute)
    return path


def test_a_file_that_needs_more_than_the_memory_cap_fails_alone(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=2)
    write_long_wav(corpus / "low" / "low.00050.wav", minutes=20)
    out = tmp_path / "f.zarr"
    # A warm helper holds about 250 MiB and peaks near 300 on a short file; decoding these
    # 20 minutes at once peaks near 850 MiB.
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--duration", "0", "--memory-cap", "500M")
    assert result.returncode == 3, result.stderr
    rows = store_rows(out)
    assert rows["low/low.00050.wav"][:2] == (
        FAILED,
        "needs more than 500 MiB of memory (raise the cap with --memory-cap)",
    )
    assert sum(status == DONE for status, _, _ in rows.values()) == 3


def test_a_cap_too_small_for_the_helper_itself_fails_every_file_saying_so(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=2)
    out = tmp_path / "f.zarr"
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--memory-cap", "50")
    assert result.returncode == 3, result.stderr
    reason = (
        "the decoder helper did not start: it needs more than 50 MiB of memory before any file "
        "(raise the cap with --memory-cap)"
    )
    assert {row[:2] for row in store_rows(out).values()} == {(FAILED, reason)}
    assert f"failed: low/low.00000.wav: {reason}" in result.stderr


@pytest.mark.parametrize("command", ["featurize", "classify-dir"])
@pytest.mark.parametrize(
    "value, message",
    [
        ("lots", "must be a size in MiB like 1024, or with a unit like 512M or 2G, got 'lots'"),
        ("2TB", "must be a size in MiB like 1024, or with a unit like 512M or 2G, got '2TB'"),
        ("0", "must be at least 1 MiB, got '0'"),
    ],
)
def test_a_bad_memory_cap_is_refused_in_one_line(tmp_path, command, value, message):
    result = run_cli(command, tmp_path, "--memory-cap", value)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"batchgenre {command}: argument --memory-cap: {message}; usage:"), result.stderr
