"""Connecting to the database and keeping its schema current.

A command says what it needs (`Access`): to read an existing database at the current schema
(and never write, which the connection itself then refuses), to write to an existing one
(migrating it first), to append events to an existing one (the sensor: never migrating, and
needing no right but INSERT on honeypot_events), or to create one when there is none. Only
the last ever makes a new database, so that a mistyped URL is an error rather than a new,
empty inventory.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
URL_EXAMPLES = "e.g. sqlite:////var/lib/dynapot/dynapot.db or postgresql+psycopg://user@host/dynapot"


class Access(enum.Enum):
    """What a command does with the database, and so what it may find there."""

    READ = "read"  # an existing database at the current schema; every write is refused
    WRITE = "write"  # an existing database; migrated to the current schema first
    # An existing database the command only adds events to: never migrated; it needs INSERT on
    # honeypot_events and nothing else (a PostgreSQL role may be granted just that).
    APPEND = "append"
    CREATE = "create"  # made (folder, file, schema) when missing, then migrated


class DatabaseError(RuntimeError):
    """The database cannot be used. `url` is printable (no password), `reason` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"database {url}: {reason}")
        self.url, self.reason = url, reason


class DatabaseUrlError(DatabaseError):
    """The URL itself is unusable: not a URL, or no driver for it."""


class DatabaseMissing(DatabaseError):
    """Nothing to use where the URL points: no file, no dynapot tables, or (to read) an old schema."""


def redacted(url: str) -> str:
    """`url` fit to print: never a password (URLs arrive from the command line and the environment)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def parse_url(url: str) -> URL:
    """The parsed URL; DatabaseUrlError when it is none."""
    try:
        return make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(redacted(url), f"not a database URL ({URL_EXAMPLES})") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, read_only: bool) -> None:
    cursor = dbapi_connection.cursor()
    if read_only:
        # SQLite then refuses any write on this connection: a read-only command cannot write.
        cursor.execute("PRAGMA query_only=ON")
    else:
        # WAL lets the sensor write events while reports read; NORMAL is safe with WAL and far faster.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of an SQLite URL; None for other back-ends and in-memory databases."""
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _missing_file(path: Path) -> str:
    reason = f"no database file {path}"
    if not path.is_absolute():
        # sqlite:///x is relative to the working directory; sqlite:////x is the absolute /x.
        reason += f" (a relative path, from {Path.cwd()}; for /{path} write four slashes: sqlite:////{path})"
    return reason + "; `dynapot db upgrade` creates a new one"


def make_engine(url: str, *, access: Access = Access.CREATE) -> Engine:
    """An engine for `url`. Only CREATE makes an SQLite file (and its folder) that is not there."""
    parsed = parse_url(url)
    kwargs: dict[str, Any] = {"future": True}
    read_only = access is Access.READ
    path = _sqlite_file(parsed)
    if path is not None and not path.exists():
        if access is not Access.CREATE:
            raise DatabaseMissing(redacted(url), _missing_file(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(redacted(url), f"cannot create the folder {path.parent}: {exc}") from None
    if parsed.get_backend_name() == "postgresql":
        # Fail fast when the server does not answer instead of hanging on a SYN.
        kwargs["connect_args"] = {"connect_timeout": 10}
        if read_only:  # the server refuses every write in these sessions
            kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUrlError(redacted(url), f"no driver for it: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, read_only=read_only))
    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py takes this connection rather than making its own from a URL string.
    config.attributes["engine"] = engine
    return config


@dataclass
class Database:
    """An engine plus a session factory; `session()` commits on success, rolls back on error."""

    engine: Engine
    sessions: sessionmaker[Session]
    read_only: bool = False  # opened with Access.READ: every write fails
    created: bool = False  # the schema (and for SQLite the file) was made by this opening

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    command.upgrade(alembic_config(engine), "head")


def _revision(connection: Connection) -> str | None:
    """The schema revision stored in the database; None when it has no dynapot tables."""
    if "hosts" not in inspect(connection).get_table_names():
        return None
    return MigrationContext.configure(connection).get_current_revision()


def _check_appendable(connection: Connection, url: str) -> None:
    """Refuse a database without honeypot_events, or (PostgreSQL) one whose role may not insert
    there, or one whose schema is not this dynapot's (when the role may read its revision)."""
    if not inspect(connection).has_table("honeypot_events"):
        raise DatabaseMissing(url, "no dynapot tables there; `dynapot db upgrade` creates them")
    if connection.dialect.name == "postgresql":
        may_insert, may_read = connection.execute(
            text(
                "SELECT has_table_privilege('honeypot_events', 'INSERT'), "
                "has_table_privilege('alembic_version', 'SELECT')"
            )
        ).one()
        if not may_insert:
            raise DatabaseError(
                url, "this role may not insert into honeypot_events (see the README's role set-up)"
            )
        if not may_read:
            return  # a role granted INSERT alone: the schema is the owner's business
    revision = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(connection.engine)).get_current_head()
    if revision != head:
        raise DatabaseMissing(
            url, f"schema {revision}, this dynapot writes {head}; `dynapot db upgrade` migrates it"
        )


def _check_schema(engine: Engine, access: Access, url: str) -> bool:
    """Whether the database has dynapot's tables; refuse what `access` may not use."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        if access is Access.APPEND:
            _check_appendable(connection, url)
            return True
        revision = _revision(connection)
    if revision is None:
        if access is not Access.CREATE:
            raise DatabaseMissing(url, "no dynapot tables there; `dynapot db upgrade` creates them")
        return False
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    if access is Access.READ and revision != head:
        raise DatabaseMissing(
            url, f"schema {revision}, this dynapot reads {head}; `dynapot db upgrade` migrates it"
        )
    return True


def open_database(url: str, *, access: Access = Access.CREATE) -> Database:
    """Connect to `url`, check that it answers and holds what `access` needs, migrate unless reading."""
    engine = make_engine(url, access=access)
    printable = redacted(url)
    try:
        existed = _check_schema(engine, access, printable)
        if access in (Access.WRITE, Access.CREATE):
            upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(printable, f"does not answer: {reason}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(printable, str(exc)) from None
    except DatabaseError:
        engine.dispose()
        raise
    sessions = sessionmaker(engine, expire_on_commit=False)
    return Database(engine=engine, sessions=sessions, read_only=access is Access.READ, created=not existed)
