"""Decoding, cropping and windowing in batchgenre.audio, on generated audio and GTZAN clips."""

from __future__ import annotations

import os
import pathlib
import re
import tracemalloc
import zlib

import librosa
import numpy as np
import pytest
import soundfile as sf

from batchgenre import audio
from batchgenre.audio import DecodeError
from tests import synth

SR = audio.SAMPLE_RATE

# Extension -> how far (in output samples at 22050 Hz) the decoded length may stray from the
# source's. Lossless formats and libsndfile's gapless Vorbis, MP3 and Opus are exact; AAC and
# WMA frames pad or trim up to about two codec frames.
ROUNDTRIP = {
    "wav": 0, "wave": 0, "au": 0, "snd": 0, "aif": 0, "aiff": 0, "aifc": 0, "flac": 0,
    "ogg": 0, "oga": 0, "mp3": 0, "opus": 0,
    "m4a": 1024, "mp4": 1024, "aac": 2048, "mka": 1024, "webm": 1024, "wma": 2048,
}  # fmt: skip

# Formats librosa.load reads (through soundfile): load must agree with it.
LIBROSA_FORMATS = ["wav", "flac", "mp3", "ogg"]


def dominant_frequency(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spectrum) * sr / len(y))


@pytest.fixture(scope="module")
def stereo_44k(tmp_path_factory) -> dict[str, pathlib.Path]:
    """12 s of a 1 kHz tone plus noise, 44.1 kHz stereo (channels differ), in each librosa format."""
    y = synth.tone(freq=1000.0, seconds=12.0, sr=44100, amplitude=0.3, channels=2)
    y += synth.noise(seconds=12.0, sr=44100, amplitude=0.2, channels=2)
    folder = tmp_path_factory.mktemp("stereo_44k")
    return {ext: synth.write(folder / f"clip.{ext}", y, sr=44100) for ext in LIBROSA_FORMATS}


@pytest.fixture(scope="module")
def hundred_seconds(tmp_path_factory) -> pathlib.Path:
    """100 s of 22050 Hz mono noise as wav."""
    folder = tmp_path_factory.mktemp("long")
    return synth.write(folder / "100s.wav", synth.noise(seconds=100.0, sr=SR), sr=SR)


def test_extensions_are_all_tested():
    assert {f".{ext}" for ext in ROUNDTRIP} == audio.AUDIO_EXTENSIONS


@pytest.mark.parametrize("ext", sorted(ROUNDTRIP))
def test_roundtrip_stereo_44k_to_mono_22050(tmp_path, ext):
    path = synth.write(tmp_path / f"tone.{ext}", synth.tone(freq=1000.0, seconds=3.0, sr=44100, channels=2), sr=44100)
    y = audio.load(path)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert abs(len(y) - 3 * SR) <= ROUNDTRIP[ext]
    assert dominant_frequency(y, SR) == pytest.approx(1000.0, abs=2.0)
    assert audio.probe_duration(path) == pytest.approx(3.0, abs=0.1)


def test_downmix_is_the_mean_of_all_channels(tmp_path):
    levels = np.array([0.1, -0.3, 0.5, 0.2, 0.0, -0.1], dtype=np.float32)
    path = tmp_path / "six.wav"
    sf.write(path, np.tile(levels, (SR, 1)), SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path), np.full(SR, levels.mean()), atol=1e-7)


def test_offset_and_duration_crop(tmp_path):
    path = synth.write(tmp_path / "noise.wav", synth.noise(seconds=5.0, sr=SR), sr=SR)
    whole = audio.load(path, duration=None)
    assert len(whole) == 5 * SR
    np.testing.assert_array_equal(audio.load(path, offset=1.5, duration=2.0), whole[33075 : 33075 + 2 * SR])
    np.testing.assert_array_equal(audio.load(path, offset=4.0), whole[4 * SR :])
    assert len(audio.load(path)) == 5 * SR  # duration=30 s on a 5 s file: all of it


@pytest.mark.parametrize("ext", LIBROSA_FORMATS)
@pytest.mark.parametrize("offset, duration", [(0.0, 30.0), (0.0, None), (1.3, 5.0), (7.77, None), (11.5, 30.0)])
def test_matches_librosa_on_stereo_44k(stereo_44k, ext, offset, duration):
    expected, _ = librosa.load(stereo_44k[ext], sr=SR, mono=True, offset=offset, duration=duration)
    y = audio.load(stereo_44k[ext], offset=offset, duration=duration)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr_native, channels", [(22050, 1), (48000, 1), (16000, 2)])
@pytest.mark.parametrize("sr", [22050, 16000])
def test_matches_librosa_across_rates(tmp_path, sr_native, channels, sr):
    path = synth.write(tmp_path / "clip.flac", synth.noise(seconds=4.0, sr=sr_native, channels=channels), sr=sr_native)
    expected, _ = librosa.load(path, sr=sr, mono=True, offset=0.25, duration=3.0)
    y = audio.load(path, sr=sr, offset=0.25, duration=3.0)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)


def test_lossy_seek_lands_on_the_same_samples(tmp_path):
    """FFmpeg seeks (here in an MP4) find the same samples as decoding from the top."""
    path = synth.write(tmp_path / "tone.m4a", synth.tone(freq=440.0, seconds=8.0, sr=SR), sr=SR)
    whole = audio.load(path, duration=None)
    for offset in (0.5, 3.0, 6.25):
        start = int(offset * SR)
        np.testing.assert_allclose(audio.load(path, offset=offset, duration=1.0), whole[start : start + SR], atol=1e-3)


def broken_symlink(tmp_path: pathlib.Path) -> pathlib.Path:
    link = tmp_path / "gone.wav"
    link.symlink_to(tmp_path / "never-existed.wav")
    return link


def header_only_wav(tmp_path: pathlib.Path) -> pathlib.Path:
    path = synth.write(tmp_path / "full.wav", synth.tone(seconds=1.0), sr=SR)
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(path.read_bytes()[:44])
    return header_only


def half_a_flac(tmp_path: pathlib.Path) -> pathlib.Path:
    path = synth.write(tmp_path / "full.flac", synth.noise(seconds=3.0), sr=SR)
    half = tmp_path / "half.flac"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return half


def png_named_m4a(tmp_path: pathlib.Path) -> pathlib.Path:
    """A real PNG: FFmpeg opens it, as a video stream with no audio."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (4).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(b"\0" * 20)
    path = tmp_path / "cover.m4a"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def random_bytes(name: str):
    def make(tmp_path: pathlib.Path) -> pathlib.Path:
        path = tmp_path / name
        path.write_bytes(np.random.default_rng(0).bytes(5000))
        return path

    return make


def empty_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "empty.wav"
    path.touch()
    return path


NOT_AUDIO = "not an audio file libsndfile or FFmpeg can decode"
BAD_INPUTS = {
    "empty": (empty_file, "empty file (0 bytes)"),
    "missing": (lambda tmp: tmp / "missing.wav", "file vanished before it could be read"),
    "broken-symlink": (broken_symlink, "broken symbolic link"),
    "directory": (lambda tmp: tmp, "a directory"),
    "random.wav": (random_bytes("noise.wav"), NOT_AUDIO),
    "random.mp3": (random_bytes("noise.mp3"), NOT_AUDIO),
    "random.m4a": (random_bytes("noise.m4a"), NOT_AUDIO),
    "random.flac": (random_bytes("noise.flac"), NOT_AUDIO),  # FFmpeg probes it as MPEG audio at 0 Hz
    "header-only.wav": (header_only_wav, "no audio: the file holds no samples"),
    "half.flac": (half_a_flac, "corrupt or truncated: flac decoder lost sync"),
    "png.m4a": (png_named_m4a, "no audio stream"),
}


@pytest.mark.parametrize("make, reason", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
@pytest.mark.parametrize("call", [audio.load, lambda p: list(audio.iter_windows(p))], ids=["load", "iter_windows"])
def test_bad_input_says_why(tmp_path, make, reason, call):
    with pytest.raises(DecodeError, match=f"^{re.escape(reason)}") as raised:
        call(make(tmp_path))
    message = str(raised.value)
    assert "\n" not in message and str(tmp_path) not in message


def test_truncated_wav_gives_what_is_there(tmp_path):
    """libsndfile counts frames from the file's size when the header promises more."""
    path = synth.write(tmp_path / "full.wav", synth.tone(seconds=4.0), sr=SR)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[: 44 + 2 * SR])  # header + 1 s of 16-bit mono
    assert len(audio.load(cut)) == SR
    assert audio.probe_duration(cut) == 1.0


def test_truncated_mp3_gives_what_is_there(tmp_path):
    path = synth.write(tmp_path / "full.mp3", synth.tone(seconds=6.0), sr=SR)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert 2 * SR < len(audio.load(cut)) < 3 * SR  # the header and tags take some of the bytes
    with pytest.raises(DecodeError, match=r"^no audio at offset 4 s, though the header says 6 s \(truncated\?\)$"):
        audio.load(cut, offset=4.0)


def test_offset_past_the_end(tmp_path):
    path = synth.write(tmp_path / "short.wav", synth.tone(seconds=2.0), sr=SR)
    with pytest.raises(DecodeError, match=r"^no audio at offset 5 s: the file is 2 s long$"):
        audio.load(path, offset=5.0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = synth.write(tmp_path / "locked.wav", synth.tone(seconds=1.0), sr=SR)
    path.chmod(0)
    with pytest.raises(DecodeError, match="^permission denied$"):
        audio.load(path)


@pytest.mark.parametrize("kwargs", [{"offset": -1.0}, {"duration": 0.0}, {"sr": 0}, {"window": 0.0}, {"hop": -5.0}])
def test_misuse_raises_value_error(hundred_seconds, kwargs):
    with pytest.raises(ValueError):
        list(audio.iter_windows(hundred_seconds, **kwargs))


@pytest.mark.parametrize(
    "window_kwargs, starts, last_seconds",
    [
        ({"hop": 30.0}, [0, 30, 60], 30),  # the 10 s tail is under half a window: dropped
        ({"hop": 15.0}, [0, 15, 30, 45, 60, 75], 25),  # 75-100 reaches the end: the last
        ({"hop": 35.0}, [0, 35, 70], 30),  # gaps between windows; 70-100 ends with the file
        ({"hop": 30.0, "offset": 5.0, "duration": 70.0}, [5, 35], 30),
        ({"hop": 30.0, "offset": 5.0, "duration": 80.0}, [5, 35, 65], 20),
        ({"hop": 30.0, "offset": 90.0}, [90], 10),  # shorter than one window: one short window
    ],
)
def test_window_count_and_lengths(hundred_seconds, window_kwargs, starts, last_seconds):
    windows = list(audio.iter_windows(hundred_seconds, window=30.0, **window_kwargs))
    assert [start for start, _ in windows] == starts
    assert all(len(y) == 30 * SR for _, y in windows[:-1])
    assert len(windows[-1][1]) == last_seconds * SR


def test_short_file_gives_one_short_window(tmp_path):
    path = synth.write(tmp_path / "ten.wav", synth.noise(seconds=10.0), sr=SR)
    [(start, y)] = audio.iter_windows(path)
    assert start == 0.0
    np.testing.assert_array_equal(y, audio.load(path))


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_windows_equal_load_of_the_same_span(stereo_44k, ext):
    windows = list(audio.iter_windows(stereo_44k[ext], window=4.0, hop=2.5, offset=0.3))
    assert [start for start, _ in windows] == pytest.approx([0.3, 2.8, 5.3, 7.8])
    for start, y in windows:
        expected = audio.load(stereo_44k[ext], offset=start, duration=4.0)
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, atol=1e-6)


def test_windows_through_ffmpeg(tmp_path):
    path = synth.write(tmp_path / "tone.m4a", synth.tone(freq=440.0, seconds=10.0, sr=44100, channels=2), sr=44100)
    windows = list(audio.iter_windows(path, window=4.0, hop=3.0, offset=0.5))
    assert [start for start, _ in windows] == [0.5, 3.5, 6.5]
    for start, y in windows:
        np.testing.assert_allclose(y, audio.load(path, offset=start, duration=4.0), atol=1e-3)


def test_windows_stream_in_constant_memory(tmp_path):
    """20 minutes of audio, 30 s windows: the peak is a few windows, not the file."""
    path = tmp_path / "twenty-minutes.wav"
    block = synth.tone(seconds=60.0, sr=SR)
    with sf.SoundFile(path, "w", SR, 1) as f:
        for _ in range(20):
            f.write(block)
    whole_file_bytes = 20 * 60 * SR * 4  # float32
    tracemalloc.start()
    try:
        count = sum(1 for _ in audio.iter_windows(path, window=30.0, hop=15.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 79
    assert peak < whole_file_bytes / 10, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("genre", ["blues", "classical", "metal", "reggae"])
@pytest.mark.parametrize("sr, offset, duration", [(22050, 0.0, 30.0), (16000, 7.5, 10.0)])
def test_matches_librosa_on_gtzan(gtzan, genre, sr, offset, duration):
    path = sorted((gtzan / genre).glob("*.wav"))[0]
    expected, _ = librosa.load(path, sr=sr, mono=True, offset=offset, duration=duration)
    y = audio.load(path, sr=sr, offset=offset, duration=duration)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)


def test_libmpg123_notes_on_a_damaged_mp3_stay_off_the_terminal(tmp_path):
    """libmpg123 prints "Note: Trying to resync..." to fd 2 itself; the decode must still succeed, silently."""
    import subprocess
    import sys

    sf.write(tmp_path / "clean.mp3", synth.tone(seconds=5), 22050, format="MP3")
    data = bytearray((tmp_path / "clean.mp3").read_bytes())
    rng = np.random.default_rng(0)
    for i in range(2000, len(data) - 2000, 997):  # damage a frame every kilobyte
        data[i : i + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp3").write_bytes(bytes(data))
    code = (
        "import sys\n"
        "from batchgenre.audio import load, probe_duration\n"
        "print(load(sys.argv[1]).size, probe_duration(sys.argv[1]))\n"
        "print('python still speaks', file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code, tmp_path / "damaged.mp3"], capture_output=True, text=True)
    assert result.returncode == 0 and int(result.stdout.split()[0]) > 22050 * 4, result.stderr
    assert result.stderr == "python still speaks\n"


def test_a_name_that_is_not_utf8_is_skipped_in_one_line_and_the_others_found(tmp_path, caplog):
    from batchgenre.audio.corpus import discover_paths

    (tmp_path / "fine.wav").write_bytes(b"")
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.wav")  # Latin-1 bytes: not UTF-8
    pathlib.Path(odd).write_bytes(b"")
    assert list(discover_paths(tmp_path)) == ["fine.wav"]
    assert [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()] == [
        f"{tmp_path}/caf\\xe9.wav: skipped: its name is not UTF-8 text; rename it to include it"
    ]
