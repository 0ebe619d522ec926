"""featurize through the real command line, a real LocalCluster and a real store on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchgenre.audio.corpus import Clip, discover, discover_paths
from batchgenre.cluster.featurize import featurize_block
from batchgenre.cluster.plan import select
from batchgenre.errors import BatchgenreError
from batchgenre.features import get_feature_set
from batchgenre.features.reference import tutorial_feature
from batchgenre.store import DONE, FAILED, PENDING, FeatureStore
from tests import synth
from tests.conftest import run_cli
from tests.test_features import assert_within_spread

TUTORIAL = get_feature_set("tutorial")


def make_corpus(root: Path, *, per_genre: int = 3, seconds: float = 4.0) -> Path:
    """Three 'genres' of generated audio in GTZAN's layout: low tones, high tones, noise."""
    for i in range(per_genre):
        synth.write(root / "low" / f"low.{i:05d}.wav", synth.tone(freq=110 + 20 * i, seconds=seconds))
        synth.write(
            root / "high" / f"high.{i:05d}.flac",
            synth.tone(freq=1760 + 50 * i, seconds=seconds, sr=44100, channels=2),
            sr=44100,
        )
        synth.write(root / "noise" / f"noise.{i:05d}.mp3", synth.noise(seconds=seconds, seed=i, amplitude=0.3))
    return root


def store_rows(url) -> dict[str, tuple[int, str, np.ndarray]]:
    """path -> (status, error, features) for every row of a store."""
    store = FeatureStore.open(str(url))
    paths, status, error, features = (store.column(n) for n in ("path", "status", "error", "features"))
    return {str(p): (int(s), str(e), f) for p, s, e, f in zip(paths, status, error, features, strict=True)}


def test_discover_skips_hidden_files_and_survives_symlink_loops(tmp_path):
    synth.write(tmp_path / "a" / "x.wav", synth.tone(seconds=0.5))
    synth.write(tmp_path / "a" / ".hidden.wav", synth.tone(seconds=0.5))
    synth.write(tmp_path / ".cache" / "y.wav", synth.tone(seconds=0.5))
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    synth.write(tmp_path / "b" / "z.FLAC", synth.tone(seconds=0.5))
    assert discover(tmp_path) == discover_paths(tmp_path).tolist() == ["a/x.wav", "b/z.FLAC"]


def test_the_compact_walk_sorts_as_python_does_across_folders_that_prefix_each_other(tmp_path):
    # "a b/" and "a-b/" sort before "a/" although the walk reaches "a/" first.
    for name in ["a/z.wav", "a b/y.wav", "a-b/x.wav", "a/sub/w.wav", "ä/v.wav", "A/u.wav"]:
        synth.write(tmp_path / name, synth.tone(seconds=0.1))
    assert discover_paths(tmp_path).tolist() == sorted(discover(tmp_path)) == discover(tmp_path)


def test_labels_come_from_genre_folders_only_in_gtzan_layout(tmp_path):
    assert select(tmp_path, ["rock/a.wav", "jazz/b.wav"], None)[1].tolist() == ["rock", "jazz"]
    assert select(tmp_path, ["rock/a.wav", "loose.wav"], None)[1].tolist() == ["", ""]
    assert select(tmp_path, ["artist/album/t.mp3"], None)[1].tolist() == [""]
    kept, genres = select(tmp_path, ["jazz/a.wav", "rock/a.wav", "jazz/b.wav"], ["jazz"])
    assert (kept.tolist(), genres.tolist()) == (["jazz/a.wav", "jazz/b.wav"], ["jazz", "jazz"])


def test_featurize_matches_the_reference_and_records_everything(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "f.zarr"
    result = run_cli("featurize", corpus, "--out", out, "--workers", "2", "--features", "tutorial")
    assert result.returncode == 0, result.stderr
    assert "9 done, 0 failed" in result.stdout
    assert "dashboard" in result.stderr

    rows = store_rows(out)
    assert sorted(rows) == discover(corpus)
    ours = np.stack([rows[p][2] for p in sorted(rows)])
    reference = np.stack([tutorial_feature(corpus / p) for p in sorted(rows)])
    assert_within_spread(ours, reference)

    store = FeatureStore.open(str(out))
    attrs = store.attrs
    assert attrs["genres"] == ["high", "low", "noise"]
    assert attrs["feature_set"] == "tutorial" and attrs["feature_names"] == TUTORIAL.names
    assert (attrs["sample_rate"], attrs["offset"], attrs["duration"]) == (22050, 0.0, 30.0)
    assert {"batchgenre", "librosa"} <= set(attrs["versions"])
    labels = dict(zip(store.column("path").tolist(), store.column("label").tolist(), strict=True))
    assert [attrs["genres"][labels[p]] for p in sorted(labels)] == [p.split("/")[0] for p in sorted(labels)]


def test_offset_and_duration_choose_the_excerpt(tmp_path):
    corpus = tmp_path / "corpus"
    synth.write(corpus / "a.wav", np.concatenate([synth.tone(freq=200, seconds=3), synth.tone(freq=3000, seconds=3)]))
    out = tmp_path / "f.zarr"
    assert (
        run_cli(
            "featurize",
            corpus,
            "--out",
            out,
            "--workers",
            "1",
            "--offset",
            "3.5",
            "--duration",
            "2",
            "--features",
            "tutorial",
        ).returncode
        == 0
    )
    ((_, _, vector),) = store_rows(out).values()
    np.testing.assert_allclose(vector, tutorial_feature(corpus / "a.wav", offset=3.5, duration=2), rtol=1e-5, atol=1e-6)


def write_bad_files(root: Path) -> dict[str, str]:
    """Every kind of bad input featurize must survive, with the reason each one's row must give."""
    root.mkdir(parents=True)
    (root / "empty.wav").write_bytes(b"")
    good = synth.write(root / "good.wav", synth.tone(seconds=2))
    (root / "truncated.flac").write_bytes(synth.write(root / "tmp.flac", synth.noise(seconds=2)).read_bytes()[:300])
    (root / "tmp.flac").unlink()
    (root / "random.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "random.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    synth.write(root / "zero_length.wav", np.zeros(0, np.float32))
    synth.write(root / "too_short.wav", synth.tone(seconds=0.05))
    synth.write(root / "silence.wav", np.zeros(22050, np.float32))
    (root / "unreadable.ogg").symlink_to(root / "does-not-exist.ogg")
    assert good.exists()
    return {
        "empty.wav": "empty",
        "truncated.flac": "",
        "random.mp3": "",
        "random.wav": "",
        "zero_length.wav": "no audio",
        "too_short.wav": "too short",
        "silence.wav": "silent",
        "unreadable.ogg": "",
    }


def test_bad_files_fail_alone_and_the_run_goes_on(tmp_path):
    corpus = tmp_path / "bad"
    expected = write_bad_files(corpus)
    out = tmp_path / "f.zarr"
    result = run_cli("featurize", corpus, "--out", out, "--workers", "2")
    assert result.returncode == 3, result.stderr
    assert f"1 done, {len(expected)} failed" in result.stdout
    assert "Traceback" not in result.stderr
    rows = store_rows(out)
    assert rows["good.wav"][0] == DONE and np.isfinite(rows["good.wav"][2]).all()
    for name, reason in expected.items():
        status, error, vector = rows[name]
        assert status == FAILED and reason in error and error, f"{name}: {error!r}"
        assert f"failed: {name}: {error}" in result.stderr
        assert np.isnan(vector).all()


def test_a_file_deleted_during_the_run_gets_a_failed_row(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=1)
    out = str(tmp_path / "f.zarr")
    from batchgenre.cluster.featurize import store_attrs
    from batchgenre.cluster.plan import plan

    attrs = store_attrs(feature_set_name="tutorial", clip=Clip(), root=corpus)
    store = FeatureStore.create(out, attrs=attrs, n_features=498, rows_per_chunk=4)
    relpaths, genres = select(corpus, discover(corpus), None)
    plan(store, relpaths, genres, corpus, augment=0)
    (corpus / relpaths[1]).unlink()
    assert featurize_block(out, 0, str(corpus), "tutorial", Clip(), retry_failed=False, file_timeout=60) == 3
    rows = store_rows(out)
    assert rows[relpaths[1]][0] == FAILED and "vanished" in rows[relpaths[1]][1]
    assert rows[relpaths[0]][0] == rows[relpaths[2]][0] == DONE


@pytest.mark.parametrize(
    "args, message",
    [
        (["featurize", "{tmp}/nowhere"], "no such folder"),
        (["featurize", "{tmp}/empty"], "no audio files"),
        (["featurize", "{corpus}", "--genres", "low,jaz"], "unknown genre 'jaz'"),
        (["featurize", "{corpus}", "--features", "fastest"], "unknown feature set 'fastest'"),
        (["featurize", "{corpus}", "--workers", "0"], "--workers: must be at least 1"),
        (["featurize", "{corpus}", "--workers", "many"], "--workers: must be a whole number"),
        (["featurize", "{corpus}", "--offset", "-1"], "--offset: must be zero or more"),
        (["featurize", "{corpus}", "--window", "0"], "--window: must be more than 0 seconds"),
        (["featurize", "{corpus}", "--window", "3", "--duration", "0"], "--window needs a fixed --duration"),
        (["featurize", "{corpus}", "--window", "40"], "--window 40 gives 0 windows in --duration 30"),
        (["featurize", "{corpus}", "--features", "musicnn", "--duration", "2"], "--duration 2 gives 2 s"),
        (["featurize", "{corpus}", "--features", "robust+musicnn", "--window", "1"], "needs at least 2.98 s"),
    ],
)
def test_bad_command_lines_get_one_clear_line(tmp_path, args, message):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=0.5)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    result = run_cli(*[a.format(tmp=tmp_path, corpus=corpus) for a in args], "--out", tmp_path / "f.zarr")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "f.zarr").exists()


def test_a_store_made_with_other_audio_parameters_is_refused(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=1)
    out = tmp_path / "f.zarr"
    assert run_cli("featurize", corpus, "--out", out, "--workers", "1").returncode == 0
    before = store_rows(out)
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--duration", "10")
    assert result.returncode == 2 and "duration=30.0" in result.stderr and "duration=10.0" in result.stderr
    assert store_rows(out).keys() == before.keys()


def test_window_rows_cut_each_file_and_a_window_that_cannot_be_featurized_fails_alone(tmp_path):
    from batchgenre.audio import load

    corpus = tmp_path / "corpus"
    sound, quiet = synth.tone(freq=440, seconds=2), synth.tone(freq=440, seconds=2) * 0
    synth.write(corpus / "a" / "gap.wav", np.concatenate([sound, quiet, sound]))  # its middle window is silent
    synth.write(corpus / "a" / "short.wav", synth.tone(freq=220, seconds=3))  # no third window at all
    synth.write(corpus / "b" / "noise.wav", synth.noise(seconds=6, seed=1, amplitude=0.3))
    out = tmp_path / "f.zarr"
    result = run_cli(
        "featurize", corpus, "--out", out, "--features", "fast", "--window", "2", "--duration", "6", "--workers", "1"
    )
    assert result.returncode == 3, result.stderr  # some rows failed
    assert "7 rows done, 2 failed, from 3 files" in result.stdout
    store = FeatureStore.open(str(out))
    assert store.attrs["window"] == 2.0 and store.window == 2.0 and store.rows_per_chunk % 3 == 0
    assert store.column("path").tolist() == ["a/gap.wav"] * 3 + ["a/short.wav"] * 3 + ["b/noise.wav"] * 3
    assert store.column("window").tolist() == [0, 1, 2] * 3
    assert store.column("status").tolist() == [DONE, FAILED, DONE, DONE, DONE, FAILED, DONE, DONE, DONE]
    assert "silent" in store.column("error")[1] and "too short" in store.column("error")[5]
    assert "a/gap.wav (window 1 at 2 s): silent" in result.stderr
    features, fast = store.column("features"), get_feature_set("fast")
    for row, relpath in ((0, "a/gap.wav"), (2, "a/gap.wav"), (4, "a/short.wav"), (7, "b/noise.wav")):
        j = row % 3
        y = load(corpus / relpath, sr=22050, duration=6.0)
        # Equal up to float32 rounding: the worker's BLAS may sum in another order.
        np.testing.assert_allclose(
            features[row], fast.extract(y[j * 44100 : (j + 1) * 44100], sr=22050), rtol=1e-5, atol=1e-8
        )

    other = run_cli(
        "featurize", corpus, "--out", out, "--features", "fast", "--window", "3", "--duration", "6", "--workers", "1"
    )
    assert other.returncode == 2 and "window=2.0" in other.stderr and "window=3.0" in other.stderr
    whole = run_cli("featurize", corpus, "--out", out, "--features", "fast", "--duration", "6", "--workers", "1")
    assert whole.returncode == 2 and "window=2.0" in whole.stderr and "window=None" in whole.stderr


def test_rerun_appends_new_files_skips_done_ones_and_reports_vanished(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=2, seconds=1)
    out = tmp_path / "f.zarr"
    assert run_cli("featurize", corpus, "--out", out, "--workers", "1").returncode == 0
    first = store_rows(out)
    synth.write(corpus / "low" / "low.00099.wav", synth.tone(freq=90, seconds=1))
    (corpus / "noise" / "noise.00000.mp3").unlink()
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "featurizing 1 files" in result.stderr and "1 files in the store no longer exist" in result.stderr
    second = store_rows(out)
    assert set(second) == set(first) | {"low/low.00099.wav"}
    for path, (_status, _, vector) in first.items():
        np.testing.assert_array_equal(second[path][2], vector)
    rerun = run_cli("featurize", corpus, "--out", out, "--workers", "1").stderr
    assert rerun.count("nothing to do") == 1 and "Dask cluster" not in rerun, rerun


def test_a_stray_file_at_the_root_is_named_not_silently_unlabelling_the_corpus(tmp_path, caplog):
    assert select(tmp_path, ["rock/a.wav", "loose.wav"], None)[1].tolist() == ["", ""]
    assert "1 of 2 files are not in a genre folder directly under" in caplog.text and "'loose.wav'" in caplog.text
    with pytest.raises(BatchgenreError, match="but 1 are not, like 'loose.wav'"):
        select(tmp_path, ["rock/a.wav", "loose.wav"], ["rock"])


def test_genres_on_a_store_that_holds_more_are_said_to_add_not_remove(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=1, seconds=1)
    out = tmp_path / "f.zarr"
    assert run_cli("featurize", corpus, "--out", out, "--workers", "1").returncode == 0
    result = run_cli("featurize", corpus, "--out", out, "--genres", "low")
    assert result.returncode == 0 and "nothing to do" in result.stderr
    assert "--genres low adds only those genres' files" in result.stderr and "holds high, noise too" in result.stderr


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_store(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=8, seconds=8)
    whole, killed = tmp_path / "whole.zarr", tmp_path / "killed.zarr"
    assert run_cli("featurize", corpus, "--out", whole, "--workers", "2").returncode == 0

    script = Path(sys.executable).with_name("batchgenre")
    process = subprocess.Popen(
        [str(script), "featurize", str(corpus), "--out", str(killed), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (killed / "status" / "c").exists() and any((killed / "status" / "c").iterdir()):
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the client and its local cluster, as a killed terminal would
    process.wait()
    partial = store_rows(killed)
    assert any(s == PENDING for s, _, _ in partial.values()), "the run finished before it could be killed"

    result = run_cli("featurize", corpus, "--out", killed, "--workers", "2")
    assert result.returncode == 0, result.stderr
    expected, resumed = store_rows(whole), store_rows(killed)
    assert sorted(resumed) == sorted(expected) and len(FeatureStore.open(str(killed)).column("path")) == len(expected)
    for path, (status, error, vector) in expected.items():
        assert resumed[path][:2] == (status, error)
        np.testing.assert_array_equal(resumed[path][2], vector)


def test_real_clips_match_the_reference(tmp_path, gtzan):
    corpus = tmp_path / "gtzan"
    for genre in ("classical", "reggae", "rock"):
        (corpus / genre).mkdir(parents=True)
        for i in (0, 5):
            (corpus / genre / f"{genre}.{i:05d}.wav").symlink_to(gtzan / genre / f"{genre}.{i:05d}.wav")
    out = tmp_path / "f.zarr"
    result = run_cli(
        "featurize",
        corpus,
        "--out",
        out,
        "--workers",
        "2",
        "--genres",
        "reggae,classical,rock",
        "--features",
        "tutorial",
    )
    assert result.returncode == 0, result.stderr
    rows = store_rows(out)
    ours = np.stack([rows[p][2] for p in sorted(rows)])
    reference = np.stack([tutorial_feature(corpus / p) for p in sorted(rows)])
    assert_within_spread(ours, reference)


def test_augment_adds_reproducible_altered_copies_of_labelled_files(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", per_genre=2, seconds=3)
    first, second = tmp_path / "a.zarr", tmp_path / "b.zarr"
    for out in (first, second):
        result = run_cli("featurize", corpus, "--out", out, "--workers", "2", "--augment", "2", "--features", "fast")
        assert result.returncode == 0, result.stderr
        assert "18 rows done, 0 failed, from 6 files" in result.stdout
    a, b = FeatureStore.open(str(first)), FeatureStore.open(str(second))
    order_a = np.lexsort((a.column("augment"), a.column("path")))
    order_b = np.lexsort((b.column("augment"), b.column("path")))
    np.testing.assert_array_equal(a.column("features")[order_a], b.column("features")[order_b])
    paths, copies, features = a.column("path"), a.column("augment"), a.column("features")
    assert sorted(copies.tolist()) == [0] * 6 + [1] * 6 + [2] * 6
    for path in set(paths.tolist()):
        rows = features[paths == path]
        assert len(rows) == 3 and not np.allclose(rows[0], rows[1]) and not np.allclose(rows[1], rows[2])
    assert (a.column("label")[copies > 0] >= 0).all()


def test_unlabelled_files_get_no_altered_copies(tmp_path):
    corpus = tmp_path / "loose"
    synth.write(corpus / "a.wav", synth.tone(seconds=1))
    out = tmp_path / "f.zarr"
    assert (
        run_cli("featurize", corpus, "--out", out, "--workers", "1", "--augment", "3", "--features", "fast").returncode
        == 0
    )
    assert FeatureStore.open(str(out)).column("augment").tolist() == [0]
