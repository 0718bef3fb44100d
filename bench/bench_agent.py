"""The recorder agent: records per second it ships, and the time from a command run to its row.

Root. Makes its own network namespace (a unique name, deleted at the end whatever happens) with
only loopback, runs `dynapot collector` (fresh SQLite database, 127.0.0.1) and `dynapot agent`
there, then:

- **throughput**: one process in the namespace writes --writes one-byte writes to its standard
  output (/dev/null) as fast as it can; each is a Sebek write record. `agent_per_second` is the
  rows stored / the seconds from the first write until the last row was in the database;
  `agent_lost_events` what bpftrace said it lost (its buffers overflowed), `agent_unparsed`;
- **latency**: --commands times, `/bin/true` is run in the namespace and the database polled
  (every 2 ms) until its exec record is a row: `command_to_row_p50/p99` in seconds;
- **reference** in the same run, the same collector: a plain Sebek client (the codec over UDP,
  its own sender address) sends as many records as the agent stored in one burst
  (`reference_per_second`: rows stored / seconds until the last; what the collector's socket
  dropped shows in `collector_dropped_kernel` and `collector_lost`), then single records whose
  time to a row is `reference_to_row_p50/p99`: what the collector alone costs.

    sudo python bench/bench_agent.py [--writes 20000] [--commands 40]

One JSON line. The collector writes in batches every 0.2 s (FLUSH_INTERVAL): that bounds both
latencies from below.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT = """
import sys, socket, time
from dynapot.sebek.records import DEFAULT_MAGIC, Record, encode
def record(n):
    now = time.time()
    usec = int(now % 1 * 1e6)
    return encode(Record(DEFAULT_MAGIC, 0, n, int(now), usec, 1, 2, 0, 0, 1, b"refclient", b"x"))
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.2", 0))  # its own sender address: the collector counts gaps per sender
sock.connect(("127.0.0.1", 1101))
for line in sys.stdin:
    verb, number = line.split()
    if verb == "burst":
        for datagram in [record(n) for n in range(int(number))]:
            sock.send(datagram)
    else:
        sock.send(record(int(number)))
"""
POLL = 0.002
SETTLE = 2.0  # seconds without a new row: the stream has ended
START_TIMEOUT = 60.0


def rows(db: Path, where: str = "1=1") -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(f"SELECT count(*) FROM sessions WHERE {where}").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_log(path: Path, marker: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while marker not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"did not start: {path.read_text(errors='replace')[-1000:]}")
        time.sleep(0.05)


def until_settled(db: Path, where: str, want: int) -> tuple[int, float]:
    """Rows matching `where` once they stop growing (or reach `want`), and when the last came."""
    count, last = rows(db, where), time.perf_counter()
    while count < want and time.perf_counter() - last < SETTLE:
        time.sleep(0.01)
        now = rows(db, where)
        if now != count:
            count, last = now, time.perf_counter()
    return count, last


def to_row(db: Path, where: str, before: int, start: float) -> float:
    deadline = start + 10.0
    while rows(db, where) <= before:
        if time.perf_counter() > deadline:
            return float("inf")
        time.sleep(POLL)
    return time.perf_counter() - start


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=40)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("root needed (namespaces, eBPF)")
    ns = f"dpbench-agent-{os.getpid()}"
    python = [sys.executable, "-P", "-m", "dynapot"]
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        folder = Path(tmp)
        db = folder / "sessions.db"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            inside = ["ip", "netns", "exec", ns]
            logs = {name: folder / f"{name}.log" for name in ("collector", "agent")}
            with logs["collector"].open("w") as out:
                listen = ["collector", "--listen", "127.0.0.1:1101", "--db", f"sqlite:///{db}"]
                processes.append(subprocess.Popen([*inside, *python, *listen], stdout=out, stderr=out))
            wait_log(logs["collector"], "collector listening", processes[0])
            with logs["agent"].open("w") as out:
                agent = ["agent", "--collector", "127.0.0.1:1101"]
                processes.append(subprocess.Popen([*inside, *python, *agent], stdout=out, stderr=out))
            wait_log(logs["agent"], "agent attached", processes[1])

            writer = f"import os\nfor _ in range({args.writes}): os.write(1, b'x')"
            flood = "command = 'python3' AND type = 1 AND data = 'x'"
            start = time.perf_counter()
            with open(os.devnull, "wb") as null:
                subprocess.run([*inside, "python3", "-c", writer], stdout=null, check=True)
            stored, last = until_settled(db, flood, args.writes)
            agent_rate = stored / max(last - start, 1e-9)

            reference = "command = 'refclient'"
            latencies = []
            for _ in range(args.commands):
                before = rows(db, "command = 'true' AND type = 3")
                begin = time.perf_counter()
                subprocess.run([*inside, "/bin/true"], check=True)
                latencies.append(to_row(db, "command = 'true' AND type = 3", before, begin))

            # The plain Sebek client runs inside the namespace; it sends when told on its stdin.
            client = subprocess.Popen(
                [*inside, sys.executable, "-P", "-c", CLIENT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(client)  # type: ignore[arg-type]
            assert client.stdin is not None and client.stdout is not None

            def tell(command: str) -> None:
                client.stdin.write(command + "\n")  # type: ignore[union-attr]
                client.stdin.flush()  # type: ignore[union-attr]

            sent = max(stored, 1)
            begin = time.perf_counter()
            tell(f"burst {sent}")
            ref_stored, ref_last = until_settled(db, reference, sent)
            reference_rate = ref_stored / max(ref_last - begin, 1e-9)
            ref_latencies = []
            for n in range(args.commands):
                before = rows(db, reference)
                begin = time.perf_counter()
                tell(f"one {sent + n}")
                ref_latencies.append(to_row(db, reference, before, begin))
        finally:
            for process in reversed(processes):
                if process.stdin is not None:
                    process.stdin.close()
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
            subprocess.run(["ip", "netns", "del", ns], check=False)
        agent_stats = json.loads(logs["agent"].read_text().strip().splitlines()[-1])
        collector_stats = json.loads(logs["collector"].read_text().strip().splitlines()[-1])
    p50, p99 = percentiles(latencies)
    r50, r99 = percentiles(ref_latencies)
    print(
        json.dumps(
            {
                "bench": "agent",
                "writes": args.writes,
                "agent_stored": stored,
                "agent_per_second": round(agent_rate),
                "agent_lost_events": agent_stats["lost_events"],
                "agent_unparsed": agent_stats["unparsed"],
                "agent_send_errors": agent_stats["send_errors"],
                "collector_lost": collector_stats["lost"],
                "collector_dropped_kernel": collector_stats["dropped_kernel"],
                "command_to_row_p50": round(p50, 4),
                "command_to_row_p99": round(p99, 4),
                "reference_sent": sent,
                "reference_stored": ref_stored,
                "reference_per_second": round(reference_rate),
                "reference_to_row_p50": round(r50, 4),
                "reference_to_row_p99": round(r99, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
