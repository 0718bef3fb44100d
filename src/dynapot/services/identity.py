"""Who one virtual host is: its name and its boot time, the same in every place that says them.

The web page, the SMTP and FTP greetings, the banner's "[host]", the SNMP sysName, the SMB
computer name and a telnet or SSH prompt all name the host; SNMP's sysUpTime, SMB's boot
time, a shell's `uptime` and the TCP timestamp clock all tell how long it has been up. They
must agree, or an attacker comparing them sees a fake. So each host has one `HostIdentity`,
made once by the sensor and handed to every service in `ConnectionInfo.identity`, and the
personality's TCP timestamp clock starts from its uptime.

Everything is derived from the host's address and personality, keyed with the deployment's
secret: stable across restarts, different per host, and not predictable from another
dynapot deployment's hosts.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["HostIdentity", "identity_for"]

MIN_UPTIME = 3 * 3600.0  # a host seen right after its reboot is rare; keep uptimes above this
REBOOT_DAYS = (20.0, 60.0)  # patch-day reboots: each host its own period and phase


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """One virtual host's name and clock (`identity_for` makes them)."""

    address: str
    personality: str | None
    seed: bytes = field(repr=False)  # this host's own randomness, keyed with the deployment secret
    hostname: str  # as the host names itself in greetings, prompts and sysName
    boot_time: float  # Unix time of its last boot

    @property
    def tag(self) -> str:
        """Four hex digits that tell this host from the others (for names in another style)."""
        return self.seed[:2].hex()

    def uptime(self, now: float | None = None) -> float:
        """Seconds since the host booted, at Unix time `now`."""
        return (time.time() if now is None else now) - self.boot_time

    def rng(self, purpose: str) -> random.Random:
        """A generator for one purpose (names, keys, file trees): the same draws every time."""
        return random.Random(hashlib.blake2b(purpose.encode(), key=self.seed[:64], digest_size=16).digest())


def _seed(secret: bytes, address: str, personality: str | None) -> bytes:
    material = f"{address}|{personality or ''}".encode()
    return hashlib.blake2b(material, key=secret[:64], digest_size=32, person=b"dynapot-host").digest()


def _boot_time(seed: bytes, now: float) -> float:
    """The last reboot of a host that reboots every few weeks at its own phase."""
    rng = random.Random(seed + b"boot")
    period = rng.uniform(*REBOOT_DAYS) * 86_400
    phase = rng.uniform(0, period)
    since = (now + phase) % period
    return now - max(since, MIN_UPTIME)


@lru_cache(maxsize=65_536)
def identity_for(
    address: str,
    personality: str | None = None,
    *,
    secret: bytes = b"",
    uptime: float | None = None,
    now: float | None = None,
) -> HostIdentity:
    """The identity of the host at `address` wearing `personality`.

    `uptime` (honeyd's `set T uptime N`) fixes the uptime at `now`; otherwise the host
    reboots every 20-60 days at its own phase, so its uptime keeps growing across sensor
    restarts as a real machine's does.
    """
    moment = time.time() if now is None else now
    seed = _seed(secret, address, personality)
    boot = moment - uptime if uptime is not None else _boot_time(seed, moment)
    return HostIdentity(address, personality, seed, f"srv-{seed[:2].hex()}", boot)


def host_name(info: object) -> str:
    """The name of the host a connection reached (`ConnectionInfo.identity.hostname`)."""
    return info.identity.hostname  # type: ignore[attr-defined]


def host_tag(info: object) -> str:
    """Four hex digits that tell the host a connection reached from the others."""
    return info.identity.tag  # type: ignore[attr-defined]
