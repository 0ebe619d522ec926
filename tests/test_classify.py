"""classify-dir and classify through the real command line, with a model trained by the real trainer."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from batchgenre.classify.client import DEFAULT_MIN_CONFIDENCE
from batchgenre.classify.windows import DEFAULT_COUNT
from batchgenre.demo import GENRES, make_corpus, synthesize
from batchgenre.store.results import columns, read_results, restore
from tests import synth
from tests.conftest import DEMO_CONFIG, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> Path:
    """A model trained by `batchgenre train` on the demo corpus's three genres."""
    folder = tmp_path_factory.mktemp("model")
    make_corpus(folder / "audio", per_genre=10, seconds=8)
    featurized = run_cli("featurize", folder / "audio", "--out", folder / "f.zarr", "--workers", "2")
    assert featurized.returncode == 0, featurized.stderr
    (folder / "config.toml").write_text(DEMO_CONFIG.format(epochs=40, store=folder / "f.zarr", out=folder / "run"))
    trained = run_cli("train", folder / "config.toml")
    assert trained.returncode == 0, trained.stderr
    return folder / "run" / "model.keras"


def write_mixed_folder(root: Path) -> dict[str, str | None]:
    """Generated clips of known genre in many formats and awkward names, plus files that must fail.

    Returns path -> expected genre (None: the file must fail).
    """
    expected: dict[str, str | None] = {}
    names = ["plain", "with space", 'quote\'s "double"', "Ünïcødé ñ", "nested/deeper/x"]
    formats = ["wav", "flac", "ogg", "mp3", "m4a"]
    for i, name in enumerate(names):
        for g, genre in enumerate(GENRES):
            rel = f"{genre}/{name}.{formats[(i + g) % len(formats)]}"
            synth.write(root / rel, synthesize(genre, seconds=9, seed=[99, g, i]))
            expected[rel] = genre
    for name, genre in (("=HYPERLINK(evil).wav", "drone"), ("-minus.mp3", "chiptune"), ("@at.ogg", "techno")):
        synth.write(root / name, synthesize(genre, seconds=9, seed=[98, len(name)]))
        expected[name] = genre
    long = np.concatenate([synthesize("techno", seconds=60, seed=[7, k]) for k in range(10)])
    synth.write(root / "long" / "ten minutes.flac", long)
    expected["long/ten minutes.flac"] = "techno"
    (root / "broken").mkdir()
    (root / "broken" / "corrupt.mp3").write_bytes(np.random.default_rng(3).bytes(20_000))
    expected["broken/corrupt.mp3"] = None
    synth.write(root / ".hidden" / "skipped.wav", synthesize("drone", seconds=3))
    return expected


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_classify_dir_writes_one_row_per_file_in_a_stable_order(tmp_path, model):
    root = tmp_path / "music"
    expected = write_mixed_folder(root)
    out = tmp_path / "results.csv"
    result = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "2")
    assert result.returncode == 3, result.stderr
    assert f"{len(expected) - 1} classified, 1 failed" in result.stdout
    # Nothing but our own lines: no TensorFlow C++ logging ("E0000 ... use_unbounded_threadpool"), no decoder notes.
    assert "E0000" not in result.stderr and "Note:" not in result.stderr, result.stderr
    rows = read_csv(out)
    assert list(rows[0]) == columns(list(GENRES))
    paths = [r["path"].removeprefix("'") for r in rows]
    assert paths == sorted(expected)
    by_path = dict(zip(paths, rows, strict=True))

    bad = by_path["broken/corrupt.mp3"]
    assert bad["status"] == "failed" and "not an audio file" in bad["error"] and bad["genre"] == ""
    good = {p: r for p, r in by_path.items() if expected[p] is not None}
    for _path, row in good.items():
        probabilities = [float(row[f"p_{g}"]) for g in GENRES]
        assert row["status"] == "classified" and abs(sum(probabilities) - 1) < 1e-3
        named = GENRES[int(np.argmax(probabilities))] if max(probabilities) >= DEFAULT_MIN_CONFIDENCE else "unknown"
        assert row["genre"] == named
        assert float(row["confidence"]) == max(probabilities)
    right = sum(row["genre"] == expected[p] for p, row in good.items())
    assert right >= 0.85 * len(good), f"only {right} of {len(good)} right"

    long = by_path["long/ten minutes.flac"]
    assert long["windows"] == str(DEFAULT_COUNT) and abs(float(long["duration"]) - 600) < 0.1
    assert all(r["windows"] == "1" for p, r in good.items() if not p.startswith("long/"))
    # A spreadsheet must see text, not a formula.
    assert all(not r["path"].startswith(("=", "+", "-", "@")) for r in rows)
    # Each file as it was read, and the folder the paths are in, for what acts on the results later.
    for p, row in by_path.items():
        st = (root / p).stat()
        assert (int(row["size"]), int(row["mtime_ns"])) == (st.st_size, st.st_mtime_ns), p
    results = read_results(out)
    assert results.root == root.resolve() and results.genres == list(GENRES)
    assert [r["path"] for r in results.rows] == sorted(expected) and results.meta["model"] == str(model.resolve())
    assert {"'=HYPERLINK(evil).wav", "'-minus.mp3", "'@at.ogg"} <= {r["path"] for r in rows}


def test_a_few_files_start_only_the_workers_their_blocks_need(tmp_path, model):
    for genre in GENRES:
        synth.write(tmp_path / "music" / f"{genre}.wav", synthesize(genre, seconds=9))
    result = run_cli(
        "classify-dir", tmp_path / "music", "--model", model, "--out", tmp_path / "r.csv", "--workers", "2"
    )
    assert result.returncode == 0, result.stderr
    assert "3 files make 1 block(s)" in result.stderr and "local Dask cluster of 1 workers" in result.stderr
    assert [r["genre"] for r in read_csv(tmp_path / "r.csv")] == sorted(GENRES)


def test_excerpt_options_classify_one_window(tmp_path, model):
    root = tmp_path / "music"
    synth.write(
        root / "song.wav", np.concatenate([synthesize("drone", seconds=40), synthesize("chiptune", seconds=40)])
    )
    out = tmp_path / "r.jsonl"
    result = run_cli(
        "classify-dir", root, "--model", model, "--out", out, "--workers", "1", "--offset", "45", "--duration", "30"
    )
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["windows"] == 1 and row["genre"] == "chiptune"


@pytest.mark.parametrize("windows, counts", [("2", [2, 2, 1]), ("all", [3, 2, 1])])
def test_windows_option_chooses_how_many_windows_are_classified(tmp_path, model, windows, counts):
    root = tmp_path / "music"
    for name, seconds in (("100 s.flac", 100), ("70 s.wav", 70), ("20 s.mp3", 20)):
        synth.write(root / name, synthesize("drone", seconds=seconds, seed=[5, seconds]))
    out = tmp_path / "r.jsonl"
    result = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "1", "--windows", windows)
    assert result.returncode == 0, result.stderr
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert [rows[p]["windows"] for p in ("100 s.flac", "70 s.wav", "20 s.mp3")] == counts
    assert all(r["genre"] == "drone" for r in rows.values())


def test_parquet_output_reads_back_in_pandas(tmp_path, model):
    pandas = pytest.importorskip("pandas")
    root = tmp_path / "music"
    for g, genre in enumerate(GENRES):
        synth.write(root / f"{genre}.wav", synthesize(genre, seconds=8, seed=[5, g]))
    out = tmp_path / "r.parquet"
    assert run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "1").returncode == 0
    table = pandas.read_parquet(out)
    assert list(table["path"]) == [f"{g}.wav" for g in sorted(GENRES)]
    assert (table["status"] == "classified").all() and not Path(str(out) + ".partial.jsonl").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_results_with_a_failed_file_read_back_typed_and_a_rerun_resumes(tmp_path, model, suffix):
    pandas = pytest.importorskip("pandas")
    from tests.test_results import read_back

    root = tmp_path / "music"
    synth.write(root / "'=quote.wav", synthesize("drone", seconds=8, seed=[6, 0]))
    synth.write(root / "techno.wav", synthesize("techno", seconds=8, seed=[6, 1]))
    (root / "corrupt.mp3").write_bytes(np.random.default_rng(4).bytes(20_000))
    out = tmp_path / f"results{suffix}"
    first = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "1")
    assert first.returncode == 3, first.stderr
    assert "2 classified, 1 failed" in first.stdout

    frame = read_back(out)
    paths = [restore(p) for p in frame["path"]] if suffix == ".csv" else list(frame["path"])
    assert paths == ["'=quote.wav", "corrupt.mp3", "techno.wav"]
    for column in ("confidence", *(f"p_{g}" for g in GENRES), "duration"):
        assert pandas.api.types.is_float_dtype(frame[column]), (column, frame[column].dtype)
    assert pandas.api.types.is_integer_dtype(frame["windows"])
    bad = frame.iloc[1]
    assert bad["status"] == "failed" and bad[["confidence", "duration", *(f"p_{g}" for g in GENRES)]].isna().all()
    assert (frame["status"] == "classified").sum() == 2 and frame["confidence"].notna().sum() == 2

    again = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "1")
    assert again.returncode == 3, again.stderr
    assert "3 files already in" in again.stderr and "2 classified, 1 failed" in again.stdout
    assert read_back(out).equals(frame)


def test_killed_run_leaves_a_valid_csv_and_the_rerun_finishes_it(tmp_path, model):
    """The run is killed while one of its two workers is frozen (SIGSTOP), so some rows are written and,
    whatever the machine's speed, not all: the frozen worker's block cannot finish."""
    from distributed import Client

    root = tmp_path / "music"
    for i in range(40):
        genre = GENRES[i % 3]
        synth.write(root / f"{i:03d} {genre}.wav", synthesize(genre, seconds=20, seed=[11, i]))
    out = tmp_path / "results.csv"
    dask = Path(sys.executable).with_name("dask")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    port = address.rsplit(":", 1)[1]
    cluster = [
        subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    worker = [str(dask), "worker", address, "--nthreads", "1", "--no-dashboard"]
    process = None
    try:
        for expected_workers in (1, 2):
            cluster.append(
                subprocess.Popen(
                    worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path
                )
            )
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(OSError), Client(address, timeout="5s") as client:
                    if len(client.scheduler_info(n_workers=-1)["workers"]) == expected_workers:
                        break
                assert time.monotonic() < deadline, "the test cluster did not come up"
                time.sleep(0.2)
            if expected_workers == 1:
                os.killpg(cluster[-1].pid, signal.SIGSTOP)  # registered, then frozen with everything it starts
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchgenre.cli",
                "classify-dir",
                str(root),
                "--model",
                str(model),
                "--out",
                str(out),
                "--scheduler",
                address,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not (out.exists() and len(read_csv(out)) >= 3):
            assert process.poll() is None, "the run ended although one worker was frozen"
            assert time.monotonic() < deadline, "no rows from the live worker"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for member in reversed(cluster):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(member.pid, signal.SIGKILL)
            member.wait()
    partial = read_csv(out)
    assert 3 <= len(partial) < 40
    assert all(r["status"] == "classified" for r in partial)

    result = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert f"{len(partial)} files already in" in result.stderr
    rows = read_csv(out)
    assert [r["path"] for r in rows] == sorted(p.name for p in root.iterdir())
    assert {r["path"]: r for r in rows}.items() >= {r["path"]: r for r in partial}.items()


def test_classify_prints_every_genre_for_a_file_and_a_file_url(tmp_path, model):
    song = synth.write(tmp_path / "song.mp3", synthesize("techno", seconds=70, seed=3))  # two windows fit
    for source in (song, song.as_uri()):
        result = run_cli("classify", source, "--model", model)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("techno") and "2 windows" in lines[0]
        assert sorted(line.split()[0] for line in lines[1:]) == sorted(GENRES)
    assert not any(
        p.name.startswith("batchgenre-")
        for p in Path(os.environ.get("TMPDIR", "/tmp")).iterdir()
        if p.is_dir() and p.stat().st_mtime > time.time() - 5
    )


def test_a_url_without_yt_dlp_says_what_to_install(tmp_path, model):
    code = (
        "import sys; sys.modules['yt_dlp'] = None; from batchgenre.cli import main; "
        f"sys.exit(main(['classify', 'https://example.invalid/x', '--model', {str(model)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2 and "pip install 'batchgenre[url]'" in result.stderr


def with_metadata(model: Path, target: Path, **changes) -> Path:
    """A copy of ``model`` whose carried metadata says something else."""
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "batchgenre.json":
                data = json.dumps({**json.loads(data), **changes}).encode()
            copy.writestr(item, data)
    return target


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sample_rate": 16000}, "sample_rate"),
        ({"feature_set": "mfcc-only"}, "feature"),
        ({"feature_params": {"n_fft": 4096}}, "feature_params"),
    ],
)
def test_a_model_for_other_features_is_refused(tmp_path, model, changes, message):
    synth.write(tmp_path / "music" / "a.wav", synthesize("drone", seconds=5))
    foreign = with_metadata(model, tmp_path / "other.keras", **changes)
    result = run_cli("classify-dir", tmp_path / "music", "--model", foreign, "--out", tmp_path / "r.csv")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_model_of_an_older_musicnn_is_refused_naming_the_parameter_that_changed():
    from batchgenre.errors import BatchgenreError
    from batchgenre.features import get_feature_set
    from batchgenre.store.artifact import check_features

    fs = get_feature_set("robust+musicnn")
    older = json.loads(json.dumps(fs.params))
    older["musicnn"]["max_patches"] = 10  # a model trained before musicnn read fewer patches a window
    metadata = {"feature_set": fs.name, "sample_rate": 22050, "feature_params": older, "feature_names": list(fs.names)}
    with pytest.raises(
        BatchgenreError,
        match=r"musicnn\.max_patches=10, this batchgenre computes feature_params\.musicnn\.max_patches='5, ",
    ):
        check_features(metadata)


def test_missing_foreign_and_default_models_get_one_line(tmp_path):
    synth.write(tmp_path / "music" / "a.wav", synthesize("drone", seconds=5))
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    for model, message in ((tmp_path / "nope.keras", "nope.keras"), (tmp_path / "junk.keras", "junk.keras")):
        result = run_cli("classify-dir", tmp_path / "music", "--model", model, "--out", tmp_path / "r.csv")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    # No trained model at the default path: the built-in one, said in one line.
    result = run_cli("classify-dir", tmp_path / "music", "--out", tmp_path / "r.csv", "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0 and "classifying with the built-in model msd" in result.stderr, result.stderr


def test_a_model_of_window_rows_cuts_files_as_it_learnt_unless_told_otherwise(tmp_path):
    from batchgenre.training.trainer import train
    from tests.test_dataset import make_store
    from tests.test_train import make_config

    store = make_store(tmp_path / "f.zarr", per_genre=4, windows=3)  # 10 s windows of 30 s excerpts
    train(make_config(store.url, tmp_path / "run", train={"epochs": 2}))
    model = tmp_path / "run" / "model.keras"
    synth.write(
        tmp_path / "audio" / "song.wav", synth.noise(seconds=32, seed=0, amplitude=0.3)
    )  # a 2 s tail is dropped
    own = run_cli("classify-dir", tmp_path / "audio", "--model", model, "--out", tmp_path / "own.csv", "--workers", "1")
    assert own.returncode == 0, own.stderr
    assert read_csv(tmp_path / "own.csv")[0]["windows"] == "3" and "may be less accurate" not in own.stderr
    told = run_cli(
        "classify-dir",
        tmp_path / "audio",
        "--model",
        model,
        "--out",
        tmp_path / "told.csv",
        "--workers",
        "1",
        "--window",
        "30",
    )
    assert told.returncode == 0, told.stderr
    assert read_csv(tmp_path / "told.csv")[0]["windows"] == "1" and "learnt from 10 s clips" in told.stderr
    one = run_cli("classify", tmp_path / "audio" / "song.wav", "--model", model)
    assert one.returncode == 0 and "(3 windows, 32.0 s)" in one.stdout, one.stderr


def test_classify_dir_from_a_store_equals_decoding_the_same_excerpts(tmp_path, model):
    root = tmp_path / "music"
    expected = write_mixed_folder(root)
    store = tmp_path / "f.zarr"
    assert run_cli("featurize", root, "--out", store, "--workers", "2").returncode == 3  # the corrupt mp3
    from_store, decoded = tmp_path / "from_store.csv", tmp_path / "decoded.csv"
    result = run_cli("classify-dir", "--store", store, "--model", model, "--out", from_store)
    assert result.returncode == 3 and f"{len(expected) - 1} classified, 1 failed" in result.stdout, result.stderr
    excerpt = ("--offset", "0", "--duration", "30")
    assert run_cli("classify-dir", root, "--model", model, "--out", decoded, *excerpt).returncode == 3
    stored, fresh = read_results(from_store), read_results(decoded)
    assert stored.root == fresh.root == root.resolve() and stored.meta["store"] == str(store)
    assert [r["path"] for r in stored.rows] == [r["path"] for r in fresh.rows] == sorted(expected)
    for a, b in zip(stored.rows, fresh.rows, strict=True):
        assert (a["genre"], a["status"], a["size"], a["mtime_ns"]) == (
            b["genre"],
            b["status"],
            b["size"],
            b["mtime_ns"],
        )
        for genre in GENRES:
            assert a[f"p_{genre}"] == pytest.approx(b[f"p_{genre}"], abs=2e-4) if a["status"] == "classified" else True
    bad = next(r for r in stored.rows if r["path"] == "broken/corrupt.mp3")
    assert bad["status"] == "failed" and "not an audio file" in bad["error"]


def test_classify_dir_from_a_store_takes_its_unlabelled_files_unless_told_all(tmp_path, model):
    corpus = make_corpus(tmp_path / "audio", per_genre=2, seconds=4)
    store = tmp_path / "f.zarr"
    assert run_cli("featurize", tmp_path / "audio", "--out", store, "--workers", "1").returncode == 0
    out = tmp_path / "r.csv"
    result = run_cli("classify-dir", "--store", store, "--model", model, "--out", out)
    assert result.returncode == 0 and "0 classified, 0 failed" in result.stdout, result.stderr
    result = run_cli("classify-dir", "--store", store, "--model", model, "--out", out, "--all")
    assert result.returncode == 0 and f"{len(corpus)} classified, 0 failed" in result.stdout, result.stderr
    right = sum(r["genre"] == r["path"].split("/")[0] for r in read_results(out).rows)
    assert right >= len(corpus) - 1


@pytest.mark.parametrize(
    "args, says",
    [
        (["--features", "fast"], "holds feature set 'fast', the model was trained on 'robust'"),
        (["--windows", "3"], "--store predicts the rows featurize stored, as they are: --windows cannot apply"),
        (["FOLDER"], "give a folder or --store, not both"),
    ],
)
def test_classify_dir_from_a_store_refuses_in_one_line(tmp_path, model, args, says):
    make_corpus(tmp_path / "audio", per_genre=1, seconds=3)
    features = ["--features", "fast"] if args[0] == "--features" else []
    assert (
        run_cli("featurize", tmp_path / "audio", "--out", tmp_path / "f.zarr", "--workers", "1", *features).returncode
        == 0
    )
    extra = [] if args[0] == "--features" else [tmp_path if a == "FOLDER" else a for a in args]
    result = run_cli(
        "classify-dir", *extra, "--store", tmp_path / "f.zarr", "--model", model, "--out", tmp_path / "r.csv"
    )
    assert result.returncode == 2 and says in result.stderr and result.stderr.count("\n") == 1, result.stderr
