"""honeyd's routed networks as honeyd walks them: which routers a packet crosses, and what it costs.

A configuration's `route` statements (`honeyd.config.Topology`) describe routers between the
wire and the virtual hosts. honeyd follows each packet through them (honeyd.c,
`honeyd_route_packet`), and this module does the same, as pure logic (the clock and the random
source are passed in):

- A packet from outside enters at the entry router whose `network` holds its destination (the
  longest such network; an entry without one holds every address).
- At each router the TTL drops by one (not at the router that sends the packet itself), then
  the router's most specific route for the destination decides: a `link` network is attached
  (the packet is delivered), `unreach` answers "unreachable" from this router, `add net ... GW`
  hands the packet to GW over a link with its latency (3 ms when none is given), loss and
  bandwidth (a queue: a busy link delays the next packet, and `drop between L ms - H ms` drops
  at random when the queue holds more than L ms), a `tunnel` leaves the simulation. No route at
  an entry router: the packet goes outside; anywhere else: dropped. A TTL that reaches 0 before
  the destination: "time exceeded", sent by the router where it happened.
- `add net NET GW` also gives GW a default route back (0.0.0.0/0) over the same link's
  attributes, as honeyd's parser does, so that replies find their way out.
- A link's attributes are those of the first `add net` over it (router, gateway): honeyd keeps
  the first and ignores later ones.

Replies from a virtual host start at the router whose `link` holds the host's address and
walk to their destination the same way, so that the attacker sees the TTL lowered by every
router in between and the latency of every link, twice for a round trip.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Literal

from dynapot.honeyd.config import Topology

__all__ = ["DEFAULT_LATENCY_MS", "RoutedNetwork", "Walk"]

DEFAULT_LATENCY_MS = 3  # honeyd's delay over a link given no latency
_ANY = ipaddress.IPv4Network("0.0.0.0/0")

Outcome = Literal["deliver", "outside", "drop", "time-exceeded", "unreachable", "tunnel"]


@dataclass(slots=True)
class _Link:
    """The queue between a router and one gateway: its attributes and when it is next free."""

    latency_ms: int
    loss: float  # percent
    ms_per_byte: float  # 0: unlimited bandwidth
    drop_between: tuple[int, int] | None
    busy_until: float = 0.0  # seconds, on the caller's clock


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Literal["link", "unreach", "net", "tunnel"]
    network: ipaddress.IPv4Network
    gateway: int = 0
    link: _Link | None = None


@dataclass(frozen=True, slots=True)
class Walk:
    """Where a packet ended up: `outcome`, the router `at` which it happened (the sender of a
    time-exceeded or unreachable answer), the TTL left, the delay its links added, and the
    routers it crossed."""

    outcome: Outcome
    at: int
    ttl: int
    delay_ms: float
    hops: int


@dataclass(slots=True)
class _Router:
    address: int
    entry: bool = False
    routes: list[_Route] = field(default_factory=list)  # most specific first

    def lookup(self, dst: int) -> _Route | None:
        for route in self.routes:
            if dst & int(route.network.netmask) == int(route.network.network_address):
                return route
        return None


class RoutedNetwork:
    """The routers of one configuration, ready to walk packets through."""

    def __init__(self, topology: Topology, *, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.routers: dict[int, _Router] = {}
        self.entries: list[tuple[ipaddress.IPv4Network, int]] = []
        self.attached: list[tuple[ipaddress.IPv4Network, int]] = []  # link networks -> their router
        links: dict[tuple[int, int], _Link] = {}
        for address, network in topology.entries.items():
            ip = _int(address)
            self._router(ip).entry = True
            self.entries.append((network or _ANY, ip))
        for router in topology.routers.values():
            here = self._router(_int(router.address))
            for network in router.links:
                here.routes.append(_Route("link", network))
                self.attached.append((network, here.address))
            for network in router.unreachable:
                here.routes.append(_Route("unreach", network))
            for tunnel in router.tunnels:
                here.routes.append(_Route("tunnel", tunnel.network))
            for net in router.nets:
                gateway = self._router(_int(net.gateway))
                key = (here.address, gateway.address)
                if key not in links:  # honeyd keeps a link's first attributes
                    per_byte = 8000.0 / net.bandwidth if net.bandwidth else 0.0
                    links[key] = _Link(net.latency_ms, net.loss, per_byte, net.drop_between)
                here.routes.append(_Route("net", net.network, gateway.address, links[key]))
                if net.network != _ANY:  # the way back: a default route over the same attributes
                    back = (gateway.address, here.address)
                    if back not in links:
                        links[back] = _Link(
                            net.latency_ms, net.loss, links[key].ms_per_byte, net.drop_between
                        )
                    gateway.routes.append(_Route("net", _ANY, here.address, links[back]))
        for router in self.routers.values():
            router.routes.sort(key=lambda route: -route.network.prefixlen)  # stable: first written wins
        self.entries.sort(key=lambda pair: -pair[0].prefixlen)
        self.attached.sort(key=lambda pair: -pair[0].prefixlen)

    def _router(self, address: int) -> _Router:
        if address not in self.routers:
            self.routers[address] = _Router(address)
        return self.routers[address]

    def __bool__(self) -> bool:
        return bool(self.routers)

    def entry_for(self, dst: int) -> int | None:
        """The entry router a packet for `dst` comes in by, or None (not behind this topology)."""
        return _most_specific(self.entries, dst)

    def router_of(self, host: int) -> int | None:
        """The router whose `link` holds `host` (where its replies start), or None."""
        if host in self.routers:
            return host
        return _most_specific(self.attached, host)

    def is_behind_routers(self, ip: int) -> bool:
        """Whether packets to `ip` cross a router of the topology (it is not an entry router)."""
        entry = self.entry_for(ip)
        return entry is not None and entry != ip

    def inbound(self, dst: int, ttl: int, size: int, now: float) -> Walk:
        """A packet from outside to `dst`, with `ttl` and `size` bytes, arriving at `now` (s)."""
        entry = self.entry_for(dst)
        if entry is None:
            return Walk("outside", 0, ttl, 0.0, 0)
        return self.walk(entry, dst, ttl, size, now)

    def outbound(self, src: int, dst: int, ttl: int, size: int, now: float) -> Walk:
        """A packet a virtual host or router `src` sends to `dst` outside."""
        start = self.router_of(src)
        if start is None:
            return Walk("outside", 0, ttl, 0.0, 0)
        return self.walk(start, dst, ttl, size, now, sender=src)

    def walk(self, start: int, dst: int, ttl: int, size: int, now: float, *, sender: int = 0) -> Walk:
        """honeyd_route_packet: follow a packet from router `start` towards `dst`."""
        router = self.routers[start]
        here, last = start, 0
        delay, survive, hops = 0.0, 1.0, 0
        route: _Route | None = None
        if here == sender:
            ttl += 1  # a router sending its own packet does not count itself
        while here != dst:
            ttl -= 1
            if ttl <= 0:
                break
            hops += 1
            route = router.lookup(dst)
            if route is None:
                return self._lost(survive) or Walk(
                    "outside" if router.entry else "drop", here, ttl, delay, hops
                )
            if route.kind != "net":
                break
            if route.gateway == last:  # a route straight back where the packet came from: a loop
                return Walk("drop", here, ttl, delay, hops)
            link = route.link
            assert link is not None
            delay += link.latency_ms or DEFAULT_LATENCY_MS
            if link.ms_per_byte:
                wait = max(0.0, link.busy_until - now) * 1000.0
                if link.drop_between and self._queue_drop(link.drop_between, wait):
                    return Walk("drop", here, ttl, delay, hops)
                delay += wait
                sending = size * link.ms_per_byte
                link.busy_until = max(link.busy_until, now) + sending / 1000.0
                delay += sending
            survive *= 1.0 - link.loss / 100.0
            last, here = here, route.gateway
            router = self.routers[here]
        if lost := self._lost(survive):
            return lost
        if ttl <= 0:
            return Walk("time-exceeded", here, 0, delay, hops)
        if route is not None and route.kind == "unreach":
            return Walk("unreachable", here, ttl, delay, hops)
        if route is not None and route.kind == "tunnel":
            return Walk("tunnel", here, ttl, delay, hops)
        return Walk("deliver", here, ttl, delay, hops)

    def _lost(self, survive: float) -> Walk | None:
        if survive < 1.0 and self.rng.random() >= survive:
            return Walk("drop", 0, 0, 0.0, 0)
        return None

    def _queue_drop(self, between: tuple[int, int], wait_ms: float) -> bool:
        """honeyd's random early drop: never below `low` ms of queue, always above `high`."""
        low, high = between
        if wait_ms <= low:
            return False
        if wait_ms >= high:
            return True
        return self.rng.random() * (high - low) < wait_ms - low


def _int(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


def _most_specific(table: list[tuple[ipaddress.IPv4Network, int]], ip: int) -> int | None:
    for network, router in table:  # sorted most specific first
        if ip & int(network.netmask) == int(network.network_address):
            return router
    return None
