"""Settings changes the web child hands to the daemon, which writes the settings file as root.

Under `dynapot run` the web interface is a child running as its own account (`web.user`). Were
that account able to write the settings file, it could change every setting the root daemon
reads, the sensor's account and the state folder included: a compromised web child would be
root at the next start. So it only reads the file; a change goes through the database:

- the web child `submit`s the admin's change (dotted setting -> value, as the page sent it) and
  waits for the `answer`, a few seconds at most;
- the daemon's loop calls `settle` every fraction of a second: each pending request is claimed
  (one UPDATE ... WHERE status = 'pending'), checked against the page's editable settings and
  validated as a whole by `settings_store.update_settings` (anything else is refused, whatever
  the web child sent), written, and answered: the changes made, or each field's reason; the
  answer and the audit log's rows (who, old, new) are one transaction;
- a request the web child stopped waiting for is marked abandoned in the same guarded way, so
  the daemon never applies a change the admin was told had failed.

What was submitted is cleared once answered (alert URLs may hold passwords); answered rows are
kept a day, at most `KEEP`, for the record (the audit log keeps who changed what).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from dynapot.daemon.settings_store import Change, SettingsRefused, update_settings
from dynapot.db import Database
from dynapot.db.models import AuditEntry, SettingsRequest, utcnow
from dynapot.textsafe import for_display

__all__ = ["KEEP", "MAX_SUBMITTED", "WAIT", "answer", "settle", "submit"]

#: Seconds the web child waits for the daemon's answer.
WAIT = 10.0
#: Bytes of a request's JSON (the page bounds each field; this bounds them all).
MAX_SUBMITTED = 256 * 1024
#: Answered requests kept.
KEEP = 200
KEEP_AGE = timedelta(days=1)
POLL = 0.1


def submit(db: Database, submitted: Mapping[str, Any], actor: str) -> int:
    """Store the change for the daemon; its id. SettingsRefused when it is too large to store."""
    body = dict(submitted)
    if len(json.dumps(body)) > MAX_SUBMITTED:
        raise SettingsRefused({"settings": f"the change is larger than {MAX_SUBMITTED // 1024} KiB"})
    with db.session() as session:
        row = SettingsRequest(created_at=utcnow(), actor=actor[:64], status="pending", submitted=body)
        session.add(row)
        session.flush()
        return int(row.id)


def answer(
    db: Database,
    request_id: int,
    *,
    wait: float = WAIT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Change]:
    """The daemon's answer to request `request_id`: the changes made, or SettingsRefused with
    each field's reason; after `wait` seconds without one, the request is abandoned (the daemon
    will not apply it) and SettingsRefused says so."""
    deadline = clock() + wait
    while True:
        with db.session() as session:
            row = session.get(SettingsRequest, request_id)
            status, result = (row.status, row.result) if row is not None else ("missing", None)
        if status == "applied":
            return [Change(c["dotted"], c["old"], c["new"]) for c in (result or {}).get("changes", [])]
        if status == "refused":
            raise SettingsRefused(dict((result or {}).get("errors") or {"settings": "refused"}))
        if status not in ("pending", "working"):
            raise SettingsRefused({"settings": f"the request is {status}"})
        now = clock()
        if now >= deadline and status == "pending" and _abandon(db, request_id):
            raise SettingsRefused(
                {"settings": f"the daemon did not take the change within {wait:g} s: is it running?"}
            )
        if now >= deadline + wait:  # taken, never answered: the daemon stopped while writing
            raise SettingsRefused(
                {"settings": "the daemon took the change and has not answered: see its log"}
            )
        sleep(POLL)


def _abandon(db: Database, request_id: int) -> bool:
    with db.session() as session:
        result = session.execute(
            update(SettingsRequest)
            .where(SettingsRequest.id == request_id, SettingsRequest.status == "pending")
            .values(status="abandoned", submitted={}, done_at=utcnow())
        )
        return bool(result.rowcount)


def settle(db: Database, path: Path, *, limit: int = 20) -> int:
    """Apply the pending requests to the settings file at `path`, oldest first (at most `limit`
    in one call); how many were answered. Runs in the daemon, as root."""
    with db.session() as session:
        ids = list(
            session.scalars(
                select(SettingsRequest.id)
                .where(SettingsRequest.status == "pending")
                .order_by(SettingsRequest.id)
                .limit(limit)
            )
        )
    answered = 0
    for request_id in ids:
        with db.session() as session:
            claimed = session.execute(
                update(SettingsRequest)
                .where(SettingsRequest.id == request_id, SettingsRequest.status == "pending")
                .values(status="working")
            ).rowcount
            row = session.get(SettingsRequest, request_id) if claimed else None
            if row is None:
                continue  # abandoned meanwhile
            submitted, actor = dict(row.submitted or {}), row.actor
        made: list[Change] = []
        try:
            made = update_settings(path, _as_submitted(submitted))
            status, result = "applied", {"changes": [asdict(c) for c in made]}
        except SettingsRefused as exc:
            status, result = "refused", {"errors": exc.errors}
        with db.session() as session:  # the answer and the audit log in one transaction
            session.execute(
                update(SettingsRequest)
                .where(SettingsRequest.id == request_id)
                .values(status=status, result=result, submitted={}, done_at=utcnow())
            )
            for change in made if status == "applied" else []:
                session.add(
                    AuditEntry(
                        time=utcnow(),
                        actor=actor,
                        action="setting.change",
                        target=change.dotted[:255],
                        old_value=change.old,
                        new_value=change.new,
                    )
                )
        answered += 1
    if answered:
        _prune(db)
    return answered


def _as_submitted(submitted: dict[Any, Any]) -> dict[str, Any]:
    """The stored change with its names as text (update_settings refuses any it does not edit)."""
    return {for_display(str(name))[:200]: value for name, value in submitted.items()}


def _prune(db: Database) -> None:
    with db.session() as session:
        answered = SettingsRequest.status.in_(("applied", "refused", "abandoned"))
        session.execute(
            delete(SettingsRequest).where(answered, SettingsRequest.created_at < utcnow() - KEEP_AGE)
        )
        keep_from = session.scalar(
            select(SettingsRequest.id)
            .where(answered)
            .order_by(SettingsRequest.id.desc())
            .offset(KEEP)
            .limit(1)
        )
        if keep_from is not None:
            session.execute(delete(SettingsRequest).where(answered, SettingsRequest.id <= keep_from))
