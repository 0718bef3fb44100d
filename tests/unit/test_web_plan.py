"""The plan and virtual hosts pages and their API in-process: apply only the plan pending, once,
by an admin, with the CSRF token; a viewer sees it and cannot apply; everything escaped."""

from __future__ import annotations

import json

import pytest
from plan_fixtures import NETWORK, held_plan
from sqlalchemy import select
from starlette.testclient import TestClient
from test_web_app import audit_rows, client, logged_in
from web_fixtures import ADMIN, HOSTILE, PASSWORD, VIEWER, make_database

from dynapot.config import load_settings
from dynapot.db.models import PlanReview
from dynapot.deploy import review
from dynapot.web.app import create_app
from dynapot.web.context import WebContext

BACKEND = """
[daemon]
state_dir = "{state}"

[[backends]]
name = "lin1"
address = "198.18.0.240"
os = "Linux"
ports = [22]
"""


@pytest.fixture
def site(tmp_path, db_url):
    db, settings_path = make_database(tmp_path, db_url)
    settings_path.write_text(settings_path.read_text() + BACKEND.format(state=tmp_path / "state"))
    web = WebContext(db, load_settings(settings_path), settings_path, tls=True)
    yield create_app(web, stream_seconds=1.5), web, tmp_path
    db.dispose()


def bearer(app, name: str) -> dict[str, str]:
    token = client(app).post("/api/v1/token", data={"username": name, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def statuses(web) -> list[str]:
    with web.db.session() as session:
        return [row.status for row in session.scalars(select(PlanReview).order_by(PlanReview.id))]


def test_nothing_pending_says_so(site):
    app, _, _ = site
    browser, _ = logged_in(app)
    page = browser.get("/plan")
    assert page.status_code == 200 and 'id="nothing"' in page.text and 'id="apply"' not in page.text
    assert client(app).get("/api/v1/plan", headers=bearer(app, ADMIN)).json()["pending"] is None


def test_an_admin_sees_the_pending_diff_escaped_and_applies_it_once(site):
    app, web, _ = site
    digest = held_plan(web.db)
    browser, csrf = logged_in(app)
    page = browser.get("/plan").text
    assert digest in page and 'id="apply"' in page and 'id="hold"' in page
    assert "198.18.0.20" in page and "real host 198.18.0.3 joined" in page
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert browser.post("/plan/apply", data={"digest": digest}).status_code == 403  # no CSRF token
    held = browser.post("/plan/hold", data={"csrf_token": csrf, "digest": digest})
    assert held.status_code == 303 and statuses(web) == ["pending"]
    stale = browser.post("/plan/apply", data={"csrf_token": csrf, "digest": "0" * 64})
    assert stale.status_code == 409 and "the plan changed, review again" in stale.text
    done = browser.post("/plan/apply", data={"csrf_token": csrf, "digest": digest})
    assert done.status_code == 303 and done.headers["location"] == "/plan?done=apply"
    assert statuses(web) == ["approved"] and review.approved_digest(web.db, NETWORK) == digest
    again = browser.post("/plan/apply", data={"csrf_token": csrf, "digest": digest})
    assert again.status_code == 409  # approved already: not twice
    shown = browser.get("/plan?done=apply").text
    assert 'id="approved"' in shown and 'id="apply"' not in shown
    audited = [row for row in audit_rows(web) if row[1].startswith("plan.")]
    assert audited == [
        (ADMIN, "plan.hold", "plan", None, digest),
        (ADMIN, "plan.apply", NETWORK, None, digest),
    ]


def test_a_viewer_sees_the_plan_without_a_button_and_cannot_apply(site):
    app, web, _ = site
    digest = held_plan(web.db)
    browser, csrf = logged_in(app, VIEWER)
    page = browser.get("/plan").text
    assert digest in page and 'id="apply"' not in page and "Only an admin" in page
    assert browser.post("/plan/apply", data={"csrf_token": csrf, "digest": digest}).status_code == 403
    assert browser.post("/plan/hold", data={"csrf_token": csrf, "digest": digest}).status_code == 403
    api = client(app).post("/api/v1/plan/apply", json={"digest": digest}, headers=bearer(app, VIEWER))
    assert api.status_code == 403
    assert statuses(web) == ["pending"]


def test_the_plan_api(site):
    app, web, _ = site
    digest = held_plan(web.db)
    api, admin = client(app), bearer(app, ADMIN)
    assert api.get("/api/v1/plan").status_code == 401
    assert api.post("/api/v1/plan/apply", json={"digest": digest}).status_code == 401
    view = api.get("/api/v1/plan", headers=admin).json()
    assert view["apply"] == "auto" and view["pending"]["digest"] == digest
    assert view["pending"]["added"][0]["services"][0]["version"] == HOSTILE  # JSON: as stored
    assert api.post("/api/v1/plan/apply", json={"digest": "nonsense"}, headers=admin).status_code == 422
    stale = api.post("/api/v1/plan/apply", json={"digest": "f" * 64}, headers=admin)
    assert stale.status_code == 409 and "review again" in stale.json()["detail"]
    done = api.post("/api/v1/plan/apply", json={"digest": digest}, headers=admin)
    assert done.status_code == 200 and done.json()["status"] == "approved"
    assert done.json()["approved_by"] == ADMIN
    assert api.post("/api/v1/plan/apply", json={"digest": digest}, headers=admin).status_code == 409
    # With the session cookie the API needs the CSRF header, as every change does.
    browser, csrf = logged_in(app)
    newer = held_plan(web.db, ip="198.18.0.21")
    assert browser.post("/api/v1/plan/apply", json={"digest": newer}).status_code == 403
    ok = browser.post("/api/v1/plan/apply", json={"digest": newer}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert statuses(web) == ["superseded", "approved"]


def test_the_virtual_hosts_page_and_api(site):
    app, web, folder = site
    state = folder / "state"
    state.mkdir()
    browser, _ = logged_in(app)
    page = browser.get("/virtual-hosts").text
    assert "198.18.0.10" in page and "Microsoft Windows XP SP2" in page
    assert "lin1 198.18.0.240" in page and "cannot be read" in page
    data = client(app).get("/api/v1/virtual-hosts", headers=bearer(app, VIEWER)).json()
    (decoy,) = data["virtual_hosts"]
    assert (decoy["ip"], decoy["events"], decoy["os"]) == ("198.18.0.10", 30, "Microsoft Windows XP")
    assert decoy["os_class"]["family"] == "Windows" and decoy["last_event"]
    assert data["redirects_known"] is False
    # The daemon's health file says which ports go to a backend now.
    with web.db.session() as session:
        from dynapot.db.models import Host, Port, utcnow

        host = session.scalars(select(Host).where(Host.ip == "198.18.0.10")).one()
        session.add(
            Port(
                host_id=host.id,
                protocol="tcp",
                port=22,
                state="open",
                service="ssh",
                product=HOSTILE,
                tool="dynapot",
                seen_at=utcnow(),
            )
        )
    (state / "daemon-status.json").write_text(
        json.dumps({"redirects": {"198.18.0.10": {"22": "198.18.0.240"}}})
    )
    data = client(app).get("/api/v1/virtual-hosts", headers=bearer(app, ADMIN)).json()
    (service,) = data["virtual_hosts"][0]["services"]
    assert service["redirect"] == {"address": "198.18.0.240", "backend": "lin1"} and data["redirects_known"]
    page = browser.get("/virtual-hosts").text
    assert "→ lin1 198.18.0.240" in page and HOSTILE not in page


def test_the_apply_mode_is_a_setting_validated_and_audited(site):
    app, web, folder = site
    api, admin = client(app), bearer(app, ADMIN)
    refused = api.patch("/api/v1/settings", json={"planner.apply": "later"}, headers=admin)
    assert refused.status_code == 422 and "planner.apply" in refused.json()["errors"]
    changed = api.patch("/api/v1/settings", json={"planner.apply": "hold"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["changed"] == [
        {"setting": "planner.apply", "old": "auto", "new": "hold"}
    ]
    assert 'apply = "hold"' in (folder / "dynapot.toml").read_text()
    browser, _ = logged_in(app)
    assert '<b id="apply-mode">hold</b>' in browser.get("/plan").text
    assert ("setting.change", "planner.apply") in [(r[1], r[2]) for r in audit_rows(web)]


def test_plan_and_virtual_hosts_need_a_login(site):
    app, _, _ = site
    anonymous: TestClient = client(app)
    for path in ("/plan", "/virtual-hosts"):
        assert anonymous.get(path).status_code == 303
    assert anonymous.post("/plan/apply", data={"digest": "0" * 64}).status_code == 303
    for path in ("/api/v1/plan", "/api/v1/virtual-hosts"):
        assert anonymous.get(path).status_code == 401


def test_activity_counts_the_newest_events_only_and_says_so(site, monkeypatch):
    app, web, _ = site
    from dynapot.web import plan_queries

    settings = web.current_settings()
    full = plan_queries.virtual_hosts(web.db, settings)
    assert full["virtual_hosts"][0]["events"] == 30 and full["activity_capped"] is False
    monkeypatch.setattr(plan_queries, "ACTIVITY_EVENTS", 10)
    capped = plan_queries.virtual_hosts(web.db, settings)
    assert capped["virtual_hosts"][0]["events"] == 10 and capped["activity_capped"] is True
    assert capped["virtual_hosts"][0]["last_event"] == full["virtual_hosts"][0]["last_event"]
    browser, _ = logged_in(app)
    assert 'id="capped"' in browser.get("/virtual-hosts").text
