"""The robust feature set: its names, and how little its vector moves when a clip changes level, rate, band or codec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batchgenre.audio import load
from batchgenre.audio.variants import VARIANTS, write_variant
from batchgenre.features import FAST, ROBUST, TUTORIAL, FeatureError, FeatureSet, get_feature_set
from batchgenre.features.robust import _robust_banks
from tests import synth

SR = 22050

# How far, at most, a variant may move the robust vector of a clip, as a share of the median
# distance between two different clips (both standardised over those clips). Clipping really
# does change the spectrum, so +6 dB gets more room; it still moves the tutorial vector 8x further.
MOST_MOVEMENT = {name: 0.25 for name in VARIANTS} | {"loud": 0.75}
# ...and the robust vector must move at most this share of what the tutorial vector moves.
MOST_OF_TUTORIAL = 0.25


def music_like(seed: int, *, seconds: float = 4.0) -> np.ndarray:
    """A swelling chord and a decaying noise burst on every beat, peaking at -1 dBFS.

    Tonal and broadband, with a crest factor like music's: +6 dB clips 0.5-2.5 % of its
    samples, as it does for most GTZAN clips.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    root = rng.uniform(110, 220)
    chord = sum(synth.tone(freq=root * ratio, seconds=seconds, amplitude=0.2) for ratio in (1, 1.25, 1.5, 2))
    hits = np.exp(-8 * ((t * rng.uniform(1.5, 3.0)) % 1))
    drums = synth.noise(seconds=seconds, amplitude=1.0, seed=seed) * hits
    y = chord * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)) + rng.uniform(0.3, 1.0) * drums
    return (0.9 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [music_like(seed) for seed in range(6)]


@pytest.fixture(scope="module")
def baselines(clips) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per feature set: the clips' vectors [shape=(6, size)], their std per value, the median distance between two."""
    out = {}
    for fs in (ROBUST, TUTORIAL):
        vectors = np.stack([fs.extract(y, sr=SR) for y in clips])
        scale = vectors.std(axis=0) + np.finfo(np.float32).tiny
        z = vectors / scale
        between = np.median([np.linalg.norm(z[i] - z[j]) for i in range(len(z)) for j in range(i)])
        out[fs.name] = (vectors, scale, float(between))
    return out


def test_robust_set_is_registered_with_a_unique_name_for_every_value():
    assert get_feature_set("robust") is ROBUST
    names = ROBUST.names
    assert len(names) == ROBUST.size == 120 and len(set(names)) == len(names)
    assert names[0] == "mfcc.mean.00" and names[30] == "mfcc.std.00" and names[60] == "mfcc_abs_delta.mean.00"
    assert names[-1] == "mfcc_abs_delta.std.29"
    assert not any(".min." in n or ".max." in n for n in names)
    assert json.loads(json.dumps(ROBUST.params)) == ROBUST.params  # stored as store and model attributes


def test_robust_vector_is_float32_of_its_size(clips):
    v = ROBUST.extract(clips[0], sr=SR)
    assert v.shape == (ROBUST.size,) and v.dtype == np.float32 and np.isfinite(v).all()


def test_filter_banks_are_built_once_in_float32_and_stop_at_the_band():
    mel, dct = _robust_banks(SR)
    assert _robust_banks(SR)[0] is mel
    assert mel.dtype == dct.dtype == np.float32
    assert mel.shape[0] == dct.shape[1] == 128 and dct.shape[0] == 30
    assert (mel.shape[1] - 1) * SR / 2048 <= 3500.0  # no bin above the band is ever used


@pytest.mark.parametrize("gain_db", [-40.0, -20.0, -6.0, 10.0])
def test_gain_alone_leaves_the_vector_unchanged(clips, gain_db):
    y = clips[1]
    scaled = (y * np.float32(10 ** (gain_db / 20))).astype(np.float32)  # in memory: no clipping, no quantisation
    np.testing.assert_allclose(ROBUST.extract(scaled, sr=SR), ROBUST.extract(y, sr=SR), atol=1e-3)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variants_barely_move_the_robust_vector(tmp_path, clips, baselines, name):
    moved = {}
    for fs in (ROBUST, TUTORIAL):
        vectors, scale, between = baselines[fs.name]
        worst = 0.0
        for k in range(2):
            path = write_variant(clips[k], sr=SR, variant=VARIANTS[name], path=tmp_path / f"clip{k}.wav")
            worst = max(worst, np.linalg.norm((fs.extract(load(path), sr=SR) - vectors[k]) / scale) / between)
        moved[fs.name] = worst
    share = moved["robust"]
    assert share <= MOST_MOVEMENT[name], f"{name}: the robust vector moved {share:.3f} of a clip-to-clip distance"
    assert moved["robust"] <= MOST_OF_TUTORIAL * moved["tutorial"], f"{name}: {moved}"


def test_content_above_the_band_alone_is_refused():
    with pytest.raises(FeatureError, match="below 3500 Hz"):
        ROBUST.extract(synth.tone(freq=6000, seconds=2), sr=SR)


@pytest.mark.parametrize(
    "samples, reason", [(np.zeros(1000, np.float32), "too short"), (np.zeros(SR, np.float32), "silent")]
)
def test_unusable_audio_is_refused_with_its_reason(samples, reason):
    with pytest.raises(FeatureError, match=reason):
        ROBUST.extract(samples, sr=SR)


def test_summaries_are_checked_and_default_to_mean_min_max():
    assert TUTORIAL.summaries == FAST.summaries == ("mean", "min", "max")
    with pytest.raises(ValueError, match="median"):
        FeatureSet(name="x", description="", params={}, blocks=(), frames=lambda y, sr: {}, summaries=("median",))


def test_every_variant_of_a_real_clip_stays_nearest_its_own_original(tmp_path, gtzan):
    files = [gtzan / g / f"{g}.{i:05d}.wav" for g in ("classical", "reggae", "rock") for i in (1, 6)]
    originals = np.stack([ROBUST.extract(load(f), sr=SR) for f in files])
    scale = originals.std(axis=0) + np.finfo(np.float32).tiny
    for name, variant in VARIANTS.items():
        for k, f in enumerate(files):
            path = write_variant(load(f), sr=SR, variant=variant, path=tmp_path / name / f.name)
            distances = np.linalg.norm((ROBUST.extract(load(path), sr=SR) - originals) / scale, axis=1)
            assert distances.argmin() == k, f"{name} of {f.name} is nearest {files[distances.argmin()].name}"
