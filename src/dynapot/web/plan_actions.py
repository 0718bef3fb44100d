"""Approving a held plan, audited: the one way the plan page, the API and the CLI apply a plan.

`approve_plan(db, actor, digest)` marks the pending plan with `digest` approved (the daemon
deploys it on its next round if its plan is still the same: `dynapot.deploy.review`) and writes
the audit log's "plan.apply" entry. A digest that is not a plan's, or not the one pending now,
raises `PlanChanged` and changes nothing.
"""

from __future__ import annotations

from typing import Any

from dynapot.db import Database
from dynapot.deploy.review import PlanChanged, approve
from dynapot.web.accounts import audit

__all__ = ["DIGEST_LENGTH", "approve_plan"]

DIGEST_LENGTH = 64


def approve_plan(db: Database, actor: str, digest: str) -> dict[str, Any]:
    """Approve the pending plan `digest` for the daemon to deploy, audited as `actor`."""
    if len(digest) != DIGEST_LENGTH or any(c not in "0123456789abcdef" for c in digest):
        raise PlanChanged("the plan changed, review again: that is not a plan's digest")
    row = approve(db, digest, actor)
    audit(db, actor, "plan.apply", row.network, None, digest)
    return {
        "status": row.status,
        "digest": row.digest,
        "network": row.network,
        "approved_by": row.approved_by,
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
    }
