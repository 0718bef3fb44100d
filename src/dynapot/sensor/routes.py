"""Virtual hosts behind honeyd's simulated routers: hops, latency and loss on the wire.

With `route` statements in its configuration, the sensor answers for whole routed networks the
way honeyd does (`dynapot.honeyd.routing` walks the packets). An entry router is an ordinary
host on the sensor's link (it answers ARP); the networks behind it are reached through it, as
the real network's router sends them there. For a packet to an address behind the routers:

- it is handed to the host after its links' delay, or lost on the way;
- with too small a TTL it is answered by the router where the TTL ran out (ICMP time exceeded,
  quoting the packet as it arrived there), so that traceroute shows every router;
- an `unreach` network is answered "network unreachable" by its router.

Whatever a host behind the routers sends walks back out the same way: its TTL lowered by every
router, delayed by every link, and sent from the entry router's MAC. Routed hosts never answer
ARP on the link and are never handed to the C receive thread.

Delayed packets wait in asyncio timers, at most `MAX_DELAYED` at once (a flood to a slow link
cannot grow the sensor): beyond that they are dropped and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from dynapot.honeyd.routing import RoutedNetwork, Walk
from dynapot.netstack.packets import build_icmp_packet, checksum
from dynapot.netstack.types import IPv4

__all__ = ["MAX_DELAYED", "RoutedHosts"]

MAX_DELAYED = 10_000  # packets waiting for their links' delay, in all
ROUTER_TTL = 255  # an ICMP error's TTL from a router that is not a bound host (IOS's)
ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE = 11, 3


class RoutedHosts:
    """The sensor's side of a routed topology: takes packets in, sends the hosts' packets out.

    `deliver(ip, now)` hands a packet to the virtual host it is for; `send(frame)` puts a frame
    on the wire; `mac_of(ip)` is the MAC a bound address answers with (None if not bound);
    `neighbour(ip)` the MAC a peer was last seen with; `ttl_of(ip)` the initial TTL of a bound
    host's personality (None: not known).
    """

    def __init__(
        self,
        network: RoutedNetwork,
        counters: Counter[str],
        *,
        deliver: Callable[[IPv4, float], None],
        send: Callable[[bytes], None],
        mac_of: Callable[[int], bytes | None],
        neighbour: Callable[[int], bytes | None],
        ttl_of: Callable[[int], int | None],
    ) -> None:
        self.network = network
        self.counters = counters
        self._deliver, self._send = deliver, send
        self._mac_of, self._neighbour, self._ttl_of = mac_of, neighbour, ttl_of
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the sensor runs
        self.delayed = 0
        self._ident = 0

    def routed(self, ip: int) -> bool:
        """Whether packets to `ip` cross routers (it is behind an entry router, not one itself)."""
        return self.network.is_behind_routers(ip)

    # ------------------------------------------------------------------ into the topology

    def receive(self, ip: IPv4, now: float) -> None:
        """A packet from the wire for an address behind the routers (bound or not)."""
        walk = self.network.inbound(ip.dst, ip.ttl, ip.total_length, now)
        outcome = walk.outcome
        if outcome == "deliver":
            self._later(walk.delay_ms, self._deliver, ip)
        elif outcome == "time-exceeded":
            self._answer_error(walk, ip, ICMP_TIME_EXCEEDED, 0, now)
        elif outcome == "unreachable":
            self._answer_error(walk, ip, ICMP_UNREACHABLE, 0, now)
        else:
            self.counters[f"routing: {outcome}"] += 1

    def _answer_error(self, walk: Walk, ip: IPv4, type_: int, code: int, now: float) -> None:
        """ICMP from router `walk.at`, quoting the packet's header as it arrived there and its
        first 8 bytes of data (RFC 792), sent back out through the routers before it."""
        quoted = _with_ttl(ip.header, walk.ttl + 1) + ip.payload[:8]
        self._ident = (self._ident + 1) & 0xFFFF
        ttl = self._ttl_of(walk.at) or ROUTER_TTL
        packet = build_icmp_packet(walk.at, ip.src, type_, code, 0, quoted, ttl, self._ident, False)
        router, peer = walk.at, ip.src
        self._later(walk.delay_ms, lambda error, at: self.send(error, router, peer, at), packet)

    # ------------------------------------------------------------------ out of the topology

    def send(self, packet: bytes, src: int, dst: int, now: float) -> None:
        """A packet a routed host (or router) sends to `dst` outside: it crosses the routers first."""
        walk = self.network.outbound(src, dst, packet[8], len(packet), now)
        if walk.outcome not in ("outside", "deliver"):
            self.counters[f"routing out: {walk.outcome}"] += 1
            return
        exit_mac = self._mac_of(walk.at)
        peer_mac = self._neighbour(dst)
        if exit_mac is None or peer_mac is None:
            self.counters["routing out: no neighbour"] += 1
            return
        hl = (packet[0] & 0x0F) << 2
        frame = peer_mac + exit_mac + b"\x08\x00" + _with_ttl(packet[:hl], walk.ttl) + packet[hl:]
        self._later(walk.delay_ms, lambda _frame, _now: self._send(_frame), frame)

    # ------------------------------------------------------------------ delays

    def _later(self, delay_ms: float, action: Callable[..., None], item: object) -> None:
        """Run `action(item, now)` after `delay_ms` (at once without a running loop, as in tests)."""
        loop = self.loop
        if loop is None or delay_ms <= 0:
            action(item, time.monotonic())
            return
        if self.delayed >= MAX_DELAYED:
            self.counters["routing: delay queue full"] += 1
            return
        self.delayed += 1
        deadline = time.monotonic() + delay_ms / 1000.0

        def due() -> None:
            # A loop's timers may fire up to a millisecond early (uvloop counts from the clock it
            # read at the start of the iteration, asyncio rounds by its clock resolution); a link's
            # latency is a minimum, as on a real wire, so wait out the rest.
            remaining = deadline - time.monotonic()
            if remaining > 0:
                loop.call_later(remaining, due)
                return
            self.delayed -= 1
            action(item, loop.time())

        loop.call_later(delay_ms / 1000.0, due)


def _with_ttl(header: bytes, ttl: int) -> bytes:
    """An IPv4 header (the first 20 bytes and any options) with a new TTL and its checksum."""
    head = bytearray(header)
    head[8] = max(0, min(ttl, 255))
    head[10:12] = b"\x00\x00"
    head[10:12] = checksum(bytes(head)).to_bytes(2, "big")
    return bytes(head)
