"""The musicnn feature set: the rebuilt forward pass against the original TF1 graph, its preprocessing, the CLI."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from batchgenre.audio import load
from batchgenre.cli import EXIT_SOME_FAILED
from batchgenre.features import FeatureError, get_feature_set, musicnn
from batchgenre.store import FeatureStore
from tests import synth
from tests.conftest import run_cli

# The original graph's outputs on four GTZAN clips (tools/convert_musicnn.py reference).
REFERENCE = Path(__file__).with_name("data") / "musicnn_reference.npz"
TOLERANCE = 1e-5


def load_16k(y: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(y, 22050, musicnn.SAMPLE_RATE, quality="soxr_hq").astype(np.float32)


def test_rebuilt_forward_pass_equals_the_original_graph_on_real_clips(gtzan):
    with np.load(REFERENCE) as reference:
        for i, clip in enumerate(reference["clips"]):
            tags, penultimate = musicnn.embed(load(gtzan / str(clip)), sr=22050)
            assert tags.shape == reference[f"tags_{i}"].shape == (10, 50), clip
            assert np.abs(tags - reference[f"tags_{i}"]).max() <= TOLERANCE, clip
            assert np.abs(penultimate - reference[f"penultimate_{i}"]).max() <= TOLERANCE, clip


def test_loud_audio_gives_finite_outputs_where_musicnns_float16_overflowed():
    y = 0.6 * synth.tone(freq=110, seconds=4.0, amplitude=1.0) + synth.noise(seconds=4.0, amplitude=0.39)
    assert 0.95 < np.abs(y).max() <= 1.0
    spectrogram = musicnn.log_mel(load_16k(y))
    # Some bin's 10000 * mel is past float16's largest value: musicnn's own arithmetic gives inf there.
    assert spectrogram.max() > np.log10(float(np.finfo(np.float16).max) + 1)
    tags, penultimate = musicnn.embed(y, sr=22050)
    assert len(tags) == 1 and np.isfinite(tags).all() and np.isfinite(penultimate).all()
    assert ((tags > 0) & (tags < 1)).all()


@pytest.mark.parametrize(
    ("seconds", "hop", "max_patches", "starts"),
    [
        (30.0, musicnn.PATCH_HOP, None, list(range(0, 1690, 187))),  # a GTZAN clip: musicnn's 10 patches
        (3.0, musicnn.PATCH_HOP, None, [0]),
        (2.9, musicnn.PATCH_HOP, None, []),
        (30.0, musicnn.PATCH_HOP, 3, [187, 935, 1496]),  # the middle of each third
        (30.0, musicnn.PATCH_HOP, 1, [935]),
        (30.0, musicnn.PATCH_HOP, 20, list(range(0, 1690, 187))),
        (6.0, 93, None, [0, 93, 186]),
    ],
)
def test_patches_start_where_musicnn_starts_them(seconds, hop, max_patches, starts):
    frames = 1 + round(seconds * musicnn.SAMPLE_RATE) // musicnn.HOP_LENGTH
    spectrogram = np.arange(frames, dtype=np.float32)[:, None] * np.ones(musicnn.N_MELS, np.float32)
    cut = musicnn.patches(spectrogram, hop=hop, max_patches=max_patches)
    assert cut.shape == (len(starts), musicnn.PATCH_FRAMES, musicnn.N_MELS)
    assert cut[:, 0, 0].tolist() == starts
    assert all((cut[i, :, 5] == np.arange(s, s + musicnn.PATCH_FRAMES)).all() for i, s in enumerate(starts))


def test_log_mel_equals_librosas_melspectrogram_as_musicnn_called_it(gtzan):
    import librosa

    y = load_16k(load(gtzan / "rock" / sorted(p.name for p in (gtzan / "rock").iterdir())[0]))
    mel = librosa.feature.melspectrogram(
        y=y, sr=musicnn.SAMPLE_RATE, n_fft=musicnn.N_FFT, hop_length=musicnn.HOP_LENGTH, n_mels=musicnn.N_MELS,
        pad_mode="reflect",
    )  # fmt: skip
    expected = np.log10(np.float32(10000) * mel.T + np.float32(1))
    ours = musicnn.log_mel(y)
    assert ours.shape == expected.shape == (1 + len(y) // musicnn.HOP_LENGTH, musicnn.N_MELS)
    # float32 FFTs and products summed in another order: equal to a few float32 steps of log values up to 5.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)
    # Only some frames (the first and last with their reflected ends): the same rows of the whole, up to
    # the rounding of products blocked differently.
    frames = np.array([len(ours) - 1, 0, 700, 701, 5])
    np.testing.assert_allclose(musicnn.log_mel(y, frames=frames), ours[frames], rtol=0, atol=1e-6)


def test_a_windows_vector_summarises_every_other_patch():
    y = synth.noise(seconds=30.0, amplitude=0.3, sr=22050)
    tags, penultimate = musicnn.embed(y, sr=22050)
    assert len(penultimate) == 10
    chosen = musicnn.spread(10, max_patches=musicnn.MAX_PATCHES)
    assert chosen.tolist() == [1, 3, 5, 7, 9]
    vector, extras = get_feature_set("musicnn").extract_with_extras(y, sr=22050)
    expected = np.concatenate([penultimate[chosen].mean(axis=0), penultimate[chosen].max(axis=0)])
    np.testing.assert_allclose(vector, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(extras["tags"], tags[chosen].mean(axis=0), rtol=0, atol=TOLERANCE)
    assert get_feature_set("musicnn").params["max_patches"].startswith("5,")


def test_batching_patches_changes_no_output():
    x = musicnn.log_mel(load_16k(synth.noise(seconds=9.5, amplitude=0.3)))
    cut = musicnn.patches(x)
    assert len(cut) == 3
    one, three = musicnn.forward(cut, batch=1), musicnn.forward(cut, batch=3)
    # BLAS blocks a taller product differently: equal up to float32 rounding, not bit for bit.
    for a, b in zip(one, three, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE)


def test_feature_set_names_every_value_and_refuses_clips_under_one_patch():
    fs = get_feature_set("musicnn")
    assert fs.size == len(fs.names) == 400
    assert (fs.names[0], fs.names[200], fs.names[-1]) == ("musicnn.mean.000", "musicnn.max.000", "musicnn.max.199")
    y = synth.noise(seconds=6.5, amplitude=0.3)
    vector = fs.extract(y, sr=22050)
    _, penultimate = musicnn.embed(y, sr=22050)
    np.testing.assert_array_equal(vector, np.concatenate([penultimate.mean(axis=0), penultimate.max(axis=0)]))
    with pytest.raises(FeatureError, match="too short for musicnn: 2.50 s, one patch needs 2.98 s"):
        fs.extract(y[: int(2.5 * 22050)], sr=22050)


def test_weights_and_their_licence_ship_in_the_package():
    folder = resources.files("batchgenre.features") / "weights"
    notice = (folder / "MUSICNN-LICENSE.md").read_text()
    assert "Permission to use, copy, modify, and/or distribute this software" in notice
    w = musicnn.weights()
    assert w["timbral0_kernel"].shape == (7 * 38, 204) and w["tags_kernel"].shape == (200, len(musicnn.TAGS))


@pytest.mark.slow
def test_featurize_with_musicnn_through_the_cli_writes_finite_rows(tmp_path):
    corpus = tmp_path / "corpus"
    synth.write(corpus / "low" / "a.wav", synth.tone(freq=110, seconds=7.0))
    synth.write(corpus / "high" / "b.flac", synth.tone(freq=1760, seconds=4.0, sr=44100, channels=2), sr=44100)
    synth.write(corpus / "noise" / "c.mp3", synth.noise(seconds=4.0, amplitude=0.9))
    synth.write(corpus / "noise" / "short.wav", synth.noise(seconds=2.0, amplitude=0.3))
    out = tmp_path / "f.zarr"
    result = run_cli("featurize", corpus, "--out", out, "--workers", "1", "--features", "musicnn")
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    assert "3 done, 1 failed" in result.stdout
    store = FeatureStore.open(str(out))
    assert store.attrs["feature_set"] == "musicnn" and store.attrs["feature_names"] == get_feature_set("musicnn").names
    rows = dict(
        zip(
            store.column("path").tolist(),
            zip(store.column("features"), store.column("error").tolist(), strict=True),
            strict=True,
        )
    )
    for path in ("low/a.wav", "high/b.flac", "noise/c.mp3"):
        assert np.isfinite(rows[path][0]).all() and np.abs(rows[path][0]).max() > 0, path
    assert "too short for musicnn" in rows["noise/short.wav"][1]
