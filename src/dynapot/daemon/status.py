"""What the deployment looks like now: hosts, free addresses, counts, and the health files.

The daemon and the sensor each write a JSON health file into the state folder every few
seconds; `gather_status` reads both (a missing or half-written one is None) beside the
database's picture, for `dynapot status`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from dynapot.config import Settings
from dynapot.db import Database
from dynapot.db.models import Finding, HoneypotEvent, Host
from dynapot.inventory import network_picture

__all__ = ["gather_status", "read_json", "sensor_drops"]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file (a health file) as written, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _with_age(health: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The health file with `age`: seconds since it was written (a stale one means a stopped writer)."""
    return health and {**health, "age": round(now - health.get("time", 0), 1)}


def sensor_drops(sensor: dict[str, Any] | None) -> dict[str, int]:
    """Every drop counter in the sensor's health that is not zero, like a kernel's: the packet
    path's (`counters`), the C receive thread's (`fastpath`: what it dropped or failed to read or
    send) and the event path's (`events`: queue, journal, quarantine, writer restarts, shutdown)."""
    if not sensor:
        return {}
    drops: dict[str, int] = {}
    for name, count in (sensor.get("counters") or {}).items():
        drops[str(name)] = count
    for name, count in (sensor.get("fastpath") or {}).items():
        if "drop" in name or "error" in name:
            drops[f"fastpath: {name.replace('_', ' ')}"] = count
    events = sensor.get("events") or {}
    for name, count in (events.get("drops") or {}).items():
        drops[str(name)] = count
    journal = events.get("journal") or {}
    if journal.get("damaged_segments"):
        drops["event journal: damaged segments (their tail not replayed)"] = journal["damaged_segments"]
    return {name: count for name, count in sorted(drops.items()) if isinstance(count, int) and count}


def gather_status(settings: Settings, db: Database) -> dict[str, Any]:
    """Real and virtual hosts, free addresses, last scan and the health of daemon and sensor."""
    state_dir = settings.daemon.state_dir
    daemon = read_json(state_dir / "daemon-status.json")
    sensor = read_json(state_dir / "sensor" / "status.json")
    now = time.time()
    with db.session() as session:
        hosts = session.scalars(select(Host).order_by(Host.ip)).all()
        real = [
            {
                "ip": h.ip,
                "mac": h.mac,
                "os": h.os.name if h.os else None,
                "tool": h.tool,
                "last_seen": h.last_seen.isoformat(),
            }
            for h in hosts
            if not h.is_virtual
        ]
        virtual = [{"ip": h.ip, "mac": h.mac, "personality": h.personality} for h in hosts if h.is_virtual]
        events = session.scalar(select(func.count()).select_from(HoneypotEvent)) or 0
        findings = session.scalar(select(func.count()).select_from(Finding)) or 0
    free = None
    if settings.networks:
        # The planner's own free addresses (hold-off, gateway, exclusions), less those we fill.
        picture = network_picture(db, settings.networks[0], settings.planner)
        free = len(set(picture.free_ips) - {h["ip"] for h in virtual})
    return {
        "real_hosts": real,
        "virtual_hosts": virtual,
        "free_addresses": free,
        "events": events,
        "findings": findings,
        "daemon": _with_age(daemon, now),
        "sensor": sensor and {**_with_age(sensor, now), "drops": sensor_drops(sensor)},
    }
