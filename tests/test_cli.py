"""The command line's own checks: usage errors in one line, and paths refused before anything heavy loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["featurize", "--wrkers", "2", "corpus/"],
            "batchgenre featurize: unknown option --wrkers (did you mean --workers?)",
        ),
        (
            ["featurize", "--worker", "2", "corpus/"],
            "batchgenre featurize: unknown option --worker (did you mean --workers?)",
        ),
        (
            ["classify-dir", "music/", "--ouput", "x.csv"],
            "batchgenre classify-dir: unknown option --ouput (did you mean --out?)",
        ),
        (["train", "c.toml", "--fold=3"], "batchgenre train: unknown option --fold (did you mean --folds?)"),
        (
            ["featurize", "corpus/", "--augment", "256"],
            "batchgenre featurize: argument --augment: must be at most 255, got 256",
        ),
        (["featurize"], "batchgenre featurize: the following arguments are required: folder"),
        (
            ["classify-dir", "music/", "--min-confidence", "1.5"],
            "batchgenre classify-dir: argument --min-confidence: must be a probability from 0 to 1, got 1.5",
        ),
        (["nosuch"], "batchgenre: argument COMMAND: invalid choice: 'nosuch'"),
    ],
)
def test_usage_errors_are_one_line_naming_the_option_and_the_command(tmp_path, args, says):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(says), result.stderr
    command = args[0] if args[0] != "nosuch" else "COMMAND"
    assert f"usage: batchgenre {'[options] ' if command == 'COMMAND' else command + ' [options] '}" in result.stderr


def test_options_after_a_double_dash_are_positional(tmp_path):
    result = run_cli("featurize", "--out", tmp_path / "f.zarr", "--", "--not-an-option", cwd=tmp_path)
    assert result.returncode == 2 and "--not-an-option: no such folder" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["classify", "nosuch.wav"], "nosuch.wav: no such file"),
        (["classify", "{audio}", "--model", "nosuch.keras"], "nosuch.keras: no model there"),
        # No trained model: the built-in classifies, and refuses a 1 s file, too short for musicnn.
        (["classify", "{audio}"], "no trained model at runs/three_genres/model.keras: classifying with the built-in"),
        (["classify", "{audio}"], "a.wav: too short for musicnn"),
        (["classify-dir", "nosuch/"], "nosuch: no such folder"),
        (["classify-dir", "{folder}", "--model", "nosuch.keras"], "nosuch.keras: no model there"),
    ],
)
def test_missing_paths_are_refused_before_tensorflow_loads(tmp_path, args, says):
    from tests import synth

    audio = synth.write(tmp_path / "music" / "a.wav", synth.tone(seconds=1))
    args = [a.format(audio=audio, folder=audio.parent) for a in args]
    code = (
        "import json, sys\n"
        "from batchgenre.cli import main\n"
        "status = main(json.loads(sys.argv[1]))\n"
        "print(json.dumps([status, 'tensorflow' in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, cwd=tmp_path
    )
    status, tensorflow_loaded = json.loads(result.stdout)
    assert status == 2 and says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not tensorflow_loaded


def test_plot_features_names_the_file_it_cannot_draw(tmp_path):
    result = run_cli("plot-features", "nosuch.wav", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == "batchgenre: nosuch.wav: no such file\n"
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 100)
    result = run_cli("plot-features", "junk.wav", cwd=tmp_path)
    assert (
        result.returncode == 2
        and result.stderr.startswith("batchgenre: junk.wav: ")
        and "Traceback" not in result.stderr
    )
