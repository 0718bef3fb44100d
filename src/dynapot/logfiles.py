"""Log files that stay bounded: cut at a size, the previous part kept beside them as `NAME.1`.

The daemon (root) caps the files in its state folder that grow with what attackers do:
`honeyd.log`, written by the sensor's unprivileged event writer, and the children's output
(`sensor.out`, `web.out`). The writers keep their file open and append (O_APPEND), so the cut is
logrotate's "copytruncate": the content is copied to `NAME.1` (replacing the older part), then
the file is emptied in place, and the next append lands at its new start. A writer that appends
through `append_locked` holds an exclusive flock on the file while it writes, and the cut takes
the same lock, so not a line is lost between the copy and the truncation; output the children
write without the lock (their stdout) may lose what arrives in that instant, which is the
price of not restarting them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import IO

__all__ = ["LOCK_WAIT", "append_locked", "cap", "flock_within"]

#: Seconds the cut waits for a writer's lock before it leaves the file for the next round.
LOCK_WAIT = 5.0
_POLL = 0.01


def append_locked(handle: IO[str], text: str) -> None:
    """Write `text` to an append-mode `handle` and flush it, holding the file's lock (see `cap`)."""
    fd = handle.fileno()
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        handle.write(text)
        handle.flush()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def flock_within(fd: int, wait: float) -> bool:
    """Take the exclusive flock on `fd` within `wait` seconds (polled: flock has no timeout)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)


def cap(path: Path, max_bytes: int, *, wait: float = LOCK_WAIT) -> bool:
    """When `path` is larger than `max_bytes`: its content becomes `path.1` (same mode and
    owner; the older `.1` replaced) and `path` is emptied in place. Whether it was cut.

    Nothing happens to a missing file, to a link (never followed: the state folder is ours, its
    files are not to be redirected elsewhere), or when a writer keeps the lock past `wait`.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # missing, or a link (ELOOP)
        return False
    try:
        info = os.fstat(fd)
        if info.st_size <= max_bytes or not flock_within(fd, wait):  # a writer holds it for one batch at most
            return False
        older = path.with_name(path.name + ".1")
        aside = path.with_name(f".{path.name}.1.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()
        copy = os.fdopen(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
        try:
            with copy, os.fdopen(os.dup(fd), "rb") as source:
                os.fchmod(copy.fileno(), info.st_mode & 0o777)
                with contextlib.suppress(PermissionError):  # not root: the copy stays ours
                    os.fchown(copy.fileno(), info.st_uid, info.st_gid)
                source.seek(0)
                shutil.copyfileobj(source, copy, 1 << 20)
            os.replace(aside, older)
        except BaseException:
            with contextlib.suppress(OSError):
                aside.unlink()
            raise
        os.ftruncate(fd, 0)
        return True
    finally:
        os.close(fd)  # closing drops the lock
