"""The registry of feature sets by name, and sets combined with ``+``.

A new feature set is one module in this folder and one line in ``MODULES`` below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.features.base import FeatureSet

# The feature sets, in the order --features lists them: each is the module of that name in this folder,
# which defines the set as its name in capitals (robust.py: ROBUST). A new set is a module and a line here.
MODULES = (
    "tutorial",
    "fast",
    "robust",
    "musicnn",
)
FEATURE_SETS: dict[str, FeatureSet] = {
    name: getattr(importlib.import_module(f"batchgenre.features.{name}"), name.upper()) for name in MODULES
}
# The set featurize uses unless told otherwise: the one whose accuracy holds on files recorded unlike
# the training set (quieter, band-limited, re-encoded), and the fastest (benchmarks/README.md).
DEFAULT_FEATURE_SET = "robust"
# Sets computed together are named by joining their names with this: "robust+musicnn".
JOIN = "+"


@dataclass(frozen=True)
class CombinedFeatureSet:
    """Several feature sets computed on the same samples, their vectors end to end.

    Each part keeps its own blocks and summaries (robust: mean and std; musicnn: mean and max),
    so a value's name is its part's name for it, and the parts' names never repeat (see
    :func:`get_feature_set`): a model's columns (``block.summary.row``) each say which part they are.
    """

    parts: tuple[FeatureSet, ...]

    @property
    def name(self) -> str:
        return JOIN.join(part.name for part in self.parts)

    @property
    def description(self) -> str:
        return " ".join(f"{part.name}: {part.description}" for part in self.parts)

    @property
    def params(self) -> dict:
        """Each part's parameters, by its name."""
        return {part.name: part.params for part in self.parts}

    @property
    def blocks(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(block for part in self.parts for block in part.blocks)

    @property
    def summaries(self) -> tuple[str, ...]:
        """Every summary some part uses, in order of first use."""
        return tuple(dict.fromkeys(s for part in self.parts for s in part.summaries))

    @property
    def warm_up(self) -> bool:
        return any(part.warm_up for part in self.parts)

    @property
    def extras(self) -> tuple[str, ...]:
        return tuple(name for part in self.parts for name in part.extras)

    @property
    def min_seconds(self) -> float:
        return max(part.min_seconds for part in self.parts)

    @property
    def names(self) -> list[str]:
        return [name for part in self.parts for name in part.names]

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    def extract(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Each part's vector of one clip, end to end [shape=(self.size,), dtype=float32].

        See :meth:`FeatureSet.extract`.
        """
        return self.extract_with_extras(y, sr=sr)[0]

    def extract_with_extras(self, y: np.ndarray, *, sr: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each part's vector end to end, and every part's extras (see :meth:`FeatureSet.extract_with_extras`)."""
        vectors, extras = [], {}
        for part in self.parts:
            vector, more = part.extract_with_extras(y, sr=sr)
            vectors.append(vector)
            extras.update(more)
        return np.concatenate(vectors), extras


def get_feature_set(name: str) -> FeatureSet | CombinedFeatureSet:
    """The feature set called ``name``, or the sets ``a+b`` name combined; a one-line error otherwise.

    A combination is refused when a part is unknown or named twice, or when two parts have a
    value of the same name (``robust`` and ``fast`` both have ``mfcc.mean.00``).
    """
    parts = []
    for part in name.split(JOIN):
        if part not in FEATURE_SETS:
            known = ", ".join(FEATURE_SETS)
            unknown = "" if part == name else f" ({part!r} is not one)"
            raise BatchgenreError(
                f"unknown feature set {name!r}{unknown}: choose one of {known}, "
                f"or several joined with {JOIN} (like robust{JOIN}musicnn)"
            )
        if FEATURE_SETS[part] in parts:
            raise BatchgenreError(f"feature set {name!r} names {part!r} twice")
        parts.append(FEATURE_SETS[part])
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, str] = {}
    for part in parts:
        for value in part.names:
            if seen.setdefault(value, part.name) != part.name:
                raise BatchgenreError(
                    f"feature set {name!r}: {seen[value]!r} and {part.name!r} both have a value named {value!r}, "
                    "so a model could not tell them apart; combine sets whose values differ (like robust+musicnn)"
                )
    return CombinedFeatureSet(tuple(parts))
