"""The built-in model ``msd``: musicnn's MSD tagger as shipped, so a library is classified before anything is trained.

Its 50 tags are the Million Song Dataset's most frequent Last.fm tags: genres, but also decades,
moods, voices and listening contexts. ``GENRE_TAGS`` are those that name a genre or style (the
README's classify-dir section says why each counts and why the others do not); a file's genre is
the one of them with the highest mean probability over its windows. Each tag is an independent
sigmoid, so the probabilities do not sum to 1 and the confidence is that tag's own probability.
"""

from __future__ import annotations

import numpy as np

from batchgenre.classify import serving
from batchgenre.features.musicnn import PARAMS, TAGS

BUILTIN = "msd"
# musicnn's tags that name a genre or a style, in its output order.
GENRE_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient",
    "Hip-Hop", "country", "funk", "electro", "heavy metal", "Progressive rock", "rnb", "indie pop", "House",
)  # fmt: skip
# A tag whose mean probability reaches this is listed in a row's ``tags`` column. On gtzan-mini a
# clip's top three tags average 0.41, 0.20 and 0.14: 0.15 lists 2.3 tags a clip (0.1: 3.8, 0.2: 1.6).
TAG_THRESHOLD = 0.15
# --min-confidence's default with the built-in. Sigmoid outputs are not shares of 1, so a trained
# model's 0.7 would call most files unknown; on gtzan-mini 0.2 flags 8 of the 31 clips of genres it
# cannot name (classical, disco, reggae) and at most one of the 70 it can (README, classify-dir).
DEFAULT_MIN_CONFIDENCE = 0.2


def tag_name(tag: str) -> str:
    """How batchgenre writes a musicnn tag: lower-case (``Hip-Hop`` -> ``hip-hop``)."""
    return tag.lower()


def tag_column(tag: str) -> str:
    """The column-safe name of a tag: lower-case, spaces to underscores (``hard rock`` -> ``hard_rock``)."""
    return tag_name(tag).replace(" ", "_")


TAG_COLUMNS = tuple(tag_column(t) for t in TAGS)


def builtin_classifier() -> serving.Classifier:
    """The built-in model: window tags [shape=(n, 50)] -> genre tags' probabilities [shape=(n, len(GENRE_TAGS))]."""
    columns = np.array([TAGS.index(t) for t in GENRE_TAGS], dtype=np.intp)
    metadata = {
        "builtin": f"{BUILTIN} (built in: {PARAMS['model']}, no training)",
        "feature_set": "musicnn",
        "genres": [tag_name(t) for t in GENRE_TAGS],
        "min_confidence": DEFAULT_MIN_CONFIDENCE,
    }
    return serving.Classifier(metadata, (lambda x: x[:, columns],), reads="tags")


def tag_cells(tags: np.ndarray | None) -> dict[str, object]:
    """A results row's tag cells from a file's window tags [shape=(windows, 50)]; None (a failed file): empty.

    ``tags``: every tag whose mean over the windows reaches TAG_THRESHOLD, most likely first, joined
    with "; "; ``tag_<name>``: each tag's mean probability.
    """
    if tags is None:
        return {"tags": "", **{f"tag_{c}": None for c in TAG_COLUMNS}}
    mean = tags.mean(axis=0, dtype=np.float64)
    likely = [int(i) for i in np.argsort(-mean, kind="stable") if mean[i] >= TAG_THRESHOLD]
    return {
        "tags": "; ".join(tag_name(TAGS[i]) for i in likely),
        **{f"tag_{c}": round(float(p), 4) for c, p in zip(TAG_COLUMNS, mean, strict=True)},
    }
