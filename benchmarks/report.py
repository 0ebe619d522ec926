"""The HTML report at 10^3 and 10^5 files: its size, the time to write it, and Chromium's time to show it.

    python -m benchmarks.report                         # 10^3 and 10^5 rows, 3 loads each
    python -m benchmarks.report --rows 1000 --loads 1   # a quick look

The results tables are synthetic, nothing classified: ten genres, each file's probabilities drawn
from a seeded Dirichlet leaning towards one genre (about 10% fall below 0.7: unknown), 1% failed, durations of
2-7 minutes, in ``artist/album/NN title.mp3`` paths. Load time is from navigation start to every
plot's canvas drawn, in headless Chromium through the DevTools protocol (tests/browser.py), on a
fresh page each load; the median of ``--loads`` is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def synthetic_results(path: Path, *, rows: int, seed: int = 0, root: str = "/music") -> Path:
    """Write a classify-dir results table of ``rows`` made-up files (and its meta file) to ``path``, a .csv."""
    from batchgenre.store.results import ResultsTable, write_meta

    rng = np.random.default_rng(seed)
    lean = rng.integers(len(GENRES), size=rows)
    alpha = np.full((rows, len(GENRES)), 0.3)
    alpha[np.arange(rows), lean] = rng.uniform(4, 40, size=rows)
    draws = rng.gamma(alpha)  # a Dirichlet draw per row, normalised below
    probabilities = draws / draws.sum(axis=1, keepdims=True)
    failed = rng.random(rows) < 0.01
    path.unlink(missing_ok=True)
    table = ResultsTable(path, genres=GENRES)
    for i in range(rows):
        name = f"artist {i // 100:04d}/album {i // 10 % 10}/{i % 10:02d} song {i}.mp3"
        if failed[i]:
            table.add({"path": name, "status": "failed", "error": "not audio: no codec could read it", "windows": 0})
            continue
        p = probabilities[i]
        best = int(p.argmax())
        table.add(
            {
                "path": name,
                "genre": GENRES[best] if p[best] >= 0.7 else "unknown",
                "confidence": float(p[best]),
                **{f"p_{g}": float(v) for g, v in zip(GENRES, p, strict=True)},
                "windows": 5,
                "duration": float(rng.uniform(120, 420)),
                "status": "classified",
                "error": "",
                "size": 5_000_000,
                "mtime_ns": 0,
            }
        )
    table.finish()
    write_meta(path, {"root": root, "model": "synthetic", "genres": GENRES})
    return path


def main() -> None:
    import batchgenre
    from tests.browser import Chromium

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--loads", type=int, default=3)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as tmp, Chromium(Path(tmp) / "profile") as browser:
        for rows in args.rows:
            results = synthetic_results(Path(tmp) / f"results-{rows}.csv", rows=rows)
            start = time.perf_counter()
            report = batchgenre.report(results, out=Path(tmp) / f"report-{rows}.html")
            written = time.perf_counter() - start
            loads = []
            for _ in range(args.loads):
                page = browser.load(report.out, plots=report.plots)
                if page.errors or page.requests:
                    raise SystemExit(f"{rows} rows: errors {page.errors}, requests {page.requests}")
                loads.append(page.rendered_ms / 1000)
            figures.append(
                {
                    "rows": rows,
                    "bytes": report.out.stat().st_size,
                    "write_s": round(written, 2),
                    "load_s": round(statistics.median(loads), 2),
                    "loads_s": [round(x, 2) for x in loads],
                    "map_points": report.map_points,
                }
            )
            print(json.dumps(figures[-1]), flush=True)


if __name__ == "__main__":
    main()
