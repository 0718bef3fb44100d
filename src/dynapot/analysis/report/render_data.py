"""The report as data: JSON (the whole report) and CSV (one flat table).

The CSV is one table for every section: the first column says which section a row
belongs to ("period", "totals", "honeypots", ... "os_mix"), the other columns are the
union of all sections' fields in a fixed order, left empty where a section has no such
field. Filter on `section` to get one section back. Lists are joined with spaces,
booleans are "true"/"false". Cells that a spreadsheet would run as a formula (starting
with = + - @ or a tab) get a leading apostrophe, and control characters are shown as \\xNN
(`dynapot.textsafe.for_display`), so that a `cat` of the file cannot drive a terminal:
attackers choose those strings. The JSON report escapes them as JSON does (\\u001b).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from dynapot.analysis.report.common import plain
from dynapot.analysis.report.queries import SECTIONS, ReportData
from dynapot.textsafe import for_display

# The union of the sections' fields, in the order a reader expects them.
CSV_COLUMNS = (
    "section",
    "name",
    "value",
    "time",
    "start",
    "address",
    "virtual",
    "os",
    "tool",
    "key",
    "kind",
    "risk",
    "status",
    "src",
    "dst",
    "protocol",
    "port",
    "service",
    "user",
    "secret",
    "accepted",
    "command",
    "events",
    "source_count",
    "honeypot_count",
    "port_count",
    "login_count",
    "event_count",
    "hosts",
    "sources",
    "targets",
    "ports",
    "channel",
    "attempts",
    "finding",
    "message",
    "last_error",
    "summary",
    "first_seen",
    "last_seen",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_json(data: ReportData) -> str:
    return json.dumps(data.as_dict(), indent=2) + "\n"


def _cell(value: Any) -> str:
    text = for_display(plain(value, yes="true", no="false", sep=" "))
    if text.startswith(_FORMULA_STARTS) and not isinstance(value, int | float):
        return "'" + text
    return text


def csv_rows(data: ReportData) -> list[dict[str, Any]]:
    """Every row of the report, tagged with its section, before formatting."""
    full = data.as_dict()
    rows: list[dict[str, Any]] = [
        {"section": "period", "name": k, "value": v} for k, v in full["period"].items()
    ]
    rows += [{"section": "totals", "name": k, "value": v} for k, v in full["totals"].items()]
    for section in SECTIONS:
        rows += [{"section": section, **row} for row in full[section]]
    return rows


def render_csv(data: ReportData) -> str:
    rows = csv_rows(data)
    columns = list(CSV_COLUMNS)
    for row in rows:  # a field added to a query later still gets a column
        columns += [name for name in row if name not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _cell(value) for name, value in row.items()})
    return out.getvalue()
