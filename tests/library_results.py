"""A small music folder classified by the real CLI, for the library's tests (playlists, report).

Made once per test process: a model trained on the demo's three genres, then classify-dir on clips
with awkward names (spaces, unicode, a leading ``#``, markup), one tagged FLAC, a mix of two genres and
noise (likely ``unknown``), and a file that is no audio (``failed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mutagen.flac

from batchgenre.demo import make_corpus, synthesize
from tests import synth
from tests.conftest import DEMO_CONFIG, run_cli

TAGGED = ("Ada Lovelace", "Engine, No. 1")
_made: dict[Path, Library] = {}


@dataclass
class Library:
    """``parent`` holds ``music`` (the classified folder) and nothing else yet; ``results`` is outside it."""

    parent: Path
    music: Path
    results: Path


def classified_library(base: Path) -> Library:
    """The classified folder under ``base`` (a test session's temporary folder), made on first call."""
    if base in _made:
        return _made[base]
    model_dir = base / "model"
    make_corpus(model_dir / "audio", per_genre=6, seconds=6)
    featurized = run_cli("featurize", model_dir / "audio", "--out", model_dir / "f.zarr", "--workers", "2")
    assert featurized.returncode == 0, featurized.stderr
    (model_dir / "config.toml").write_text(
        DEMO_CONFIG.format(epochs=40, store=model_dir / "f.zarr", out=model_dir / "run")
    )
    trained = run_cli("train", model_dir / "config.toml")
    assert trained.returncode == 0, trained.stderr

    music = base / "collection" / "music"
    for i, (genre, name) in enumerate(
        [
            ("drone", "with space.wav"),
            ("techno", "Ünïcødé ñ/träck.ogg"),
            ("chiptune", "#hash.wav"),
            ("drone", "a/b/<b>bold & co.wav"),
            ("techno", "techno two.wav"),
            ("chiptune", "chip two.mp3"),
        ]
    ):
        synth.write(music / name, synthesize(genre, seconds=7, seed=[5, i]))
    synth.write(music / "tagged.flac", synthesize("techno", seconds=7, seed=[6, 0]))
    tags = mutagen.flac.FLAC(music / "tagged.flac")
    tags["artist"], tags["title"] = TAGGED
    tags.save()
    mix = 0.5 * (synthesize("drone", seconds=7, seed=[7, 0]) + synthesize("chiptune", seconds=7, seed=[7, 1]))
    synth.write(music / "mix.wav", mix)
    synth.write(music / "noise.wav", synth.noise(seconds=7, amplitude=0.3, seed=8))
    (music / "broken.wav").write_bytes(b"RIFF this is not audio")
    results = base / "results.csv"
    classified = run_cli(
        "classify-dir", music, "--model", model_dir / "run" / "model.keras", "--out", results,
        "--workers", "1", "--min-confidence", "0.985",
    )  # fmt: skip
    assert classified.returncode == 3, classified.stderr  # broken.wav fails, the rest are classified
    _made[base] = Library(base / "collection", music, results)
    return _made[base]
