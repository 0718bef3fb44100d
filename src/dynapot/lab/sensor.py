"""Run `dynapot sensor` inside a lab's sensor namespace: for tests, benchmarks and the demo."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dynapot.db import Access, open_database
from dynapot.lab.network import Lab
from dynapot.processes import python_command, terminate

START_TIMEOUT = 120.0  # a /16 of bound addresses takes a while to set up
STOP_TIMEOUT = 60.0


class RunningSensor:
    """A sensor process and its files: database, honeyd-format log, console output."""

    def __init__(self, process: subprocess.Popen[str], db: Path | None, log: Path, output: Path) -> None:
        self.process, self.db, self.log, self.output = process, db, log, output
        self.listening_in: float = 0.0  # until the raw socket is open and the loop runs
        self.started_in: float = 0.0  # until every address is probed and answered for

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        assert self.db is not None, "this sensor runs without a database"
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.row_factory = sqlite3.Row
            if kind is None:
                rows = conn.execute("SELECT * FROM honeypot_events")
            else:
                rows = conn.execute("SELECT * FROM honeypot_events WHERE kind = ?", (kind,))
            return [dict(r) for r in rows]

    def writer_pids(self) -> list[int]:
        """This sensor's event writer processes (their command line names its log file); one
        outlives a sensor killed with SIGKILL until it has stored what it was given."""
        marker = str(self.log).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                    if b"dynapot.sensor.eventsink" in argv and marker in argv:
                        found.append(int(entry.name))
        return found

    def wait_writers_gone(self, timeout: float = STOP_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while self.writer_pids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> int | None:
        return terminate(self.process, STOP_TIMEOUT)


@contextlib.contextmanager
def running_sensor(
    lab: Lab,
    config: str,
    workdir: Path,
    *,
    database: bool = True,
    db_url: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[RunningSensor]:
    """Start a sensor with `config` (honeyd language) and stop it with SIGTERM, whatever happens.

    Events go to `db_url`, else to a fresh SQLite file in `workdir` (or nowhere without `database`).
    """
    conf, db, log, output = (workdir / n for n in ("honeyd.conf", "sensor.db", "sensor.log", "sensor.out"))
    conf.write_text(config)
    if database and not db_url:
        # The sensor logs into an existing database only (a typo must not make a new one).
        open_database(f"sqlite:///{db}", access=Access.CREATE).dispose()
    os.chmod(workdir, 0o755)  # noqa: S103 - the sensor drops root and must still reach its files
    command = python_command(
        "-m", "dynapot", "sensor", "-i", "eth0", "--config", str(conf), "--log", str(log)
    )
    # The journal in the run's own folder: runs side by side must not share one.
    command += (
        ["--db", db_url or f"sqlite:///{db}", "--journal", str(workdir / "journal")]
        if database
        else ["--no-db"]
    )
    command += list(extra_args)
    started = time.monotonic()
    with output.open("w") as out:
        process = lab.popen(lab.sensor, command, stdout=out, stderr=subprocess.STDOUT, text=True)
    sensor = RunningSensor(process, db if database and not db_url else None, log, output)
    try:
        deadline = started + START_TIMEOUT
        while "claimed " not in (text := output.read_text()):  # every address ARP-probed, then claimed
            if not sensor.listening_in and "answering for" in text:
                sensor.listening_in = time.monotonic() - started
            if process.poll() is not None:
                raise RuntimeError(f"sensor exited: {output.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sensor did not start: {output.read_text()}")
            time.sleep(0.05)
        sensor.started_in = time.monotonic() - started
        yield sensor
    finally:
        sensor.stop()
