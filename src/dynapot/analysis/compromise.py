"""The finding "interactive compromise of a high-interaction honeypot", from Sebek sessions.

A session (`analysis.sessions`) in which at least `[correlation.compromise] commands` commands
were typed means someone has a shell on a real backend: the finding is of kind `compromise`,
risk `[correlation.compromise] risk` (high: at or above `[alerts] min_risk` by default, so it
alerts as soon as the daemon sees it). Its key is the honeypot, the attacker (or "unlinked")
and the session's root process, so that later rows of the same session update one finding.
Sources are the attacker (none when unlinked), targets the honeypot; it refers to no
honeypot_events rows (`event_ids` is empty) but to the session (`details["session"]`) and
carries the first commands, escaped (`textsafe.for_display`, via `typed_commands`).

`CompromiseWatch` is the daemon's incremental form: `after(db)` reads the Sebek rows stored
since the last call and returns the findings for every session they touch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select

from dynapot.analysis.findings import Finding
from dynapot.analysis.sessions import HoneypotSession, list_sessions
from dynapot.config import CompromiseRule
from dynapot.db import Database
from dynapot.db.models import Session as SessionRow

__all__ = ["COMPROMISE", "LOOKBACK", "CompromiseWatch", "compromise_findings"]

COMPROMISE = "compromise"
LOOKBACK = timedelta(hours=6)  # how far back a session's earlier rows are looked for
SHOWN_COMMANDS = 20


def compromise_findings(sessions: Iterable[HoneypotSession], rule: CompromiseRule) -> list[Finding]:
    """A finding per session with at least `rule.commands` commands typed."""
    found = []
    for session in sessions:
        commands = session.commands
        if len(commands) < rule.commands:
            continue
        who = session.src_ip or "an unlinked attacker"
        first = commands[0] if len(commands[0]) <= 80 else commands[0][:77] + "..."
        found.append(
            Finding(
                kind=COMPROMISE,
                key=f"{COMPROMISE}:{session.honeypot_ip}:{session.src_ip or 'unlinked'}:{session.root_pid}",
                risk=rule.risk,
                first_seen=session.start,
                last_seen=session.end,
                sources=(session.src_ip,) if session.src_ip else (),
                targets=(session.honeypot_ip,),
                ports=(),
                event_count=len(session.rows),
                event_ids=(),
                summary=(
                    f"interactive compromise of high-interaction honeypot {session.honeypot_ip} by {who}: "
                    f"{len(commands)} commands typed, the first: {first}"
                ),
                details={
                    "session": session.id,
                    "commands": len(commands),
                    "first_commands": commands[:SHOWN_COMMANDS],
                    "uids": sorted(session.users)[:20],
                    "lost_records": session.lost,
                },
            )
        )
    return found


class CompromiseWatch:
    """Findings from the Sebek rows stored since the last call (the daemon's correlation round)."""

    def __init__(self, rule: CompromiseRule, last_id: int | None = None) -> None:
        self.rule = rule
        self.last_id = last_id  # None: start after the rows stored now

    def after(self, db: Database) -> list[Finding]:
        with db.session() as session:
            if self.last_id is None:
                self.last_id = session.scalar(select(func.max(SessionRow.id))) or 0
                return []
            statement = (
                select(SessionRow.honeypot_ip, func.min(SessionRow.time), func.max(SessionRow.id))
                .where(SessionRow.id > self.last_id)
                .group_by(SessionRow.honeypot_ip)
            )
            touched = list(session.execute(statement))
        previous = self.last_id
        found: list[Finding] = []
        for honeypot, earliest, last in touched:
            self.last_id = max(self.last_id, last)
            sessions = list_sessions(db, since=earliest - LOOKBACK, honeypot=honeypot)
            fresh = (s for s in sessions if any(row.id > previous for row in s.rows))
            found += compromise_findings(fresh, self.rule)
        return found
