"""Abuse suite: an attacker tries to exhaust the sensor's memory, files and CPU, or shut others out.

Builds its own lab (dynapot.lab), runs a sensor for one virtual host, and attacks it from the
lab's attacker namespace. One JSON line per check, with its figure and whether it held:

- stream_<port>: one client streams to a port without ever reading (ssh 22, telnet 23, a port with
  no service 80, a honeyd script that never reads 8080) for --seconds: the sensor's RSS growth
  (goal <= 10 MB) and the bytes it took (a closed window takes no more);
- many_streams: --connections such clients from --sources source addresses at once: RSS growth
  against the [sensor] budgets (the record budget and the service sessions);
- one_source_holds, other_source_logs_in: one source opens --hold connections to SSH and keeps
  them; a second source still completes a full SSH login (password accepted, a command run);
- handshake_flood: one source opens SSH connections as fast as it can for a few seconds; a
  second source still gets its banner, and the sensor's CPU time per second is reported.

Run as root: `.venv/bin/python bench/abuse_memory.py [--seconds 60]`. The same script runs
against an older checkout (PYTHONPATH=OLD/src) for the before figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from dynapot.lab import attacks, lab_up
from dynapot.lab.attacks import cpu_seconds, rss_mb
from dynapot.lab.sensor import running_sensor

VIRTUAL = "198.18.0.100"
CONFIG = f"""
create box
set box personality "Linux 5.4"
set box default tcp action reset
add box tcp port 22 "ssh"
add box tcp port 23 "telnet"
add box tcp port 80 open
add box tcp port 8080 "sleep 3600"
bind {VIRTUAL} box
"""


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def check_streams(lab, pid: int, seconds: float) -> None:
    for port, name in ((22, "ssh"), (23, "telnet"), (80, "no service"), (8080, "script")):
        before = rss_mb(pid)
        sent = attacks.taken(attacks.stream(lab, VIRTUAL, port, seconds), timeout=seconds + 60)
        growth = rss_mb(pid) - before
        emit(f"stream_{port}", growth, "MB", service=name, seconds=seconds, bytes_taken=sent,
             held=growth <= 10)  # fmt: skip


def check_many(lab, pid: int, seconds: float, connections: int, sources: int) -> None:
    addresses = [f"198.18.0.{200 + n}" for n in range(sources)]
    for address in addresses:
        lab.exec(lab.attacker, ["ip", "addr", "add", f"{address}/24", "dev", "eth0"])
    before = rss_mb(pid)
    each = connections // (2 * sources)
    clients = [attacks.stream(lab, VIRTUAL, port, seconds, each, address)
               for address in addresses for port in (22, 80)]  # fmt: skip
    taken = sum(attacks.taken(client, timeout=seconds + 120) for client in clients)
    growth = rss_mb(pid) - before
    emit("many_streams", growth, "MB", connections=connections, sources=sources, bytes_taken=taken,
         held=growth <= 256)  # fmt: skip


def check_fairness(lab, pid: int, hold: int) -> None:
    holder = attacks.hold(lab, VIRTUAL, 22, hold, 60)
    try:
        time.sleep(5)  # the handshakes complete, the sessions start or are refused
        other = lab.join("second", 180)
        ok = attacks.ssh_login(lab, other, VIRTUAL)
        emit("other_source_logs_in", 1.0 if ok else 0.0, "bool", while_one_source_holds=hold, held=ok)
        emit("sensor_rss_while_held", rss_mb(pid), "MB", connections=hold)
        lab.leave(other)
    finally:
        holder.kill()


def check_flood(lab, pid: int, seconds: float) -> None:
    flooder = attacks.flood(lab, VIRTUAL, 22, seconds)
    cpu_before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds / 2)
    other = lab.join("third", 181)
    banner = attacks.banner(lab, other, VIRTUAL, 22)
    out, _ = flooder.communicate(timeout=seconds + 30)
    cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - start)
    ok = banner.startswith("SSH-2.0-")
    emit("handshake_flood", cpu, "cpu_s/s", connections=int(out.split()[0]) if out.split() else 0,
         other_source_banner=ok, held=ok)  # fmt: skip
    lab.leave(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each stream lasts")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--hold", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        workdir = Path(tmp)
        with running_sensor(lab, CONFIG, workdir) as sensor:
            pid = sensor.process.pid
            emit("sensor_rss_at_start", rss_mb(pid), "MB")
            check_streams(lab, pid, args.seconds)
            check_many(lab, pid, args.seconds, args.connections, args.sources)
            check_fairness(lab, pid, args.hold)
            check_flood(lab, pid, 10.0)


if __name__ == "__main__":
    main()
