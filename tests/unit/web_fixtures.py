"""A web interface over a small real database: accounts, hosts of both kinds, events, findings.

Shared by the web tests (in-process through httpx, and in Chromium through a real server).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dynapot.db import Database, open_database
from dynapot.db.models import Finding, HoneypotEvent, Host, HostOsGuess, OperatingSystem, Port, utcnow
from dynapot.web import accounts

ADMIN, VIEWER = "alice", "victor"
PASSWORD = "correct horse battery staple"
HOSTILE = "<script>alert(1)</script>"

SETTINGS = """# the admin's own comment, kept across changes
[planner]
fill_ratio = 0.5

[[networks]]
cidr = "198.18.0.0/24"
exclude = ["198.18.0.250-198.18.0.254"]

[web]
lockout_failures = 3
login_attempts_per_minute = 1000
"""


def seed(db: Database, events: int = 30) -> None:
    """Two real hosts (one with a hostile host name), one virtual, events and findings."""
    accounts.create_user(db, ADMIN, PASSWORD, "admin")
    accounts.create_user(db, VIEWER, PASSWORD, "viewer")
    now = utcnow()
    with db.session() as session:
        linux = OperatingSystem(name="Linux 2.6.X", family="Linux")
        windows = OperatingSystem(name="Microsoft Windows XP", family="Windows")
        session.add_all([linux, windows])
        session.flush()
        real = Host(
            ip="198.18.0.2",
            hostname=HOSTILE,
            os_id=windows.id,
            os_detail="Microsoft Windows XP SP3",
            tool="nmap",
            reliability=96,
            first_seen=now,
            last_seen=now,
        )
        other = Host(ip="198.18.0.3", os_id=linux.id, tool="p0f", first_seen=now, last_seen=now)
        decoy = Host(
            ip="198.18.0.10",
            is_virtual=True,
            os_id=windows.id,
            personality="Microsoft Windows XP SP2",
            tool="dynapot",
            first_seen=now,
            last_seen=now,
        )
        session.add_all([real, other, decoy])
        session.flush()
        session.add(
            HostOsGuess(
                host_id=real.id,
                tool="nmap",
                os_id=windows.id,
                detail="Microsoft Windows XP SP3",
                confidence=96,
                seen_at=now,
                cpe=["cpe:/o:microsoft:windows_xp::sp3"],
            )
        )
        session.add(
            HostOsGuess(
                host_id=real.id, tool="p0f", os_id=windows.id, detail="Windows XP", confidence=70, seen_at=now
            )
        )
        session.add(
            Port(
                host_id=real.id,
                protocol="tcp",
                port=445,
                state="open",
                service="microsoft-ds",
                product=HOSTILE,
                tool="nmap",
                seen_at=now,
            )
        )
        for number in range(events):
            session.add(
                HoneypotEvent(
                    time=now - timedelta(seconds=events - number),
                    protocol="tcp",
                    src_ip="198.18.0.99",
                    src_port=40000 + number,
                    dst_ip="198.18.0.10",
                    dst_port=22,
                    kind="connect",
                    detail=f"event {number} {HOSTILE}",
                )
            )
        session.add(
            Finding(
                key="scan:198.18.0.99",
                kind="scan",
                risk="high",
                first_seen=now,
                last_seen=now,
                summary=f"198.18.0.99 scanned {HOSTILE}",
                sources=["198.18.0.99"],
                targets=["198.18.0.10"],
                ports=[22],
                event_count=events,
                event_ids=[1],
                details={},
            )
        )


def make_database(folder: Path, url: str | None = None) -> tuple[Database, Path]:
    """(the seeded database, its settings file): SQLite in `folder` unless `url` names another."""
    db = open_database(url or f"sqlite:///{folder / 'web.db'}")
    seed(db)
    settings = folder / "dynapot.toml"
    settings.write_text(SETTINGS)
    settings.chmod(0o640)
    return db, settings
