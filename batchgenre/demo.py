"""A small corpus the project makes itself, and the whole flow on it: featurize, train, classify-dir.

Nothing is downloaded, so the flow runs on a fresh machine.

Three synthetic "genres" that differ the way real ones do, in timbre, rhythm and harmony:
``drone`` (slow low chords), ``techno`` (kick and hi-hat on a beat), ``chiptune`` (square-wave
arpeggios). Each file draws its key, tempo and level from a seeded generator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

SR = 22050
GENRES = ("chiptune", "drone", "techno")
FORMATS = ("wav", "flac", "mp3", "ogg")


def _drone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    root = rng.uniform(55, 110)
    chord = sum(np.sin(2 * np.pi * root * r * t + rng.uniform(0, 6)) for r in (1, 1.5, 2, 2.5))
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)
    return chord * swell + 0.05 * rng.standard_normal(t.size)


def _techno(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    beat = 60 / rng.uniform(118, 135)
    phase = t % beat
    kick = np.sin(2 * np.pi * (50 + 120 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 9)
    hat_phase = (t + beat / 2) % beat
    hats = rng.standard_normal(t.size) * np.exp(-hat_phase * 60) * 0.4
    return kick + hats


def _chiptune(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    root = rng.uniform(220, 440)
    step = 60 / rng.uniform(140, 180) / 2
    notes = root * 2 ** (np.array(rng.choice([0, 3, 4, 7, 9, 12], size=int(t[-1] / step) + 1)) / 12)
    freq = notes[(t // step).astype(int)]
    return 0.5 * np.sign(np.sin(2 * np.pi * np.cumsum(freq) / SR))


_SYNTHS = {"drone": _drone, "techno": _techno, "chiptune": _chiptune}


def synthesize(genre: str, *, seconds: float, seed: int | list[int] = 0) -> np.ndarray:
    """One clip of a demo genre [shape=(seconds * SR,), dtype=float32], its level drawn between -20 and -3 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = _SYNTHS[genre](rng, t)
    return (y / np.max(np.abs(y)) * 10 ** (rng.uniform(-20, -3) / 20)).astype(np.float32)


def make_corpus(folder: Path, *, per_genre: int = 12, seconds: float = 12.0, seed: int = 0) -> list[Path]:
    """Write ``per_genre`` clips of each genre into ``folder/<genre>/``, in rotating formats.

    Returns the files written. Files already there are kept, so a rerun costs nothing.
    """
    written = []
    for g, genre in enumerate(GENRES):
        for i in range(per_genre):
            path = Path(folder) / genre / f"{genre}.{i:05d}.{FORMATS[i % len(FORMATS)]}"
            written.append(path)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, synthesize(genre, seconds=seconds, seed=[seed, g, i]), SR)
    return written


def make_new_music(folder: Path, *, per_genre: int = 3, seconds: float = 45.0) -> dict[str, str]:
    """Unseen clips to classify, in nested folders and several formats; returns relative path -> true genre."""
    truth = {}
    for g, genre in enumerate(GENRES):
        for i in range(per_genre):
            rel = f"album {i + 1}/{genre} track.{FORMATS[(g + i) % len(FORMATS)]}"
            path = Path(folder) / rel
            truth[rel] = genre
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, synthesize(genre, seconds=seconds, seed=[1000, g, i]), SR)
    return truth


@dataclass
class DemoReport:
    store: str
    run_dir: Path
    results: Path
    test_accuracy: float
    new_music_accuracy: float


def run_demo(folder: Path, *, workers: int = 2, scheduler: str | None = None) -> DemoReport:
    """Generate the corpus, featurize it, train on it, and classify unseen clips.

    Each step's output goes under ``folder``.
    """
    import batchgenre

    folder = Path(folder)
    files = make_corpus(folder / "audio")
    truth = make_new_music(folder / "new music")
    log.info(
        "demo corpus: %d generated clips in %s, %d unseen ones in %s",
        len(files),
        folder / "audio",
        len(truth),
        folder / "new music",
    )
    store = str(folder / "features.zarr")
    batchgenre.featurize(folder / "audio", out=store, workers=workers, scheduler=scheduler)
    report = batchgenre.train({"data": {"store": store}, "output": {"dir": str(folder / "run")}}, force=True)
    results = folder / "results.csv"
    results.unlink(missing_ok=True)
    batchgenre.classify_dir(
        folder / "new music", model=report.run_dir / "model.keras", out=results, workers=workers, scheduler=scheduler
    )
    import csv

    with open(results, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    right = sum(row["genre"] == truth[row["path"]] for row in rows)
    return DemoReport(store, report.run_dir, results, report.metrics["accuracy"], right / len(truth))
