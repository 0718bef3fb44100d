"""The report as text: one rich table per section, plain (no colour codes), for terminals and mail.

Attacker strings are never read as rich markup (a "[bold]" in a password stays as typed,
a "[/x]" cannot break the table) and their control characters are shown escaped, so a
captured string cannot drive the terminal that prints the report.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dynapot.report.queries import ReportData

WIDTH = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """Printable text of a cell: control and bidi characters escaped as \\xNN or \\uNNNN."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        value = ", ".join(str(item) for item in value)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


def _short_time(value: str | None) -> str:
    return (value or "").replace("+00:00", "Z").replace("T", " ")


def _table(title: str, columns: Sequence[str], rows: list[list[Any]], empty: str = "none") -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for name in columns:
        table.add_column(name, overflow="fold")  # keys and addresses wrap, never lose their end
    for row in rows:
        table.add_row(*(Text(clean(cell)) for cell in row))
    if not rows:
        table.add_row(Text(f"({empty})"), *([""] * (len(columns) - 1)))
    return table


def _capped(items: list[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit})" if len(items) > limit else "")


def render_text(data: ReportData, width: int = WIDTH) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False)
    s = data.sections
    t = data.totals
    console.print(
        Text(
            f"dynapot report {_short_time(data.as_dict()['period']['since'])} .. "
            f"{_short_time(data.as_dict()['period']['until'])}"
        )
    )
    console.print(
        Text(
            f"{t['events']} events from {t['sources']} sources on {t['honeypots']} honeypots; "
            f"{t['logins']} logins, {t['commands']} commands, {t['requests']} requests; "
            f"{t['findings']} findings, {t['alerts']} alerts"
            + (f"; {t['sensor_notices']} sensor notices" if t.get("sensor_notices") else "")
        )
    )
    tables = [
        _table(
            "Findings",
            ["risk", "kind", "first seen", "last seen", "sources", "events", "summary"],
            [
                [
                    f["risk"],
                    f["kind"],
                    _short_time(f["first_seen"]),
                    _short_time(f["last_seen"]),
                    _capped(f["sources"], 3),
                    f["event_count"],
                    f["summary"],
                ]
                for f in s["findings"]
            ],
        ),
        _table(
            "Honeypots touched",
            ["address", "kind", "OS", "events", "sources", "ports", "first seen", "last seen"],
            [
                [
                    h["address"],
                    {True: "virtual", False: "real", None: "?"}[h["virtual"]],
                    h["os"],
                    h["events"],
                    h["source_count"],
                    _capped(h["ports"]),
                    _short_time(h["first_seen"]),
                    _short_time(h["last_seen"]),
                ]
                for h in s["honeypots"]
            ],
        ),
        _table(
            "Sources",
            [
                "address",
                "guessed OS",
                "tool",
                "events",
                "honeypots",
                "ports",
                "logins",
                "first seen",
                "last seen",
            ],
            [
                [
                    r["address"],
                    r["os"],
                    r["tool"],
                    r["events"],
                    r["honeypot_count"],
                    r["port_count"],
                    r["login_count"],
                    _short_time(r["first_seen"]),
                    _short_time(r["last_seen"]),
                ]
                for r in s["sources"]
            ],
        ),
        _table(
            "Ports and services",
            ["port", "service", "events", "sources", "honeypots"],
            [
                [
                    f"{p['port']}/{p['protocol']}",
                    p["service"],
                    p["events"],
                    p["source_count"],
                    p["honeypot_count"],
                ]
                for p in s["ports"]
            ],
        ),
        _table(
            "Credentials",
            ["time", "source", "honeypot", "service", "user", "password / key", "accepted"],
            [
                [
                    _short_time(c["time"]),
                    c["src"],
                    c["dst"],
                    c["service"] or c["port"],
                    c["user"],
                    c["secret"],
                    c["accepted"],
                ]
                for c in s["credentials"]
            ],
        ),
        _table(
            "Commands and requests",
            ["time", "source", "honeypot", "service", "kind", "command"],
            [
                [
                    _short_time(c["time"]),
                    c["src"],
                    c["dst"],
                    c["service"] or c["port"],
                    c["kind"],
                    c["command"],
                ]
                for c in s["commands"]
            ],
        ),
        _table(
            "Alerts",
            ["time", "status", "channel", "attempts", "finding", "message"],
            [
                [_short_time(a["time"]), a["status"], a["channel"], a["attempts"], a["finding"], a["message"]]
                for a in s["alerts"]
            ],
        ),
        _table(
            f"Timeline ({data.bucket_seconds} s buckets, non-empty only)",
            ["start", "events", "sources"],
            [[_short_time(b["start"]), b["events"], b["source_count"]] for b in s["timeline"] if b["events"]],
        ),
        _table(
            "Hosts by OS, real and virtual",
            ["kind", "OS", "hosts"],
            [["virtual" if o["virtual"] else "real", o["os"], o["hosts"]] for o in s["os_mix"]],
        ),
    ]
    for table in tables:
        console.print()
        console.print(table)
    return out.getvalue()
