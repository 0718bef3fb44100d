"""The sensor's event log: every event journaled, then stored in honeypot_events (and a honeyd log).

The path of one event, and what keeps it from being lost unseen:

1. The packet loop `submit`s it: one list append. At the end of the loop's turn
   (`call_soon`) that turn's events are encoded once (`encode`: the body of a JSON array,
   ASCII) and appended to the local journal as one record (`journal.Journal`: one system call
   per turn, not per event), then queued for the writer thread.
2. The writer thread hands batches to the `EventSink`: in a child process
   (`python -m dynapot.sensor.eventsink`, so that database work never holds the packet loop's
   GIL) or, in tests, in this one. The sink makes every string safe for the database
   (`dynapot.textsafe`), inserts the batch and the journal's position in one transaction,
   then writes the batch in honeyd's log format, escaped (`honeyd_line`).
3. A batch the database refuses is split until the offending row is alone; that row goes to
   `quarantined_events` with the error, the others are stored: nothing is retried forever.
   A database that is down is retried with back-off while the events wait in the journal;
   at shutdown the sink gives up after a while (the sensor stops on SIGTERM) and the journal
   keeps them for the next start.
4. An event writer process that dies is restarted and its unacknowledged batch sent again
   (skipped when the database shows it stored). At start, whatever the journal holds beyond
   the database's position is replayed.

Whatever is dropped on the way is counted (`EventWriter.stats`, which `dynapot status`
shows): the queue full, the journal full or failing, quarantined rows, writer restarts,
events given up at shutdown. A loss in the queue is also recorded as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from socket import inet_ntoa
from typing import Any, BinaryIO, TextIO

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError, SQLAlchemyError

from dynapot.db import Database
from dynapot.db.models import EventJournal, HoneypotEvent, QuarantinedEvent
from dynapot.events import Kind
from dynapot.sensor.journal import Journal, Position
from dynapot.textsafe import TEXT_LIMIT, for_display, for_storage, json_for_storage

log = logging.getLogger(__name__)

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
# kinds that honeyd logs as a connection start (S), end (E) or single packet (-)
START_KINDS = frozenset({"connect", "udp-session"})
END_KINDS = frozenset({"close"})
FIELDS = 13  # an event's fields on the wire and in the journal
REPLAY_BYTES = 512 << 10  # journal bytes per replayed batch
WRITER_TRIES = 5  # restarts of the event writer process for one batch before it is given up
STALL = 10.0  # seconds without progress after which a shutdown stops waiting for the database

# Drop counters, as `dynapot status` names them.
QUEUE_FULL = "events: queue full (lost)"
JOURNAL_FULL = "events: journal full (not journaled)"
JOURNAL_FAILED = "events: journal write failed (not journaled)"
QUARANTINED = "events: quarantined (refused by the database)"
WRITER_RESTARTS = "event writer: restarts"
WRITER_LOST = "events: lost (the event writer failed on them)"
DEFERRED = "events: given up at shutdown (journaled, replayed at the next start)"
LOST_AT_SHUTDOWN = "events: given up at shutdown (not journaled, lost)"
LOST_COUNTERS = (QUEUE_FULL, WRITER_LOST, LOST_AT_SHUTDOWN)


@dataclass(slots=True)
class Event:
    """One touch of a virtual host. Addresses are ints on the hot path; rendered in the writer."""

    time: float  # epoch seconds
    proto: str
    src: int
    sport: int | None
    dst: int
    dport: int | None
    kind: str  # a `dynapot.events.Kind`: connect, close, probe, datagram, echo, data, login, conflict, ...
    detail: str | None = None
    attacker_os: str | None = None
    scan_tool: str | None = None
    data: dict[str, Any] | None = field(default=None)
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def news(cls, kind: str, detail: str) -> Event:
        """The sensor's own news (start, reload, lost events): no flow, no addresses."""
        return cls(time.time(), "tcp", 0, None, 0, None, kind, detail)


# ---------------------------------------------------------------------- the journal's and pipe's form


def _fallback(value: Any) -> Any:
    """What JSON cannot carry as it is (bytes, other objects), as storable JSON."""
    return json_for_storage(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_fallback)
_U32 = 1 << 32


def encode(events: Iterable[Event]) -> bytes:
    """The events as the body of a JSON array (ASCII): times in microseconds, then the fields."""
    rows = [
        (int(e.time * 1_000_000), e.proto, e.src, e.sport, e.dst, e.dport, e.kind, e.detail,
         e.attacker_os, e.scan_tool, e.data, e.bytes_in, e.bytes_out)
        for e in events
    ]  # fmt: skip
    try:
        body = _ENCODER.encode(rows)
    except (ValueError, TypeError, RecursionError):  # a huge integer, a cycle: made storable first
        body = _ENCODER.encode([json_for_storage(list(row)) for row in rows])
    return body[1:-1].encode("ascii")


def event_from(fields: Any) -> Event:
    """The event that decoded `fields` describe; ValueError when they describe none (the journal
    is written by the unprivileged sensor: its contents are checked, never trusted)."""
    if type(fields) is not list or len(fields) != FIELDS:
        raise ValueError(f"{FIELDS} fields expected")
    micros, proto, src, sport, dst, dport, kind, detail, attacker_os, scan_tool, data, b_in, b_out = fields
    if type(micros) is not int or not 0 <= micros < 1 << 53:
        raise ValueError("time out of range")
    if type(src) is not int or type(dst) is not int or not (0 <= src < _U32 and 0 <= dst < _U32):
        raise ValueError("addresses out of range")
    for port in (sport, dport):
        if port is not None and (type(port) is not int or not 0 <= port < 65536):
            raise ValueError("ports out of range")
    if type(proto) is not str or type(kind) is not str:
        raise ValueError("protocol and kind must be text")
    for value in (detail, attacker_os, scan_tool):
        if value is not None and type(value) is not str:
            raise ValueError("detail, attacker OS and scan tool must be text")
    if data is not None and type(data) is not dict:
        raise ValueError("data must be an object")
    if type(b_in) is not int or type(b_out) is not int:
        raise ValueError("byte counts must be integers")
    return Event(micros / 1_000_000, proto, src, sport, dst, dport, kind, detail, attacker_os, scan_tool,
                 data, b_in, b_out)  # fmt: skip


def _raw(value: Any) -> str:
    """Escaped text of whatever could not be stored: ASCII JSON (no NUL byte), bounded."""
    try:
        text_ = json.dumps(value, default=repr)
    except (ValueError, TypeError, RecursionError):
        text_ = repr(value)
    return for_storage(text_.encode("ascii", "backslashreplace").decode("ascii"), TEXT_LIMIT)


def _fields(event: Event) -> list[Any]:
    e = event
    return [e.time, e.proto, e.src, e.sport, e.dst, e.dport, e.kind, e.detail, e.attacker_os, e.scan_tool,
            e.data, e.bytes_in, e.bytes_out]  # fmt: skip


def decode(payload: bytes) -> tuple[list[Event], list[tuple[str, str]]]:
    """The events of a batch (records' JSON array bodies joined by commas), and what was not an
    event: (escaped raw text, why)."""
    try:
        items = json.loads(b"[" + payload + b"]")
    except (ValueError, RecursionError) as exc:
        return [], [(_raw(payload.decode("latin-1")), f"not a batch of events: {exc}")]
    events: list[Event] = []
    malformed: list[tuple[str, str]] = []
    for fields in items:
        try:
            events.append(event_from(fields))
        except (ValueError, TypeError) as exc:
            malformed.append((_raw(fields), f"not an event: {exc}"))
    return events, malformed


# ---------------------------------------------------------------------- rows and log lines


def honeyd_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%d-%H:%M:%S") + f".{int(moment.microsecond / 100):04d}"


def honeyd_line(event: Event) -> str:
    """The event in honeyd's log format (honeyd(8), 'LOGGING'): one line, whatever the attacker
    typed (its strings shown with `for_display`: no line end, no terminal escape)."""
    stamp = honeyd_time(event.time)
    kind = for_display(event.kind)
    detail = for_display(event.detail) if event.detail else ""
    if event.src == 0 and event.dst == 0:  # the sensor's own news (start, lost events): no flow
        return f"{stamp} dynapot: {kind} {detail}".rstrip()
    proto = f"{for_display(event.proto)}({PROTO_NUMBERS.get(event.proto, 0)})"
    src, dst = _ip_text(event.src), _ip_text(event.dst)
    flow = f"{src} {event.sport} {dst} {event.dport}"
    if event.proto == "icmp":
        line = f"{stamp} {proto} - {src} {dst}: {detail}"
    elif event.kind in START_KINDS:
        line = f"{stamp} {proto} S {flow}"
    elif event.kind in END_KINDS:
        line = f"{stamp} {proto} E {flow}: {event.bytes_in} {event.bytes_out}"
    else:
        line = f"{stamp} {proto} - {flow}: {kind}"
        if detail:
            line += f" {detail}"
    if event.attacker_os:
        line += f" [{for_display(event.attacker_os)}]"
    return line


def _ip_text(address: int) -> str:
    # inet_ntoa: a fifth of str(IPv4Address(...))'s cost, paid twice for every event stored.
    return inet_ntoa(address.to_bytes(4, "big"))


def _optional(value: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return None if value is None else for_storage(value, limit)


def _row(event: Event) -> dict[str, Any]:
    """The event as a honeypot_events row: every string and JSON value storable on every backend
    (`dynapot.textsafe`), clipped to its column."""
    data = dict(event.data) if event.data else {}
    if event.bytes_in or event.bytes_out:
        data["bytes_in"], data["bytes_out"] = event.bytes_in, event.bytes_out
    return {
        "time": datetime.fromtimestamp(event.time, UTC),
        "protocol": for_storage(event.proto, 8),
        "src_ip": _ip_text(event.src),
        "src_port": event.sport,
        "dst_ip": _ip_text(event.dst),
        "dst_port": event.dport,
        "kind": for_storage(event.kind, 32),
        "detail": _optional(event.detail),
        "attacker_os": _optional(event.attacker_os, 255),
        "scan_tool": _optional(event.scan_tool, 64),
        "data": json_for_storage(data) if data else None,
    }


# ---------------------------------------------------------------------- lag: event time to commit

LAG_STEPS = 10  # histogram buckets per decade, from 0.1 ms
LAG_BUCKETS = 81


def lag_bucket(seconds: float) -> int:
    milliseconds = seconds * 1000
    if milliseconds <= 0.1:
        return 0
    return min(LAG_BUCKETS - 1, math.ceil(LAG_STEPS * math.log10(milliseconds / 0.1)))


def lag_bound(bucket: int) -> float:
    """The upper bound of a bucket, in milliseconds."""
    return 0.1 * 10 ** (bucket / LAG_STEPS)


def lag_quantile(histogram: Counter[int], q: float) -> float | None:
    """The q-quantile of a lag histogram, in milliseconds (its bucket's upper bound)."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= q * total:
            return round(lag_bound(bucket), 2)
    return round(lag_bound(max(histogram)), 2)


# ---------------------------------------------------------------------- the sink


class GiveUp(Exception):
    """The sink was told to stop while the database was down: the batch is left to the journal."""


@dataclass(slots=True)
class Outcome:
    """What became of one batch."""

    stored: int = 0
    quarantined: int = 0
    abandoned: int = 0
    lag: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "quarantined": self.quarantined,
            "abandoned": self.abandoned,
            "lag": dict(self.lag),
        }


_WRITE_ERRORS = (SQLAlchemyError, ValueError, TypeError, OverflowError)


class EventSink:
    """Writes batches to the database and the honeyd log; splits what fails, quarantines the rest."""

    def __init__(self, db: Database | None, log_path: Path | None, *, journal_id: str | None = None) -> None:
        self.db = db
        self.journal_id = journal_id
        self._log_file: TextIO | None = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self.stopping = False

    def position(self) -> Position | None:
        """How far this sink's journal is stored in the database."""
        if self.db is None or self.journal_id is None:
            return None
        statement = select(EventJournal.segment, EventJournal.journal_offset).where(
            EventJournal.journal_id == self.journal_id
        )
        with self.db.engine.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else Position(int(row[0]), int(row[1]))

    def write_payload(
        self, payload: bytes, position: Position | None = None, *, live: bool = True
    ) -> Outcome:
        events, malformed = decode(payload)
        return self.write(events, position, live=live, malformed=malformed)

    def write(
        self,
        batch: list[Event],
        position: Position | None = None,
        *,
        live: bool = True,
        malformed: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Store a batch; rows the database refuses alone are quarantined. `position`: the journal's,
        just after the batch, stored with it. With `live`, the batch's lag is measured."""
        outcome = Outcome()
        rows: list[dict[str, Any]] = []
        events: list[Event] = []
        refused: list[tuple[str, str, Event | None]] = [(raw, why, None) for raw, why in malformed or ()]
        for event in batch:
            try:
                rows.append(_row(event))
                events.append(event)
            except (ValueError, TypeError, OverflowError, OSError) as exc:
                refused.append((_raw(_fields(event)), f"not storable: {exc}", event))
        if self.db is not None:
            try:
                failed = self._store(rows, events, position, refused)
            except GiveUp:
                outcome.abandoned = len(batch) + len(malformed or ())
                return outcome
            outcome.quarantined = len(refused) + failed
            outcome.stored = len(rows) - failed
        else:
            outcome.stored = len(rows)
        if live:
            now = time.time()
            outcome.lag.update(lag_bucket(now - e.time) for e in batch)
        if self._log_file is not None:
            self._log_file.write("".join(honeyd_line(e) + "\n" for e in batch))
            self._log_file.flush()
        return outcome

    # ------------------------------------------------------------------ the database

    def _store(
        self,
        rows: list[dict[str, Any]],
        events: list[Event],
        position: Position | None,
        refused: list[tuple[str, str, Event | None]],
    ) -> int:
        """Insert `rows` and the position in one transaction; when the database refuses them, split
        until each refused row is alone, and quarantine those (with `refused`, what could not even
        be made a row). How many rows were refused; GiveUp when told to stop during an outage."""
        count = len(rows)
        if not refused:
            error = self._transaction(lambda c: self._insert(c, rows, position, count))
            if error is None:
                return 0
            log.warning("a batch of %d events was refused (%s); splitting it", count, _one_line(error))
        failed = self._split(rows)
        now = datetime.now(UTC)
        quarantine = [*refused, *((_raw(_fields(events[i])), why, events[i]) for i, why in failed)]
        quarantined = [_quarantine_row(raw, why, event, now) for raw, why, event in quarantine]

        def finish(connection: Connection) -> None:
            connection.execute(insert(QuarantinedEvent), quarantined)
            self._advance(connection, position, count - len(failed))

        error = self._transaction(finish)
        if error is not None:  # not even the quarantine takes them: keep the error, drop the text
            log.error("quarantining %d events failed (%s)", len(quarantined), _one_line(error))
            for row in quarantined:
                row["raw"], row["kind"] = "(not storable)", None
            error = self._transaction(finish)
        log.error(
            "%d events quarantined%s: %s",
            len(quarantined),
            "" if error is None else " (not stored)",
            quarantined[0]["error"] if quarantined else "",
        )
        return len(failed)

    def _split(self, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Store `rows` in halves until each refused row is alone; the refused (index, error)."""
        failed: list[tuple[int, str]] = []
        stack = [(0, len(rows))]
        while stack:
            lo, hi = stack.pop()
            if hi <= lo:
                continue
            error = self._transaction(lambda c, lo=lo, hi=hi: self._insert(c, rows[lo:hi], None, 0))
            if error is None:
                continue
            if hi - lo == 1:
                failed.append((lo, for_storage(_one_line(error), 4096)))
            else:
                middle = (lo + hi) // 2
                stack += [(middle, hi), (lo, middle)]
        return failed

    def _insert(
        self, connection: Connection, rows: list[dict[str, Any]], position: Position | None, count: int
    ) -> None:
        if rows:
            connection.execute(insert(HoneypotEvent), rows)
        self._advance(connection, position, count)

    def _advance(self, connection: Connection, position: Position | None, count: int) -> None:
        """Record in the same transaction how far the journal is stored."""
        if position is None or self.journal_id is None:
            return
        values = {
            "segment": position.segment,
            "journal_offset": position.offset,
            "updated_at": datetime.now(UTC),
        }
        changed = connection.execute(
            update(EventJournal)
            .where(EventJournal.journal_id == self.journal_id)
            .values(events=EventJournal.events + count, **values)
        ).rowcount
        if not changed:
            row = {"journal_id": self.journal_id, "events": count, **values}
            connection.execute(insert(EventJournal).values(**row))

    def _transaction(self, work: Callable[[Connection], None]) -> Any:
        """Run `work` in one transaction; the error when the database refuses the data (None when
        it is done). While the database is down, retries with back-off; GiveUp when stopping."""
        assert self.db is not None
        delay = 0.5
        while True:
            try:
                with self.db.engine.begin() as connection:
                    work(connection)
                return None
            except _WRITE_ERRORS as exc:
                if not self._outage(exc):
                    return exc
                log.warning("the database takes no events (%s); retrying in %.1f s", _one_line(exc), delay)
                self._pause(delay)
                delay = min(delay * 2, 30.0)

    @staticmethod
    def _outage(exc: BaseException) -> bool:
        """Whether `exc` says the database is down, full or busy (retry the same rows) rather than
        that it refuses these rows (split them). Rows are bounded (`_row`), so the errors of a
        row that is too big for the database's own limits do not arise."""
        return isinstance(exc, OperationalError | InterfaceError | InternalError) or bool(
            getattr(exc, "connection_invalidated", False)
        )

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping:
                raise GiveUp
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        if self.stopping:
            raise GiveUp

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()


def _quarantine_row(raw: str, why: str, event: Event | None, now: datetime) -> dict[str, Any]:
    moment = kind = src = None
    if event is not None:
        try:
            moment = datetime.fromtimestamp(event.time, UTC)
        except (ValueError, TypeError, OverflowError, OSError):
            moment = None
        kind = for_storage(event.kind, 32) if isinstance(event.kind, str) else None
        src = _ip_text(event.src) if isinstance(event.src, int) and 0 <= event.src < _U32 else None
    return {"time": now, "event_time": moment, "kind": kind, "src_ip": src, "error": for_storage(why, 4096),
            "raw": raw}  # fmt: skip


def _one_line(error: Any) -> str:
    return " ".join(str(error).split())[:500]


# ---------------------------------------------------------------------- where batches go

_LENGTH = struct.Struct("!I")
_BATCH = struct.Struct("!IqqB")  # payload length, journal segment and offset (-1: none), live


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("ascii")
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    header = _read_exact(stream, _LENGTH.size)
    if header is None:
        return None
    body = _read_exact(stream, _LENGTH.unpack(header)[0])
    return None if body is None else json.loads(body)


class _LocalSink:
    """The sink in this process (tests, benchmarks)."""

    def __init__(self, db: Database | None, log_path: Path | None, journal_id: str | None) -> None:
        self.sink = EventSink(db, log_path, journal_id=journal_id)
        self.position = self.sink.position()

    def send(self, payload: bytes, position: Position | None, live: bool) -> dict[str, Any]:
        return self.sink.write_payload(payload, position, live=live).as_dict()

    def restart(self) -> Position | None:
        return self.sink.position()

    def abandon(self) -> None:
        self.sink.stopping = True

    def close(self, timeout: float) -> None:
        self.sink.close()


class _ChildSink:
    """The sink in a child process: batches go down a pipe, outcomes come back. Restartable."""

    def __init__(
        self,
        db_url: str | None,
        log_path: Path | None,
        user: str | None,
        journal_id: str | None,
        keep_fds: tuple[int, ...],
    ) -> None:
        self.command = [sys.executable, "-m", "dynapot.sensor.eventsink"]
        if log_path is not None:
            self.command += ["--log", str(log_path)]
        if user is not None:
            self.command += ["--user", user]
        if journal_id is not None:
            self.command += ["--journal-id", journal_id]
        self.env = dict(os.environ)
        self.env.pop("DYNAPOT_DB", None)
        if db_url is not None:
            self.env["DYNAPOT_DB"] = db_url  # not on the command line, where `ps` would show a password
        self.keep_fds = keep_fds  # the journal's lock: held until this process ends too
        self.process: subprocess.Popen[bytes] | None = None
        self.position = self.start()

    def start(self) -> Position | None:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, pass_fds=self.keep_fds
        )
        assert self.process.stdout is not None
        ready = read_message(self.process.stdout)
        if ready is None:
            self.process.wait(10)
            raise RuntimeError("the event writer process did not start (see its messages above)")
        position = ready.get("position")
        return Position(*position) if position else None

    def send(self, payload: bytes, position: Position | None, live: bool) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        segment, offset = (position.segment, position.offset) if position is not None else (-1, -1)
        process.stdin.write(_BATCH.pack(len(payload), segment, offset, live))
        process.stdin.write(payload)
        process.stdin.flush()
        outcome = read_message(process.stdout)
        if outcome is None:
            raise BrokenPipeError("the event writer process ended")
        return outcome

    def restart(self) -> Position | None:
        self._end(1.0)
        return self.start()

    def abandon(self) -> None:
        """Stop waiting for a database that is down (SIGTERM: the writer gives up its retries)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def _end(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # a broken pipe: the process is gone already
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def close(self, timeout: float) -> None:
        self._end(timeout)


# ---------------------------------------------------------------------- the packet loop's side


class EventWriter:
    """Events from the packet loop: journaled once per loop turn, written from a thread (to a child
    process with `child`); counts whatever it drops."""

    def __init__(
        self,
        db: Database | None,
        log_path: Path | None = None,
        *,
        child: bool = False,
        db_url: str | None = None,
        user: str | None = None,
        journal: Journal | None = None,
        batch_size: int = 2000,
        interval: float = 0.1,
        max_queued: int = 1_000_000,
    ) -> None:
        self._journal = journal
        journal_id = journal.id if journal is not None else None
        self._sink: _LocalSink | _ChildSink
        if child:
            keep = (journal.lock_fd,) if journal is not None else ()
            self._sink = _ChildSink(db_url, log_path, user, journal_id, keep)
        else:
            self._sink = _LocalSink(db, log_path, journal_id)
        if journal is not None and self._sink.position is not None:
            journal.stored(self._sink.position)  # segments the database holds from an earlier run
        self._pending: list[Event] = []
        self._queue: deque[tuple[bytes, int, Position | None]] = deque()  # (records, events, position)
        self._queued_in = self._queued_out = 0  # events into the queue (loop), out of it (writer)
        self._batch_size = batch_size
        self._interval = interval
        self._max_queued = max_queued
        self._lost = 0
        self._wake = threading.Event()
        self._abandon = threading.Event()
        self._stopping = False
        self.accepted = 0  # submitted (by one producer thread: the packet loop)
        self.written = 0  # accepted and done with: stored, quarantined, or dropped and counted
        self.stored = 0
        self.replayed = 0
        self.counters: Counter[str] = Counter()
        self.lag: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._run, name="dynapot-events", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the packet loop

    def submit(self, event: Event) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) == 1:
            # Once per loop turn; without a loop (start-up, tests) flushed by size, flush() or close().
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self._flush_pending)
        elif len(pending) >= self._batch_size and not self._in_loop():
            self._flush_pending()

    @staticmethod
    def _in_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _flush_pending(self) -> None:
        """This turn's events: one journal record, one queue entry."""
        events, self._pending = self._pending, []
        if not events:
            return
        count = len(events)
        self.accepted += count
        payload = encode(events)
        position: Position | None = None
        if self._journal is not None:
            written = self._journal.append(payload)
            if isinstance(written, Position):
                position = written
            else:
                self.counters[JOURNAL_FULL if written == "full" else JOURNAL_FAILED] += count
        if self._queued_in - self._queued_out + count > self._max_queued:
            self._lost += count  # counted, and recorded as an event by the writer: never silent
            self.counters[QUEUE_FULL] += count
            self.written += count
            return
        self._queue.append((payload, count, position))  # deque.append is atomic under the GIL
        self._queued_in += count
        if self._queued_in - self._queued_out >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Events submitted and not yet handed to the sink."""
        return len(self._pending) + self._queued_in - self._queued_out

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            self._replay()
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                while self._write_some():
                    pass
                if self._stopping and not self._queue:
                    return
        except Exception:  # a bug must not end recording silently: the queue then fills and counts
            log.exception("the event writer thread failed")
            raise

    def _replay(self) -> None:
        """What the journal of an earlier run holds beyond the database's position."""
        if self._journal is None:
            return
        group: list[bytes] = []
        size, position = 0, None
        for position, payload in self._journal.unstored(self._sink.position):
            group.append(payload)
            size += len(payload)
            if size >= REPLAY_BYTES:
                self._replay_batch(group, position)
                group, size = [], 0
            if self._abandon.is_set():
                return
        if group and position is not None:
            self._replay_batch(group, position)
        if self.replayed:
            log.info("replayed %d events from the journal %s", self.replayed, self._journal.folder)

    def _replay_batch(self, group: list[bytes], position: Position) -> None:
        outcome = self._deliver(b",".join(group), position, live=False)
        if outcome is None or outcome["abandoned"]:
            return  # still in the journal: the next start replays it
        self.replayed += outcome["stored"]
        self._count(outcome)
        assert self._journal is not None
        self._journal.stored(position)

    def _take(self) -> list[tuple[bytes, int, Position | None]]:
        batch: list[tuple[bytes, int, Position | None]] = []
        queue = self._queue
        taken = 0
        while queue and taken < self._batch_size:
            entry = queue.popleft()
            batch.append(entry)
            taken += entry[1]
        self._queued_out += taken
        return batch

    def _report_loss(self) -> list[Event]:
        lost, self._lost = self._lost, 0
        if not lost:
            return []
        log.error("event queue full: %d events lost", lost)
        return [Event.news(Kind.EVENTS_LOST, f"{lost} events lost: queue full")]

    def _write_some(self) -> bool:
        news = self._report_loss()
        batch = self._take()
        if not batch and not news:
            return False
        chunks = [payload for payload, _, _ in batch]
        if news:
            chunks.insert(0, encode(news))
        count = sum(entry[1] for entry in batch)
        position = next((entry[2] for entry in reversed(batch) if entry[2] is not None), None)
        outcome = self._deliver(b",".join(chunks), position, live=True, count=count)
        journaled = sum(entry[1] for entry in batch if entry[2] is not None)
        if outcome is None:
            if self._abandon.is_set():
                self.counters[DEFERRED] += journaled
                self.counters[LOST_AT_SHUTDOWN] += count - journaled
            else:
                self.counters[WRITER_LOST] += count
        elif outcome["abandoned"]:
            self.counters[DEFERRED] += journaled
            self.counters[LOST_AT_SHUTDOWN] += count - journaled
        else:
            self.stored += outcome["stored"]
            self._count(outcome)
            if position is not None and self._journal is not None:
                self._journal.stored(position)
        self.written += count
        return True

    def _count(self, outcome: dict[str, Any]) -> None:
        if outcome["quarantined"]:
            self.counters[QUARANTINED] += outcome["quarantined"]
        self.lag.update({int(bucket): n for bucket, n in outcome["lag"].items()})

    def _deliver(
        self, payload: bytes, position: Position | None, *, live: bool, count: int = 0
    ) -> dict[str, Any] | None:
        """Hand one batch to the sink; restart a sink process that died and send it again (unless
        the database shows it stored). None when it could not be delivered."""
        tries = 0
        while True:
            try:
                return self._sink.send(payload, position, live)
            except (OSError, ValueError) as exc:
                if self._abandon.is_set():
                    return None
                tries += 1
                self.counters[WRITER_RESTARTS] += 1
                log.error("the event writer process failed (%s); restarting it (try %d)", exc, tries)
                if tries > WRITER_TRIES or self._abandon.wait(min(0.25 * 2**tries, 5.0)):
                    return None
                try:
                    stored_to = self._sink.restart()
                except (OSError, RuntimeError, ValueError) as restart_error:
                    log.error("the event writer process did not restart: %s", restart_error)
                    continue
                if position is not None and stored_to is not None and stored_to >= position:
                    return {"stored": count, "quarantined": 0, "abandoned": 0, "lag": {}}

    # ------------------------------------------------------------------ owners

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written; False on time-out. Call it from the
        thread that submits (the packet loop)."""
        self._flush_pending()
        target = self.accepted
        deadline = time.monotonic() + timeout
        while self.written < target and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.005)
        return self.written >= target

    @property
    def lost_total(self) -> int:
        return sum(self.counters[name] for name in LOST_COUNTERS)

    def stats(self) -> dict[str, Any]:
        """The event path for `dynapot status`: totals, lag, the journal, and every drop counter."""
        return {
            "accepted": self.accepted,
            "written": self.written,
            "stored": self.stored,
            "replayed": self.replayed,
            "queued": self.pending,
            "lag_ms": {
                "p50": lag_quantile(self.lag, 0.5),
                "p99": lag_quantile(self.lag, 0.99),
                "max": lag_quantile(self.lag, 1.0),
            },
            "journal": self._journal.stats() if self._journal is not None else None,
            "drops": {name: count for name, count in sorted(self.counters.items()) if count},
        }

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued; a database that takes nothing for STALL seconds is given up on
        (what the journal holds waits for the next start), so that the sensor always stops."""
        self._flush_pending()
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        progress, moved = -1, time.monotonic()
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.1)
            now_progress = self.written + self.replayed
            if now_progress != progress:
                progress, moved = now_progress, time.monotonic()
            elif time.monotonic() - moved > STALL:
                break
        if self._thread.is_alive():
            log.error("the database takes no events: giving up on %d (journaled: kept for the next start)",
                      self.pending)  # fmt: skip
            self._abandon.set()
            self._sink.abandon()
            self._thread.join(STALL + 20)
        for _, count, position in list(self._queue):  # only when the thread is stuck for good
            self.counters[DEFERRED if position is not None else LOST_AT_SHUTDOWN] += count
        self._sink.close(30.0)
        if self._journal is not None:
            self._journal.close()
