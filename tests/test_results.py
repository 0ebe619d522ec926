"""The results table on its own: one typed schema in CSV, JSON lines and Parquet, failed rows, resuming, CSV safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from batchgenre.classify.client import FileWindows, result_row
from batchgenre.errors import BatchgenreError
from batchgenre.store.results import LATER_COLUMNS, ResultsTable, columns, neutralise, read_results, restore

pandas = pytest.importorskip("pandas")

GENRES = ["drone", "techno"]
FORMATS = [".csv", ".jsonl", ".parquet"]


def classified(path: str, p_drone: float, *, windows: int = 1) -> dict:
    """The row classify makes for a file whose windows average to ``p_drone``."""
    probabilities = np.tile([p_drone, 1 - p_drone], (windows, 1))
    return result_row(
        FileWindows(path, np.zeros((windows, 4), np.float32), duration=30.0 * windows),
        GENRES,
        probabilities,
        min_confidence=0.0,
    )


def failed(path: str) -> dict:
    return result_row(
        FileWindows(path, None, error="not an audio file (decoder: Invalid data)"), GENRES, None, min_confidence=0.0
    )


def read_back(out: Path):
    """The results as pandas reads each format, with nothing but the file's own types to go on."""
    if out.suffix == ".csv":
        return pandas.read_csv(out)
    if out.suffix == ".jsonl":
        return pandas.read_json(out, lines=True)
    return pandas.read_parquet(out)


@pytest.mark.parametrize("suffix", FORMATS)
def test_failed_rows_are_typed_nulls_and_a_rerun_resumes(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    table = ResultsTable(out, genres=GENRES)
    table.add(classified("b.wav", 0.25, windows=2))
    table.add(failed("broken.mp3"))
    table.finish()

    frame = read_back(out)
    assert list(frame["path"]) == ["b.wav", "broken.mp3"]
    for column in ("confidence", "p_drone", "p_techno", "duration"):
        assert pandas.api.types.is_float_dtype(frame[column]), (column, frame[column].dtype)
    assert pandas.api.types.is_integer_dtype(frame["windows"])
    good, bad = frame.iloc[0], frame.iloc[1]
    assert (good["genre"], good["confidence"], good["p_drone"], good["windows"], good["duration"]) == (
        "techno",
        0.75,
        0.25,
        2,
        60.0,
    )
    assert bad[["confidence", "p_drone", "p_techno", "duration"]].isna().all()
    assert (bad["status"], bad["windows"]) == ("failed", 0) and bad["error"].startswith("not an audio file")

    again = ResultsTable(out, genres=GENRES)
    assert [p.tolist() for p in again.files()] == [["b.wav", "broken.mp3"], [True, False]]
    assert again.failures == {"broken.mp3": "not an audio file (decoder: Invalid data)"}
    again.add(classified("a.wav", 0.9))
    again.finish()
    frame = read_back(out)
    assert list(frame["path"]) == ["a.wav", "b.wav", "broken.mp3"] and frame["p_drone"].iloc[0] == 0.9


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_run_killed_before_finish_is_resumed_from_its_journal(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    table = ResultsTable(out, genres=GENRES)
    table.add(failed("x.ogg"))
    table.add(classified("y.wav", 0.6))
    table._file.close()  # the process dies here: no finish
    assert table.journal.exists()

    again = ResultsTable(out, genres=GENRES)
    assert (
        [p.tolist() for p in again.files()]
        == [p.tolist() for p in table.files()]
        == [["x.ogg", "y.wav"], [False, True]]
    )
    again.finish()
    assert list(read_back(out)["path"]) == ["x.ogg", "y.wav"]
    assert not Path(str(out) + ".partial.jsonl").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_rerun_with_nothing_new_leaves_a_finished_table_as_it_is_and_sorts_a_killed_one(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    table = ResultsTable(out, genres=GENRES)
    for row in (classified("b.wav", 0.6), failed("a.mp3")):
        table.add(row)
    table.finish()
    finished = out.stat()
    ResultsTable(out, genres=GENRES).finish()  # a rerun that found every file in the table
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (finished.st_ino, finished.st_mtime_ns)

    killed = ResultsTable(out, genres=GENRES)
    killed.add(classified("a.mp3", 0.2))  # a retried file, appended after the rest
    killed._file.close()  # the process dies here: the file holds b, a (failed), a (classified)
    ResultsTable(out, genres=GENRES).finish()
    frame = read_back(out)
    assert list(frame["path"]) == ["a.mp3", "b.wav"] and list(frame["status"]) == ["classified", "classified"]


def test_a_journal_with_empty_strings_for_numbers_finishes_as_parquet(tmp_path):
    """The state every rerun used to crash on: failed rows written with "" in the number columns."""
    out = tmp_path / "results.parquet"
    old = {
        "path": "bad.mp3",
        "genre": "",
        "confidence": "",
        "p_drone": "",
        "p_techno": "",
        "windows": 0,
        "duration": "",
        "status": "failed",
        "error": "not an audio file",
    }
    Path(str(out) + ".partial.jsonl").write_text(json.dumps(old) + "\n")
    table = ResultsTable(out, genres=GENRES)
    table.add(classified("good.wav", 0.3))
    table.finish()
    frame = pandas.read_parquet(out)
    assert frame["confidence"].isna().tolist() == [True, False] and frame["confidence"].dtype == "float64"


@pytest.mark.parametrize("suffix", FORMATS)
def test_results_of_another_model_are_refused_in_one_line(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    first = ResultsTable(out, genres=GENRES)
    first.add(classified("a.wav", 0.5))
    first.finish()
    with pytest.raises(BatchgenreError) as caught:
        ResultsTable(out, genres=["rock", "jazz", "pop"])
    assert str(caught.value).startswith(f"{out} holds results with other columns") and "\n" not in str(caught.value)


def test_a_number_column_that_holds_text_is_named(tmp_path):
    out = tmp_path / "results.csv"
    out.write_text(
        "path,genre,confidence,p_drone,p_techno,windows,duration,status,error\na.wav,drone,high,,,1,,classified,\n"
    )
    with pytest.raises(BatchgenreError, match=r"results.csv: confidence of 'a.wav' must be a number, got 'high'"):
        ResultsTable(out, genres=GENRES)


NAMES = [
    "plain.wav",
    "=x.wav",
    "'=x.wav",
    "''=x.wav",
    "'tis.wav",
    "'",
    "''",
    "",
    "-1.wav",
    "'-1.wav",
    "@a",
    "\tt",
    "a'=b",
    "'a=b",
]


@pytest.mark.parametrize("name", NAMES)
def test_neutralise_and_restore_are_exact_inverses(name):
    cell = neutralise(name)
    assert restore(cell) == name
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_neutralised_cells_are_all_different():
    assert len({neutralise(name) for name in NAMES}) == len(NAMES)


def test_csv_gives_back_names_that_start_with_an_apostrophe_and_a_formula_character(tmp_path):
    out = tmp_path / "results.csv"
    table = ResultsTable(out, genres=GENRES)
    for name in ("'=x.wav", "=x.wav", "'tis.wav", "-minus.mp3", 'comma, "quotes".wav'):
        table.add(classified(name, 0.5))
    table.finish()
    assert set(ResultsTable(out, genres=GENRES).files()[0].tolist()) == {
        "'=x.wav",
        "=x.wav",
        "'tis.wav",
        "-minus.mp3",
        'comma, "quotes".wav',
    }
    cells = set(pandas.read_csv(out)["path"])
    assert {"''=x.wav", "'=x.wav", "'tis.wav", "'-minus.mp3"} <= cells


@pytest.mark.parametrize(
    "p_drone, min_confidence, genre",
    [(0.57, 0.6, "unknown"), (0.61, 0.6, "drone"), (0.2, 0.6, "techno"), (0.5, 0.0, "drone")],
)
def test_below_min_confidence_a_file_is_unknown_and_keeps_its_probabilities(p_drone, min_confidence, genre):
    probabilities = np.array(
        [[p_drone - 0.1, 1.1 - p_drone], [p_drone + 0.1, 0.9 - p_drone]]
    )  # windows average to p_drone
    row = result_row(
        FileWindows("a.wav", np.zeros((2, 4), np.float32), duration=60.0),
        GENRES,
        probabilities,
        min_confidence=min_confidence,
    )
    assert row["genre"] == genre and row["status"] == "classified"
    assert row["p_drone"] == pytest.approx(p_drone) and row["confidence"] == pytest.approx(max(p_drone, 1 - p_drone))


def test_a_table_from_before_the_novelty_and_stat_columns_resumes_and_gains_them(tmp_path):
    out = tmp_path / "results.csv"
    older = [c for c in columns(GENRES) if c not in LATER_COLUMNS]
    assert older == ["path", "genre", "confidence", "p_drone", "p_techno", "windows", "duration", "status", "error"]
    out.write_text(",".join(older) + "\nold.wav,drone,0.9,0.9,0.1,1,30.0,classified,\n")
    table = ResultsTable(out, genres=GENRES)
    table.add({**classified("new.wav", 0.8), "size": 10, "mtime_ns": 7})
    table.finish()
    rows = read_results(out).rows
    assert [(r["path"], r["size"], r["mtime_ns"]) for r in rows] == [("new.wav", 10, 7), ("old.wav", None, None)]
    assert rows[1]["novelty"] is None and out.read_text().splitlines()[0] == ",".join(columns(GENRES))


def test_rows_that_span_lines_are_copied_whole_when_a_killed_run_is_sorted(tmp_path):
    out = tmp_path / "results.csv"
    table = ResultsTable(out, genres=GENRES)
    reason = 'bad header, "RIFF"\nsecond line of the reason'
    table.add(classified("z, with a comma.wav", 0.3))
    table.add({**failed("m.wav"), "error": reason})
    table.add({**failed('a "quoted"\nname.wav'), "error": reason})
    table._file.close()  # the process dies here: no finish
    again = ResultsTable(out, genres=GENRES)
    assert again.failures == {"m.wav": reason, 'a "quoted"\nname.wav': reason}
    again.add(classified("m.wav", 0.9))  # retried: its latest row wins
    again.finish()
    rows = read_results(out).rows
    assert [(r["path"], r["status"], r["error"]) for r in rows] == [
        ('a "quoted"\nname.wav', "failed", reason),
        ("m.wav", "classified", ""),
        ("z, with a comma.wav", "classified", ""),
    ]


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_table_holds_tens_of_bytes_a_file_not_its_rows(tmp_path, suffix):
    import tracemalloc

    out, n = tmp_path / f"results{suffix}", 20_000
    table = ResultsTable(out, genres=GENRES)
    row = classified("x", 0.3)
    for i in range(n):
        table.add({**row, "path": f"album{i // 100:03d}/track {i:05d}.wav"})
    table.finish()
    tracemalloc.start()
    try:
        again = ResultsTable(out, genres=GENRES)
        paths, classified_ = again.files()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(paths) == n and classified_.all()
    # A row as a dict of its 13 cells took about 1.5 KB; the index keeps a path (about 40 bytes) and 17 more.
    assert held / n < 150, f"{held / n:.0f} bytes a file"
