"""Checks of single config values.

Each returns the value to keep from a TOML value, or raises ``Bad`` saying what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from batchgenre.errors import BatchgenreError


class Bad(Exception):
    """A value a key does not accept; the message says what the key accepts."""


def integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise Bad(f"must be an integer of at least {minimum}")
        return value

    return check


def fraction(*, allow_zero: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (0 <= value < 1 if allow_zero else 0 < value < 1):
            raise Bad("must be a number from 0 up to 1" if allow_zero else "must be a number between 0 and 1")
        return float(value)

    return check


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise Bad("must be a positive number")
    return float(value)


def non_negative_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise Bad("must be a number of 0 or more")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Bad("must be true or false")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise Bad("must be a string")
    return value


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise Bad(f"must be one of {', '.join(choices)}")
        return value

    return check


def stores(value: Any) -> str | tuple[str, ...]:
    """One store, or several of the same files (one per feature set) that train reads as one."""
    paths = [value] if isinstance(value, str) else value
    ok = isinstance(paths, list) and paths and all(isinstance(p, str) and p.strip() for p in paths)
    if not ok or len(set(paths)) != len(paths):
        raise Bad('must be a non-empty path, or a list of distinct paths, like ["robust.zarr", "musicnn.zarr"]')
    return paths[0] if len(paths) == 1 else tuple(paths)


def feature_set(value: Any) -> str:
    from batchgenre.features import FEATURE_SETS, JOIN, get_feature_set

    if value == "":
        return value
    if not isinstance(value, str) or not all(part in FEATURE_SETS for part in value.split(JOIN)):
        raise Bad(
            f"must be one of {', '.join(FEATURE_SETS)}, or several of them joined with {JOIN}, like robust{JOIN}musicnn"
        )
    try:
        return get_feature_set(value).name
    except BatchgenreError as error:
        raise Bad(f"must name sets that combine ({error})") from None


def genres(value: Any) -> tuple[str, ...] | str:
    if value == "all":
        return value
    ok = isinstance(value, list) and value and all(isinstance(g, str) and g.strip() for g in value)
    if not ok or len(set(value)) != len(value):
        raise Bad('must be "all" or a list of distinct genre names, like ["reggae", "classical", "rock"]')
    return tuple(value)


def hidden_layers(value: Any) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    if not ok:
        raise Bad("must be a list of positive integers, like [300, 200]")
    return tuple(value)


def names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise Bad('must be a list of feature block names, like ["melspectrogram"]')
    return tuple(value)


def summaries(value: Any) -> tuple[str, ...]:
    from batchgenre.features import SUMMARY_FUNCTIONS

    known = ", ".join(SUMMARY_FUNCTIONS)
    ok = isinstance(value, list) and value and all(v in SUMMARY_FUNCTIONS for v in value)
    if not ok or len(set(value)) != len(value):
        raise Bad(f'must be a list of distinct summaries from {known}, like ["mean", "max"]')
    return tuple(value)


def folds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
        raise Bad("must be 0 (one split) or a number of folds of at least 2")
    return value
