"""The sensor's event log: every event journaled, then stored in honeypot_events (and a honeyd log).

The path of one event, and what keeps it from being lost unseen:

1. The packet loop `submit`s it: one list append. At the end of the loop's turn
   (`call_soon`) that turn's events are encoded once (`encode`: the body of a JSON array,
   ASCII) and appended to the local journal as one record (`journal.Journal`: one system call
   per turn, not per event), then queued for the writer thread.
2. The writer thread hands batches to the `EventSink` (`eventstore`): in a child process
   (`python -m dynapot.sensor.eventsink`, so that database work never holds the packet loop's
   GIL) or, in tests, in this one. The sink makes every string safe for the database
   (`dynapot.textsafe`), inserts the batch and the journal's position in one transaction,
   then writes the batch in honeyd's log format, escaped (`eventformat.honeyd_line`).
3. A batch the database refuses is split until the offending row is alone; that row goes to
   `quarantined_events` with the error, the others are stored: nothing is retried forever.
   A database that is down is retried with back-off while the events wait in the journal;
   at shutdown the writer gives up after STALL seconds without progress (the sensor stops on
   SIGTERM) and the journal keeps them for the next start.
4. An event writer process that dies is restarted and its unacknowledged batch sent again
   (skipped when the database shows it stored). At start, whatever the journal holds beyond
   the database's position is replayed.

Whatever is dropped on the way is counted (`EventWriter.stats`, which `dynapot status`
shows): the queue full, the journal full or failing, quarantined rows, writer restarts,
events given up at shutdown. A loss in the queue is also recorded as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import subprocess
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, BinaryIO

from dynapot.db import Database
from dynapot.events import Kind
from dynapot.processes import python_command
from dynapot.sensor.eventformat import Event, encode, honeyd_line
from dynapot.sensor.eventstore import EventSink, lag_quantile
from dynapot.sensor.journal import Journal, Position

__all__ = ["Event", "EventSink", "EventWriter", "encode", "honeyd_line"]

log = logging.getLogger(__name__)

REPLAY_BYTES = 512 << 10  # journal bytes per replayed batch
WRITER_TRIES = 5  # restarts of the event writer process for one batch before it is given up
STALL = 10.0  # seconds without progress after which a shutdown stops waiting for the database

# Drop counters, as `dynapot status` names them.
QUEUE_FULL = "events: queue full (lost)"
JOURNAL_FULL = "events: journal full (not journaled)"
JOURNAL_FAILED = "events: journal write failed (not journaled)"
QUARANTINED = "events: quarantined (refused by the database)"
WRITER_RESTARTS = "event writer: restarts"
WRITER_LOST = "events: lost (the event writer failed on them)"
DEFERRED = "events: given up at shutdown (journaled, replayed at the next start)"
LOST_AT_SHUTDOWN = "events: given up at shutdown (not journaled, lost)"
LOST_COUNTERS = (QUEUE_FULL, WRITER_LOST, LOST_AT_SHUTDOWN)


# ---------------------------------------------------------------------- where batches go

_LENGTH = struct.Struct("!I")
_BATCH = struct.Struct("!IqqB")  # payload length, journal segment and offset (-1: none), live


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("ascii")
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    header = _read_exact(stream, _LENGTH.size)
    if header is None:
        return None
    body = _read_exact(stream, _LENGTH.unpack(header)[0])
    return None if body is None else json.loads(body)


class _LocalSink:
    """The sink in this process (tests, benchmarks)."""

    def __init__(self, db: Database | None, log_path: Path | None, journal_id: str | None) -> None:
        self.sink = EventSink(db, log_path, journal_id=journal_id)
        self.position = self.sink.position()

    def send(self, payload: bytes, position: Position | None, live: bool) -> dict[str, Any]:
        return self.sink.write_payload(payload, position, live=live).as_dict()

    def restart(self) -> Position | None:
        return self.sink.position()

    def abandon(self) -> None:
        self.sink.stopping = True

    def close(self, timeout: float) -> None:
        self.sink.close()


class _ChildSink:
    """The sink in a child process: batches go down a pipe, outcomes come back. Restartable."""

    def __init__(
        self,
        db_url: str | None,
        log_path: Path | None,
        user: str | None,
        journal_id: str | None,
        keep_fds: tuple[int, ...],
    ) -> None:
        self.command = python_command("-m", "dynapot.sensor.eventsink")  # never from the current folder
        if log_path is not None:
            self.command += ["--log", str(log_path)]
        if user is not None:
            self.command += ["--user", user]
        if journal_id is not None:
            self.command += ["--journal-id", journal_id]
        self.env = dict(os.environ)
        self.env.pop("DYNAPOT_DB", None)
        if db_url is not None:
            self.env["DYNAPOT_DB"] = db_url  # not on the command line, where `ps` would show a password
        self.keep_fds = keep_fds  # the journal's lock: held until this process ends too
        self.process: subprocess.Popen[bytes] | None = None
        self.position = self.start()

    def start(self) -> Position | None:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, pass_fds=self.keep_fds
        )
        assert self.process.stdout is not None
        ready = read_message(self.process.stdout)
        if ready is None:
            self.process.wait(10)
            raise RuntimeError("the event writer process did not start (see its messages above)")
        position = ready.get("position")
        return Position(*position) if position else None

    def send(self, payload: bytes, position: Position | None, live: bool) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        segment, offset = (position.segment, position.offset) if position is not None else (-1, -1)
        process.stdin.write(_BATCH.pack(len(payload), segment, offset, live))
        process.stdin.write(payload)
        process.stdin.flush()
        outcome = read_message(process.stdout)
        if outcome is None:
            raise BrokenPipeError("the event writer process ended")
        return outcome

    def restart(self) -> Position | None:
        self._end(1.0)
        return self.start()

    def abandon(self) -> None:
        """Stop waiting for a database that is down (SIGTERM: the writer gives up its retries)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def _end(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # a broken pipe: the process is gone already
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def close(self, timeout: float) -> None:
        self._end(timeout)


# ---------------------------------------------------------------------- the packet loop's side


class EventWriter:
    """Events from the packet loop: journaled once per loop turn, written from a thread (to a child
    process with `child`); counts whatever it drops."""

    def __init__(
        self,
        db: Database | None,
        log_path: Path | None = None,
        *,
        child: bool = False,
        db_url: str | None = None,
        user: str | None = None,
        journal: Journal | None = None,
        batch_size: int = 2000,
        interval: float = 0.1,
        max_queued: int = 1_000_000,
    ) -> None:
        self._journal = journal
        journal_id = journal.id if journal is not None else None
        self._sink: _LocalSink | _ChildSink
        if child:
            keep = (journal.lock_fd,) if journal is not None else ()
            self._sink = _ChildSink(db_url, log_path, user, journal_id, keep)
        else:
            self._sink = _LocalSink(db, log_path, journal_id)
        if journal is not None and self._sink.position is not None:
            journal.stored(self._sink.position)  # segments the database holds from an earlier run
        self._pending: list[Event] = []
        self._queue: deque[tuple[bytes, int, Position | None]] = deque()  # (records, events, position)
        self._queued_in = self._queued_out = 0  # events into the queue (loop), out of it (writer)
        self._batch_size = batch_size
        self._interval = interval
        self._max_queued = max_queued
        self._lost_in = self._lost_told = 0  # events lost to a full queue (loop), and told (writer)
        self._wake = threading.Event()
        self._abandon = threading.Event()
        self._stopping = False
        self.accepted = 0  # submitted (by one producer thread: the packet loop)
        # Each counter has one writer thread: the packet loop's, or the event writer's.
        self._done = 0  # accepted and done with in the writer: stored, quarantined, given up
        self._refused = 0  # accepted and dropped in the loop (the queue full)
        self.stored = 0
        self.replayed = 0
        self._loop_counters: Counter[str] = Counter()
        self._writer_counters: Counter[str] = Counter()
        self.lag: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._run, name="dynapot-events", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the packet loop

    def submit(self, event: Event) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) == 1:
            # Once per loop turn; without a loop (start-up, tests) flushed by size, flush() or close().
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self._flush_pending)
        elif len(pending) >= self._batch_size and not self._in_loop():
            self._flush_pending()

    @staticmethod
    def _in_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _flush_pending(self) -> None:
        """This turn's events: one journal record, one queue entry."""
        events, self._pending = self._pending, []
        if not events:
            return
        count = len(events)
        self.accepted += count
        payload = encode(events)
        position: Position | None = None
        if self._journal is not None:
            written = self._journal.append(payload)
            if isinstance(written, Position):
                position = written
            else:
                self._loop_counters[JOURNAL_FULL if written == "full" else JOURNAL_FAILED] += count
        if self._queued_in - self._queued_out + count > self._max_queued:
            self._lost_in += count  # counted, and recorded as an event by the writer: never silent
            self._loop_counters[QUEUE_FULL] += count
            self._refused += count
            return
        self._queue.append((payload, count, position))  # deque.append is atomic under the GIL
        self._queued_in += count
        if self._queued_in - self._queued_out >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Events submitted and not yet handed to the sink."""
        return len(self._pending) + self._queued_in - self._queued_out

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            self._replay()
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                while self._write_some():
                    pass
                if self._stopping and not self._queue:
                    return
        except Exception:  # a bug must not end recording silently: the queue then fills and counts
            log.exception("the event writer thread failed")
            raise

    def _replay(self) -> None:
        """What the journal of an earlier run holds beyond the database's position."""
        if self._journal is None:
            return
        group: list[bytes] = []
        size, position = 0, None
        for position, payload in self._journal.unstored(self._sink.position):
            group.append(payload)
            size += len(payload)
            if size >= REPLAY_BYTES:
                self._replay_batch(group, position)
                group, size = [], 0
            if self._abandon.is_set():
                return
        if group and position is not None:
            self._replay_batch(group, position)
        if self.replayed:
            log.info("replayed %d events from the journal %s", self.replayed, self._journal.folder)

    def _replay_batch(self, group: list[bytes], position: Position) -> None:
        outcome = self._deliver(b",".join(group), position, live=False)
        if outcome is None or outcome["abandoned"]:
            return  # still in the journal: the next start replays it
        self.replayed += outcome["stored"]
        self._count(outcome)
        assert self._journal is not None
        self._journal.stored(position)

    def _take(self) -> list[tuple[bytes, int, Position | None]]:
        batch: list[tuple[bytes, int, Position | None]] = []
        queue = self._queue
        taken = 0
        while queue and taken < self._batch_size:
            entry = queue.popleft()
            batch.append(entry)
            taken += entry[1]
        self._queued_out += taken
        return batch

    def _report_loss(self) -> list[Event]:
        lost = self._lost_in - self._lost_told
        self._lost_told += lost
        if not lost:
            return []
        log.error("event queue full: %d events lost", lost)
        return [Event.news(Kind.EVENTS_LOST, f"{lost} events lost: queue full")]

    def _write_some(self) -> bool:
        news = self._report_loss()
        batch = self._take()
        if not batch and not news:
            return False
        chunks = [payload for payload, _, _ in batch]
        if news:
            chunks.insert(0, encode(news))
        count = sum(entry[1] for entry in batch)
        position = next((entry[2] for entry in reversed(batch) if entry[2] is not None), None)
        outcome = self._deliver(b",".join(chunks), position, live=True, count=count)
        journaled = sum(entry[1] for entry in batch if entry[2] is not None)
        if outcome is None:
            if self._abandon.is_set():
                self._writer_counters[DEFERRED] += journaled
                self._writer_counters[LOST_AT_SHUTDOWN] += count - journaled
            else:
                self._writer_counters[WRITER_LOST] += count
        elif outcome["abandoned"]:
            self._writer_counters[DEFERRED] += journaled
            self._writer_counters[LOST_AT_SHUTDOWN] += count - journaled
        else:
            self.stored += outcome["stored"]
            self._count(outcome)
            if position is not None and self._journal is not None:
                self._journal.stored(position)
        self._done += count
        return True

    def _count(self, outcome: dict[str, Any]) -> None:
        if outcome["quarantined"]:
            self._writer_counters[QUARANTINED] += outcome["quarantined"]
        self.lag.update({int(bucket): n for bucket, n in outcome["lag"].items()})

    def _deliver(
        self, payload: bytes, position: Position | None, *, live: bool, count: int = 0
    ) -> dict[str, Any] | None:
        """Hand one batch to the sink; restart a sink process that died and send it again (unless
        the database shows it stored). None when it could not be delivered."""
        tries = 0
        while True:
            try:
                return self._sink.send(payload, position, live)
            except (OSError, ValueError) as exc:
                if self._abandon.is_set():
                    return None
                tries += 1
                self._writer_counters[WRITER_RESTARTS] += 1
                log.error("the event writer process failed (%s); restarting it (try %d)", exc, tries)
                if tries > WRITER_TRIES or self._abandon.wait(min(0.25 * 2**tries, 5.0)):
                    return None
                try:
                    stored_to = self._sink.restart()
                except (OSError, RuntimeError, ValueError) as restart_error:
                    log.error("the event writer process did not restart: %s", restart_error)
                    continue
                if position is not None and stored_to is not None and stored_to >= position:
                    return {"stored": count, "quarantined": 0, "abandoned": 0, "lag": {}}

    # ------------------------------------------------------------------ owners

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written; False on time-out. Call it from the
        thread that submits (the packet loop)."""
        self._flush_pending()
        target = self.accepted
        deadline = time.monotonic() + timeout
        while self.written < target and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.005)
        return self.written >= target

    @property
    def written(self) -> int:
        """Events accepted and done with: stored, quarantined, or dropped and counted."""
        return self._done + self._refused

    @property
    def counters(self) -> Counter[str]:
        """Every drop counter of the event path (the loop's and the writer's), from copies: the
        other thread may be adding a counter meanwhile."""
        merged = Counter(dict(self._loop_counters))
        merged.update(dict(self._writer_counters))
        return merged

    @property
    def lost_total(self) -> int:
        counters = self.counters
        return sum(counters[name] for name in LOST_COUNTERS)

    def stats(self) -> dict[str, Any]:
        """The event path for `dynapot status`: totals, lag, the journal, and every drop counter."""
        lag = Counter(dict(self.lag))
        return {
            "accepted": self.accepted,
            "written": self.written,
            "stored": self.stored,
            "replayed": self.replayed,
            "queued": self.pending,
            "lag_ms": {
                "p50": lag_quantile(lag, 0.5),
                "p99": lag_quantile(lag, 0.99),
                "max": lag_quantile(lag, 1.0),
            },
            "journal": self._journal.stats() if self._journal is not None else None,
            "drops": {name: count for name, count in sorted(self.counters.items()) if count},
        }

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued; a database that takes nothing for STALL seconds is given up on
        (what the journal holds waits for the next start), so that the sensor always stops."""
        self._flush_pending()
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        progress, moved = -1, time.monotonic()
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.1)
            now_progress = self.written + self.replayed
            if now_progress != progress:
                progress, moved = now_progress, time.monotonic()
            elif time.monotonic() - moved > STALL:
                break
        if self._thread.is_alive():
            log.error("the database takes no events: giving up on %d (journaled: kept for the next start)",
                      self.pending)  # fmt: skip
            self._abandon.set()
            self._sink.abandon()
            self._thread.join(STALL + 20)
        for _, count, position in list(self._queue):  # only when the thread is stuck for good
            self._writer_counters[DEFERRED if position is not None else LOST_AT_SHUTDOWN] += count
        self._sink.close(30.0)
        if self._journal is not None:
            self._journal.close()
