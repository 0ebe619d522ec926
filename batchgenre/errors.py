"""The one exception type whose message is meant for the person at the command line, and how values appear in it."""

from __future__ import annotations

from typing import Any


class BatchgenreError(Exception):
    """A user's mistake or an unusable input, said in one line that names the file or key.

    The command line prints the message alone, without a traceback, and exits non-zero.
    """


def shown(value: Any) -> str:
    """``value``'s repr, cut to 60 characters so that an error about a long list stays one readable line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: Exception) -> str:
    """A failed file's reason for its row: our own errors speak for themselves, anything else names its type."""
    if isinstance(error, BatchgenreError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"
