"""The results table of classify-dir: written as results arrive, sorted by path at the end, resumable; read back.

Rows go to a journal as they arrive (the CSV or JSONL output itself, or ``<out>.partial.jsonl`` for
Parquet), so a killed run leaves a valid file; ``finish`` writes the rows sorted by path and
replaces the output atomically. The table holds no row in memory, only where each file's latest
row is in the journal (``_Index``), about 60 bytes a file, and the reasons of failed files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchgenre.errors import BatchgenreError
from batchgenre.store.paths import PATHS, SLICE
from batchgenre.store.result_formats import (
    _FORMAT_OF,
    FORMATS,
    LATER_COLUMNS,
    STAT_COLUMNS,
    Schema,
    _JsonLines,
    _TextFormat,
    columns,
    neutralise,
    restore,
)

__all__ = [
    "FORMATS",
    "LATER_COLUMNS",
    "STAT_COLUMNS",
    "Results",
    "ResultsTable",
    "Schema",
    "columns",
    "meta_path",
    "neutralise",
    "read_results",
    "restore",
    "write_meta",
]


class _Index:
    """Each row of a journal: its file's path, whether it was classified, and the bytes it spans."""

    def __init__(self) -> None:
        self._done: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (paths, classified, spans) a slice
        self._paths: list[str] = []
        self._classified: list[bool] = []
        self._spans: list[tuple[int, int]] = []
        self._reordered = False  # whether rows were ever found out of path order, or a path twice

    def add(self, path: str, classified: bool, start: int, end: int) -> None:
        self._paths.append(_indexable(path))
        self._classified.append(classified)
        self._spans.append((start, end))
        if len(self._paths) >= SLICE:
            self._pack()

    def _pack(self) -> None:
        if self._paths:
            spans = np.array(self._spans, dtype=np.int64).reshape(-1, 2)
            self._done.append((np.array(self._paths, dtype=PATHS), np.array(self._classified, dtype=bool), spans))
            self._paths, self._classified, self._spans = [], [], []

    def latest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Each file's last row, sorted by path: paths [shape=(n,)], classified [shape=(n,)], spans [shape=(n, 2)];
        and whether the journal already held exactly these rows in this order."""
        paths, classified, spans = self._joined()
        if len(paths) < 2 or (paths[1:] > paths[:-1]).all():
            return paths, classified, spans, not self._reordered
        order = np.argsort(paths, kind="stable")  # a path's rows stay in the order they came: its last is its latest
        last = np.ones(len(order), dtype=bool)
        for start in range(0, len(order) - 1, SLICE):  # neighbours compared a slice at a time: copies of paths
            at = order[start : start + SLICE + 1]
            last[start : start + len(at) - 1] = paths[at[1:]] != paths[at[:-1]]
        order = order[last]
        del last
        self._done = [(paths[order], classified[order], spans[order])]  # what later rows are added to
        self._reordered = True
        return *self._done[0], False

    def _joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row so far as three arrays, each slice let go as it is copied in."""
        self._pack()
        if len(self._done) != 1:
            n = sum(len(part[0]) for part in self._done)
            joined = np.empty(n, dtype=PATHS), np.empty(n, dtype=bool), np.empty((n, 2), dtype=np.int64)
            at = 0
            while self._done:
                part = self._done.pop(0)
                for whole, piece in zip(joined, part, strict=True):
                    whole[at : at + len(piece)] = piece
                at += len(part[0])
            self._done = [joined]
        return self._done[0]


def _indexable(path: str) -> str:
    """``path`` as UTF-8 text the index can hold: a name that is not UTF-8 (surrogate escapes) gets its odd
    bytes written as ``\\xNN``. Only the index sees this form; the journal and the table keep the real path."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


class ResultsTable:
    """Rows of classify-dir results at ``out``; opening it indexes the rows a previous run wrote.

    ``failures`` maps each file whose latest row failed to its reason.
    """

    def __init__(self, out: Path, *, genres: list[str], tags: list[str] | tuple[str, ...] = ()):
        self.out = Path(out)
        suffix = self.out.suffix.lower()
        if suffix not in FORMATS:
            raise BatchgenreError(f"{out}: results go to a .csv, .jsonl or .parquet file")
        self.schema = Schema(genres, tags)
        self.format = _FORMAT_OF[suffix](self.schema)
        # Parquet cannot be appended to, so its rows wait in a JSON-lines journal until ``finish``.
        if isinstance(self.format, _TextFormat):
            self.journal, self._journal_format = self.out, self.format
        else:
            self.journal = self.out.with_name(self.out.name + ".partial.jsonl")
            self._journal_format = _JsonLines(self.schema)
        self.failures: dict[str, str] = {}
        self._index = _Index()
        # Whether ``finish`` has anything to write: rows added, or rows read that are not the sorted table.
        self._changed = False
        self._read_previous()
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.journal, "ab")  # bytes, so that a row's place is its offset
        self._size = self._file.seek(0, os.SEEK_END)
        if self._size == 0:
            self._write(self._journal_format.header())

    def _read_previous(self) -> None:
        if self.journal != self.out and self.out.exists() and not self.journal.exists():
            # A finished Parquet file: carry its rows into a fresh journal, which ``finish`` turns back into Parquet.
            found, batches = self.format.batches(self.out)
            self._check_columns(found, self.out)
            rows = (self.schema.typed(row, where=self.out) for batch in batches for row in batch)
            self._rewrite_journal(rows)
            self._changed = True
        if not self.journal.exists():
            return
        self._changed |= _drop_torn_tail(self.journal)
        with open(self.journal, "rb") as f:
            found, rows = self._journal_format.scan(f)
            if self._check_columns(found, self.journal):
                # Appends need the journal in today's columns: rewrite it, its stats unknown.
                typed = (self._typed(found, cells, self.journal) for _, _, cells in rows)
                self._rewrite_journal(typed)
                self._changed = True
                return self._read_previous()
            self._index_rows(found, rows)

    def _index_rows(self, found: list[str], rows) -> None:
        """Note each row's place, checking its numbers as ``Schema.typed`` would without building the row."""
        at = {name: i for i, name in enumerate(found)}
        path, status, error = at["path"], at["status"], at["error"]
        numbers = [(at[name], kind) for name, kind in self.schema.types.items() if kind is not str and name in at]
        text = self._journal_format.text
        for start, end, cells in rows:
            for i, kind in numbers:
                value = cells[i]
                if value is not None and value != "":
                    try:
                        kind(value)
                    except (TypeError, ValueError):
                        self._typed(found, cells, self.journal)  # raises, naming the cell
            self._note(text(cells[path]), cells[status] == "classified", text(cells[error] or ""), start, end)

    def _typed(self, found: list[str], cells: list, where: Path) -> dict[str, Any]:
        text = self._journal_format.text
        row = {k: text(v) if self.schema.types.get(k) is str else v for k, v in zip(found, cells, strict=True)}
        return self.schema.typed(row, where=where)

    def _rewrite_journal(self, rows) -> None:
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        self._journal_format.write(tmp, rows)
        os.replace(tmp, self.journal)

    def _check_columns(self, found: list[str], where: Path) -> bool:
        """Refuse another model's results; True for this schema as an older batchgenre wrote it (LATER_COLUMNS)."""
        if found == self.schema.columns or not found:
            return False
        if self.schema.older(found):
            return True
        raise BatchgenreError(
            f"{where} holds results with other columns ({', '.join(found[:6])}...), from another model or an "
            "older batchgenre: "
            "choose another --out"
        )

    def _note(self, path: str, classified: bool, error: str, start: int, end: int) -> None:
        self._index.add(path, classified, start, end)
        if classified:
            self.failures.pop(path, None)
        else:
            self.failures[path] = error

    def _write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._file.write(data)
        self._size += len(data)
        return len(data)

    def add(self, row: dict[str, Any]) -> None:
        """Record one file's result and make it durable before returning."""
        row = self.schema.typed(row, where=self.out)
        start = self._size
        self._write(self._journal_format.line(row))
        self._file.flush()
        self._note(row["path"], row["status"] == "classified", row["error"], start, self._size)
        self._changed = True

    def files(self) -> tuple[np.ndarray, np.ndarray]:
        """The files the table holds [shape=(n,), StringDType, sorted] and whether each was classified (else failed)."""
        paths, classified, _, _ = self._index.latest()
        return paths, classified

    def finish(self) -> None:
        """Write every file's latest row, sorted by path, over the output in one atomic replace.

        A table already so is left as it is. Rows are copied from the journal one at a time.
        """
        self._file.close()
        _, _, spans, in_order = self._index.latest()
        if not self._changed and in_order and self.journal == self.out:
            return
        tmp = self.out.with_name(self.out.name + ".tmp")
        with open(self.journal, "rb") as f:
            # Read a row at a time (pread), not mapped: a mapped journal's pages count as the client's memory.
            rows = (os.pread(f.fileno(), end - start, start) for start, end in _slices(spans))
            if isinstance(self.format, _TextFormat):
                with open(tmp, "wb") as out:
                    out.write(self.format.header().encode("utf-8"))
                    out.writelines(rows)
            else:
                self.format.write(tmp, (json.loads(row) for row in rows))
        os.replace(tmp, self.out)
        if self.journal != self.out:
            self.journal.unlink(missing_ok=True)


def _slices(spans: np.ndarray):
    """(start, end) of each row of ``spans`` [shape=(n, 2)], made Python numbers a slice at a time."""
    for at in range(0, len(spans), SLICE):
        yield from spans[at : at + SLICE].tolist()


def _drop_torn_tail(path: Path) -> bool:
    """Cut a last line that a killed run left without its newline, so appends start on a fresh line; True if cut.

    Reads backwards from the end only as far as the last newline.
    """
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if not size or (f.seek(size - 1) >= 0 and f.read(1) == b"\n"):
            return False
        at = size
        while at > 0:
            step = min(SLICE, at)
            at -= step
            f.seek(at)
            newline = f.read(step).rfind(b"\n")
            if newline >= 0:
                f.truncate(at + newline + 1)
                return True
        f.truncate(0)
        return True


def meta_path(out: Path) -> Path:
    """The JSON file beside a results table that says what made it: ``results.csv.meta.json``."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def write_meta(out: Path, meta: dict[str, Any]) -> None:
    """Record beside ``out``, atomically, what made it: ``root`` (the folder its paths are relative to), the model."""
    path = meta_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Results:
    """A finished results table read back: rows (typed, sorted by path), genres, and what ``write_meta`` recorded.

    ``tags`` are the names of its ``tag_<name>`` columns ([] for a table without them).
    """

    path: Path
    rows: list[dict[str, Any]]
    genres: list[str]
    meta: dict[str, Any]
    tags: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The folder the rows' paths are relative to, as classify-dir recorded it."""
        if "root" not in self.meta:
            raise BatchgenreError(
                f"{self.path}: no {meta_path(self.path).name} beside it says which folder its paths are in; "
                "classify the folder again with this batchgenre, or pass --root"
            )
        return Path(self.meta["root"])


def read_results(path: Path) -> Results:
    """The results table at ``path`` (CSV, JSONL or Parquet, as classify-dir wrote it), with its meta file if any."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise BatchgenreError(f"{path}: results are a .csv, .jsonl or .parquet file written by classify-dir")
    if not path.is_file():
        raise BatchgenreError(
            f"{path}: no such results file; make one with `batchgenre classify-dir FOLDER --out {path}`"
        )
    try:
        found, rows = _FORMAT_OF[suffix](Schema([])).read(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BatchgenreError(f"{path}: cannot read it as results ({error})") from None
    genres = [c[2:] for c in found if c.startswith("p_")]
    tags = [c[4:] for c in found if c.startswith("tag_")]
    schema = Schema(genres, tags)
    if found != schema.columns and not schema.older(found):
        raise BatchgenreError(f"{path}: not a classify-dir results table (its columns are {', '.join(found[:8])}...)")
    meta_file = meta_path(path)
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    typed = sorted((schema.typed(r, where=path) for r in rows), key=lambda r: r["path"])
    return Results(path, typed, genres, meta, tags)
