"""On PostgreSQL the sensor's role can only insert events (the README's role set-up, run for real).

A role given `db.roles.sensor_grants` and nothing else runs the sensor's event writer (the child
process, as the sensor starts it) and its budget measurement; it can neither read events back nor
change them, nor read or change any other table, nor make tables of its own.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from dynapot.db import Access, DatabaseError, open_database
from dynapot.db.models import HoneypotEvent
from dynapot.db.roles import sensor_grants
from dynapot.sensor.eventlog import Event, EventWriter
from dynapot.sensor.storage import database_bytes

pytestmark = pytest.mark.postgres

FORBIDDEN = [
    "SELECT * FROM honeypot_events",
    "SELECT count(*) FROM honeypot_events",
    "UPDATE honeypot_events SET detail = 'forged'",
    "DELETE FROM honeypot_events",
    "TRUNCATE honeypot_events",
    "SELECT * FROM hosts",
    "INSERT INTO hosts (ip, is_virtual, tool, first_seen, last_seen) "
    "VALUES ('198.18.0.9', false, 'x', now(), now())",
    "UPDATE findings SET risk = 'low'",
    "DELETE FROM alerts",
    "SELECT * FROM alembic_version",
    "DROP TABLE sessions",
    "ALTER TABLE honeypot_events ADD COLUMN x integer",
    "CREATE TABLE public.filler (x text)",
]


@pytest.fixture
def sensor_role(new_pg_database):
    """(owner URL, sensor URL): a migrated database and a login role given the sensor's grants."""
    owner_url = new_pg_database()
    owner = open_database(owner_url)  # creates the schema, as the owner
    role = f"sensor_{uuid.uuid4().hex[:10]}"
    database = make_url(owner_url).database
    with owner.engine.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        for statement in sensor_grants(role, database):
            connection.execute(text(statement))
    owner.dispose()
    yield owner_url, owner_url.replace("postgres@", f"{role}@", 1)


def test_the_sensor_role_runs_the_event_writer(sensor_role):
    owner_url, sensor_url = sensor_role
    # The sensor opens its database to append only: no migration, no reading.
    appender = open_database(sensor_url, access=Access.APPEND)
    assert database_bytes(appender.engine) > 0  # the budget's measure needs no table rights
    appender.dispose()
    writer = EventWriter(None, None, child=True, db_url=sensor_url)
    writer.submit(Event.news("sensor-start", "1 hosts"))
    for port in range(20):
        writer.submit(Event(time.time(), "udp", 0xC6120003, 40000, 0xC6120064, port, "probe", "closed"))
    assert writer.flush(60)
    writer.close()
    assert writer.lost_total == 0
    owner = create_engine(owner_url)
    with owner.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(HoneypotEvent)) == 21
    owner.dispose()


def test_the_sensor_role_can_do_nothing_else(sensor_role):
    _, sensor_url = sensor_role
    engine = create_engine(sensor_url)
    refused = []
    for statement in FORBIDDEN:
        with engine.connect() as connection:
            try:
                connection.execute(text(statement))
                connection.commit()
            except ProgrammingError as exc:
                assert "permission denied" in str(exc) or "must be owner" in str(exc), exc
                refused.append(statement)
    engine.dispose()
    assert refused == FORBIDDEN
    # Nor may it migrate: opening to write (the daemon's way) is refused.
    with pytest.raises(DatabaseError):
        open_database(sensor_url, access=Access.WRITE)


def test_a_role_that_may_not_insert_is_refused_at_once(new_pg_database):
    owner_url = new_pg_database()
    open_database(owner_url).dispose()
    role = f"nobody_{uuid.uuid4().hex[:10]}"
    owner = create_engine(owner_url)
    with owner.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    owner.dispose()
    with pytest.raises(DatabaseError, match="may not insert into honeypot_events"):
        open_database(owner_url.replace("postgres@", f"{role}@", 1), access=Access.APPEND)


def test_grants_name_only_plain_names():
    with pytest.raises(ValueError):
        sensor_grants('x"; DROP TABLE hosts; --', "dynapot")


def test_the_readme_grants_exactly_the_statements_of_sensor_grants() -> None:
    """An administrator copies the README's SQL: it must be what the tests above run."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("```sql\n", 1)[1].split("```", 1)[0]
    written = [line.removesuffix(";") for line in block.splitlines() if line.strip()]
    assert written == sensor_grants("dynapot_sensor", "dynapot")
