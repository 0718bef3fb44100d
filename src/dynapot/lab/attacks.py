"""Attacks on a lab sensor, for the abuse benchmarks and their short versions in the tests.

Each attack runs as a small Python client in a lab namespace (the attacker's, or a machine that
joined), so that it goes through the lab's bridge like any attacker's traffic, and reports
what it achieved on standard output. `rss_mb` and `cpu_seconds` read what it cost the sensor.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from dynapot.lab.network import HostInfo, Lab
from dynapot.processes import python_command

__all__ = ["banner", "cpu_seconds", "flood", "hold", "rss_mb", "ssh_login", "stream"]

# Connects `count` times, then sends as fast as the windows let it, never reading; prints the
# bytes the kernel took from it (what the sensor acknowledged, give or take the socket buffer)
# and how many connections were still open.
_STREAMER = r"""
import socket, sys, time
host, port, seconds, count, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    sys.argv[5]
socks = []
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    if source != "-":
        s.bind((source, 0))
    s.settimeout(5)
    try:
        s.connect((host, port))
    except OSError:
        continue
    s.setblocking(False)
    socks.append(s)
chunk, sent, end = b"x" * 65536, 0, time.monotonic() + seconds
while time.monotonic() < end and socks:
    progress = False
    for s in list(socks):
        try:
            sent += s.send(chunk)
            progress = True
        except BlockingIOError:
            pass
        except OSError:
            socks.remove(s)
    if not progress:
        time.sleep(0.01)
print(sent, len(socks), flush=True)
"""
# Opens `count` connections and keeps them, saying nothing; prints when they are all asked for.
_HOLDER = r"""
import resource, socket, sys, time
host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
limit = max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], count + 64)
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
socks = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    socks.append(s)
print("holding", len(socks), flush=True)
time.sleep(seconds)
"""
# Opens connections one after another for `seconds`, reading the first bytes of each.
_FLOODER = r"""
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
n, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port)); s.recv(64); n += 1
    except OSError:
        pass
    s.close()
print(n, flush=True)
"""
_BANNER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(s.recv(64).decode("latin-1"), end="")
"""


def _python(lab: Lab, host: HostInfo | str, code: str, *args: object, **kwargs: Any) -> subprocess.Popen[str]:
    argv = python_command("-c", code, *map(str, args))
    return lab.popen(host, argv, stdout=subprocess.PIPE, text=True, **kwargs)


def stream(
    lab: Lab, target: str, port: int, seconds: float, count: int = 1, source: str = "-"
) -> subprocess.Popen[str]:
    """`count` connections from `source` (an address of the attacker's) that send and never read."""
    return _python(lab, lab.attacker, _STREAMER, target, port, seconds, count, source)


def taken(client: subprocess.Popen[str], timeout: float) -> int:
    """The bytes a `stream` got rid of, once it is over."""
    out, _ = client.communicate(timeout=timeout)
    words = out.split()
    return int(words[0]) if words else 0


def hold(lab: Lab, target: str, port: int, count: int, seconds: float) -> subprocess.Popen[str]:
    """`count` connections from the attacker, kept open and silent for `seconds`."""
    client = _python(lab, lab.attacker, _HOLDER, target, port, count, seconds)
    assert client.stdout is not None
    client.stdout.readline()  # "holding N": every connection is asked for
    return client


def flood(lab: Lab, target: str, port: int, seconds: float) -> subprocess.Popen[str]:
    """New connections one after another from the attacker for `seconds`."""
    return _python(lab, lab.attacker, _FLOODER, target, port, seconds)


def banner(lab: Lab, host: HostInfo | str, target: str, port: int) -> str:
    """The first bytes `target:port` says to a connection from `host`."""
    return lab.exec(host, python_command("-c", _BANNER, target, str(port)), timeout=30).stdout


def ssh_login(lab: Lab, host: HostInfo | str, target: str, password: str = "123456") -> bool:  # noqa: S107
    """A full SSH login as root from `host` with OpenSSH's client, running `id` (the password is one
    of the weak pairs the SSH emulator accepts)."""
    options = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "ConnectTimeout=10")
    command = ["sshpass", "-p", password, "ssh", *(f"-o{o}" for o in options), "-oPubkeyAuthentication=no"]
    result = lab.exec(host, [*command, f"root@{target}", "id"], timeout=60)
    return result.returncode == 0 and "uid=0(root)" in result.stdout


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid`, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
