"""`dynapot run` with `planner.apply = "hold"` on the lab: the daemon discovers the real hosts,
holds its plan (nothing deployed, the sensor answers for nobody), the plan is shown by `dynapot
web` and applied through its API; then the sensor answers for the new decoys.

The daemon and the web server run in the sensor namespace, sharing one SQLite database; the
API is driven with curl from there (the web server listens on that namespace's loopback).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon import Running, stop

from dynapot.lab.procs import wait_for
from dynapot.processes import python_command

pytestmark = pytest.mark.lab

WEB = "127.0.0.1:8089"
USER, PASSWORD = "holdadmin", "hold admin password"


def settings_text(workdir: Path) -> str:
    return f"""
[database]
url = "sqlite:///{workdir / "dynapot.db"}"

[[networks]]
cidr = "198.18.0.0/24"
gateway = "198.18.0.1"
exclude = ["198.18.0.3-198.18.0.9"]  # the attacker's addresses

[discovery]
mode = "hybrid"

[discovery.active]
ports = "21,22,80"
host_timeout = 60

[planner]
hold_off = 10
fill_ratio = 0.1
apply = "hold"

[daemon]
interface = "eth0"
state_dir = "{workdir / "state"}"
replan_interval = 1
liveness_interval = 2
scan_interval = 3600
"""


@pytest.fixture(scope="module")
def holding(lab, tmp_path_factory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("daemon-hold")
    workdir.chmod(0o755)  # the sensor reads its state folder after dropping root
    (workdir / "dynapot.toml").write_text(settings_text(workdir))
    handle = Running(lab, workdir, workdir)
    try:
        handle.start()
        held = wait_for(lambda: handle.status().get("last_scan") and handle.status().get("held"), timeout=180)
        assert held, handle.output()
        yield handle
    finally:
        handle.stop()


def curl(lab, *args: str) -> dict:
    done = lab.exec(lab.sensor, ["curl", "-s", "--max-time", "20", *args], timeout=30)
    return json.loads(done.stdout)


def test_a_held_plan_is_deployed_only_once_applied(holding, lab):
    from dynapot.db import open_database
    from dynapot.web.accounts import create_user

    # Held: nothing deployed, the sensor answers for no address.
    assert holding.plan() == {}
    assert holding.query("SELECT count(*) FROM hosts WHERE is_virtual = 1") == [(0,)]
    database = open_database(f"sqlite:///{holding.db}")
    try:
        create_user(database, USER, PASSWORD, "admin")
    finally:
        database.dispose()
    settings = holding.workdir / "dynapot.toml"
    with (holding.workdir / "web.out").open("w") as out:
        web = lab.popen(
            lab.sensor,
            [
                *python_command(),
                "-m",
                "dynapot",
                "web",
                "--no-tls",
                "--listen",
                WEB,
                "--config",
                str(settings),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(
            lambda: lab.exec(lab.sensor, ["curl", "-sf", f"http://{WEB}/health"]).returncode == 0, 30
        ), (holding.workdir / "web.out").read_text()
        token = curl(lab, "-d", f"username={USER}&password={PASSWORD}", f"http://{WEB}/api/v1/token")
        auth = f"Authorization: Bearer {token['access_token']}"
        view = curl(lab, "-H", auth, f"http://{WEB}/api/v1/plan")
        pending = view["pending"]
        assert view["apply"] == "hold" and pending["status"] == "pending"
        assert pending["digest"] == holding.status()["held"]
        real = {str(h.ip) for h in lab.real_hosts}
        assert real <= {h["ip"] for h in pending["joined"]}  # why: the lab's real hosts joined
        added = [h["ip"] for h in pending["added"]]
        assert added and not set(added) & real
        stale = curl(
            lab, "-H", auth, "--json", json.dumps({"digest": "0" * 64}), f"http://{WEB}/api/v1/plan/apply"
        )
        assert "review again" in stale["detail"]
        assert holding.plan() == {}
        applied = curl(
            lab,
            "-H",
            auth,
            "--json",
            json.dumps({"digest": pending["digest"]}),
            f"http://{WEB}/api/v1/plan/apply",
        )
        assert applied["status"] == "approved" and applied["approved_by"] == USER
        # The daemon's next round deploys exactly that plan, and the sensor takes it.
        assert wait_for(lambda: set(holding.plan()) == set(added), 30), holding.output()
        assert wait_for(lambda: holding.status("sensor").get("hosts") == len(added), 30), holding.output()
        assert wait_for(lambda: not holding.status().get("held"), 10)
        after = curl(lab, "-H", auth, f"http://{WEB}/api/v1/plan")
        assert after["pending"] is None and after["last_applied"]["digest"] == pending["digest"]
        assert after["last_applied"]["approved_by"] == USER
        decoys = curl(lab, "-H", auth, f"http://{WEB}/api/v1/virtual-hosts")
        assert sorted(h["ip"] for h in decoys["virtual_hosts"]) == sorted(added)
    finally:
        stop(web)
    assert holding.query("SELECT actor, action, new_value FROM audit_log WHERE action = 'plan.apply'") == [
        (USER, "plan.apply", pending["digest"])
    ]
    # The sensor answers ARP for a decoy of the applied plan.
    address = added[0]

    def answered_by_sensor() -> bool:
        lab.exec(lab.attacker, ["ip", "neigh", "flush", "to", address])
        lab.exec(lab.attacker, ["ping", "-c", "1", "-W", "1", address], timeout=10)
        return "lladdr" in lab.exec(lab.attacker, ["ip", "neigh", "show", "to", address]).stdout

    assert wait_for(answered_by_sensor, 20)
