"""Findings: the record of one correlated attack, and its rows in the findings table.

The correlator makes `Finding` snapshots; `store_findings` upserts them by key, merging
with what an earlier run (the daemon, a `dynapot findings`) stored, so that re-running
over the same events adds no duplicates; `finding_ids` gives the rows' ids by key, for the
alerts that point at them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dynapot.config import RISK_RANK
from dynapot.db import Database
from dynapot.db.models import Finding as FindingRow

LIST_LIMIT = 100  # sources, targets, ports kept in a finding (its counts stay exact)
KEY_CHUNK = 500  # keys per IN list: bounded statements on every backend


@dataclass(frozen=True, slots=True)
class Finding:
    """A snapshot of one correlated attack: what, how risky, who, against what, which events."""

    kind: str
    key: str
    risk: str
    first_seen: datetime
    last_seen: datetime
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    ports: tuple[str, ...]  # "445/tcp"
    event_count: int
    event_ids: tuple[int, ...]
    summary: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)  # counts and flags: os_scan, ...
    closed: bool = False  # its state has expired: no later event will update it

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "risk": self.risk,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "sources": list(self.sources),
            "targets": list(self.targets),
            "ports": list(self.ports),
            "event_count": self.event_count,
            "event_ids": list(self.event_ids),
            "summary": self.summary,
            "details": dict(self.details),
        }


def higher_risk(a: str, b: str) -> str:
    return a if RISK_RANK.get(a, 0) >= RISK_RANK.get(b, 0) else b


def address_order(text: str) -> tuple[int, int, str]:
    """Sort key of an address: IPv4 before IPv6, numerically; anything else last."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (2, 0, text)
    return (address.version - 4, int(address), text)


def addresses(items: Iterable[str], limit: int = LIST_LIMIT) -> tuple[str, ...]:
    """The first `limit` addresses in address order."""
    return tuple(sorted(items, key=address_order)[:limit])


def _port_order(label: str) -> tuple[str, int, str]:
    number, _, proto = label.partition("/")
    return (proto, int(number) if number.isdigit() else -1, label)


# --- the findings table ------------------------------------------------------------------


def _union(old: list | None, new: Iterable[Any], limit: int, key: Any = None) -> list[Any]:
    merged = set(old or ()) | set(new)
    return sorted(merged, key=key)[:limit]


def _merge_into(row: FindingRow, finding: Finding, max_ids: int) -> None:
    row.first_seen = min(row.first_seen, finding.first_seen)
    row.last_seen = max(row.last_seen, finding.last_seen)
    row.risk = higher_risk(row.risk, finding.risk)
    row.summary = finding.summary
    row.event_count = max(row.event_count, finding.event_count)
    row.sources = _union(row.sources, finding.sources, LIST_LIMIT, address_order)
    row.targets = _union(row.targets, finding.targets, LIST_LIMIT, address_order)
    row.ports = _union(row.ports, finding.ports, LIST_LIMIT, _port_order)
    row.event_ids = _union(row.event_ids, finding.event_ids, max_ids)
    row.details = {**(row.details or {}), **finding.details}


def _new_row(finding: Finding) -> FindingRow:
    return FindingRow(
        key=finding.key,
        kind=finding.kind,
        risk=finding.risk,
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        summary=finding.summary,
        sources=list(finding.sources),
        targets=list(finding.targets),
        ports=list(finding.ports),
        event_count=finding.event_count,
        event_ids=list(finding.event_ids),
        details=dict(finding.details),
    )


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), KEY_CHUNK):
        yield keys[start : start + KEY_CHUNK]


def _upsert(db: Database, latest: dict[str, Finding], max_event_ids: int) -> dict[str, int]:
    counts = {"added": 0, "updated": 0}
    with db.session() as session:
        existing: dict[str, FindingRow] = {}
        for chunk in _chunks(list(latest)):
            for row in session.scalars(select(FindingRow).where(FindingRow.key.in_(chunk))):
                existing[row.key] = row
        for key, finding in latest.items():
            row = existing.get(key)
            if row is None:
                session.add(_new_row(finding))
                counts["added"] += 1
            else:
                _merge_into(row, finding, max_event_ids)
                counts["updated"] += 1
    return counts


def store_findings(db: Database, findings: Iterable[Finding], *, max_event_ids: int = 100) -> dict[str, int]:
    """Upsert findings by key (merging with what is stored), so re-running adds no duplicates."""
    latest = {f.key: f for f in findings}
    if not latest:
        return {"added": 0, "updated": 0}
    try:
        return _upsert(db, latest, max_event_ids)
    except IntegrityError:
        # Another writer (the daemon, a concurrent `dynapot findings`) inserted a key first:
        # the transaction was rolled back; a second pass merges into its row.
        return _upsert(db, latest, max_event_ids)


def finding_ids(db: Database, keys: Iterable[str]) -> dict[str, int]:
    """The stored findings' row ids by key (what an alert row points at)."""
    ids: dict[str, int] = {}
    with db.session() as session:
        for chunk in _chunks(list(dict.fromkeys(keys))):
            statement = select(FindingRow.key, FindingRow.id).where(FindingRow.key.in_(chunk))
            ids.update((key, row_id) for key, row_id in session.execute(statement))
    return ids
