"""What tests and benchmarks of the lab wait for: a condition (bounded polling) and processes in /proc.

The lab's pid namespace is the machine's, where others may run the same programs (nmap), so a
daemon's children are found by their parent pid in /proc, never by name alone (`pgrep`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["children", "gone", "nmaps", "scanning_hosts", "wait_for"]


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy (returned) or `timeout` passes (its last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def children(pid: int) -> dict[int, str]:
    """The direct children of `pid`, by pid, with their command name."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == pid:
            found[int(entry)] = name
    return found


def nmaps(pid: int) -> set[int]:
    """The nmaps process `pid` (a daemon) has started and not reaped."""
    return {child for child, name in children(pid).items() if name == "nmap"}


def scanning_hosts(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that scan a host in detail (not the ping sweep, `-sn`)."""
    found = set()
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-sn" not in argv:
            found.add(pid)
    return found


def gone(pids: Iterable[int]) -> bool:
    """No such process at all: not running, not a zombie waiting to be reaped."""
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)
