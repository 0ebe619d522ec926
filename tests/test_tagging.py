"""`batchgenre tag`: pretend, write, keep, force, another field, undo, bad files, and a kill mid-run, on real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mutagen
import numpy as np
import pytest

import batchgenre
from batchgenre.store.results import read_results
from tests import test_classify
from tests.conftest import run_cli
from tests.tag_files import other_tags, payload, samples, write_results, write_tagged

FORMATS = ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]
model = test_classify.model  # the model `batchgenre train` makes for classify's tests, a session fixture
GENRE_KEYS = {"TCON", "GENRE", "genre", "\xa9gen"}  # how mutagen's dict views name the genre field
CUSTOM_KEYS = {"TXXX:BATCHGENRE_GENRE", "batchgenre_genre", "BATCHGENRE_GENRE", "----:com.batchgenre:genre"}


def genre_of(path: Path, key: str = "genre") -> list[str] | None:
    from batchgenre.library import formats

    kind = formats.kind_of(str(path))
    return formats.get(kind.open(str(path)), kind.family, key)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.iterdir())}


@pytest.fixture
def library(tmp_path) -> tuple[Path, Path, dict[str, dict]]:
    """One file per format without a genre, one per format with two genres of its own; their results table."""
    root = tmp_path / "music"
    facts = {}
    for i, ext in enumerate(FORMATS):
        for mine in (None, ["Jazz", "Bebop"]):
            path = write_tagged(root / f"{'own' if mine else 'bare'} {i}.{ext}", seed=i, genre=mine)
            facts[path.name] = {
                "payload": payload(path),
                "samples": samples(path),
                "tags": other_tags(path, skip=set()),
                "mode": path.stat().st_mode,
            }
    results = write_results(tmp_path / "results.csv", root, {name: {} for name in facts})
    return root, results, facts


def assert_audio_and_other_tags_unchanged(root: Path, facts: dict[str, dict], *, skip: set[str]) -> None:
    for name, fact in facts.items():
        path = root / name
        assert payload(path) == fact["payload"], name
        assert np.array_equal(samples(path), fact["samples"]), name
        before = {k: v for k, v in fact["tags"].items() if k not in skip}
        assert other_tags(path, skip=skip) == before, name
        assert path.stat().st_mode == fact["mode"], name


def test_pretend_touches_nothing_and_prints_each_change(library):
    root, results, facts = library
    os.chmod(root / "bare 0.mp3", 0o640)
    before = snapshot(root)
    shown = run_cli("tag", results)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sorted(lines[: len(FORMATS)]) == sorted(
        f"{root / f'bare {i}.{e}'}: (none) -> rock" for i, e in enumerate(FORMATS)
    )
    assert f"{len(FORMATS)} would change, {len(FORMATS)} kept their own genre" in lines[len(FORMATS)]
    assert snapshot(root) == before
    assert not Path(f"{results}.tag-journal.jsonl").exists()


def test_write_changes_only_the_genre_and_undo_puts_every_value_back(library):
    root, results, facts = library
    (root / "bare 0.mp3").chmod(0o640)
    facts["bare 0.mp3"]["mode"] = (root / "bare 0.mp3").stat().st_mode
    written = run_cli("tag", results, "--write")
    assert written.returncode == 0, written.stderr
    assert f"{len(FORMATS)} changed" in written.stdout and f"{len(FORMATS)} kept" in written.stdout
    for name in facts:
        assert genre_of(root / name) == (["Jazz", "Bebop"] if name.startswith("own") else ["rock"]), name
    assert_audio_and_other_tags_unchanged(root, facts, skip=GENRE_KEYS)
    journal = Path(f"{results}.tag-journal.jsonl")
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in entries) == sorted(n for n in facts if n.startswith("bare"))
    assert all(e["old"] is None and e["new"] == ["rock"] and e["field"] == "genre" for e in entries)

    inodes = {p.name: p.stat().st_ino for p in root.iterdir()}
    again = run_cli("tag", results, "--write")  # nothing left to do, nothing journaled twice, nothing copied
    assert {p.name: p.stat().st_ino for p in root.iterdir()} == inodes
    assert again.returncode == 0 and f"0 changed, {len(FORMATS)} kept" in again.stdout, again.stdout
    assert f"{len(FORMATS)} already tagged" in again.stdout
    forced = run_cli("tag", results, "--write", "--force")
    assert forced.returncode == 0 and f"{len(FORMATS)} changed" in forced.stdout, forced.stdout
    assert all(genre_of(root / name) == ["rock"] for name in facts)
    assert_audio_and_other_tags_unchanged(root, facts, skip=GENRE_KEYS)
    assert len(journal.read_text().splitlines()) == 2 * len(FORMATS)

    for _ in range(2):  # undo, then undo again: the second finds everything as it was
        undone = run_cli("tag", "--undo", journal)
        assert undone.returncode == 0, undone.stdout + undone.stderr
    assert f"0 restored, {2 * len(FORMATS)} already as they were" in undone.stdout
    assert_audio_and_other_tags_unchanged(root, facts, skip=set())  # genres too: absent again, or both values
    assert all(genre_of(root / n) is None for n in facts if n.startswith("bare"))


def test_another_field_leaves_the_users_genre_alone(library):
    root, results, facts = library
    written = batchgenre.tag(results, write=True, field="BATCHGENRE_GENRE")
    assert written.changed == 2 * len(FORMATS) and written.kept == 0, written.lines
    for name in facts:
        assert genre_of(root / name, "BATCHGENRE_GENRE") == ["rock"], name
    mp4 = mutagen.File(root / f"own {FORMATS.index('m4a')}.m4a").tags
    assert bytes(mp4["----:com.batchgenre:genre"][0]) == b"rock"
    assert "TXXX:BATCHGENRE_GENRE" in mutagen.File(root / "own 0.mp3").tags
    assert_audio_and_other_tags_unchanged(root, facts, skip=CUSTOM_KEYS)
    undone = batchgenre.undo_tags(written.journal)
    assert undone.restored == 2 * len(FORMATS) and not undone.lines
    assert_audio_and_other_tags_unchanged(root, facts, skip=set())


def test_rows_without_a_genre_are_skipped_and_bad_files_each_get_a_line(tmp_path):
    root = tmp_path / "music"
    for name in ("good.flac", "unknown.flac", "failed.flac", "unsure.flac", "changed.flac", "old.flac", "gone.mp3"):
        write_tagged(root / name)
    (root / "garbage.mp3").write_bytes(np.random.default_rng(1).bytes(5000))
    (root / "link.flac").symlink_to(write_tagged(tmp_path / "elsewhere" / "real.flac"))
    odd = os.path.join(os.fsencode(root), b"caf\xe9.flac")  # a Latin-1 name, not UTF-8
    os.rename(write_tagged(root / "cafe.flac"), odd)  # libsndfile cannot open such a name itself
    rows = {
        "good.flac": {},
        "unknown.flac": {"genre": "unknown"},
        "failed.flac": {"status": "failed", "genre": "", "error": "boom"},
        "unsure.flac": {"confidence": 0.4},
        "changed.flac": {},
        "old.flac": {"size": None, "mtime_ns": None},
        "gone.mp3": {},
        "garbage.mp3": {},
        "link.flac": {},
        os.fsdecode(b"caf\xe9.flac"): {},
    }
    results = write_results(tmp_path / "results.jsonl", root, rows)
    (root / "gone.mp3").unlink()
    os.utime(root / "changed.flac", ns=(1, 1))
    before = {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.iterdir() if p.name[:4] not in ("caf\udce9", "link")
    }

    tagged = run_cli("tag", results, "--write", "--min-confidence", "0.5")
    assert tagged.returncode == 3, tagged.stderr
    lines = tagged.stdout.splitlines()
    assert lines[-1].startswith("3 changed") and "3 not named a genre, 4 could not be tagged" in lines[-1], lines
    reasons = {line.partition(": ")[0].rpartition("/")[2]: line.partition(": ")[2] for line in lines[:-1]}
    assert reasons["changed.flac"] == "not tagged: changed since it was classified: classify it again"
    assert "older batchgenre" in reasons["old.flac"]
    assert "no such file" in reasons["gone.mp3"]
    assert "mutagen cannot read" in reasons["garbage.mp3"]
    assert reasons["caf\\udce9.flac"] == "(none) -> rock" and reasons["good.flac"] == "(none) -> rock"
    assert genre_of(Path(os.fsdecode(odd))) == ["rock"] and genre_of(root / "good.flac") == ["rock"]
    assert (root / "link.flac").is_symlink() and genre_of(tmp_path / "elsewhere" / "real.flac") == ["rock"]
    for path, (data, mtime) in before.items():
        if path.name != "good.flac":
            assert (path.read_bytes(), path.stat().st_mtime_ns) == (data, mtime), path
    undone = run_cli("tag", "--undo", f"{results}.tag-journal.jsonl")
    assert undone.returncode == 0 and undone.stdout.startswith("3 restored"), undone.stdout
    assert genre_of(Path(os.fsdecode(odd))) is None


def test_a_read_only_folder_gets_a_line_and_nothing_else_changes(tmp_path):
    root = tmp_path / "music"
    write_tagged(root / "locked" / "a.flac")
    write_tagged(root / "open" / "b.flac")
    results = write_results(tmp_path / "results.csv", root, {"locked/a.flac": {}, "open/b.flac": {}})
    (root / "locked").chmod(0o555)
    try:
        try:
            (root / "locked" / "probe").touch()
        except PermissionError:
            pass
        else:
            (root / "locked" / "probe").unlink()
            pytest.skip("this user (root) writes into read-only folders; the permission check cannot be seen here")
        before = (root / "locked" / "a.flac").read_bytes()
        tagged = run_cli("tag", results, "--write")
        assert tagged.returncode == 3
        assert "a.flac: not tagged: permission denied" in tagged.stdout
        assert (root / "locked" / "a.flac").read_bytes() == before
        assert genre_of(root / "open" / "b.flac") == ["rock"]
    finally:
        (root / "locked").chmod(0o755)


def test_a_kill_mid_write_leaves_each_file_whole_and_a_rerun_finishes(tmp_path):
    """SIGKILL once the journal has a line; every file is then the original or the tagged one, never half."""
    pristine = tmp_path / "pristine"
    sources = [write_tagged(pristine / f"x.{ext}", seconds=2.0, seed=3) for ext in ("mp3", "flac")]
    root = tmp_path / "music"
    rows = {}
    for k in range(1500):  # hard links: each file is replaced by a new inode, so the pristine copy stays as it was
        source = sources[k % 2]
        rel = f"{k % 7}/{k:04d}{source.suffix}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(source, root / rel)
        rows[rel] = {}
    results = write_results(tmp_path / "results.csv", root, rows)
    journal = Path(f"{results}.tag-journal.jsonl")
    originals = {p.suffix: (p.read_bytes(), payload(p), samples(p), other_tags(p, skip=GENRE_KEYS)) for p in sources}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgenre.cli", "tag", str(results), "--write"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        while not (journal.exists() and journal.stat().st_size > 0) and proc.poll() is None:
            pass  # waiting on the event itself: the first durable journal line
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill: make the corpus larger"

    tagged = 0
    for rel in rows:
        data, audio, decoded, others = originals[Path(rel).suffix]
        path = root / rel
        if path.read_bytes() != data:
            assert genre_of(path) == ["rock"] and payload(path) == audio, rel
            assert np.array_equal(samples(path), decoded) and other_tags(path, skip=GENRE_KEYS) == others, rel
            tagged += 1
    assert tagged < len(rows)
    journaled = {e["path"] for e in map(json.loads, journal.read_text().splitlines())}  # whole lines: fsynced first
    assert {str(root / rel) for rel in rows if (root / rel).read_bytes() != originals[Path(rel).suffix][0]} <= journaled

    rerun = run_cli("tag", results, "--write")
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr
    assert f"{len(rows) - tagged} changed" in rerun.stdout and f"{tagged} already tagged" in rerun.stdout
    assert not [p for p in root.rglob(".*") if p.is_file()], "a killed run's temporary copies are left"
    assert all(genre_of(root / rel) == ["rock"] for rel in rows)

    undone = run_cli("tag", "--undo", journal)
    assert undone.returncode == 0 and undone.stdout.startswith(f"{len(rows)} restored"), undone.stdout[-2000:]
    for rel in rows:
        data, audio, decoded, others = originals[Path(rel).suffix]
        path = root / rel
        assert genre_of(path) is None and payload(path) == audio and other_tags(path, skip=set()) == others, rel
    assert all(p.read_bytes() == originals[p.suffix][0] for p in sources)  # the links' other names untouched


def test_a_batch_writes_every_file_but_those_changed_meanwhile_or_unreadable(tmp_path):
    """rewrite's batch: a file changed after its stat was read, and one mutagen cannot save, fail alone."""
    from concurrent.futures import ThreadPoolExecutor

    from batchgenre.library import formats, rewrite

    paths = [write_tagged(tmp_path / f"{k}.{ext}", seed=k) for k, ext in enumerate(["mp3", "flac"] * 4)]
    changes = [
        rewrite.Change(str(p), kind=formats.kind_of(str(p)), field="genre", values=["rock"], before=p.stat())
        for p in paths
    ]
    os.utime(paths[1], ns=(1, 1))  # someone touched it after its old values were read
    paths[2].write_bytes(b"not a flac")  # and another was overwritten with garbage
    changes[2].before = paths[2].stat()
    kept = {k: (paths[k].read_bytes(), paths[k].stat().st_mtime_ns) for k in (1, 2)}
    with ThreadPoolExecutor(4) as pool:
        rewrite.replace_fields(changes, pool=pool)
    assert str(changes[1].error) == "changed while being tagged; left as it is now"
    assert changes[2].error is not None and "mutagen" in type(changes[2].error).__module__
    for k, path in enumerate(paths):
        if k in kept:
            assert (path.read_bytes(), path.stat().st_mtime_ns) == kept[k], path
        else:
            assert changes[k].error is None and genre_of(path) == ["rock"], path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths), "a copy was left behind"


@pytest.mark.slow
def test_tags_the_results_of_a_real_classify_dir(tmp_path, model):
    """The whole way: classify-dir writes results (stats, root), tag writes their genres, undo takes them back."""
    from batchgenre.demo import GENRES, synthesize
    from tests import synth

    root = tmp_path / "music"
    for g, genre in enumerate(GENRES):
        for ext in ("mp3", "flac", "m4a"):
            synth.write(root / f"{genre}.{ext}", synthesize(genre, seconds=8, seed=[4, g]))
    before = {p.name: (payload(p), p.read_bytes()) for p in root.iterdir()}
    out = tmp_path / "results.csv"
    classified = run_cli("classify-dir", root, "--model", model, "--out", out, "--workers", "1")
    assert classified.returncode == 0, classified.stderr
    rows = {r["path"]: r for r in read_results(out).rows}
    named = {p: r["genre"] for p, r in rows.items() if r["genre"] != "unknown"}
    assert named, "the model named no genre at all"

    other = tmp_path / "moved"
    root.rename(other)  # the recorded root is gone: --root says where the files are now
    tagged = run_cli("tag", out, "--write", "--root", other)
    assert tagged.returncode == 0, tagged.stdout + tagged.stderr
    assert tagged.stdout.splitlines()[-1].startswith(f"{len(named)} changed")
    for name, (audio, _) in before.items():
        assert genre_of(other / name) == ([named[name]] if name in named else None), name
        assert payload(other / name) == audio, name
    undone = run_cli("tag", "--undo", f"{out}.tag-journal.jsonl")
    assert undone.returncode == 0 and undone.stdout.startswith(f"{len(named)} restored"), undone.stdout
    assert all(genre_of(other / name) is None for name in before)
