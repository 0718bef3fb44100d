"""Reading stored events for correlation: one query, by time range or after an event id.

Batch correlation (`dynapot findings`, reports) streams a time range with `stored_events`;
the daemon reads what arrived since its last round with `events_after`. Both select the
same columns, the ones `EventLike` names, from the same statement, so that the two paths
feed the correlator identical rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Row, Select, case, null, select, type_coerce

from dynapot.analysis.correlate import correlate
from dynapot.analysis.findings import Finding
from dynapot.config import CorrelationSettings
from dynapot.db import Database
from dynapot.db.models import HoneypotEvent
from dynapot.events import LOGIN_KINDS, NOISE_KINDS, Kind


def _events() -> Select[Any]:
    """The correlator's columns of honeypot_events, with no filter and no order yet."""
    e = HoneypotEvent
    # The rules read `data` of logins (accepted or not) and of noise (how many packets a row stands
    # for), the daemon that of storage alerts; the other kinds skip its JSON parsing.
    read = sorted(kind.value for kind in LOGIN_KINDS | NOISE_KINDS | {Kind.STORAGE_FULL})
    data = type_coerce(case((e.kind.in_(read), e.data), else_=null()), JSON).label("data")
    return select(e.id, e.time, e.protocol, e.src_ip, e.dst_ip, e.dst_port, e.kind, e.scan_tool, data)


def stored_events(
    db: Database, since: datetime | None = None, until: datetime | None = None, batch: int = 5000
) -> Iterator[Row[Any]]:
    """Stream the events of [since, until) oldest first, `batch` rows at a time, never all at once."""
    e = HoneypotEvent
    statement = _events()
    if since is not None:
        statement = statement.where(e.time >= since)
    if until is not None:
        statement = statement.where(e.time < until)
    statement = statement.order_by(e.time, e.id)
    with db.engine.connect() as connection:
        yield from connection.execution_options(yield_per=batch).execute(statement)


def events_after(db: Database, after: int, limit: int) -> list[Row[Any]]:
    """At most `limit` events with an id above `after`, in id order (the daemon's next round)."""
    e = HoneypotEvent
    statement = _events().where(e.id > after).order_by(e.id).limit(limit)
    with db.engine.connect() as connection:
        return list(connection.execute(statement))


def correlate_stored(
    db: Database,
    since: datetime | None = None,
    until: datetime | None = None,
    settings: CorrelationSettings | None = None,
) -> list[Finding]:
    """Every finding the stored events of [since, until) give, in its final state, oldest first."""
    return correlate(stored_events(db, since, until), settings)
