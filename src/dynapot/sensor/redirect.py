"""The sensor's edge of the packet-level redirect: which ports go to which backends, frames, events.

The plan writes a redirected port as honeyd's `proxy BACKEND:PORT`. When the redirect mode is
"packet" and BACKEND is a configured backend with a MAC, the sensor does not proxy: it relays
the attacker's packets to the backend with the attacker's own address (`netstack.redirect`),
and the port is not open in its own stack nor in the C receive thread (the backend answers the
SYN). Any backend of the same OS (`os`, compared without case) that serves the port may take an
attacker who stuck to it before; the planned one takes the others.

What each mode reveals to the two sides:

- **proxy** (honeyd's, the fallback; also for a backend without a MAC): the backend sees every
  connection coming from the sensor's own address (`who` shows the sensor, not the attacker);
  the attacker sees the virtual host's TCP stack on the handshake and the backend's banner.
- **packet**: the backend sees the attacker's address (`who`, `last`, `ss`); the attacker sees
  the backend's own TCP stack (options, window, TTL: its OS fingerprint), its timing (a hop
  through the sensor's Python loop) and its real services: the virtual host's personality must
  match the backend's OS, which is why the planner matches OS groups. The backend's default
  route must point at the sensor, and no other route may reach the attackers: what it starts
  itself is contained (sinkholed up to `outbound_per_hour`, then refused).

Inside the backend, what it cannot hide in packet mode: its own address (`ip addr`, the local
half of `$SSH_CONNECTION`) is the backend's, not the virtual host's; a careful intruder who
compares it with the address it connected to learns it was relayed. Its outbound DNS and other
UDP/ICMP are dropped (counted, not logged one by one), so name lookups fail.

Backends are reached on the sensor's own interface (one link for attackers and backends: the
backend's address a /32 with the sensor as its only route); their MAC must be configured.

The sensor's own MAC is the backend's gateway's: frames to a backend go from it; replies go to
the attacker from the virtual host's MAC.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from dynapot.config import BackendSettings, RedirectSettings
from dynapot.events import Kind
from dynapot.netstack.redirect import (
    DROPS_LOGGED_PER_HOUR,
    Backend,
    Outbound,
    OutboundData,
    Output,
    Redirected,
    RedirectLimits,
    RedirectTable,
    Relay,
)
from dynapot.netstack.types import IPv4
from dynapot.sensor.config import HostDefinition
from dynapot.sensor.observe import Observer
from dynapot.services.contract import excerpt

log = logging.getLogger(__name__)

EXPIRE_EVERY = 10.0  # seconds between sweeps of the redirect table
_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def _ip(address: object) -> int:
    return int(ipaddress.IPv4Address(str(address)))


class Redirector:
    """Packet-mode redirects of one sensor: the backends, the NAT table, the frames and events."""

    def __init__(
        self,
        backends: Sequence[BackendSettings],
        settings: RedirectSettings,
        own_mac: bytes,
        observer: Observer,
        counters: Counter[str],
        send: Callable[[bytes], None],
        neighbour: Callable[[int], bytes | None],
        host_mac: Callable[[int], bytes | None],
        secret: bytes = b"",
    ) -> None:
        self.settings = settings
        self.own_mac = own_mac
        self.observer, self.counters, self.send = observer, counters, send
        self.neighbour, self.host_mac = neighbour, host_mac
        self._os: dict[int, str] = {}
        self._ports: dict[int, tuple[int, ...]] = {}
        relayed: list[Backend] = []
        for b in backends:
            if b.mac is None:
                log.warning("backend %s has no MAC: its ports are proxied from the sensor's address", b.name)
                continue
            backend = Backend(b.name, _ip(b.address), bytes.fromhex(b.mac.replace(":", "")))
            relayed.append(backend)
            self._os[backend.ip] = b.os.strip().lower()
            self._ports[backend.ip] = b.ports
        self.by_ip = {b.ip: b for b in relayed}
        limits = RedirectLimits(
            sticky_seconds=settings.sticky_seconds,
            max_flows=settings.max_flows,
            flows_per_attacker=settings.flows_per_attacker,
            max_attackers=settings.max_attackers,
            idle_timeout=settings.idle_timeout,
            outbound_per_hour=settings.outbound_per_hour,
            sinkhole_bytes=settings.sinkhole_bytes,
        )
        self.table = RedirectTable(relayed, limits, secret)
        self.table.counters = counters  # its drops are the sensor's, in `dynapot status`
        self._next_sweep = 0.0

    def set_own_addresses(self, addresses: list[int]) -> None:
        """The sensor interface's own addresses: the backend's traffic to them is the kernel's."""
        self.table.own = frozenset(addresses)

    def ports_of(self, definition: HostDefinition) -> dict[int, tuple[Backend, ...]]:
        """TCP port -> the backends that may serve it (the planned one first), for the host's ports
        whose action is a proxy to a backend this sensor relays to."""
        found: dict[int, tuple[Backend, ...]] = {}
        for port, action in definition.tcp.items():
            if action.kind != "proxy" or not action.target:
                continue
            host, _, target_port = action.target.rpartition(":")
            try:
                planned = self.by_ip.get(_ip(host))
            except ValueError:
                continue
            if planned is None or target_port != str(port):
                continue  # a hand-written proxy elsewhere, or to another port: honeyd's TCP proxy
            os = self._os[planned.ip]
            others = [
                b
                for b in self.by_ip.values()
                if b != planned and self._os[b.ip] == os and port in self._ports[b.ip]
            ]
            found[port] = (planned, *others)
        return found

    # ------------------------------------------------------------------ frames

    def from_attacker(self, ip: IPv4, candidates: Sequence[Backend], now: float, checksums_ok: bool) -> None:
        self._carry_out(self.table.from_attacker(ip, candidates, now, checksums_ok), now)

    def from_backend(self, ip: IPv4, now: float, checksums_ok: bool) -> None:
        self._carry_out(self.table.from_backend(ip, now, checksums_ok), now)

    def sweep(self, now: float) -> None:
        """Forget expired flows and attackers, at most once every EXPIRE_EVERY seconds."""
        if now >= self._next_sweep:
            self._next_sweep = now + EXPIRE_EVERY
            self._carry_out(self.table.expire(now), now)

    def _carry_out(self, outputs: list[Output], now: float) -> None:
        event = self.observer.event
        for out in outputs:
            kind = type(out)
            if kind is Relay:
                self._send(out)  # type: ignore[arg-type]
            elif kind is Redirected:
                r: Redirected = out  # type: ignore[assignment]
                b = r.backend
                detail = f"{b.name} ({ipaddress.IPv4Address(b.ip)})"
                data = {"backend": b.name, "backend_ip": str(ipaddress.IPv4Address(b.ip)), "sticky": r.sticky}
                event(
                    "tcp", r.attacker, r.attacker_port, r.vhost, r.port, Kind.REDIRECT, detail, now, data=data
                )
            elif kind is Outbound:
                o: Outbound = out  # type: ignore[assignment]
                limit = self.settings.outbound_per_hour
                proto = _PROTO_NAMES.get(o.proto, str(o.proto))
                if o.verdict == "dropped":
                    limit = DROPS_LOGGED_PER_HOUR
                data = {"backend": o.backend.name, "used": o.used, "limit": limit}
                event(proto, o.backend.ip, o.sport, o.dst, o.dport, Kind.OUTBOUND, o.verdict, now, data=data)
                log.warning(
                    "backend %s sent %s to %s:%d: %s (%d of %d this hour)",
                    o.backend.name,
                    proto,
                    ipaddress.IPv4Address(o.dst),
                    o.dport,
                    o.verdict,
                    o.used,
                    limit,
                )
            elif kind is OutboundData:
                d: OutboundData = out  # type: ignore[assignment]
                data = {"backend": d.backend.name, "bytes": d.total, "excerpt": excerpt(d.data)}
                event(
                    "tcp",
                    d.backend.ip,
                    d.sport,
                    d.dst,
                    d.dport,
                    Kind.OUTBOUND_DATA,
                    f"{d.total} bytes",
                    now,
                    data=data,
                )

    def _send(self, relay: Relay) -> None:
        if relay.backend is not None:
            self.send(relay.backend.mac + self.own_mac + b"\x08\x00" + relay.packet)
            return
        dst_mac, src_mac = self.neighbour(relay.dst), self.host_mac(relay.vhost)
        if dst_mac is None or src_mac is None:
            self.counters["redirect: no neighbour"] += 1
            return
        self.send(dst_mac + src_mac + b"\x08\x00" + relay.packet)
