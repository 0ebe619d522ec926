"""``batchgenre tag``: a results table's genres written into the files' own tags, pretending unless told to write.

Files are taken in chunks. For each chunk: read every file's current value (in threads), decide; append
the old values of the files that will change to the journal and fsync it once; then write those files
as one batch of copies that replace the originals (:mod:`batchgenre.library.rewrite`: every copy made
durable before any is renamed). So a value is on disk in the journal before its file changes, at one
journal fsync per chunk rather than per file. A file already holding the value is never copied.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgenre.errors import BatchgenreError
from batchgenre.library import formats, rewrite
from batchgenre.library.journal import Journal, display, reason, shown
from batchgenre.store.results import read_results

# A field name every tag system can hold: Vorbis comment keys are printable ASCII without '='.
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")


def journal_path(results: Path) -> Path:
    """The journal beside a results table: ``results.csv.tag-journal.jsonl``."""
    return results.with_name(results.name + ".tag-journal.jsonl")


@dataclass
class TagSummary:
    """What :func:`tag` did, or with ``write=False`` would do.

    ``changed``: files written (or to be written); ``kept``: files keeping a genre of their own
    (``force`` replaces it); ``already``: files holding the genre already; ``skipped``: rows not
    named a genre (unknown, failed, below ``min_confidence``); ``failed``: files that could not be
    tagged, each with a line. ``lines``: one per changed or failed file, as the CLI prints them.
    """

    write: bool
    journal: Path
    changed: int = 0
    kept: int = 0
    already: int = 0
    skipped: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)

    def count_line(self) -> str:
        verb = "changed" if self.write else "would change"
        where = f" (old values in {self.journal})" if self.write and self.changed else ""
        return (
            f"{self.changed} {verb}{where}, {self.kept} kept their own genre (--force replaces it), "
            f"{self.already} already tagged, {self.skipped} not named a genre, {self.failed} could not be tagged"
        )


@dataclass
class _Plan:
    path: str
    new: list[str]
    kind: formats.Kind | None = None
    old: list[str] | None = None
    before: os.stat_result | None = None
    outcome: str = "change"  # or kept, already, failed
    why: str = ""


def tag(
    results: Path,
    *,
    write: bool = False,
    force: bool = False,
    field_name: str | None = None,
    min_confidence: float | None = None,
    root: Path | None = None,
    threads: int = rewrite.THREADS,
) -> TagSummary:
    """Write each classified file's genre from the results table at ``results`` into its tags.

    See :func:`batchgenre.tag` for the arguments; ``threads`` read and write files side by side.
    """
    table = read_results(results)
    # Absolute, so that the journal's paths mean the same files wherever --undo runs.
    base = os.path.abspath(root if root is not None else table.root)
    name = _field(field_name)
    summary = TagSummary(write=write, journal=journal_path(table.path))
    rows = []
    for row in table.rows:
        if row["status"] != "classified" or row["genre"] in ("", "unknown"):
            summary.skipped += 1
        elif min_confidence is not None and (row["confidence"] is None or row["confidence"] < min_confidence):
            summary.skipped += 1
        else:
            rows.append(row)
    journal = Journal(os.fspath(summary.journal))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        if write:
            list(
                pool.map(
                    rewrite.remove_leftovers,
                    {os.path.dirname(os.path.realpath(os.path.join(base, r["path"]))) for r in rows},
                )
            )
        try:
            for start in range(0, len(rows), rewrite.BATCH):
                plans = list(
                    pool.map(lambda r: _plan(r, base=base, name=name, force=force), rows[start : start + rewrite.BATCH])
                )
                changes = [p for p in plans if p.outcome == "change"]
                if write and changes:
                    journal.record([{"path": p.path, "field": name, "old": p.old, "new": p.new} for p in changes])
                    _apply(changes, name=name, pool=pool)
                _count(summary, plans)
        finally:
            journal.close()
    return summary


def _field(name: str | None) -> str:
    if name is None or name.lower() == formats.GENRE:
        return formats.GENRE
    if not _FIELD_NAME.fullmatch(name):
        raise BatchgenreError(f"--field {name!r}: a field name is letters, digits and underscores (BATCHGENRE_GENRE)")
    return name.upper()


def _plan(row: dict[str, Any], *, base: str, name: str, force: bool) -> _Plan:
    """What to do with one file, from its current tags and stat; nothing is written here."""
    plan = _Plan(path=os.path.join(base, row["path"]), new=[row["genre"]])
    try:
        plan.before = os.stat(plan.path)
        plan.kind = formats.kind_of(plan.path)
        plan.old = formats.get(plan.kind.open(plan.path), plan.kind.family, name)
    except Exception as error:  # each file fails alone, with its reason
        plan.outcome, plan.why = "failed", reason(error)
        return plan
    if plan.old == plan.new:  # before the stat check: a file this command tagged has a new mtime
        plan.outcome = "already"
    elif row["size"] is None or row["mtime_ns"] is None:
        plan.outcome = "failed"
        plan.why = "the results hold no size and mtime for it (an older batchgenre): classify the folder again"
    elif (plan.before.st_size, plan.before.st_mtime_ns) != (row["size"], row["mtime_ns"]):
        plan.outcome, plan.why = "failed", "changed since it was classified: classify it again"
    elif plan.old and any(v.strip() for v in plan.old) and not force:
        plan.outcome = "kept"
    return plan


def _apply(plans: list[_Plan], *, name: str, pool: ThreadPoolExecutor) -> None:
    batch = [rewrite.Change(p.path, kind=p.kind, field=name, values=p.new, before=p.before) for p in plans]
    rewrite.replace_fields(batch, pool=pool)
    for plan, change in zip(plans, batch, strict=True):
        if change.error is not None:  # each file fails alone; the journal's line for it restores nothing
            plan.outcome, plan.why = "failed", reason(change.error)


def _count(summary: TagSummary, plans: list[_Plan]) -> None:
    for plan in plans:
        if plan.outcome == "change":
            summary.changed += 1
            summary.lines.append(f"{display(plan.path)}: {shown(plan.old)} -> {shown(plan.new)}")
        elif plan.outcome == "failed":
            summary.failed += 1
            summary.lines.append(f"{display(plan.path)}: not tagged: {plan.why}")
        else:
            setattr(summary, plan.outcome, getattr(summary, plan.outcome) + 1)
