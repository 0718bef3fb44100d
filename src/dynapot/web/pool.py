"""SQLite connections opened before root is dropped, and only those.

The web child of `dynapot run` starts as root and drops to an unprivileged user once it listens.
An SQLite file the daemon made is root's: a connection opened after the drop could not open it
(nor should the web user be able to, whoever else runs as it). So the pool is replaced by one of
a fixed number of connections, all opened now, that never opens another: a request waits for a
free one. Other databases (PostgreSQL) connect over the network with their own role: unchanged.
"""

from __future__ import annotations

import logging

from sqlalchemy.pool import QueuePool

from dynapot.db import Database

__all__ = ["HELD", "hold_connections"]

log = logging.getLogger(__name__)

#: Connections held open (the web interface's worker threads share them).
HELD = 8
WAIT = 30.0  # seconds a request waits for a free connection before it fails


def hold_connections(db: Database, count: int = HELD) -> bool:
    """For SQLite: open `count` connections now and never more; False (nothing done) otherwise."""
    engine = db.engine
    if engine.dialect.name != "sqlite" or not isinstance(engine.pool, QueuePool):
        return False
    old = engine.pool
    engine.pool = QueuePool(
        old._creator,  # the same file, and (through _dispatch) the same PRAGMAs on every connection
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
