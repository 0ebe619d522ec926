"""What the report shows, computed from a results table and bounded whatever its size: counts, histograms,
a sampled map, and the most and least confident files of each genre.

The HTML grows with the rows shown, not the rows read: the map holds at most ``MAP_POINTS`` files (a
seeded sample), each genre's list its ``LIST_ROWS`` most and least confident files, the unknowns and
the failures their first ``PROBLEM_ROWS``; counts and histograms are computed over every file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batchgenre.store.results import Results

UNKNOWN = "unknown"
MAP_POINTS = 5000
MAP_SEED = 0
LIST_ROWS = 250
PROBLEM_ROWS = 1000
BINS = 20
# Files the model was sure of all sit on their genre's corner of the map; a little seeded scatter
# (this fraction of the map's radius) shows how many there are instead of one dot.
JITTER = 0.04


@dataclass
class Listing:
    """Some rows of a longer list: ``rows`` (column name -> values) and how many the whole list holds."""

    rows: dict[str, list[Any]]
    total: int

    @property
    def shown(self) -> int:
        return len(next(iter(self.rows.values()), []))


@dataclass
class ReportData:
    """Everything drawn, in plain numbers and strings.

    ``genres`` are the model's genres, then ``unknown``; ``counts`` the files of each (all of them) and
    ``failed`` the failed files; ``histograms[g]`` the counts of confidence in ``BINS`` equal bins of
    [0, 1] (shape ``(BINS,)``); ``map`` the sampled files' ``x``, ``y``, ``path``, ``genre``,
    ``confidence``, with ``anchors`` the (x, y) of each model genre's corner; ``lists[g]`` the rows of
    genre ``g`` by confidence, highest first, the middle left out past ``2 * LIST_ROWS``.
    """

    title: str
    root: str
    model: str
    total: int
    genres: list[str]
    counts: dict[str, int]
    failed: int
    histograms: dict[str, np.ndarray]
    map: Listing
    anchors: dict[str, tuple[float, float]]
    lists: dict[str, Listing]
    unknowns: Listing
    failures: Listing


def anchors_for(genres: list[str]) -> np.ndarray:
    """Corners of a regular polygon on the unit circle, one per genre, the first at the top.

    Returns
    -------
    np.ndarray [shape=(len(genres), 2)]
    """
    angles = np.pi / 2 - 2 * np.pi * np.arange(len(genres)) / max(len(genres), 1)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def project(probabilities: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Each file placed at the probability-weighted mean of the genres' corners (a radial simplex projection).

    A sure file sits on its genre's corner, a file torn between two halfway along their chord, and one
    the model could not place near the middle.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n, g)]
    anchors : np.ndarray [shape=(g, 2)]

    Returns
    -------
    np.ndarray [shape=(n, 2)]
    """
    return probabilities @ anchors


def prepare(results: Results) -> ReportData:
    """The report's numbers from ``results`` (any number of rows; the output's size is bounded, see the module)."""
    rows = results.rows
    classified = [r for r in rows if r["status"] == "classified"]
    genres = [*results.genres, *([UNKNOWN] if UNKNOWN not in results.genres else [])]
    by_genre: dict[str, list[dict[str, Any]]] = {g: [] for g in genres}
    for r in classified:
        by_genre.setdefault(r["genre"], []).append(r)
    genres = list(by_genre)  # a genre in the table but not the model's list (hand-edited) is shown too
    for members in by_genre.values():
        members.sort(key=lambda r: (-r["confidence"], r["path"]))
    edges = np.linspace(0.0, 1.0, BINS + 1)
    histograms = {g: np.histogram([r["confidence"] for r in m], bins=edges)[0] for g, m in by_genre.items()}
    failed = [r for r in rows if r["status"] != "classified"]
    unknowns = sorted(by_genre.get(UNKNOWN, []), key=lambda r: (r["confidence"], r["path"]))
    return ReportData(
        title=results.path.name,
        root=str(results.meta.get("root", "")),
        model=str(results.meta.get("model", "")),
        total=len(rows),
        genres=genres,
        counts={g: len(m) for g, m in by_genre.items()},
        failed=len(failed),
        histograms=histograms,
        map=_map(classified, results.genres),
        anchors=dict(zip(results.genres, map(tuple, anchors_for(results.genres).tolist()), strict=True)),
        lists={g: _listing(m, _ends(m, LIST_ROWS), ("path", "confidence", "duration")) for g, m in by_genre.items()},
        unknowns=_unknowns(unknowns[:PROBLEM_ROWS], len(unknowns), results.genres),
        failures=_listing(failed, failed[:PROBLEM_ROWS], ("path", "error")),
    )


def _ends(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The first and last ``k`` rows, or all of them when there are no more than ``2 k``."""
    return rows if len(rows) <= 2 * k else rows[:k] + rows[-k:]


def _listing(all_rows: list[dict[str, Any]], shown: list[dict[str, Any]], names: tuple[str, ...]) -> Listing:
    return Listing({n: [r[n] for r in shown] for n in names}, len(all_rows))


def _unknowns(shown: list[dict[str, Any]], total: int, genres: list[str]) -> Listing:
    """Unsure files with their best guess: the genre of the highest probability, below the threshold."""
    guesses = [max(genres, key=lambda g, r=r: r[f"p_{g}"] or 0.0) if genres else "" for r in shown]
    return Listing(
        {"path": [r["path"] for r in shown], "best_guess": guesses, "confidence": [r["confidence"] for r in shown]},
        total,
    )


def _map(classified: list[dict[str, Any]], genres: list[str]) -> Listing:
    """At most ``MAP_POINTS`` classified files, sampled with ``MAP_SEED``, placed by :func:`project`."""
    rng = np.random.default_rng(MAP_SEED)
    if len(classified) > MAP_POINTS:
        picked = np.sort(rng.choice(len(classified), size=MAP_POINTS, replace=False))
        sample = [classified[i] for i in picked]
    else:
        sample = classified
    probabilities = np.array([[r[f"p_{g}"] or 0.0 for g in genres] for r in sample], dtype=float).reshape(
        len(sample), len(genres)
    )
    xy = project(probabilities, anchors_for(genres)) + rng.normal(0.0, JITTER / 2, size=(len(sample), 2))
    return Listing(
        {
            "x": xy[:, 0].tolist(),
            "y": xy[:, 1].tolist(),
            "path": [r["path"] for r in sample],
            "genre": [r["genre"] for r in sample],
            "confidence": [r["confidence"] for r in sample],
        },
        len(classified),
    )
