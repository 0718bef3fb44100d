"""Sessions on high-interaction honeypots, from the Sebek rows: who, when, which commands, replay.

A **session** is one process tree on one honeypot for one attacker: rows are grouped by
honeypot, by attacker (`src_ip`, NULL when the collector could not link them) and by the
topmost recorded ancestor of their process (following `ppid` through the processes that have
rows of their own with the same attacker). Its id is the id of its first row.

**Commands typed** are rebuilt from what the session's processes read on standard input
(Sebek type 0, fd 0), in order: printable text accumulates, Backspace/DEL remove the last
character, Ctrl-U clears the line, terminal escape sequences (arrow keys) are dropped, and
Enter (CR or LF) ends a command. A process reading fd 0 from a file (`sh < script`) counts
too; Sebek does not say what fd 0 is.

**Replay** gives the session's reads on fd 0 (what was typed) and, on request, its writes on
fd 1 and 2 (what the terminal showed), each with the delay since the previous one. The text
is made safe to print: newlines (CR, LF, CR LF all become one newline) and tabs are kept, as a
replay needs them; every other control character (ESC, Backspace, DEL, bell, C1, bidi
overrides) is shown as `\\xNN` by `textsafe.for_display`, so that nothing recorded on a
backend can move the cursor, recolour or retitle the administrator's terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dynapot.db import Database
from dynapot.db.models import Session as SessionRow
from dynapot.textsafe import for_display

__all__ = [
    "MAX_COMMAND",
    "MAX_COMMANDS",
    "MAX_ROWS",
    "HoneypotSession",
    "ReplayStep",
    "find_session",
    "group_sessions",
    "list_sessions",
    "printable",
    "replay_steps",
    "timed_commands",
    "typed_commands",
]

READ, WRITE = 0, 1
MAX_ROWS = 200_000  # rows read per listing (newest first beyond it)
MAX_COMMANDS = 1000  # commands kept per session
MAX_COMMAND = 4096  # characters kept per command
MAX_DEPTH = 64  # ancestors followed to find a process tree's root
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|.)?", re.DOTALL)  # CSI, SS3 and two-byte escapes
_NEWLINES = re.compile(r"\r\n|\r|\n")


@dataclass(slots=True)
class HoneypotSession:
    """One process tree of one attacker on one honeypot."""

    id: int
    honeypot_ip: str
    src_ip: str | None
    root_pid: int | None
    start: datetime
    end: datetime
    rows: list[SessionRow] = field(default_factory=list, repr=False)
    users: set[int] = field(default_factory=set)
    processes: set[str] = field(default_factory=set)
    lost: int = 0

    @property
    def commands(self) -> list[str]:
        return typed_commands(self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "honeypot": self.honeypot_ip,
            "attacker": self.src_ip,
            "root_pid": self.root_pid,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "records": len(self.rows),
            "lost": self.lost,
            "uids": sorted(self.users),
            "processes": sorted(self.processes),
            "commands": self.commands,
        }


def _root(pid: int | None, parents: dict[int, int | None]) -> int | None:
    seen = 0
    while pid is not None and seen < MAX_DEPTH:
        parent = parents.get(pid)
        if parent is None or parent not in parents or parent == pid:
            return pid
        pid, seen = parent, seen + 1
    return pid


def group_sessions(rows: list[SessionRow]) -> list[HoneypotSession]:
    """Rows (any order) -> sessions, oldest first; each session's rows in time order."""
    ordered = sorted(rows, key=lambda r: (r.time, r.counter or 0, r.id))
    parents: dict[tuple[str, str | None], dict[int, int | None]] = {}
    for row in ordered:
        if row.pid is not None:
            parents.setdefault((row.honeypot_ip, row.src_ip), {})[row.pid] = row.ppid
    sessions: dict[tuple[str, str | None, int | None], HoneypotSession] = {}
    for row in ordered:
        tree = parents.get((row.honeypot_ip, row.src_ip), {})
        key = (row.honeypot_ip, row.src_ip, _root(row.pid, tree))
        session = sessions.get(key)
        if session is None:
            session = sessions[key] = HoneypotSession(
                row.id, row.honeypot_ip, row.src_ip, key[2], row.time, row.time
            )
        session.rows.append(row)
        session.end = max(session.end, row.time)
        session.lost += max(row.lost_before or 0, 0)
        if row.uid is not None:
            session.users.add(row.uid)
        if row.command:
            session.processes.add(row.command)
    return sorted(sessions.values(), key=lambda s: (s.start, s.id))


def _keystrokes(row: SessionRow) -> bool:
    return row.type == READ and row.fd == 0 and bool(row.data)


def typed_commands(rows: list[SessionRow]) -> list[str]:
    """The lines typed on standard input, in order, edited as a terminal would (see the module)."""
    return [text for _, text in timed_commands(rows)]


def timed_commands(rows: list[SessionRow]) -> list[tuple[datetime, str]]:
    """`typed_commands` with the time each was entered (the row holding its Enter)."""
    commands: list[tuple[datetime, str]] = []
    line: list[str] = []
    for row in rows:
        if not _keystrokes(row):
            continue
        for char in _ESCAPE.sub("", row.data or ""):
            if char in "\r\n":
                text = "".join(line).strip()
                if text and len(commands) < MAX_COMMANDS:
                    commands.append((row.time, for_display(text)))
                line.clear()
            elif char in "\x7f\x08":
                if line:
                    line.pop()
            elif char == "\x15":
                line.clear()
            elif (char >= " " or char == "\t") and len(line) < MAX_COMMAND:
                line.append(char)
    return commands


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """Wait `delay` seconds, then print `text` (already safe to print)."""

    delay: float
    text: str
    typed: bool  # a read on standard input (else a write to the terminal)


def printable(text: str) -> str:
    """Recorded text safe to show: newlines (CR, LF, CR LF -> LF) and tabs kept, every other
    control, bidi or invisible character written as \\xNN or \\uNNNN (`textsafe.for_display`)."""
    return "\n".join(
        "\t".join(for_display(part) for part in piece.split("\t")) for piece in _NEWLINES.split(text)
    )


def replay_steps(
    rows: list[SessionRow], *, speed: float = 1.0, max_delay: float = 2.0, output: bool = False
) -> list[ReplayStep]:
    """What a replay prints and when: delays are the recorded ones / `speed`, at most `max_delay`."""
    steps: list[ReplayStep] = []
    previous: datetime | None = None
    for row in rows:
        typed = _keystrokes(row)
        shown = output and row.type == WRITE and row.fd in (1, 2) and bool(row.data)
        if not (typed or shown):
            continue
        delay = 0.0 if previous is None else max(0.0, (row.time - previous).total_seconds())
        previous = row.time
        steps.append(ReplayStep(min(delay / speed, max_delay), printable(row.data or ""), typed))
    return steps


def _query(since: datetime | None, until: datetime | None, honeypot: str | None) -> Any:
    query = select(SessionRow)
    if since is not None:
        query = query.where(SessionRow.time >= since)
    if until is not None:
        query = query.where(SessionRow.time < until)
    if honeypot is not None:
        query = query.where(SessionRow.honeypot_ip == honeypot)
    return query.order_by(SessionRow.id.desc()).limit(MAX_ROWS)


def list_sessions(
    db: Database, since: datetime | None = None, until: datetime | None = None, honeypot: str | None = None
) -> list[HoneypotSession]:
    """The sessions in a period (by the honeypots' clocks), oldest first; at most MAX_ROWS newest rows."""
    with db.session() as session:
        rows = list(session.scalars(_query(since, until, honeypot)))
        session.expunge_all()
    return group_sessions(rows)


def find_session(db: Database, session_id: int) -> HoneypotSession | None:
    """The session whose first row is `session_id` (grouped among that honeypot's rows), or None."""
    with db.session() as session:
        first = session.get(SessionRow, session_id)
        if first is None:
            return None
        query = (
            select(SessionRow)
            .where(SessionRow.honeypot_ip == first.honeypot_ip, SessionRow.time >= first.time)
            .order_by(SessionRow.id)
            .limit(MAX_ROWS)
        )
        rows = list(session.scalars(query))
        session.expunge_all()
    return next((s for s in group_sessions(rows) if s.id == session_id), None)
