"""The hourly roll-up of the honeyd log, on SQLite and PostgreSQL: the report read through it is
the report read from the events (Hypothesis: random logs, marks, periods and expiries), a refresh
is idempotent and batch-size blind, two refreshers at once count nothing twice, expiry deletes the
hours it emptied, and `dynapot report --refresh` fills it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from dynapot.analysis.report import build_report, events_by_kind
from dynapot.analysis.report.queries import COMMANDS, LOGINS
from dynapot.analysis.report.rollup import refresh_rollup, rollup_mark
from dynapot.cli.reports import register
from dynapot.config import ExpirySettings
from dynapot.db.models import EventRollup, EventRollupMark, HoneypotEvent
from dynapot.events import NO_FLOW_ADDRESS
from dynapot.inventory import expire

BASE = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)
SPAN = 6 * 3600  # the log covers six hours from BASE
KINDS = ["connect", "probe", "datagram", "login", "login-key", "command", "request", "icmp", "echo"]
SOURCES = ["203.0.113.1", "203.0.113.2", "100.64.0.9", NO_FLOW_ADDRESS]
TARGETS = ["198.18.0.10", "198.18.0.11", NO_FLOW_ADDRESS]
GUESSES = [None, "Linux 2.2", "Windows XP", "linux", "Ärger"]  # case and non-ASCII: collation
TOOLS = [None, "nmap", "nmap OS scan", "masscan"]

times = st.integers(0, SPAN * 1000).map(lambda ms: BASE + timedelta(milliseconds=ms))
on_hours = st.integers(0, SPAN // 3600).map(lambda h: BASE + timedelta(hours=h))
moments = st.one_of(times, on_hours)  # edges both inside hours and on their boundaries

events = st.fixed_dictionaries(
    {
        "time": moments,
        "src_ip": st.sampled_from(SOURCES),
        "dst_ip": st.sampled_from(TARGETS),
        "protocol": st.sampled_from(["tcp", "udp"]),
        "dst_port": st.one_of(st.none(), st.sampled_from([22, 80, 445])),
        "kind": st.sampled_from(KINDS),
        "count": st.one_of(st.none(), st.integers(1, 1000)),
        "attacker_os": st.sampled_from(GUESSES),
        "scan_tool": st.sampled_from(TOOLS),
    }
)


def store(db, rows: list[dict]) -> None:
    with db.session() as session:
        session.add_all(
            HoneypotEvent(
                time=row["time"],
                protocol=row["protocol"],
                src_ip=row["src_ip"],
                src_port=40000,
                dst_ip=row["dst_ip"],
                dst_port=row["dst_port"],
                kind=row["kind"],
                detail=f"{row['kind']} detail",
                attacker_os=row["attacker_os"],
                scan_tool=row["scan_tool"],
                data=None if row["count"] is None else {"count": row["count"]},
            )
            for row in rows
        )


def clear(db) -> None:
    with db.session() as session:
        for model in (HoneypotEvent, EventRollup, EventRollupMark):
            session.execute(delete(model))


def both_ways(db, since: datetime, until: datetime) -> None:
    """The report and events by kind through the roll-up equal those from the events alone."""
    for limit, rows in ((50, 500), (2, 3)):  # whole lists, and cut ones (top lists, latest events)
        read = build_report(db, since, until, now=BASE, limit=limit, rows=rows, use_rollup=True)
        raw = build_report(db, since, until, now=BASE, limit=limit, rows=rows, use_rollup=False)
        assert read.as_dict() == raw.as_dict()
        # the latest events lists, against a plain query of the events (both ways share them)
        for section, kinds in (("credentials", LOGINS), ("commands", COMMANDS)):
            expected = latest(db, since, until, kinds, rows)
            assert [(c["time"], c["src"], c["kind"]) for c in read.sections[section]] == expected
    assert events_by_kind(db, since, until) == events_by_kind(db, since, until, use_rollup=False)


def latest(db, since: datetime, until: datetime, kinds: tuple[str, ...], rows: int) -> list[tuple]:
    e = HoneypotEvent
    with db.session() as session:
        found = session.execute(
            select(e.time, e.src_ip, e.kind)
            .where(e.time >= since, e.time < until, e.src_ip != NO_FLOW_ADDRESS, e.kind.in_(kinds))
            .order_by(e.time.desc(), e.id.desc())
            .limit(rows)
        ).all()
    return [(time.isoformat(timespec="seconds"), src, kind) for time, src, kind in reversed(found)]


def rollup_rows(db) -> list[tuple]:
    r = EventRollup
    with db.session() as session:
        return list(
            session.execute(
                select(
                    r.hour,
                    r.src_ip,
                    r.dst_ip,
                    r.protocol,
                    r.dst_port,
                    r.kind,
                    r.events,
                    r.rows,
                    r.first_seen,
                    r.last_seen,
                    r.attacker_os,
                    r.scan_tool,
                ).order_by(r.hour, r.src_ip, r.dst_ip, r.protocol, r.dst_port, r.kind)
            ).all()
        )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(events, max_size=40),
    later=st.lists(events, max_size=20),
    batch=st.integers(1, 50),
    batches=st.one_of(st.none(), st.integers(0, 3)),
    since=moments,
    length=st.one_of(st.integers(1, SPAN + 3600), st.sampled_from([3600, 7200, SPAN])),
    expiry=st.one_of(st.none(), moments),
)
def test_the_report_through_the_rollup_equals_the_report_from_the_events(
    db, first, later, batch, batches, since, length, expiry
):
    clear(db)
    store(db, first)
    refresh_rollup(db, batch=batch, max_batches=batches)  # the mark anywhere in the log
    store(db, later)  # past the mark: read from the events
    if expiry is not None:
        with db.session() as session:  # expiry's cutoff, as if the admin's age ended there
            session.execute(delete(HoneypotEvent).where(HoneypotEvent.time < expiry))
        now = expiry + timedelta(days=10)
        expire(db, ExpirySettings(honeypot_events=10), now=now)
    until = since + timedelta(seconds=length)
    both_ways(db, since, until)
    both_ways(db, BASE - timedelta(days=1), BASE + timedelta(days=1))  # everything, whole hours
    both_ways(db, BASE - timedelta(days=3), BASE - timedelta(days=2))  # nothing


def test_refresh_is_idempotent_and_blind_to_the_batch_size(db):
    log = [
        {
            "time": BASE + timedelta(minutes=7 * n),
            "src_ip": SOURCES[n % 4],
            "dst_ip": TARGETS[n % 3],
            "protocol": "tcp",
            "dst_port": (None, 22, 80)[n % 3],
            "kind": KINDS[n % len(KINDS)],
            "count": n if n % 2 else None,
            "attacker_os": GUESSES[n % len(GUESSES)],
            "scan_tool": TOOLS[n % len(TOOLS)],
        }
        for n in range(200)
    ]
    store(db, log)
    assert refresh_rollup(db) == 200
    whole = rollup_rows(db)
    assert refresh_rollup(db) == 0  # nothing new: nothing counted again
    assert rollup_rows(db) == whole
    with db.session() as session:
        assert rollup_mark(session)[0] == session.scalar(select(func.max(HoneypotEvent.id)))
        # every flow event is summed once, noise as the packets it stands for
        summed = session.scalar(select(func.sum(EventRollup.rows)))
        flows = session.scalar(select(func.count()).where(HoneypotEvent.src_ip != NO_FLOW_ADDRESS))
        assert summed == flows
    clear(db)
    store(db, log)
    assert refresh_rollup(db, batch=3) == 200  # many small transactions, the same sums
    assert rollup_rows(db) == whole
    with pytest.raises(ValueError):
        refresh_rollup(db, batch=0)


def test_two_refreshers_at_once_count_each_event_once(db):
    store(
        db,
        [
            {
                "time": BASE + timedelta(seconds=n),
                "src_ip": SOURCES[n % 3],
                "dst_ip": TARGETS[n % 2],
                "protocol": "tcp",
                "dst_port": 22,
                "kind": "connect",
                "count": None,
                "attacker_os": None,
                "scan_tool": None,
            }
            for n in range(600)
        ],
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            refresh_rollup(db, batch=25)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as session:
        assert session.scalar(select(func.sum(EventRollup.events))) == 600


def test_expiry_deletes_the_hours_it_emptied_and_reports_still_agree(db):
    log = [
        {
            "time": BASE + timedelta(minutes=20 * n),
            "src_ip": SOURCES[n % 3],
            "dst_ip": TARGETS[0],
            "protocol": "tcp",
            "dst_port": 22,
            "kind": "probe",
            "count": 5,
            "attacker_os": None,
            "scan_tool": None,
        }
        for n in range(18)  # six hours, three events an hour
    ]
    store(db, log)
    refresh_rollup(db)
    cutoff = BASE + timedelta(hours=2, minutes=30)
    counts = expire(db, ExpirySettings(honeypot_events=1), now=cutoff + timedelta(days=1))
    assert counts["honeypot_events"] == 8  # 00:00 to 02:20
    assert counts["event_rollup"] == 2 * 3  # hours 00 and 01, three sources; 02 holds the cutoff
    with db.session() as session:
        hours = sorted(set(session.scalars(select(EventRollup.hour))))
        assert hours == [int((BASE + timedelta(hours=h)).timestamp()) for h in range(2, 6)]
        assert rollup_mark(session)[1] == cutoff
    both_ways(db, BASE, BASE + timedelta(hours=6))
    report = build_report(db, BASE, BASE + timedelta(hours=6), now=BASE)
    assert report.totals["events"] == 10 * 5
    # an older cutoff later (the admin raised the age) does not move the mark back
    expire(db, ExpirySettings(honeypot_events=2), now=cutoff + timedelta(days=1))
    with db.session() as session:
        assert rollup_mark(session)[1] == cutoff


def test_report_refresh_fills_the_rollup_first(db_url, db):
    group = click.Group()
    register(group)
    store(
        db,
        [
            {
                "time": BASE + timedelta(minutes=n),
                "src_ip": SOURCES[0],
                "dst_ip": TARGETS[0],
                "protocol": "tcp",
                "dst_port": 80,
                "kind": "request",
                "count": None,
                "attacker_os": None,
                "scan_tool": None,
            }
            for n in range(90)
        ],
    )
    args = ["report", "--since", "2027-03-01T00:00:00", "--until", "2027-03-01T03:00:00", "--format", "json"]
    result = CliRunner().invoke(group, [*args, "--refresh", "--db", db_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "roll-up: 90 new events summed" in result.output
    with db.session() as session:
        assert session.scalar(select(func.sum(EventRollup.rows))) == 90
