"""What the pages and the API read from the database: bounded queries returning plain values.

Every list is bounded (`limit`, at most `MAX_PAGE`); events are paged by keyset (an id to
continue before or after), never by offset, so that a page costs the same with a million rows
stored. Counts come from grouped queries over indexed columns. Strings are returned as stored
(already made storable); escaping for HTML is the templates' job (autoescape), for JSON the
encoder's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from dynapot.config import RISKS
from dynapot.db import Database
from dynapot.db.models import Alert, Finding, HoneypotEvent, Host, HostOsGuess, OperatingSystem

__all__ = [
    "MAX_PAGE",
    "count_after",
    "dashboard_counts",
    "event_rows",
    "host_count",
    "hosts_with_evidence",
    "iso",
    "latest_event_id",
    "os_mix",
    "recent_alerts",
]

MAX_PAGE = 500
#: More than any network the planner accepts (planner.max_network_size: 65,536 at most by default).
MAX_HOSTS = 70_000
#: Hosts the inventory page lists; the API lists them all.
PAGE_HOSTS = 5_000


def iso(value: Any) -> str | None:
    """A time as ISO 8601 text (None stays None)."""
    return value.isoformat() if value is not None else None


def dashboard_counts(db: Database) -> dict[str, Any]:
    """Real and virtual hosts, findings by risk (every risk named, zero or not)."""
    with db.session() as session:
        hosts = dict(session.execute(select(Host.is_virtual, func.count()).group_by(Host.is_virtual)).all())
        risks = dict(session.execute(select(Finding.risk, func.count()).group_by(Finding.risk)).all())
    return {
        "real_hosts": int(hosts.get(False, 0)),
        "virtual_hosts": int(hosts.get(True, 0)),
        "findings_by_risk": {risk: int(risks.get(risk, 0)) for risk in RISKS},
    }


def os_mix(db: Database, limit: int = 12) -> list[dict[str, Any]]:
    """Hosts per OS group, real beside virtual, the largest groups first (the rest as "other")."""
    name = func.coalesce(OperatingSystem.name, "unknown")
    statement = (
        select(name, Host.is_virtual, func.count())
        .select_from(Host)
        .outerjoin(OperatingSystem, Host.os_id == OperatingSystem.id)
        .group_by(name, Host.is_virtual)
    )
    groups: dict[str, dict[str, int]] = {}
    with db.session() as session:
        for os_name, virtual, count in session.execute(statement):
            entry = groups.setdefault(os_name, {"real": 0, "virtual": 0})
            entry["virtual" if virtual else "real"] += int(count)
    ordered = sorted(groups.items(), key=lambda item: (-(item[1]["real"] + item[1]["virtual"]), item[0]))
    rows = [{"os": os_name, **counts} for os_name, counts in ordered[:limit]]
    rest = ordered[limit:]
    if rest:
        rows.append(
            {
                "os": f"other ({len(rest)} groups)",
                "real": sum(c["real"] for _, c in rest),
                "virtual": sum(c["virtual"] for _, c in rest),
            }
        )
    return rows


def recent_alerts(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    """The newest alerts: time, channel (masked when stored), status, message."""
    with db.session() as session:
        rows = session.scalars(select(Alert).order_by(Alert.id.desc()).limit(min(limit, MAX_PAGE)))
        return [
            {"id": a.id, "time": iso(a.time), "channel": a.channel, "status": a.status, "message": a.message}
            for a in rows
        ]


def _event(e: HoneypotEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": iso(e.time),
        "kind": e.kind,
        "protocol": e.protocol,
        "src_ip": e.src_ip,
        "src_port": e.src_port,
        "dst_ip": e.dst_ip,
        "dst_port": e.dst_port,
        "detail": e.detail,
        "attacker_os": e.attacker_os,
        "scan_tool": e.scan_tool,
    }


def event_rows(
    db: Database, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """One keyset page of events: newest first below `before`, or oldest first above `after`."""
    limit = max(1, min(limit, MAX_PAGE))
    statement = select(HoneypotEvent)
    if after is not None:
        statement = statement.where(HoneypotEvent.id > after).order_by(HoneypotEvent.id)
    else:
        if before is not None:
            statement = statement.where(HoneypotEvent.id < before)
        statement = statement.order_by(HoneypotEvent.id.desc())
    with db.session() as session:
        return [_event(e) for e in session.scalars(statement.limit(limit))]


def count_after(db: Database, after: int) -> int:
    """How many events have an id above `after` (the live feed's "N more")."""
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(HoneypotEvent.id > after)) or 0)


def latest_event_id(db: Database) -> int:
    """The newest event's id (0 when there is none): where a live feed starts."""
    with db.session() as session:
        return int(session.scalar(select(func.max(HoneypotEvent.id))) or 0)


def host_count(db: Database) -> int:
    """How many hosts, real and virtual, the inventory holds."""
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Host)) or 0)


def hosts_with_evidence(db: Database, *, limit: int = MAX_HOSTS) -> list[dict[str, Any]]:
    """Hosts (the first `limit` found) with the fused OS, each tool's own OS answer, and their ports
    (the evidence), in address order."""
    with db.session() as session:
        os_names = dict(session.execute(select(OperatingSystem.id, OperatingSystem.name)).all())
        guesses: dict[int, list[dict[str, Any]]] = {}
        for g in session.scalars(select(HostOsGuess).order_by(HostOsGuess.tool)):
            guesses.setdefault(g.host_id, []).append(
                {
                    "tool": g.tool,
                    "os": os_names.get(g.os_id) if g.os_id is not None else None,
                    "detail": g.detail,
                    "confidence": g.confidence,
                    "seen_at": iso(g.seen_at),
                    "cpe": list(g.cpe or []),
                }
            )
        hosts = session.scalars(
            select(Host).options(selectinload(Host.ports)).order_by(Host.id).limit(limit)
        ).all()
        rows = [
            {
                "ip": h.ip,
                "virtual": h.is_virtual,
                "mac": h.mac,
                "mac_vendor": h.mac_vendor,
                "hostname": h.hostname,
                "os": h.os.name if h.os else None,
                "os_detail": h.os_detail,
                "tool": h.tool,
                "reliability": h.reliability,
                "personality": h.personality,
                "last_seen": iso(h.last_seen),
                "os_guesses": guesses.get(h.id, []),
                "ports": [
                    {
                        "proto": p.protocol,
                        "port": p.port,
                        "state": p.state,
                        "service": p.service,
                        "product": p.product,
                        "version": p.version,
                        "tool": p.tool,
                    }
                    for p in sorted(h.ports, key=lambda p: (p.protocol, p.port))
                ],
            }
            for h in hosts
        ]
    return sorted(rows, key=lambda r: tuple(int(x) if x.isdigit() else 0 for x in r["ip"].split(".")))
