"""The sensor's event path: journaled, stored on every backend, refused rows quarantined, replayed.

Real databases (SQLite and a PostgreSQL this session starts), real files, the real event
writer process where it matters; no network.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dynapot.db import Access, open_database
from dynapot.db.models import EventJournal, HoneypotEvent, QuarantinedEvent
from dynapot.sensor import eventlog
from dynapot.sensor.eventformat import Event, decode, encode, honeyd_line
from dynapot.sensor.eventstore import EventSink, lag_bucket, lag_quantile
from dynapot.sensor.journal import HEADER, MAGIC, Journal, JournalError, Position

ATTACKER, VIP = 0xC6120003, 0xC6120064
HOSTILE_USER = "root\n2027-01-01-00:00:00.0000 tcp(6) S 6.6.6.6 1 198.18.0.100 22\x1b[31m\x00"


def event(i: int = 0, **changes) -> Event:
    e = Event(time.time(), "tcp", ATTACKER, 40000 + i, VIP, 21, "connect")
    for name, value in changes.items():
        setattr(e, name, value)
    return e


def login(user: str, i: int = 0) -> Event:
    return event(i, kind="login", detail=f"{user}:secret", data={"user": user, "password": "secret"})


def count(db, model=HoneypotEvent) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def records(segment: Path) -> list[bytes]:
    """The records of one journal segment, read as the format says (header, payload, CRC)."""
    data, out, at = segment.read_bytes(), [], 0
    while at + HEADER.size <= len(data):
        magic, _, length, crc = HEADER.unpack_from(data, at)
        payload = data[at + HEADER.size : at + HEADER.size + length]
        assert magic == MAGIC and zlib.crc32(payload) == crc
        out.append(payload)
        at += HEADER.size + length
    return out


# ---------------------------------------------------------------------- recording never stops


def test_hostile_strings_are_stored_on_every_backend_and_recording_goes_on(db, tmp_path):
    """NUL (PostgreSQL refuses it in text and JSON), undecodable bytes, overlong fields, values
    JSON cannot carry: stored made safe, and the events after them too."""
    raw_user = b"ro\x00ot\xff\xfe".decode("utf-8", "surrogateescape")
    hostile = [
        login("ro\x00ot"),
        login(raw_user, 1),
        event(2, kind="k" * 40, attacker_os="W" * 300, scan_tool="t" * 100, detail="d" * 100_000),
        event(3, kind="data", data={"nan": float("nan"), "raw": b"\x00\xff", "n\x00": [1 << 80]}),
    ]
    after = [login("admin", 10 + i) for i in range(5)]
    writer = eventlog.EventWriter(db, tmp_path / "honeyd.log", journal=Journal(tmp_path / "journal"))
    try:
        for e in hostile + after:
            writer.submit(e)
        assert writer.flush()
    finally:
        writer.close()
    assert count(db) == len(hostile) + len(after) and count(db, QuarantinedEvent) == 0
    with db.session() as session:
        details = set(session.scalars(select(HoneypotEvent.detail)))
        users = [row["user"] for row in session.scalars(select(HoneypotEvent.data)) if row and "user" in row]
    assert "ro\\x00ot:secret" in details and "ro\\x00ot\\xff\\xfe:secret" in details
    assert "ro\\x00ot" in users and users.count("admin") == 5
    assert writer.stats()["drops"] == {}


def test_a_row_the_database_refuses_is_quarantined_and_the_rest_stored(db):
    """The batch is split until the refused row is alone: 49 stored, 1 in quarantine with its
    error and its escaped fields, the journal position recorded; nothing retried forever."""
    sink = EventSink(db, None, journal_id="a" * 32)
    batch = [login("user", i) for i in range(49)]
    batch.insert(20, event(99, sport=1 << 70, detail="poison\x00"))  # beyond any integer column
    outcome = sink.write(batch, Position(1, 4096))
    assert (outcome.stored, outcome.quarantined, outcome.abandoned) == (49, 1, 0)
    assert count(db) == 49
    with db.session() as session:
        row = session.scalars(select(QuarantinedEvent)).one()
        journal = session.get(EventJournal, "a" * 32)
    assert row.error and "poison\\u0000" in row.raw and row.src_ip == "198.18.0.3" and row.kind == "connect"
    assert (journal.segment, journal.journal_offset, journal.events) == (1, 4096, 49)


def test_the_honeyd_log_gets_one_escaped_line_per_event(tmp_path):
    sink = EventSink(None, tmp_path / "honeyd.log")
    sink.write([login(HOSTILE_USER), event(1, kind="close", bytes_in=5)])
    sink.close()
    text = (tmp_path / "honeyd.log").read_text()
    lines = text.splitlines()
    assert len(lines) == 2 and "\x1b" not in text and "\x00" not in text
    assert " tcp(6) - 198.18.0.3 40000 198.18.0.100 21: login root\\x0a2027-01-01" in lines[0]
    assert not any(line.startswith("2027-01-01") for line in lines)  # no forged line
    assert honeyd_line(Event(0, "tcp", 0, None, 0, None, "sensor-start", "a\nb")).endswith(
        "sensor-start a\\x0ab"
    )


def test_a_forged_journal_is_read_as_data_never_run(db, tmp_path):
    """The journal is the unprivileged sensor's file: a record that is not events (a pickle, a
    wrong field) is quarantined as escaped text; the good events around it are stored."""
    sink = EventSink(db, None)
    good = encode([event(1), event(2)])
    outcome = sink.write_payload(
        good + b',[1,"tcp","x",1,2,3,"k",null,null,null,null,0,0],' + encode([event(3)])
    )
    assert (outcome.stored, outcome.quarantined) == (3, 1)
    pickled = b"\x80\x05\x95cos\nsystem\n"
    assert sink.write_payload(pickled).quarantined == 1
    assert count(db) == 3 and count(db, QuarantinedEvent) == 2
    events, malformed = decode(
        b'[0,"tcp",1,70000,3,4,"k",null,null,null,null,0,0],[0,"tcp",1,2,3,4,"k",null]'
    )
    assert events == [] and "ports" in malformed[0][1] and "13 fields" in malformed[1][1]  # field by field


# ---------------------------------------------------------------------- the journal


def test_each_loop_turn_is_one_journal_record(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'd.db'}")
    writer = eventlog.EventWriter(db, None, journal=Journal(tmp_path / "journal"))

    async def turns() -> None:
        for i in range(300):  # one turn: 300 events
            writer.submit(event(i))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        for i in range(7):  # the next turn: 7
            writer.submit(event(i))
        await asyncio.sleep(0)

    try:
        asyncio.run(turns())
        assert writer.flush()
    finally:
        writer.close()
    written = records(tmp_path / "journal" / Journal.name(1))
    assert [len(decode(r)[0]) for r in written] == [300, 7]
    assert count(db) == 307


def test_what_a_crash_left_in_the_journal_is_stored_once_at_the_next_start(db, tmp_path):
    folder = tmp_path / "journal"
    journal = Journal(folder)
    batches = [[login("root", 100 * b + i) for i in range(100)] for b in range(3)]
    positions = [journal.append(encode(batch)) for batch in batches]
    # The writer had stored the first two batches (with their position) when the sensor died.
    EventSink(db, None, journal_id=journal.id).write(batches[0] + batches[1], positions[1])
    os.write(journal._fd, HEADER.pack(MAGIC, 0, 1000, 0) + b"torn")  # the tail of a write cut short
    journal.close()  # (a crash leaves no more than this)
    for start in (1, 2):  # the next start, and one more: nothing is stored twice
        writer = eventlog.EventWriter(db, None, journal=Journal(folder))
        writer.submit(Event.news("sensor-start", "1 hosts"))
        assert writer.flush()
        writer.close()
        assert count(db) == 300 + start  # the three batches, and each start's own news
    assert writer.stats()["replayed"] == 0
    assert not (folder / Journal.name(1)).exists()  # stored: deleted


def test_a_full_journal_is_counted_and_its_events_still_stored(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'd.db'}")
    writer = eventlog.EventWriter(db, None, journal=Journal(tmp_path / "journal", max_bytes=2000))
    try:
        for i in range(100):
            writer.submit(event(i))
        assert writer.flush()
    finally:
        writer.close()
    assert count(db) == 100
    assert writer.stats()["drops"][eventlog.JOURNAL_FULL] > 0
    assert writer.stats()["journal"]["full"] > 0


def test_one_journal_has_one_writer(tmp_path):
    first = Journal(tmp_path / "journal")
    try:
        with pytest.raises(JournalError, match="in use"):
            Journal(tmp_path / "journal", lock_timeout=0.2)
    finally:
        first.close()


# ---------------------------------------------------------------------- the writer process


def test_a_writer_process_that_dies_is_restarted_and_its_batch_sent_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    db = open_database(url)
    writer = eventlog.EventWriter(db, None, child=True, db_url=url, journal=Journal(tmp_path / "journal"))
    try:
        for i in range(10):
            writer.submit(event(i))
        assert writer.flush()
        child = writer._sink.process
        child.send_signal(signal.SIGSTOP)  # it takes the next batch and never answers ...
        for i in range(10, 30):
            writer.submit(event(i))
        flushed = threading.Thread(target=writer.flush)
        flushed.start()
        while writer._queue:  # ... the batch is in its pipe
            time.sleep(0.01)
        time.sleep(0.2)
        child.kill()  # ... and it dies
        flushed.join()
        assert writer.flush()
    finally:
        writer.close()
    assert count(db) == 30  # every event once
    assert writer.stats()["drops"][eventlog.WRITER_RESTARTS] == 1


def test_the_writer_stops_while_the_database_fails_and_the_journal_keeps_the_events(tmp_path, monkeypatch):
    """SIGTERM's path: close() gives up on a database that takes nothing, the events stay in the
    journal (counted), and the next start stores them."""
    monkeypatch.setattr(eventlog, "STALL", 0.5)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    open_database(url).dispose()
    broken = open_database(url, access=Access.READ)  # every write fails: a database that is down
    writer = eventlog.EventWriter(broken, None, journal=Journal(tmp_path / "journal"))
    for i in range(50):
        writer.submit(event(i))
    writer.close()  # returns: the sensor stops
    assert writer.stats()["drops"][eventlog.DEFERRED] == 50 and writer.lost_total == 0
    db = open_database(url)
    again = eventlog.EventWriter(db, None, journal=Journal(tmp_path / "journal"))
    assert again.flush()
    again.close()
    assert count(db) == 50 and again.replayed == 50


def test_lag_quantiles_come_from_the_histogram():
    histogram = {lag_bucket(0.0001): 98, lag_bucket(0.25): 1, lag_bucket(2.0): 1}
    assert lag_quantile(histogram, 0.5) == 0.1
    assert 250 <= lag_quantile(histogram, 0.99) < 320
    assert 2000 <= lag_quantile(histogram, 1.0) < 2520
    assert lag_quantile({}, 0.99) is None
