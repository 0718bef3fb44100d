"""Every touch of a honeypot becomes an event: batched into honeypot_events, never lost silently.

The packet loop only appends to a bounded queue (cheap); a writer thread turns queued
events into multi-row INSERTs (one transaction per batch) and, with a log file, lines
in honeyd's log format. A database that is down is retried with back-off while events
wait in memory; if the queue overflows, the count of lost events is itself recorded as
an event and logged, so that loss is never silent. `close()` flushes everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from dynapot.db import Database
from dynapot.db.models import HoneypotEvent

log = logging.getLogger(__name__)

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
# kinds that honeyd logs as a connection start (S), end (E) or single packet (-)
START_KINDS = frozenset({"connect", "udp-session"})
END_KINDS = frozenset({"close"})


@dataclass(slots=True)
class Event:
    """One touch of a virtual host. Addresses are ints on the hot path; rendered in the writer."""

    time: float  # epoch seconds
    proto: str
    src: int
    sport: int | None
    dst: int
    dport: int | None
    kind: str  # connect, close, syn, probe, datagram, echo, data, login, conflict, ...
    detail: str | None = None
    attacker_os: str | None = None
    scan_tool: str | None = None
    data: dict[str, Any] | None = field(default=None)
    bytes_in: int = 0
    bytes_out: int = 0


def honeyd_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%d-%H:%M:%S") + f".{int(moment.microsecond / 100):04d}"


def honeyd_line(event: Event) -> str:
    """The event in honeyd's log format (honeyd(8), 'LOGGING')."""
    stamp = honeyd_time(event.time)
    if event.src == 0 and event.dst == 0:  # the sensor's own news (start, lost events): no flow
        return f"{stamp} dynapot: {event.kind} {event.detail or ''}".rstrip()
    proto = f"{event.proto}({PROTO_NUMBERS.get(event.proto, 0)})"
    src, dst = IPv4Address(event.src), IPv4Address(event.dst)
    flow = f"{src} {event.sport} {dst} {event.dport}"
    if event.proto == "icmp":
        line = f"{stamp} {proto} - {src} {dst}: {event.detail or ''}"
    elif event.kind in START_KINDS:
        line = f"{stamp} {proto} S {flow}"
    elif event.kind in END_KINDS:
        line = f"{stamp} {proto} E {flow}: {event.bytes_in} {event.bytes_out}"
    else:
        line = f"{stamp} {proto} - {flow}: {event.kind}"
        if event.detail:
            line += f" {event.detail}"
    if event.attacker_os:
        line += f" [{event.attacker_os}]"
    return line


def _row(event: Event) -> dict[str, Any]:
    data = dict(event.data) if event.data else {}
    if event.bytes_in or event.bytes_out:
        data["bytes_in"], data["bytes_out"] = event.bytes_in, event.bytes_out
    return {
        "time": datetime.fromtimestamp(event.time, UTC),
        "protocol": event.proto,
        "src_ip": str(IPv4Address(event.src)),
        "src_port": event.sport,
        "dst_ip": str(IPv4Address(event.dst)),
        "dst_port": event.dport,
        "kind": event.kind,
        "detail": event.detail,
        "attacker_os": event.attacker_os,
        "scan_tool": event.scan_tool,
        "data": data or None,
    }


class EventWriter:
    """Queue in the packet loop, write in a thread. Thread-safe `submit`."""

    def __init__(
        self,
        db: Database | None,
        log_path: Path | None = None,
        *,
        batch_size: int = 2000,
        interval: float = 0.25,
        max_queued: int = 1_000_000,
    ) -> None:
        self._db = db
        self._log_file: TextIO | None = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self._queue: deque[Event] = deque()
        self._batch_size = batch_size
        self._interval = interval
        self._max_queued = max_queued
        self._lost = 0
        self._wake = threading.Event()
        self._stopping = False
        self.accepted = 0  # submitted and queued (one producer thread: the packet loop)
        self.written = 0  # written to every sink, or given up on at shutdown
        self.lost_total = 0
        self._thread = threading.Thread(target=self._run, name="dynapot-events", daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> None:
        if len(self._queue) >= self._max_queued:
            self._lost += 1  # counted and reported by the writer, never silent
            return
        self._queue.append(event)  # deque.append is atomic under the GIL
        self.accepted += 1

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _take(self) -> list[Event]:
        batch: list[Event] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            batch.append(queue.popleft())
        return batch

    def _report_loss(self) -> list[Event]:
        lost, self._lost = self._lost, 0
        if not lost:
            return []
        self.lost_total += lost
        log.error("event queue full: %d events lost", lost)
        return [Event(time.time(), "tcp", 0, None, 0, None, "events-lost", f"{lost} events lost: queue full")]

    def _write(self, batch: list[Event]) -> None:
        rows = [_row(e) for e in batch]
        delay = 0.5
        while self._db is not None:
            try:
                with self._db.engine.begin() as connection:
                    connection.execute(insert(HoneypotEvent), rows)
                break
            except SQLAlchemyError as exc:
                # Keep the batch and try again: a database restart must not lose events.
                log.warning("writing %d events failed, retrying in %.1fs: %s", len(rows), delay, exc)
                if self._stopping and delay > 8:
                    log.error("giving up on %d events at shutdown", len(rows))
                    self.lost_total += len(rows)
                    self.written += len(batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 30)
        if self._log_file is not None:
            self._log_file.write("".join(honeyd_line(e) + "\n" for e in batch))
            self._log_file.flush()
        self.written += len(batch)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while True:
                batch = self._report_loss() + self._take()
                if not batch:
                    break
                self._write(batch)
            if self._stopping and not self._queue:
                return

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything accepted so far is written; False on time-out."""
        target = self.accepted
        deadline = time.monotonic() + timeout
        while self.written < target and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.005)
        return self.written >= target

    def close(self, timeout: float = 60.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._log_file is not None:
            self._log_file.close()
