"""User management and the audit log (in-process, httpx through ASGI): admins only, CSRF, audited,
never the last admin."""

from __future__ import annotations

import re

import pytest
import test_web_app
from sqlalchemy import select
from test_web_app import audit_rows, client, logged_in
from web_fixtures import ADMIN, HOSTILE, PASSWORD, VIEWER

from dynapot.db.models import AuditEntry, utcnow
from dynapot.web import accounts

site = test_web_app.site  # the fixture: the application over a seeded database (SQLite, PostgreSQL)


def act(browser, csrf: str, **fields):
    return browser.post("/users", data={"csrf_token": csrf, **fields})


def shown_password(page) -> str:
    return re.search(r'<code id="new-password">([^<]+)</code>', page.text).group(1)


def can_log_in(app, name: str, password: str) -> bool:
    browser = client(app)
    form = browser.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    answer = browser.post("/login", data={"login_csrf": token, "username": name, "password": password})
    return answer.status_code == 303


def test_only_admins_see_or_change_users_and_the_audit_log(site):
    app, web, _ = site
    viewer, csrf = logged_in(app, VIEWER)
    assert viewer.get("/users").status_code == 403 and viewer.get("/audit").status_code == 403
    refused = act(viewer, csrf, action="role", name=VIEWER, role="admin")
    assert refused.status_code == 403
    assert {u["name"]: u["role"] for u in accounts.list_users(web.db)}[VIEWER] == "viewer"
    assert 'href="/users"' not in viewer.get("/").text
    admin, _ = logged_in(app)
    assert 'href="/users"' in admin.get("/").text
    assert client(app).get("/users").status_code == 303  # nobody: to the login page


def test_every_change_needs_the_csrf_token(site):
    app, web, _ = site
    admin, _ = logged_in(app)
    for token in ("", "forged"):
        answer = act(admin, token, action="disable", name=VIEWER)
        assert answer.status_code == 403
    assert not any(u["disabled"] for u in accounts.list_users(web.db))


def test_a_created_users_password_is_shown_once_and_works(site):
    app, web, _ = site
    admin, csrf = logged_in(app)
    created = act(admin, csrf, action="create", name="carol", role="viewer")
    assert created.status_code == 200 and "shown only now" in created.text
    password = shown_password(created)
    assert can_log_in(app, "carol", password)
    assert password not in admin.get("/users").text  # once
    assert password not in admin.get("/audit").text
    assert (ADMIN, "user.create", "carol", None, "viewer") in audit_rows(web)
    again = act(admin, csrf, action="create", name="carol", role="viewer")
    assert again.status_code == 422 and "already a user" in again.text
    bad = act(admin, csrf, action="create", name=HOSTILE, role="viewer")
    assert bad.status_code == 422 and HOSTILE not in bad.text  # escaped
    assert act(admin, csrf, action="create", name="dave", role="root").status_code == 422


def test_role_changes_apply_at_once_and_never_remove_the_last_admin(site):
    app, web, _ = site
    admin, csrf = logged_in(app)
    last = act(admin, csrf, action="role", name=ADMIN, role="viewer")
    assert last.status_code == 422 and "last admin" in last.text
    assert act(admin, csrf, action="disable", name=ADMIN).status_code == 422
    with pytest.raises(accounts.AccountError, match="last admin"):
        accounts.set_role(web.db, ADMIN, "viewer")
    viewer, viewer_csrf = logged_in(app, VIEWER)
    assert act(admin, csrf, action="role", name=VIEWER, role="admin").status_code == 200
    assert viewer.get("/users").status_code == 200  # the same session, now an admin
    assert (ADMIN, "user.role", VIEWER, "viewer", "admin") in audit_rows(web)
    # two admins: either may step down, not both
    assert act(viewer, viewer_csrf, action="role", name=ADMIN, role="viewer").status_code == 200
    assert act(viewer, viewer_csrf, action="role", name=VIEWER, role="viewer").status_code == 422


def test_disable_ends_sessions_and_tokens_and_only_enable_restores_the_login(site):
    app, web, _ = site
    admin, csrf = logged_in(app)
    viewer, _ = logged_in(app, VIEWER)
    token = accounts.create_token(web.db, VIEWER, "script")
    assert client(app).get("/api/v1/hosts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page = act(admin, csrf, action="disable", name=VIEWER)
    assert page.status_code == 200 and f'data-user="{VIEWER}"' in page.text
    assert re.search(rf'data-user="{VIEWER}">.*?<td class="state">disabled</td>', page.text, re.S)
    assert viewer.get("/").status_code == 303  # its session is gone
    assert client(app).get("/api/v1/hosts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert not can_log_in(app, VIEWER, PASSWORD)
    late = accounts.create_token(web.db, VIEWER, "made-after")  # e.g. by the CLI: worthless too
    assert client(app).get("/api/v1/hosts", headers={"Authorization": f"Bearer {late}"}).status_code == 401
    assert act(admin, csrf, action="unlock", name=VIEWER).status_code == 200
    assert not can_log_in(app, VIEWER, PASSWORD)  # unlocking clears a lockout, not a disable
    assert act(admin, csrf, action="enable", name=VIEWER).status_code == 200
    assert can_log_in(app, VIEWER, PASSWORD)
    actions = [(a, t) for _, a, t, _, _ in audit_rows(web) if t == VIEWER]
    assert ("user.disable", VIEWER) in actions and ("user.enable", VIEWER) in actions


def test_a_reset_password_replaces_the_old_one_and_a_token_is_revoked(site):
    app, web, _ = site
    admin, csrf = logged_in(app)
    reset = act(admin, csrf, action="password", name=VIEWER)
    new = shown_password(reset)
    assert not can_log_in(app, VIEWER, PASSWORD) and can_log_in(app, VIEWER, new)
    token = accounts.create_token(web.db, VIEWER, "nightly")
    listed = admin.get("/users").text
    (token_id,) = [t["id"] for t in accounts.list_tokens(web.db) if t["name"] == "nightly"]
    assert f'data-token="{token_id}"' in listed and token not in listed
    assert act(admin, csrf, action="revoke", token=str(token_id)).status_code == 200
    assert accounts.token_identity(web.db, token) is None
    for bad in ("x", "-1", "9" * 30, "424242"):
        assert act(admin, csrf, action="revoke", token=bad).status_code == 422
    assert act(admin, csrf, action="explode", name=VIEWER).status_code == 422


def test_the_audit_log_pages_newest_first_and_escapes(site):
    app, web, _ = site
    with web.db.session() as session:
        for number in range(120):
            session.add(
                AuditEntry(
                    time=utcnow(),
                    actor=ADMIN,
                    action="setting.change",
                    target=f"t{number}",
                    old_value=HOSTILE,
                    new_value=str(number),
                )
            )
    admin, _ = logged_in(app)
    first = admin.get("/audit")
    assert first.status_code == 200 and HOSTILE not in first.text and "&lt;script&gt;" in first.text
    assert first.text.index(">t119<") < first.text.index(">t118<") and ">t69<" not in first.text
    older = re.search(r'href="/audit\?before=(\d+)" id="older"', first.text).group(1)
    second = admin.get(f"/audit?before={older}")
    assert ">t69<" in second.text and ">t119<" not in second.text
    with web.db.session() as session:
        total = len(session.scalars(select(AuditEntry.id)).all())
    seen, page, before = 0, first, None
    while True:
        seen += page.text.count("<tr><td>")
        found = re.search(r'href="/audit\?before=(\d+)" id="older"', page.text)
        if not found:
            break
        before = found.group(1)
        page = admin.get(f"/audit?before={before}")
    assert seen == total
    for bad in ("x", "-5", "9" * 40):
        assert admin.get(f"/audit?before={bad}").status_code == 200
