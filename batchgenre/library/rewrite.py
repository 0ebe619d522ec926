"""One file's tag changed whole or not at all: a copy in the same folder takes the change, then replaces it.

A kill at any moment leaves the original untouched or the finished copy in its place (``os.replace``
is atomic within a folder), plus at most a hidden ``.NAME.*.batchgenre-tmp`` copy that the next run
removes. The copy takes the original's permission bits and, where allowed, its owner; its mtime is
the time of the write. A hard link's other names keep the old file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile

from batchgenre.errors import BatchgenreError
from batchgenre.library import formats

TMP_SUFFIX = ".batchgenre-tmp"


def replace_field(
    path: str, *, kind: formats.Kind, field: str, values: list[str] | None, before: os.stat_result
) -> None:
    """Set ``field`` of the file at ``path`` to ``values`` (None: remove it), writing a copy over it.

    ``before`` is the file's stat when its old values were read: a file changed since is left alone.
    The folder's entry is made durable by :func:`sync_folder`, once per folder rather than per file.
    """
    # A symlink's target takes the change; replacing the link itself would turn it into a copy.
    folder, name = os.path.split(os.path.realpath(path))
    path = os.path.join(folder, name)
    fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=TMP_SUFFIX)
    try:
        os.close(fd)
        shutil.copyfile(path, tmp)
        audio = kind.open(tmp)
        formats.put(audio, kind.family, field, values)
        formats.save(audio, kind.family)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, stat.S_IMODE(before.st_mode))
        with contextlib.suppress(PermissionError):  # only root may give a file to another owner
            os.chown(tmp, before.st_uid, before.st_gid)
        now = os.stat(path)
        if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise BatchgenreError("changed while being tagged; left as it is now")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
