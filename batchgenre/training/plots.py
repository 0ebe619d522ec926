"""Figures written to PNG: confusion matrix, training curves, accuracy per variant, one file's four features."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: np.ndarray, genres: list[str], path: Path, *, title: str) -> None:
    """Counts of true (rows) against predicted (columns) genres.

    Parameters
    ----------
    matrix : np.ndarray [shape=(n, n), dtype=int]
    """
    plt = _pyplot()
    n = len(genres)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 + 0.6 * n), max(4.0, 1.2 + 0.6 * n)), layout="constrained")
    image = ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted genre", ylabel="true genre", title=title)
    ax.set_xticklabels(genres, rotation=45, ha="right")
    ax.set_yticklabels(genres)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > threshold else "black", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.title.set_fontsize(9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(
    saved: dict[str, list[float]],
    kept: int,
    path: Path,
    *,
    saved_label: str = "saved model",
    saved_rows: str = "training rows",
    behind: list[tuple[dict, int]] = (),
    behind_note: str = "",
) -> None:
    """Loss and accuracy per epoch on training and validation rows, with the epoch each fit kept.

    ``saved`` is the history of the fit that made the saved model on ``saved_rows``, drawn solid
    and named ``saved_label`` in the legend; each of ``behind`` (history, epoch kept), fits that chose
    their epochs on validation rows, is drawn faintly behind it, and the titles name them with
    ``behind_note``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    faint = max(0.12, min(0.5, 2.0 / max(len(behind), 1)))
    fits = [(h, k, faint, None) for h, k in behind] + [(saved, kept, 1.0, f"{saved_label}, ")]
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for history, epoch, alpha, label in fits:
            epochs = np.arange(1, len(history[metric]) + 1)
            ax.plot(epochs, history[metric], color="C0", alpha=alpha, label=label and label + saved_rows)
            if f"val_{metric}" in history:
                val = history[f"val_{metric}"]
                ax.plot(epochs, val, color="C1", alpha=alpha, label=label and label + "validation rows")
                if epoch <= len(val):
                    ax.plot(epoch, val[epoch - 1], "o", color="C3", alpha=alpha, label=label and "epoch kept")
        note = f"; faint: {behind_note}" if behind else ""
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch{note}")
        ax.legend()
    axes[0].set_yscale("log")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_robustness(variants: dict[str, dict], path: Path, *, title: str, folds: bool) -> None:
    """Test accuracy per variant of the test clips, the model's and the baseline's bars side by side.

    ``variants`` is metrics.json's ``robustness.variants``: per variant a description, and
    ``model`` (and ``baseline``) figures: with ``folds`` a mean with its standard deviation over
    folds (drawn as an error bar), else one split's accuracy.
    """
    plt = _pyplot()
    names = [n for n, v in variants.items() if "model" in v]
    who = [w for w in ("model", "baseline") if w in variants[names[0]]]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(names) + 2), 4.5), layout="constrained")
    width = 0.8 / len(who)
    x = np.arange(len(names))
    for k, w in enumerate(who):
        figures = [variants[n][w] for n in names]
        mean = [f["accuracy_mean" if folds else "accuracy"] for f in figures]
        spread = [f["accuracy_std"] for f in figures] if folds else None
        bars = ax.bar(x + (k - (len(who) - 1) / 2) * width, mean, width, yerr=spread, capsize=3, label=w, color=f"C{k}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(x, [variants[n]["description"] for n in names], rotation=25, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.12), ylabel="test accuracy", title=f"accuracy on re-made test clips\n{title}")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower left", fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_features(
    path: Path, out: Path, *, sr: int = 22050, offset: float = 0.0, duration: float | None = 30.0
) -> None:
    """The tutorial's four features of one audio file, one panel each: MFCC, mel spectrogram (dB), chroma, tonnetz."""
    import librosa
    import librosa.display

    from batchgenre.audio import DecodeError, load
    from batchgenre.features import HOP_LENGTH, N_FFT, TUTORIAL, FeatureError

    try:
        y = load(path, sr=sr, offset=offset, duration=duration)
    except DecodeError as error:  # its reason reads well in a table whose row names the file; here it must
        raise DecodeError(f"{path}: {error}") from None
    if y.size < N_FFT:
        raise FeatureError(f"{path}: too short to draw: {y.size} samples, one FFT frame needs {N_FFT}")
    blocks = TUTORIAL.frames(y, sr)
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(10, 12), sharex=True, layout="constrained")
    panels = [
        (blocks["mfcc"], None, "MFCC (20 coefficients)", "coefficient"),
        (librosa.power_to_db(blocks["melspectrogram"], ref=np.max), "mel", "mel spectrogram (dB)", None),
        (blocks["chroma_stft"], "chroma", "chromagram (chroma_stft)", None),
        (blocks["tonnetz"], "tonnetz", "tonal centroids (tonnetz)", None),
    ]
    for ax, (values, y_axis, title, ylabel) in zip(axes, panels, strict=True):
        image = librosa.display.specshow(values, sr=sr, hop_length=HOP_LENGTH, x_axis="time", y_axis=y_axis, ax=ax)
        fig.colorbar(image, ax=ax, format="%+2.0f dB" if y_axis == "mel" else None)
        ax.set_title(title)
        if ylabel:
            ax.set_ylabel(ylabel)
    n_mfcc = len(blocks["mfcc"])
    axes[0].set_yticks(np.arange(0, n_mfcc, 5) + 0.5, labels=[str(i) for i in range(0, n_mfcc, 5)])
    for ax in axes[:-1]:
        ax.set_xlabel("")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(Path(path).name)
    fig.savefig(out, dpi=110)
    plt.close(fig)
