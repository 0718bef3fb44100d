"""Plans held for an admin's review (`planner.apply = "hold"`): stored, approved, applied.

The daemon and the web interface are separate processes sharing the database, so the pending
plan lives there (table plan_reviews), not in the daemon's memory or state folder (which the
web process may not be able to read, and which has no transactions to make "apply only if
still pending" atomic).

The cycle, for one network:
- in hold mode the daemon's re-plan calls `hold` with the plan it computed: a plan that differs
  from the one pending (by `plan_digest`) replaces it; the same plan leaves it as it is;
- an admin's apply calls `approve` with the digest the page showed: it succeeds only while that
  plan is still the pending one (one UPDATE ... WHERE status = 'pending' AND digest = ...),
  else `PlanChanged`;
- the daemon's next round finds the approval (`approved_digest`), plans again, and deploys only
  when its new plan has the approved digest (so the planner's rules, such as never an address a
  real host uses, hold at apply time); then `record_applied`. A plan that changed meanwhile
  supersedes the approval: the admin reviews again.
In auto mode the daemon calls `record_applied` for each deployment that moved hosts, so that
the history and "which real hosts joined or left since" stay right when hold is switched on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from dynapot.db import Database
from dynapot.db.models import PlanReview, utcnow
from dynapot.planner import Plan, VirtualHost, ip_key

__all__ = [
    "KEEP",
    "LISTED",
    "OPEN",
    "PlanChanged",
    "approve",
    "approved_digest",
    "describe",
    "hold",
    "plan_digest",
    "record_applied",
    "settle",
]

#: Hosts listed per part of a stored diff (added, removed, changed, joined, left); the rest counted.
LISTED = 1_000
#: Rows kept per network; older ones are deleted (the audit log keeps who applied what).
KEEP = 50
OPEN = ("pending", "approved")
CHANGED_NOTE = "the plan changed before it was applied: review again"


class PlanChanged(ValueError):
    """The digest given is not the plan pending now (it changed, was applied, or never was)."""


def plan_digest(plan: Plan) -> str:
    """sha256 of what deploying `plan` does: every virtual host it leaves and what it moves."""
    body = {
        "hosts": [vh.as_json() for vh in plan.virtual_hosts],
        "added": list(plan.added),
        "removed": list(plan.removed),
        "changed": list(plan.changed),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _host(vh: VirtualHost) -> dict[str, Any]:
    return vh.as_json()


def _bounded(items: list[Any]) -> list[Any]:
    return items[:LISTED]


def describe(plan: Plan, deployed: Sequence[VirtualHost], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The diff of `plan` against `deployed` and why: the real hosts that joined or left since the
    plan `before` (a stored summary; None: no earlier plan recorded)."""
    old = {vh.ip: vh for vh in deployed}
    new = {vh.ip: vh for vh in plan.virtual_hosts}
    real = {ip: plan.groups.get(ip) for ip in (*plan.groups, *plan.left_out)}
    earlier: dict[str, Any] | None = dict(before["real"]) if before and "real" in before else None
    added = [{**_host(new[ip]), "why": plan.explanations.get(ip)} for ip in plan.added if ip in new]
    removed = []
    for ip in plan.removed:
        vh = old.get(ip)
        why = (
            "a real host uses the address now"
            if ip in real
            else "fewer seats for its OS group, or its address is no longer free to fill"
        )
        removed.append({**(_host(vh) if vh else {"ip": ip}), "why": why})
    changed = []
    for ip in plan.changed:
        after = new.get(ip)
        if after is None:
            continue
        was = old.get(ip)
        changed.append(
            {
                **_host(after),
                "before": _host(was)["services"] if was else [],
                "why": plan.explanations.get(ip),
            }
        )
    joined = sorted((ip for ip in real if earlier is None or ip not in earlier), key=ip_key)
    left = sorted((ip for ip in (earlier or {}) if ip not in real), key=ip_key)
    return {
        "counts": {
            "added": len(plan.added),
            "removed": len(plan.removed),
            "changed": len(plan.changed),
            "virtual_hosts": len(plan.virtual_hosts),
            "real_hosts": plan.real_hosts,
            "free_ips": plan.free_ips,
            "joined": len(joined),
            "left": len(left),
        },
        "added": _bounded(added),
        "removed": _bounded(removed),
        "changed": _bounded(changed),
        "joined": [{"ip": ip, "group": real[ip]} for ip in _bounded(joined)],
        "left": [{"ip": ip, "group": (earlier or {}).get(ip)} for ip in _bounded(left)],
        "first_plan": earlier is None,
        "warnings": list(plan.warnings),
        "real": real if len(real) <= 70_000 else {},
    }


def _supersede(row: PlanReview, note: str) -> None:
    """Mark `row` superseded; its list of real hosts goes (only the latest applied plan's is read)."""
    row.status, row.note = "superseded", note
    _slim(row)


def _slim(row: PlanReview) -> None:
    if row.summary and "real" in row.summary:
        row.summary = {k: v for k, v in row.summary.items() if k != "real"}


def _last_applied(session: Any, network: str) -> PlanReview | None:
    return session.scalars(
        select(PlanReview)
        .where(PlanReview.network == network, PlanReview.status == "applied")
        .order_by(PlanReview.id.desc())
        .limit(1)
    ).first()


def _open(session: Any, network: str) -> list[PlanReview]:
    return list(
        session.scalars(select(PlanReview).where(PlanReview.network == network, PlanReview.status.in_(OPEN)))
    )


def _prune(session: Any, network: str) -> None:
    keep = (
        select(PlanReview.id).where(PlanReview.network == network).order_by(PlanReview.id.desc()).limit(KEEP)
    )
    session.execute(
        delete(PlanReview).where(
            PlanReview.network == network, PlanReview.status.not_in(OPEN), PlanReview.id.not_in(keep)
        )
    )


def hold(
    db: Database, network: str, plan: Plan, deployed: Sequence[VirtualHost], *, now: datetime | None = None
) -> tuple[str, bool]:
    """Store `plan` as the network's pending plan unless it is pending already: (digest, stored anew).

    A different plan pending or approved before is superseded (an approval with the note that the
    plan changed: the admin reviews again).
    """
    digest = plan_digest(plan)
    with db.session() as session:
        current = _open(session, network)
        if any(row.digest == digest for row in current):
            return digest, False
        for row in current:
            _supersede(row, CHANGED_NOTE if row.status == "approved" else "a newer plan replaced it")
        before = _last_applied(session, network)
        session.add(
            PlanReview(
                network=network,
                digest=digest,
                status="pending",
                created_at=now or utcnow(),
                summary=describe(plan, deployed, before.summary if before else None),
            )
        )
        session.flush()
        _prune(session, network)
    return digest, True


def settle(db: Database, network: str, note: str = "nothing to change any more") -> int:
    """Supersede the network's pending or approved plan (a new plan moves nothing); how many."""
    with db.session() as session:
        rows = _open(session, network)
        for row in rows:
            _supersede(row, note)
        return len(rows)


def approved_digest(db: Database, network: str | None = None) -> str | None:
    """The digest of the plan an admin approved and the daemon has not applied yet, if any."""
    statement = select(PlanReview.digest).where(PlanReview.status == "approved")
    if network is not None:
        statement = statement.where(PlanReview.network == network)
    with db.session() as session:
        return session.scalars(statement.order_by(PlanReview.id.desc()).limit(1)).first()


def approve(db: Database, digest: str, actor: str, *, now: datetime | None = None) -> PlanReview:
    """Mark the pending plan with `digest` approved by `actor`; PlanChanged when it is not pending."""
    with db.session() as session:
        result = session.execute(
            update(PlanReview)
            .where(PlanReview.digest == digest, PlanReview.status == "pending")
            .values(status="approved", approved_by=actor, approved_at=now or utcnow())
        )
        if not result.rowcount:
            raise PlanChanged("the plan changed, review again: it is no longer the one pending")
        row = session.scalars(
            select(PlanReview).where(PlanReview.digest == digest, PlanReview.status == "approved")
        ).first()
        assert row is not None
        session.expunge(row)
        return row


def record_applied(
    db: Database,
    network: str,
    plan: Plan,
    deployed: Sequence[VirtualHost],
    *,
    now: datetime | None = None,
) -> str:
    """Record that `plan` was deployed: its approved row marked applied, or (auto mode) a new
    applied row; anything else open is superseded. Its digest."""
    digest = plan_digest(plan)
    now = now or utcnow()
    with db.session() as session:
        row = None
        for candidate in _open(session, network):
            if candidate.digest == digest and candidate.status == "approved" and row is None:
                row = candidate
            else:
                _supersede(candidate, "another plan was deployed")
        before = _last_applied(session, network)
        if row is None:
            row = PlanReview(
                network=network,
                digest=digest,
                status="applied",
                created_at=now,
                summary=describe(plan, deployed, before.summary if before else None),
            )
            session.add(row)
        row.status, row.applied_at = "applied", now
        if before is not None:
            _slim(before)
        session.flush()
        _prune(session, network)
    return digest
