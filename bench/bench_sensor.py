"""Sensor benchmarks in the lab, each beside its reference measured in the same run.

- TCP handshakes per second (connect, then close with RST) at concurrency 1, 100 and 400,
  with the C load client ../shared/tools/connrate.c, against a virtual host (every
  connection logged to SQLite and the honeyd log) and against a plain kernel-socket
  server in a real lab namespace; median handshake latency at concurrency 1.
- ping, ARP and SYN -> SYN+ACK latency p50/p99 (SYNs from bench/synrtt.c, timed as ping times
  its echoes: from before the send to the reply's kernel receive time), virtual host versus
  real namespace host;
  the same with the Python-only receive path (`--no-fastpath`: no C thread answering ARP and
  pings), and the handshake at concurrency 1 and these latencies with `--busy-poll`.
  (connrate's kernel figure is not a round trip: a kernel in another namespace on the same machine
  completes the handshake inside connect(), in about a microsecond, which no process can match;
  the SYN round trip is the comparable figure.)
- start time and memory with 65,536 bound addresses (one /16).
- time for the sensor to release an address a real host claims.

Prints one JSON object per figure. Needs root (it builds its own lab and tears it down).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dynapot.lab import lab_up
from dynapot.lab.sensor import running_sensor
from dynapot.processes import python_command

HERE = Path(__file__).resolve().parent
CONNRATE_SOURCE = HERE.parent.parent / "shared" / "tools" / "connrate.c"
SYNRTT_SOURCE = HERE / "synrtt.c"
VIRTUAL = "198.18.0.100"
PORT = 80
REFERENCE_PORT = 8080
KERNEL_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {REFERENCE_PORT})); s.listen(4096)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.close()\n"
)
CONFIG = f"""
create web
set web personality "Linux 5.4"
set web default tcp action reset
add web tcp port {PORT} open
bind {VIRTUAL} web
"""
RESULT = re.compile(r"conns (\d+) errors (\d+) timeouts (\d+) rate ([\d.]+)/s p50 ([\d.]+)ms p99 ([\d.]+)ms")


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def build_connrate(workdir: Path) -> Path:
    """connrate (and synrtt beside it, in the same folder)."""
    source = Path(os.environ.get("DYNAPOT_CONNRATE_SRC", CONNRATE_SOURCE))
    if not source.exists():
        sys.exit(f"connrate source not found at {source} (set DYNAPOT_CONNRATE_SRC)")
    binary = workdir / "connrate"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True, timeout=120)
    subprocess.run(["gcc", "-O2", "-o", str(workdir / "synrtt"), str(SYNRTT_SOURCE)], check=True, timeout=120)
    return binary


def connrate(lab, binary: Path, host: str, port: int, seconds: float, concurrency: int) -> dict[str, float]:
    result = lab.exec(
        lab.attacker,
        [str(binary), host, str(port), str(seconds), str(concurrency), "0"],
        timeout=seconds + 30,
    )
    match = RESULT.search(result.stdout)
    if not match:
        raise RuntimeError(f"connrate said: {result.stdout} {result.stderr}")
    conns, errors, timeouts, rate, p50, p99 = match.groups()
    return {
        "conns": int(conns), "errors": int(errors), "timeouts": int(timeouts),
        "rate": float(rate), "p50_ms": float(p50), "p99_ms": float(p99),
    }  # fmt: skip


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def ping_times(lab, address: str, count: int) -> list[float]:
    result = lab.exec(
        lab.attacker, ["ping", "-n", "-c", str(count), "-i", "0.01", address], timeout=count + 30
    )
    return [float(t) for t in re.findall(r"time=([\d.]+) ms", result.stdout)]


def syn_rtt_times(lab, synrtt: Path, address: str, count: int, port: int = PORT) -> list[float]:
    """SYN -> SYN+ACK round trips in ms (the handshake's first half, which is when connect()
    returns), the same tool and timing for both targets; timeouts are left out and counted."""
    result = lab.exec(lab.attacker, [str(synrtt), address, str(port), str(count), "10"], timeout=count + 30)
    return [float(t) / 1000 for t in result.stdout.split() if t != "timeout"]


def arp_times(lab, address: str, count: int) -> list[float]:
    result = lab.exec(
        lab.attacker, ["busybox", "arping", "-c", str(count), "-I", "eth0", address], timeout=count + 30
    )
    return [float(t) for t in re.findall(r"([\d.]+)ms", result.stdout)]


def latencies(lab, reference_host, prefix: str, synrtt: Path) -> None:
    """ping, ARP and SYN round trips (p50/p99), virtual host beside the real namespace host."""
    reference = str(reference_host.ip)
    for name, virtual_t, real_t in (
        ("ping", ping_times(lab, VIRTUAL, 200), ping_times(lab, reference, 200)),
        # busybox arping sends one request a second: fewer samples.
        ("arp", arp_times(lab, VIRTUAL, 40), arp_times(lab, reference, 40)),
        (
            "syn_rtt",
            syn_rtt_times(lab, synrtt, VIRTUAL, 200),
            syn_rtt_times(lab, synrtt, reference, 200, REFERENCE_PORT),
        ),
    ):
        if virtual_t and real_t:
            v50, v99 = percentiles(virtual_t)
            r50, r99 = percentiles(real_t)
            emit(f"{prefix}{name}_latency_p50", v50, "ms", p99=v99, real_p50=r50, real_p99=r99,
                 ratio_p50=round(v50 / max(r50, 1e-9), 2))  # fmt: skip


def bench_handshakes(lab, binary: Path, workdir: Path, seconds: float) -> None:
    reference_host = lab.real_hosts[0]
    server = lab.popen(reference_host, [*python_command(), "-c", KERNEL_SERVER])
    try:
        time.sleep(0.5)
        with running_sensor(lab, CONFIG, workdir) as sensor:
            connrate(lab, binary, VIRTUAL, PORT, 1, 10)  # warm-up: ARP, the lazily built host stack
            for concurrency in (1, 100, 400):
                virtual = connrate(lab, binary, VIRTUAL, PORT, seconds, concurrency)
                kernel = connrate(lab, binary, str(reference_host.ip), REFERENCE_PORT, seconds, concurrency)
                ratio = round(virtual["rate"] / max(kernel["rate"], 1e-9), 3)
                name = f"handshakes_per_s_c{concurrency}"
                emit(name, virtual["rate"], "1/s", sensor=virtual, kernel=kernel, ratio_to_kernel=ratio)
                if concurrency == 1:
                    ratio = round(virtual["p50_ms"] / max(kernel["p50_ms"], 1e-9), 2)
                    emit("handshake_p50_c1", virtual["p50_ms"], "ms", kernel_ms=kernel["p50_ms"],
                         ratio_to_kernel=ratio)  # fmt: skip
        if sensor.db is not None:
            emit("events_logged", len(sensor.events()), "rows", lost=0)
        # the same sensor reading its socket from Python (no C receive thread), for comparison
        (workdir / "python").mkdir(exist_ok=True)
        with running_sensor(lab, CONFIG, workdir / "python", extra_args=("--no-fastpath",)):
            connrate(lab, binary, VIRTUAL, PORT, 1, 10)
            for concurrency in (1, 400):
                virtual = connrate(lab, binary, VIRTUAL, PORT, seconds, concurrency)
                emit(f"python_only_handshakes_per_s_c{concurrency}", virtual["rate"], "1/s", sensor=virtual)
    finally:
        server.kill()


def bench_latency(lab, binary: Path, workdir: Path, seconds: float) -> None:
    """Round trips, from the sensor as it runs by default and from one that busy-polls its socket."""
    reference_host = lab.real_hosts[0]
    server = lab.popen(reference_host, [*python_command(), "-c", KERNEL_SERVER])
    try:
        time.sleep(0.5)
        with running_sensor(lab, CONFIG, workdir):
            connrate(lab, binary, VIRTUAL, PORT, 1, 10)
            latencies(lab, reference_host, "", binary.parent / "synrtt")
        (workdir / "python").mkdir(exist_ok=True)
        with running_sensor(lab, CONFIG, workdir / "python", extra_args=("--no-fastpath",)):
            connrate(lab, binary, VIRTUAL, PORT, 1, 10)
            latencies(lab, reference_host, "python_only_", binary.parent / "synrtt")
        (workdir / "busy").mkdir(exist_ok=True)
        with running_sensor(lab, CONFIG, workdir / "busy", extra_args=("--busy-poll",)):
            connrate(lab, binary, VIRTUAL, PORT, 1, 10)
            virtual = connrate(lab, binary, VIRTUAL, PORT, seconds, 1)
            kernel = connrate(lab, binary, str(reference_host.ip), REFERENCE_PORT, seconds, 1)
            emit("busy_poll_handshake_p50_c1", virtual["p50_ms"], "ms", kernel_ms=kernel["p50_ms"],
                 ratio_to_kernel=round(virtual["p50_ms"] / max(kernel["p50_ms"], 1e-9), 2))  # fmt: skip
            emit("busy_poll_handshakes_per_s_c1", virtual["rate"], "1/s", kernel=kernel["rate"])
            latencies(lab, reference_host, "busy_poll_", binary.parent / "synrtt")
    finally:
        server.kill()


def bench_slash16(lab, workdir: Path) -> None:
    lines = ["create t", 'set t personality "Linux 5.4"', "add t tcp port 80 open"]
    lines += [f"bind {ip} t" for ip in ipaddress.IPv4Network("198.19.0.0/16")]
    with running_sensor(lab, "\n".join(lines) + "\n", workdir, database=False) as sensor:
        status = Path(f"/proc/{sensor.process.pid}/status").read_text()
        rss_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        emit("start_time_65536_hosts", sensor.listening_in, "s", note="configuration loaded, socket open")
        emit("all_65536_addresses_claimed", sensor.started_in, "s", note="after ARP probes at 5,000/s")
        emit("memory_65536_hosts", rss_kib / 1024, "MiB", note="peak RSS after start")


def bench_release(lab, workdir: Path) -> None:
    config = 'create box\nset box personality "Linux 5.4"\nbind 198.18.0.120 box\n'
    real = lab.real_hosts[1]
    with running_sensor(lab, config, workdir) as sensor:
        lab.exec(real, ["ip", "addr", "add", "198.18.0.120/24", "dev", "eth0"], check=True)
        try:
            start = time.time()
            lab.exec(
                real,
                ["busybox", "arping", "-U", "-c", "1", "-I", "eth0", "-s", "198.18.0.120", "198.18.0.120"],
            )
            while not sensor.events("conflict") and time.time() < start + 10:
                time.sleep(0.01)
            events = sensor.events("conflict")
        finally:
            lab.exec(real, ["ip", "addr", "del", "198.18.0.120/24", "dev", "eth0"])
    if events:
        # the event's own time stamp, taken when the sensor released the address
        from datetime import datetime

        released = datetime.fromisoformat(str(events[0]["time"])).timestamp()
        emit("release_after_claim", released - start, "s", note="gratuitous ARP sent to address released")


PARTS = ("handshakes", "latency", "slash16", "release")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        workdir = Path(tmp)
        binary = build_connrate(workdir)
        for part in args.only or PARTS:
            sub = workdir / part
            sub.mkdir()
            if part == "handshakes":
                bench_handshakes(lab, binary, sub, args.seconds)
            elif part == "latency":
                bench_latency(lab, binary, sub, args.seconds)
            elif part == "slash16":
                bench_slash16(lab, sub)
            else:
                bench_release(lab, sub)


if __name__ == "__main__":
    main()
