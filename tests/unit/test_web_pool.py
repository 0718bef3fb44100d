"""The web child's SQLite connections, held open across the privilege drop (`web/pool.py`):
they serve reads and writes as the unprivileged user; one SQLAlchemy drops is never reopened
read-only behind the others' backs: the process ends with one line saying why (the daemon then
restarts it). Run for real: a child process as root that drops to the web account."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from dynapot.processes import python_command, python_environment
from dynapot.web.pool import DATABASE_LOST

WEB = "dynapot-web"

CHILD = """
import sys
from sqlalchemy import text
from dynapot.db import open_database
from dynapot.sensor.privileges import drop_privileges
from dynapot.web.pool import hold_connections

db = open_database(sys.argv[1])
assert hold_connections(db, 2)
drop_privileges(sys.argv[2])
insert = text("INSERT INTO audit_log (time, actor, action, target) VALUES (CURRENT_TIMESTAMP, 'a', 'b', 'c')")
for _ in range(4):  # more rounds than connections: each one is used again
    with db.engine.connect() as connection:
        connection.execute(insert)
        connection.commit()
print("served", flush=True)
if sys.argv[3] == "lose":
    with db.engine.connect() as connection:
        connection.connection.invalidate()  # as after an error SQLAlchemy takes for a lost connection
    for _ in range(4):
        with db.engine.connect() as connection:
            connection.execute(insert)
            connection.commit()
    print("still served", flush=True)
"""


def run_child(tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    try:
        pwd.getpwnam(WEB)
    except KeyError:
        pytest.skip(f"no {WEB} account here (make setup makes it)")
    url = f"sqlite:///{tmp_path / 'web.db'}"
    return subprocess.run(
        [*python_command("-c", CHILD), url, WEB, what],
        env=python_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop takes root")


def test_held_connections_serve_reads_and_writes_after_the_drop(tmp_path: Path) -> None:
    done = run_child(tmp_path, "keep")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["served"]
    assert (tmp_path / "web.db").stat().st_uid == 0  # root's file, written through held connections


def test_a_lost_connection_ends_the_process_with_its_reason_instead_of_a_read_only_one(
    tmp_path: Path,
) -> None:
    done = run_child(tmp_path, "lose")
    assert done.returncode == DATABASE_LOST, (done.stdout, done.stderr)
    assert done.stdout.splitlines() == ["served"]  # never "still served" half read-only
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: a database connection to ") and "cannot be reopened without root" in last
