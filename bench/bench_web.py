"""The web interface with a big database: time to first byte of the dashboard with 10^6 events.

Builds an SQLite database (1,000,000 events by default, 254 hosts, 10,000 findings, 1,000
alerts), starts the real `dynapot web --no-tls` on a loopback port, logs in, then requests each
page many times and measures the time to the first byte (response headers received). The
reference, measured in the same run against the same server, is /health: the server's own
floor with no database work. Prints one JSON object per figure (median and 95th percentile, ms).
The issue's goal: dashboard first byte <= 300 ms with 10^6 events.

The reports page is measured too (`web_report`): a week's report holding all 10^6 events, a
day's holding none of them (the indexed range finds nothing), and the week's CSV export; the
page is rendered whole before its first byte, so first byte is its full time; and a period
holding a tenth of them (10^5 events). The task's goal: a week's report in well under a second.
The reports read whole hours from the hourly roll-up, which the bench fills after building the
database (`web_rollup_refresh`, as the daemon would as events come); `--no-rollup` leaves it
empty, so that the reports read every event as they did before it (the "before" figures).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from dynapot.analysis.report.rollup import refresh_rollup
from dynapot.db import Access, open_database
from dynapot.web.accounts import create_user
from dynapot.web.live import next_batch
from dynapot.web.queries import latest_event_id

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench password, long enough"


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, **extra}), flush=True)


def stored(moment: datetime) -> str:
    """A time as dynapot's SQLite columns hold it (SQLAlchemy's form: naive UTC, a space, microseconds),
    so that range queries compare like with like."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: Path, events: int) -> None:
    """The schema through dynapot, the rows through sqlite3's executemany (fast enough for 10^6)."""
    db = open_database(f"sqlite:///{path}")
    create_user(db, "bench", PASSWORD, "admin")
    db.dispose()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO operating_systems (name) VALUES (?)", [(f"OS {n}",) for n in range(20)]
        )
        connection.executemany(
            "INSERT INTO hosts (ip, is_virtual, tool, os_id, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (f"198.18.0.{n}", n % 3 == 0, "nmap", 1 + n % 20, stored(start), stored(start))
                for n in range(1, 255)
            ],
        )

        def rows():
            for n in range(events):
                moment = stored(start + timedelta(milliseconds=n))
                yield (
                    moment,
                    "tcp",
                    f"203.0.113.{n % 200}",
                    40000 + n % 20000,
                    f"198.18.0.{1 + n % 254}",
                    22 + n % 3,
                    "connect",
                    f"event {n}",
                )

        connection.executemany(
            "INSERT INTO honeypot_events (time, protocol, src_ip, src_port, dst_ip, dst_port, kind, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
        connection.executemany(
            "INSERT INTO findings (key, kind, risk, first_seen, last_seen, summary, sources, targets, ports, "
            "event_count, event_ids) VALUES (?, 'scan', ?, ?, ?, 'a scan', '[]', '[]', '[]', 10, '[]')",
            [
                (f"k{n}", ("low", "medium", "high", "critical")[n % 4], stored(start), stored(start))
                for n in range(10_000)
            ],
        )
        connection.executemany(
            "INSERT INTO alerts (time, channel, status, attempts, message) "
            "VALUES (?, 'json://x', 'sent', 1, ?)",
            [(stored(start), f"alert {n}") for n in range(1_000)],
        )
    connection.close()


def first_byte(client: httpx.Client, path: str) -> float:
    """Milliseconds until the response's headers are in (the body is then read and dropped)."""
    began = time.perf_counter()
    with client.stream("GET", path) as response:
        elapsed = (time.perf_counter() - began) * 1000
        assert response.status_code == 200, (path, response.status_code)
        response.read()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-rollup", action="store_true", help="leave the hourly roll-up empty (before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        began = time.perf_counter()
        build(path, args.events)
        emit("web_build_database", time.perf_counter() - began, "s", events=args.events)
        if not args.no_rollup:
            db = open_database(f"sqlite:///{path}")
            began = time.perf_counter()
            summed = refresh_rollup(db)
            elapsed = time.perf_counter() - began
            with sqlite3.connect(path) as connection:
                rows = connection.execute("SELECT count(*) FROM event_rollup").fetchone()[0]
            db.dispose()
            emit("web_rollup_refresh", elapsed, "s", events=summed, rollup_rows=rows)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynapot",
                "web",
                "--no-tls",
                "--listen",
                f"127.0.0.1:{port}",
                "--db",
                f"sqlite:///{path}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                for _ in range(200):
                    try:
                        client.get("/health")
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                form = client.get("/login").text
                token = re.search(r'name="login_csrf" value="([^"]+)"', form).group(1)
                client.post("/login", data={"login_csrf": token, "username": "bench", "password": PASSWORD})
                for path_ in ("/health", "/", "/inventory", "/api/v1/events?limit=50", "/api/v1/status"):
                    first_byte(client, path_)  # warm: the first request pays for imports and caches
                    times = [first_byte(client, path_) for _ in range(args.runs)]
                    emit(
                        "web_first_byte",
                        statistics.median(times),
                        "ms",
                        path=path_,
                        p95=round(sorted(times)[int(len(times) * 0.95) - 1], 2),
                        runs=args.runs,
                        events=args.events,
                        reference="/health" if path_ != "/health" else None,
                    )
                reports(client, args.events, max(3, args.runs // 6), rollup=not args.no_rollup)
        finally:
            server.terminate()
            server.wait(timeout=10)
        feed(path, args.runs)


WEEK = "since=2026-11-30T00:00:00&until=2026-12-07T00:00:00"  # all the events (1 Dec, 00:00 on)
EMPTY_DAY = "since=2026-11-20T00:00:00&until=2026-11-21T00:00:00"
TENTH = "since=2026-12-01T00:00:00&until=2026-12-01T00:01:40"  # the first 100 s: 10^5 events


def reports(client: httpx.Client, events: int, runs: int, *, rollup: bool) -> None:
    """The reports page and export over the big database, against /health in the same run."""
    for name, path_ in (
        ("reference", "/health"),
        ("week", f"/reports?{WEEK}"),
        ("empty_day", f"/reports?{EMPTY_DAY}"),
        ("tenth", f"/reports?{TENTH}"),
        ("week_csv", f"/reports/export?format=csv&{WEEK}"),
    ):
        first_byte(client, path_)
        times = [first_byte(client, path_) for _ in range(runs)]
        emit(
            "web_report",
            statistics.median(times),
            "ms",
            what=name,
            path=path_,
            max=round(max(times), 2),
            runs=runs,
            events=events,
            rollup=rollup,
            reference="/health" if name != "reference" else None,
        )


def feed(path: Path, runs: int) -> None:
    """The live feed's work per second when 1,000 events arrived in that second (the issue's rate),
    and when it fell 100,000 behind (the count is capped there): one batch, in ms."""
    db = open_database(f"sqlite:///{path}", access=Access.READ)
    try:
        newest = latest_event_id(db)
        for behind in (1_000, 100_000):
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                batch, _ = next_batch(db, newest - behind)
                times.append((time.perf_counter() - began) * 1000)
            assert batch is not None and len(batch["events"]) + batch["more"] == behind
            emit(
                "web_live_batch",
                statistics.median(times),
                "ms",
                behind=behind,
                shown=len(batch["events"]),
                more=batch["more"],
                p95=round(sorted(times)[int(len(times) * 0.95) - 1], 2),
            )
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
