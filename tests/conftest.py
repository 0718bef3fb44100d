"""Shared fixtures: a database of each supported kind.

`db` runs a test once on SQLite and once on a real PostgreSQL server that this test
session starts itself (initdb into a temporary folder, Unix socket only, no TCP port),
and stops at the end. On CI a missing PostgreSQL is an error, not a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dynapot.db import Database, open_database


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if Path(folder, "initdb").exists():
            return Path(folder)
    return None


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must test PostgreSQL; .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields a URL template with {db} for the database name."""
    bindir = _pg_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries not installed")
    base = Path(tempfile.mkdtemp(prefix="dynapot-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; the Debian package provides the postgres user.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _missing("no postgres system user to run the server as")
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-t",
                "60",
                "-l",
                str(base / "log"),
                "-o",
                f"-c listen_addresses='' -k {sockets} -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode()} {log}")
    try:
        yield f"postgresql+psycopg://postgres@/{{db}}?host={sockets}"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def create_pg_database(template: str) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    host = template.split("host=", 1)[1]
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return template.format(db=name)


@pytest.fixture(scope="session")
def new_pg_database(postgres_server: str) -> Callable[[], str]:
    """A factory: each call creates an empty database on the session's server, returns its URL."""
    return lambda: create_pg_database(postgres_server)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dynapot.db'}"
    return request.getfixturevalue("new_pg_database")()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    try:
        yield database
    finally:
        database.dispose()
