"""The results table of classify-dir: CSV, JSON lines or Parquet, written as results arrive, resumable.

Rows go to a journal as they arrive (the CSV or JSONL output itself, or ``<out>.partial.jsonl``
for Parquet), so a killed run leaves a valid file; ``finish`` sorts the rows by path and replaces
the output atomically.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from batchgenre.errors import BatchgenreError

FORMATS = (".csv", ".jsonl", ".parquet")
# Characters that make a spreadsheet run a cell as a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def columns(genres: list[str]) -> list[str]:
    return ["path", "genre", "confidence", *(f"p_{g}" for g in genres), "windows", "duration", "status", "error"]


def neutralise(cell: object) -> object:
    """A text cell that a spreadsheet would execute gets a leading apostrophe; numbers pass."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


class ResultsTable:
    """Rows of classify-dir results at ``out``; opening it reads back rows a previous run wrote."""

    def __init__(self, out: Path, *, genres: list[str]):
        self.out = Path(out)
        suffix = self.out.suffix.lower()
        if suffix not in FORMATS:
            raise BatchgenreError(f"{out}: results go to a .csv, .jsonl or .parquet file")
        self.format = suffix
        self.columns = columns(genres)
        self.journal = self.out if suffix != ".parquet" else self.out.with_name(self.out.name + ".partial.jsonl")
        self.rows: dict[str, dict] = self._read_previous()
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.journal, "a", newline="", encoding="utf-8")
        if self.format == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns)
            if self._file.tell() == 0:
                self._csv.writeheader()

    def _read_previous(self) -> dict[str, dict]:
        if self.format == ".parquet" and self.out.exists() and not self.journal.exists():
            import pyarrow.parquet as pq

            rows = pq.read_table(self.out).to_pylist()
            self._check_columns(list(rows[0]) if rows else self.columns, self.out)
            # Carry them into a fresh journal, which ``finish`` turns back into Parquet.
            with open(self.journal, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        if not self.journal.exists() or self.journal.stat().st_size == 0:
            return {}
        _drop_torn_tail(self.journal)
        with open(self.journal, newline="", encoding="utf-8") as f:
            if self.format == ".csv":
                reader = csv.DictReader(f)
                self._check_columns(reader.fieldnames or [], self.journal)
                rows = [{k: restore(v) for k, v in r.items()} for r in reader if r.get("status")]
            else:
                rows = [json.loads(line) for line in f]
                if rows:
                    self._check_columns(list(rows[0]), self.journal)
        return {r["path"]: r for r in rows}

    def _check_columns(self, found: list[str], where: Path) -> None:
        if found != self.columns:
            raise BatchgenreError(
                f"{where} holds results with other columns ({', '.join(found[:6])}...), from another model: "
                "choose another --out"
            )

    def add(self, row: dict) -> None:
        """Record one file's result and make it durable before returning."""
        self.rows[row["path"]] = row
        if self.format == ".csv":
            self._csv.writerow({k: neutralise(row.get(k, "")) for k in self.columns})
        else:
            self._file.write(json.dumps({k: row.get(k) for k in self.columns}) + "\n")
        self._file.flush()

    def finish(self) -> None:
        """Write every row, sorted by path, over the output in one atomic replace."""
        self._file.close()
        ordered = [self.rows[p] for p in sorted(self.rows)]
        tmp = self.out.with_name(self.out.name + ".tmp")
        if self.format == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in self.columns} for r in ordered]), tmp)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                if self.format == ".csv":
                    writer = csv.DictWriter(f, fieldnames=self.columns)
                    writer.writeheader()
                    writer.writerows({k: neutralise(r.get(k, "")) for k in self.columns} for r in ordered)
                else:
                    f.writelines(json.dumps({k: r.get(k) for k in self.columns}) + "\n" for r in ordered)
        os.replace(tmp, self.out)
        if self.journal != self.out:
            self.journal.unlink(missing_ok=True)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed run left without its newline, so appends start on a fresh line."""
    with open(path, "rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
