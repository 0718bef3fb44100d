"""Daemon benchmarks: ingest and correlation rate, re-plan latency, convergence on the lab network.

1. ingest (no network, no root): the sensor's event writer (`EventWriter`, its SQLite writer in
   a child process, as the sensor runs it) fills a fresh SQLite database with a mix of noise,
   scans, password guessing and worm sweeps; then the daemon's own correlation path
   (`Daemon.correlate_once`: read by id in batches, feed the Correlator, store findings, alert)
   catches up on it, and the count and last id show that no event was lost. A third figure runs
   both at once, the writer in its own process (as the sensor is), the daemon's correlation loop
   here. Target: 20,000 events/s.
2. replan (lab, root): with `dynapot run` in hybrid mode filling every free address, a machine
   joins on a virtual host's address and pings the sensor; measured from just before that ping
   to the sensor's release of the address, the new honeyd.conf, the daemon's SIGHUP and the
   sensor's "applied" log line. Then the machine leaves and the time until its address is a
   honeypot again is measured too (that one is mostly the hold-off).
3. convergence (lab, root): the original paper's figure, time from daemon start on an empty
   database until every planned honeypot answers ARP (asked from the attacker namespace), in
   normal and in polite mode, with the scan's share reported apart.

Prints one JSON object per figure. Everything is bounded; the lab is always torn down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dynapot.lab.procs import wait_for
from dynapot.processes import python_command
from dynapot.sensor.eventlog import Event, EventWriter

TARGET_RATE = 20_000.0  # events/s, the target
HOLD_OFF = 10.0  # planner hold-off in the lab runs: an address unseen this long is free again
LIVENESS = 2.0  # seconds between the daemon's ARP sweeps of real hosts (must stay below HOLD_OFF)
PORTS = "21,22,80"  # scanned ports in the lab runs: keeps polite mode near ten minutes
HOST_TIMEOUT = 900.0  # nmap --host-timeout: polite -sV -O on three ports needs minutes
CONVERGE_TIMEOUT = {False: 600.0, True: 1800.0}  # normal, polite
PAPER = {  # the original design paper's figures for a class C network
    False: "about 1300 s to deployed honeyds (N > devices, Linux hosts ~1100 s, Windows ~650 s)",
    True: "at most 20 minutes (N = 60, D = 1200)",
}
APPLIED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ INFO applied ")
RUNNING_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ INFO running: ")

# Asks ARP for every target, four rounds a second, until each answered or time is up; prints
# when each answered first. Runs in the attacker namespace, so "answering" is seen from outside.
ARP_PROBER = r"""
import json, select, socket, struct, sys, time
iface, mac_text, src_text, seconds = sys.argv[1:5]
targets = {socket.inet_aton(t): t for t in sys.argv[5:]}
mac = bytes.fromhex(mac_text.replace(":", ""))
request = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
request += mac + socket.inet_aton(src_text) + b"\x00" * 6
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((iface, 0))
s.setblocking(False)
answered = {}
end = time.time() + float(seconds)
while targets and time.time() < end:
    for packed in list(targets):
        s.send(request + packed)
    round_end = min(end, time.time() + 0.25)
    while targets and time.time() < round_end:
        if not select.select([s], [], [], max(0.0, round_end - time.time()))[0]:
            continue
        for _ in range(1000):
            try:
                frame = s.recv(256)
            except BlockingIOError:
                break
            if len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02":
                name = targets.pop(frame[28:32], None)
                if name is not None:
                    answered[name] = time.time()
print(json.dumps({"answered": answered, "missing": sorted(targets.values())}))
"""


def emit(name: str, value: float | None, unit: str, **extra: object) -> None:
    shown = None if value is None else round(value, 4)
    print(json.dumps({"name": name, "value": shown, "unit": unit, **extra}), flush=True)


def log_time(stamp: str) -> float:
    # logging's asctime is local time, as datetime.timestamp() of a naive value assumes
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def spread(samples: list[float]) -> dict[str, object]:
    return {"max": round(max(samples), 4), "samples": [round(s, 4) for s in samples]}


# --------------------------------------------------------------------------- 1. ingest


def synthetic_events(count: int, seed: int = 6) -> list[Event]:
    """Sensor events as the sensor writes them, ~1 ms apart and ending now; only data, never sent."""
    rng = random.Random(seed)
    net = int(IPv4Address("198.18.0.0"))
    sources = int(IPv4Address("198.19.0.0"))
    hosts = [net + i for i in range(11, 255)]
    t = time.time() - count / 1000.0
    events: list[Event] = []
    add = events.append
    visitors = 0
    while len(events) < count:
        t += rng.expovariate(1000.0)
        roll = rng.random()
        sport = rng.randrange(32768, 61000)
        if roll < 0.55:  # noise: visitors, each from its own address, open and close one connection
            visitors += 1
            src = sources + 1024 + visitors % 60_000
            dst, port = rng.choice(hosts), rng.choice((22, 23, 80, 443))
            add(Event(t, "tcp", src, sport, dst, port, "connect"))
            add(Event(t + 0.05, "tcp", src, sport, dst, port, "close", "fin", bytes_in=80, bytes_out=400))
        elif roll < 0.80:  # scanners: a few sources, many hosts and ports, now and then nmap -O
            src = sources + rng.randrange(8)
            if rng.random() < 0.0005:
                add(Event(t, "tcp", src, None, 0, None, "os-scan", "nmap OS detection probes"))
            else:
                port = rng.randrange(1, 1025)
                add(Event(t, "tcp", src, sport, rng.choice(hosts), port, "probe", "S closed"))
        elif roll < 0.90:  # password guessing against a few SSH honeypots
            src = sources + 256 + rng.randrange(16)
            user = rng.choice(("root", "admin", "pi"))
            password = f"guess{rng.randrange(10_000)}"
            data = {"user": user, "password": password, "accepted": rng.random() < 0.001}
            dst = hosts[rng.randrange(4)]
            add(Event(t, "tcp", src, sport, dst, 22, "login", f"{user}:{password}", data=data))
        else:  # worm: many sources, one port, many hosts
            src = sources + 512 + rng.randrange(256)
            add(Event(t, "tcp", src, sport, rng.choice(hosts), 445, "connect"))
    del events[count:]
    return events


def write_events(events: list[Event], url: str) -> dict[str, Any]:
    """Submit every event to a fresh EventWriter (child-process sink) and wait until all are written."""
    writer = EventWriter(None, child=True, db_url=url)  # its child starts before the clock does
    try:
        start = time.perf_counter()
        for event in events:
            writer.submit(event)
        flushed = writer.flush(timeout=60.0 + len(events) / 2000.0)
        elapsed = time.perf_counter() - start
        return {"elapsed": elapsed, "flushed": flushed, "written": writer.written, "lost": writer.lost_total}
    finally:
        writer.close()


def stored(url: str) -> tuple[int, int]:
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        count, last = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM honeypot_events").fetchone()
    return int(count), int(last)


def new_daemon(url: str, folder: Path) -> Any:
    """The daemon's objects for correlation only: nothing is started, no packet is sent."""
    from dynapot.config import DaemonSettings, NetworkSettings, Settings
    from dynapot.daemon.engine import Daemon
    from dynapot.db import open_database

    settings = Settings(
        database_url=url,
        networks=(NetworkSettings.model_validate({"cidr": "198.18.0.0/24"}),),
        daemon=DaemonSettings(interface="lo", state_dir=folder / "state"),
    )
    return Daemon(settings, open_database(url))


def bench_correlate(url: str, folder: Path, count: int) -> None:
    daemon = new_daemon(url, folder)
    try:
        rounds = 0
        deadline = time.monotonic() + 600
        start = time.perf_counter()
        while time.monotonic() < deadline:
            rounds += 1
            if not daemon.correlate_once():
                break
        elapsed = time.perf_counter() - start
        rows, last_id = stored(url)
        status = daemon.status
        no_loss = status.events_correlated == rows == count and status.last_event_id == last_id
        rate = status.events_correlated / elapsed
        emit(
            "daemon_correlate_rate",
            rate,
            "events/s",
            target=TARGET_RATE,
            meets_target=rate >= TARGET_RATE,
            no_loss=no_loss,
            events_inserted=count,
            events_correlated=status.events_correlated,
            last_event_id=status.last_event_id,
            max_id=last_id,
            rounds=rounds,
            findings=status.findings,
            seconds=round(elapsed, 3),
            path="Daemon.correlate_once from SQLite, batches of 20,000 by id",
        )
    finally:
        daemon.db.dispose()


def _writer_process(url: str, count: int, conn: Any) -> None:
    """A stand-in for the sensor process: its event writer, fed as fast as it takes events."""
    events = synthetic_events(count, seed=7)
    conn.send("ready")
    if conn.poll(60) and conn.recv() == "go":
        conn.send(write_events(events, url))


async def _follow(daemon: Any, count: int, timeout: float) -> float | None:
    """Run the daemon's own correlation loop until it has seen `count` events; seconds, or None."""
    stop = asyncio.Event()
    loop_task = asyncio.create_task(daemon._correlate_loop(stop))
    start = time.perf_counter()
    try:
        while daemon.status.events_correlated < count:
            if time.perf_counter() - start > timeout or loop_task.done():
                return None
            await asyncio.sleep(0.01)
        return time.perf_counter() - start
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop_task, 30)


def bench_pipeline(url: str, folder: Path, count: int) -> None:
    from dynapot.db import open_database

    open_database(url).dispose()  # migrated before either side opens it
    # fork before this process holds threads or database connections
    parent, child = multiprocessing.get_context("fork").Pipe()
    writer = multiprocessing.get_context("fork").Process(target=_writer_process, args=(url, count, child))
    writer.start()
    daemon = None
    try:
        if not (parent.poll(120) and parent.recv() == "ready"):
            raise RuntimeError("the writer process did not start")
        daemon = new_daemon(url, folder)
        interval = daemon.settings.daemon.correlate_interval
        parent.send("go")
        elapsed = asyncio.run(_follow(daemon, count, timeout=120.0 + count / 2000.0))
        written = parent.recv() if parent.poll(60) else {}
        rows, last_id = stored(url)
        status = daemon.status
        no_loss = status.events_correlated == rows == count and status.last_event_id == last_id
        rate = count / elapsed if elapsed else None
        writer_rate = count / written["elapsed"] if written.get("elapsed") else None
        emit(
            "daemon_ingest_and_correlate_rate",
            rate,
            "events/s",
            target=TARGET_RATE,
            meets_target=bool(rate and rate >= TARGET_RATE),
            no_loss=no_loss and written.get("lost") == 0,
            events=count,
            events_correlated=status.events_correlated,
            writer_rate=writer_rate and round(writer_rate),
            lag_after_writer_s=round(elapsed - written["elapsed"], 3) if elapsed and written else None,
            correlate_interval=interval,
            note="sensor's EventWriter in another process writing while the daemon's correlation loop "
            "reads; from the first event submitted to the last one correlated",
        )
    finally:
        writer.join(30)
        if writer.is_alive():
            writer.kill()
            writer.join(10)
        if daemon is not None:
            daemon.db.dispose()


def bench_ingest(count: int) -> None:
    from dynapot.db import open_database

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # the pipeline first: its writer is forked before this process has any threads
        pipe = folder / "pipeline"
        pipe.mkdir()
        bench_pipeline(f"sqlite:///{pipe / 'dynapot.db'}", pipe, count)
        url = f"sqlite:///{folder / 'dynapot.db'}"
        open_database(url).dispose()
        events = synthetic_events(count)
        result = write_events(events, url)
        rows, _ = stored(url)
        emit(
            "event_writer_insert_rate",
            count / result["elapsed"],
            "events/s",
            target=TARGET_RATE,
            no_loss=result["flushed"] and result["lost"] == 0 and rows == count,
            events=count,
            rows=rows,
            note="sensor's EventWriter: queue, batches of 2,000, pickled to its SQLite writer process",
        )
        bench_correlate(url, folder, count)


# --------------------------------------------------------------------------- the daemon in the lab


def settings_text(workdir: Path, lab: Any, polite: bool, ports: str) -> str:
    return f"""
[database]
url = "sqlite:///{workdir / "dynapot.db"}"

[[networks]]
cidr = "{lab.network}"
gateway = "{lab.gateway}"

[discovery]
mode = "hybrid"

[discovery.active]
ports = "{ports}"
polite = {str(polite).lower()}
host_timeout = {HOST_TIMEOUT}

[planner]
hold_off = {HOLD_OFF}

[daemon]
interface = "eth0"
state_dir = "{workdir / "state"}"
liveness_interval = {LIVENESS}
scan_interval = 7200
"""


class DaemonRun:
    """`dynapot run` in the lab's sensor namespace, with its files; stopped with SIGTERM."""

    def __init__(self, lab: Any, workdir: Path, polite: bool, ports: str) -> None:
        self.lab, self.workdir, self.polite, self.ports = lab, workdir, polite, ports
        self.state = workdir / "state"
        self.db = workdir / "dynapot.db"
        self.conf = self.state / "honeyd.conf"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.workdir.mkdir(mode=0o755, parents=True)
        self.workdir.chmod(0o755)  # the sensor reads its state folder after dropping root
        settings = self.workdir / "dynapot.toml"
        settings.write_text(settings_text(self.workdir, self.lab, self.polite, self.ports))
        command = [*python_command(), "-m", "dynapot", "run", "--config", str(settings)]
        with (self.workdir / "daemon.out").open("wb") as out:
            self.started = time.time()
            self.process = self.lab.popen(self.lab.sensor, command, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self, name: str = "daemon") -> dict[str, Any]:
        path = self.state / ("sensor/status.json" if name == "sensor" else "daemon-status.json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def plan(self) -> tuple[set[str], float]:
        """The deployed addresses and when that honeyd.conf was written."""
        from dynapot.honeyd import parse_config

        try:
            with self.conf.open() as handle:  # one open file: text and time of the same version
                mtime = os.fstat(handle.fileno()).st_mtime
                return set(parse_config(handle.read()).bound_addresses()), mtime
        except (OSError, ValueError):
            return set(), 0.0

    def log_times(self, pattern: re.Pattern[str], name: str = "sensor.out") -> list[float]:
        path = self.state / name if name == "sensor.out" else self.workdir / name
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [log_time(m.group(1)) for m in map(pattern.match, lines) if m]

    def conflict_time(self, address: str, after: float) -> float | None:
        """When the sensor released `address` (its own time stamp on the conflict event)."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as conn:
            rows = conn.execute(
                "SELECT time FROM honeypot_events WHERE kind = 'conflict' AND dst_ip = ? ORDER BY id",
                (address,),
            ).fetchall()
        for (text,) in rows:
            moment = datetime.fromisoformat(str(text))
            stamp = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
            if stamp >= after - 1.0:
                return stamp
        return None

    def output(self) -> str:
        return (self.workdir / "daemon.out").read_text(errors="replace")[-3000:]


def arp_answers(lab: Any, targets: list[str], seconds: float) -> dict[str, Any]:
    attacker = lab.attacker
    command = [
        *python_command(),
        "-c",
        ARP_PROBER,
        "eth0",
        attacker.mac,
        str(attacker.ip),
        str(seconds),
        *targets,
    ]
    result = lab.exec(attacker, command, timeout=seconds + 30)
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"ARP prober failed: {result.stderr[-2000:]}") from None


def bench_convergence(run: DaemonRun, emit_it: bool) -> None:
    """From daemon start to every planned honeypot answering; the scan's share apart."""
    mode = "polite" if run.polite else "normal"
    run.start()
    timeout = CONVERGE_TIMEOUT[run.polite]
    # the first plan: written before the daemon signals the sensor, so the prober starts in time
    plan = wait_for(lambda: run.plan()[0] or not run.alive(), timeout, step=0.05)
    if not isinstance(plan, set) or not plan:
        raise RuntimeError(f"{mode}: no plan within {timeout:.0f} s:\n{run.output()}")
    written = run.plan()[1]
    probe = arp_answers(run.lab, sorted(plan), 120.0)
    answered: dict[str, float] = probe["answered"]
    claimed = wait_for(
        lambda: (
            (s := run.status("sensor")).get("hosts") == len(plan) and s.get("pending") == 0 and time.time()
        ),
        30,
        step=0.2,
    )
    status = wait_for(lambda: (s := run.status()).get("last_apply") and s, 10, step=0.2) or {}
    started = run.started
    running = run.log_times(RUNNING_LINE, "daemon.out")
    applied = [t for t in run.log_times(APPLIED_LINE) if t >= written - 1.0]
    scan_s = status["last_scan"] - (running[0] if running else started) if status.get("last_scan") else None
    if not emit_it:
        return
    total = max(answered.values()) - started if answered and not probe["missing"] else None
    common = {"mode": mode, "ports": run.ports, "host_timeout": HOST_TIMEOUT, "parallel": 8}
    emit(
        f"scan_duration_{mode}",
        scan_s,
        "s",
        **common,
        note="the daemon's first nmap sweep and detailed scans (-sV -O), from its loop start",
        live_hosts=status.get("last_scan_hosts"),
    )
    emit(
        f"convergence_{mode}",
        total,
        "s",
        **common,
        planned=len(plan),
        answered=len(answered),
        missing=probe["missing"][:10],
        daemon_loop_started_s=round(running[0] - started, 3) if running else None,
        scan_done_s=round(status["last_scan"] - started, 3) if status.get("last_scan") else None,
        plan_written_s=round(written - started, 3),
        sensor_applied_s=round(applied[0] - started, 3) if applied else None,
        first_answer_s=round(min(answered.values()) - started, 3) if answered else None,
        sensor_status_all_claimed_s=round(claimed - started, 1) if claimed else None,
        paper=PAPER[run.polite],
        note="daemon start on an empty database to the last planned honeypot answering ARP from the "
        "attacker namespace (checked every 0.25 s); the sensor's status file is written every 5 s",
    )


def measure_join(run: DaemonRun, joined: Any, sensor_ip: str, address: str) -> dict[str, float | None]:
    """Ping the sensor from a machine on a virtual address; seconds from the ping to each step."""
    t0 = time.time()
    run.lab.exec(joined, ["ping", "-n", "-c", "1", "-W", "2", sensor_ip], timeout=10)
    released = wait_for(lambda: run.conflict_time(address, t0), 15, step=0.05)
    gone = wait_for(lambda: (p := run.plan()) and address not in p[0] and p[1], 20, step=0.02)
    # the status file is rewritten every 2 s: only a last_apply after the ping is this re-plan's
    signalled = wait_for(
        lambda: ((s := run.status()).get("last_apply") or 0) >= t0 and s["last_apply"], 10, step=0.1
    )
    applied = wait_for(lambda: [t for t in run.log_times(APPLIED_LINE) if t >= t0], 10, step=0.05)
    moments = {"release": released, "config": gone, "signal": signalled, "applied": applied and applied[0]}
    return {key: moment - t0 if moment else None for key, moment in moments.items()}


def bench_replan(run: DaemonRun, repetitions: int) -> None:
    """A machine joins on a virtual address and pings the sensor: release and re-plan latency."""
    lab = run.lab
    sensor_ip = str(lab.sensor.ip)
    taken = {str(h.ip) for h in lab.hosts}
    used: set[str] = set()
    samples: dict[str, list[float]] = {"release": [], "config": [], "signal": [], "applied": [], "back": []}
    for number in range(repetitions):
        plan, _ = run.plan()
        candidates = sorted(plan - taken - used, key=IPv4Address)
        if not candidates:
            raise RuntimeError("no virtual address left to join on")
        address = candidates[-1]
        used.add(address)
        joined = lab.join(f"joiner{number}", int(IPv4Address(address)) - int(lab.network.network_address))
        try:
            for key, moment in measure_join(run, joined, sensor_ip, address).items():
                if moment is not None:
                    samples[key].append(moment)
        finally:
            lab.leave(joined)
        left = time.time()
        back = wait_for(lambda a=address: (p := run.plan()) and a in p[0] and p[1], HOLD_OFF + 40, step=0.1)
        if back:
            samples["back"].append(back - left)
            # quiet before the next one: the sensor has applied the plan that took the address back
            wait_for(lambda b=back: [t for t in run.log_times(APPLIED_LINE) if t >= b - 0.01], 10, step=0.1)
        time.sleep(1.0)
    names = {
        "release": ("replan_release_latency", "sensor stops answering for the address (its conflict event)"),
        "config": ("replan_config_written", "honeyd.conf without the address written by the daemon"),
        "signal": ("replan_daemon_applied", "daemon's last_apply: SIGHUP sent to the sensor"),
        "applied": ("replan_sensor_applied", "sensor's 'applied' log line: the re-plan is in force"),
        "back": (
            "replan_redeploy_after_leave",
            f"machine left -> address in the plan again (hold-off {HOLD_OFF} s)",
        ),
    }
    for key, (name, note) in names.items():
        values = samples[key]
        median = statistics.median(values) if values else None
        emit(name, median, "s", stat="median", repetitions=repetitions, **(spread(values) if values else {}),
             note=note, liveness_interval=LIVENESS)  # fmt: skip


def flush_neighbours(lab: Any) -> None:
    # a new run must not find virtual MACs of the last one in anybody's ARP cache
    for host in lab.hosts:
        lab.exec(host, ["ip", "neigh", "flush", "all"], timeout=10)


def bench_lab(parts: list[str], repetitions: int, polite: bool, ports: str) -> None:
    from dynapot.lab import lab_up

    with tempfile.TemporaryDirectory() as tmp, lab_up() as lab:
        folder = Path(tmp)
        folder.chmod(0o755)
        run = DaemonRun(lab, folder / "normal", polite=False, ports=ports)
        try:
            bench_convergence(run, emit_it="convergence" in parts)
            if "replan" in parts:
                bench_replan(run, repetitions)
        finally:
            run.stop()
        if polite and "convergence" in parts:
            flush_neighbours(lab)
            run = DaemonRun(lab, folder / "polite", polite=True, ports=ports)
            try:
                bench_convergence(run, emit_it=True)
            finally:
                run.stop()


PARTS = ("ingest", "replan", "convergence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k events, 2 re-plans, normal mode only")
    parser.add_argument("--events", type=int, help="events for the ingest figures (default 200,000)")
    parser.add_argument("--repetitions", type=int, help="re-plan repetitions (default 5)")
    parser.add_argument("--ports", default=PORTS, help=f"ports the daemon scans in the lab (default {PORTS})")
    parser.add_argument("--no-polite", action="store_true", help="skip polite-mode convergence")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args()
    events = args.events or (50_000 if args.quick else 200_000)
    repetitions = args.repetitions or (2 if args.quick else 5)
    parts = args.only or list(PARTS)
    if "ingest" in parts:
        bench_ingest(events)
    lab_parts = [p for p in parts if p != "ingest"]
    if lab_parts:
        bench_lab(lab_parts, repetitions, polite=not (args.quick or args.no_polite), ports=args.ports)


if __name__ == "__main__":
    main()
