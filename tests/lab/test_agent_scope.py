"""The agent records one network namespace only: never this machine's other processes, never itself.

Root and bpftrace. A throwaway namespace (a unique name, deleted whatever happens); the collector
and the agent run in this machine's own namespace on loopback, the agent recording the throwaway
one with `--netns`; a marker written inside is recorded, the same written outside is not.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time

import pytest

from dynapot.processes import python_command, python_environment, terminate

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed"),
]
WAIT = 60.0  # seconds: a bound for bpftrace to attach and rows to arrive, not a timing goal


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_the_agent_records_its_namespace_and_nothing_else(tmp_path):
    ns = f"dp-agt-{secrets.token_hex(3)}"
    token = secrets.token_hex(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "sessions.db"
    env = python_environment()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    collector = agent = None
    try:
        with (tmp_path / "collector.log").open("w") as out:
            collector = subprocess.Popen(
                python_command("-m", "dynapot", "collector", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{db}"),
                stdout=out, stderr=out, env=env,
            )  # fmt: skip
        wait_for(lambda: "collector listening" in (tmp_path / "collector.log").read_text(), "collector")
        argv = ["agent", "--collector", f"127.0.0.1:{port}", "--netns", f"/run/netns/{ns}"]
        with (tmp_path / "agent.log").open("w") as out:
            agent = subprocess.Popen(python_command("-m", "dynapot", *argv), stdout=out, stderr=out, env=env)
        wait_for(lambda: "agent attached" in (tmp_path / "agent.log").read_text(), "agent attached")
        subprocess.run(["sh", "-c", f"echo outside-{token}"], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo inside-{token}"], check=True)

        def rows() -> list[tuple[str, str]]:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                return conn.execute("SELECT command, data FROM sessions").fetchall()

        wait_for(lambda: any(f"inside-{token}" in (data or "") for _, data in rows()), "inside recorded")
        terminate(agent, 30)
        stats = json.loads((tmp_path / "agent.log").read_text().strip().splitlines()[-1])
        found = rows()
    finally:
        terminate(agent, 30)
        terminate(collector, 30)
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert not any(f"outside-{token}" in (data or "") for _, data in found)
    assert not any(command in ("bpftrace", "python3", "python") for command, _ in found)
    assert stats["unparsed"] == 0 and stats["send_errors"] == 0 and stats["sent"] >= 1
