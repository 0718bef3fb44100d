"""The hourly roll-up of the honeyd log, and the rows the report's queries group.

A report over a week of a big log would group millions of rows; `event_rollup` holds the log
summed per hour, source, target, protocol, port and kind (events, rows, first and last time,
the greatest p0f guess and scan tool), so that whole hours are read as a few sums instead.

- `refresh_rollup(db)` adds the events stored past the mark (`event_rollup_mark`), in bounded
  batches, each batch and the mark's move in one transaction: a batch is summed whole or not at
  all, and running it twice (or two refreshers at once) counts nothing twice. The daemon runs it
  beside correlation; `dynapot report --refresh` runs it first.
- `report_rows(since, until, ...)` is what the report groups: for [since, until), the roll-up's
  whole hours plus, from the events themselves, the partial hours at the edges, the hours whose
  events expiry has begun to delete, and the events not summed yet (id past the mark). Every
  report section groups these rows exactly as it would group the events, so the two give the
  same report; the mark is read inside each statement, so a refresh between two statements
  never counts an event twice.

Expiry (`inventory.expire`) deletes the roll-up rows of the hours whose events are all past the
events' age, with the events: the admin's age is a promise about the data kept, and sums per
source and target are data about attackers too. The hour holding the cutoff keeps its sums until
the next pass; reports read that hour from the events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, case, cast, func, literal, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from dynapot.db import Database
from dynapot.db.models import EventRollup, EventRollupMark, HoneypotEvent
from dynapot.db.rollup_mark import MARK_ID, claim_mark
from dynapot.events import NO_FLOW_ADDRESS, NOISE_KINDS

__all__ = ["BATCH", "HOUR", "NO_PORT", "refresh_rollup", "report_rows", "rollup_mark", "weight"]

HOUR = 3600
BATCH = 50_000  # events summed per transaction
NO_PORT = -1  # dst_port of an event with no port, in the roll-up's unique key
NOISE = tuple(sorted(kind.value for kind in NOISE_KINDS))
DIALECTS = ("sqlite", "postgresql")  # those whose epoch seconds and upsert are spelt here


def epoch_seconds(column: Any, dialect: str) -> ColumnElement[Any] | None:
    """A time column as whole epoch seconds in SQL; None for a backend not spelt here."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), BigInteger)
    return None


def weight() -> ColumnElement[Any]:
    """How many events a log row stands for: a noise row's `count`, else one."""
    e = HoneypotEvent
    return case((e.kind.in_(NOISE), func.coalesce(e.data["count"].as_integer(), 1)), else_=1)


def _greater(old: Any, new: Any) -> ColumnElement[Any]:
    """The greater of two nullable values in SQL, as MAX() over both would give it (NULLs ignored)."""
    return case((old.is_(None), new), (new.is_(None), old), (new > old, new), else_=old)


def _upsert(dialect: str) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = insert(EventRollup)
    new, old = statement.excluded, EventRollup.__table__.c
    return statement.on_conflict_do_update(
        index_elements=["hour", "src_ip", "dst_ip", "protocol", "dst_port", "kind"],
        set_={
            "events": old.events + new.events,
            "rows": old.rows + new.rows,
            "first_seen": case((new.first_seen < old.first_seen, new.first_seen), else_=old.first_seen),
            "last_seen": case((new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen),
            "attacker_os": _greater(old.attacker_os, new.attacker_os),
            "scan_tool": _greater(old.scan_tool, new.scan_tool),
        },
    )


def _sum_batch(session: Session, dialect: str, batch: int) -> int:
    """Sum the next `batch` events past the mark into the roll-up and move the mark; the events read."""
    e = HoneypotEvent
    mark = claim_mark(session).last_event_id
    ids = select(e.id).where(e.id > mark).order_by(e.id).limit(batch).subquery()
    upper, count = session.execute(select(func.max(ids.c.id), func.count())).one()
    if not count:
        return 0
    epoch = epoch_seconds(e.time, dialect)
    assert epoch is not None
    hour = (epoch - epoch % HOUR).label("hour")
    port = func.coalesce(e.dst_port, NO_PORT).label("dst_port")
    rows = session.execute(
        select(
            hour,
            e.src_ip,
            e.dst_ip,
            e.protocol,
            port,
            e.kind,
            func.sum(weight()),
            func.count(),
            func.min(e.time),
            func.max(e.time),
            func.max(e.attacker_os),
            func.max(e.scan_tool),
        )
        .where(e.id > mark, e.id <= upper, e.src_ip != NO_FLOW_ADDRESS)
        .group_by(hour, e.src_ip, e.dst_ip, e.protocol, port, e.kind)
    ).all()
    if rows:
        names = (
            "hour",
            "src_ip",
            "dst_ip",
            "protocol",
            "dst_port",
            "kind",
            "events",
            "rows",
            "first_seen",
            "last_seen",
            "attacker_os",
            "scan_tool",
        )
        values = [dict(zip(names, row, strict=True)) for row in rows]
        for value in values:
            value["events"], value["rows"] = int(value["events"]), int(value["rows"])
        session.execute(_upsert(dialect), values)
    session.execute(update(EventRollupMark).where(EventRollupMark.id == MARK_ID).values(last_event_id=upper))
    return int(count)


def refresh_rollup(db: Database, *, batch: int = BATCH, max_batches: int | None = None) -> int:
    """Sum the events stored past the mark into the roll-up, `batch` per transaction, until none is
    left (or `max_batches` are done); the number of events read. Does nothing on a backend whose
    SQL is not spelt here (the report then reads the events)."""
    if batch < 1:
        raise ValueError("a roll-up batch holds at least one event")
    if db.engine.dialect.name not in DIALECTS:
        return 0
    total, done = 0, 0
    while max_batches is None or done < max_batches:
        with db.session() as session:
            count = _sum_batch(session, db.engine.dialect.name, batch)
        total, done = total + count, done + 1
        if count < batch:
            break
    return total


def rollup_mark(session: Session) -> tuple[int, datetime | None]:
    """(the last event id summed, the newest expiry cutoff of events) as stored now."""
    row = session.execute(
        select(EventRollupMark.last_event_id, EventRollupMark.expired_before).where(
            EventRollupMark.id == MARK_ID
        )
    ).one_or_none()
    return (0, None) if row is None else (int(row[0]), row[1])


def _ceil_hour(moment: datetime) -> int:
    seconds = int(moment.timestamp())
    up = -(-seconds // HOUR) * HOUR
    return up if datetime.fromtimestamp(up, UTC) >= moment else up + HOUR


def _unindexed(column: Any) -> ColumnElement[Any]:
    """The column in an expression no index serves (COALESCE of itself), to steer the planner."""
    return func.coalesce(column, column)


def _raw(dialect: str, *where: Any) -> Select[Any]:
    e = HoneypotEvent
    epoch = epoch_seconds(e.time, dialect)
    return select(
        (epoch if epoch is not None else literal(0, BigInteger)).label("epoch"),
        e.time.label("first_seen"),
        e.time.label("last_seen"),
        e.src_ip,
        e.dst_ip,
        e.protocol,
        e.dst_port,
        e.kind,
        weight().label("events"),
        literal(1, BigInteger).label("rows"),
        e.attacker_os,
        e.scan_tool,
    ).where(e.src_ip != NO_FLOW_ADDRESS, *where)


def report_rows(session: Session, since: datetime, until: datetime, *, use_rollup: bool = True) -> Subquery:
    """The rows a report of [since, until) groups, each standing for one or more events: columns
    epoch (seconds; an hour's start for summed rows), first_seen, last_seen, src_ip, dst_ip,
    protocol, dst_port (None for no port), kind, events, rows, attacker_os, scan_tool. Sensor
    notices (no flow) are left out. With `use_rollup` False, or no whole hour to read, every row
    is an event."""
    e, r = HoneypotEvent, EventRollup
    dialect = session.get_bind().dialect.name
    start, end = _ceil_hour(since), int(until.timestamp()) // HOUR * HOUR
    if use_rollup and dialect in DIALECTS:
        _, expired = rollup_mark(session)
        if expired is not None:
            start = max(start, _ceil_hour(expired))
    if not use_rollup or dialect not in DIALECTS or start >= end:
        return _raw(dialect, e.time >= since, e.time < until).subquery("report_rows")
    first, last = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    mark = func.coalesce(
        select(EventRollupMark.last_event_id).where(EventRollupMark.id == MARK_ID).scalar_subquery(), 0
    )
    summed = select(
        r.hour.label("epoch"),
        r.first_seen,
        r.last_seen,
        r.src_ip,
        r.dst_ip,
        r.protocol,
        case((r.dst_port != NO_PORT, r.dst_port)).label("dst_port"),
        r.kind,
        r.events,
        r.rows,
        r.attacker_os,
        r.scan_tool,
    ).where(r.hour >= start, r.hour < end)
    return union_all(
        summed,
        _raw(dialect, e.time >= since, e.time < first),
        _raw(dialect, e.time >= last, e.time < until),
        # Found by id (the few past the mark), never by time: the whole hours hold the most events.
        _raw(dialect, and_(e.id > mark, _unindexed(e.time) >= first, _unindexed(e.time) < last)),
    ).subquery("report_rows")
