"""The sensor's event log: every event batched into honeypot_events (and a honeyd log), never lost silently.

The packet loop only appends to a bounded queue (cheap). A thread hands batches to an
`EventSink` that turns them into multi-row INSERTs (one transaction per batch) and, with
a log file, lines in honeyd's log format. The sensor runs the sink in a child process
(`python -m dynapot.sensor.eventsink`) so that database work never holds the packet
loop's GIL; tests may run it in-process. A database that is down is retried with
back-off while events wait; if the queue overflows, the count of lost events is itself
recorded as an event and logged, so that loss is never silent. `close()` flushes everything.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from socket import inet_ntoa
from typing import Any, TextIO

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from dynapot.db import Database
from dynapot.db.models import HoneypotEvent
from dynapot.events import Kind
from dynapot.processes import python_command

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
    kind: str  # a `dynapot.events.Kind`: connect, close, probe, datagram, echo, data, login, conflict, ...
    detail: str | None = None
    attacker_os: str | None = None
    scan_tool: str | None = None
    data: dict[str, Any] | None = field(default=None)
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def news(cls, kind: str, detail: str) -> Event:
        """The sensor's own news (start, reload, lost events): no flow, no addresses."""
        return cls(time.time(), "tcp", 0, None, 0, None, kind, detail)


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


def _ip_text(address: int) -> str:
    # inet_ntoa: a fifth of str(IPv4Address(...))'s cost, paid twice for every event stored.
    return inet_ntoa(address.to_bytes(4, "big"))


def _row(event: Event) -> dict[str, Any]:
    data = dict(event.data) if event.data else {}
    if event.bytes_in or event.bytes_out:
        data["bytes_in"], data["bytes_out"] = event.bytes_in, event.bytes_out
    return {
        "time": datetime.fromtimestamp(event.time, UTC),
        "protocol": event.proto,
        "src_ip": _ip_text(event.src),
        "src_port": event.sport,
        "dst_ip": _ip_text(event.dst),
        "dst_port": event.dport,
        "kind": event.kind,
        "detail": event.detail,
        "attacker_os": event.attacker_os,
        "scan_tool": event.scan_tool,
        "data": data or None,
    }


def as_tuple(event: Event) -> tuple[Any, ...]:
    e = event
    return (  # the kind as a plain str: an enum member would pickle as a lookup per event
        e.time, e.proto, e.src, e.sport, e.dst, e.dport, str(e.kind), e.detail,
        e.attacker_os, e.scan_tool, e.data, e.bytes_in, e.bytes_out,
    )  # fmt: skip


class EventSink:
    """Writes batches to the database and the honeyd log; retries a database that is down."""

    def __init__(self, db: Database | None, log_path: Path | None) -> None:
        self.db = db
        self._log_file: TextIO | None = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self.stopping = False
        self.given_up = 0

    def write(self, batch: list[Event]) -> None:
        delay = 0.5
        while self.db is not None:
            try:
                with self.db.engine.begin() as connection:
                    connection.execute(insert(HoneypotEvent), [_row(e) for e in batch])
                break
            except SQLAlchemyError as exc:
                # Keep the batch and try again: a database restart must not lose events.
                log.warning("writing %d events failed, retrying in %.1fs: %s", len(batch), delay, exc)
                if self.stopping and delay > 8:
                    log.error("giving up on %d events at shutdown", len(batch))
                    self.given_up += len(batch)
                    break
                time.sleep(delay)
                delay = min(delay * 2, 30)
        if self._log_file is not None:
            self._log_file.write("".join(honeyd_line(e) + "\n" for e in batch))
            self._log_file.flush()

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()


_LENGTH = struct.Struct("!I")


def _read_exact(stream: Any, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _ChildSink:
    """The sink in a child process: batches go down a pipe, acknowledgements come back."""

    def __init__(self, db_url: str | None, log_path: Path | None, user: str | None) -> None:
        command = python_command("-m", "dynapot.sensor.eventsink")  # never from the current folder
        if log_path is not None:
            command += ["--log", str(log_path)]
        if user is not None:
            command += ["--user", user]
        env = dict(os.environ)
        env.pop("DYNAPOT_DB", None)
        if db_url is not None:
            env["DYNAPOT_DB"] = db_url  # not on the command line, where `ps` would show a password
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        ready = _read_exact(self.process.stdout, _LENGTH.size)
        if ready is None:
            raise RuntimeError("the event writer process did not start (see its messages above)")

    def write(self, batch: list[Event]) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        payload = pickle.dumps([as_tuple(e) for e in batch], protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(_LENGTH.pack(len(payload)) + payload)
        self.process.stdin.flush()
        if _read_exact(self.process.stdout, _LENGTH.size) is None:
            raise BrokenPipeError("the event writer process ended")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


class EventWriter:
    """Queue in the packet loop, write from a thread (to a child process with `db_url`)."""

    def __init__(
        self,
        db: Database | None,
        log_path: Path | None = None,
        *,
        child: bool = False,
        db_url: str | None = None,
        user: str | None = None,
        batch_size: int = 2000,
        interval: float = 0.1,
        max_queued: int = 1_000_000,
    ) -> None:
        self._sink: EventSink | _ChildSink
        self._sink = _ChildSink(db_url, log_path, user) if child else EventSink(db, log_path)
        self._queue: deque[Event] = deque()
        self._batch_size = batch_size
        self._interval = interval
        self._max_queued = max_queued
        self._lost = 0
        self._wake = threading.Event()
        self._stopping = False
        self.accepted = 0  # submitted and queued (one producer thread: the packet loop)
        self.written = 0  # handed to every sink, or given up on at shutdown
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
        return [Event.news(Kind.EVENTS_LOST, f"{lost} events lost: queue full")]

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while True:
                batch = self._report_loss() + self._take()
                if not batch:
                    break
                try:
                    self._sink.write(batch)
                except (OSError, ValueError) as exc:
                    log.error("event writer failed, %d events lost: %s", len(batch), exc)
                    self.lost_total += len(batch)
                self.written += len(batch)
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
        if isinstance(self._sink, EventSink):
            self._sink.stopping = True
        self._sink.close()
