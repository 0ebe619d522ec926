"""The tutorial feature set against librosa's reference computation, and its names and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from batchgenre.errors import BatchgenreError
from batchgenre.features import FeatureError, get_feature_set
from batchgenre.features.reference import safe_tuning, tutorial_feature
from tests import synth

TUTORIAL = get_feature_set("tutorial")


def assert_within_spread(ours: np.ndarray, reference: np.ndarray, *, tolerance: float = 1e-4) -> None:
    """Every value within ``tolerance`` of that value's spread (max - min) over the corpus."""
    spread = reference.max(axis=0) - reference.min(axis=0)
    worst = np.abs(ours - reference) / np.maximum(spread, np.finfo(np.float32).tiny)
    i = np.unravel_index(np.argmax(worst), worst.shape)
    assert worst.max() <= tolerance, f"{TUTORIAL.names[i[1]]} of file {i[0]}: off by {worst.max():.2e} of its spread"


def generated_corpus(folder):
    """Tones, chords, noise and mixtures in several formats, rates and channel counts."""
    rng = np.random.default_rng(7)
    files = []
    for i, (freq, fmt, sr, channels) in enumerate(
        [
            (220, "wav", 22050, 1),
            (440, "flac", 44100, 2),
            (330, "mp3", 44100, 2),
            (880, "ogg", 22050, 1),
            (261.6, "wav", 16000, 1),
            (150, "wav", 48000, 2),
        ]
    ):
        y = synth.tone(freq=freq, seconds=6, sr=sr, amplitude=0.3, channels=channels)
        y = y + synth.tone(freq=freq * 1.5, seconds=6, sr=sr, amplitude=0.2, channels=channels)
        y = y + synth.noise(seconds=6, sr=sr, amplitude=float(rng.uniform(0.01, 0.1)), seed=i, channels=channels)
        files.append(synth.write(folder / f"clip{i}.{fmt}", y, sr=sr))
    return files


def test_tutorial_set_matches_librosa_on_generated_audio(tmp_path):
    files = generated_corpus(tmp_path)
    from batchgenre.audio import load

    ours = np.stack([TUTORIAL.extract(load(f), sr=22050) for f in files])
    reference = np.stack([tutorial_feature(f) for f in files])
    assert ours.shape == (len(files), 498) and ours.dtype == np.float32
    assert_within_spread(ours, reference)


def test_tutorial_set_matches_librosa_on_real_clips(gtzan):
    from batchgenre.audio import load

    files = [gtzan / g / f"{g}.{i:05d}.wav" for g in sorted(p.name for p in gtzan.iterdir()) for i in (1, 6)]
    files = [f for f in files if f.exists()]
    ours = np.stack([TUTORIAL.extract(load(f), sr=22050) for f in files])
    reference = np.stack([tutorial_feature(f) for f in files])
    assert_within_spread(ours, reference)


def test_every_value_has_a_unique_name_in_vector_order():
    names = TUTORIAL.names
    assert len(names) == TUTORIAL.size == 498
    assert len(set(names)) == 498
    assert names[0] == "chroma_stft.mean.C" and names[12] == "chroma_stft.min.C"
    assert names[36] == "melspectrogram.mean.000" and "mfcc.max.03" in names and names[-1] == "tonnetz.max.major_y"


@pytest.mark.parametrize(
    "samples, reason",
    [
        (np.zeros(0, np.float32), "too short"),
        (np.full(2047, 0.5, np.float32), "too short"),
        (np.zeros(22050, np.float32), "silent"),
        (np.full(22050, 1e-6, np.float32), "silent"),
    ],
)
def test_unusable_audio_is_refused_with_its_reason(samples, reason):
    with pytest.raises(FeatureError, match=reason):
        TUTORIAL.extract(samples, sr=22050)


def test_unknown_feature_set_names_the_known_ones():
    with pytest.raises(BatchgenreError, match="unknown feature set 'tutorail'.*tutorial"):
        get_feature_set("tutorail")


def test_a_combined_set_is_its_parts_end_to_end_on_real_audio(gtzan):
    from batchgenre.audio import load

    robust, musicnn = get_feature_set("robust"), get_feature_set("musicnn")
    combined = get_feature_set("robust+musicnn")
    assert combined.name == "robust+musicnn" and combined.parts == (robust, musicnn)
    assert combined.names == robust.names + musicnn.names and combined.size == robust.size + musicnn.size == 520
    assert combined.params == {"robust": robust.params, "musicnn": musicnn.params}
    # Each part keeps its own summaries: robust has no max, musicnn no std.
    assert "mfcc.std.00" in combined.names and "mfcc.max.00" not in combined.names
    assert "musicnn.max.000" in combined.names and "musicnn.std.000" not in combined.names
    assert combined.summaries == ("mean", "std", "max") and combined.warm_up and not musicnn.warm_up
    y = load(sorted((gtzan / "jazz").glob("*.wav"))[0])
    vector = combined.extract(y, sr=22050)
    assert vector.dtype == np.float32 and vector.shape == (520,)
    assert np.array_equal(vector, np.concatenate([robust.extract(y, sr=22050), musicnn.extract(y, sr=22050)]))


def test_a_combined_set_fails_a_clip_that_one_part_cannot_use():
    short = synth.noise(seconds=2.0)  # musicnn needs 3 s; robust alone takes it
    assert get_feature_set("robust").extract(short, sr=22050).shape == (120,)
    with pytest.raises(FeatureError):
        get_feature_set("robust+musicnn").extract(short, sr=22050)


@pytest.mark.parametrize(
    "name, message",
    [
        ("robust+fast", "feature set 'robust+fast': 'robust' and 'fast' both have a value named 'mfcc.mean.00'"),
        ("tutorial+fast", "'tutorial' and 'fast' both have a value named 'chroma_stft.mean.C'"),
        ("robust+robust", "feature set 'robust+robust' names 'robust' twice"),
        ("robust+musicnn+robust", "names 'robust' twice"),
        (
            "robust+mfcc",
            "unknown feature set 'robust+mfcc' ('mfcc' is not one): "
            "choose one of tutorial, fast, robust, musicnn, or several joined with +",
        ),
        ("robust+", "unknown feature set 'robust+' ('' is not one)"),
    ],
)
def test_a_combination_that_cannot_be_told_apart_is_refused_in_one_line(name, message):
    with pytest.raises(BatchgenreError) as caught:
        get_feature_set(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_fast_set_computes_the_same_quantities_from_one_float32_stft(tmp_path):
    import librosa

    from batchgenre.audio import load
    from batchgenre.features.fast import FAST, _filter_banks

    files = generated_corpus(tmp_path)
    clips = [load(f) for f in files]
    fast = np.stack([FAST.extract(y, sr=22050) for y in clips])
    assert fast.dtype == np.float32 and fast.shape == (len(files), 498)
    assert FAST.names == TUTORIAL.names

    def expected(y):
        power = np.abs(librosa.stft(y)) ** 2
        chroma = librosa.feature.chroma_stft(S=power, sr=22050, tuning=0.0)
        mel = librosa.feature.melspectrogram(S=power, sr=22050)
        blocks = (chroma, mel, librosa.feature.mfcc(S=librosa.power_to_db(mel)), librosa.feature.tonnetz(chroma=chroma))
        return np.concatenate([np.concatenate([b.mean(1), b.min(1), b.max(1)]) for b in blocks])

    assert_within_spread(fast, np.stack([expected(y) for y in clips]), tolerance=1e-3)
    misses = _filter_banks.cache_info().misses
    FAST.extract(clips[0], sr=22050)
    assert _filter_banks.cache_info().misses == misses, "filter banks must be built once per process"


@pytest.mark.parametrize("bins_per_octave, power", [(12, 2.0), (36, 1.0)])
def test_band_limited_tuning_equals_the_full_band_one(tmp_path, bins_per_octave, power):
    import librosa

    from batchgenre.audio import load
    from batchgenre.features.tutorial import estimate_tuning

    for f in generated_corpus(tmp_path):
        S = np.abs(librosa.stft(load(f))) ** power
        assert estimate_tuning(S, sr=22050, bins_per_octave=bins_per_octave) == safe_tuning(
            S, sr=22050, bins_per_octave=bins_per_octave
        )


def test_safe_tuning_equals_librosas_own_estimate(tmp_path):
    """librosa's estimate_tuning runs in a child with NUMBA_CPU_NAME=generic, the documented workaround
    for its float32 localmax segfault on some AMD EPYC hosts; this process never calls it."""
    import json
    import os
    import subprocess
    import sys

    import librosa

    from batchgenre.audio import load

    files = generated_corpus(tmp_path)
    spectrograms = []
    for i, f in enumerate(files):
        magnitude = np.abs(librosa.stft(load(f)))
        for power, bins in ((2.0, 12), (1.0, 36)):
            np.save(tmp_path / f"S{i}_{bins}.npy", magnitude**power)
            spectrograms.append((tmp_path / f"S{i}_{bins}.npy", bins))
    code = (
        "import json, sys, numpy as np, librosa\n"
        "pairs = json.loads(sys.argv[1])\n"
        "print(json.dumps([librosa.estimate_tuning(S=np.load(p), sr=22050, bins_per_octave=b) for p, b in pairs]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, json.dumps([(str(p), b) for p, b in spectrograms])],
        env={**os.environ, "NUMBA_CPU_NAME": "generic"},
        capture_output=True,
        text=True,
        check=True,
    )
    librosas = json.loads(child.stdout)
    ours = [safe_tuning(np.load(p), sr=22050, bins_per_octave=b) for p, b in spectrograms]
    assert ours == librosas
    assert len(set(ours)) > 1, "the corpus must hold more than one tuning for the check to mean anything"


@pytest.mark.parametrize(
    ("feature_set", "warmed"),
    [("musicnn", []), ("robust+musicnn", ["robust"]), ("robust", ["robust"]), (None, [])],
)
def test_a_helper_warms_up_the_runs_set_alone(feature_set, warmed):
    import subprocess
    import sys

    # A fresh interpreter, as a decoding helper is: warm_up remembers what it warmed in its process.
    probe = (
        "import sys, json\n"
        "from batchgenre.cluster import connection\n"
        "connection.warm_up(None if sys.argv[1] == '-' else sys.argv[1])\n"
        "connection.warm_up(None if sys.argv[1] == '-' else sys.argv[1])\n"
        "print(json.dumps(sorted(connection._warmed)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, feature_set or "-"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(warmed).replace("'", '"')


@pytest.mark.parametrize(
    "bank",
    [dict(sr=16000, n_fft=512, n_mels=96), dict(sr=22050, n_fft=2048, n_mels=128, fmax=3500.0)],
    ids=["musicnn", "robust"],
)
def test_mel_bank_and_window_are_librosas_to_the_bit(bank):
    import librosa

    from batchgenre.features.base import N_FFT, _hann_window, mel_bank

    assert np.array_equal(mel_bank(**bank), librosa.filters.mel(fmin=0.0, **bank))
    assert np.array_equal(_hann_window(), librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32))
