"""The inventory database: SQLAlchemy 2 models, engine set-up and Alembic migrations.

SQLite (in WAL mode) is the default; any SQLAlchemy URL works, PostgreSQL is tested.
`open_database(url)` connects, brings the schema up to date and returns a `Database`.
"""

from dynapot.db.engine import Database, DatabaseError, open_database

__all__ = ["Database", "DatabaseError", "open_database"]
