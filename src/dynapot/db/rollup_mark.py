"""The hourly roll-up's mark (`EventRollupMark`, one row): claimed for one transaction.

The roll-up's refresh and the events' expiry both move the mark; each claims it first, so that
two at once take turns instead of reading the same mark: the row is made when missing (an
insert that does nothing when it exists, which PostgreSQL makes a second inserter wait for),
then written to, which takes SQLite's write lock or PostgreSQL's row lock until the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dynapot.db.models import EventRollupMark, utcnow

__all__ = ["MARK_ID", "claim_mark"]

MARK_ID = 1


def _insert(dialect: str) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    return insert(EventRollupMark).on_conflict_do_nothing(index_elements=["id"])


def claim_mark(session: Session) -> EventRollupMark:
    """The mark, made when missing and locked until this transaction ends."""
    now = utcnow()
    statement = _insert(session.get_bind().dialect.name)
    if statement is not None:
        session.execute(statement.values(id=MARK_ID, last_event_id=0, updated_at=now))
    elif session.get(EventRollupMark, MARK_ID) is None:  # another backend: no concurrent refresh there
        session.add(EventRollupMark(id=MARK_ID, last_event_id=0, updated_at=now))
        session.flush()
    session.execute(update(EventRollupMark).where(EventRollupMark.id == MARK_ID).values(updated_at=now))
    mark = session.scalars(select(EventRollupMark).where(EventRollupMark.id == MARK_ID)).one()
    session.refresh(mark)
    return mark
