"""The dashboard's live event feed: batches, never a flood.

Once a second the feed looks for events newer than its cursor and sends one Server-Sent
Events message: the newest `show` of them and how many more there were ("N more"), then moves
its cursor to the newest. At 1,000 events a second the browser still gets one small message a
second; the count of the rest is bounded too (`COUNT_CAP`: beyond it the page says "N+ more").
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from dynapot.db import Database
from dynapot.db.models import HoneypotEvent
from dynapot.web.queries import event_rows, latest_event_id

__all__ = ["COUNT_CAP", "next_batch", "sse_message"]

COUNT_CAP = 100_000


def _count_after(db: Database, after: int, upto: int) -> int:
    """Events in (after, upto]: those inserted meanwhile are the next batch's, counted once there."""
    inner = (
        select(HoneypotEvent.id)
        .where(HoneypotEvent.id > after, HoneypotEvent.id <= upto)
        .limit(COUNT_CAP)
        .subquery()
    )
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def next_batch(db: Database, after: int, show: int = 50) -> tuple[dict[str, Any] | None, int]:
    """(the message for events above `after`, or None when there are none; the new cursor)."""
    newest = latest_event_id(db)
    if newest <= after:
        return None, after
    shown = event_rows(db, before=newest + 1, limit=show)
    shown = [row for row in shown if row["id"] > after]
    total = _count_after(db, after, newest)
    more = max(0, total - len(shown))
    return {"events": shown, "more": more, "capped": total >= COUNT_CAP, "cursor": newest}, newest


def sse_message(batch: dict[str, Any]) -> str:
    """One SSE message: its id is the cursor, so that a reconnecting browser resumes there."""
    return f"id: {batch['cursor']}\nevent: events\ndata: {json.dumps(batch, separators=(',', ':'))}\n\n"
