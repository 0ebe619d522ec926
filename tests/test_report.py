"""batchgenre report through the real CLI, then looked at as a person sees it: headless Chromium loads the page,
draws every plot, makes no network request and logs no error."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from batchgenre.library.report_data import LIST_ROWS, MAP_POINTS
from benchmarks.report import synthetic_results
from tests.browser import Chromium, find_chromium
from tests.conftest import run_cli
from tests.library_results import classified_library

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no chromium: apt-get install chromium")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return classified_library(tmp_path_factory.getbasetemp())


@pytest.mark.slow
@needs_chromium
def test_the_report_opens_offline_with_every_plot_drawn_and_no_error(library, tmp_path):
    from PIL import Image

    out = tmp_path / "report.html"
    done = run_cli("report", library.results, "--out", out)
    assert done.returncode == 0, done.stderr
    plots = int(re.fullmatch(rf"10 files, (\d+) plots -> {re.escape(str(out))}\n", done.stdout).group(1))
    assert plots == 2 + 4  # files per genre, the map, and a histogram for each of three genres and unknown
    with Chromium(tmp_path / "profile") as browser:
        page = browser.load(out, plots=plots)
    assert page.requests == [] and page.errors == []
    assert len(page.boxes) == plots
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot)).convert("RGB"))
    for box in page.boxes:
        x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
        area = shot[y : y + h, x : x + w].reshape(-1, 3)
        assert area.size and len(np.unique(area, axis=0)) > 1, f"a blank plot at {box}"
    (tmp_path / "report.png").write_bytes(page.screenshot)  # kept with a failed test's files, to look at


def test_the_report_holds_its_scripts_and_escapes_file_names(library, tmp_path):
    import batchgenre

    report = batchgenre.report(library.results, out=tmp_path / "report.html")
    page = report.out.read_text(encoding="utf-8")
    markup = re.sub(r"(?s)(<script[^>]*>).*?</script>", r"\1</script>", page)  # the page without script bodies
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", markup)  # nothing fetched: BokehJS is inline
    assert "&lt;b&gt;bold &amp; co.wav" in page  # in Bokeh's data, HTML-escaped inside its script tag
    assert "<b>bold" not in page  # a file name never becomes markup, nor ends a script early
    assert report.files == 10 and report.map_points == 9


def test_a_large_table_makes_a_report_of_bounded_size(tmp_path):
    import batchgenre

    results = synthetic_results(tmp_path / "results.csv", rows=3 * MAP_POINTS)
    report = batchgenre.report(results, out=tmp_path / "report.html")
    assert report.files == 3 * MAP_POINTS and report.map_points == MAP_POINTS
    # BokehJS is 2.0 MB of it; the data shown is bounded (3.2 MB in all at 10^5 rows, benchmarks/README.md).
    assert report.out.stat().st_size < 3_500_000
    text = report.out.read_text(encoding="utf-8")
    assert f"the {LIST_ROWS} most and least sure" in text
