"""A plan held for review in the web tests' database (what the daemon stores in hold mode)."""

from __future__ import annotations

from web_fixtures import HOSTILE

from dynapot.db import Database
from dynapot.deploy import review
from dynapot.planner import Plan, ServiceSpec, VirtualHost

NETWORK = "198.18.0.0/24"


def held_plan(db: Database, ip: str = "198.18.0.20", hostile: str = HOSTILE) -> str:
    """Store a pending plan adding one Linux decoy (its banner and explanation hostile); its digest."""
    vh = VirtualHost(
        ip,
        "00:0c:29:aa:bb:cc",
        "Linux 2.6.X",
        "Linux 2.6.18 - 2.6.22",
        (ServiceSpec("tcp", 22, "ssh", "OpenSSH", HOSTILE),),
    )
    plan = Plan(
        (vh,),
        2,
        200,
        {"Linux 2.6.X": 1},
        (ip,),
        (),
        (),
        explanations={ip: f"mirrors the OS of 198.18.0.3 {hostile}"},
        groups={"198.18.0.2": "Microsoft Windows XP", "198.18.0.3": "Linux 2.6.X"},
    )
    digest, _ = review.hold(db, NETWORK, plan, [])
    return digest
