"""Abuse suite for recording: an attacker must not silence, forge or outrun dynapot's event log.

Builds its own lab (and, for the PostgreSQL check, its own throwaway PostgreSQL server, as
tests/conftest.py does), attacks the sensor in it, and prints one JSON line per check with
its figure and whether it passed:

- nul_postgres: an FTP `USER` with a NUL byte against a sensor logging to PostgreSQL, then 5
  logins and 3 pings: every event after it is stored, the NUL one too (escaped), and the
  sensor stops on SIGTERM (figure: events stored after the NUL; seconds to stop).
- log_injection: 12 logins on a web login form whose user name holds a newline (a forged honeyd
  line), terminal escapes, HTML and markdown: no raw ESC and no forged line in the honeyd log, in `dynapot
  report` (text, CSV, HTML) and `dynapot findings`, nor in the alerts the brute force raises
  (an HTML mail, a JSON webhook, a markdown webhook; tests/receivers.py's receivers).
- durability: a 5 s load of ~100 concurrent connections (../shared/tools/connrate.c), then
  SIGKILL of the sensor at once; completed connections against `connect` rows after a
  restart on the same database and journal (target: <= 1 % missing).
- event_lag: the same load for --lag-seconds; p99 of an event's time to its row's commit, as
  the sensor measures it (target: <= 1 s at 10,000 connections/s; the rate reached is given).

Needs root (network namespaces). From the repository root:
`PYTHONPATH=$PWD/src .venv/bin/python bench/abuse_recording.py [--only CHECK]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dynapot.db import Access, open_database
from dynapot.lab import lab_up
from dynapot.lab.sensor import running_sensor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from receivers import receivers  # noqa: E402 - the tests' alert receivers, beside this folder

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
SERVICES = f"""
create box
set box personality "Linux 5.4"
add box tcp port 21 "ftp"
add box tcp port 80 "http"
bind {VIRTUAL} box
"""
RESULT = re.compile(r"conns (\d+) errors (\d+) timeouts (\d+) rate ([\d.]+)/s")
FORGED = "2027-01-01-00:00:00.0000 tcp(6) S 6.6.6.6 1 198.18.0.100 22"
HOSTILE_USER = f"root\n{FORGED}\x1b[2J\x1b]0;owned\x07<b>bold</b>**md**"
STAMP = re.compile(r"^\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{4} ")
FTP_ATTACK = r"""
import socket, sys
def session(user, password):
    s = socket.create_connection((sys.argv[1], 21), 5)
    f = s.makefile("rb")
    f.readline()
    for line in (b"USER " + user, b"PASS " + password, b"QUIT"):
        s.sendall(line + b"\r\n")
        f.readline()
    s.close()
session(b"ro\x00ot", b"x")
for i in range(5):
    session(b"admin%d" % i, b"pw")
"""
WEB_ATTACK = r"""
import sys, urllib.error, urllib.parse, urllib.request
for i in range(int(sys.argv[3])):
    form = urllib.parse.urlencode({"username": sys.argv[2], "password": "pw%d" % i}).encode()
    try:
        urllib.request.urlopen("http://%s/login" % sys.argv[1], data=form, timeout=10)
    except urllib.error.HTTPError as exc:
        print(exc.code)
"""


def emit(check: str, value: float, unit: str, passed: bool | None, **extra: Any) -> None:
    line = {"check": check, "value": round(value, 4), "unit": unit, "pass": passed, **extra}
    print(json.dumps(line), flush=True)


# ---------------------------------------------------------------------- tools


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


def wait_writers_gone(sensor: Any, timeout: float = 120.0) -> None:
    """Until the (killed) sensor's event writer has stored what it was given and ended."""
    if hasattr(sensor, "wait_writers_gone"):
        sensor.wait_writers_gone(timeout)
        return
    marker = str(sensor.log).encode()  # a dynapot from before its lab harness could say: /proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
                busy = busy or (b"dynapot.sensor.eventsink" in argv and marker in argv)
        if not busy:
            return
        time.sleep(0.05)


def summary(output: Path) -> dict[str, Any]:
    """The sensor's last words: its counters as one JSON line."""
    for line in reversed(output.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (Unix socket only); yields a URL for a new database in it."""
    bindir = next((Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
                   if Path(d, "initdb").exists()), None)  # fmt: skip
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed")
    pwd.getpwnam("postgres")  # initdb refuses root: the Debian package's user runs it
    base = Path(tempfile.mkdtemp(prefix="dynapot-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    for folder in (base, sockets):
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o755)  # the sensor's writer reconnects after dropping root
    run_as = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120)  # fmt: skip
        options = f"-c listen_addresses='' -k {sockets} -c fsync=off"
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
                        str(base / "log"), "-o", options, "start"], check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        import psycopg

        name = f"abuse_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(host=str(sockets), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://postgres@/{name}?host={sockets}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------- checks


def check_nul_postgres(lab: Any, workdir: Path) -> None:
    """FTP USER with a NUL byte on PostgreSQL: recording goes on, the sensor stops on SIGTERM."""
    from sqlalchemy import func, select

    from dynapot.db import models
    from dynapot.db.models import HoneypotEvent

    with postgres() as url:
        open_database(url, access=Access.CREATE).dispose()
        db = open_database(url, access=Access.READ)

        def stored(kind: str, start: str = "") -> int:
            with db.session() as session:
                details = session.scalars(select(HoneypotEvent.detail).where(HoneypotEvent.kind == kind))
                return sum(1 for detail in details if (detail or "").startswith(start))

        with running_sensor(lab, SERVICES, workdir, db_url=url) as sensor:
            attack = lab.exec(lab.attacker, [sys.executable, "-c", FTP_ATTACK, VIRTUAL], timeout=60)
            lab.exec(lab.attacker, ["busybox", "ping", "-c", "3", VIRTUAL], timeout=30)
            deadline = time.monotonic() + 20
            while (stored("login", "admin") < 5 or stored("echo") < 3) and time.monotonic() < deadline:
                time.sleep(0.2)
            start = time.monotonic()
            status = sensor.stop()
            stop_seconds = time.monotonic() - start
        after, pings, nul = stored("login", "admin"), stored("echo"), stored("login", "ro\\x00ot:x")
        quarantined = None  # (a dynapot without a quarantine: measured before it was made)
        if hasattr(models, "QuarantinedEvent"):
            with db.session() as session:
                quarantined = session.scalar(select(func.count()).select_from(models.QuarantinedEvent))
        db.dispose()
    passed = after == 5 and pings == 3 and nul == 1 and status == 0 and stop_seconds < 30
    emit("nul_postgres_events_after_nul", after + pings, "events", passed, expected=8, nul_login_stored=nul,
         quarantined=quarantined, stop_seconds=round(stop_seconds, 2), exit_status=status,
         attacker=attack.returncode, attacker_said=attack.stderr[-300:])  # fmt: skip


def _dynapot(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dynapot", *argv], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"dynapot {' '.join(argv)}: {result.stderr}")
    return result.stdout


def _inert(text: str) -> dict[str, int]:
    """What would be interpreted downstream: raw ESC/BEL bytes, lines the attacker began."""
    return {
        "raw_escapes": text.count("\x1b") + text.count("\x07"),
        "forged_lines": sum(1 for line in text.splitlines() if line.lstrip("> ").startswith(FORGED)),
    }


def check_log_injection(lab: Any, workdir: Path) -> None:
    """A hostile login name (a web login form's): inert in the honeyd log, the CLI, the reports and
    the alerts. (An SSH server refuses such a name before any login: asyncssh's SASLprep.)"""
    from dynapot.analysis.alerts import Alerter
    from dynapot.analysis.stored import correlate_stored
    from dynapot.config import AlertSettings

    attempts = 12
    with running_sensor(lab, SERVICES, workdir) as sensor:
        lab.exec(lab.attacker, [sys.executable, "-c", WEB_ATTACK, VIRTUAL, HOSTILE_USER, str(attempts)],
                 timeout=180)  # fmt: skip
    logins = [e for e in sensor.events("login") if e["detail"].startswith("root\n")]
    url = f"sqlite:///{sensor.db}"
    outputs: dict[str, str] = {"honeyd_log": sensor.log.read_text(errors="replace")}
    for fmt in ("text", "csv", "html"):
        outputs[f"report_{fmt}"] = _dynapot("report", "--db", url, "--since", "1h", "--format", fmt)
    outputs["findings"] = _dynapot("findings", "--db", url, "--since", "1h")
    db = open_database(url, access=Access.READ)
    now = datetime.now(UTC)
    findings = [f for f in correlate_stored(db, now - timedelta(hours=1), now) if f.kind == "brute-force"]
    db.dispose()
    with receivers() as (smtp, hook):
        urls = (smtp.url() + "&format=html", hook.url(), hook.url() + "?format=markdown")
        alerter = Alerter(AlertSettings(urls=urls, min_risk="low", retry_delay=0), None)
        for finding in findings:
            alerter.consider(finding)
        asyncio.run(alerter.drain())
        for i, mail in enumerate(smtp.messages):
            for part in mail.walk():
                if not part.is_multipart():
                    outputs[f"mail_{i}_{part.get_content_type()}"] = part.get_payload(decode=True).decode()
        for i, body in enumerate(hook.bodies):
            outputs[f"webhook_{i}"] = f"{body.get('title')}\n{body.get('message')}"
    seen = {name: _inert(text) for name, text in outputs.items()}
    stray = [line for line in outputs["honeyd_log"].splitlines() if not STAMP.match(line)]
    html_tags = sum(text.count("<b>bold</b>") for name, text in outputs.items() if "html" in name)
    markdown = sum(text.count("**md**") for name, text in outputs.items() if name.startswith("webhook"))
    bad = sum(v["raw_escapes"] + v["forged_lines"] for v in seen.values()) + len(stray) + html_tags
    passed = bad == 0 and len(logins) == attempts and bool(findings) and len(smtp.messages) == 1
    emit("log_injection_interpreted", bad, "strings", passed, logins_stored=len(logins),
         findings=len(findings), alerts_mailed=len(smtp.messages), webhooks=len(hook.bodies),
         html_tags=html_tags, unescaped_markdown_in_webhooks=markdown, stray_log_lines=len(stray),
         by_output={k: v for k, v in seen.items() if any(v.values())})  # fmt: skip


def check_durability(lab: Any, binary: Path, workdir: Path, seconds: float, concurrency: int) -> None:
    """Completed connections vs. connections stored, after SIGKILL at the end of a load and a restart."""
    db = workdir / "sensor.db"
    connects = f"kind = 'connect' AND dst_ip = '{VIRTUAL}' AND dst_port = {PORT}"
    with running_sensor(lab, CONFIG, workdir) as sensor:
        warm = connrate(lab, binary, 1, 10)
        load = connrate(lab, binary, seconds, concurrency)
        sensor.process.send_signal(signal.SIGKILL)
        sensor.process.wait()
    completed = warm["conns"] + load["conns"]
    start = time.monotonic()
    wait_writers_gone(sensor)  # the killed sensor's writer stores what it was given, then ends
    drained = time.monotonic() - start
    after_kill = sqlite_count(db, connects)
    with running_sensor(lab, CONFIG, workdir) as restarted:
        pass
    stored = sqlite_count(db, connects)
    missing = max(0, completed - stored)
    share = 100.0 * missing / max(completed, 1)
    replayed = summary(restarted.output).get("events written")
    emit("sigkill_durability_missing", share, "%", share <= 1.0, completed=completed,
         stored_after_kill=after_kill, stored_after_restart=stored, rate=load["rate"],
         concurrency=concurrency, seconds=seconds, old_writer_drained_s=round(drained, 2),
         restart_events_written=replayed)  # fmt: skip


def check_event_lag(lab: Any, binary: Path, workdir: Path, seconds: float, concurrency: int) -> None:
    """p99 of event time to commit under a connection flood, as the sensor measures it."""
    with running_sensor(lab, CONFIG, workdir) as sensor:
        connrate(lab, binary, 1, 10)
        load = connrate(lab, binary, seconds, concurrency)
    said = summary(sensor.output)
    p99 = said.get("event lag p99 (ms)")
    passed = p99 is not None and p99 <= 1000.0 and load["rate"] >= 10_000
    emit("event_lag_p99", p99 if p99 is not None else -1, "ms", passed, rate=load["rate"], seconds=seconds,
         concurrency=concurrency, events_written=said.get("events written"), lost=said.get("events lost"),
         note="a histogram bucket's bound (10 a decade); passing needs >= 10,000 connections/s")  # fmt: skip


CHECKS = ("nul_postgres", "log_injection", "durability", "event_lag")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=CHECKS, action="append", help="run only these checks")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the durability load")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="length of the event-lag load")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="run the durability check this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # the sensor drops root and must still reach its files
        binary = build_connrate(workdir)
        for check in args.only or CHECKS:
            for run in range(args.repeat if check == "durability" else 1):
                sub = workdir / f"{check}-{run}"
                sub.mkdir()
                if check == "nul_postgres":
                    check_nul_postgres(lab, sub)
                elif check == "log_injection":
                    check_log_injection(lab, sub)
                elif check == "durability":
                    check_durability(lab, binary, sub, args.seconds, args.concurrency)
                else:
                    check_event_lag(lab, binary, sub, args.lag_seconds, args.concurrency)


if __name__ == "__main__":
    main()
