"""The tag journal: each changed file's old values, durable before the change, and the undo that reads it back.

One JSON object per line: ``path`` (absolute; a name that is not UTF-8 is kept exactly, as Python's
surrogate escapes), ``field`` (``genre`` or the ``--field`` name), ``old`` (the values before, a
list, or null where the field was absent) and ``new``. A path may appear more than once (a rerun
after a kill, a later ``--force``): the first line holds its original values, the last what
batchgenre wrote most recently.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batchgenre.errors import BatchgenreError
from batchgenre.library import formats, rewrite

ENTRY_KEYS = {"path", "field", "old", "new"}


class Journal:
    """Append-only lines at ``path``; a line cut short by a kill is dropped when it is opened again."""

    def __init__(self, path: str):
        self.path = path
        self._file = None

    def record(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` and return only once they are on disk (one fsync for the lot)."""
        if not entries:
            return
        if self._file is None:
            _drop_torn_tail(self.path)
            self._file = open(self.path, "ab")
        self._file.write(b"".join(json.dumps(e).encode("ascii") + b"\n" for e in entries))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_journal(path: str) -> list[dict[str, Any]]:
    """Every whole line of the journal at ``path``, in order."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        raise BatchgenreError(
            f"{path}: no such journal; `batchgenre tag --write` writes one beside the results"
        ) from None
    entries = []
    for number, line in enumerate(lines[:-1], 1):  # the last piece is "" or a line a kill cut short
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not ENTRY_KEYS <= entry.keys():
            raise BatchgenreError(f"{path}: line {number} is not a batchgenre tag journal entry")
        entries.append(entry)
    return entries


@dataclass
class UndoSummary:
    """What :func:`undo` did: ``restored`` files, ``already`` as they were, ``lines`` for the others."""

    journal: str
    restored: int = 0
    already: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.lines)


def undo(path: str, *, threads: int = rewrite.THREADS, chunk: int = rewrite.BATCH) -> UndoSummary:
    """Put back the values the journal at ``path`` recorded, in every file batchgenre changed.

    A file already holding its old values is left alone, so undo may run again; one whose field holds
    neither the old values nor batchgenre's (someone retagged it since) is left alone with a line.
    ``threads`` write ``chunk`` files at a time side by side.
    """
    path = os.fspath(path)
    first: dict[tuple[str, str], dict[str, Any]] = {}
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in read_journal(path):
        key = (entry["path"], entry["field"])
        first.setdefault(key, entry)
        last[key] = entry
    summary = UndoSummary(journal=path)
    changes = []
    for (file, name), entry in first.items():
        try:
            before = os.stat(file)
            kind = formats.kind_of(file)
            current = formats.get(kind.open(file), kind.family, name)
            if current == entry["old"]:
                summary.already += 1
                continue
            if current != last[(file, name)]["new"]:
                raise BatchgenreError(f"its {name} is {shown(current)} now, not what batchgenre wrote; left as it is")
        except Exception as error:  # each file fails alone, with its reason
            summary.lines.append(f"{display(file)}: not restored: {reason(error)}")
            continue
        changes.append((file, rewrite.Change(file, kind=kind, field=name, values=entry["old"], before=before)))
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(changes), chunk):  # bounds the hidden copies on disk at once
            batch = changes[start : start + chunk]
            rewrite.replace_fields([change for _, change in batch], pool=pool)
            for file, change in batch:
                if change.error is None:
                    summary.restored += 1
                else:
                    summary.lines.append(f"{display(file)}: not restored: {reason(change.error)}")
    return summary


def shown(values: list[str] | None) -> str:
    """A field's values as a person reads them: ``(none)`` where absent, several joined by ``; ``."""
    return "(none)" if values is None else "; ".join(values) or "(empty)"


def display(path: str) -> str:
    """``path`` printable on any terminal: bytes that are not UTF-8 shown as escapes, not an error."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def reason(error: Exception) -> str:
    """Why one file could not be tagged, in a few words."""
    if isinstance(error, BatchgenreError):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return "no such file (moved or deleted since)"
    if isinstance(error, PermissionError):
        return "permission denied (a read-only file or folder)"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    from mutagen import MutagenError

    if isinstance(error, MutagenError):
        return f"mutagen cannot read its tags ({error})"
    return f"unexpected {type(error).__name__}: {error}"


def _drop_torn_tail(path: str) -> None:
    """Cut a last line that a kill left without its newline, so the next entry starts a line of its own."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass
