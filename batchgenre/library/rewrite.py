"""Files' tags changed whole or not at all: copies in the same folder take the change, then replace them.

A batch goes in four steps: every file is copied to a hidden ``.NAME.*.batchgenre-tmp`` beside it and
the copy tagged; every copy is fsynced (side by side in threads, so the disk writes them in one pass
rather than one commit per file); each original's stat is checked again and the copy ``os.replace``-d
over it; each folder touched is fsynced once. The caller makes its journal durable before the batch.

A kill at any moment leaves each original untouched or the finished copy in its place (``os.replace``
is atomic within a folder), plus hidden copies that the next run removes. A power cut is covered too:
no rename is issued before every copy's bytes and inode (mode and owner included) are on disk, so
whichever entry a folder holds after the cut, old or new, names a whole file. The copy takes the
original's permission bits and, where allowed, its owner; its mtime is the time of the write. A hard
link's other names keep the old file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from concurrent.futures import Executor
from dataclasses import dataclass

from batchgenre.errors import BatchgenreError
from batchgenre.library import formats

TMP_SUFFIX = ".batchgenre-tmp"
# Files per batch: its hidden copies are on disk at once, so this bounds the room a batch borrows.
BATCH = 64
THREADS = 2


@dataclass
class Change:
    """One file's field to set: ``values`` (None: remove it); ``before``, its stat when its old values were read."""

    path: str
    kind: formats.Kind
    field: str
    values: list[str] | None
    before: os.stat_result
    tmp: str | None = None
    error: Exception | None = None  # why it was not written, once :func:`replace_fields` returns


def replace_fields(changes: list[Change], *, pool: Executor) -> None:
    """Write every change as a copy over its file; each that fails gets its ``error`` and is left as it was.

    ``pool`` copies, tags, fsyncs and replaces files side by side. A file whose size or mtime differs
    from its ``before`` (someone changed it meanwhile) is left alone.
    """
    try:
        _each(pool, _prepare, changes)
        _each(pool, _sync, changes)
        _each(pool, _commit, changes)
    finally:  # an interrupt between steps leaves no copy behind
        for change in changes:
            _discard(change)
    for folder in {os.path.dirname(c.path) for c in changes if c.error is None}:
        sync_folder(folder)


def _each(pool: Executor, step, changes: list[Change]) -> None:
    def guarded(change: Change) -> None:
        if change.error is None:
            try:
                step(change)
            except Exception as error:  # each file fails alone, with its reason
                change.error = error
                _discard(change)

    list(pool.map(guarded, changes))


def _prepare(change: Change) -> None:
    # A symlink's target takes the change; replacing the link itself would turn it into a copy.
    folder, name = os.path.split(os.path.realpath(change.path))
    change.path = os.path.join(folder, name)
    fd, change.tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    shutil.copyfile(change.path, change.tmp)  # sendfile on Linux: the bytes never pass through Python
    audio = change.kind.open(change.tmp)
    formats.put(audio, change.kind.family, change.field, change.values)
    formats.save(audio, change.kind.family)
    # Before the fsync, so that the mode and owner are on disk with the bytes.
    os.chmod(change.tmp, stat.S_IMODE(change.before.st_mode))
    with contextlib.suppress(PermissionError):  # only root may give a file to another owner
        os.chown(change.tmp, change.before.st_uid, change.before.st_gid)


def _sync(change: Change) -> None:
    fd = os.open(change.tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(change: Change) -> None:
    now = os.stat(change.path)
    if (now.st_size, now.st_mtime_ns) != (change.before.st_size, change.before.st_mtime_ns):
        raise BatchgenreError("changed while being tagged; left as it is now")
    os.replace(change.tmp, change.path)
    change.tmp = None


def _discard(change: Change) -> None:
    if change.tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(change.tmp)
        change.tmp = None


def sync_folder(folder: str) -> None:
    """Make the folder's entries (a replaced file's new inode) durable."""
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(folder: str) -> int:
    """Delete the copies a killed run left in ``folder``; the count removed."""
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder or ".") as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
