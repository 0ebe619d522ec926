"""musicnn's MSD-trained tagger (Pons & Serra 2019) rebuilt in NumPy: its preprocessing, patches and forward pass.

The weights are musicnn 0.1.0's MSD_musicnn checkpoint (ISC licence, weights/MUSICNN-LICENSE.md),
converted once by tools/convert_musicnn.py; tests/test_musicnn.py holds this forward pass to the
original TF1 graph's outputs on real clips. No TensorFlow here: the model is 1.4 GMAC of
convolutions a patch, which im2col and BLAS matrix products do as fast on a CPU worker, without
TensorFlow's import time and memory: the products run at the rate a plain float32 product of the
same shapes reaches on the core (benchmarks/README.md, musicnn).

Preprocessing, as musicnn's ``extractor.batch_data`` computes it, with two deliberate differences:

- musicnn casts the mel power to float16 and computes ``log10(10000 * mel + 1)`` in float16, where
  ``10000 * mel`` overflows to inf for any mel value above 6.55 (loud audio) and every output of
  the network becomes NaN. That cast was musicnn's storage format, not part of the model: here the
  same formula runs in float32 on the float32 mel. Where the float16 path did not overflow, the two
  differ by float16's rounding of ``mel`` (a relative 2**-11: at most 2.1e-4 on the log value).
- the STFT pads the signal's ends by reflection, as librosa did when musicnn was trained (librosa
  0.10 changed the default to zeros); only the first and last frame differ.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from batchgenre.audio.decode import resample
from batchgenre.errors import BatchgenreError
from batchgenre.features.base import FeatureError, FeatureSet, mel_bank, numbered

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
# musicnn's 3 s input: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1 frames.
PATCH_FRAMES = 187
# musicnn's default is patches end to end (no overlap).
PATCH_HOP = PATCH_FRAMES
# Shortest audio that gives one patch: the frames are centred, 1 + n // HOP_LENGTH of them.
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH
PENULTIMATE_UNITS = 200
# The MSD model's 50 tags, in the order of its outputs (musicnn's configuration.MSD_LABELS).
TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)  # fmt: skip
WEIGHTS_FILE = "musicnn_msd.npz"
# Patches per forward pass. Batching saves no time: one patch's products are already large (11033
# rows), and ten patches at once (200 MiB of scratch instead of 20) ran 45% slower (benchmarks/README.md).
DEFAULT_BATCH = 1


# The feature set: each penultimate unit summarised over MAX_PATCHES of the clip's (or window's)
# patches, the middle one of each of MAX_PATCHES equal runs (``spread``): every other patch of a 30 s
# window. Five scored as all ten did on gtzan-mini's artist-held-out folds (0.486 against 0.476) and
# on held-out whole songs (0.850 both), at half the cost; three lost 0.02 and 0.05 (two songs of 40),
# one lost 0.10 on the folds (benchmarks/README.md, musicnn).
MAX_PATCHES = 5
SUMMARIES = ("mean", "max")
PARAMS = {
    "model": "musicnn 0.1.0 MSD_musicnn",
    "layer": f"penultimate ({PENULTIMATE_UNITS} units)",
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "hop_length": HOP_LENGTH,
    "n_mels": N_MELS,
    "log": "log10(1 + 10000 * mel power), float32",
    "patch_frames": PATCH_FRAMES,
    "patch_hop": PATCH_HOP,
    "max_patches": f"{MAX_PATCHES}, the middle patch of each of {MAX_PATCHES} equal runs",
    "summaries": list(SUMMARIES),
}


class MusicnnError(BatchgenreError):
    """The musicnn weights are missing or unreadable."""


@functools.lru_cache(maxsize=1)
def weights() -> dict[str, np.ndarray]:
    """The converted MSD_musicnn weights, read once per process (2.8 MB compressed, 3.6 MB in memory).

    Each front-end convolution gets, besides its converted kernel, ``*_sign`` (-1 where its
    channel's batch-norm scale is negative, else 1) and ``*_kernel_signed`` (the kernel's columns
    times that sign). The front end max-pools over frequency *after* ReLU and batch norm; with a
    negative scale, the maximum of the normalised values comes from the minimum before it, and
    ``min(z) = -max(-z)`` lets one max-pool serve every channel.
    """
    source = resources.files("batchgenre.features") / "weights" / WEIGHTS_FILE
    try:
        with resources.as_file(source) as path, np.load(path) as archive:
            w = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise MusicnnError(f"cannot read the musicnn weights {source}: {error}; reinstall batchgenre") from None
    for block in ("timbral0", "timbral1", "temporal0", "temporal1", "temporal2"):
        w[f"{block}_sign"] = np.where(w[f"{block}_scale"] < 0, np.float32(-1), np.float32(1))
        w[f"{block}_kernel_signed"] = w[f"{block}_kernel"] * w[f"{block}_sign"]
    return w


def log_mel(y: np.ndarray, *, frames: np.ndarray | None = None) -> np.ndarray:
    """musicnn's input representation: ``log10(1 + 10000 * mel power)``, in float32.

    librosa's ``melspectrogram`` as musicnn called it (centred frames, reflect padding, periodic
    Hann window, power 2, Slaney mel bank), computed here for only the frames asked for: a window
    whose features use 5 of its 10 patches needs 935 of its 1876 frames.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        mono samples at SAMPLE_RATE.
    frames : np.ndarray [shape=(m,), dtype=int], optional
        which frames (0 to ``n // HOP_LENGTH``); None: all of them.

    Returns
    -------
    np.ndarray [shape=(1 + n // HOP_LENGTH or m, N_MELS), dtype=float32]
    """
    padded = np.pad(np.asarray(y, dtype=np.float32), N_FFT // 2, mode="reflect")
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    chosen = view if frames is None else view[np.asarray(frames)]
    out = np.empty((len(chosen), N_MELS), dtype=np.float32)
    # A slice at a time, so that frames, spectrum and power stay in a core's cache.
    for start in range(0, len(chosen), _MEL_SLICE_FRAMES):
        part = slice(start, start + _MEL_SLICE_FRAMES)
        # NumPy's FFT, not SciPy's: 4 ms slower a window, but scipy.fft takes 0.4-1.2 s to import, the
        # longest step of a fresh `classify --model msd` that nothing else there needs.
        spectrum = np.fft.rfft(chosen[part] * _hann(), axis=-1)
        np.matmul(spectrum.real**2 + spectrum.imag**2, _mel_bank(), out=out[part])
    return np.log10(np.float32(10000) * out + np.float32(1))


# Frames per slice of log_mel: 256 frames of 512 float32 samples and their spectrum, about 1.5 MiB.
_MEL_SLICE_FRAMES = 256


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """The periodic Hann window librosa.stft uses [shape=(N_FFT,), dtype=float32]."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _mel_bank() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=512, n_mels=96), transposed: [shape=(1 + N_FFT // 2, N_MELS)], float32."""
    return np.ascontiguousarray(mel_bank(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).T)


def patch_starts(n_frames: int, *, hop: int = PATCH_HOP, max_patches: int | None = None) -> np.ndarray:
    """First frames of the patches ``patches`` cuts from ``n_frames`` frames [shape=(patches,), dtype=int]."""
    starts = np.arange(0, n_frames - PATCH_FRAMES + 1, hop)
    return starts if max_patches is None else starts[spread(len(starts), max_patches=max_patches)]


def patches(spectrogram: np.ndarray, *, hop: int = PATCH_HOP, max_patches: int | None = None) -> np.ndarray:
    """Cut a log-mel spectrogram into the model's 3 s patches, as musicnn's ``batch_data`` does.

    Parameters
    ----------
    spectrogram : np.ndarray [shape=(frames, N_MELS)]
    hop : int
        frames from one patch's start to the next (PATCH_FRAMES: end to end, musicnn's default).
    max_patches : int, optional
        keep at most this many, evenly spaced: the middle patch of each of ``max_patches`` equal
        runs of patches (one patch: the middle one). A cheaper summary of a long window.

    Returns
    -------
    np.ndarray [shape=(patches, PATCH_FRAMES, N_MELS)]
        a read-only view; no patch when there are fewer than PATCH_FRAMES frames.
    """
    starts = patch_starts(spectrogram.shape[0], hop=hop, max_patches=max_patches)
    if not len(starts):
        return np.empty((0, PATCH_FRAMES, spectrogram.shape[1]), dtype=spectrogram.dtype)
    view = np.lib.stride_tricks.sliding_window_view(spectrogram, PATCH_FRAMES, axis=0)
    return view[starts].transpose(0, 2, 1)


def needed_spans(n_samples: int) -> list[tuple[int, int]]:
    """The samples the musicnn set reads of a window of ``n_samples`` at SAMPLE_RATE: its MAX_PATCHES patches' frames.

    Returns [(lo, hi)], increasing ranges ``[lo, hi)``: a patch from frame ``s`` reads
    ``[HOP_LENGTH * (s - 1), HOP_LENGTH * (s + PATCH_FRAMES))``, its centred frames' reach, cut to the
    window (whose reflected ends come from inside the same range).
    """
    starts = patch_starts(1 + n_samples // HOP_LENGTH, max_patches=MAX_PATCHES)
    return [(max(0, HOP_LENGTH * (s - 1)), min(n_samples, HOP_LENGTH * (s + PATCH_FRAMES))) for s in starts]


def spread(n: int, *, max_patches: int) -> np.ndarray:
    """Which of ``n`` patches ``max_patches`` keeps: the middle one of each of ``max_patches`` equal runs.

    Returns np.ndarray [shape=(min(n, max_patches),), dtype=int], increasing.
    """
    k = min(n, max_patches)
    return ((np.arange(k) + 0.5) * n / k).astype(int) if k else np.arange(0)


def forward(x: np.ndarray, *, batch: int = DEFAULT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """MSD_musicnn on log-mel patches: tag probabilities and the penultimate layer.

    Parameters
    ----------
    x : np.ndarray [shape=(patches, PATCH_FRAMES, N_MELS)]
    batch : int
        patches per matrix product of the mid-end and back-end (the front end runs a few
        frames of one patch at a time); more saves no time.

    Returns
    -------
    tags : np.ndarray [shape=(patches, 50), dtype=float32]
        the sigmoid outputs, one per name in TAGS.
    penultimate : np.ndarray [shape=(patches, 200), dtype=float32]
        the batch-normalised 200-unit dense layer before the output layer.
    """
    with _blas_threads().limit(limits=1, user_api="blas"):
        outputs = [_forward(np.asarray(x[i : i + batch], dtype=np.float32), weights()) for i in range(0, len(x), batch)]
    if not outputs:
        return np.empty((0, len(TAGS)), np.float32), np.empty((0, PENULTIMATE_UNITS), np.float32)
    return np.concatenate([t for t, _ in outputs]), np.concatenate([p for _, p in outputs])


@functools.lru_cache(maxsize=1)
def _blas_threads():
    """The process's BLAS thread pools (threadpoolctl), found once.

    ``forward`` runs on one BLAS thread wherever it is called, not only on workers
    (``cluster.tune_worker``): in a ``classify`` process, OpenBLAS's threads on a 2-core machine
    shared with other work spun for 6.4 CPU-s and 18.6 s wall where one thread took 1.7 and 6.4
    for the same song (benchmarks/README.md, musicnn); each front-end product is too small to share.
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def embed(
    y: np.ndarray, *, sr: int, hop: int = PATCH_HOP, max_patches: int | None = None, batch: int = DEFAULT_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities and penultimate layer of every 3 s patch of ``y`` (or of ``max_patches`` of them).

    Only the spectrogram frames of the chosen patches are computed.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        mono samples at ``sr``; resampled to 16 kHz with soxr, as batchgenre.audio resamples.
    sr : int
    hop, max_patches
        as ``patches``.
    batch
        as ``forward``.

    Returns
    -------
    tags : np.ndarray [shape=(patches, 50), dtype=float32]
    penultimate : np.ndarray [shape=(patches, 200), dtype=float32]
        no rows when ``y`` is shorter than one patch (MIN_SAMPLES at 16 kHz, 2.98 s).
    """
    y16 = resample(np.asarray(y, dtype=np.float32), sr_native=sr, sr=SAMPLE_RATE)
    starts = patch_starts(1 + len(y16) // HOP_LENGTH, hop=hop, max_patches=max_patches)
    spectrogram = log_mel(y16, frames=(starts[:, None] + np.arange(PATCH_FRAMES)).ravel())
    return forward(spectrogram.reshape(len(starts), PATCH_FRAMES, N_MELS), batch=batch)


def frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The musicnn feature set's blocks and its extra, from one forward pass.

    {"musicnn": penultimate layer [shape=(200, patches)], "tags": tag probabilities [shape=(50, patches)]}.

    Raises FeatureError when ``y`` is shorter than one 3 s patch.
    """
    tags, penultimate = embed(y, sr=sr, max_patches=MAX_PATCHES)
    if not len(penultimate):
        need = MIN_SAMPLES / SAMPLE_RATE
        raise FeatureError(f"too short for musicnn: {len(y) / sr:.2f} s, one patch needs {need:.2f} s")
    return {"musicnn": penultimate.T, "tags": tags.T}


def _windows(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """im2col: every [height, width] window of ``x`` [shape=(b, t, f)] as a row, (time, frequency) order.

    Returns np.ndarray [shape=(b * (t - height + 1) * (f - width + 1), height * width)], a copy.
    """
    view = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(1, 2))
    return view.reshape(-1, height * width)


# Rows of im2col per matrix product in the front end: a 7 x 67 filter's 1024 rows are 1.8 MiB,
# so the copy is still in cache when the product reads it, and its output when the max pools it.
# Whole-patch products (11033 rows, 11 MiB) went through memory: the copies and the pooling took
# 26% of the forward pass, against the products' 74% (benchmarks/README.md, musicnn).
_FRONT_ROWS = 1024


def _front_conv(x: np.ndarray, w: dict[str, np.ndarray], blocks: tuple[tuple[str, int], ...], height: int, width: int):
    """Front-end convs (valid) -> bias -> ReLU -> batch norm -> max over frequency, for x [shape=(b, t', f)].

    ``blocks`` are (name, first column) of filters that share one im2col: each reads ``height``
    frames' window from that column on (the temporal filters of 64 and 32 frames are the middle
    of the 128-frame one's). Bias, ReLU and a positive scale are monotonic, so they commute with
    the max and run on the pooled values; ``weights`` explains the negative scales.
    Returns one array [shape=(b, t, c)] per block, t = t' - height + 1 for the widest.
    """
    b, t, f = x.shape[0], x.shape[1] - height + 1, x.shape[2] - width + 1
    view = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(1, 2))
    kernels = [w[f"{block}_kernel_signed"] for block, _ in blocks]
    pooled = [np.empty((b, t, k.shape[1]), np.float32) for k in kernels]
    step = max(1, _FRONT_ROWS // f)
    for i in range(b):
        for s in range(0, t, step):
            cols = view[i, s : s + step].reshape(-1, height * width)
            for (_, first), kernel, out in zip(blocks, kernels, pooled, strict=True):
                z = cols[:, first : first + kernel.shape[0]] @ kernel
                out[i, s : s + step] = z.reshape(-1, f, kernel.shape[1]).max(axis=1)
    return [
        np.maximum(w[f"{block}_sign"] * z + w[f"{block}_bias"], 0) * w[f"{block}_scale"] + w[f"{block}_offset"]
        for (block, _), z in zip(blocks, pooled, strict=True)
    ]


def _dense_conv(x: np.ndarray, w: dict[str, np.ndarray], block: str) -> np.ndarray:
    """A mid-end layer: 7-frame conv over all of x's features (zero-padded in time) -> ReLU -> batch norm; [b, t, c]."""
    padded = np.pad(x, ((0, 0), (3, 3), (0, 0)))
    z = (_windows(padded, 7, x.shape[2]) @ w[f"{block}_kernel"]).reshape(x.shape[0], x.shape[1], -1)
    return np.maximum(z + w[f"{block}_bias"], 0) * w[f"{block}_scale"] + w[f"{block}_offset"]


def _forward(x: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's build_musicnn (models.py) in inference mode, on x [shape=(b, PATCH_FRAMES, N_MELS)]."""
    x = x * w["input_scale"] + w["input_offset"]
    # Timbral filters span 7 frames and 40% / 70% of the mel bands; musicnn pads time only.
    timbral_in = np.pad(x, ((0, 0), (3, 3), (0, 0)))
    front = [
        *_front_conv(timbral_in, w, (("timbral0", 0),), 7, 38),
        *_front_conv(timbral_in, w, (("timbral1", 0),), 7, 67),
    ]
    # Temporal filters span 128, 64 and 32 frames of one band, 'same' padded as TF pads: (k - 1) // 2
    # before. With the 128-frame padding, the 64 and 32 frames centred at t start 32 and 48 frames in.
    temporal_in = np.pad(x, ((0, 0), (63, 64), (0, 0)))
    front += _front_conv(temporal_in, w, (("temporal0", 0), ("temporal1", 32), ("temporal2", 48)), 128, 1)
    frontend = np.concatenate(front, axis=2)
    mid1 = _dense_conv(frontend, w, "midend0")
    mid2 = _dense_conv(mid1, w, "midend1") + mid1
    mid3 = _dense_conv(mid2, w, "midend2") + mid2
    features = np.concatenate([frontend, mid1, mid2, mid3], axis=2)
    # Max and mean over time, interleaved per feature as musicnn's concat + flatten lays them out.
    pooled = np.stack([features.max(axis=1), features.mean(axis=1)], axis=2).reshape(len(x), -1)
    hidden = np.maximum(pooled @ w["dense_kernel"] + w["dense_bias"], 0)
    penultimate = hidden * w["penultimate_scale"] + w["penultimate_offset"]
    logits = penultimate @ w["tags_kernel"] + w["tags_bias"]
    return (1 / (1 + np.exp(-logits))).astype(np.float32), penultimate.astype(np.float32)


MUSICNN = FeatureSet(
    name="musicnn",
    description=(
        "The 200-unit penultimate layer of musicnn's MSD-trained tagger (Pons & Serra 2019; weights ISC-licensed, "
        "batchgenre/features/weights/MUSICNN-LICENSE.md) on 3 s patches end to end of a 16 kHz, "
        "96-band log-mel spectrogram "
        "(n_fft 512, hop 256, log10(1 + 10000 mel)), summarised as mean and max over 5 of the patches "
        "(every other one of a 30 s clip or window); "
        "clips need at least 3 s. A NumPy forward pass: no TensorFlow on the workers."
    ),
    params=PARAMS,
    blocks=(("musicnn", numbered(PENULTIMATE_UNITS, 3)),),
    frames=frames,
    summaries=SUMMARIES,
    warm_up=False,
    min_seconds=MIN_SAMPLES / SAMPLE_RATE,
    # The tag probabilities, a clip's being their mean over its patches as musicnn's own top_tags takes them.
    extras=("tags",),
)
