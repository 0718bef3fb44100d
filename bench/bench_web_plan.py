"""The plan and virtual hosts pages with a big database: the queries behind them, in ms.

Builds an SQLite database with 254 hosts (85 of them virtual, each with two ports) and, by
default, 1,000,000 events all inside the virtual hosts page's activity window (the worst case:
a day of 11.6 events a second), plus 50 plan reviews with 85-host diffs. Then times
`plan_queries.virtual_hosts` (per-host activity: a grouped count over the window) and
`plan_queries.plan_view`; the reference, measured in the same run over the same database, is
`queries.dashboard_counts` (the dashboard's counts). Prints one JSON object per figure
(median and 95th percentile over --runs).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dynapot.config import Settings
from dynapot.db import Access, open_database
from dynapot.deploy import review
from dynapot.planner import Plan, ServiceSpec, VirtualHost
from dynapot.web import plan_queries, queries


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, **extra}), flush=True)


def build(path: Path, events: int) -> None:
    db = open_database(f"sqlite:///{path}")
    hosts = tuple(
        VirtualHost(
            f"198.18.0.{n}",
            f"00:0c:29:00:00:{n:02x}",
            "Linux 5.X",
            "Linux 5.4",
            (
                ServiceSpec("tcp", 22, "ssh", "OpenSSH", "8.9p1"),
                ServiceSpec("tcp", 80, "http", "nginx", "1.22"),
            ),
        )
        for n in range(3, 255, 3)
    )
    for number in range(50):
        plan = Plan(
            hosts, 169, 85, {}, tuple(vh.ip for vh in hosts), (), (), groups={f"198.18.1.{number}": "x"}
        )
        review.record_applied(db, "198.18.0.0/24", plan, ())
    db.dispose()
    now = datetime.now(UTC)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("INSERT INTO operating_systems (name, family) VALUES ('Linux 5.X', 'Linux')")
        connection.executemany(
            "INSERT INTO hosts (ip, mac, is_virtual, personality, tool, os_id, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, 'dynapot', 1, ?, ?)",
            [
                (
                    f"198.18.0.{n}",
                    f"00:0c:29:00:00:{n:02x}",
                    n % 3 == 0,
                    "Linux 5.4",
                    now.isoformat(),
                    now.isoformat(),
                )
                for n in range(1, 255)
            ],
        )
        connection.executemany(
            "INSERT INTO ports (host_id, protocol, port, state, service, product, tool, seen_at) "
            "SELECT id, 'tcp', ?, 'open', ?, ?, 'dynapot', ? FROM hosts WHERE is_virtual = 1",
            [(22, "ssh", "OpenSSH", now.isoformat()), (80, "http", "nginx", now.isoformat())],
        )
        start = now - timedelta(hours=23)

        def rows():
            step = timedelta(hours=22) / max(events, 1)
            for n in range(events):
                yield (
                    (start + step * n).isoformat(),
                    "tcp",
                    f"203.0.113.{n % 200}",
                    40000 + n % 20000,
                    f"198.18.0.{1 + n % 254}",
                    22,
                    "connect",
                )

        connection.executemany(
            "INSERT INTO honeypot_events (time, protocol, src_ip, src_port, dst_ip, dst_port, kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
    connection.close()


def timed(name: str, work: Callable[[], object], runs: int, **extra: object) -> None:
    work()  # warm
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    emit(
        name,
        statistics.median(times),
        "ms",
        p95=round(sorted(times)[int(len(times) * 0.95) - 1], 2),
        runs=runs,
        **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        began = time.perf_counter()
        build(path, args.events)
        emit("web_plan_build_database", time.perf_counter() - began, "s", events=args.events)
        db = open_database(f"sqlite:///{path}", access=Access.READ)
        settings = Settings()
        try:
            data = plan_queries.virtual_hosts(db, settings)
            assert len(data["virtual_hosts"]) == 84 and sum(h["events"] for h in data["virtual_hosts"]) > 0
            timed("web_dashboard_counts", lambda: queries.dashboard_counts(db), args.runs, events=args.events)
            timed(
                "web_virtual_hosts_query",
                lambda: plan_queries.virtual_hosts(db, settings),
                args.runs,
                events_in_window=args.events,
                reference="web_dashboard_counts",
            )
            timed("web_plan_view_query", lambda: plan_queries.plan_view(db, settings), args.runs, reviews=50)
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
