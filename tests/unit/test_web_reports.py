"""The reports, findings and sessions pages and their API, in-process (httpx through ASGI), on SQLite
and PostgreSQL: period validation, CSV formula neutralisation, escaping, keyset pages, replay.

The browser drives the same in test_web_reports_browser.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient
from web_fixtures import ADMIN, HOSTILE, PASSWORD, VIEWER, make_database

from dynapot.config import load_settings
from dynapot.db.models import Finding, HoneypotEvent, utcnow
from dynapot.db.models import Session as SessionRow
from dynapot.web.app import create_app
from dynapot.web.context import WebContext
from dynapot.web.period import MAX_SPAN, PeriodRefused, parse_period

#: What a spreadsheet would run as a formula, typed by an attacker as a user name and password.
FORMULAS = ('=HYPERLINK("http://evil")', "+SUM(1,2)", "-2+3", "@cmd", "=1+1")
ESC_TITLE = "\x1b]0;owned\x07"  # a terminal escape: retitles a terminal that prints it raw
BIDI = "txt.\u202eexe"  # a right-to-left override: reorders what is shown around it
NOW = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def seed_reports(db) -> None:
    """Logins with formula-like credentials, a hostile OS guess, 120 findings, one Sebek session."""
    now = utcnow()
    with db.session() as session:
        for n, text in enumerate(FORMULAS):
            session.add(
                HoneypotEvent(
                    time=now - timedelta(minutes=5, seconds=n),
                    protocol="tcp",
                    src_ip="198.18.0.66",
                    src_port=50000 + n,
                    dst_ip="198.18.0.10",
                    dst_port=22,
                    kind="login",
                    detail=f"{text}:{text}",
                    attacker_os=HOSTILE,
                    data={"user": text, "password": text, "accepted": False},
                )
            )
        for n in range(120):
            session.add(
                Finding(
                    key=f"test:{n}",
                    kind=("scan", "brute_force", "worm")[n % 3],
                    risk=("low", "medium", "high", "critical")[n % 4],
                    first_seen=now - timedelta(hours=2),
                    last_seen=now - timedelta(minutes=n % 7),  # ties on last_seen: keyset must still work
                    summary=f"finding {n} {HOSTILE}",
                    sources=[f"198.18.1.{n % 250}"],
                    targets=["198.18.0.10"],
                    ports=[22],
                    event_count=3,
                    event_ids=[1, 2, 3],
                    details={"note": HOSTILE},
                )
            )
        start = now - timedelta(minutes=10)
        records = [  # (seconds, type, fd, data, lost_before)
            (0, 1, 1, "$ ", 0),
            (1, 0, 0, "ls -la\r", 0),
            (2, 1, 1, f"total 0\r\n{ESC_TITLE}\x1b[31mred {BIDI}\r\n", 0),
            (3, 0, 0, f"echo '{HOSTILE}'\r", 3),
            (4, 1, 2, f"{HOSTILE}\n", 0),
        ]
        for seconds, kind, fd, data, lost in records:
            session.add(
                SessionRow(
                    time=start + timedelta(seconds=seconds),
                    honeypot_ip="198.18.0.20",
                    src_ip="198.18.0.66",
                    pid=4242,
                    ppid=1,
                    uid=0,
                    fd=fd,
                    command="bash",
                    data=data,
                    type=kind,
                    counter=seconds,
                    lost_before=lost,
                )
            )


@pytest.fixture
def site(tmp_path, db_url):
    db, settings_path = make_database(tmp_path, db_url)
    seed_reports(db)
    web = WebContext(db, load_settings(settings_path), settings_path, tls=True)
    yield create_app(web, stream_seconds=1.5), web
    db.dispose()


def logged_in(app, name=ADMIN) -> TestClient:
    browser = TestClient(app, base_url="https://localhost", follow_redirects=False)
    form = browser.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    done = browser.post("/login", data={"login_csrf": token, "username": name, "password": PASSWORD})
    assert done.status_code == 303, done.text
    return browser


def bearer(app, name=ADMIN) -> dict[str, str]:
    client = TestClient(app, base_url="https://localhost")
    token = client.post("/api/v1/token", data={"username": name, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def session_id(web) -> int:
    from sqlalchemy import func, select

    with web.db.session() as session:
        return int(session.scalar(select(func.min(SessionRow.id))))


# --- the period ------------------------------------------------------------------------------


def test_a_period_from_a_preset_from_to_or_durations():
    assert parse_period("7d", now=NOW).since == NOW - timedelta(days=7)
    assert parse_period(now=NOW).since == NOW - timedelta(days=1)  # nothing given: the last day
    period = parse_period(None, "2026-12-01T10:00", "2026-12-02T10:00+01:00", now=NOW)
    assert period.since == datetime(2026, 12, 1, 10, tzinfo=UTC)  # no zone: UTC
    assert period.until == datetime(2026, 12, 2, 9, tzinfo=UTC)
    assert period.query() == {"since": "2026-12-01T10:00:00", "until": "2026-12-02T09:00:00"}
    assert parse_period(None, "90m", now=NOW).since == NOW - timedelta(minutes=90)
    assert parse_period("1h", "", " ", now=NOW).preset == "1h"


@pytest.mark.parametrize(
    ("preset", "since", "until", "field", "says"),
    [
        ("1y", "", "", "preset", "unknown preset"),
        ("", "yesterday", "", "since", "not a time"),
        ("", "2026-12-01", "soon", "until", "not a time"),
        ("", "", "2026-12-01", "since", "give a start time"),
        ("", "2026-12-02", "2026-12-01", "until", "later than the start"),
        ("", "2026-12-01", "2026-12-01", "until", "later than the start"),
        ("", "1900-01-01", "", "since", "before 1970"),
        ("", "2020-01-01", "2026-01-01", "since", f"longer than {MAX_SPAN.days} days"),
        ("", "9" * 500, "", "since", "too long"),
        ("", "2026-12-01\x00", "", "since", "not a time"),
        ("", "999999w", "", "since", "before 1970"),
    ],
)
def test_a_bad_period_is_refused_field_by_field(preset, since, until, field, says):
    with pytest.raises(PeriodRefused) as refused:
        parse_period(preset, since, until, now=NOW)
    assert says in refused.value.errors[field]


# --- the reports page and its exports --------------------------------------------------------


def test_the_reports_page_shows_the_period_with_charts_and_escaped_strings(site):
    app, _ = site
    page = logged_in(app).get("/reports?preset=24h")
    assert page.status_code == 200
    text = page.text
    assert '<span class="n" id="total-events">35</span>' in text  # 30 connects + 5 logins
    assert 'class="bar column"' in text and 'aria-label="events per ' in text
    assert "198.18.0.66" in text and "198.18.0.99" in text  # top sources
    assert "22/tcp" in text and "198.18.0.10" in text  # top ports and honeypots
    assert 'class="bar high"' in text and 'class="bar login"' in text  # findings by risk, by kind
    assert HOSTILE not in text and "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "style=" not in text and "<script>" not in text  # the CSP allows neither
    for fmt in ("csv", "json", "html"):
        assert f'data-format="{fmt}"' in text


def test_a_bad_period_is_shown_beside_its_field(site):
    app, _ = site
    browser = logged_in(app)
    refused = browser.get("/reports?since=2026-12-02&until=2026-12-01")
    assert refused.status_code == 422
    assert 'data-field="until">must be later than the start' in refused.text
    assert "Traceback" not in refused.text and 'id="total-events"' not in refused.text
    hostile = browser.get("/reports", params={"since": HOSTILE})
    assert hostile.status_code == 422 and 'data-field="since">not a time' in hostile.text
    assert HOSTILE not in hostile.text  # the submitted value is shown escaped
    assert browser.get("/reports/export?format=csv&since=nonsense").status_code == 422
    assert browser.get("/reports/export?format=exe&preset=1h").status_code == 422


def test_the_csv_export_neutralises_formulas_and_is_a_download(site):
    app, _ = site
    response = logged_in(app).get("/reports/export?format=csv&preset=24h")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="dynapot-report-\d{8}T\d{6}-\d{8}T\d{6}\.csv"',
        response.headers["content-disposition"],
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    credentials = [r for r in rows if r["section"] == "credentials"]
    assert {r["user"] for r in credentials} == {"'" + f for f in FORMULAS}
    assert {r["secret"] for r in credentials} == {"'" + f for f in FORMULAS}
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert any(r["section"] == "sources" and r["os"] == HOSTILE for r in rows)  # plain text in CSV


def test_the_html_and_json_exports_escape_what_attackers_wrote(site):
    app, _ = site
    browser = logged_in(app)
    page = browser.get("/reports/export?format=html&preset=24h")
    assert page.status_code == 200 and page.headers["content-disposition"].startswith("attachment;")
    assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    data = browser.get("/reports/export?format=json&preset=24h").json()
    assert data["totals"]["logins"] == 5
    assert {c["user"] for c in data["credentials"]} == set(FORMULAS)  # JSON keeps them as they were


def test_the_api_reports_json_and_csv_and_refuses_a_bad_period(site):
    app, _ = site
    api = TestClient(app, base_url="https://localhost")
    headers = bearer(app, VIEWER)
    report = api.get("/api/v1/reports", params={"since": "2h"}, headers=headers)
    assert report.status_code == 200 and report.json()["totals"]["events"] == 35
    table = api.get("/api/v1/reports", params={"preset": "1h", "format": "csv"}, headers=headers)
    assert table.status_code == 200 and table.text.startswith("section,")
    refused = api.get("/api/v1/reports", params={"since": "2h", "until": "3h"}, headers=headers)
    assert refused.status_code == 422 and "later" in refused.json()["errors"]["until"]
    assert api.get("/api/v1/reports", params={"format": "xml"}, headers=headers).status_code == 422
    assert api.get("/api/v1/reports").status_code == 401


# --- findings ------------------------------------------------------------------------------------


def _finding_ids(text: str) -> list[int]:
    return [int(x) for x in re.findall(r'href="/findings/(\d+)"', text)]


def test_findings_are_paged_by_keyset_without_gaps_or_repeats(site):
    app, _ = site
    browser = logged_in(app, VIEWER)
    seen: list[int] = []
    url = "/findings"
    pages = 0
    while url:
        page = browser.get(url)
        assert page.status_code == 200
        seen += _finding_ids(page.text)
        found = re.search(r'href="([^"]+)" id="next-page"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3 and len(seen) == 121 == len(set(seen))  # 120 seeded + the fixtures' one


def test_findings_filter_by_risk_and_kind(site):
    app, _ = site
    browser = logged_in(app)
    page = browser.get("/findings?risk=critical&kind=worm")
    shown = _finding_ids(page.text)
    assert len(shown) == 10  # n % 4 == 3 and n % 3 == 2: n = 11, 23, ... 119
    assert page.text.count('<tr class="risk-critical">') == 10
    assert HOSTILE not in page.text
    refused = browser.get("/findings?risk=apocalyptic")
    assert refused.status_code == 422 and 'data-field="risk">choose one of' in refused.text
    assert browser.get("/findings?after=x").status_code == 422
    assert _finding_ids(browser.get("/findings?kind=nothing-like-this").text) == []


def test_a_finding_shows_its_events_escaped(site):
    app, _ = site
    browser = logged_in(app)
    first = _finding_ids(browser.get("/findings?kind=scan").text)[-1]
    page = browser.get(f"/findings/{first}")
    assert page.status_code == 200
    assert page.text.count("<tr><td>") >= 3 and "event 0 &lt;script&gt;" in page.text
    assert HOSTILE not in page.text
    assert browser.get("/findings/999999").status_code == 404
    assert browser.get("/findings/nope").status_code == 404
    assert browser.get(f"/findings/{'9' * 40}").status_code == 404
    api = TestClient(app, base_url="https://localhost")
    detail = api.get(f"/api/v1/findings/{first}", headers=bearer(app, VIEWER)).json()
    assert [e["id"] for e in detail["events"]] == [1, 2, 3] and detail["details"]["note"] == HOSTILE


# --- sessions and replay ---------------------------------------------------------------------


def test_the_sessions_page_lists_the_session_with_its_commands(site):
    app, web = site
    browser = logged_in(app, VIEWER)
    page = browser.get("/sessions?preset=24h")
    assert page.status_code == 200
    assert f'href="/sessions/{session_id(web)}"' in page.text
    assert "<code>ls -la</code>" in page.text and "&lt;script&gt;" in page.text and HOSTILE not in page.text
    assert '<td class="n lost">3</td>' in page.text
    assert browser.get("/sessions?preset=24h&honeypot=198.18.0.21").text.count('class="replay-link"') == 0
    refused = browser.get("/sessions?honeypot=not-an-address")
    assert refused.status_code == 422 and 'data-field="honeypot">not an IP address' in refused.text


def test_a_replay_shows_typed_and_shown_text_in_order_with_control_characters_visible(site):
    app, web = site
    browser = logged_in(app, VIEWER)
    page = browser.get(f"/sessions/{session_id(web)}")
    assert page.status_code == 200
    text = page.text
    steps = re.findall(r'<li class="step (typed|shown)"', text)
    assert steps == ["shown", "typed", "shown", "typed", "shown"]
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert r"\x1b]0;owned\x07\x1b[31mred txt.\u202eexe" in text  # shown, not obeyed
    assert "3 record(s) lost here" in text and 'id="lost-total">3 record(s) lost' in text
    assert HOSTILE not in text and "echo &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in text
    assert text.index("ls -la") < text.index("total 0") < text.index("echo &#39;")
    assert browser.get("/sessions/424242").status_code == 404
    api = TestClient(app, base_url="https://localhost")
    replay = api.get(f"/api/v1/sessions/{session_id(web)}", headers=bearer(app, VIEWER)).json()
    assert [s["what"] for s in replay["steps"]] == ["shown", "typed", "shown", "typed", "shown"]
    assert replay["steps"][3]["lost_before"] == 3 and replay["session"]["commands"][0] == "ls -la"
    listing = api.get("/api/v1/sessions", params={"preset": "24h"}, headers=bearer(app)).json()
    assert listing["total"] == 1 and listing["sessions"][0]["attacker"] == "198.18.0.66"


def test_a_long_replay_is_cut_into_bounded_pages(site):
    app, web = site
    start = utcnow() - timedelta(minutes=30)
    with web.db.session() as session:
        session.add_all(
            SessionRow(
                time=start + timedelta(milliseconds=n),
                honeypot_ip="198.18.0.21",
                src_ip="198.18.0.67",
                pid=7,
                ppid=1,
                fd=1,
                type=1,
                command="yes",
                data="y\n" * 5000 if n == 0 else "y\n",
                counter=n,
            )
            for n in range(1200)
        )
    with web.db.session() as session:
        from sqlalchemy import func, select

        first = session.scalar(select(func.min(SessionRow.id)).where(SessionRow.honeypot_ip == "198.18.0.21"))
    browser = logged_in(app)
    page = browser.get(f"/sessions/{first}")
    assert page.text.count('<li class="step shown"') == 500 and "in 3 page(s)" in page.text
    assert "(clipped)" in page.text  # 10,000 characters in one record: 4,000 shown
    last = browser.get(f"/sessions/{first}?page=2")
    assert last.text.count('<li class="step shown"') == 200 and 'id="next-page"' not in last.text
    assert browser.get(f"/sessions/{first}?page=99").text.count('<li class="step shown"') == 200


def test_anonymous_callers_get_nothing_and_a_viewer_reads_everything(site):
    app, web = site
    anonymous = TestClient(app, base_url="https://localhost", follow_redirects=False)
    sid = session_id(web)
    pages = [
        "/reports",
        "/reports/export?format=csv",
        "/findings",
        "/findings/1",
        "/sessions",
        f"/sessions/{sid}",
    ]
    for path in pages:
        response = anonymous.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    apis = ["/api/v1/reports", "/api/v1/findings/1", "/api/v1/sessions", f"/api/v1/sessions/{sid}"]
    for path in apis:
        assert anonymous.get(path).status_code == 401, path
    viewer = logged_in(app, VIEWER)
    for path in pages:
        assert viewer.get(path).status_code == 200, path
    headers = bearer(app, VIEWER)
    for path in apis:
        response = anonymous.get(path, headers=headers)
        assert response.status_code == 200, path
        if "format" not in path and path != "/api/v1/reports":
            json.dumps(response.json())


def test_the_findings_api_pages_by_keyset_and_filters_by_kind(site):
    app, _ = site
    api = TestClient(app, base_url="https://localhost")
    headers = bearer(app, VIEWER)
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 40, **({"after": after} if after else {})}
        page = api.get("/api/v1/findings", params=params, headers=headers).json()
        seen += [f["id"] for f in page]
        if len(page) < 40:
            break
        after = page[-1]["id"]
    assert len(seen) == 121 == len(set(seen))
    worms = api.get("/api/v1/findings", params={"kind": "worm", "limit": 500}, headers=headers).json()
    assert len(worms) == 40 and {f["kind"] for f in worms} == {"worm"}
