"""How fast a scan under way ends: the daemon's nmaps after the mode turns passive, and at stop.

On the lab (root, namespaces in 198.18.0.0/15), `dynapot run` in active mode scans the lab's
/28 politely over every port, so that a scan is always under way. Each round waits until at
least two detailed nmaps run (N = 4), then

1. passive: writes `mode = "passive"` into the settings file and measures, from the write, until
   none of the daemon's nmaps is left in /proc (ended and reaped). Its reference, measured in the
   same run, is how long the daemon takes to notice a settings change that ends no scan (a new
   fill ratio, until its "new policy" log line): the difference is what ending the scans costs.
   The daemon's own figure (signal to reaped) is reported beside it, from its status file.
2. stop: SIGTERM to the daemon with a scan under way, until it has exited and its nmaps are gone;
   the reference is the same daemon stopped in passive mode (no scan) in the same run.

Prints one JSON object per figure. Everything is bounded; the lab is always torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dynapot.lab.procs import gone, nmaps, scanning_hosts, wait_for
from dynapot.processes import python_command, terminate

SETTINGS = """
[database]
url = "sqlite:///{workdir}/dynapot.db"

[[networks]]
cidr = "198.18.0.0/28"
gateway = "198.18.0.1"
exclude = ["198.18.0.3-198.18.0.9"]

[discovery]
mode = "{mode}"

[discovery.active]
ports = "1-65535"
polite = true
host_timeout = 3000
parallel = 4

[planner]
fill_ratio = {ratio}

[daemon]
interface = "eth0"
state_dir = "{workdir}/state"
replan_interval = 1
liveness_interval = 0
scan_interval = 3600
"""
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


class Daemon:
    def __init__(self, lab: Any, workdir: Path) -> None:
        self.lab, self.workdir = lab, workdir
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, mode: str, ratio: float = 1.0) -> float:
        (self.workdir / "dynapot.toml").write_text(
            SETTINGS.format(workdir=self.workdir, mode=mode, ratio=ratio)
        )
        return time.time()

    def start(self, mode: str) -> None:
        self.write(mode)
        with (self.workdir / "daemon.out").open("a") as out:
            self.process = self.lab.popen(
                self.lab.sensor,
                [*python_command(), "-m", "dynapot", "run", "--config", str(self.workdir / "dynapot.toml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.workdir / "state" / "daemon-status.json").read_text())
        except (OSError, ValueError):
            return {}

    def log_after(self, since: float, text: str) -> float | None:
        """The time of the first log line after `since` holding `text`."""
        for line in (self.workdir / "daemon.out").read_text(errors="replace").splitlines():
            match = LOG_TIME.match(line)
            if match and text in line:
                at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if at >= since - 0.001:
                    return at
        return None

    def stop(self) -> float:
        """SIGTERM, wait for the exit; the seconds it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        return time.monotonic() - started


def scanning(daemon: Daemon) -> set[int]:
    assert daemon.process is not None
    if not wait_for(lambda: len(scanning_hosts(nmaps(daemon.process.pid))) >= 2, 240, 0.1):
        raise RuntimeError("no detailed scan started: " + (daemon.workdir / "daemon.out").read_text()[-2000:])
    return nmaps(daemon.process.pid)


def one_round(daemon: Daemon) -> tuple[float, dict[str, Any] | None, float | None]:
    """Passive mode with a scan under way: seconds until its nmaps are gone, the daemon's
    `scan_stopped`, and the seconds it took to log a change that ends no scan (the reference)."""
    assert daemon.process is not None
    pid = daemon.process.pid
    running = scanning(daemon)
    written, asked = daemon.write("passive"), time.monotonic()
    if not wait_for(lambda: not nmaps(pid) and gone(running), 30, 0.02):
        raise RuntimeError("nmap still running 30 s after passive mode")
    took = time.monotonic() - asked
    stopped = wait_for(lambda: (daemon.status().get("scan_stopped") or {}).get("time", 0) >= written, 10, 0.2)
    time.sleep(1.5)
    changed = daemon.write("passive", ratio=0.5)  # the reference: a change that ends no scan
    at = wait_for(lambda: daemon.log_after(changed, "new policy from"), 30, 0.1)
    daemon.write("active")
    return took, daemon.status().get("scan_stopped") if stopped else None, (at - changed) if at else None


def figure(name: str, values: list[float], unit: str = "s", **extra: Any) -> None:
    shown = round(statistics.median(values), 3) if values else None
    print(
        json.dumps(
            {"name": name, "value": shown, "unit": unit, "runs": [round(v, 3) for v in values], **extra}
        )
    )


def run(rounds: int) -> None:
    from dynapot.lab import lab_up

    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # the sensor reads its state folder after dropping root
        daemon = Daemon(lab, workdir)
        daemon.start("active")
        try:
            passive, reference, own, ended = [], [], [], []
            for _ in range(rounds):
                took, stopped, noticed = one_round(daemon)
                passive.append(took)
                if stopped:
                    own.append(stopped["seconds"])
                    ended.append(stopped["nmaps_ended"])
                if noticed is not None:
                    reference.append(noticed)
            figure(
                "passive: nmaps gone after the settings write",
                passive,
                nmaps_per_round=ended,
                reference={
                    "name": "a policy change that ends no scan, until logged",
                    "value": round(statistics.median(reference), 3) if reference else None,
                },
            )
            figure("passive: the daemon's own signal-to-reaped time", own)
            running = scanning(daemon)
            with_scan = daemon.stop()
            ended = wait_for(lambda: gone(running), 30, 0.02)
            daemon.start("passive")
            time.sleep(5)  # up and idle: no scan in passive mode
            without = daemon.stop()
            figure(
                "stop: daemon exit with a scan under way",
                [with_scan],
                nmaps_gone=bool(ended),
                reference={"name": "the same daemon stopped in passive mode", "value": round(without, 3)},
            )
        finally:
            if daemon.process is not None:
                terminate(daemon.process, 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_scan_stop needs root (the lab's namespaces)")
    run(args.rounds)


if __name__ == "__main__":
    main()
