"""What the reports, findings and sessions pages read: bounded queries returning plain values.

The report itself is `analysis.report.build_report` (the CLI's `dynapot report`); this module
adds what the page shows beside it (events by kind, findings by risk in the period) and the
findings and sessions pages' reads. Findings are paged by keyset (last seen, id), never by
offset; a session's replay is bounded per page. Attacker strings are returned as stored
(findings, events) or made printable (`analysis.sessions.printable`: recorded terminal text);
escaping for HTML is the templates' job (autoescape).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from dynapot.analysis.report import build_report, events_by_kind
from dynapot.analysis.report.queries import ReportData
from dynapot.analysis.sessions import HoneypotSession, find_session, list_sessions, printable
from dynapot.config import RISKS
from dynapot.db import Database
from dynapot.db.models import Finding, HoneypotEvent
from dynapot.web.period import Period
from dynapot.web.queries import iso

__all__ = [
    "FINDINGS_PAGE",
    "STEPS_PAGE",
    "FindingsPage",
    "ReportView",
    "finding_detail",
    "finding_kinds",
    "findings_page",
    "replay_page",
    "report_view",
    "session_rows",
]

FINDINGS_PAGE = 50
#: Events listed under one finding (from its stored sample of event ids).
FINDING_EVENTS = 200
#: Sessions listed on the sessions page (the newest).
SESSIONS_PAGE = 300
#: Records shown per replay page, and characters shown of one record.
STEPS_PAGE = 500
STEP_TEXT = 4000
TOP = 15  # rows of each top list on the page (exports keep the report's own limits)


@dataclass(frozen=True)
class ReportView:
    """The report of a period as the page shows it."""

    data: ReportData
    by_kind: dict[str, int]
    findings_by_risk: dict[str, int]


def report_view(db: Database, period: Period, *, limit: int = TOP) -> ReportView:
    """The report for `period` (top lists of `limit` rows) with events by kind and findings by risk."""
    data = build_report(db, period.since, period.until, limit=limit, rows=100)
    return ReportView(data, events_by_kind(db, period.since, period.until), _findings_by_risk(db, period))


def _findings_by_risk(db: Database, period: Period) -> dict[str, int]:
    f = Finding
    with db.session() as session:
        rows = dict(
            session.execute(
                select(f.risk, func.count())
                .where(f.last_seen >= period.since, f.first_seen < period.until)
                .group_by(f.risk)
            ).all()
        )
    return {risk: int(rows.get(risk, 0)) for risk in RISKS}


# --- findings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingsPage:
    """One page of findings, newest last-seen first; `next` is the id to continue after (or None)."""

    rows: list[dict[str, Any]]
    next: int | None


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "key": f.key,
        "kind": f.kind,
        "risk": f.risk,
        "first_seen": iso(f.first_seen),
        "last_seen": iso(f.last_seen),
        "summary": f.summary,
        "sources": [str(x) for x in (f.sources or [])[:20]],
        "source_count": len(f.sources or []),
        "targets": [str(x) for x in (f.targets or [])[:20]],
        "ports": [str(x) for x in (f.ports or [])[:20]],
        "event_count": f.event_count,
    }


def findings_page(
    db: Database,
    *,
    risk: str | None = None,
    kind: str | None = None,
    after: int | None = None,
    limit: int = FINDINGS_PAGE,
) -> FindingsPage:
    """Findings of `risk` and `kind` (None: any), newest last-seen first, after the finding `after`."""
    limit = max(1, min(limit, 500))
    f = Finding
    statement = select(f).order_by(f.last_seen.desc(), f.id.desc())
    if risk is not None:
        statement = statement.where(f.risk == risk)
    if kind is not None:
        statement = statement.where(f.kind == kind)
    with db.session() as session:
        if after is not None:
            mark = session.get(f, after)
            if mark is not None:
                statement = statement.where(
                    or_(f.last_seen < mark.last_seen, and_(f.last_seen == mark.last_seen, f.id < mark.id))
                )
            else:  # a finding gone since (expired): continue by id alone
                statement = statement.where(f.id < after)
        found = list(session.scalars(statement.limit(limit + 1)))
        rows = [_finding(x) for x in found[:limit]]
    return FindingsPage(rows, rows[-1]["id"] if len(found) > limit else None)


def finding_kinds(db: Database) -> list[str]:
    """The kinds of finding stored (for the filter), in name order."""
    with db.session() as session:
        return sorted(str(k) for k in session.scalars(select(Finding.kind).distinct().limit(100)))


def finding_detail(db: Database, finding_id: int) -> dict[str, Any] | None:
    """One finding with its details and the events of its stored sample (oldest first), or None."""
    with db.session() as session:
        found = session.get(Finding, finding_id)
        if found is None:
            return None
        row = _finding(found)
        row["sources"] = [str(x) for x in (found.sources or [])[:500]]
        row["targets"] = [str(x) for x in (found.targets or [])[:500]]
        row["ports"] = [str(x) for x in (found.ports or [])[:500]]
        details = found.details if isinstance(found.details, dict) else {}
        row["details"] = {str(k)[:100]: str(v)[:500] for k, v in list(details.items())[:100]}
        ids = [i for i in (found.event_ids or []) if isinstance(i, int)][:FINDING_EVENTS]
        events = (
            session.scalars(select(HoneypotEvent).where(HoneypotEvent.id.in_(ids)).order_by(HoneypotEvent.id))
            if ids
            else []
        )
        row["events"] = [
            {
                "id": e.id,
                "time": iso(e.time),
                "kind": e.kind,
                "protocol": e.protocol,
                "src_ip": e.src_ip,
                "src_port": e.src_port,
                "dst_ip": e.dst_ip,
                "dst_port": e.dst_port,
                "detail": (e.detail or "")[:1000],
            }
            for e in events
        ]
        row["events_sampled"] = len(found.event_ids or [])
    return row


# --- sessions (the Sebek log) ----------------------------------------------------------------


def _session(found: HoneypotSession) -> dict[str, Any]:
    commands = found.commands
    return {
        "id": found.id,
        "honeypot": found.honeypot_ip,
        "attacker": found.src_ip,
        "root_pid": found.root_pid,
        "start": iso(found.start),
        "end": iso(found.end),
        "records": len(found.rows),
        "lost": found.lost,
        "uids": sorted(found.users)[:20],
        "processes": [printable(p)[:100] for p in sorted(found.processes)[:20]],
        "command_count": len(commands),
        "commands": [c[:200] for c in commands[:5]],
    }


def session_rows(
    db: Database, period: Period, honeypot: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The sessions of `period` (the newest `SESSIONS_PAGE`, newest first) and how many there are."""
    found = list_sessions(db, period.since, period.until, honeypot)
    newest = sorted(found, key=lambda s: (s.start, s.id), reverse=True)
    return [_session(s) for s in newest[:SESSIONS_PAGE]], len(found)


def replay_page(db: Database, session_id: int, page: int = 0) -> dict[str, Any] | None:
    """A session's replay, one page of `STEPS_PAGE` records in recorded order: what was typed
    (reads on fd 0), what the terminal showed (writes on fd 1 and 2), and the records lost before
    each (Sebek's counter); None when there is no such session."""
    found = find_session(db, session_id)
    if found is None:
        return None
    steps: list[dict[str, Any]] = []
    previous: datetime | None = None
    for row in found.rows:
        typed = row.type == 0 and row.fd == 0
        shown = row.type == 1 and row.fd in (1, 2)
        lost = max(row.lost_before or 0, 0)
        if not ((typed or shown) and row.data) and not lost:
            continue
        data = (row.data or "") if (typed or shown) else ""
        delay = 0.0 if previous is None else max(0.0, (row.time - previous).total_seconds())
        previous = row.time
        steps.append(
            {
                "time": iso(row.time),
                "delay": round(delay, 3),
                "what": "typed" if typed else "shown" if shown else "other",
                "pid": row.pid,
                "process": printable(row.command or "")[:100],
                "text": printable(data[:STEP_TEXT]),
                "clipped": len(data) > STEP_TEXT,
                "lost_before": lost,
            }
        )
    pages = max(1, -(-len(steps) // STEPS_PAGE))
    page = max(0, min(page, pages - 1))
    return {
        "session": _session(found),
        "page": page,
        "pages": pages,
        "steps": steps[page * STEPS_PAGE : (page + 1) * STEPS_PAGE],
        "step_count": len(steps),
    }
