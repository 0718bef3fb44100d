"""Alerts delivered to a real SMTP server (aiosmtpd) and a real webhook, with dedup, limits, retries."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from sqlalchemy import event, select

from dynapot.analysis.alerts import Alerter, Channel
from dynapot.analysis.findings import Finding
from dynapot.config import AlertSettings
from dynapot.db.models import Alert
from receivers import WebhookReceiver, free_port, receivers

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def finding(key: str = "scan:198.18.0.3:1", risk: str = "high", kind: str = "scan") -> Finding:
    return Finding(
        kind=kind,
        key=key,
        risk=risk,
        first_seen=T0,
        last_seen=T0,
        sources=("198.18.0.3",),
        targets=("198.18.0.20", "198.18.0.21"),
        ports=("22/tcp",),
        event_count=40,
        event_ids=(1, 2, 3),
        summary="198.18.0.3 touched 2 honeypots on 1 port",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_high_finding_reaches_the_mailbox_and_the_webhook_once(db):
    with receivers() as (smtp, hook):
        settings = AlertSettings(urls=(smtp.url(), hook.url()), retry_delay=0)
        alerter = Alerter(settings, db)
        assert alerter.consider(finding(), None) == "queued"
        assert alerter.consider(finding(), None) == "suppressed"  # the same scan again, within the window
        assert alerter.consider(finding(key="scan:198.18.0.9:1", risk="low"), None) == "ignored"
        asyncio.run(alerter.drain())
        assert len(smtp.messages) == 1 and len(hook.bodies) == 1
        assert smtp.messages[0]["Subject"] == "dynapot: HIGH scan from 198.18.0.3"
        assert "198.18.0.3 touched 2 honeypots" in hook.bodies[0]["message"]
    with db.session() as session:
        rows = session.scalars(select(Alert)).all()
        assert sorted(r.status for r in rows) == ["sent", "sent"]
        assert all(r.attempts == 1 for r in rows)


def test_an_escalated_finding_alerts_again():
    clock = Clock()
    alerter = Alerter(AlertSettings(), None, channels=[], clock=clock)
    assert alerter.consider(finding(risk="high")) == "queued"
    assert alerter.consider(finding(risk="high")) == "suppressed"
    assert alerter.consider(finding(risk="critical")) == "queued"
    clock.now += AlertSettings().window
    assert alerter.consider(finding(risk="critical")) == "queued"  # a new window


def test_a_flood_of_findings_becomes_a_few_messages_and_one_digest():
    clock = Clock()
    settings = AlertSettings(max_per_window=3, window=60)
    with WebhookReceiver() as hook:
        alerter = Alerter(settings, None, channels=[Channel(hook.url())], clock=clock)
        verdicts = [alerter.consider(finding(key=f"scan:198.18.1.{i}:1")) for i in range(40)]
        assert verdicts.count("queued") == 3 and verdicts.count("digest") == 37
        asyncio.run(alerter.drain())
        assert len(hook.bodies) == 3  # the digest waits for room in the window
        clock.now += 61
        asyncio.run(alerter.drain())
        assert len(hook.bodies) == 4
        assert hook.bodies[-1]["title"] == "dynapot: digest of 37 more findings"
        assert "... and" not in hook.bodies[-1]["message"]  # 37 lines fit


def test_a_failed_delivery_is_retried_then_stored_as_failed(db):
    dead = f"json://127.0.0.1:{free_port()}/hook"  # nobody listens there
    alerter = Alerter(AlertSettings(urls=(dead,), retries=2, retry_delay=0.01), db)
    alerter.consider(finding())
    asyncio.run(alerter.drain())
    with db.session() as session:
        (row,) = session.scalars(select(Alert)).all()
        assert row.status == "failed" and row.attempts == 3 and row.last_error
    assert alerter.counts["failed"] == 1


def test_secrets_in_alert_urls_are_masked_in_what_is_stored(db):
    with receivers() as (smtp, _):
        url = smtp.url().replace("mailto://", "mailto://dynapot:hunter2@")
        alerter = Alerter(AlertSettings(urls=(url,), retries=0), db)
        assert "hunter2" not in alerter.channels[0].name
        alerter.consider(finding())
        asyncio.run(alerter.drain())
    with db.session() as session:
        assert all("hunter2" not in r.channel for r in session.scalars(select(Alert)))


def test_no_database_call_is_made_on_the_event_loop_thread(db):
    """The daemon calls `consider` in its event loop: the rows are stored and updated elsewhere.

    Every connection taken from the pool and every statement run is recorded with the thread
    that made it, while the alerter runs in a real loop against the real database.
    """
    threads: list[int] = []

    def record(*_: object) -> None:
        threads.append(threading.get_ident())

    dead = f"json://127.0.0.1:{free_port()}/hook"  # nobody listens there
    with WebhookReceiver() as hook:
        alerter = Alerter(AlertSettings(urls=(hook.url(), dead), retries=1, retry_delay=0.01), db)

        async def as_the_daemon_does() -> tuple[int, list[str]]:
            stop = asyncio.Event()
            delivering = asyncio.create_task(alerter.run(stop))
            await asyncio.sleep(0)  # the alerter is now waiting for messages
            keys = ("scan:198.18.0.3:1", "scan:198.18.0.3:1", "scan:198.18.0.4:1")
            verdicts = [alerter.consider(finding(key=key), None) for key in keys]
            stop.set()  # it delivers what is queued, then returns
            await delivering
            return threading.get_ident(), verdicts

        listeners = (("checkout", record), ("before_cursor_execute", record))
        for name, listener in listeners:
            event.listen(db.engine, name, listener)
        try:
            loop_thread, verdicts = asyncio.run(as_the_daemon_does())
        finally:
            for name, listener in listeners:
                event.remove(db.engine, name, listener)
        assert len(hook.bodies) == 2
    assert verdicts == ["queued", "suppressed", "queued"]
    assert threads, "the rows were written"
    assert loop_thread not in threads
    with db.session() as session:
        rows = session.scalars(select(Alert)).all()
        assert sorted((r.status, r.attempts) for r in rows) == [("failed", 2)] * 2 + [("sent", 1)] * 2
        assert all(r.last_error for r in rows if r.status == "failed")
    assert alerter.counts["sent"] == 2 and alerter.counts["failed"] == 2


HOSTILE_USER = "root\nsources:    6.6.6.6\x1b[2J<b>bold</b>**md**"


def test_attacker_strings_reach_mail_and_chat_inert():
    """A user name with a newline, a terminal escape, HTML and markdown: one escaped line in every
    channel (HTML mail, a plain webhook, a markdown webhook), never markup or a forged line."""
    hostile = finding(key="brute-force:198.18.0.3:1")
    hostile = Finding(
        **{
            **{f: getattr(hostile, f) for f in hostile.__dataclass_fields__},
            "summary": (f"198.18.0.3 tried 12 logins on 198.18.0.20 22/tcp (users {HOSTILE_USER})"),
        }
    )
    with receivers() as (smtp, hook):
        markdown_hook = hook.url() + "?format=markdown"
        html_mail = smtp.url() + "&format=html"
        settings = AlertSettings(urls=(smtp.url(), html_mail, hook.url(), markdown_hook), retry_delay=0)
        alerter = Alerter(settings, None)
        assert alerter.consider(hostile, None) == "queued"
        asyncio.run(alerter.drain())
        assert len(smtp.messages) == 2 and len(hook.bodies) == 2
        parts = {p.get_content_type(): p.get_payload(decode=True).decode()
                 for mail in smtp.messages for p in mail.walk() if not p.is_multipart()}  # fmt: skip
        plain, markdown = (b["message"] for b in sorted(hook.bodies, key=lambda b: "\\*" in b["message"]))
    for text in [*parts.values(), plain, markdown]:
        assert "\x1b" not in text and "x1b" in text  # shown, not sent (markdown escapes its backslash)
        assert not any(line.lstrip("> ").startswith("sources:    6.6.6.6") for line in text.splitlines())
    assert "&lt;b&gt;bold&lt;/b&gt;" in parts["text/html"] and "<b>bold" not in parts["text/html"]
    assert "\\*\\*md\\*\\*" in markdown and "**md**" not in markdown  # the markdown channel: escaped
    assert "<b>bold</b>**md**" in plain  # plain text stays as typed (it is not interpreted)
