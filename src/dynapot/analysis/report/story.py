"""One story per attacker: the tiers joined in time order, from the first probe to the commands typed.

For every attacker with a recorded session on a high-interaction backend (a Sebek row linked
to its address), the report's `stories` section lists its steps in time order, one flat row
each (`src`, `time`, `tier`, `step`, `honeypot`, `port`, `count`, `detail`):

- tier `virtual`: what the sensor logged from that address (probes, scans, logins tried,
  commands on emulated services, the redirect to a backend); events of one kind on one
  honeypot less than `FOLD_SECONDS` apart are one step: its `count` says how many, its
  detail names the ports (when more than one) and the first distinct details (the logins tried);
- tier `backend`: each session on a backend (`session`: who logged in, which uids), then each
  command typed, at the time its Enter was read (or, where nothing was typed, each program run,
  from the exec records of dynapot's agent);
- tier `backend`, step `outbound`: what the backend it used started itself (the sensor's
  `outbound` events from that backend, from the attacker's first session on). A backend shared
  by two attackers at once gives both its outbound attempts: the sensor cannot tell whose they were.

Bounded: at most `attackers` attackers (those seen first come first), `STEPS` steps each (the
first ones), `EVENTS_READ` sensor rows read per attacker. Every string is the attacker's:
clipped here, escaped by whoever renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dynapot.analysis.sessions import HoneypotSession, group_sessions, timed_commands
from dynapot.db.models import HoneypotEvent
from dynapot.db.models import Session as SessionRow
from dynapot.events import Kind

__all__ = ["EVENTS_READ", "STEPS", "stories"]

STEPS = 200  # steps kept per attacker
EVENTS_READ = 5000  # sensor rows read per attacker
EXEC = 3  # the agent's exec records (Sebek type 3)
FOLD_SECONDS = 60.0  # events of one kind on one honeypot this close together are one step
PORTS = 10  # ports named in a folded step
DETAILS = 5  # distinct details named in a folded step


def _step(src: str, time: datetime, tier: str, step: str, honeypot: str, **rest: Any) -> dict[str, Any]:
    return {
        "src": src,
        "time": time,
        "tier": tier,
        "step": step,
        "honeypot": honeypot,
        "port": rest.get("port"),
        "count": rest.get("count", 1),
        "detail": rest.get("detail"),
    }


def _event_detail(event: HoneypotEvent) -> str | None:
    data = event.data if isinstance(event.data, dict) else {}
    if event.kind == Kind.REDIRECT:
        return f"to backend {data.get('backend', '?')}" + (" (sticky)" if data.get("sticky") else "")
    if event.kind == Kind.OUTBOUND:
        return f"{event.dst_ip}:{event.dst_port} {event.detail or ''}".strip()
    return event.detail


def _fold(step: dict[str, Any], event: HoneypotEvent, count: int) -> None:
    """Add `event` to a step of the same kind on the same honeypot: count, ports, details."""
    step["count"] += count
    step["last"] = event.time
    if step["port"] != event.dst_port:
        step["ports"].add(event.dst_port)
    detail = _event_detail(event)
    if detail and detail not in step["details"] and len(step["details"]) <= DETAILS:
        step["details"].append(detail)


def _virtual(session: Session, src: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    e = HoneypotEvent
    statement = (
        select(e)
        .where(e.src_ip == src, e.time >= since, e.time < until)
        .order_by(e.time, e.id)
        .limit(EVENTS_READ)
    )
    steps: list[dict[str, Any]] = []
    open_steps: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, honeypot) -> its latest step
    for event in session.scalars(statement):
        data = event.data if isinstance(event.data, dict) else {}
        count = int(data.get("count", 1)) if str(data.get("count", 1)).isdigit() else 1
        key = (event.kind, event.dst_ip)
        last = open_steps.get(key)
        if last is not None and (event.time - last["last"]).total_seconds() <= FOLD_SECONDS:
            _fold(last, event, count)
            continue
        detail = _event_detail(event)
        step = _step(src, event.time, "virtual", event.kind, event.dst_ip, port=event.dst_port, count=count)
        step.update(last=event.time, ports={event.dst_port}, details=[detail] if detail else [])
        open_steps[key] = step
        steps.append(step)
    for step in steps:
        ports = sorted(p for p in step.pop("ports") if p is not None)
        if len(ports) > 1:
            step["port"] = None
            shown = ", ".join(str(p) for p in ports[:PORTS])
            step["details"].insert(0, f"ports {shown}" + (", ..." if len(ports) > PORTS else ""))
        details = step.pop("details")
        step["detail"] = "; ".join(details[:DETAILS]) + ("; ..." if len(details) > DETAILS else "") or None
        del step["last"]
    return steps


def _backend(found: HoneypotSession) -> list[dict[str, Any]]:
    src = found.src_ip or ""
    users = ", ".join(str(uid) for uid in sorted(found.users)) or "?"
    steps = [
        _step(
            src,
            found.start,
            "backend",
            "session",
            found.honeypot_ip,
            detail=f"session {found.id}, uid {users}",
        )
    ]
    typed = timed_commands(found.rows)
    if typed:
        steps += [
            _step(src, when, "backend", "command", found.honeypot_ip, detail=text) for when, text in typed
        ]
    else:
        steps += [
            _step(src, row.time, "backend", "run", found.honeypot_ip, detail=row.data)
            for row in found.rows
            if row.type == EXEC and (row.uid or 0) != 0
        ]
    return steps


def _outbound(
    session: Session, src: str, backends: dict[str, datetime], until: datetime
) -> list[dict[str, Any]]:
    e = HoneypotEvent
    steps = []
    for backend, start in backends.items():
        statement = (
            select(e)
            .where(e.kind == Kind.OUTBOUND.value, e.src_ip == backend, e.time >= start, e.time < until)
            .order_by(e.time, e.id)
            .limit(STEPS)
        )
        steps += [
            _step(
                src,
                event.time,
                "backend",
                "outbound",
                backend,
                port=event.dst_port,
                detail=_event_detail(event),
            )
            for event in session.scalars(statement)
        ]
    return steps


def stories(
    session: Session,
    since: datetime,
    until: datetime,
    session_rows: list[SessionRow],
    *,
    attackers: int,
    iso: Callable[[datetime | None], str | None],
    clip: Callable[[Any], str | None],
) -> list[dict[str, Any]]:
    """The `stories` rows for the attackers of `session_rows` (the period's Sebek rows)."""
    by_attacker: dict[str, list[HoneypotSession]] = {}
    for found in group_sessions(session_rows):
        if found.src_ip:
            by_attacker.setdefault(found.src_ip, []).append(found)
    ordered = sorted(by_attacker, key=lambda src: min(s.start for s in by_attacker[src]))[:attackers]
    result: list[dict[str, Any]] = []
    for src in ordered:
        found = by_attacker[src]
        steps = _virtual(session, src, since, until)
        backends: dict[str, datetime] = {}
        for one in found:
            steps += _backend(one)
            backends[one.honeypot_ip] = min(one.start, backends.get(one.honeypot_ip, one.start))
        steps += _outbound(session, src, backends, until)
        steps.sort(key=lambda step: step["time"])
        for step in steps[:STEPS]:
            step["time"] = iso(step["time"])
            step["detail"] = clip(step["detail"])
            result.append(step)
    return result
