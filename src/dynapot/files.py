"""Files dynapot writes for others to read: whole, or not at all.

`write_atomically` replaces a file through a temporary one in the same folder (`staged_write`
runs a block, such as recording what the file deploys, between writing and replacing), so that a
reader (the sensor re-reading its configuration on SIGHUP, `dynapot status`, a report's
reader) never sees half of it. `create_once` makes a file that must never be replaced (the
deployment's secret, a host key): written aside, then linked into place, so that when two
processes race, one whole file wins and both use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _write_aside(path: Path, data: bytes, mode: int) -> Path:
    """`data` in a new temporary file beside `path`, with exactly `mode` (whatever the umask)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover of a process with our pid that died mid-write
    fd = os.open(tmp, _NEW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


@contextlib.contextmanager
def staged_write(path: Path, data: str | bytes, mode: int = 0o644) -> Iterator[None]:
    """Write `data` beside `path`, run the block, then put the file in place in one step.

    When the write or the block fails, `path` stays as it was: what the block records (a
    deployment) and the file agree, and a folder that is not there fails before the block runs.
    """
    if path.is_dir():  # the rename at the end would fail: fail before the block records anything
        raise IsADirectoryError(21, "Is a directory", str(path))
    tmp = _write_aside(path, data.encode("utf-8") if isinstance(data, str) else data, mode)
    try:
        yield
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomically(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one step (text is written as UTF-8)."""
    with staged_write(path, data, mode):
        pass


def create_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` holding `data` unless it exists; False when it did (another process won)."""
    tmp = _write_aside(path, data, mode)
    try:
        os.link(tmp, path)  # fails rather than replace what is there
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True
