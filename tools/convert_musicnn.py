"""One-off: musicnn's MSD checkpoint to batchgenre's weight file, and the reference outputs the tests compare against.

The musicnn 0.1.0 wheel (ISC licence, https://github.com/jordipons/musicnn) ships its models as TF1
checkpoints, and its metadata pins numpy<1.17, so it cannot be a dependency of batchgenre. This
script is run once, by hand, in a process that has TensorFlow and the unzipped wheel (never
installed: ``unzip musicnn-0.1.0-py3-none-any.whl -d /tmp/musicnn-src``)::

    python tools/convert_musicnn.py weights --wheel /tmp/musicnn-src
    python tools/convert_musicnn.py reference --wheel /tmp/musicnn-src --gtzan /path/to/gtzan

``weights`` writes ``batchgenre/features/weights/musicnn_msd.npz`` (the inference weights of MSD_musicnn,
batch-norm statistics turned into a scale and an offset per channel, the one before the
penultimate dense layer folded into it) and ``batchgenre/features/weights/MUSICNN-LICENSE.md``.

``reference`` runs the ORIGINAL graph (the checkpoint's own ``.meta``, through tf.compat.v1 with
eager execution off) on REFERENCE_CLIPS, fed with the log-mel patches that musicnn's extractor
computes (librosa at 16 kHz, librosa's mel spectrogram with the reflect padding of the librosa
musicnn was trained with, log10(1 + 10000 mel) in float32: see batchgenre/musicnn.py for why not
float16), and writes the tag probabilities and penultimate layer of every patch to
``tests/data/musicnn_reference.npz``: derived numbers only, never audio.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "batchgenre" / "weights" / "musicnn_msd.npz"
LICENSE = REPO / "batchgenre" / "weights" / "MUSICNN-LICENSE.md"
REFERENCE = REPO / "tests" / "data" / "musicnn_reference.npz"
# The checkpoint's files have empty stems (".index", ".meta"...): its prefix is the folder plus "/".
MODEL = "musicnn/MSD_musicnn/"
# One clip per family of genres: acoustic, electric, electronic/dance, vocal/rhythmic.
REFERENCE_CLIPS = (
    "classical/classical.00000.wav",
    "metal/metal.00000.wav",
    "disco/disco.00000.wav",
    "hiphop/hiphop.00000.wav",
)
# Tensors of the original graph (names read from the .meta with tf.compat.v1).
INPUT, TRAINING = "model/Placeholder:0", "model/Placeholder_2:0"
TAGS, PENULTIMATE = "model/Sigmoid:0", "model/batch_normalization_10/batchnorm/add_1:0"


def _meta_graph(wheel: Path):
    """The checkpoint's MetaGraphDef, without the ``_output_shapes`` that TF 2 rejects on its gradient nodes."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((wheel / MODEL / ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    return meta


def _epsilons(meta) -> dict[str, float]:
    """Each batch-norm layer's epsilon as the graph states it: the fused ones' attribute, the others' constant."""
    import tensorflow as tf

    found = {}
    for node in meta.graph_def.node:
        parts = node.name.split("/")
        if len(parts) < 3 or parts[0] != "model" or not parts[1].startswith("batch_normalization"):
            continue
        if node.op.startswith("FusedBatchNorm"):
            found[parts[1]] = node.attr["epsilon"].f
        elif parts[2:] == ["batchnorm", "add", "y"]:
            found[parts[1]] = float(tf.make_ndarray(node.attr["value"].tensor))
    expected = {"batch_normalization"} | {f"batch_normalization_{i}" for i in range(1, 11)}
    if set(found) != expected:
        raise SystemExit(f"batch-norm layers in the graph: {sorted(found)}; expected {sorted(expected)}")
    return found


def convert(wheel: Path) -> None:
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(f"{wheel / MODEL}/")
    eps = _epsilons(_meta_graph(wheel))

    def get(name: str) -> np.ndarray:
        return reader.get_tensor(name).astype(np.float64)

    def bn(layer: str) -> tuple[np.ndarray, np.ndarray]:
        # Inference batch norm is x * scale + offset.
        scale = get(f"{layer}/gamma") / np.sqrt(get(f"{layer}/moving_variance") + eps[layer])
        return scale, get(f"{layer}/beta") - get(f"{layer}/moving_mean") * scale

    def kernel(conv: str) -> np.ndarray:
        # [kt, kf, 1, out] -> [kt * kf, out]: rows in the (time, frequency) order of a window view.
        k = get(f"{conv}/kernel")
        return k.reshape(-1, k.shape[-1])

    out: dict[str, np.ndarray] = {}
    out["input_scale"], out["input_offset"] = (v.reshape(()) for v in bn("batch_normalization"))
    # Front end: timbral [7, 38] and [7, 67], temporal [128|64|32, 1]; mid end: three [7, all features].
    layers = {
        "timbral0": ("conv2d", "batch_normalization_1"),
        "timbral1": ("conv2d_1", "batch_normalization_2"),
        "temporal0": ("conv2d_2", "batch_normalization_3"),
        "temporal1": ("conv2d_3", "batch_normalization_4"),
        "temporal2": ("conv2d_4", "batch_normalization_5"),
        "midend0": ("conv2d_5", "batch_normalization_6"),
        "midend1": ("conv2d_6", "batch_normalization_7"),
        "midend2": ("conv2d_7", "batch_normalization_8"),
    }
    for name, (conv, norm) in layers.items():
        out[f"{name}_kernel"], out[f"{name}_bias"] = kernel(conv), get(f"{conv}/bias")
        out[f"{name}_scale"], out[f"{name}_offset"] = bn(norm)
    # The batch norm before the penultimate dense layer is affine and nothing pads between them: fold it in.
    scale, offset = bn("batch_normalization_9")
    dense = get("dense/kernel")
    out["dense_kernel"], out["dense_bias"] = scale[:, None] * dense, get("dense/bias") + offset @ dense
    out["penultimate_scale"], out["penultimate_offset"] = bn("batch_normalization_10")
    out["tags_kernel"], out["tags_bias"] = get("dense_1/kernel"), get("dense_1/bias")
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(WEIGHTS, **{k: v.astype(np.float32) for k, v in out.items()})
    notice = (wheel / "musicnn-0.1.0.dist-info" / "LICENSE.md").read_text()
    LICENSE.write_text(
        "# musicnn licence\n\n`musicnn_msd.npz` holds the weights of the MSD_musicnn model from the musicnn 0.1.0\n"
        "package (https://github.com/jordipons/musicnn), converted by tools/convert_musicnn.py.\n"
        "Its licence (ISC), as the package states it:\n\n" + notice.strip() + "\n"
    )
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 2**20:.1f} MiB), epsilons {sorted(set(eps.values()))}")


def reference_patches(path: Path) -> np.ndarray:
    """musicnn's extractor.batch_data, float16 aside: log-mel patches [shape=(patches, 187, 96)]."""
    import librosa

    y, sr = librosa.load(path, sr=16000, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
    rep = np.log10(np.float32(10000) * mel + np.float32(1))
    n = librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
    return np.stack([rep[t : t + n] for t in range(0, rep.shape[0] - n + 1, n)]).astype(np.float32)


def reference(wheel: Path, gtzan: Path) -> None:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    saver = tf.compat.v1.train.import_meta_graph(_meta_graph(wheel), clear_devices=True)
    graph = tf.compat.v1.get_default_graph()
    results: dict[str, np.ndarray] = {"clips": np.array(REFERENCE_CLIPS)}
    with tf.compat.v1.Session() as session:
        saver.restore(session, f"{wheel / MODEL}/")
        for i, clip in enumerate(REFERENCE_CLIPS):
            patches = reference_patches(gtzan / clip)
            tags, penultimate = session.run(
                [graph.get_tensor_by_name(TAGS), graph.get_tensor_by_name(PENULTIMATE)],
                feed_dict={graph.get_tensor_by_name(INPUT): patches, graph.get_tensor_by_name(TRAINING): False},
            )
            results[f"tags_{i}"], results[f"penultimate_{i}"] = tags, penultimate
            print(clip, patches.shape, "top tags", np.argsort(-tags.mean(0))[:3])
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **results)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["weights", "reference"])
    parser.add_argument("--wheel", type=Path, required=True, help="the unzipped musicnn 0.1.0 wheel")
    parser.add_argument("--gtzan", type=Path, help="GTZAN clips, one folder per genre (reference only)")
    args = parser.parse_args()
    if args.what == "weights":
        convert(args.wheel)
    else:
        if args.gtzan is None:
            parser.error("reference needs --gtzan")
        reference(args.wheel, args.gtzan)


if __name__ == "__main__":
    main()
