"""Reports over a time range: who touched which honeypot, how, with what, and what it meant.

`build_report(db, since, until)` runs the queries (aggregated in SQL, lists capped) and
returns a `ReportData` of plain JSON-friendly rows; `render(data, format)` turns it into
text (rich tables), JSON, CSV (one flat table, a `section` column first) or a
self-contained HTML page with inline SVG charts.
"""

from dynapot.analysis.report.queries import ReportData, build_report, events_by_kind
from dynapot.analysis.report.render_data import render_csv, render_json
from dynapot.analysis.report.render_html import render_html
from dynapot.analysis.report.render_text import render_text

FORMATS = ("text", "json", "csv", "html")


def render(data: ReportData, fmt: str) -> str:
    """The report in one of FORMATS."""
    renderers = {"text": render_text, "json": render_json, "csv": render_csv, "html": render_html}
    try:
        renderer = renderers[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
    return renderer(data)


__all__ = [
    "FORMATS",
    "ReportData",
    "build_report",
    "events_by_kind",
    "render",
    "render_csv",
    "render_html",
    "render_json",
]
