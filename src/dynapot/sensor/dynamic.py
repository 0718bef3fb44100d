"""honeyd's dynamic templates: which of an address's templates answers a packet from a source.

A dynamic template lists templates with conditions on the packet (`add D use T if source os =
windows`, `... if source ip = 198.18.5.0/24`, `... if time between 9:00am - 5:00pm`, `... if
tcp`, `add D otherwise use T`); honeyd tries them in order for every packet and the first that
holds answers, the last listed when none does. A connection keeps the template that answered
its first packet (honeyd keeps the template in its connection state), so `Chooser` only decides
for packets of no live connection; the runtime looks for the connection first.

Conditions as honeyd tests them (condition.c): the source OS is its passive fingerprint's (p0f,
of the source's SYN), matched by OS name and then version words, without case ("windows"
matches "Windows 7 or 8"); a source network holds from its first to its last address; a time
holds from the start to the end of the range within one day (no range across midnight); a
protocol is the packet's. A source whose OS is not known yet matches no OS condition.

Pure: fed a packet's facts, it answers.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from dynapot.honeyd.config import Condition
from dynapot.netstack.types import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

__all__ = ["Chooser", "holds"]

T = TypeVar("T")
_PROTOS = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "icmp": IPPROTO_ICMP}


def holds(condition: Condition, src: int, proto: int, source_os: str | None, local: time.struct_time) -> bool:
    """Whether `condition` holds for a packet from `src` (an IPv4 address as an int) of
    protocol `proto`, whose sender's OS p0f named `source_os`, at the local time `local`."""
    kind = condition.kind
    if kind == "otherwise":
        return True
    if kind == "ip":
        network = ipaddress.IPv4Network(condition.value or "0.0.0.0/32", strict=False)
        return int(network.network_address) <= src <= int(network.broadcast_address)
    if kind == "os":
        return source_os is not None and _os_matches(condition.value or "", source_os)
    if kind == "proto":
        return _PROTOS.get((condition.value or "").lower()) == proto
    if kind == "time" and condition.between is not None:
        start, end = condition.between
        now = (local.tm_hour * 60 + local.tm_min) * 60 + local.tm_sec
        return _seconds(start) <= now <= _seconds(end)
    return False


def _seconds(t: object) -> int:
    return (t.hour * 60 + t.minute) * 60 + t.second  # type: ignore[attr-defined]


def _os_matches(wanted: str, seen: str) -> bool:
    """honeyd names an OS as p0f's class, then version words: every word given must open the
    source's OS name in order ("windows", "Windows XP"; not "win")."""
    want, have = wanted.lower().split(), seen.lower().split()
    return bool(want) and have[: len(want)] == want


class Chooser(Generic[T]):
    """The choice among one address's templates: `default` and (condition, choice) pairs."""

    __slots__ = ("_all", "default", "rules")

    def __init__(self, default: T, rules: Sequence[tuple[Condition, T]]) -> None:
        self.default, self.rules = default, tuple(rules)
        unique: dict[int, T] = {id(default): default}
        for _, choice in self.rules:
            unique.setdefault(id(choice), choice)
        self._all = tuple(unique.values())

    def choose(self, src: int, proto: int, source_os: str | None, local: time.struct_time | None = None) -> T:
        """The first rule's choice whose condition holds, else the default."""
        local = local or time.localtime()
        for condition, choice in self.rules:
            if holds(condition, src, proto, source_os, local):
                return choice
        return self.default

    def all(self) -> tuple[T, ...]:
        """Every choice once (two rules may name one), the default first."""
        return self._all
