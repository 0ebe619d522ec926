"""Runs on the cluster: TensorFlow stays in the client, progress moves per file, Ctrl-C ends quietly.

Functions here run on workers and in sandbox helpers, which import this module: it must not
import TensorFlow (or anything that does) at the top.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests import synth

pytestmark = pytest.mark.slow

INTERRUPTED = "batchgenre: interrupted; run the same command again to resume"


def tensorflow_loaded() -> bool:
    """Whether this process has imported TensorFlow; asked of workers and of their sandbox helpers."""
    return "tensorflow" in sys.modules


def tensorflow_on_this_worker() -> dict:
    """On a worker: TensorFlow in the worker itself, and in the sandbox helper its tasks decoded with."""
    from batchgenre.cluster.sandbox import borrowed

    with borrowed() as box:
        # A worker runs one task at a time, so its pool holds the one helper its blocks used (or none).
        helper = box.call(tensorflow_loaded, timeout=120) if box.pid is not None else None
    return {"worker": tensorflow_loaded(), "helper": helper}


def test_tensorflow_never_reaches_workers_or_decoding_helpers(tmp_path):
    from batchgenre.classify.client import classify_dir
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.featurize import featurize
    from batchgenre.store import FeatureStore

    corpus = tmp_path / "corpus"
    for i in range(8):
        synth.write(corpus / ("low" if i % 2 else "high") / f"{i}.wav", synth.tone(freq=200 + 400 * (i % 2), seconds=2))
    store = str(tmp_path / "f.zarr")
    with connect(workers=2) as client:
        assert featurize(corpus, out=store, feature_set="fast", client=client).done == 8
        model = _untrained_model(FeatureStore.open(store).attrs, tmp_path / "model.keras")
        assert "tensorflow" in sys.modules  # the client did load it, so the check below can tell
        summary = classify_dir(corpus, model_path=model, out=tmp_path / "r.csv", scheduler=client.scheduler.address)
        assert summary.classified == 8
        answers = client.run(tensorflow_on_this_worker)
    assert len(answers) == 2
    assert not any(a["worker"] for a in answers.values()), answers
    helpers = [a["helper"] for a in answers.values() if a["helper"] is not None]
    assert helpers and not any(helpers), answers


def _untrained_model(attrs: dict, path: Path) -> Path:
    """A model.keras for the store's features: classify-dir needs one that loads, not one that is right."""
    import keras

    from batchgenre.training.model import save_model

    inputs = keras.Input((len(attrs["feature_names"]),))
    net = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))  # a chain, as serving reads
    save_model(net, path, metadata={**attrs, "genres": ["high", "low"]})
    return path


def log_worker_errors() -> None:
    """On a worker: the error its heartbeat logs when the scheduler closes first, then another error."""
    worker_log = logging.getLogger("distributed.worker")
    worker_log.error("Failed to communicate with scheduler during heartbeat.")
    worker_log.error("some other worker error")


def test_local_workers_print_errors_but_not_the_heartbeat_race_of_closing(capfd):
    from batchgenre.cluster.connection import connect

    with connect(workers=1) as client:
        client.run(log_worker_errors)
    # Worker processes write to the stderr they inherited from this one.
    printed = capfd.readouterr().err
    assert "some other worker error" in printed
    assert "during heartbeat" not in printed


def gated_block(files: int, release: str) -> int:
    """A block that finishes its files, then waits for the test to let it end."""
    from distributed import Event

    from batchgenre.cluster.runner import file_done

    for _ in range(files):
        file_done()
    Event(release).wait()
    return files


def test_progress_counts_files_while_their_block_still_runs(caplog, monkeypatch):
    from distributed import Event

    from batchgenre.cluster import progress
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.runner import run_blocks

    monkeypatch.setattr(progress, "EVERY_S", 0.05)
    caplog.set_level(logging.INFO, logger="batchgenre")
    finished = []
    with connect(workers=1) as client:
        release = Event(f"release-{uuid.uuid4().hex}", client=client)
        run = threading.Thread(
            target=lambda: run_blocks(
                client,
                gated_block,
                [("only", (3, release.name), 3)],
                total=3,
                options={},
                on_finished=lambda key, result, error: finished.append((key, result, error)),
            )
        )
        run.start()
        try:
            _wait_for(lambda: any(r.getMessage().startswith("3/3 files") for r in caplog.records), what="3/3 files")
            assert not finished, "the block ended before the test let it"
        finally:
            release.set()
            run.join()
    assert finished == [("only", 3, None)]


def many_files(files: int) -> int:
    """A block of ``files`` files that take no time."""
    from batchgenre.cluster.runner import file_done

    for _ in range(files):
        file_done()
    return files


def test_a_block_reports_its_files_a_few_times_a_second_not_once_each():
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.runner import FILE_DONE_TOPIC, run_blocks

    files = 2_000
    with connect(workers=1) as client:
        run_blocks(client, many_files, [("only", (files,), files)], total=files, options={}, on_finished=print)
        # The last report comes up to REPORT_EVERY_S after the block ends.
        _wait_for(
            lambda: sum(n for _, (_, n) in client.get_events(FILE_DONE_TOPIC)) == files, what="every file reported"
        )
        reports = len(client.get_events(FILE_DONE_TOPIC))
    assert reports <= files // 100, f"{reports} messages for {files} files"


def big_result(i: int) -> np.ndarray:
    return np.full(2**18, i, dtype=np.float32)  # 1 MB held by the worker until the client lets it go


def test_a_run_holds_a_bounded_number_of_blocks_not_the_whole_corpus():
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.runner import blocks_ahead, run_blocks

    held, seen = [], []
    with connect(workers=1) as client:
        ahead = blocks_ahead(client)

        def finished(key, result, error):
            assert error is None and result[0] == key
            seen.append(key)
            held.append(len(client.futures))

        n = 3 * ahead
        run_blocks(client, big_result, ((i, (i,), 1) for i in range(n)), total=n, options={}, on_finished=finished)
    assert sorted(seen) == list(range(n))
    assert max(held) <= ahead, f"the client held {max(held)} blocks, more than the {ahead} ahead"


def test_progress_speaks_before_any_file_and_guesses_the_time_left_only_from_enough_files(caplog):
    from batchgenre.cluster.progress import MIN_FILES_FOR_ESTIMATE, Progress

    caplog.set_level(logging.INFO, logger="batchgenre")
    with Progress(100, every_s=0.01) as bar:
        _wait_for(
            lambda: any(r.getMessage().startswith("0/100 files") for r in caplog.records), what="a line before any file"
        )
        bar.update(4)
        assert "left" not in bar.line() and "/s" not in bar.line()
        bar.update(MIN_FILES_FOR_ESTIMATE)
        assert bar.line().startswith("14/100 files") and bar.line().endswith("left")


def _alive_in_session(session: int) -> list[str]:
    """Command lines of the live processes of a session (the one a command was started in)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            state, _, _, sid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            if int(sid) == session and state != "Z":
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError):  # not a process, or one that just ended
            continue
    return found


def _wait_for(condition, *, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize(
    "marker, workers",
    [
        ("more than this machine's", len(os.sched_getaffinity(0)) + 1),  # the note, before the cluster starts
        ("starting a local Dask cluster", 2),
        ("started a local Dask cluster", 2),
        ("featurizing", 2),  # blocks running
    ],
)
def test_ctrl_c_at_any_point_ends_with_one_line_and_the_rerun_finishes(tmp_path, marker, workers):
    corpus = tmp_path / "corpus"
    for i in range(12):
        synth.write(corpus / f"{i:02d}.wav", synth.tone(freq=100 + 50 * i, seconds=6))
    out = tmp_path / "f.zarr"
    command = [
        sys.executable,
        "-m",
        "batchgenre.cli",
        "featurize",
        str(corpus),
        "--out",
        str(out),
        "--features",
        "tutorial",
    ]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if marker in line:
                os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
                break
        stderr = "".join(seen) + process.stderr.read()
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert any(marker in line for line in seen), stderr
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count(INTERRUPTED) == 1, stderr
    assert stderr.rstrip().endswith(INTERRUPTED), stderr
    # Nothing of the run lives on to print into the next one: workers, their helpers, the tracker.
    _wait_for(lambda: not _alive_in_session(process.pid), what="the run's processes to end")

    rerun = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "12 done, 0 failed" in rerun.stdout, rerun.stderr
    assert "Traceback" not in rerun.stderr, rerun.stderr
