"""The sensor's event journal: every event on local disk before the database, replayed after a crash.

The packet loop appends each turn's events as one record (one `writev`), then hands them to
the event writer; the writer's database transaction records how far the journal is stored
(`event_journal`), and segments the database holds entirely are deleted. A sensor that
starts reads that position from the database and replays whatever its journal holds beyond
it, so that an event that was journaled before a SIGKILL is stored once after the restart.

The folder, owned by the sensor's user:

- `id`: this journal's name in the database (random, made at the first start);
- `lock`: locked by the sensor and its event writer process while either runs, so that one
  journal has one writer and a restarted sensor waits for the old writer to finish;
- `NNNNNNNNNNNNNNNN.dpj`: the segments, numbered in order; a new start begins a new one.

A record is a 12-byte header (`DJ`, 2 reserved bytes, the payload's length and CRC-32) and the
payload: events as the body of a JSON array, ASCII (`eventformat.encode`). The folder is
writable by the unprivileged sensor user, so reading it back trusts nothing: a segment is
read up to its first record that is short, oversized or fails its CRC (the tail a crash
leaves), and a payload is only ever parsed as JSON, never unpickled or evaluated.

The journal is bounded (`max_bytes` of segments not yet stored): a record that would pass
the bound is refused and counted, and its events still go to the database, unjournaled.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dynapot.logfiles import flock_within

log = logging.getLogger(__name__)

HEADER = struct.Struct("!2sHII")  # magic, reserved, payload length, CRC-32 of the payload
MAGIC = b"DJ"
MAX_RECORD = 64 << 20  # longer "records" in a segment are damage, not data
DEFAULT_MAX_BYTES = 512 << 20
DEFAULT_SEGMENT_BYTES = 16 << 20
LOCK_TIMEOUT = 60.0  # seconds to wait for a previous event writer to finish with the journal
_SEGMENT = re.compile(r"^(\d{16})\.dpj$")
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC


class JournalError(RuntimeError):
    """The journal cannot be used (its folder, its lock)."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """Just after one record: its segment and the offset where the next record starts."""

    segment: int
    offset: int


class Journal:
    """Segments of records in one folder; `append` from the packet loop, `stored` from the writer."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        owner: tuple[int, int] | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.folder = folder
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        self._owner = owner if owner is not None and os.geteuid() == 0 else None
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise JournalError(f"event journal {folder}: {exc}") from None
        self.lock_fd = self._lock(lock_timeout)
        self.id = self._read_id()
        self._mutex = threading.Lock()
        self.sizes: dict[int, int] = {}  # segment -> bytes, every segment still on disk
        for name in os.listdir(self.dir_fd):
            match = _SEGMENT.match(name)
            if match:
                found = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
                self.sizes[int(match.group(1))] = found.st_size
        self.recovered = sorted(self.sizes)  # written before this start: replayed, never appended to
        self.total = sum(self.sizes.values())
        self.current = max(self.sizes, default=0) + 1
        self.offset = 0
        self._fd = self._create(self.current)
        self.refused = 0  # records refused: the journal was full
        self.failed = 0  # records not written: the disk said no
        self.damaged = 0  # segments whose tail could not be read back

    # ------------------------------------------------------------------ set-up

    def _lock(self, timeout: float) -> int:
        fd = os.open("lock", os.O_RDWR | os.O_CREAT | _OPEN, 0o600, dir_fd=self.dir_fd)
        self._chown(fd)
        if flock_within(fd, timeout):
            return fd
        os.close(fd)
        raise JournalError(f"event journal {self.folder} is in use (another sensor, or its event writer)")

    def _read_id(self) -> str:
        try:
            fd = os.open("id", os.O_RDONLY | _OPEN, dir_fd=self.dir_fd)
            with os.fdopen(fd, "rb") as handle:
                text = handle.read(64).decode("ascii", "replace").strip()
            if re.fullmatch(r"[0-9a-f]{32}", text):
                return text
            log.warning("event journal %s: unreadable id %r; starting a new one", self.folder, text[:40])
        except FileNotFoundError:
            pass
        journal_id = secrets.token_hex(16)
        with contextlib.suppress(FileNotFoundError):
            os.unlink("id", dir_fd=self.dir_fd)
        fd = os.open("id", os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=self.dir_fd)
        self._chown(fd)
        with os.fdopen(fd, "w") as handle:
            handle.write(journal_id + "\n")
        return journal_id

    def _chown(self, fd: int) -> None:
        if self._owner is not None:
            os.fchown(fd, *self._owner)

    @staticmethod
    def name(segment: int) -> str:
        return f"{segment:016d}.dpj"

    def _create(self, segment: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _OPEN
        fd = os.open(self.name(segment), flags, 0o600, dir_fd=self.dir_fd)
        self._chown(fd)
        self.sizes[segment] = 0
        return fd

    # ------------------------------------------------------------------ writing (the packet loop)

    def append(self, payload: bytes) -> Position | str:
        """Write one record (one system call): its position, or why not: "full" (the bound) or
        "failed" (the disk); both are counted here too (`refused`, `failed`)."""
        header = HEADER.pack(MAGIC, 0, len(payload), zlib.crc32(payload))
        size = HEADER.size + len(payload)
        with self._mutex:
            if self.total + size > self.max_bytes:
                self.refused += 1
                return "full"
            try:
                written = os.writev(self._fd, (header, payload))
                if written != size:  # a short write (disk full): finish it or give the segment up
                    record = (header + payload)[written:]
                    while record:
                        record = record[os.write(self._fd, record) :]
            except OSError as exc:
                self.failed += 1
                if self.failed == 1 or exc.errno != errno.ENOSPC:
                    log.error("event journal %s: %s", self.folder, exc)
                self._rotate()  # whatever part was written stays an unreadable tail, never a record
                return "failed"
            self.offset += size
            self.sizes[self.current] = self.offset
            self.total += size
            position = Position(self.current, self.offset)
            if self.offset >= self.segment_bytes:
                self._rotate()
            return position

    def _rotate(self) -> None:
        os.close(self._fd)
        self.current += 1
        self.offset = 0
        try:
            self._fd = self._create(self.current)
        except OSError as exc:  # keep a descriptor: appends then fail (and are counted) one by one
            log.error("event journal %s: cannot start a new segment: %s", self.folder, exc)
            self._fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)

    # ------------------------------------------------------------------ the database's progress

    def stored(self, position: Position) -> None:
        """The database holds everything up to `position`: delete the segments before it, and a
        finished segment it ends."""
        with self._mutex:
            for segment in sorted(self.sizes):
                done = segment < position.segment or (
                    segment == position.segment
                    and segment != self.current
                    and position.offset >= self.sizes[segment]
                )
                if not done:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.name(segment), dir_fd=self.dir_fd)
                self.total -= self.sizes.pop(segment)

    # ------------------------------------------------------------------ reading back (replay)

    def unstored(self, after: Position | None) -> Iterator[tuple[Position, bytes]]:
        """The records of the segments of earlier runs beyond `after`, in order."""
        for segment in self.recovered:
            if after is not None and segment < after.segment:
                continue
            start = after.offset if after is not None and segment == after.segment else 0
            yield from self._records(segment, start)

    def _records(self, segment: int, start: int) -> Iterator[tuple[Position, bytes]]:
        try:
            fd = os.open(self.name(segment), os.O_RDONLY | _OPEN, dir_fd=self.dir_fd)
        except OSError:
            return
        with os.fdopen(fd, "rb") as handle:
            handle.seek(start)
            offset = start
            while True:
                header = handle.read(HEADER.size)
                if not header:
                    return
                if len(header) < HEADER.size:
                    break
                magic, _, length, crc = HEADER.unpack(header)
                if magic != MAGIC or length > MAX_RECORD:
                    break
                payload = handle.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break
                offset += HEADER.size + length
                yield Position(segment, offset), payload
        self.damaged += 1
        log.warning("event journal %s: segment %d unreadable after byte %d", self.folder, segment, offset)

    def stats(self) -> dict[str, int]:
        return {
            "bytes": self.total,
            "segments": len(self.sizes),
            "full": self.refused,
            "write_errors": self.failed,
            "damaged_segments": self.damaged,
        }

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        for fd in (self.lock_fd, self.dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
