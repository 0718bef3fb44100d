"""SQLite connections opened before root is dropped, and only those.

The web child of `dynapot run` starts as root and drops to an unprivileged user once it listens.
An SQLite file the daemon made is root's: a connection opened after the drop could not open it
(nor should the web user be able to, whoever else runs as it). So the pool is replaced by one of
a fixed number of connections, all opened now, that never opens another: a request waits for a
free one. Other databases (PostgreSQL) connect over the network with their own role: unchanged.

A held connection SQLAlchemy drops (invalidated after an error it takes for a lost connection, or
a dispose) would be reopened as the unprivileged user: SQLite then opens a root's file read-only,
and every write through that one connection fails while the others work. Instead, the first
attempt to open one after the pool is full ends the process with one line saying why
(`DATABASE_LOST`): the daemon restarts its web child (as root again, all connections fresh) and
`dynapot status` shows that line as the reason it stopped.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from sqlalchemy.pool import QueuePool

from dynapot.db import Database

__all__ = ["DATABASE_LOST", "HELD", "hold_connections"]

log = logging.getLogger(__name__)

#: Connections held open (the web interface's worker threads share them).
HELD = 8
WAIT = 30.0  # seconds a request waits for a free connection before it fails
#: The exit status when a held connection was lost (EX_TEMPFAIL: a restart mends it).
DATABASE_LOST = 75


def hold_connections(db: Database, count: int = HELD) -> bool:
    """For SQLite: open `count` connections now and never more; False (nothing done) otherwise."""
    engine = db.engine
    if engine.dialect.name != "sqlite" or not isinstance(engine.pool, QueuePool):
        return False
    old = engine.pool
    opening = old._invoke_creator  # the same file, and (through _dispatch) the same PRAGMAs on each
    held = 0

    def creator(record: Any) -> Any:
        nonlocal held
        if held >= count:
            _lost(engine.url.database)
        held += 1
        return opening(record)

    engine.pool = QueuePool(
        creator,
        pool_size=count,
        max_overflow=0,
        timeout=WAIT,
        recycle=-1,
        pre_ping=False,
        _dispatch=old.dispatch,
        dialect=old._dialect,
    )
    old.dispose()
    opened = [engine.raw_connection() for _ in range(count)]
    for connection in opened:
        connection.close()  # back to the pool, which keeps it open
    log.info("%d database connections held open for after the privilege drop", count)
    return True


def _lost(path: str | None) -> None:
    """A held connection is gone and this process may not open another: say so, and end."""
    sys.stderr.write(
        f"Error: a database connection to {path} was lost and cannot be reopened without root: "
        f"the web interface exits (status {DATABASE_LOST}) to be started again\n"
    )
    sys.stderr.flush()
    os._exit(DATABASE_LOST)
