"""The one record every discovery source produces: what a tool saw at an address, and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class OsGuess:
    """A tool's opinion of a host's operating system.

    `name` is the tool's own label (nmap's best osmatch name, a p0f label). `family`
    and `generation` come from the matching class (nmap's osclass osfamily/osgen),
    and together name the OS group the planner balances. `accuracy` is the tool's
    confidence in percent (nmap's osmatch accuracy).
    """

    name: str
    accuracy: int
    vendor: str | None = None
    family: str | None = None
    generation: str | None = None
    device_type: str | None = None
    cpe: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """The OS group name: family and generation ("Windows XP", "Linux 2.6.X"), else the label."""
        parts = [p for p in (self.family, self.generation) if p]
        return " ".join(parts) if parts else self.name


@dataclass(frozen=True, slots=True)
class PortObservation:
    """One port of one host as a tool saw it."""

    protocol: str  # "tcp" | "udp"
    port: int
    state: str  # nmap's states: open, closed, filtered, open|filtered, ...
    service: str | None = None  # nmap service name: "ssh", "http", "microsoft-ds"
    product: str | None = None
    version: str | None = None
    extra_info: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one tool learned about one address at one time.

    `alive` is False when a tool looked and found nothing (a host that was down);
    the inventory then leaves the last-seen time alone. `initial_ttl` is the TTL the host's
    packets started with (32, 64, 128 or 255), as the tool measured it: a clue to the OS
    family where the tool named no OS.
    """

    ip: str
    seen_at: datetime
    tool: str  # "nmap", "p0f", "arp", ...
    alive: bool = True
    mac: str | None = None
    mac_vendor: str | None = None
    hostname: str | None = None
    os: OsGuess | None = None
    ports: tuple[PortObservation, ...] = field(default_factory=tuple)
    initial_ttl: int | None = None
