"""The collector's IO: a UDP listener on the event loop, one worker thread writing batches.

`Collector.receive` does the per-datagram work (decode, count, link, make the row) without
blocking; rows wait in a bounded queue (`MAX_PENDING` rows, `MAX_PENDING_CHARS` characters of
data) that a flush task hands, `BATCH` rows at a time, to a single worker thread for the
database. What cannot be kept is counted, never silently dropped:

- `malformed` (by reason: short, version, magic, length, time): datagrams that are not a
  Sebek v3 record with the configured magic;
- `dropped_queue`: records refused because the writer fell that far behind;
- `dropped_kernel`: datagrams the kernel dropped on the collector's socket (its receive buffer
  was full: the `drops` column of /proc/net/udp for this socket);
- `lost`: the net number of records the senders' counters say never arrived (any cause,
  anywhere on the way), also written into the rows (`sessions.lost_before`);
- `abandoned`: rows still unwritten when the collector stopped with the database down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from dynapot.collector.link import Linker, SocketLinker
from dynapot.collector.rows import session_row
from dynapot.config import CollectorSettings, parse_listen
from dynapot.db import Database
from dynapot.db.models import Session
from dynapot.sebek.counter import Counters
from dynapot.sebek.records import Malformed, decode

__all__ = ["BATCH", "MAX_PENDING", "Collector", "CollectorStats", "kernel_drops"]

log = logging.getLogger("dynapot.collector")
BATCH = 2000  # rows per database transaction
MAX_PENDING = 200_000  # rows waiting for the writer
MAX_PENDING_CHARS = 64 << 20  # characters of data waiting for the writer
FLUSH_INTERVAL = 0.2  # seconds a row may wait for its batch to fill
RETRY_DELAY = 1.0  # seconds after a failed write
RECEIVE_BUFFER = 8 << 20  # bytes asked for the socket's receive buffer
MAX_DATAGRAM = 65_535
DRAIN = 512  # datagrams read per wake-up of the loop


@dataclass(slots=True)
class CollectorStats:
    """The collector's counters (see the module's docstring); `as_dict` is its status."""

    received: int = 0
    records: int = 0
    stored: int = 0
    linked: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    dropped_queue: int = 0
    dropped_kernel: int | None = None
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    restarts: int = 0
    senders: int = 0
    write_failures: int = 0
    abandoned: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        data["malformed"] = dict(sorted(self.malformed.items()))
        return data


def kernel_drops(sock: socket.socket, proc: Path = Path("/proc/net")) -> int | None:
    """Datagrams the kernel dropped on `sock` (receive buffer full); None where it cannot tell."""
    inode = os.fstat(sock.fileno()).st_ino
    name = "udp6" if sock.family == socket.AF_INET6 else "udp"
    try:
        lines = (proc / name).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        columns = line.split()
        if len(columns) >= 13 and columns[9] == str(inode):
            return int(columns[-1])
    return None


class Collector:
    """Sebek v3 records from UDP into `sessions` (`db`). `writer` replaces the database (tests)."""

    def __init__(
        self,
        db: Database | None,
        settings: CollectorSettings,
        *,
        linker: Linker | None = None,
        writer: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = CollectorStats()
        self.counters = Counters()
        if linker is None:
            own = parse_listen(settings.listen)[0]  # the sensor's address: its health checks are no attacker
            linker = SocketLinker(ignore=frozenset() if own in ("0.0.0.0", "::") else frozenset({own}))  # noqa: S104
        self.linker: Linker = linker
        self.db = db  # may be given after `start` (bind first, then open the database)
        self._writer = writer or self._write
        self._pending: deque[dict[str, Any]] = collections.deque()
        self._pending_chars = 0
        self._wake = asyncio.Event()
        self._listening = False
        self._socket: socket.socket | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynapot-collector")
        self.address: tuple[str, int] | None = None

    def _drain(self, sock: socket.socket) -> None:
        """Read what the socket holds, up to DRAIN datagrams a turn (asyncio's transport reads one)."""
        for _ in range(DRAIN):
            try:
                datagram, sender = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error reported on the socket: nothing was lost
                log.debug("socket error: %s", exc)
                return
            self.receive(datagram, sender[0])

    # The work per datagram: no IO, never an exception for what came off the wire.
    def receive(self, datagram: bytes, sender: str) -> None:
        stats = self.stats
        stats.received += 1
        record = decode(datagram, self.settings.magic)
        if isinstance(record, Malformed):
            stats.malformed[record.reason.value] += 1
            return
        stats.records += 1
        seen = self.counters.observe(sender, record.counter)
        attacker = self.linker.attacker(sender, record)
        if attacker is not None:
            stats.linked += 1
        if len(self._pending) >= MAX_PENDING or self._pending_chars >= MAX_PENDING_CHARS:
            stats.dropped_queue += 1
            return
        row = session_row(record, sender, attacker, seen.lost_change)
        self._pending.append(row)
        self._pending_chars += len(row["data"])
        if len(self._pending) >= BATCH:
            self._wake.set()

    def status(self) -> dict[str, Any]:
        """The counters now, with the senders' counter verdicts and the kernel's drops."""
        stats, counters = self.stats, self.counters
        stats.lost, stats.late, stats.duplicates = counters.lost, counters.late, counters.duplicates
        stats.restarts, stats.senders, stats.pending = (
            counters.restarts,
            counters.senders(),
            len(self._pending),
        )
        if self._socket is not None:
            stats.dropped_kernel = kernel_drops(self._socket)
        return stats.as_dict()

    async def start(self) -> tuple[str, int]:
        """Bind the UDP socket (the settings' `listen`); returns the address bound (port 0: chosen)."""
        host, port = parse_listen(self.settings.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                if option is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                        break
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain, sock)
        self._socket, self._listening = sock, True
        self.address = sock.getsockname()[:2]
        log.info("collector listening on %s:%d (UDP)", *self.address)
        return self.address

    async def run(self, stop: asyncio.Event) -> None:
        """Listen (starting if needed) and write until `stop`; then write what is left and close."""
        if self.db is None and self._writer == self._write:
            raise ValueError("the collector has neither a database nor a writer")
        if not self._listening:
            await self.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
                self._wake.clear()
                if not await self.flush():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), RETRY_DELAY)
        finally:
            self.status()  # the kernel's count, read while the socket is open
            if self._socket is not None:
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
                self._socket.close()
                self._socket = None
            if not await self.flush():
                self.stats.abandoned += len(self._pending)
                self._pending.clear()
            self._executor.shutdown(wait=False)

    async def flush(self) -> bool:
        """Write every pending row, in batches on the worker thread; False when a write failed."""
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                await loop.run_in_executor(self._executor, self._writer, batch)
            except Exception as exc:
                self.stats.write_failures += 1
                if self.stats.write_failures in (1, 10) or self.stats.write_failures % 100 == 0:
                    log.warning(
                        "writing %d session rows failed (%d times so far): %s",
                        len(batch),
                        self.stats.write_failures,
                        exc,
                    )
                self._pending.extendleft(reversed(batch))
                return False
            self.stats.stored += len(batch)
            self._pending_chars -= sum(len(row["data"]) for row in batch)
        return True

    def _write(self, rows: list[dict[str, Any]]) -> None:
        assert self.db is not None
        with self.db.session() as session:
            session.execute(insert(Session.__table__), rows)  # Core: half the cost of the ORM's bulk path
