"""train --robustness: test clips re-made as real files of each variant, featurized on a real cluster, scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from batchgenre import demo
from batchgenre.audio.variants import VARIANTS
from batchgenre.cluster.featurize import featurize
from batchgenre.store import FeatureStore
from batchgenre.training.dataset import read_features, select_rows
from batchgenre.training.robustness import ORIGINAL, featurize_variants
from tests import synth
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six 4-second clips of each demo genre, featurized with the fast set."""
    folder = tmp_path_factory.mktemp("robustness")
    demo.make_corpus(folder / "audio", per_genre=6, seconds=4.0)
    featurize(folder / "audio", out=str(folder / "f.zarr"), feature_set="fast", workers=2)
    return folder


def test_every_variant_is_a_real_file_featurized_like_any_other(corpus, tmp_path):
    store = FeatureStore.open(str(corpus / "f.zarr"))
    rows = select_rows(store, genres="all")
    asked = rows.index[::2]
    made = featurize_variants(store, asked, workdir=tmp_path, workers=2)
    assert set(made.rows) == set(VARIANTS) and np.array_equal(made.source, asked)
    assert made.store.n_rows == len(VARIANTS) * len(asked)  # every copy of every variant, in one store
    paths = store.column("path")[asked]
    for name, variant in VARIANTS.items():
        copies = made.rows[name]
        assert np.all(copies >= 0), name
        files = [tmp_path / "audio" / name / f"{p}.{variant.codec}" for p in paths]
        info = sf.info(files[0])
        assert info.samplerate == (variant.sr or 22050) and info.channels == variant.channels, name
        assert abs(info.duration - 4.0) < 0.1, name
        assert [str(p) for p in made.store.column("path")[copies]] == [
            f.relative_to(tmp_path / "audio").as_posix() for f in files
        ]
    original = read_features(store, asked)
    quiet = read_features(made.store, np.sort(made.rows["quiet"]))[np.argsort(np.argsort(made.rows["quiet"]))]
    mel = np.array([n.startswith("melspectrogram.mean") for n in store.attrs["feature_names"]])
    # 20 dB quieter is a hundredth of the mel power, give or take 16-bit rounding.
    ratio = np.median(quiet[:, mel] / original[:, mel])
    assert 0.008 < ratio < 0.012


def test_train_robustness_reports_each_variant_for_model_and_baseline(corpus):
    (corpus / "run.toml").write_text(
        '[data]\nfeature_set = "fast"\n[split]\nfolds = 2\nrepeats = 1\n[train]\nepochs = 30\n'
    )
    done = run_cli("train", "run.toml", "--store", "f.zarr", "--robustness", "--out", "run", cwd=corpus)
    assert done.returncode == 0, done.stderr
    assert "re-made" in done.stdout and "worst drop" in done.stdout and "MP3 at 128 kbit/s" in done.stdout
    metrics = json.loads((corpus / "run" / "metrics.json").read_text())
    report = metrics["robustness"]["variants"]
    assert list(report) == [ORIGINAL, *VARIANTS]
    for name, entry in report.items():
        assert entry["test_rows"] == 18, name  # every clip tested once, as every variant
        for who in ("model", "baseline"):
            assert len(entry[who]["accuracy_folds"]) == 2 and 0 <= entry[who]["accuracy_mean"] <= 1
    assert report[ORIGINAL]["model"]["accuracy_folds"] == metrics["accuracy_folds"]
    assert report[ORIGINAL]["baseline"]["accuracy_folds"] == metrics["baseline"]["accuracy_folds"]
    worst = min(report[v]["model"]["accuracy_mean"] for v in VARIANTS)
    assert metrics["robustness"]["worst_drop"]["model"] == pytest.approx(
        report[ORIGINAL]["model"]["accuracy_mean"] - worst
    )
    assert (corpus / "run" / "robustness.png").stat().st_size > 10_000


def test_one_split_scores_the_variants_of_its_test_clips_with_intervals(corpus, tmp_path):
    from batchgenre.training import config
    from batchgenre.training.trainer import train

    cfg = config.from_dict(
        {
            "data": {"store": str(corpus / "f.zarr")},
            "train": {"epochs": 30, "robustness": True},
            "output": {"dir": str(tmp_path / "run")},
        }
    )
    metrics = train(cfg).metrics
    report = metrics["robustness"]["variants"]
    assert report[ORIGINAL]["model"]["accuracy"] == metrics["accuracy"]
    for name, entry in report.items():
        assert entry["test_rows"] == metrics["split_sizes"]["test"], name
        lo, hi = entry["baseline"]["accuracy_ci95"]
        assert lo <= entry["baseline"]["accuracy"] <= hi, name


def test_a_variant_with_no_usable_test_clip_is_reported_as_no_rows(tmp_path):
    """Clips at -65 dBFS: 20 dB quieter they are silent, so no fold has a usable "quiet" copy to score."""
    for g, genre in enumerate(demo.GENRES):
        for i in range(6):
            y = demo.synthesize(genre, seconds=2.0, seed=[7, g, i])
            synth.write(tmp_path / "audio" / genre / f"{genre}.{i:05d}.wav", y / np.abs(y).max() * 10 ** (-65 / 20))
    featurize(tmp_path / "audio", out=str(tmp_path / "f.zarr"), feature_set="fast", workers=2)
    (tmp_path / "run.toml").write_text("[split]\nfolds = 2\nrepeats = 1\n[train]\nepochs = 4\n")
    done = run_cli("train", "run.toml", "--store", "f.zarr", "--robustness", "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "variant quiet: no test clip of split(s) 1, 2" in done.stderr
    quiet = next(line for line in done.stdout.splitlines() if "20 dB quieter" in line)
    assert quiet.split()[-3:] == ["-", "-", "0"]  # model, baseline, rows
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())["robustness"]["variants"]
    assert report["quiet"] == {"description": "20 dB quieter", "test_rows": 0}
    assert report["loud"]["test_rows"] == 18 and len(report["loud"]["model"]["accuracy_folds"]) == 2


def test_robustness_on_real_clips(gtzan, tmp_path):
    """Three genres of gtzan-mini, the robust set: every variant scored, and it holds within 0.1 of the originals."""
    from batchgenre.training import config
    from batchgenre.training.trainer import train

    featurize(
        gtzan, out=str(tmp_path / "f.zarr"), feature_set="robust", genres=["reggae", "classical", "rock"], workers=2
    )
    cfg = config.from_dict(
        {
            "data": {
                "store": str(tmp_path / "f.zarr"),
                "feature_set": "robust",
                "genres": ["reggae", "classical", "rock"],
            },
            "model": {"log_blocks": [], "summaries": ["mean", "std"]},
            "split": {"folds": 3, "repeats": 1},
            "train": {"epochs": 8, "robustness": True},  # the assertions are on the baseline
            "output": {"dir": str(tmp_path / "run")},
        }
    )
    report = train(cfg).metrics["robustness"]
    assert all(entry["test_rows"] == 31 for entry in report["variants"].values())
    assert report["variants"][ORIGINAL]["baseline"]["accuracy_mean"] >= 0.9
    assert report["worst_drop"]["baseline"] <= 0.1
