"""Settings changes the web child hands to the daemon (`dynapot run`): the daemon writes the file
as root and audits it; it takes only the page's editable settings, whatever the web child sends;
a change nobody answers is abandoned and never applied later; secrets do not stay in the table.

The "daemon" here is `settings_requests.settle` run in a thread, as the daemon's loop runs it;
the web side is the real `change_settings` the page and the API call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from web_fixtures import ADMIN, make_database

from dynapot.config import load_settings
from dynapot.daemon import settings_requests
from dynapot.daemon.settings_store import SettingsRefused
from dynapot.db.models import AuditEntry, SettingsRequest
from dynapot.web.context import WebContext
from dynapot.web.settings_change import change_settings


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[tuple[WebContext, Path]]:
    db, path = make_database(tmp_path, db_url)
    web = WebContext(db, load_settings(path), path, tls=True, settings_by_daemon=True)
    try:
        yield web, path
    finally:
        db.dispose()


class Daemon:
    """`settle` every 20 ms in a thread, as the daemon's loop does (stopped by the test)."""

    def __init__(self, web: WebContext, path: Path) -> None:
        self.stop = threading.Event()
        self.answered = 0

        def loop() -> None:
            while not self.stop.wait(0.02):
                self.answered += settings_requests.settle(web.db, path)

        self.thread = threading.Thread(target=loop, daemon=True)

    def __enter__(self) -> Daemon:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def audit_rows(web: WebContext) -> list[tuple[str, str, str | None, str | None]]:
    with web.db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "setting.change"))
        return [(a.actor, a.target, a.old_value, a.new_value) for a in rows]


def requests(web: WebContext) -> list[tuple[str, dict]]:
    with web.db.session() as session:
        return [
            (r.status, r.submitted)
            for r in session.scalars(select(SettingsRequest).order_by(SettingsRequest.id))
        ]


def test_the_daemon_writes_the_change_and_audits_it(site) -> None:
    web, path = site
    with Daemon(web, path) as daemon:
        made = change_settings(web, {"planner.fill_ratio": "0.25"}, ADMIN)
    assert [(c.dotted, c.old, c.new) for c in made] == [("planner.fill_ratio", "0.5", "0.25")]
    assert daemon.answered == 1
    assert "fill_ratio = 0.25" in path.read_text() and "# the admin's own comment" in path.read_text()
    assert audit_rows(web) == [(ADMIN, "planner.fill_ratio", "0.5", "0.25")]
    assert requests(web) == [("applied", {})]


def test_a_bad_value_comes_back_beside_its_field_and_changes_nothing(site) -> None:
    web, path = site
    before = path.read_text()
    with Daemon(web, path), pytest.raises(SettingsRefused) as refused:
        change_settings(web, {"planner.fill_ratio": "1.5", "discovery.mode": "active"}, ADMIN)
    assert "less than or equal to 1" in refused.value.errors["planner.fill_ratio"]
    assert path.read_text() == before and audit_rows(web) == []
    assert requests(web) == [("refused", {})]


def test_only_the_pages_settings_are_taken_whatever_the_web_child_sends(site) -> None:
    """A compromised web child writing the table itself still cannot choose the sensor's account."""
    web, path = site
    before = path.read_text()
    wanted = settings_requests.submit(
        web.db, {"daemon.sensor_user": "root", "planner.fill_ratio": "0.3"}, "x"
    )
    with Daemon(web, path), pytest.raises(SettingsRefused) as refused:
        settings_requests.answer(web.db, wanted)
    assert refused.value.errors == {"daemon.sensor_user": "not a setting that can be changed here"}
    assert path.read_text() == before and audit_rows(web) == []


def test_a_change_nobody_takes_is_abandoned_and_never_applied_later(site) -> None:
    web, path = site
    before = path.read_text()
    wanted = settings_requests.submit(web.db, {"alerts.urls": "json://user:secret@198.18.0.9/hook"}, ADMIN)
    with pytest.raises(SettingsRefused, match=r"did not take the change within 0\.3 s"):
        settings_requests.answer(web.db, wanted, wait=0.3)
    assert requests(web) == [("abandoned", {})]  # the URL's password is not kept
    assert settings_requests.settle(web.db, path) == 0  # a daemon coming up later applies nothing
    assert path.read_text() == before


def test_a_change_taken_and_never_answered_ends_the_wait(site) -> None:
    web, _ = site
    wanted = settings_requests.submit(web.db, {"planner.fill_ratio": "0.3"}, ADMIN)
    with web.db.session() as session:
        session.get(SettingsRequest, wanted).status = "working"  # a daemon that died while writing
    ticks = iter(range(100))
    with pytest.raises(SettingsRefused, match="has not answered"):
        settings_requests.answer(
            web.db, wanted, wait=5, clock=lambda: float(next(ticks)), sleep=lambda _: None
        )


def test_a_change_too_large_to_store_is_refused_at_once(site) -> None:
    web, _ = site
    with pytest.raises(SettingsRefused, match="larger than 256 KiB"):
        settings_requests.submit(web.db, {"networks": "198.18.0.0/24\n" * 30_000}, ADMIN)
    assert requests(web) == []


def test_standalone_web_writes_the_file_itself(site) -> None:
    web, path = site
    web.settings_by_daemon = False
    made = change_settings(web, {"discovery.mode": "passive"}, ADMIN)
    assert [c.dotted for c in made] == ["discovery.mode"] and 'mode = "passive"' in path.read_text()
    assert audit_rows(web) == [(ADMIN, "discovery.mode", "active", "passive")] and requests(web) == []
