"""Batches of events into the database (and the honeyd log): made safe, split on refusal, quarantined.

`EventSink` runs in the event writer process (`python -m dynapot.sensor.eventsink`), or in
the sensor itself in tests. For one batch it turns every event into a row whose strings and
JSON every backend stores (`_row`, over `dynapot.textsafe`), inserts the rows and the
journal's position (`event_journal`) in one transaction, and writes the batch's lines to the
honeyd log. A batch the database refuses is split in halves until each refused row is
alone; those rows go to `quarantined_events` (their fields as escaped text, the error, when)
and the others are stored, so that one hostile row never stops recording and nothing is
retried forever. A database that is down (an operational error) is retried with back-off
until it answers, or until the sink is told to stop (`GiveUp`: the journal keeps the batch).
The lag of every live event, from its time to its commit, is kept in a histogram.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError, SQLAlchemyError

from dynapot.db import Database
from dynapot.db.models import EventJournal, HoneypotEvent, QuarantinedEvent
from dynapot.logfiles import append_locked
from dynapot.sensor.eventformat import Event, decode, fields_of, honeyd_line, ip_text, raw_text
from dynapot.sensor.journal import Position
from dynapot.textsafe import TEXT_LIMIT, for_storage, json_for_storage

log = logging.getLogger(__name__)

_U32 = 1 << 32


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
        "src_ip": ip_text(event.src),
        "src_port": event.sport,
        "dst_ip": ip_text(event.dst),
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
        # Also a reason to give up waiting for the database: the process that feeds this sink is
        # gone (a sensor killed while the database was down must not leave its writer retrying
        # forever, holding the journal's lock that its restarted self waits for).
        self.orphaned: Callable[[], bool] = lambda: False

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
                refused.append((raw_text(fields_of(event)), f"not storable: {exc}", event))
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
            # under the file's lock: the daemon's cut (logfiles.cap) then loses no line
            append_locked(self._log_file, "".join(honeyd_line(e) + "\n" for e in batch))
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
        quarantine = [*refused, *((raw_text(fields_of(events[i])), why, events[i]) for i, why in failed)]
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
        while True:
            if self.stopping or self.orphaned():
                raise GiveUp
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

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
        src = ip_text(event.src) if isinstance(event.src, int) and 0 <= event.src < _U32 else None
    return {"time": now, "event_time": moment, "kind": kind, "src_ip": src, "error": for_storage(why, 4096),
            "raw": raw}  # fmt: skip


def _one_line(error: Any) -> str:
    return " ".join(str(error).split())[:500]
