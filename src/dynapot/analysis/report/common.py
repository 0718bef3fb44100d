"""What the report's renderers share: how a value reads as a cell, and the tables they print alike.

The text and HTML reports show most sections with the same columns and the same cells; those
tables are built here once, so that the two formats cannot drift apart. Sections that a
format shows its own way (findings, alerts) stay with that format's renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dynapot.analysis.report.queries import ReportData
from dynapot.textsafe import for_display


def plain(value: Any, *, yes: str, no: str, sep: str) -> str:
    """A cell's text: None empty, booleans as `yes`/`no`, lists joined with `sep`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes if value else no
    if isinstance(value, list | tuple):
        return sep.join(str(item) for item in value)
    return str(value)


def clean(value: Any) -> str:
    """Printable text of a cell: control, bidi and invisible characters escaped as \\xNN or \\uNNNN
    (`dynapot.textsafe.for_display`)."""
    return for_display(plain(value, yes="yes", no="no", sep=", "))


def when(value: str | None) -> str:
    """An ISO time as people read it: "2027-03-01 12:00:00Z"."""
    return (value or "").replace("T", " ").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: list[list[Any]]


def honeypots(data: ReportData, ports: Callable[[list[str]], str]) -> Table:
    """The honeypots touched; `ports` writes a honeypot's port list (each format caps it its own way)."""
    return Table(
        "Honeypots touched",
        ["address", "kind", "OS", "events", "sources", "ports", "first seen", "last seen"],
        [
            [
                h["address"],
                {True: "virtual", False: "real", None: "?"}[h["virtual"]],
                h["os"],
                h["events"],
                h["source_count"],
                ports(h["ports"]),
                when(h["first_seen"]),
                when(h["last_seen"]),
            ]
            for h in data.sections["honeypots"]
        ],
    )


def sources(data: ReportData) -> Table:
    return Table(
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
                when(r["first_seen"]),
                when(r["last_seen"]),
            ]
            for r in data.sections["sources"]
        ],
    )


def ports(data: ReportData) -> Table:
    return Table(
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
            for p in data.sections["ports"]
        ],
    )


def credentials(data: ReportData) -> Table:
    return Table(
        "Credentials",
        ["time", "source", "honeypot", "service", "user", "password / key", "accepted"],
        [
            [
                when(c["time"]),
                c["src"],
                c["dst"],
                c["service"] or c["port"],
                c["user"],
                c["secret"],
                c["accepted"],
            ]
            for c in data.sections["credentials"]
        ],
    )


def commands(data: ReportData) -> Table:
    return Table(
        "Commands and requests",
        ["time", "source", "honeypot", "service", "kind", "command"],
        [
            [when(c["time"]), c["src"], c["dst"], c["service"] or c["port"], c["kind"], c["command"]]
            for c in data.sections["commands"]
        ],
    )


def high_interaction(data: ReportData) -> Table:
    """Per attacker, the commands typed on high-interaction honeypots (one row per session)."""
    return Table(
        "Commands typed on high-interaction honeypots",
        [
            "attacker",
            "first event (any honeypot)",
            "its events",
            "honeypot",
            "first seen",
            "last seen",
            "session",
            "records",
            "lost",
            "commands",
        ],
        [
            [
                r["src"] or "(unlinked)",
                when(r.get("first_event")),
                r.get("event_count", 0),
                r["dst"],
                when(r["first_seen"]),
                when(r["last_seen"]),
                r["session"],
                r["events"],
                r["lost"],
                r["command"],
            ]
            for r in data.sections.get("high_interaction", [])
        ],
    )


def stories(data: ReportData) -> Table:
    """One story per attacker: its steps on virtual hosts and backends, in time order."""
    return Table(
        "One story per attacker (virtual hosts and high-interaction backends, in time order)",
        ["attacker", "time", "tier", "step", "honeypot", "port", "count", "detail"],
        [
            [
                r["src"],
                when(r["time"]),
                r["tier"],
                r["step"],
                r["honeypot"],
                r["port"],
                r["count"],
                r["detail"],
            ]
            for r in data.sections.get("stories", [])
        ],
    )


def timeline(data: ReportData) -> Table:
    return Table(
        f"Timeline ({data.bucket_seconds} s buckets, non-empty only)",
        ["start", "events", "sources"],
        [
            [when(b["start"]), b["events"], b["source_count"]]
            for b in data.sections["timeline"]
            if b["events"]
        ],
    )


def os_mix(data: ReportData) -> Table:
    return Table(
        "Hosts by OS, real and virtual",
        ["kind", "OS", "hosts"],
        [["virtual" if o["virtual"] else "real", o["os"], o["hosts"]] for o in data.sections["os_mix"]],
    )
