"""Session recording in the lab: the Sebek collector in the sensor's namespace, the agent on a backend.

`running_collector(lab, workdir, db_url)` runs `dynapot collector` in the sensor's namespace,
listening on the sensor's own address (a backend's only route is the sensor, so that is where
its agent can send); `running_agent(lab, backend, collector, workdir)` runs `dynapot agent` in
the backend's namespace, recording that namespace's processes (sshd and everything an attacker
starts), and returns once bpftrace is attached. Both are stopped with SIGTERM when the context
ends, whatever happens; the lab's teardown kills them if this process dies.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from dynapot.lab.network import HostInfo, Lab, LabError
from dynapot.processes import python_command, python_environment, terminate

__all__ = ["COLLECTOR_PORT", "running_agent", "running_collector"]

COLLECTOR_PORT = 1101
START_TIMEOUT = 60.0  # seconds bpftrace may take to compile and attach on a busy machine
STOP_TIMEOUT = 20.0


def _wait_for(log: Path, marker: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"{what} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_collector(lab: Lab, workdir: Path, db_url: str, port: int = COLLECTOR_PORT) -> Iterator[str]:
    """The collector on the sensor's address; yields its ADDR:PORT."""
    address = f"{lab.sensor.ip}:{port}"
    log = workdir / f"collector-{port}.log"
    command = python_command("-m", "dynapot", "collector", "--listen", address, "--db", db_url)
    with log.open("w") as out:
        process = lab.popen(
            lab.sensor, command, stdout=out, stderr=subprocess.STDOUT, env=python_environment()
        )
    lab.processes[f"collector-{port}"] = process
    try:
        _wait_for(log, "collector listening", process, "the collector")
        yield address
    finally:
        terminate(process, STOP_TIMEOUT)


@contextlib.contextmanager
def running_agent(lab: Lab, host: HostInfo, collector: str, workdir: Path) -> Iterator[Path]:
    """The agent in `host`'s namespace, shipping to `collector`; yields its log (its counters at the end)."""
    log = workdir / f"agent-{host.name}.log"
    command = python_command("-m", "dynapot", "agent", "--collector", collector)
    with log.open("w") as out:
        process = lab.popen(host, command, stdout=out, stderr=subprocess.STDOUT, env=python_environment())
    lab.processes[f"{host.name}/agent"] = process
    try:
        _wait_for(log, "agent attached", process, f"the agent on {host.name}")
        yield log
    finally:
        terminate(process, STOP_TIMEOUT)
