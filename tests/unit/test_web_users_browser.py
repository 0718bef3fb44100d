"""User management and the audit log in Debian's Chromium against a real `dynapot web` (the
server, browser and page fixtures are test_web_browser's); screenshots in test-artifacts/web/."""

from __future__ import annotations

from test_web_browser import chromium, log_in, page, server, shot  # noqa: F401 - the fixtures
from web_fixtures import ADMIN, VIEWER

from dynapot.web import accounts


def test_an_admin_creates_a_user_who_logs_in_and_the_audit_log_shows_it(page, server, chromium):  # noqa: F811
    _, db, _ = server
    log_in(page)
    page.wait_for_selector("#real-hosts")
    page.click("nav >> text=Users")
    page.wait_for_selector("table#users")
    shot(page, "20-users")
    page.fill("#new-name", "erin")
    page.select_option("#new-role", "viewer")
    page.click("#create-user button[type=submit]")
    password = page.text_content("#new-password")
    assert password and len(password) >= 12
    shot(page, "21-user-created")
    row = page.locator("tr[data-user='erin']")
    assert row.locator("td.state").text_content() == "active"
    # the new user logs in with the password shown, in a browser of their own
    other = chromium.new_context(ignore_https_errors=True, base_url=server[0])
    try:
        tab = other.new_page()
        log_in(tab, "erin", password)
        tab.wait_for_selector("#real-hosts")
        assert tab.locator("nav >> text=Users").count() == 0  # a viewer: no user management
    finally:
        other.close()
    # disable, then the last admin cannot be made a viewer
    page.locator("tr[data-user='erin'] button[data-action=disable]").click()
    page.wait_for_selector("text=erin is disabled")
    assert page.locator("tr[data-user='erin'] td.state").text_content() == "disabled"
    page.locator(f"tr[data-user='{ADMIN}'] select[name=role]").select_option("viewer")
    page.locator(f"tr[data-user='{ADMIN}'] form:has(select) button").click()
    page.wait_for_selector("text=is the last admin")
    shot(page, "22-last-admin-refused")
    assert {u["name"]: u["role"] for u in accounts.list_users(db)}[ADMIN] == "admin"
    page.click("nav >> text=Audit")
    page.wait_for_selector("table#audit")
    text = page.text_content("table#audit")
    assert "user.create" in text and "user.disable" in text and "erin" in text
    shot(page, "23-audit-log")


def test_a_viewer_gets_no_user_management(page, server):  # noqa: F811
    log_in(page, VIEWER)
    page.wait_for_selector("#real-hosts")
    assert page.locator("nav >> text=Users").count() == 0
    answer = page.goto("/users")
    assert answer is not None and answer.status == 403
