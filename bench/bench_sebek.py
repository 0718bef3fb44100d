"""The Sebek collector under one fast client: are all records stored, or every loss counted?

Starts `dynapot collector` as its own process (a fresh SQLite database in a temporary folder,
127.0.0.1 and a free port), then one client sends --records Sebek v3 records (30-byte reads,
counters 0..N-1) as fast as one socket can send them, and waits until the collector has
stored them all or stored nothing more for two seconds; then stops it (SIGTERM), which prints
its counters. One JSON line:

- `sent`, `send_seconds`, `sent_per_second`: the client;
- `stored` (rows in the database), `collector_stored`, `lost` (the counters' gaps),
  `dropped_kernel` (the collector socket's drops), `dropped_queue`, `malformed`;
- `accounted`: sent == stored + dropped_kernel + dropped_queue + malformed (must be true);
- `stored_seconds`: from the first send until the last row was in the database;
- `reference_per_second`: the same client into a bare Python recv() loop in this process
  (no decoding, no database) in the same run, what a receiver that does nothing gets.

    python bench/bench_sebek.py [--records 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dynapot.sebek.records import Record, encode

MAGIC = 0x00D0D0D0
DATA = b"ls -la /tmp; cat /etc/passwd\r\n"


def records(count: int) -> list[bytes]:
    now = int(time.time())
    return [
        encode(
            Record(
                magic=MAGIC,
                type=0,
                counter=n,
                time_sec=now,
                time_usec=n % 1_000_000,
                ppid=100,
                pid=101 + n % 7,
                uid=0,
                fd=0,
                inode=42,
                command=b"bash",
                data=DATA,
            )
        )
        for n in range(count)
    ]


def send(port: int, datagrams: list[bytes]) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.connect(("127.0.0.1", port))
        start = time.perf_counter()
        for datagram in datagrams:
            client.send(datagram)
        return time.perf_counter() - start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reference(datagrams: list[bytes]) -> float:
    """Datagrams per second a bare recv() loop receives from the same client."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.5)
        got = [0]

        def drain() -> None:
            try:
                while True:
                    sink.recv(65535)
                    got[0] += 1
            except TimeoutError:
                pass

        reader = threading.Thread(target=drain)
        reader.start()
        start = time.perf_counter()
        send(sink.getsockname()[1], datagrams)
        reader.join()
        return got[0] / max(time.perf_counter() - start - 0.5, 1e-9)


def count_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    datagrams = records(args.records)
    with tempfile.TemporaryDirectory(prefix="dynapot-bench-sebek-") as folder:
        path = Path(folder) / "sebek.db"
        port = free_port()
        env = {**os.environ, "DYNAPOT_DB": f"sqlite:///{path}", "DYNAPOT_CONFIG": ""}
        env.pop("DYNAPOT_CONFIG")
        command = [sys.executable, "-m", "dynapot", "collector", "--listen", f"127.0.0.1:{port}"]
        collector = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while count_rows(path) == 0 and not path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # the database appears once the collector listens
            time.sleep(0.2)
            start = time.perf_counter()
            send_seconds = send(port, datagrams)
            stored, last_change, done = 0, time.perf_counter(), time.perf_counter()
            while time.perf_counter() - last_change < 2.0 and stored < len(datagrams):
                time.sleep(0.05)
                now_stored = count_rows(path)
                if now_stored != stored:
                    stored, last_change, done = now_stored, time.perf_counter(), time.perf_counter()
        finally:
            collector.send_signal(signal.SIGTERM)
            out, err = collector.communicate(timeout=60)
        if collector.returncode != 0:
            sys.exit(f"the collector failed ({collector.returncode}): {err.strip()[-500:]}")
        status = json.loads(out.strip().splitlines()[-1])
        stored = count_rows(path)
    malformed = sum(status["malformed"].values())
    dropped_kernel = status["dropped_kernel"] or 0
    result = {
        "bench": "sebek",
        "sent": len(datagrams),
        "send_seconds": round(send_seconds, 3),
        "sent_per_second": round(len(datagrams) / send_seconds),
        "stored": stored,
        "collector_stored": status["stored"],
        "lost": status["lost"],
        "dropped_kernel": dropped_kernel,
        "dropped_queue": status["dropped_queue"],
        "malformed": malformed,
        "accounted": len(datagrams) == stored + dropped_kernel + status["dropped_queue"] + malformed,
        "stored_seconds": round(done - start, 3),
        "reference_per_second": round(reference(datagrams)),
    }
    print(json.dumps(result))
    sys.exit(0 if result["accounted"] else 1)


if __name__ == "__main__":
    main()
