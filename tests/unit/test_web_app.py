"""The web interface in-process (httpx through ASGI): deny by default, headers, CSRF, roles, settings.

The browser tests (test_web_browser.py) drive the same through Chromium and a real server.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from web_fixtures import ADMIN, HOSTILE, PASSWORD, VIEWER, make_database

from dynapot.config import load_settings
from dynapot.db.models import AuditEntry
from dynapot.web.app import create_app
from dynapot.web.context import WebContext
from dynapot.web.live import next_batch
from dynapot.web.security import LoginLimiter

COOKIE = "__Host-dynapot"


@pytest.fixture
def site(tmp_path, db_url):
    """The application over a seeded database, on SQLite and on PostgreSQL."""
    db, settings_path = make_database(tmp_path, db_url)
    web = WebContext(db, load_settings(settings_path), settings_path, tls=True)
    app = create_app(web, stream_seconds=1.5)
    yield app, web, settings_path
    db.dispose()


def client(app) -> TestClient:
    return TestClient(app, base_url="https://localhost", follow_redirects=False)


def logged_in(app, name=ADMIN) -> tuple[TestClient, str]:
    """A client with a session cookie, and the session's CSRF token (read from the page)."""
    browser = client(app)
    form = browser.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    done = browser.post(
        "/login", data={"login_csrf": token, "username": name, "password": PASSWORD, "next": "/"}
    )
    assert done.status_code == 303, done.text
    page = browser.get("/settings")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return browser, csrf


def audit_rows(web):
    with web.db.session() as session:
        return [
            (a.actor, a.action, a.target, a.old_value, a.new_value)
            for a in session.scalars(select(AuditEntry))
        ]


def test_every_response_carries_the_security_headers(site):
    app, _, _ = site
    for path in ("/health", "/login", "/", "/api/v1/hosts", "/static/app.css"):
        response = client(app).get(path)
        headers = response.headers
        assert headers["content-security-policy"].startswith("default-src 'self'"), path
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["strict-transport-security"]


def test_nothing_but_login_static_and_health_without_credentials(site):
    app, _, _ = site
    anonymous = client(app)
    assert anonymous.get("/openapi.json").status_code == 401
    browser, _ = logged_in(app)
    schema = browser.get("/openapi.json").json()
    assert len(schema["paths"]) >= 6
    for path, operations in schema["paths"].items():
        for method in operations:
            if path == "/api/v1/token":
                continue
            response = anonymous.request(method.upper(), path.replace("{", "").replace("}", ""), content=b"{")
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
    for page in ("/", "/inventory", "/settings", "/events/stream"):
        response = anonymous.get(page)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert anonymous.post("/settings", data={"planner.fill_ratio": "0.1"}).status_code == 303
    assert anonymous.get("/api/v1/hosts", headers={"Authorization": "Bearer dp_nonsense"}).status_code == 401
    assert anonymous.get("/api/v1/hosts", headers={"Authorization": "Basic YTpi"}).status_code == 401
    assert anonymous.get("/health").json() == {"status": "ok"}
    assert anonymous.get("/docs").status_code == 303  # no Swagger UI (it would load from a CDN)


def test_login_sets_a_strict_cookie_and_needs_the_login_form_token(site):
    app, _, _ = site
    browser = client(app)
    forged = browser.post("/login", data={"username": ADMIN, "password": PASSWORD})
    assert forged.status_code == 403 and COOKIE not in forged.cookies
    form = browser.get("/login?next=//evil.example/x")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    assert 'name="next" value="/"' in form.text  # an off-site target is dropped
    done = browser.post(
        "/login", data={"login_csrf": token, "username": ADMIN, "password": PASSWORD, "next": "//evil"}
    )
    assert done.headers["location"] == "/"
    cookie = done.headers["set-cookie"].lower()
    assert cookie.startswith(COOKIE.lower() + "=")
    for flag in ("httponly", "secure", "samesite=strict", "path=/"):
        assert flag in cookie


def test_the_dashboard_and_inventory_show_the_database_escaped(site):
    app, _, _ = site
    browser, _ = logged_in(app)
    page = browser.get("/").text
    assert '<span class="n" id="real-hosts">2</span>' in page
    assert '<span class="n" id="virtual-hosts">1</span>' in page
    assert "<svg" in page and 'class="bar real"' in page and 'class="bar virtual"' in page
    inventory = browser.get("/inventory").text
    for text in (page, inventory):
        assert HOSTILE not in text and "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in inventory
    assert (
        "nmap</b>: Microsoft Windows XP SP3 (96%)" in inventory and "p0f</b>: Windows XP (70%)" in inventory
    )
    assert "style=" not in page + inventory and "<script>" not in page + inventory  # the CSP allows neither


def test_an_admin_changes_a_setting_it_is_stored_and_audited(site):
    app, web, path = site
    browser, csrf = logged_in(app)
    form = {
        "csrf_token": csrf,
        "planner.fill_ratio": "0.25",
        "discovery.active.parallel": "4",
        "discovery.mode": "active",
    }
    done = browser.post("/settings", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/settings?saved=2"
    text = path.read_text()
    assert "# the admin's own comment" in text
    stored = tomllib.loads(text)
    assert stored["planner"]["fill_ratio"] == 0.25 and stored["discovery"]["active"]["parallel"] == 4
    assert path.stat().st_mode & 0o777 == 0o640
    assert load_settings(path).planner.fill_ratio == 0.25  # what the daemon reads
    assert (ADMIN, "setting.change", "planner.fill_ratio", "0.5", "0.25") in audit_rows(web)
    assert (ADMIN, "setting.change", "discovery.active.parallel", "8", "4") in audit_rows(web)
    assert (ADMIN, "login", "web", None, "testclient") in audit_rows(web)


def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_written(site):
    app, web, path = site
    browser, csrf = logged_in(app)
    before = path.read_text()
    refused = browser.post(
        "/settings",
        data={
            "csrf_token": csrf,
            "planner.fill_ratio": "7",
            "discovery.active.parallel": "many",
            "networks": "10.0.0.5/8",
        },
    )
    assert refused.status_code == 422
    assert 'data-field="planner.fill_ratio">must be less than or equal to 1' in refused.text
    assert 'data-field="discovery.active.parallel">' in refused.text
    assert 'data-field="networks">' in refused.text
    assert "Traceback" not in refused.text
    assert path.read_text() == before
    assert not [row for row in audit_rows(web) if row[1] == "setting.change"]


def test_csrf_is_required_for_every_change_made_with_the_cookie(site):
    app, _, path = site
    browser, csrf = logged_in(app)
    before = path.read_text()
    assert browser.post("/settings", data={"planner.fill_ratio": "0.1"}).status_code == 403
    assert (
        browser.post("/settings", data={"csrf_token": "x" * 43, "planner.fill_ratio": "0.1"}).status_code
        == 403
    )
    api = browser.patch("/api/v1/settings", json={"planner.fill_ratio": 0.1})
    assert api.status_code == 403
    assert browser.post("/logout", data={}).status_code == 403
    assert path.read_text() == before
    ok = browser.patch("/api/v1/settings", json={"planner.fill_ratio": 0.1}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["changed"][0]["new"] == "0.1"


def test_a_viewer_reads_but_cannot_change_settings(site):
    app, _, path = site
    browser, csrf = logged_in(app, VIEWER)
    before = path.read_text()
    page = browser.get("/settings").text
    assert 'id="save"' not in page and "disabled" in page
    assert (
        browser.post("/settings", data={"csrf_token": csrf, "planner.fill_ratio": "0.1"}).status_code == 403
    )
    assert browser.post("/settings/test-alert", data={"csrf_token": csrf}).status_code == 403
    token = (
        client(app)
        .post("/api/v1/token", data={"username": VIEWER, "password": PASSWORD})
        .json()["access_token"]
    )
    bearer = {"Authorization": f"Bearer {token}"}
    assert client(app).get("/api/v1/settings", headers=bearer).status_code == 200
    assert (
        client(app).patch("/api/v1/settings", json={"planner.fill_ratio": 0.1}, headers=bearer).status_code
        == 403
    )
    assert path.read_text() == before


def test_the_api_with_a_bearer_token(site):
    app, _, path = site
    api = client(app)
    assert (
        api.post("/api/v1/token", data={"username": ADMIN, "password": "wrong password"}).status_code == 401
    )
    token = api.post("/api/v1/token", data={"username": ADMIN, "password": PASSWORD}).json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 8 * 3600
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    hosts = api.get("/api/v1/hosts", headers=bearer).json()
    assert [h["ip"] for h in hosts] == ["198.18.0.2", "198.18.0.3", "198.18.0.10"]
    assert hosts[0]["hostname"] == HOSTILE and {g["tool"] for g in hosts[0]["os_guesses"]} == {"nmap", "p0f"}
    status = api.get("/api/v1/status", headers=bearer).json()
    assert (status["real_hosts"], status["virtual_hosts"], status["findings_by_risk"]["high"]) == (2, 1, 1)
    first = api.get("/api/v1/events?limit=20", headers=bearer).json()
    second = api.get(f"/api/v1/events?limit=20&before={first['next']}", headers=bearer).json()
    ids = [e["id"] for e in first["events"] + second["events"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 30 and second["next"] is None
    assert api.get("/api/v1/findings?risk=high", headers=bearer).json()[0]["kind"] == "scan"
    assert api.get("/api/v1/findings?risk=bogus", headers=bearer).status_code == 422
    # bearer requests carry no ambient credential: no CSRF header needed
    changed = api.patch("/api/v1/settings", json={"expiry.hosts": 10}, headers=bearer)
    assert changed.status_code == 200 and tomllib.loads(path.read_text())["expiry"]["hosts"] == 10
    refused = api.patch("/api/v1/settings", json={"database_url": "sqlite://"}, headers=bearer)
    assert refused.status_code == 422 and "database_url" in refused.json()["errors"]


def test_lockout_through_the_login_page(site):
    app, _, _ = site
    browser = client(app)
    for _ in range(3):
        form = browser.get("/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
        wrong = browser.post(
            "/login", data={"login_csrf": token, "username": ADMIN, "password": "not it at all"}
        )
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    form = browser.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    locked = browser.post("/login", data={"login_csrf": token, "username": ADMIN, "password": PASSWORD})
    assert locked.status_code == 401 and "locked until" in locked.text and COOKIE not in locked.cookies


def test_the_login_limiter_counts_per_address_and_forgets_after_a_minute():
    now = [0.0]
    limiter = LoginLimiter(3, max_clients=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b") and limiter.refused == 1
    now[0] = 61.0
    assert limiter.allow("a")
    limiter.allow("c")  # a third address: the least recently seen ("b") is forgotten
    assert len(limiter._seen) == 2


def test_the_live_feed_batches_and_says_how_many_more(site):
    app, web, _ = site
    batch, cursor = next_batch(web.db, 0, show=10)
    assert len(batch["events"]) == 10 and batch["more"] == 20 and cursor == 30
    assert batch["events"][0]["id"] == 30  # the newest are shown
    assert next_batch(web.db, cursor) == (None, 30)
    browser, _ = logged_in(app)
    with browser.stream("GET", "/events/stream", headers={"Last-Event-ID": "25"}) as stream:
        body = "".join(stream.iter_text())
    assert "event: events" in body and "id: 30" in body
    data = [line for line in body.splitlines() if line.startswith("data: ")]
    assert len(data) == 1 and '"more":0' in data[0] and '"id":26' in data[0] and '"id":25' not in data[0]


def test_a_server_started_without_a_settings_file_shows_but_does_not_change(tmp_path):
    db, _ = make_database(tmp_path)
    try:
        app = create_app(WebContext(db, load_settings(None, environ={}), None, tls=False))
        browser = TestClient(app, base_url="http://localhost", follow_redirects=False)
        form = browser.get("/login")
        assert "secure" not in form.headers["set-cookie"].lower()
        token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
        browser.post("/login", data={"login_csrf": token, "username": ADMIN, "password": PASSWORD})
        page = browser.get("/settings")
        assert "without a settings file" in page.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert browser.patch("/api/v1/settings", json={}, headers={"X-CSRF-Token": csrf}).status_code == 409
    finally:
        db.dispose()


def test_templates_never_mark_anything_safe():
    folder = Path(__file__).parents[2] / "src" / "dynapot" / "web" / "templates"
    for template in folder.glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, template.name


@pytest.mark.parametrize("value", ["99999999999999999999999", "-1", "9223372036854775808", "1e9", "0x10", ""])
def test_extreme_numbers_in_the_query_are_refused_not_a_server_error(site, value):
    """schemathesis draws such values only now and then; these are the edges, every time."""
    app, _, _ = site
    token = client(app).post("/api/v1/token", data={"username": ADMIN, "password": PASSWORD}).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    for query in (f"before={value}", f"after={value}", f"limit={value}"):
        response = client(app).get(f"/api/v1/events?{query}", headers=bearer)
        assert response.status_code in (200, 422), (query, response.status_code)


def test_alert_urls_are_masked_everywhere_but_the_file_and_a_test_alert_arrives(site):
    from receivers import WebhookReceiver, wait_for

    app, web, path = site
    browser, csrf = logged_in(app)
    with WebhookReceiver() as hook:
        url = f"json://watcher:s3cret-pass@{hook.host}:{hook.port}/hook"
        done = browser.post("/settings", data={"csrf_token": csrf, "alerts.urls": url})
        assert done.status_code == 303
        assert tomllib.loads(path.read_text())["alerts"]["urls"] == [url]
        page = browser.get("/settings").text
        api = browser.get("/api/v1/settings").text
        assert "s3cret" not in page and "s3cret" not in api and f"{hook.port}" in page
        assert not [row for row in audit_rows(web) if "s3cret" in str(row)]
        sent = browser.post("/settings/test-alert", data={"csrf_token": csrf})
        assert sent.status_code == 200 and ": sent</li>" in sent.text and "s3cret" not in sent.text
        assert wait_for(lambda: len(hook.bodies) == 1)
        assert "test alert" in hook.bodies[0]["title"]
    kept = browser.post("/settings", data={"csrf_token": csrf, "planner.fill_ratio": "0.5"})
    assert kept.status_code == 303 and tomllib.loads(path.read_text())["alerts"]["urls"] == [
        url
    ]  # empty: kept
    cleared = browser.post("/settings", data={"csrf_token": csrf, "alerts.clear": "on"})
    assert cleared.status_code == 303 and tomllib.loads(path.read_text())["alerts"]["urls"] == []
    bad = browser.post("/settings", data={"csrf_token": csrf, "alerts.urls": "nosuch://x"})
    assert bad.status_code == 422 and 'data-field="alerts.urls"' in bad.text


def test_a_cross_origin_change_is_refused_even_with_the_token(site):
    app, _, path = site
    browser, csrf = logged_in(app)
    before = path.read_text()
    forged = browser.post(
        "/settings",
        data={"csrf_token": csrf, "planner.fill_ratio": "0.1"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and path.read_text() == before
    sandboxed = browser.post(
        "/settings", data={"csrf_token": csrf, "planner.fill_ratio": "0.1"}, headers={"Origin": "null"}
    )
    assert sandboxed.status_code == 403 and path.read_text() == before
    same = browser.post(
        "/settings",
        data={"csrf_token": csrf, "planner.fill_ratio": "0.1"},
        headers={"Origin": "https://localhost"},
    )
    assert same.status_code == 303


def test_the_inventory_page_says_when_it_lists_only_the_first_hosts(site, monkeypatch):
    from dynapot.web import queries

    app, _, _ = site
    browser, _ = logged_in(app)
    assert "3 hosts. Each" in browser.get("/inventory").text
    monkeypatch.setattr(queries, "PAGE_HOSTS", 2)
    page = browser.get("/inventory").text
    assert "3 hosts (the first 2 found are listed here; /api/v1/hosts lists them all)" in page
    assert page.count('<tr class="real">') + page.count('<tr class="virtual">') == 2
