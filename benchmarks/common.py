"""What every benchmark shares: the corpus it runs on, medians over repeats, one-line results."""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

GTZAN_ENV = "BATCHGENRE_GTZAN"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--corpus", type=Path, default=os.environ.get(GTZAN_ENV), help=f"GTZAN-layout folder (default ${GTZAN_ENV})"
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians are reported")
    return p


def add_cache_option(p: argparse.ArgumentParser, *, what: str) -> None:
    """``--cache``: the folder where a benchmark keeps ``what`` between runs (under $XDG_CACHE_HOME or ~/.cache)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "batchgenre-benchmarks")
    p.add_argument("--cache", type=Path, default=default, help=f"where {what} are kept between runs")


def quiet_logging() -> None:
    """Warnings, and errors of distributed only.

    distributed sets its loggers up when first imported, so first import it.
    """
    import distributed  # noqa: F401

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)


def corpus_files(corpus: Path | None, *, limit: int | None = None) -> list[Path]:
    if corpus is None:
        raise SystemExit(
            f"give --corpus or set {GTZAN_ENV} to a folder of audio clips (e.g. ../shared/data/gtzan-mini)"
        )
    files = sorted(p for p in Path(corpus).rglob("*") if p.suffix.lower() in {".wav", ".mp3", ".flac", ".ogg", ".au"})
    return files[:limit] if limit else files


def median_wall_and_cpu(run: Callable[[], object], *, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``run`` over ``repeats`` calls: CPU says more on a shared machine."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def median_seconds(run: Callable[[], object], *, repeats: int) -> float:
    """Median wall time of ``run`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
