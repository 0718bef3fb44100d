"""Our child processes: started without importing from the current folder, ended the way an
administrator would (SIGTERM, then SIGKILL if it hangs).

Every Python child (the event writer, the daemon's sensor, the lab's helpers) runs as root at
first. `python_command` starts it with `-P` (Python 3.11's safe path): neither the current
folder (for `-m` and `-c`) nor a script's folder goes first on `sys.path`, so that a `dynapot/`
or a `sqlalchemy.py` in whatever folder root happens to start dynapot from cannot stand in for
the real one. `python_environment` leaves out the entries of PYTHONPATH that would name the
current folder all the same (empty or relative ones).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

KILL_WAIT = 10.0


def python_command(*args: str) -> list[str]:
    """This interpreter with `args` (`-m module ...`, `-c code ...`), safe from the current folder."""
    return [sys.executable, "-P", *args]


def python_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: ours) for a Python child: PYTHONPATH without empty or relative entries."""
    env = dict(os.environ if environ is None else environ)
    path = env.get("PYTHONPATH")
    if path is not None:
        kept = [entry for entry in path.split(os.pathsep) if os.path.isabs(entry)]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            del env["PYTHONPATH"]
    return env


def untrusted_program(name: str) -> str | None:
    """Why root should not run the program `name` (a path, or a name found on PATH): the file or
    a folder above it may be changed by an account other than root (owned by one, or writable
    by group or others; a sticky folder, or one whose group is root's, is fine). None when only
    root can change it, or when there is no such program (running it says that)."""
    found = shutil.which(name)
    if found is None:
        return None
    real = Path(os.path.realpath(found))
    for path in (real, *real.parents):
        try:
            info = os.stat(path)
        except OSError as exc:
            return f"cannot check {path}: {exc.strerror}"
        writable = info.st_mode & stat.S_IWOTH or (info.st_mode & stat.S_IWGRP and info.st_gid != 0)
        if info.st_uid != 0 or (writable and not (path != real and info.st_mode & stat.S_ISVTX)):
            return f"{path} may be changed by an account other than root: root does not run {real}"
    return None


def spawn_logged(
    command: Sequence[str], environment: Mapping[str, str], output: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `command` with no input and its stdout and stderr appended to `output`: the process,
    and where its output begins in that file."""
    with output.open("ab") as out:
        offset = out.tell()
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(environment),
        )
    return process, offset


def terminate(process: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM `process` and wait up to `timeout` s for it to flush and exit, else kill it; its status."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(KILL_WAIT)
    return process.returncode
