"""How cost grows with the corpus: featurize and classify-dir on 10^3 to 10^6 hard links of one short real clip.

    python -m benchmarks.growth --model runs/three_genres/model.keras --sizes 1000 10000 100000
    python -m benchmarks.growth --model ... --sizes 1000000 --folder /big/disk/growth   # keeps the links

For each size, in a fresh process per command (so that peak memory is that command's alone):
files per second with the fixed start-up apart, the client's planning time, CPU time and peak
memory, the scheduler's task count, the store's size and object (file) count, and a rerun's wall
time, CPU time and peak memory through the real CLI when nothing is left to do. Links live in
folders of 1,000, as an album-per-folder library would. With ``--folder`` the links are made there
once and kept for the next run (10^6 links take 10^6 inodes: ``df -i``); stores and tables are
always made afresh.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from benchmarks.common import corpus_files, machine, parser, quiet_logging

LINKS_PER_FOLDER = 1000
LINKS_PER_COPY = 50_000


def linked_corpus(clip: Path, n: int, folder: Path) -> Path:
    """``n`` hard links of ``clip`` under ``folder``/dNNNN/, 1,000 to a folder; kept from an earlier run when complete.

    ext4 allows a file 65,000 links, so every 50,000 links are made to a fresh copy of the clip.
    """
    complete = folder.with_name(folder.name + ".complete")
    if complete.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(n):
        if i % LINKS_PER_COPY == 0:
            source = folder.with_name(f"{folder.name}-clip{i // LINKS_PER_COPY}.wav")  # beside the corpus, not in it
            shutil.copyfile(clip, source)
        target = folder / f"d{i // LINKS_PER_FOLDER:04d}" / f"f{i:07d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    complete.touch()
    return folder


def short_clip(corpus: Path, seconds: float, folder: Path) -> Path:
    """The first ``seconds`` of the corpus's first clip, as a WAV file in ``folder``."""
    source = corpus_files(corpus)[0]
    with sf.SoundFile(source) as f:
        y = f.read(int(seconds * f.samplerate), dtype="float32")
        rate = f.samplerate
    path = folder / "clip.wav"
    sf.write(path, y, rate)
    return path


class _Timeline(logging.Handler):
    """When each batchgenre log line was written: (seconds since ``started``, message)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = time.perf_counter()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.perf_counter() - self.started, record.getMessage()))

    def first(self, prefix: str) -> float:
        return next(t for t, message in self.lines if message.startswith(prefix))


def _timeline() -> _Timeline:
    quiet_logging()
    timeline = _Timeline()
    logger = logging.getLogger("batchgenre")
    logger.setLevel(logging.INFO)
    logger.addHandler(timeline)
    return timeline


def measure_featurize(root: Path, store: Path) -> dict:
    """One featurize run on a fresh store: start-up, planning, run, tasks, client peak."""
    from distributed import get_task_stream

    from batchgenre.cluster import sandbox
    from batchgenre.cluster.connection import connect
    from batchgenre.cluster.featurize import featurize

    timeline = _timeline()
    with connect(workers=2) as client:
        client.run(sandbox.start)
        start_up = time.perf_counter() - timeline.started
        with get_task_stream(client) as stream:
            began, cpu = time.perf_counter(), time.process_time()
            summary = featurize(root, out=str(store), client=client)
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    planned = timeline.first("featurizing") - (began - timeline.started)
    chunks = sum(len(files) for _, _, files in os.walk(store))
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    return {
        "files": summary.done + len(summary.failed),
        "start_up_s": start_up,
        "plan_s": planned,
        "run_s": wall - planned,
        "client_cpu_s": cpu,
        "tasks": len(stream.data),
        "store_mib": size / 2**20,
        "store_files": chunks,
        "client_peak_mib": _peak_mib(),
    }


def measure_classify(root: Path, model: Path, out: Path) -> dict:
    """One classify-dir run into a fresh table, measured as featurize is: start-up (the cluster and its
    helpers), planning (the model, the walk, the table), then the run."""
    from batchgenre.classify.client import classify_dir
    from batchgenre.cluster import sandbox
    from batchgenre.cluster.connection import connect

    timeline = _timeline()
    with connect(workers=2) as client:
        client.run(sandbox.start)
        start_up = time.perf_counter() - timeline.started
        began, cpu = time.perf_counter(), time.process_time()
        summary = classify_dir(root, model_path=model, out=out, workers=2, scheduler=client.scheduler.address)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    planned = timeline.first("classifying") - (began - timeline.started)
    return {
        "files": summary.classified + len(summary.failed),
        "start_up_s": start_up,
        "plan_s": planned,
        "run_s": wall - planned,
        "client_cpu_s": cpu,
        "results_mib": out.stat().st_size / 2**20,
        "client_peak_mib": _peak_mib(),
    }


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rerun(args: list[str]) -> tuple[float, float, float]:
    """Wall time, CPU time and peak MiB of the real CLI, as a user types it, on work already done."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        cli = subprocess.Popen([sys.executable, "-m", "batchgenre.cli", *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(cli.pid, 0)  # this child's own resource use, not all children's
        elapsed = time.perf_counter() - started
        err.seek(0)
        stderr = err.read()
    if os.waitstatus_to_exitcode(status) != 0 or "Dask cluster" in stderr:
        raise SystemExit(f"rerun of {args} did not find its work done:\n{stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _in_child(step: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.growth", "--step", step, *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--model",
        type=Path,
        help="a trained model (robust set) for classify-dir; without it only featurize is measured",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--clip-seconds", type=float, default=1.0)
    p.add_argument("--folder", type=Path, help="where the links are made and kept (default: a temporary folder)")
    p.add_argument("--step", choices=["featurize", "classify"], help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step == "featurize":
        print(json.dumps(measure_featurize(*args.paths)))
        return
    if args.step == "classify":
        print(json.dumps(measure_classify(*args.paths)))
        return
    print(f"# {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(
        f"{'command':<12} {'files':>7} {'start s':>8} {'plan s':>7} {'files/s':>8} {'tasks':>6} {'client MiB':>10} "
        f"{'CPU s':>7} {'store MiB':>9} {'store files':>11} {'rerun s':>8} {'CPU s':>6} {'MiB':>5} {'load':>5}"
    )
    with tempfile.TemporaryDirectory(prefix="batchgenre-growth-") as tmp:
        links = args.folder or Path(tmp)
        links.mkdir(parents=True, exist_ok=True)
        clip = short_clip(args.corpus, args.clip_seconds, links)
        for n in args.sizes:
            root = linked_corpus(clip, n, links / f"corpus{n}")
            store, table = Path(tmp) / f"f{n}.zarr", Path(tmp) / f"r{n}.csv"
            f = _in_child("featurize", str(root), str(store))
            again = rerun(["featurize", str(root), "--out", str(store)])
            print(
                f"{'featurize':<12} {f['files']:>7} {f['start_up_s']:8.2f} {f['plan_s']:7.2f} "
                f"{f['files'] / f['run_s']:8.1f} {f['tasks']:>6} {f['client_peak_mib']:10.0f} "
                f"{f['client_cpu_s']:7.1f} {f['store_mib']:9.2f} {f['store_files']:>11} "
                f"{again[0]:8.2f} {again[1]:6.2f} {again[2]:5.0f} {os.getloadavg()[0]:5.1f}",
                flush=True,
            )
            shutil.rmtree(store)
            if args.model is not None:
                c = _in_child("classify", str(root), str(args.model), str(table))
                again = rerun(["classify-dir", str(root), "--model", str(args.model), "--out", str(table)])
                print(
                    f"{'classify-dir':<12} {c['files']:>7} {c['start_up_s']:8.2f} {c['plan_s']:7.2f} "
                    f"{c['files'] / c['run_s']:8.1f} {'':>6} {c['client_peak_mib']:10.0f} "
                    f"{c['client_cpu_s']:7.1f} {c['results_mib']:9.2f} {'':>11} "
                    f"{again[0]:8.2f} {again[1]:6.2f} {again[2]:5.0f} {os.getloadavg()[0]:5.1f}",
                    flush=True,
                )
                table.unlink()


if __name__ == "__main__":
    main()
