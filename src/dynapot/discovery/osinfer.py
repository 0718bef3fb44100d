"""OS families guessed from clues other than an OS fingerprint: services, TTL, MAC vendor.

Where neither nmap nor p0f named a host's OS, these weaker clues still tell its family
(never its generation), in this order of trust: what its services say of themselves
("OpenSSH 9.2p1 Debian 2", "Microsoft IIS httpd"), the TTL its packets start with (64:
Linux or another Unix, 128: Windows), and the maker of its network card (Apple, Raspberry
Pi). Each guess is an `OsGuess` with a low, fixed accuracy, so that any tool's real answer
wins; the planner then lets such a host mirror the network's hosts of the same family.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from dynapot.discovery.observation import OsGuess

__all__ = [
    "MAC_ACCURACY",
    "SERVICE_ACCURACY",
    "TTL_ACCURACY",
    "TTL_TOOL",
    "os_from_mac_vendor",
    "os_from_services",
    "os_from_ttl",
    "starting_ttl",
]

TTL_TOOL = "ttl"  # the tool name of OS guesses drawn from a TTL (stored beside nmap's and p0f's)
SERVICE_ACCURACY = 30
TTL_ACCURACY = 20
MAC_ACCURACY = 10

_STARTING_TTLS = (32, 64, 128, 255)
# (vendor, family) by initial TTL; 255 is left out: routers, printers and Solaris all start there.
_TTL_FAMILIES = {
    32: ("Microsoft", "Windows", "Windows 9x or NT"),
    64: ("Linux", "Linux", "Linux or another Unix"),
    128: ("Microsoft", "Windows", "Windows"),
}
# Words services say of their system (nmap -sV product, version and extra info; banners).
_SERVICE_WORDS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), vendor, family)
    for pattern, vendor, family in (
        (r"\b(?:microsoft|windows|iis)\b", "Microsoft", "Windows"),
        (
            r"\b(?:ubuntu|debian|red ?hat|centos|fedora|suse|gentoo|raspbian|alpine|rhel|linux)\b",
            "Linux",
            "Linux",
        ),
        (r"\bfreebsd\b", "FreeBSD", "FreeBSD"),
        (r"\bopenbsd\b", "OpenBSD", "OpenBSD"),
        (r"\bnetbsd\b", "NetBSD", "NetBSD"),
        (r"\b(?:solaris|sunos)\b", "Sun", "Solaris"),
    )
)
# NIC makers whose cards come in one kind of general-purpose machine only.
_MAC_VENDORS = {"apple": ("Apple", "Mac OS X"), "raspberry pi": ("Linux", "Linux")}


class PortText(Protocol):
    """What a port's service says: an inventory row or a `PortObservation`."""

    @property
    def product(self) -> str | None: ...
    @property
    def version(self) -> str | None: ...
    @property
    def extra_info(self) -> str | None: ...


def starting_ttl(ttl: int) -> int | None:
    """The usual initial TTL a packet that arrived with `ttl` (plus the hops it made) started from."""
    return next((start for start in _STARTING_TTLS if ttl <= start), None)


def os_from_ttl(initial_ttl: int | None) -> OsGuess | None:
    """The family a starting TTL points to (64: Linux, 128: Windows); None for 255 or nothing."""
    known = _TTL_FAMILIES.get(initial_ttl or 0)
    if known is None:
        return None
    vendor, family, words = known
    return OsGuess(f"TTL {initial_ttl}: {words}", TTL_ACCURACY, vendor, family)


def os_from_services(ports: Iterable[PortText]) -> OsGuess | None:
    """The family the services name most often ("Ubuntu Linux; protocol 2.0"); None if none or a tie."""
    votes: Counter[tuple[str, str]] = Counter()
    said: dict[tuple[str, str], str] = {}
    for port in ports:
        text = " ".join(t for t in (port.product, port.version, port.extra_info) if t)
        for pattern, vendor, family in _SERVICE_WORDS:
            if pattern.search(text):
                votes[(vendor, family)] += 1
                said.setdefault((vendor, family), text)
    if not votes:
        return None
    ranked = votes.most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return None  # the services disagree: no guess
    (vendor, family), _ = ranked[0]
    return OsGuess(f"services say {family}: {said[(vendor, family)][:80]}", SERVICE_ACCURACY, vendor, family)


def os_from_mac_vendor(vendor: str | None) -> OsGuess | None:
    """The family of the few NIC makers whose cards come in one kind of computer (Apple, Raspberry Pi)."""
    lowered = (vendor or "").lower()
    for maker, (os_vendor, family) in _MAC_VENDORS.items():
        if lowered.startswith(maker):
            return OsGuess(f"MAC vendor {vendor}: {family}", MAC_ACCURACY, os_vendor, family)
    return None
