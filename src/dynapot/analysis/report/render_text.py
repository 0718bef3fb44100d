"""The report as text: one rich table per section, plain (no colour codes), for terminals and mail.

Attacker strings are never read as rich markup (a "[bold]" in a password stays as typed,
a "[/x]" cannot break the table) and their control characters are shown escaped, so a
captured string cannot drive the terminal that prints the report.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from dynapot.analysis.report import common
from dynapot.analysis.report.common import Table, clean, when
from dynapot.analysis.report.queries import ReportData

WIDTH = 160

__all__ = ["WIDTH", "clean", "render_text"]  # clean: also the CLI's, for lines outside a table


def _table(table: Table, empty: str = "none") -> RichTable:
    out = RichTable(title=table.title, title_justify="left", expand=False)
    for name in table.columns:
        out.add_column(name, overflow="fold")  # keys and addresses wrap, never lose their end
    for row in table.rows:
        out.add_row(*(Text(clean(cell)) for cell in row))
    if not table.rows:
        out.add_row(Text(f"({empty})"), *([""] * (len(table.columns) - 1)))
    return out


def _capped(items: list[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit})" if len(items) > limit else "")


def render_text(data: ReportData, width: int = WIDTH) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False)
    s = data.sections
    t = data.totals
    console.print(
        Text(
            f"dynapot report {when(data.as_dict()['period']['since'])} .. "
            f"{when(data.as_dict()['period']['until'])}"
        )
    )
    console.print(
        Text(
            f"{t['events']} events ({t.get('probes', 0)} probes) from {t['sources']} sources on "
            f"{t['honeypots']} honeypots; "
            f"{t['logins']} logins, {t['commands']} commands, {t['requests']} requests; "
            f"{t['findings']} findings, {t['alerts']} alerts"
            + (f"; {t['sensor_notices']} sensor notices" if t.get("sensor_notices") else "")
        )
    )
    findings = Table(
        "Findings",
        ["risk", "kind", "first seen", "last seen", "sources", "events", "summary"],
        [
            [
                f["risk"],
                f["kind"],
                when(f["first_seen"]),
                when(f["last_seen"]),
                _capped(f["sources"], 3),
                f["event_count"],
                f["summary"],
            ]
            for f in s["findings"]
        ],
    )
    alerts = Table(
        "Alerts",
        ["time", "status", "channel", "attempts", "finding", "message"],
        [
            [when(a["time"]), a["status"], a["channel"], a["attempts"], a["finding"], a["message"]]
            for a in s["alerts"]
        ],
    )
    tables = [
        findings,
        common.honeypots(data, _capped),
        common.sources(data),
        common.ports(data),
        common.credentials(data),
        common.commands(data),
        common.high_interaction(data),
        common.stories(data),
        alerts,
        common.timeline(data),
        common.os_mix(data),
    ]
    for table in tables:
        console.print()
        console.print(_table(table))
    return out.getvalue()
