"""The package's floor plan: which folder may import which, no import circle, and TensorFlow only in training/."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import batchgenre

PACKAGE = Path(batchgenre.__file__).parent
# Each folder and what it may import of batchgenre, lazily or not; the top-level modules (the public
# API, cli, demo, errors) may import anything. errors.py is everyone's.
ALLOWED = {
    "audio": {"errors"},
    "features": {"errors", "audio"},
    "store": {"errors", "audio", "features"},
    "cluster": {"errors", "audio", "features", "store"},
    "classify": {"errors", "audio", "features", "store", "cluster"},
    "library": {"errors", "audio", "features", "store", "cluster", "classify"},
    "training": {"errors", "audio", "features", "store", "cluster", "classify"},
}
TENSORFLOW = {"tensorflow", "keras"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports anywhere in it (at the top or inside a function), as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def internal_graph() -> dict[str, set[str]]:
    names = modules()
    return {name: {m for m in imports_of(path, name) if m in names and m != name} for name, path in names.items()}


def folder(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ALLOWED or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_each_folder_imports_only_the_folders_below_it():
    wrong = []
    for name, targets in internal_graph().items():
        here = folder(name)
        if here is None:
            continue
        for target in targets:
            there = folder(target) or target.partition(".")[2] or "batchgenre"
            if there != here and there not in ALLOWED[here] and there != "batchgenre":
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_tensorflow_and_keras_are_imported_only_in_training():
    wrong = [
        f"{name} imports {m}"
        for name, path in modules().items()
        if folder(name) != "training"
        for m in imports_of(path, name)
        if m.split(".")[0] in TENSORFLOW
    ]
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_circle():
    graph = internal_graph()
    # A package imports its own submodules to re-export them; that edge and its reverse are one room.
    edges = {a: {b for b in targets if not b.startswith(a + ".")} for a, targets in graph.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                circles.append(
                    " -> ".join(path[path.index(nxt) :] + [node, nxt]) if nxt in path else f"{node} -> {nxt}"
                )
            elif nxt not in seen:
                visit(nxt, path + [node])
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node, [])
    assert not circles, "\n".join(circles)


def test_no_module_is_over_450_lines():
    long = {
        name: n for name, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert not long, long


def test_importing_every_module_outside_training_loads_no_tensorflow():
    skip = ("batchgenre.demo", "batchgenre.cli.__main__")  # the demo trains; __main__ runs the command line
    outside = [n for n in modules() if folder(n) != "training" and n not in skip]
    code = (
        "import importlib, json, sys\n"
        f"for name in {outside!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(TENSORFLOW)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_importing_the_package_loads_nothing_heavy():
    code = "import json, sys, batchgenre; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert not loaded & (TENSORFLOW | {"librosa", "numba", "zarr", "distributed", "dask", "numpy", "pandas"}), loaded
