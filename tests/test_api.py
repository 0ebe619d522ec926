"""The public Python API.

The README's example as written, the store as a DataFrame, a model's predict, a new feature set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import batchgenre
from batchgenre.errors import BatchgenreError

README = Path(__file__).parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced code block that follows the README's ``<!-- marker ... -->`` comment."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no block marked {marker!r}"
    return found.group(1)


def readme_printed_lines() -> list[str]:
    """The lines the README says its Python example prints."""
    text = README.read_text(encoding="utf-8").split("<!-- python example", 1)[1]
    block = text.split("prints (", 1)[1].split("\n\n", 2)[1]
    return [line.strip() for line in block.splitlines()]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The folder the README's Python example ran in, as a script, checked against what the README says it prints."""
    folder = tmp_path_factory.mktemp("example")
    (folder / "example.py").write_text(readme_block("python example"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "example.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == readme_printed_lines(), result.stdout
    return folder


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written_and_prints_what_it_says(example):
    assert (example / "demo" / "run" / "model.keras").is_file()
    assert len((example / "demo" / "results.csv").read_text().splitlines()) == 1 + 36


@pytest.mark.slow
def test_open_store_gives_each_rows_facts_then_its_values_by_name(example):
    table = batchgenre.open_store(example / "demo" / "features.zarr")
    names = table.attrs["feature_names"]
    assert list(table.columns) == ["path", "label", "status", "error", "window", "augment", *names]
    assert table.attrs["feature_set"] == "robust" and len(names) == 120
    assert set(table["status"]) == {"done"} and list(table["label"].cat.categories) == table.attrs["genres"]
    techno = table[table["path"] == "techno/techno.00000.wav"]
    assert techno["label"].item() == "techno" and techno[names].to_numpy().dtype == np.float32
    assert np.isfinite(table[names].to_numpy()).all()


@pytest.mark.slow
def test_a_model_predicts_a_file_and_its_samples_alike(example):
    import soundfile as sf

    model = batchgenre.load_model(example / "demo" / "run" / "model.keras")
    path = example / "demo" / "audio" / "drone" / "drone.00001.flac"
    from_file = model.predict(path)
    y, sr = sf.read(path, dtype="float32")
    from_samples = model.predict(y, sr=sr)
    assert list(from_file) == model.genres and max(from_file, key=from_file.get) == "drone"
    assert np.allclose(list(from_file.values()), list(from_samples.values()), atol=1e-4)
    assert sum(from_file.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(BatchgenreError, match="sample rate"):
        model.predict(y)
    with pytest.raises(BatchgenreError, match="silent"):
        model.predict(np.zeros(sr * 40, dtype=np.float32), sr=sr)
    with pytest.raises(BatchgenreError, match="nothing.wav"):
        model.predict(example / "nothing.wav")


def test_a_new_feature_set_is_one_module_and_one_registry_line(tmp_path):
    """The README's `centroid` module and its line in the registry, in a copy of the package, through featurize."""
    package = tmp_path / "site" / "batchgenre"
    shutil.copytree(Path(batchgenre.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    (package / "features" / "centroid.py").write_text(readme_block("feature set example"), encoding="utf-8")
    registry = package / "features" / "registry.py"
    text = registry.read_text(encoding="utf-8")
    assert text.count('    "musicnn",\n)') == 1
    registry.write_text(text.replace('    "musicnn",\n)', '    "musicnn",\n    "centroid",\n)'), encoding="utf-8")

    from batchgenre.demo import make_corpus

    make_corpus(tmp_path / "corpus", per_genre=2, seconds=3)
    out = tmp_path / "centroid.zarr"
    # Run from tmp_path: `python -m` puts the working directory first on sys.path, before PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    command = [sys.executable, "-m", "batchgenre.cli", "featurize", str(tmp_path / "corpus"), "--out", str(out)]
    result = subprocess.run(
        [*command, "--features", "robust+centroid", "--workers", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 done, 0 failed" in result.stdout
    read = (
        "import batchgenre, sys; t = batchgenre.open_store(sys.argv[1]); "
        "print(batchgenre.__file__); print(t.iloc[:, -4:].to_json())"
    )
    shown = subprocess.run(
        [sys.executable, "-c", read, str(out)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert shown.stdout.startswith(str(package)), shown.stdout + shown.stderr
    table = batchgenre.open_store(out)
    assert list(table.columns[-4:]) == [
        "spectral.mean.centroid",
        "spectral.mean.rolloff",
        "spectral.std.centroid",
        "spectral.std.rolloff",
    ]
    centroids = table["spectral.mean.centroid"].to_numpy()
    assert table.attrs["feature_set"] == "robust+centroid" and ((centroids > 20) & (centroids < 11025)).all()
    # The square-wave chiptune is brighter than the low drone, as a centroid should say.
    by_genre = table.groupby("label", observed=True)["spectral.mean.centroid"].mean()
    assert by_genre["chiptune"] > by_genre["drone"]
