"""What the plan and virtual hosts pages read: the held plan, its history, the decoys and their activity.

Read-only and bounded like `queries`. The pending plan and its history are the rows the daemon
writes (`dynapot.deploy.review`); the redirects in effect come from the daemon's health file
(the backends' health is known to the daemon only). Strings are returned as stored; the
templates escape them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from dynapot.config import Settings
from dynapot.daemon.status import read_json
from dynapot.db import Database
from dynapot.db.models import HoneypotEvent, Host, OperatingSystem, PlanReview, utcnow
from dynapot.deploy.review import OPEN
from dynapot.planner import ip_key
from dynapot.web.queries import iso

__all__ = ["ACTIVITY_EVENTS", "ACTIVITY_HOURS", "PAGE_HOSTS", "PAGE_VIRTUAL", "plan_view", "virtual_hosts"]

#: Virtual hosts the API lists (more than the widest network planned by default).
PAGE_VIRTUAL = 70_000
#: Virtual hosts the page lists; the API lists them all.
PAGE_HOSTS = 5_000
#: The window of "recent activity": events to each virtual host in the last day ...
ACTIVITY_HOURS = 24
#: ... among the newest this many events (by id: the primary key), so that the page costs the
#: same however busy the day was; the answer says when the cap cut the window short.
ACTIVITY_EVENTS = 100_000
HISTORY = 10


def _review(row: PlanReview, *, full: bool) -> dict[str, Any]:
    entry = {
        "id": row.id,
        "network": row.network,
        "digest": row.digest,
        "status": row.status,
        "created_at": iso(row.created_at),
        "approved_by": row.approved_by,
        "approved_at": iso(row.approved_at),
        "applied_at": iso(row.applied_at),
        "note": row.note,
        "counts": dict((row.summary or {}).get("counts", {})),
    }
    if full:
        summary = row.summary or {}
        for part in ("added", "removed", "changed", "joined", "left", "warnings"):
            entry[part] = list(summary.get(part, []))
        entry["first_plan"] = bool(summary.get("first_plan"))
    return entry


def plan_view(db: Database, settings: Settings) -> dict[str, Any]:
    """The apply mode, the plan pending (or None: nothing to change), the last one applied, and
    the latest rows of the history."""
    with db.session() as session:
        pending = session.scalars(
            select(PlanReview).where(PlanReview.status.in_(OPEN)).order_by(PlanReview.id.desc()).limit(1)
        ).first()
        applied = session.scalars(
            select(PlanReview).where(PlanReview.status == "applied").order_by(PlanReview.id.desc()).limit(1)
        ).first()
        history = session.scalars(select(PlanReview).order_by(PlanReview.id.desc()).limit(HISTORY)).all()
        deployed = int(session.scalar(select(func.count()).where(Host.is_virtual.is_(True))) or 0)
        return {
            "apply": settings.planner.apply,
            "pending": _review(pending, full=True) if pending else None,
            "last_applied": _review(applied, full=False) if applied else None,
            "history": [_review(row, full=False) for row in history],
            "deployed_virtual_hosts": deployed,
        }


def _daemon_redirects(state_dir: Path) -> dict[str, dict[str, str]] | None:
    """The redirects the daemon has in effect, from its health file; None when it cannot be read."""
    data = read_json(state_dir / "daemon-status.json")
    redirects = data.get("redirects") if isinstance(data, dict) else None
    return redirects if isinstance(redirects, dict) else None


def virtual_hosts(db: Database, settings: Settings, *, limit: int = PAGE_VIRTUAL) -> dict[str, Any]:
    """Every virtual host (the first `limit` in address order) with its personality and OS class,
    MAC, services per port, redirects in effect and events in the last `ACTIVITY_HOURS`."""
    since = utcnow() - timedelta(hours=ACTIVITY_HOURS)
    redirects = _daemon_redirects(settings.daemon.state_dir)
    names = {str(b.address): b.name for b in settings.backends}
    with db.session() as session:
        total = int(session.scalar(select(func.count()).where(Host.is_virtual.is_(True))) or 0)
        hosts = session.scalars(
            select(Host)
            .where(Host.is_virtual.is_(True))
            .options(selectinload(Host.ports))
            .order_by(Host.id)
            .limit(limit)
        ).all()
        os_rows = {row.id: row for row in session.scalars(select(OperatingSystem))}
        # Events are stored in the order they happen: the window is a range of ids (the primary
        # key), found by one probe of the time index; a grouped count over that range only.
        newest = int(session.scalar(select(func.max(HoneypotEvent.id))) or 0)
        first = session.scalar(
            select(HoneypotEvent.id).where(HoneypotEvent.time >= since).order_by(HoneypotEvent.time).limit(1)
        )
        start = newest + 1 if first is None else int(first)
        capped = start <= newest - ACTIVITY_EVENTS
        start = max(start, newest - ACTIVITY_EVENTS + 1)
        activity = {
            ip: (int(count), last)
            for ip, count, last in session.execute(
                select(HoneypotEvent.dst_ip, func.count(), func.max(HoneypotEvent.time))
                .where(HoneypotEvent.id >= start)
                .group_by(HoneypotEvent.dst_ip)
            )
        }
        rows = []
        for h in hosts:
            os_row = os_rows.get(h.os_id) if h.os_id is not None else None
            count, last = activity.get(h.ip, (0, None))
            moved = (redirects or {}).get(h.ip, {})
            rows.append(
                {
                    "ip": h.ip,
                    "mac": h.mac,
                    "personality": h.personality,
                    "os": os_row.name if os_row else None,
                    "os_class": {
                        "vendor": os_row.vendor if os_row else None,
                        "family": os_row.family if os_row else None,
                        "generation": os_row.generation if os_row else None,
                        "device_type": os_row.device_type if os_row else None,
                    },
                    "deployed_since": iso(h.first_seen),
                    "services": [
                        {
                            "proto": p.protocol,
                            "port": p.port,
                            "service": p.service,
                            "product": p.product,
                            "version": p.version,
                            "redirect": _redirect(moved, p.protocol, p.port, names),
                        }
                        for p in sorted(h.ports, key=lambda p: (p.protocol, p.port))
                    ],
                    "events": count,
                    "last_event": iso(last),
                }
            )
    rows.sort(key=lambda r: ip_key(r["ip"]))
    return {
        "virtual_hosts": rows,
        "total": total,
        "activity_hours": ACTIVITY_HOURS,
        "activity_capped": capped,  # the day had more events than the newest ACTIVITY_EVENTS counted
        "activity_events": ACTIVITY_EVENTS,
        "redirects_known": redirects is not None,
        "backends": [
            {"name": b.name, "address": str(b.address), "os": b.os, "ports": list(b.ports)}
            for b in settings.backends
        ],
        "redirect_mode": settings.redirect.mode,
    }


def _redirect(moved: dict[str, str], proto: str, port: int, names: dict[str, str]) -> dict[str, str] | None:
    if proto != "tcp":
        return None
    address = moved.get(str(port)) if isinstance(moved, dict) else None
    if not isinstance(address, str):
        return None
    return {"address": address, "backend": names.get(address, "")}
