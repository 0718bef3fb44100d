"""`dynapot run` on the lab: a scan under way ends when the mode turns passive, and when the
daemon stops: every nmap it started is gone (ended and reaped: no zombie, no orphan) within a
bounded time, and the daemon says so in its log, its status file and `dynapot status`.

The scan is made slow on purpose: polite mode (-T2, 0.4 s between probes) over every port.
The nmaps are found as the daemon's child processes in /proc (the pid namespace is shared with
the rest of the machine, where others may run nmap too, so `pgrep nmap` would not do).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon import Running, stop

from dynapot.lab.procs import gone, nmaps, scanning_hosts, wait_for
from dynapot.processes import python_command

pytestmark = pytest.mark.lab

BOUND = 20.0  # seconds allowed for every nmap to be gone (SIGTERM, SIGKILL after 2 s, reaped)


def settings_text(workdir: Path, mode: str) -> str:
    return f"""
[database]
url = "sqlite:///{workdir / "dynapot.db"}"

[[networks]]
cidr = "198.18.0.0/28"  # the lab's real hosts are .10 to .13: a short sweep
gateway = "198.18.0.1"
exclude = ["198.18.0.3-198.18.0.9"]

[discovery]
mode = "{mode}"

[discovery.active]
ports = "1-65535"
polite = true
host_timeout = 3000
parallel = 4

[daemon]
interface = "eth0"
state_dir = "{workdir / "state"}"
replan_interval = 1
liveness_interval = 0
scan_interval = 3600
"""


def write_mode(handle: Running, mode: str) -> None:
    path = handle.workdir / "dynapot.toml"
    path.write_text(settings_text(handle.workdir, mode))


@pytest.fixture
def scanning(lab, tmp_path) -> Iterator[Running]:
    tmp_path.chmod(0o755)  # the sensor reads its state folder after dropping root
    handle = Running(lab, tmp_path, tmp_path)
    write_mode(handle, "active")
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()


def test_passive_mode_and_a_stop_end_the_scans_nmaps_at_once(scanning, lab):
    daemon = scanning.process
    # The sweep done, the detailed scans of the real hosts under way (N = 4 at once).
    assert wait_for(lambda: len(scanning_hosts(nmaps(daemon.pid))) >= 2, 180), scanning.output()
    running = nmaps(daemon.pid)

    # 1. The mode turns passive: the scan's nmaps end, the daemon goes on.
    asked = time.monotonic()
    write_mode(scanning, "passive")
    assert wait_for(lambda: gone(running) and not nmaps(daemon.pid), BOUND, step=0.05), (
        running,
        scanning.output(),
    )
    took = time.monotonic() - asked
    assert daemon.poll() is None
    assert wait_for(lambda: (scanning.status().get("scan_stopped") or {}).get("reason"), 10), (
        scanning.output()
    )
    stopped = scanning.status()["scan_stopped"]
    assert stopped["reason"] == "the discovery mode turned passive" and stopped["nmaps_ended"] >= 2
    assert "stopped (the discovery mode turned passive)" in scanning.output()
    shown = subprocess.run(
        [*python_command(), "-m", "dynapot", "status", "--config", str(scanning.workdir / "dynapot.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "scan stopped" in shown and "(the discovery mode turned passive)" in shown, shown
    time.sleep(3)
    assert not nmaps(daemon.pid)  # and no new scan starts in passive mode
    print(json.dumps({"check": "nmap gone after passive", "seconds": round(took, 2), "daemon": stopped}))

    # 2. Active again: a new scan; then the daemon stops, and its nmaps with it.
    write_mode(scanning, "active")
    assert wait_for(lambda: nmaps(daemon.pid), 120), scanning.output()
    running = nmaps(daemon.pid)
    asked = time.monotonic()
    stop(daemon)
    took = time.monotonic() - asked
    assert daemon.returncode == 0, scanning.output()
    assert wait_for(lambda: gone(running), BOUND, step=0.05), running
    stopped = scanning.status()["scan_stopped"]
    assert stopped["reason"] == "the daemon stops", stopped
    assert "stopped (the daemon stops)" in scanning.output()
    print(
        json.dumps(
            {"check": "daemon stop with a scan under way", "seconds": round(took, 2), "daemon": stopped}
        )
    )
