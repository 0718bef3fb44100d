"""Files attackers upload: kept once per SHA-256, within a quota per source and a budget in all.

One `UploadStore` serves every connection of the services that keep files (FTP). An upload
streams through an `Incoming`: every byte, up to `max_file`, is hashed, and written to a
private temporary file while the source's quota and the store's budget have room for it;
`finish` names the file after its digest, so that the same content is one file however often
it comes, and costs no quota the second time. What is not kept is still hashed and reported,
with the reason (`dropped`), and counted.

Disk use is counted in 4 KiB blocks: a flood of one-byte files cannot use up the inodes of a
budget counted in bytes. The store learns what its folder already holds when first used (or
`prepare`d), and removes the temporary files a crash left there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_UPLOAD = 10 * 1024 * 1024  # bytes kept of one file
BLOCK = 4096
SOURCE_LIMIT = 65536  # sources whose quota is remembered (the least recent are forgotten)
_TEMPORARY = ".upload-"
_DIGEST = re.compile(r"[0-9a-f]{64}")

# Why an upload was not kept.
SOURCE_QUOTA = "source quota"
SPOOL_BUDGET = "spool budget"
DATABASE_BUDGET = "database budget"  # the sensor holds every upload while its database is at its budget
CANNOT_WRITE = "cannot write"


def blocks(size: int) -> int:
    """Bytes a file of `size` takes on disk, counted in whole blocks (an empty file: one)."""
    return max(1, -(-size // BLOCK)) * BLOCK


@dataclass(frozen=True, slots=True)
class Kept:
    """What became of one upload."""

    size: int  # bytes received (at most max_file)
    sha256: str  # of those bytes
    truncated: bool  # cut at max_file
    stored: bool  # its content is on disk as <directory>/<sha256>
    duplicate: bool  # that content was there already: stored once
    dropped: str | None  # why it is not kept: SOURCE_QUOTA, SPOOL_BUDGET, DATABASE_BUDGET, CANNOT_WRITE


class _Quota:
    __slots__ = ("reserved", "since", "used")

    def __init__(self, now: float) -> None:
        self.since = now
        self.used = 0  # kept in this period
        self.reserved = 0  # being received now


class UploadStore:
    """Where uploads go: one folder, a quota per source per period, a budget for the folder.

    `per_source` and `budget` are bytes (None: no limit). Not thread-safe: one event loop uses it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_file: int = MAX_UPLOAD,
        per_source: int | None = None,
        budget: int | None = None,
        period: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.max_file = max_file
        self.per_source = per_source
        self.budget = budget
        self.period = period
        self.clock = clock
        self.used: int | None = None  # bytes the folder holds (in blocks); learnt at first use
        self.reserved = 0  # bytes of uploads under way
        self.full = False  # the budget refused an upload since the sensor last looked (it alerts once)
        self.hold: str | None = None  # set: nothing new is kept, for this reason (DATABASE_BUDGET)
        self.counters: Counter[str] = Counter()
        self._sources: OrderedDict[str, _Quota] = OrderedDict()

    # ------------------------------------------------------------------ the folder

    def prepare(self) -> None:
        """Learn what the folder holds now and remove leftover temporary files (a crash's)."""
        used = 0
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.startswith(_TEMPORARY) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                            self.counters["temporary files removed"] += 1
                    elif _DIGEST.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        used += blocks(entry.stat(follow_symlinks=False).st_size)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("uploads: cannot read %s (%s)", self.directory, exc)
        self.used = used

    def _open(self) -> tuple[int, Path] | None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.directory / f"{_TEMPORARY}{os.getpid()}-{os.urandom(8).hex()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            log.warning("uploads: cannot keep files in %s (%s)", self.directory, exc)
            return None
        return fd, tmp

    # ------------------------------------------------------------------ quotas

    def _quota(self, source: str) -> _Quota:
        now = self.clock()
        quota = self._sources.get(source)
        if quota is None:
            quota = self._sources[source] = _Quota(now)
            if len(self._sources) > SOURCE_LIMIT:
                for old, state in self._sources.items():
                    if not state.reserved:  # an upload under way keeps its source's record
                        del self._sources[old]
                        break
        elif now - quota.since >= self.period:
            quota.since, quota.used = now, 0
        self._sources.move_to_end(source)
        return quota

    def _refusal(self, quota: _Quota, more: int) -> str | None:
        """Why `more` bytes may not be written now, or None."""
        if self.used is None:
            self.prepare()
        assert self.used is not None
        if self.hold is not None:
            return self.hold
        if self.budget is not None and self.used + self.reserved + more > self.budget:
            self.full = True
            return SPOOL_BUDGET
        if self.per_source is not None and quota.used + quota.reserved + more > self.per_source:
            return SOURCE_QUOTA
        return None

    def _reserve(self, quota: _Quota, amount: int) -> None:
        quota.reserved += amount
        self.reserved += amount

    # ------------------------------------------------------------------ uploads

    def begin(self, source: str) -> Incoming:
        """An upload from `source` (its address) starts."""
        self.counters["uploads"] += 1
        return Incoming(self, source)

    def health(self) -> dict[str, object]:
        """For the sensor's status: what the folder holds, what is under way, what was refused."""
        return {
            "directory": str(self.directory),
            "used": self.used,
            "reserved": self.reserved,
            "budget": self.budget,
            **dict(self.counters),
        }


class Incoming:
    """One upload under way: `write` each chunk, then `finish` (or `abandon` on an error)."""

    def __init__(self, store: UploadStore, source: str) -> None:
        self.store = store
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0
        self.truncated = False
        self.dropped: str | None = None
        self._file: tuple[int, Path] | None = None
        self._reserved = 0
        self._quota: _Quota | None = None  # the source's record its reservation is in

    def write(self, chunk: bytes) -> bool:
        """Take the next chunk; False once the file is full (`max_file`): stop reading."""
        room = self.store.max_file - self.size
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.dropped is None and chunk:
            self._keep(chunk)
        return not self.truncated

    def _keep(self, chunk: bytes) -> None:
        store = self.store
        quota = self._quota = store._quota(self.source)
        more = blocks(self.size) - self._reserved
        if more > 0:
            reason = store._refusal(quota, more)
            if reason is not None:
                self._drop(reason)
                return
            store._reserve(quota, more)
            self._reserved += more
        if self._file is None:
            self._file = store._open()
            if self._file is None:
                self._drop(CANNOT_WRITE)
                return
        try:
            # A plain write: at most 64 KiB into the page cache, cheaper than a thread hop.
            os.write(self._file[0], chunk)
        except OSError as exc:
            log.warning("uploads: writing failed (%s)", exc)
            self._drop(CANNOT_WRITE)

    def _drop(self, reason: str) -> None:
        self.dropped = reason
        self._discard()

    def _discard(self) -> None:
        if self._file is not None:
            fd, tmp = self._file
            self._file = None
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._release()

    def _release(self) -> None:
        if self._reserved and self._quota is not None:
            self.store._reserve(self._quota, -self._reserved)
        self._reserved = 0

    def finish(self) -> Kept:
        """The upload is complete: keep it under its digest (once), and say what became of it."""
        store = self.store
        sha256 = self.digest.hexdigest()
        target = store.directory / sha256
        if self.dropped is None and self._file is None:  # nothing arrived: an empty file
            self._keep(b"")
        duplicate = os.path.exists(target)  # False, not an error, in a folder it may not search
        stored = duplicate
        if self._file is not None:
            fd, tmp = self._file
            self._file = None
            try:
                os.close(fd)
                if duplicate:
                    os.unlink(tmp)  # the same content is kept already: once is enough
                else:
                    os.replace(tmp, target)
                    stored = True
            except OSError as exc:
                log.warning("uploads: cannot keep %s (%s)", sha256, exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                self.dropped = CANNOT_WRITE
        if stored and not duplicate:
            size = blocks(self.size)
            quota = self._quota or store._quota(self.source)
            quota.used += size
            assert store.used is not None
            store.used += size
            store.counters["files kept"] += 1
            store.counters["bytes kept"] += self.size
        if duplicate:
            store.counters["duplicates"] += 1
        self._release()
        dropped = None if stored else self.dropped
        if dropped is not None:
            store.counters[f"not kept: {dropped}"] += 1
        return Kept(self.size, sha256, self.truncated, stored, duplicate, dropped)

    def abandon(self) -> None:
        """The upload failed half-way (the service's own error): keep nothing of it."""
        self._discard()
