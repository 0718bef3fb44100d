"""The inventory database: SQLAlchemy 2 models, engine set-up and Alembic migrations.

SQLite (in WAL mode) is the default; any SQLAlchemy URL works, PostgreSQL is tested.
`open_database(url, access=...)` connects, checks that the database holds what the caller
needs (`Access`: read, write, append events only, or create when missing), brings the schema
up to date when it writes or creates, and returns a `Database`.
"""

from dynapot.db.engine import (
    Access,
    Database,
    DatabaseError,
    DatabaseMissing,
    DatabaseUrlError,
    open_database,
    parse_url,
    redacted,
)

__all__ = [
    "Access",
    "Database",
    "DatabaseError",
    "DatabaseMissing",
    "DatabaseUrlError",
    "open_database",
    "parse_url",
    "redacted",
]
