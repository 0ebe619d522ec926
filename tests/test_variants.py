"""Variants are real files with the rate, channels, level, bandwidth and codec they claim."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from batchgenre.audio import load
from batchgenre.audio.variants import VARIANTS, get_variant, write_variant
from batchgenre.errors import BatchgenreError
from tests import synth

SR = 22050


def band_energy(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum())


@pytest.fixture
def clip() -> np.ndarray:
    """5 s of a 440 Hz tone plus white noise over the whole band, peaking near -6 dBFS."""
    y = synth.tone(freq=440, seconds=5, amplitude=0.3) + synth.noise(seconds=5, amplitude=0.2)
    return y.astype(np.float32)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_decodes_to_the_same_duration(tmp_path, clip, name):
    path = write_variant(clip, sr=SR, variant=get_variant(name), path=tmp_path / "clip")
    y = load(path, duration=None)
    assert abs(len(y) / SR - 5.0) < 0.06, f"{name}: {len(y) / SR:.3f} s"


@pytest.mark.parametrize(
    "name, rate, channels", [("8khz", 8000, 1), ("16khz", 16000, 1), ("44khz_stereo", 44100, 2), ("quiet", SR, 1)]
)
def test_rates_and_channels(tmp_path, clip, name, rate, channels):
    info = sf.info(write_variant(clip, sr=SR, variant=get_variant(name), path=tmp_path / "clip"))
    assert (info.samplerate, info.channels) == (rate, channels)


def test_levels_and_clipping(tmp_path, clip):
    rms = lambda y: float(np.sqrt(np.mean(y**2)))  # noqa: E731
    quiet = load(write_variant(clip, sr=SR, variant=get_variant("quiet"), path=tmp_path / "q"), duration=None)
    assert 20 * np.log10(rms(quiet) / rms(clip)) == pytest.approx(-20, abs=0.1)
    hot = 1.6 * clip  # peaks near -2 dBFS: 6 dB more must clip
    loud = load(write_variant(hot, sr=SR, variant=get_variant("loud"), path=tmp_path / "l"), duration=None)
    assert np.max(np.abs(loud)) <= 1.0 and np.mean(np.abs(loud) > 0.999) > 0.01  # really clipped
    assert 4 < 20 * np.log10(rms(loud) / rms(hot)) < 6


@pytest.mark.parametrize("name, cutoff", [("8khz", 4000), ("lowpass", 4000), ("16khz", 8000)])
def test_band_limits(tmp_path, clip, name, cutoff):
    y = load(write_variant(clip, sr=SR, variant=get_variant(name), path=tmp_path / "clip"), duration=None)
    before, after = band_energy(clip, SR, cutoff * 1.1, SR / 2), band_energy(y, SR, cutoff * 1.1, SR / 2)
    assert before > 0.04 and after < before / 100


def test_mp3_is_128_kbit(tmp_path, clip):
    path = write_variant(clip, sr=SR, variant=get_variant("mp3"), path=tmp_path / "clip")
    assert path.suffix == ".mp3"
    assert path.stat().st_size * 8 / 5.0 == pytest.approx(128_000, rel=0.1)


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(BatchgenreError, match="unknown variant 'radio'.*8khz"):
        get_variant("radio")
