"""The report's one story per attacker: virtual hosts and backends joined in time order, escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from test_sessions import ATTACKER, HP, T0, rec, story  # type: ignore[import-not-found]

from dynapot.analysis.report import build_report, render
from dynapot.collector.rows import session_row
from dynapot.db import Database
from dynapot.db.models import HoneypotEvent, Session
from dynapot.sebek.records import RecordType

VIRTUAL = "198.18.0.50"


def event(
    at: datetime, kind: str, *, src: str = ATTACKER, dst: str = VIRTUAL, port: int = 22, **more
) -> HoneypotEvent:
    return HoneypotEvent(
        time=at, protocol="tcp", src_ip=src, src_port=40000, dst_ip=dst, dst_port=port, kind=kind, **more
    )


def test_the_story_joins_probes_logins_redirect_commands_and_outbound_in_time_order(db: Database) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    rows = story()
    hostile = b"echo \x1b]0;pwn\x07<script>alert(1)</script>\r"
    rows.append(session_row(rec(24, hostile, at=13), HP, ATTACKER))
    rows.append(session_row(rec(25, b"/usr/bin/id", kind=RecordType.OPEN, at=13.5), HP, ATTACKER))
    with db.session() as session:
        session.execute(insert(Session), rows)
        session.add_all(
            [
                event(start - timedelta(minutes=10), "probe", port=22, data={"count": 3}),
                event(start - timedelta(minutes=10), "probe", port=22, data={"count": 2}),
                event(start - timedelta(minutes=9), "probe", port=80),
                *(
                    event(start - timedelta(minutes=5, seconds=-i), "login-failed", detail=f"root:guess-{i}")
                    for i in range(4)
                ),
                event(start - timedelta(seconds=2), "redirect", data={"backend": "hi1", "sticky": False}),
                event(
                    start + timedelta(seconds=30),
                    "outbound",
                    src=HP,
                    dst="198.19.0.80",
                    port=80,
                    detail="refused",
                ),
                event(
                    start - timedelta(minutes=30), "outbound", src=HP, dst="198.19.0.81", port=80
                ),  # before
                event(start, "probe", src="198.18.1.77"),  # another attacker, no session: no story
            ]
        )
    since = start - timedelta(hours=1)
    data = build_report(db, since, since + timedelta(hours=2))
    steps = data.sections["stories"]
    assert {s["src"] for s in steps} == {ATTACKER}
    assert [(s["tier"], s["step"], s["port"], s["count"]) for s in steps] == [
        ("virtual", "probe", None, 6),  # probes of one honeypot within a minute: one step
        ("virtual", "login-failed", 22, 4),
        ("virtual", "redirect", 22, 1),
        ("backend", "session", None, 1),
        ("backend", "command", None, 1),
        ("backend", "command", None, 1),
        ("backend", "command", None, 1),
        ("backend", "outbound", 80, 1),
    ]
    assert [s["time"] for s in steps] == sorted(s["time"] for s in steps)
    commands = [s["detail"] for s in steps if s["step"] == "command"]
    assert commands[:2] == ["uname -a", "cat /etc/passwd"]
    assert steps[0]["detail"] == "ports 22, 80"
    assert steps[1]["detail"] == "root:guess-0; root:guess-1; root:guess-2; root:guess-3"
    assert steps[2]["detail"] == "to backend hi1"
    assert steps[-1]["detail"] == "198.19.0.80:80 refused"
    assert json.loads(render(data, "json"))["stories"] == steps
    html = render(data, "html")
    assert "One story per attacker" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html and "\x07" not in html
    assert "One story per attacker" in render(data, "text")
    assert "stories" in render(data, "csv")
