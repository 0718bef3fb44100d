"""Abuse suite for recording: an attacker must not silence, forge or outrun dynapot's event log.

Builds its own lab (and, for the PostgreSQL check, its own throwaway PostgreSQL server, as
tests/conftest.py does), attacks the sensor in it, and prints one JSON line per check with
its figure and whether it passed:

- durability: a 5 s load of ~100 concurrent connections (../shared/tools/connrate.c), then
  SIGKILL of the sensor at once; completed connections against `connect` rows in the
  database after a restart on the same database and journal (target: <= 1 % missing).

Needs root (network namespaces). Run from the repository root:
`sudo PYTHONPATH=$PWD/src .venv/bin/python bench/abuse_recording.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dynapot.lab import lab_up
from dynapot.lab.sensor import running_sensor

HERE = Path(__file__).resolve().parent
CONNRATE_SOURCE = HERE.parent.parent / "shared" / "tools" / "connrate.c"
VIRTUAL = "198.18.0.100"
PORT = 80
CONFIG = f"""
create web
set web personality "Linux 5.4"
set web default tcp action reset
add web tcp port {PORT} open
bind {VIRTUAL} web
"""
RESULT = re.compile(r"conns (\d+) errors (\d+) timeouts (\d+) rate ([\d.]+)/s")


def emit(check: str, value: float, unit: str, passed: bool | None, **extra: Any) -> None:
    line = {"check": check, "value": round(value, 4), "unit": unit, "pass": passed, **extra}
    print(json.dumps(line), flush=True)


def build_connrate(workdir: Path) -> Path:
    source = Path(os.environ.get("DYNAPOT_CONNRATE_SRC", CONNRATE_SOURCE))
    if not source.exists():
        sys.exit(f"connrate source not found at {source} (set DYNAPOT_CONNRATE_SRC)")
    binary = workdir / "connrate"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True, timeout=120)
    return binary


def connrate(lab: Any, binary: Path, seconds: float, concurrency: int) -> dict[str, float]:
    argv = [str(binary), VIRTUAL, str(PORT), str(seconds), str(concurrency), "0"]
    result = lab.exec(lab.attacker, argv, timeout=seconds + 30)
    match = RESULT.search(result.stdout)
    if not match:
        raise RuntimeError(f"connrate said: {result.stdout} {result.stderr}")
    conns, errors, timeouts, rate = match.groups()
    return {"conns": int(conns), "errors": int(errors), "timeouts": int(timeouts), "rate": float(rate)}


def sqlite_count(db: Path, where: str = "1") -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(f"SELECT count(*) FROM honeypot_events WHERE {where}").fetchone()[0]


def writer_processes(marker: str) -> list[int]:
    """Event writer processes whose command line names `marker` (its log file: one run's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"dynapot.sensor.eventsink" in argv and marker.encode() in b" ".join(argv):
                found.append(int(entry.name))
    return found


def wait_gone(marker: str, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while writer_processes(marker) and time.monotonic() - start < timeout:
        time.sleep(0.05)
    return time.monotonic() - start


def check_durability(lab: Any, binary: Path, workdir: Path, seconds: float, concurrency: int) -> None:
    """Completed connections vs. connections stored, after SIGKILL at the end of a load and a restart."""
    db = workdir / "sensor.db"
    connects = f"kind = 'connect' AND dst_ip = '{VIRTUAL}' AND dst_port = {PORT}"
    with running_sensor(lab, CONFIG, workdir) as sensor:
        warm = connrate(lab, binary, 1, 10)
        load = connrate(lab, binary, seconds, concurrency)
        sensor.process.kill()
        sensor.process.wait()
    completed = warm["conns"] + load["conns"]
    drained = wait_gone(str(sensor.log))
    after_kill = sqlite_count(db, connects)
    with running_sensor(lab, CONFIG, workdir) as restarted:
        pass
    wait_gone(str(restarted.log))
    stored = sqlite_count(db, connects)
    missing = max(0, completed - stored)
    share = 100.0 * missing / max(completed, 1)
    emit(
        "sigkill_durability_missing",
        share,
        "%",
        share <= 1.0,
        completed=completed,
        stored_after_kill=after_kill,
        stored_after_restart=stored,
        rate=load["rate"],
        concurrency=concurrency,
        seconds=seconds,
        old_writer_drained_s=round(drained, 2),
    )


CHECKS = ("durability",)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=CHECKS, action="append", help="run only these checks")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the durability load")
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # the sensor drops root and must still reach its files
        binary = build_connrate(workdir)
        for check in args.only or CHECKS:
            sub = workdir / check
            sub.mkdir()
            if check == "durability":
                check_durability(lab, binary, sub, args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
