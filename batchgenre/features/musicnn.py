"""musicnn's MSD-trained tagger (Pons & Serra 2019) rebuilt in NumPy: its preprocessing, patches and forward pass.

The weights are musicnn 0.1.0's MSD_musicnn checkpoint (ISC licence, weights/MUSICNN-LICENSE.md),
converted once by tools/convert_musicnn.py; tests/test_musicnn.py holds this forward pass to the
original TF1 graph's outputs on real clips. No TensorFlow here: the model is 1.4 GMAC of
convolutions a patch, which im2col and one BLAS matrix product per layer do as fast on a CPU
worker, without TensorFlow's import time and memory.

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
from batchgenre.features.base import FeatureError, FeatureSet, numbered

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


# The feature set: each penultimate unit summarised over the clip's patches.
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


def log_mel(y: np.ndarray) -> np.ndarray:
    """musicnn's input representation: ``log10(1 + 10000 * mel power)``, in float32.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        mono samples at SAMPLE_RATE.

    Returns
    -------
    np.ndarray [shape=(1 + n // HOP_LENGTH, N_MELS), dtype=float32]
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        pad_mode="reflect",
    )
    return np.log10(np.float32(10000) * mel.T + np.float32(1))


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
    starts = np.arange(0, spectrogram.shape[0] - PATCH_FRAMES + 1, hop)
    if not len(starts):
        return np.empty((0, PATCH_FRAMES, spectrogram.shape[1]), dtype=spectrogram.dtype)
    if max_patches is not None:
        starts = starts[spread(len(starts), max_patches=max_patches)]
    view = np.lib.stride_tricks.sliding_window_view(spectrogram, PATCH_FRAMES, axis=0)
    return view[starts].transpose(0, 2, 1)


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
        patches per matrix product; more costs memory (20 MiB a patch) and saves no time.

    Returns
    -------
    tags : np.ndarray [shape=(patches, 50), dtype=float32]
        the sigmoid outputs, one per name in TAGS.
    penultimate : np.ndarray [shape=(patches, 200), dtype=float32]
        the batch-normalised 200-unit dense layer before the output layer.
    """
    outputs = [_forward(np.asarray(x[i : i + batch], dtype=np.float32), weights()) for i in range(0, len(x), batch)]
    if not outputs:
        return np.empty((0, len(TAGS)), np.float32), np.empty((0, PENULTIMATE_UNITS), np.float32)
    return np.concatenate([t for t, _ in outputs]), np.concatenate([p for _, p in outputs])


def embed(
    y: np.ndarray, *, sr: int, hop: int = PATCH_HOP, max_patches: int | None = None, batch: int = DEFAULT_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities and penultimate layer of every 3 s patch of ``y``.

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
    return forward(patches(log_mel(y16), hop=hop, max_patches=max_patches), batch=batch)


def frames(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The musicnn feature set's blocks and its extra, from one forward pass.

    {"musicnn": penultimate layer [shape=(200, patches)], "tags": tag probabilities [shape=(50, patches)]}.

    Raises FeatureError when ``y`` is shorter than one 3 s patch.
    """
    tags, penultimate = embed(y, sr=sr)
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


def _pooled_conv(x: np.ndarray, w: dict[str, np.ndarray], block: str, height: int, width: int) -> np.ndarray:
    """conv (valid) -> bias -> ReLU -> batch norm -> max over frequency, for x [shape=(b, t', f)]; -> [shape=(b, t, c)].

    Bias, ReLU and a positive scale are monotonic, so they commute with the max and run on the
    pooled [b, t, c] rather than on every frequency; ``weights`` explains the negative scales.
    """
    b, t, f = x.shape[0], x.shape[1] - height + 1, x.shape[2] - width + 1
    z = (_windows(x, height, width) @ w[f"{block}_kernel_signed"]).reshape(b, t, f, -1).max(axis=2)
    return np.maximum(w[f"{block}_sign"] * z + w[f"{block}_bias"], 0) * w[f"{block}_scale"] + w[f"{block}_offset"]


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
    front = [_pooled_conv(timbral_in, w, "timbral0", 7, 38), _pooled_conv(timbral_in, w, "timbral1", 7, 67)]
    # Temporal filters span 128, 64 and 32 frames of one band, 'same' padded as TF pads: (k - 1) // 2 before.
    for block, k in (("temporal0", 128), ("temporal1", 64), ("temporal2", 32)):
        temporal_in = np.pad(x, ((0, 0), ((k - 1) // 2, k // 2), (0, 0)))
        front.append(_pooled_conv(temporal_in, w, block, k, 1))
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
        "(n_fft 512, hop 256, log10(1 + 10000 mel)), summarised as mean and max over the patches; "
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
