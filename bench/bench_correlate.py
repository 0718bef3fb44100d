"""Correlator throughput: events per second of `Correlator.feed`, and of correlation read from SQLite.

The stream (200,000 events by default) mixes what a honeynet sees: background noise from
many sources touching one or two hosts, nmap scans with OS detection, password guessing
loops, and worm sweeps of one port from several sources. Prints one JSON object per figure:
feed rate (the best of several runs), findings found, states tracked at the end (the
memory bound), and the rate of `correlate_stored` over the same events in a SQLite file.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dynapot.analysis.correlate import CorrelationEvent, Correlator
from dynapot.analysis.stored import correlate_stored

T0 = 1_800_000_000.0
HOSTS = [f"198.18.{i >> 8}.{i & 255}" for i in range(1, 1001)]


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def synthetic(count: int, seed: int = 11) -> list[CorrelationEvent]:
    """A time-ordered stream of `count` events, one millisecond apart on average."""
    rng = random.Random(seed)
    events: list[CorrelationEvent] = []
    t = T0
    visitors = 0
    while len(events) < count:
        t += rng.expovariate(1000.0)
        roll = rng.random()
        if roll < 0.55:  # noise: a visitor, each from its own address, to one host
            visitors += 1
            src = f"100.{64 + (visitors >> 16) % 64}.{visitors >> 8 & 255}.{visitors & 255}"
            events.append(
                CorrelationEvent(t, src, rng.choice(HOSTS), rng.choice((22, 23, 80, 443)), "connect")
            )
        elif roll < 0.80:  # scanners: a few sources, many ports and hosts
            src = f"203.0.113.{rng.randrange(8)}"
            kind = "os-scan" if rng.random() < 0.0005 else "probe"
            events.append(
                CorrelationEvent(t, src, rng.choice(HOSTS), rng.randrange(1, 1025), kind, scan_tool=None)
            )
        elif roll < 0.90:  # password guessing
            src = f"198.51.100.{rng.randrange(16)}"
            data = {
                "user": rng.choice(("root", "admin", "pi")),
                "password": "x",
                "accepted": rng.random() < 0.001,
            }
            events.append(CorrelationEvent(t, src, HOSTS[rng.randrange(4)], 22, "login", data=data))
        else:  # worms: many infected sources on one port
            src = f"192.0.{rng.randrange(2, 4)}.{rng.randrange(256)}"
            events.append(CorrelationEvent(t, src, rng.choice(HOSTS), 445, "connect"))
    for number, event in enumerate(events, 1):
        event.id = number
    return events


def bench_feed(events: list[CorrelationEvent], repeats: int) -> None:
    best = float("inf")
    correlator = Correlator()
    announced = 0
    for _ in range(repeats):
        correlator = Correlator()
        feed = correlator.feed
        start = time.perf_counter()
        announced = 0
        for event in events:
            if feed(event):
                announced += 1
        best = min(best, time.perf_counter() - start)
    final = correlator.updates()
    emit("correlator_feed_rate", len(events) / best, "events/s", events=len(events), best_of=repeats)
    emit("correlator_feed_cost", best / len(events) * 1e6, "us/event")
    kinds: dict[str, int] = {}
    for finding in final:
        kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
    emit("correlator_findings", len(final), "findings", announcements=announced, **kinds)
    emit("correlator_states", sum(correlator.tracked.values()), "states", **correlator.tracked)


def bench_sqlite(events: list[CorrelationEvent]) -> None:
    from sqlalchemy import insert

    from dynapot.db import open_database
    from dynapot.db.models import HoneypotEvent

    with tempfile.TemporaryDirectory() as folder:
        db = open_database(f"sqlite:///{Path(folder) / 'bench.db'}")
        rows = [
            {
                "time": datetime.fromtimestamp(float(e.time), UTC),  # type: ignore[arg-type]
                "protocol": e.protocol,
                "src_ip": e.src_ip,
                "src_port": 40000,
                "dst_ip": e.dst_ip,
                "dst_port": e.dst_port,
                "kind": e.kind,
                "detail": None,
                "attacker_os": None,
                "scan_tool": e.scan_tool,
                "data": e.data,
            }
            for e in events
        ]
        start = time.perf_counter()
        with db.engine.begin() as connection:
            for chunk in range(0, len(rows), 5000):
                connection.execute(insert(HoneypotEvent), rows[chunk : chunk + 5000])
        emit("sqlite_insert_rate", len(rows) / (time.perf_counter() - start), "events/s", note="reference")
        start = time.perf_counter()
        findings = correlate_stored(db)
        elapsed = time.perf_counter() - start
        emit("correlate_stored_rate", len(rows) / elapsed, "events/s", findings=len(findings), db="sqlite")
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-db", action="store_true", help="Skip the SQLite figure.")
    args = parser.parse_args()
    events = synthetic(args.events)
    bench_feed(events, args.repeats)
    if not args.no_db:
        bench_sqlite(events)


if __name__ == "__main__":
    main()
