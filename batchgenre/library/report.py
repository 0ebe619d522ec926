"""The report: one self-contained HTML file of what a collection holds and where the model was unsure.

Bokeh draws it, with BokehJS inline (``bokeh.resources.INLINE``), so it opens offline and asks the
network for nothing. The numbers come from ``report_data``, bounded in size whatever the table's.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from batchgenre.library.report_data import BINS, LIST_ROWS, MAP_POINTS, MAP_SEED, UNKNOWN, Listing, ReportData, prepare
from batchgenre.store.results import Results

WIDTH = 1100
UNKNOWN_COLOUR = "#9e9e9e"
FAILED_COLOUR = "#424242"


@dataclass
class Report:
    """The report written: where it is, how many files it covers, and how many plots it draws."""

    out: Path
    files: int
    plots: int
    map_points: int


def write_report(results: Results, *, out: Path) -> Report:
    """Write the HTML report of ``results`` to ``out`` (atomically), with its scripts and data inside."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, gridplot
    from bokeh.resources import INLINE

    data = prepare(results)
    colours = _colours(data.genres)
    histograms = [_histogram(data, g, colours[g]) for g in data.genres]
    plots = [_counts(data, colours), *histograms, _map(data, colours)]
    layout = column(
        _header(data),
        plots[0],
        _heading("How sure the model was", "Files by confidence (top mean probability), one panel per genre."),
        gridplot(histograms, ncols=4, toolbar_location=None),
        _heading(
            "The collection as a map",
            f"Each file sits between the genres' corners, pulled to each by its probability; "
            f"{_sampled(data.map.shown, data.map.total)}. Hover for a file's name.",
        ),
        plots[-1],
        _heading("Each genre's files", f"Most confident first; past {2 * LIST_ROWS} files, the middle is left out."),
        _genre_tabs(data),
        _heading("Unknown", _problems(data.unknowns, "files no genre fits (confidence, novelty), least sure first")),
        _table(data.unknowns, {"path": "file", "best_guess": "best guess", "confidence": "confidence"}),
        _heading("Failed", _problems(data.failures, "files that could not be classified, with the reason")),
        _table(data.failures, {"path": "file", "error": "reason"}),
    )
    page = file_html(layout, resources=INLINE, title=f"batchgenre report: {data.title}")
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return Report(out, data.total, len(plots), data.map.shown)


def _colours(genres: list[str]) -> dict[str, str]:
    from bokeh.palettes import Category10_10, Category20_20, Turbo256

    named = [g for g in genres if g != UNKNOWN]
    if len(named) <= 10:
        palette = list(Category10_10)
    elif len(named) <= 20:
        palette = list(Category20_20)
    else:
        palette = [Turbo256[round(i * 255 / (len(named) - 1))] for i in range(len(named))]
    return {**dict(zip(named, palette, strict=False)), UNKNOWN: UNKNOWN_COLOUR}


def _header(data: ReportData):
    from bokeh.models import Div

    classified = sum(data.counts.values())
    known = classified - data.counts.get(UNKNOWN, 0)
    return Div(
        text=(
            f"<h1>batchgenre report: {html.escape(data.title)}</h1>"
            f"<p>{data.total} files in <code>{html.escape(data.root or '?')}</code>: {known} given a genre, "
            f"{data.counts.get(UNKNOWN, 0)} unknown, {data.failed} failed. "
            f"Model: <code>{html.escape(data.model or '?')}</code>.</p>"
        ),
        width=WIDTH,
    )


def _heading(title: str, text: str):
    from bokeh.models import Div

    return Div(text=f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>", width=WIDTH)


def _sampled(shown: int, total: int) -> str:
    if shown == total:
        return f"all {total} classified files"
    return f"{shown} of {total} classified files, sampled at random (seed {MAP_SEED}, at most {MAP_POINTS})"


def _problems(listing: Listing, what: str) -> str:
    more = f"; the first {listing.shown} shown" if listing.shown < listing.total else ""
    return f"{listing.total} {what}{more}."


def _counts(data: ReportData, colours: dict[str, str]):
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    names = [*data.genres, "failed"]
    source = ColumnDataSource(
        {
            "name": names,
            "files": [*(data.counts[g] for g in data.genres), data.failed],
            "colour": [*(colours[g] for g in data.genres), FAILED_COLOUR],
        }
    )
    fig = figure(x_range=names, width=WIDTH, height=280, title="Files per genre", tools="", toolbar_location=None)
    fig.vbar(x="name", top="files", width=0.8, color="colour", source=source)
    fig.add_tools(_hover([("genre", "@name"), ("files", "@files")]))
    fig.y_range.start = 0
    fig.xgrid.grid_line_color = None
    fig.xaxis.major_label_orientation = 0.6 if len(names) > 8 else 0
    return fig


def _histogram(data: ReportData, genre: str, colour: str):
    from bokeh.plotting import figure

    counts = data.histograms[genre]
    fig = figure(
        width=WIDTH // 4 - 10,
        height=180,
        title=f"{genre} ({data.counts[genre]})",
        x_range=(0, 1),
        tools="",
        toolbar_location=None,
    )
    fig.quad(left=[i / BINS for i in range(BINS)], right=[(i + 1) / BINS for i in range(BINS)], bottom=0,
             top=counts.tolist(), color=colour)  # fmt: skip
    fig.y_range.start = 0
    return fig


def _map(data: ReportData, colours: dict[str, str]):
    from bokeh.models import ColumnDataSource, LabelSet
    from bokeh.plotting import figure

    source = ColumnDataSource({**data.map.rows, "colour": [colours[g] for g in data.map.rows["genre"]]})
    fig = figure(
        width=700,
        height=700,
        title="Each file by its genre probabilities",
        tools="pan,wheel_zoom,box_zoom,reset",
        match_aspect=True,
        x_range=(-1.3, 1.3),
        y_range=(-1.3, 1.3),
    )
    fig.scatter(x="x", y="y", color="colour", alpha=0.5, size=6, source=source)
    fig.add_tools(_hover([("file", "@path"), ("genre", "@genre"), ("confidence", "@confidence{0.00}")]))
    corners = ColumnDataSource(
        {"x": [1.12 * x for x, _ in data.anchors.values()], "y": [1.12 * y for _, y in data.anchors.values()],
         "name": list(data.anchors)}
    )  # fmt: skip
    fig.add_layout(LabelSet(x="x", y="y", text="name", source=corners, text_align="center", text_baseline="middle"))
    fig.axis.visible = False
    fig.grid.visible = False
    return fig


def _hover(tooltips: list[tuple[str, str]]):
    from bokeh.models import HoverTool

    return HoverTool(tooltips=tooltips)


def _table(listing: Listing, headers: dict[str, str], *, height: int = 260):
    from bokeh.models import ColumnDataSource, DataTable, NumberFormatter, TableColumn

    numbers = {"confidence": NumberFormatter(format="0.000"), "duration": NumberFormatter(format="0")}
    columns = [
        TableColumn(field=name, title=title, **({"formatter": numbers[name]} if name in numbers else {}))
        for name, title in headers.items()
    ]
    return DataTable(
        source=ColumnDataSource(listing.rows), columns=columns, width=WIDTH, height=height, index_position=None
    )


def _genre_tabs(data: ReportData):
    from bokeh.layouts import column
    from bokeh.models import Div, TabPanel, Tabs

    panels = []
    for genre in data.genres:
        listing = data.lists[genre]
        note = (
            "" if listing.shown == listing.total else f" ({listing.shown} shown: the {LIST_ROWS} most and least sure)"
        )
        panels.append(
            TabPanel(
                title=f"{genre} ({listing.total})",
                child=column(
                    Div(text=html.escape(f"{listing.total} files{note}")),
                    _table(listing, {"path": "file", "confidence": "confidence", "duration": "seconds"}),
                ),
            )
        )
    return Tabs(tabs=panels, width=WIDTH)
