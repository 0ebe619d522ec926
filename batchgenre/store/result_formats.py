"""The formats of classify-dir's results: CSV, JSON lines or Parquet, each holding the same typed columns.

Every format holds the same columns (:class:`Schema`): text, whole numbers, and decimal numbers that
are null where a failed file has none (an empty cell in CSV).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from batchgenre.errors import BatchgenreError, shown

FORMATS = (".csv", ".jsonl", ".parquet")
# The file's size in bytes and modification time in ns as it was classified, last, so that `batchgenre tag`
# can tell a file that changed since.
STAT_COLUMNS = ("size", "mtime_ns")
# Columns added since the first tables: a table without them still opens and resumes, those values unknown.
LATER_COLUMNS = ("novelty", *STAT_COLUMNS)
# Rows converted at a time when a table is copied into another format: a few MB.
ROWS_AT_ONCE = 65_536
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

    Subclasses give the text before the first row (``header``), one row's text (``line``), and
    read a file back as the columns it names and its rows' cells as the file holds them, each row
    with the bytes it spans (``scan``), so that a table can be indexed by where its rows are rather
    than held; ``text`` gives a text cell back as it was written.
    """

    def __init__(self, schema: Schema):
        self.schema = schema

    def header(self) -> str:
        return ""

    def write(self, path: Path, rows: Iterable[dict[str, Any]]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(self.header())
            for row in rows:
                f.write(self.line(row))

    def text(self, cell: Any) -> Any:
        return cell

    def read(self, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
        with open(path, "rb") as f:
            found, rows = self.scan(f)
            text = [self.schema.types.get(name) is str for name in found]
            cells = ([self.text(v) if t else v for v, t in zip(row, text, strict=True)] for _, _, row in rows)
            return found, [dict(zip(found, row, strict=True)) for row in cells]


class _Csv(_TextFormat):
    """A header, then one line per row; text neutralised against spreadsheet formulas, a null an empty cell."""

    def __init__(self, schema: Schema):
        super().__init__(schema)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def _text(self, cells: list) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(cells)
        return self._buffer.getvalue()

    def header(self) -> str:
        return self._text(self.schema.columns)

    def line(self, row: dict[str, Any]) -> str:
        return self._text(["" if row[c] is None else neutralise(row[c]) for c in self.schema.columns])

    def text(self, cell: str) -> str:
        return restore(cell)

    def scan(self, f: IO[bytes]) -> tuple[list[str], Iterator[tuple[int, int, list]]]:
        """The columns of the binary file ``f``, and its rows as (first byte, byte after, cells)."""
        at = 0

        def lines() -> Iterator[str]:
            nonlocal at
            for line in f:
                at += len(line)
                yield line.decode("utf-8")

        # csv.reader takes lines one at a time, only as a row needs them, so ``at`` ends each row.
        reader = csv.reader(lines())
        found = next(reader, [])
        status = found.index("status") if "status" in found else len(found)

        def rows() -> Iterator[tuple[int, int, list]]:
            start = at
            for cells in reader:
                # A row without a status is one a killed run cut short.
                if len(cells) == len(found) and cells[status]:
                    yield start, at, cells
                start = at

        return found, rows()


class _JsonLines(_TextFormat):
    """One JSON object per line, numbers as JSON numbers, a null as null."""

    def line(self, row: dict[str, Any]) -> str:
        return json.dumps(row) + "\n"

    def scan(self, f: IO[bytes]) -> tuple[list[str], Iterator[tuple[int, int, list]]]:
        """The columns of the binary file ``f`` (its first row's), and its rows as (first byte, byte after, cells)."""
        first = f.readline()
        f.seek(0)
        found = list(json.loads(first)) if first else self.schema.columns

        def rows() -> Iterator[tuple[int, int, list]]:
            at = 0
            for line in f:
                row = json.loads(line)
                yield at, at + len(line), [row.get(name) for name in found]
                at += len(line)

        return found, rows()


class _Parquet:
    """One Parquet file in the schema's Arrow types, written in row groups as rows come."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def read(self, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.column_names, table.to_pylist()

    def batches(self, path: Path) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
        """The columns of the file at ``path``, and its rows a row group's worth at a time."""
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        return file.schema_arrow.names, (batch.to_pylist() for batch in file.iter_batches(batch_size=ROWS_AT_ONCE))

    def write(self, path: Path, rows: Iterable[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.schema.arrow()
        with pq.ParquetWriter(path, schema) as writer:
            rows = iter(rows)
            while batch := list(itertools.islice(rows, ROWS_AT_ONCE)):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))


_FORMAT_OF = {".csv": _Csv, ".jsonl": _JsonLines, ".parquet": _Parquet}
