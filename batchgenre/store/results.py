"""The results table of classify-dir: CSV, JSON lines or Parquet, written as results arrive, resumable.

Every format holds the same typed columns (:class:`Schema`): text, whole numbers, and decimal numbers
that are null where a failed file has none (an empty cell in CSV). Rows go to a journal as they
arrive (the CSV or JSONL output itself, or ``<out>.partial.jsonl`` for Parquet), so a killed run
leaves a valid file; ``finish`` sorts the rows by path and replaces the output atomically.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batchgenre.errors import BatchgenreError, shown

FORMATS = (".csv", ".jsonl", ".parquet")
# The file's size in bytes and modification time in ns as it was classified, last, so that `batchgenre tag`
# can tell a file that changed since.
STAT_COLUMNS = ("size", "mtime_ns")
# Columns added since the first tables: a table without them still opens and resumes, those values unknown.
LATER_COLUMNS = ("novelty", *STAT_COLUMNS)
# Characters that make a spreadsheet run a cell as a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def columns(genres: list[str], tags: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The results' column names, in order, for a model of ``genres`` (and ``tags``, see :class:`Schema`)."""
    return Schema(genres, tags).columns


def neutralise(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe; numbers pass.

    Apostrophes already in front of a formula character count as part of the text: ``'=x.wav``
    becomes ``''=x.wav``, so that :func:`restore`, which takes one off, gives every text back exactly.
    """
    if isinstance(cell, str) and cell.lstrip("'").startswith(_FORMULA_START):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """The text that :func:`neutralise` turned into ``cell``."""
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START) else cell


class Schema:
    """Each column's type, the same in every format.

    ``str`` columns are never null ("" when empty); ``int`` and ``float`` columns hold a number or
    None (a failed file has no confidence, no probabilities and perhaps no duration). A table of
    ``tags`` (column-safe tag names, musicnn's) ends with a ``tags`` column, the likely tags in
    words, and one ``tag_<name>`` probability column per tag, after the stat columns.
    """

    def __init__(self, genres: list[str], tags: list[str] | tuple[str, ...] = ()):
        self.types: dict[str, type] = {
            "path": str,
            "genre": str,
            "confidence": float,
            "novelty": float,  # distance from the model's training rows (classify.novelty), None for an older model
            **{f"p_{g}": float for g in genres},
            "windows": int,
            "duration": float,
            "status": str,
            "error": str,
            **{name: int for name in STAT_COLUMNS},
        }
        if tags:
            self.types |= {"tags": str, **{f"tag_{t}": float for t in tags}}
        self.columns = list(self.types)

    def older(self, found: list[str]) -> bool:
        """Whether ``found`` are these columns as an older batchgenre wrote them: in order, less some LATER_COLUMNS."""
        return found == [c for c in self.columns if c in found] and set(self.columns) - set(found) <= set(LATER_COLUMNS)

    def typed(self, row: dict[str, Any], *, where: Path) -> dict[str, Any]:
        """``row`` with every column, each value as its column's type; "" in a number column is null."""
        typed = {}
        for name, kind in self.types.items():
            value = row.get(name)
            if kind is str:
                typed[name] = "" if value is None else str(value)
            elif value is None or value == "":
                typed[name] = None
            else:
                try:
                    typed[name] = kind(value)
                except (TypeError, ValueError):
                    raise BatchgenreError(
                        f"{where}: {name} of {shown(row.get('path'))} must be a number, got {shown(value)}: "
                        "mend the file or choose another --out"
                    ) from None
        return typed

    def arrow(self):
        """The pyarrow schema of these columns: string, int64 and float64, the numbers nullable."""
        import pyarrow as pa

        kinds = {str: pa.string(), int: pa.int64(), float: pa.float64()}
        return pa.schema([(name, kinds[kind]) for name, kind in self.types.items()])


class _TextFormat:
    """A format that rows can be appended to one at a time, so it can be its own journal.

    Subclasses write a row with ``append(f, row)`` and read a file back with ``read(path)``: the
    columns the file names, and its rows with values as the file holds them.
    """

    def __init__(self, schema: Schema):
        self.schema = schema

    def start(self, f: IO[str]) -> None:
        """Write what an empty file needs before its first row."""

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            self.start(f)
            for row in rows:
                self.append(f, row)


class _Csv(_TextFormat):
    """A header, then one line per row; text neutralised against spreadsheet formulas, a null an empty cell."""

    def start(self, f: IO[str]) -> None:
        if f.tell() == 0:
            csv.writer(f).writerow(self.schema.columns)

    def append(self, f: IO[str], row: dict[str, Any]) -> None:
        csv.writer(f).writerow(["" if row[c] is None else neutralise(row[c]) for c in self.schema.columns])

    def read(self, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
        text = {name for name, kind in self.schema.types.items() if kind is str}
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            # A row without a status is one a killed run cut short.
            rows = [{k: restore(v) if k in text else v for k, v in r.items()} for r in reader if r.get("status")]
            return list(reader.fieldnames or []), rows


class _JsonLines(_TextFormat):
    """One JSON object per line, numbers as JSON numbers, a null as null."""

    def append(self, f: IO[str], row: dict[str, Any]) -> None:
        f.write(json.dumps(row) + "\n")

    def read(self, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return (list(rows[0]) if rows else self.schema.columns), rows


class _Parquet:
    """One Parquet file in the schema's Arrow types, written whole."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def read(self, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.column_names, table.to_pylist()

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema.arrow()), path)


_FORMAT_OF = {".csv": _Csv, ".jsonl": _JsonLines, ".parquet": _Parquet}


class ResultsTable:
    """Rows of classify-dir results at ``out``; opening it reads back rows a previous run wrote."""

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
        # Whether ``finish`` has anything to write: rows added, or rows read that are not the sorted table.
        self._changed = False
        self.rows: dict[str, dict[str, Any]] = self._read_previous()
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.journal, "a", newline="", encoding="utf-8")
        self._journal_format.start(self._file)

    def _read_previous(self) -> dict[str, dict[str, Any]]:
        if self.journal != self.out and self.out.exists() and not self.journal.exists():
            # A finished Parquet file: carry its rows into a fresh journal, which ``finish`` turns back into Parquet.
            found, rows = self.format.read(self.out)
            self._check_columns(found, self.out)
            tmp = self.journal.with_name(self.journal.name + ".tmp")
            self._journal_format.write(tmp, [self.schema.typed(r, where=self.out) for r in rows])
            os.replace(tmp, self.journal)
            self._changed = True
        if not self.journal.exists():
            return {}
        self._changed |= _drop_torn_tail(self.journal)
        if self.journal.stat().st_size == 0:
            return {}
        found, rows = self._journal_format.read(self.journal)
        older = self._check_columns(found, self.journal)
        typed = [self.schema.typed(r, where=self.journal) for r in rows]
        if older:  # appends need the journal in today's columns: rewrite it, its stats unknown
            tmp = self.journal.with_name(self.journal.name + ".tmp")
            self._journal_format.write(tmp, typed)
            os.replace(tmp, self.journal)
            self._changed = True
        paths = [r["path"] for r in typed]
        # A killed run's appends are out of order (and a retried file is there twice): sorted again at the end.
        self._changed |= any(a >= b for a, b in itertools.pairwise(paths))
        return dict(zip(paths, typed, strict=True))

    def _check_columns(self, found: list[str], where: Path) -> bool:
        """Refuse another model's results; True for this schema as an older batchgenre wrote it (LATER_COLUMNS)."""
        if found == self.schema.columns:
            return False
        if self.schema.older(found):
            return True
        raise BatchgenreError(
            f"{where} holds results with other columns ({', '.join(found[:6])}...), from another model or an "
            "older batchgenre: "
            "choose another --out"
        )

    def add(self, row: dict[str, Any]) -> None:
        """Record one file's result and make it durable before returning."""
        row = self.schema.typed(row, where=self.out)
        self.rows[row["path"]] = row
        self._changed = True
        self._journal_format.append(self._file, row)
        self._file.flush()

    def finish(self) -> None:
        """Write every row, sorted by path, over the output in one atomic replace.

        A table already so is left as it is.
        """
        self._file.close()
        if not self._changed and self.journal == self.out:
            return
        tmp = self.out.with_name(self.out.name + ".tmp")
        self.format.write(tmp, [self.rows[p] for p in sorted(self.rows)])
        os.replace(tmp, self.out)
        if self.journal != self.out:
            self.journal.unlink(missing_ok=True)


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


def _drop_torn_tail(path: Path) -> bool:
    """Cut a last line that a killed run left without its newline, so appends start on a fresh line; True if cut."""
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n") or not data:
            return False
        f.truncate(data.rfind(b"\n") + 1)
        return True
