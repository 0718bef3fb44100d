"""The recorder agent on a real backend: an attacker's ssh session, redirected, recorded, in `sessions`.

The attacker's real ssh client (sshpass) logs in on a virtual host's port 22, which the plan
redirects to a backend (real sshd) whose agent (bpftrace on syscall tracepoints) ships Sebek v3
records to a collector on the sensor's address; the attacker types a few commands on a terminal.
Each command run is then in `sessions` with its pid, the account's uid and its name, linked to
the attacker's address; what was typed is rebuilt as commands; `who` showed the attacker; a
second connection (to a virtual host planned on another backend) lands on the same backend and
is recorded too; a connection the backend starts beyond its limit is refused by the sensor, and
the agent recorded the attempt. How fast a command reaches `sessions` is a figure of
bench/bench_agent.py; here the wait is only bounded.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time

import pytest

from dynapot.analysis.sessions import list_sessions
from dynapot.db import Access, open_database
from dynapot.lab.backend import BACKEND_UID, high_interaction_backend
from dynapot.lab.recording import running_agent, running_collector
from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

VH1, VH2 = "198.18.0.120", "198.18.0.121"
OUTSIDE = "198.19.0.81"
LIMIT = 1
WAIT = 30.0  # seconds: a bound, not a timing goal


def config(first: str, second: str) -> str:
    lines = ["create lin", 'set lin personality "Linux 5.4"', "set lin default tcp action reset"]
    lines += [f"bind {VH1} lin", f"add {VH1} tcp port 22 proxy {first}:22"]
    lines += [f"bind {VH2} lin", f"add {VH2} tcp port 22 proxy {second}:22"]
    return "\n".join(lines) + "\n"


def settings_file(path, backends) -> str:
    lines = ["[redirect]", 'mode = "packet"', "sticky_seconds = 600", f"outbound_per_hour = {LIMIT}", ""]
    for backend in backends:
        entry = backend.settings()
        lines += ["[[backends]]", f'name = "{entry["name"]}"', f'address = "{entry["address"]}"']
        lines += ['os = "Linux"', "ports = [22]", f'mac = "{entry["mac"]}"', ""]
    path.write_text("\n".join(lines))
    return str(path)


def ssh(lab, backend, target: str, typed: str | None = None, command: str | None = None):
    """A terminal session: `typed` is fed to the remote login shell as keystrokes."""
    argv = [
        "sshpass", "-p", backend.password, "ssh", "-tt",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
        "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
        f"{backend.user}@{target}",
    ]  # fmt: skip
    if command is not None:
        argv.append(command)
    return lab.exec(lab.attacker, argv, input=typed, timeout=60)


def rows(db, query: str, *args) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(query, args).fetchall()


def wait_rows(db, query: str, *args, count: int = 1) -> list[sqlite3.Row]:
    deadline = time.monotonic() + WAIT
    while len(found := rows(db, query, *args)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_an_attackers_commands_on_a_real_backend_are_recorded_by_the_agent(lab, tmp_path):
    with (
        high_interaction_backend(lab, "rec1", 56) as hi1,
        high_interaction_backend(lab, "rec2", 57, password=hi1.password) as hi2,
    ):
        toml = settings_file(tmp_path / "settings.toml", [hi1, hi2])
        with running_sensor(
            lab, config(str(hi1.host.ip), str(hi2.host.ip)), tmp_path, extra_args=("--settings", toml)
        ) as sensor:
            db = sensor.db
            with (
                running_collector(lab, tmp_path, f"sqlite:///{db}") as collector,
                running_agent(lab, hi1.host, collector, tmp_path) as agent_log,
            ):
                typed = "id -u\nwho\nuname -s\nexit\n"
                first = ssh(lab, hi1, VH1, typed=typed)
                assert first.returncode == 0, first.stdout + first.stderr
                assert f"({lab.attacker.ip})" in first.stdout  # `who` on the backend names the attacker
                execs = "SELECT * FROM sessions WHERE type = 3 AND command = ? AND uid = ?"
                for name in ("id", "who", "uname"):
                    found = wait_rows(db, execs, name, BACKEND_UID)
                    assert found, f"{name} not recorded"
                    assert all(r["pid"] > 1 and r["ppid"] > 1 for r in found)
                    assert {r["src_ip"] for r in found} == {str(lab.attacker.ip)}
                    assert {r["honeypot_ip"] for r in found} == {str(hi1.host.ip)}
                # Later, to a virtual host planned on the other backend: the same backend, recorded.
                second = ssh(lab, hi1, VH2, command="cat ~/backend; hostname -s >/dev/null")
                assert second.stdout.replace("\r", "").splitlines()[0] == "rec1"
                assert wait_rows(db, execs, "hostname", BACKEND_UID)
                # The backend reaching out beyond its limit: refused by the sensor, seen by the agent.
                loop = (
                    f"for i in $(seq {LIMIT + 1}); do "
                    f"if ( echo x > /dev/tcp/{OUTSIDE}/80 ) 2>/dev/null; "
                    "then echo CONNECTED; else echo REFUSED; fi; "
                    "done"
                )
                third = ssh(lab, hi1, VH1, command=loop)
                assert third.stdout.replace("\r", "").split() == ["CONNECTED"] * LIMIT + ["REFUSED"]
                connects = wait_rows(
                    db, "SELECT * FROM sessions WHERE type = 2 AND uid = ?", BACKEND_UID, count=LIMIT + 1
                )
            outbound = [e for e in sensor.events("outbound") if e["dst_ip"] == OUTSIDE]
    assert [e["detail"] for e in outbound] == ["sinkholed"] * LIMIT + ["refused"]
    assert len(connects) >= LIMIT + 1
    assert {r["src_ip"] for r in connects} == {str(lab.attacker.ip)}
    # What was typed is rebuilt into commands, in one session linked to the attacker.
    database = open_database(f"sqlite:///{db}", access=Access.READ)
    try:
        sessions = [s for s in list_sessions(database) if s.src_ip == str(lab.attacker.ip)]
    finally:
        database.dispose()
    typed_commands = [c for s in sessions for c in s.commands]
    for command in ("id -u", "who", "uname -s", "exit"):
        assert command in typed_commands
    # The agent recorded nothing of its own and could read every line bpftrace printed.
    stats = json.loads(agent_log.read_text().strip().splitlines()[-1])
    assert stats["unparsed"] == 0 and stats["send_errors"] == 0
    own = rows(db, "SELECT count(*) AS n FROM sessions WHERE command IN ('bpftrace', 'python3', 'dynapot')")
    assert own[0]["n"] == 0
