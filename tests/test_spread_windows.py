"""Windows spread over a file (``--windows N``): where they fall, and that seeking gives what a full decode gives."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import soundfile as sf

from batchgenre import audio
from batchgenre.audio import DecodeError, iter_spread_windows, spread_starts
from batchgenre.features import get_feature_set
from tests import synth
from tests.conftest import run_cli

SR = audio.SAMPLE_RATE


@pytest.mark.parametrize(
    "duration, count, starts",
    [
        (240.0, 3, [25.0, 105.0, 185.0]),  # each window centred in a third of the song
        (100.0, 1, [35.0]),  # one window: the middle
        (90.0, 3, [0.0, 30.0, 60.0]),  # exactly three fit: end to end
        (75.0, 3, [3.75, 41.25]),  # two fit
        (45.0, 3, [7.5]),  # one fits
        (30.0, 3, [0.0]),
        (20.0, 3, [0.0]),  # shorter than a window: one short window from the start
    ],
)
def test_spread_starts(duration, count, starts):
    assert spread_starts(duration, window=30.0, count=count) == pytest.approx(starts)


@pytest.mark.parametrize("duration", np.linspace(0.5, 400.0, 57))
@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_spread_windows_never_overlap_nor_leave_the_file(duration, count):
    starts = spread_starts(duration, window=30.0, count=count)
    assert 1 <= len(starts) <= count
    assert len(starts) == count or duration < 30.0 * (len(starts) + 1)  # fewer only where no more fit
    assert starts[0] >= 0 and (duration < 30.0 or starts[-1] + 30.0 <= duration + 1e-9)
    assert all(b - a >= 30.0 - 1e-9 for a, b in itertools.pairwise(starts))


@pytest.fixture(scope="module")
def songs(gtzan, tmp_path_factory) -> dict[str, object]:
    """100 s of real music (three clips of one genre end to end), 44.1 kHz stereo, in each lossy and lossless format."""
    import soxr

    clips = [sf.read(gtzan / "rock" / f"rock.0000{k}.wav", dtype="float32")[0] for k in range(4)]
    mono = soxr.resample(np.concatenate(clips), 22050, 44100)[: 100 * 44100].astype(np.float32)
    stereo = np.stack([mono, 0.9 * np.roll(mono, 100)], axis=1)
    folder = tmp_path_factory.mktemp("songs")
    songs = {ext: synth.write(folder / f"song.{ext}", stereo, sr=44100) for ext in ("mp3", "flac", "ogg", "m4a")}
    songs["m4a without PNS"] = _write_aac_without_noise_substitution(folder / "no-pns.m4a", stereo)
    return songs


def _write_aac_without_noise_substitution(path, y):
    """``y`` [shape=(n, 2)] at 44.1 kHz as AAC in MP4, with FFmpeg's perceptual noise substitution off."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100, layout="stereo", options={"aac_pns": "0"})
        for start in range(0, len(y), 4096):
            block = np.ascontiguousarray(y[start : start + 4096].T)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _full_decode_of(path, start: float, window: float) -> np.ndarray:
    """The window ``[start, start + window)`` cut from a decode of the whole file from its top, then resampled."""
    with audio.open_audio(path) as source:
        sr_native = source.samplerate
    whole = audio.load(path, sr=sr_native, duration=None)  # at the native rate: decoded front to back, no seek
    a = int(start * sr_native)
    return audio.resample(whole[a : a + int(window * sr_native)], sr_native=sr_native, sr=SR)


@pytest.mark.parametrize("kind", ["mp3", "flac", "ogg", "m4a without PNS", "m4a"])
def test_seeking_gives_the_samples_of_a_full_decode(songs, kind):
    windows = list(iter_spread_windows(songs[kind], count=3))
    with audio.open_audio(songs[kind]) as source:
        duration = source.duration
    assert [start for start, _ in windows] == pytest.approx(spread_starts(duration, window=30.0, count=3))
    for start, y in windows:
        expected = _full_decode_of(songs[kind], start, 30.0)
        assert len(y) == len(expected) == 30 * SR
        if kind == "m4a":
            # FFmpeg's AAC decoder fills noise-substituted bands (PNS) from a random generator whose
            # state depends on every frame decoded before, so after a seek those bands hold other
            # noise of the same energy (the same file without PNS matches to the sample): the
            # features the model sees agree, the samples do not.
            robust = get_feature_set("robust")
            np.testing.assert_allclose(robust.extract(y, sr=SR), robust.extract(expected, sr=SR), rtol=0.02, atol=0.02)
        else:  # libsndfile seeks to the sample; FFmpeg decodes its pre-roll first and drops it
            np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("kind", ["mp3", "flac", "m4a without PNS"])
def test_spans_hold_the_samples_of_the_whole_window_and_nothing_else(songs, kind):
    from batchgenre.features import musicnn

    sr = musicnn.SAMPLE_RATE
    spans = list(audio.iter_spread_spans(songs[kind], sr=sr, window=30.0, count=3, spans=musicnn.needed_spans))
    whole = list(iter_spread_windows(songs[kind], sr=sr, count=3))
    assert [start for start, _ in spans] == [start for start, _ in whole]
    for (_, y), (_, expected) in zip(spans, whole, strict=True):
        assert len(y) == len(expected)
        inside = np.zeros(len(y), bool)
        for lo, hi in musicnn.needed_spans(len(y)):
            inside[lo:hi] = True
        assert 0.45 < inside.mean() < 0.55  # five 3 s patches of a 30 s window
        assert not y[~inside].any()
        # Resampled from a few seconds instead of the whole window: equal up to float32 rounding.
        np.testing.assert_allclose(y[inside], expected[inside], rtol=0, atol=1e-5)


def test_a_window_at_the_end_of_the_file_is_decoded_whole(minutes, tmp_path):
    from batchgenre.features import musicnn

    # 100 s in three windows: the last ends 1.7 s before the end, so spans alone are decoded; in a
    # 30.5 s file the one window ends less than a second before the end: decoded whole.
    last = list(audio.iter_spread_spans(minutes, sr=16000, window=30.0, count=3, spans=musicnn.needed_spans))[-1][1]
    assert (last != 0).mean() < 0.55
    short = synth.write(tmp_path / "short.wav", synth.noise(seconds=30.5))
    [(_, y)] = audio.iter_spread_spans(short, sr=16000, window=30.0, count=3, spans=musicnn.needed_spans)
    assert len(y) == 30 * 16000 and (y != 0).mean() > 0.99


@pytest.fixture(scope="module")
def minutes(tmp_path_factory):
    return synth.write(tmp_path_factory.mktemp("minutes") / "a.wav", synth.noise(seconds=100.0))


@pytest.mark.parametrize(
    "seconds, count, starts, last_seconds",
    [
        (100.0, 2, [10.0, 60.0], 30),  # each centred in a half
        (100.0, 5, [100 / 6 - 15, 35.0, 500 / 6 - 15], 30),  # only three fit
        (20.0, 3, [0.0], 20),  # a file shorter than a window: all of it, once
    ],
)
def test_window_count_positions_and_lengths(tmp_path, seconds, count, starts, last_seconds):
    path = synth.write(tmp_path / "a.flac", synth.noise(seconds=seconds))
    windows = list(iter_spread_windows(path, count=count))
    assert [s for s, _ in windows] == pytest.approx(starts)
    assert [len(y) for _, y in windows] == [30 * SR] * (len(starts) - 1) + [last_seconds * SR]
    whole = audio.load(path, duration=None)
    for start, y in windows:  # at the file's own rate, a window is a slice of the whole
        a = int(start * SR)
        np.testing.assert_array_equal(y, whole[a : a + len(y)])


class _Pipe(io.RawIOBase):
    """A file that cannot seek, as a pipe or a stream is: a muxer can't go back to write the length."""

    def __init__(self, f):
        self._f = f

    def writable(self):
        return True

    def write(self, b):
        return self._f.write(b)


def test_a_file_without_a_length_is_counted_then_spread(tmp_path):
    import av

    y = (synth.noise(seconds=70.0) * 32767).astype(np.int16)
    path = tmp_path / "streamed.mka"
    with open(path, "wb") as raw, av.open(_Pipe(raw), "w", format="matroska") as container:
        stream = container.add_stream("flac", rate=SR, layout="mono")
        for start in range(0, len(y), 4096):
            frame = av.AudioFrame.from_ndarray(y[None, start : start + 4096], format="s16", layout="mono")
            frame.sample_rate, frame.pts = SR, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with audio.open_audio(path) as source:
        assert source.duration is None
    windows = list(iter_spread_windows(path, count=3))
    assert [s for s, _ in windows] == pytest.approx([2.5, 37.5])  # two fit in 70 s
    whole = audio.load(path, duration=None)
    for start, w in windows:
        # Matroska keeps timestamps in milliseconds, so FFmpeg finds a window to within one.
        a = int(start * SR)
        assert any(np.array_equal(w, whole[a + lag : a + lag + 30 * SR]) for lag in range(-SR // 1000, SR // 1000 + 1))


def test_a_file_without_audio_says_why(tmp_path):
    path = tmp_path / "cover.mp3"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(4000))
    with pytest.raises(DecodeError, match=r"^no audio stream$"):
        list(iter_spread_windows(path, count=3))


@pytest.mark.parametrize("kwargs", [{"count": 0}, {"window": 0.0}, {"sr": 0}])
def test_misuse_raises_value_error(minutes, kwargs):
    with pytest.raises(ValueError):
        list(iter_spread_windows(minutes, **kwargs))


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--windows", "three"],
            "batchgenre classify-dir: argument --windows: must be a whole number of windows, or all, got 'three'",
        ),
        (
            ["--windows", "-2"],
            "batchgenre classify-dir: argument --windows: must be a whole number of windows, or all, got '-2'",
        ),
        (
            ["--windows", "2", "--hop", "10"],
            "batchgenre: --hop spaces the windows of --windows all; --windows 2 spreads its own evenly",
        ),
        (
            ["--windows", "2", "--offset", "60"],
            "batchgenre: --windows and --offset/--duration choose the audio two ways: give one of them",
        ),
    ],
)
def test_a_bad_windows_value_is_refused_in_one_line(tmp_path, args, says):
    synth.write(tmp_path / "music" / "a.wav", synth.tone(seconds=1))
    result = run_cli("classify-dir", tmp_path / "music", *args, "--model", tmp_path / "none.keras", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(says), result.stderr
