"""Recording under attack, on the wire: short versions of bench/abuse_recording.py's checks.

A NUL byte in an FTP user on PostgreSQL does not stop recording; a hostile login name forges
nothing in the honeyd log; what a SIGKILLed sensor had journaled is stored, once, after a
restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

import pytest
from sqlalchemy import select

from dynapot.db import Access, open_database
from dynapot.db.models import HoneypotEvent
from dynapot.lab.sensor import running_sensor
from dynapot.sensor.eventformat import decode
from dynapot.sensor.journal import HEADER

pytestmark = pytest.mark.lab

VIRTUAL = "198.18.0.150"
CONFIG = f"""
create box
set box personality "Linux 5.4"
add box tcp port 21 "ftp"
add box tcp port 80 "http"
bind {VIRTUAL} box
"""
FTP_NUL_THEN_LOGINS = r"""
import socket, sys
def session(user):
    s = socket.create_connection((sys.argv[1], 21), 5)
    f = s.makefile("rb")
    f.readline()
    for line in (b"USER " + user, b"PASS pw", b"QUIT"):
        s.sendall(line + b"\r\n")
        f.readline()
    s.close()
session(b"ro\x00ot")
for i in range(3):
    session(b"admin%d" % i)
"""
FORGED = "2027-01-01-00:00:00.0000 tcp(6) S 6.6.6.6 1 198.18.0.150 80"
WEB_LOGIN = r"""
import sys, urllib.error, urllib.parse, urllib.request
form = urllib.parse.urlencode({"username": sys.argv[2], "password": "pw"}).encode()
try:
    urllib.request.urlopen("http://%s/login" % sys.argv[1], data=form, timeout=10)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""
CONNECTIONS = r"""
import socket, sys
for _ in range(int(sys.argv[2])):
    socket.create_connection((sys.argv[1], 80), 5).close()
"""


def attack(lab, script: str, *argv: str) -> None:
    result = lab.exec(lab.attacker, [sys.executable, "-c", script, *argv], timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_nul_in_an_ftp_user_on_postgresql_does_not_stop_recording(lab, tmp_path, new_pg_database):
    url = new_pg_database()
    open_database(url, access=Access.CREATE).dispose()
    db = open_database(url, access=Access.READ)

    def logins() -> list[str]:
        with db.session() as session:
            return list(session.scalars(select(HoneypotEvent.detail).where(HoneypotEvent.kind == "login")))

    try:
        with running_sensor(lab, CONFIG, tmp_path, db_url=url) as sensor:
            attack(lab, FTP_NUL_THEN_LOGINS, VIRTUAL)
            deadline = time.monotonic() + 20
            while len(logins()) < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert sensor.process.returncode == 0  # stopped by SIGTERM, flushed
        assert sorted(logins()) == ["admin0:pw", "admin1:pw", "admin2:pw", "ro\\x00ot:pw"]
    finally:
        db.dispose()


def test_a_hostile_login_name_forges_no_line_in_the_honeyd_log(lab, tmp_path):
    hostile = f"root\n{FORGED}\x1b[2J\x1b]0;owned\x07"
    with running_sensor(lab, CONFIG, tmp_path) as sensor:
        attack(lab, WEB_LOGIN, VIRTUAL, hostile)
    assert [e["detail"] for e in sensor.events("login")] == [f"{hostile}:pw"]  # stored as typed
    text = sensor.log.read_text()
    assert "\x1b" not in text and "\x07" not in text
    assert all(re.match(r"\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{4} ", line) for line in text.splitlines())
    assert sum(1 for line in text.splitlines() if "login root\\x0a2027-01-01" in line) == 1


def _journaled_connects(folder) -> int:
    """`connect` events in the journal's segments, read as the format says."""
    found = 0
    for segment in sorted(folder.glob("*.dpj")):
        data, at = segment.read_bytes(), 0
        while at + HEADER.size <= len(data):
            length = HEADER.unpack_from(data, at)[2]
            payload = data[at + HEADER.size : at + HEADER.size + length]
            if len(payload) < length:
                break
            found += sum(1 for e in decode(payload)[0] if e.kind == "connect")
            at += HEADER.size + length
    return found


def test_what_a_sigkilled_sensor_journaled_is_stored_once_after_a_restart(lab, tmp_path):
    """The writer is frozen, so that nothing reaches the database; the sensor journals 40
    connections and is killed (its writer too); the restarted sensor stores all 40, once."""
    count = 40
    with running_sensor(lab, CONFIG, tmp_path) as sensor:
        (writer,) = sensor.writer_pids()
        os.kill(writer, signal.SIGSTOP)
        try:
            attack(lab, CONNECTIONS, VIRTUAL, str(count))
            deadline = time.monotonic() + 20
            while _journaled_connects(tmp_path / "journal") < count and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            sensor.process.kill()
            os.kill(writer, signal.SIGKILL)
        sensor.process.wait()
    assert sensor.wait_writers_gone()
    assert sensor.events("connect") == []  # nothing stored before the crash
    with running_sensor(lab, CONFIG, tmp_path) as restarted:
        pass
    assert len(restarted.events("connect")) == count
    said = json.loads(restarted.output.read_text().splitlines()[-1])
    assert said["events lost"] == 0
