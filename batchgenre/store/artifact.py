"""The model artifact's read side.

A ``model.keras`` zip's batchgenre metadata, and the check that its features are ours.

training.model writes the artifact (with Keras); classify.serving runs it (without); both read it through here.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from batchgenre.errors import BatchgenreError, shown

METADATA_MEMBER = "batchgenre.json"
ARTIFACT_FORMAT = 1


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of the model at ``path``, read from its zip without building the model."""
    path = Path(path)
    if not path.is_file():
        raise BatchgenreError(f"{path}: no model there; train one with `batchgenre train`")
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(METADATA_MEMBER))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise BatchgenreError(f"{path}: not a batchgenre model (a model.keras written by `batchgenre train`)") from None
    except OSError as error:
        raise BatchgenreError(f"{path}: cannot read it ({error})") from None
    if metadata.get("artifact_format") != ARTIFACT_FORMAT:
        found = metadata.get("artifact_format")
        raise BatchgenreError(f"{path}: model format {found!r}, this batchgenre reads {ARTIFACT_FORMAT}")
    return metadata


def check_features(metadata: dict[str, Any], *, source: str = "the model") -> None:
    """Refuse a model whose features this batchgenre would compute differently.

    Its feature set must exist here, with the same parameters and the same value names in the
    same order; the message says what differs.
    """
    from batchgenre.audio import SAMPLE_RATE
    from batchgenre.features import get_feature_set

    name = metadata.get("feature_set")
    if not isinstance(name, str):
        raise BatchgenreError(f"{source} does not say which feature set it was trained on")
    fs = get_feature_set(name)
    for key, here in (("sample_rate", SAMPLE_RATE), ("feature_params", fs.params), ("feature_names", fs.names)):
        if _normal(metadata.get(key)) != _normal(here):
            where, saved, now = _first_difference(key, metadata.get(key), here)
            raise BatchgenreError(
                f"{source} was trained on feature set {name!r} with {where}={shown(saved)}, "
                f"this batchgenre computes {where}={shown(now)}: train it again"
            )


def _first_difference(key: str, saved: Any, here: Any) -> tuple[str, Any, Any]:
    """The first dotted key at which two parameter trees differ, and the two values there.

    A set's parameters are nested dicts (one per part); naming the leaf that changed
    (``feature_params.musicnn.max_patches``) says more than the start of a long dict would.
    """
    if isinstance(saved, dict) and isinstance(here, dict):
        for name in sorted(set(saved) | set(here)):
            if _normal(saved.get(name)) != _normal(here.get(name)):
                return _first_difference(f"{key}.{name}", saved.get(name), here.get(name))
    return key, saved, here


def _normal(value: Any) -> Any:
    """JSON's view of a value, so that a tuple equals the list it was saved as."""
    return json.loads(json.dumps(value))
