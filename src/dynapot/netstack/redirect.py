"""Transparent, sticky redirect to real backends, and containment of what they start: sans-IO NAT.

The sensor is the backends' gateway. An attacker's TCP connection to a redirected port of a
virtual host is relayed to a backend *with the attacker's own source address*: only the
destination changes (virtual host -> backend), and the backend's replies, which come back
through the sensor, have their source changed back (backend -> virtual host). The backend sees
the attacker (`who`, `last`, `ss` show it); the attacker sees the virtual host's address, but
the backend's TCP stack, TTL and timing (which is why the planner matches OS groups).

`RedirectTable` is fed IPv4 packets and returns what to send (`Relay`) and what happened
(`Redirected`, `Outbound`, `OutboundData`); it never touches a socket or a clock.

- **Flows**: one per attacker connection (5-tuple <-> backend), at most `max_flows`; a flow
  idle for `idle_timeout` (or `CLOSED_LINGER` after a RST or both FINs) is forgotten, and when
  the table is full the idlest goes (counted).
- **Stickiness**: an attacker's first redirected connection picks a backend (the planned one
  for that port); the attacker keeps it, across ports and virtual hosts of the same OS, for
  `sticky_seconds` after its latest connection (at most `max_attackers` remembered).
- **Containment** (the Honeywall's data control): a packet from a backend that belongs to no
  relayed flow never leaves. A connection the backend starts (a SYN) is reported (`Outbound`);
  the first `outbound_per_hour` of them per backend are answered by a sinkhole that accepts
  the connection and keeps its first `sinkhole_bytes` (so `wget` appears to connect and its
  request is captured, `OutboundData`); beyond the limit the SYN is refused with a RST.
  Everything else a backend sends on its own is dropped. Every drop is counted.

Checksums: a rewritten address changes the IP header checksum (recomputed) and the TCP checksum
(updated incrementally, RFC 1624, so that a segment that arrived with a bad checksum keeps it);
a segment whose checksum the kernel had not finished (`checksums_ok=False`) is summed whole.
TTLs are left as they are: the virtual host is on-link, and a router would give itself away.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from dynapot.netstack.packets import build_tcp_packet, checksum
from dynapot.netstack.types import IPPROTO_TCP, IPv4, TcpFlags

CLOSED_LINGER = 10.0  # seconds a flow is kept after its RST or second FIN (late segments)
SINKHOLE_IDLE = 60.0  # seconds a silent sinkhole connection is kept
SINKHOLE_MAX = 1024  # sinkhole connections at once, all backends together
DROPS_LOGGED_PER_HOUR = 100  # a backend's dropped non-TCP packets reported per hour; the rest counted
HOUR = 3600.0

_SYN, _ACK, _FIN, _RST = int(TcpFlags.SYN), int(TcpFlags.ACK), int(TcpFlags.FIN), int(TcpFlags.RST)
_H = struct.Struct("!H")
_MSS_1460 = b"\x02\x04\x05\xb4"


@dataclass(frozen=True, slots=True)
class Backend:
    """A real machine attackers are relayed to."""

    name: str
    ip: int
    mac: bytes


@dataclass(frozen=True, slots=True)
class RedirectLimits:
    sticky_seconds: float = 3600.0
    max_flows: int = 65_536
    flows_per_attacker: int = 256
    max_attackers: int = 65_536
    idle_timeout: float = 900.0
    outbound_per_hour: int = 10
    sinkhole_bytes: int = 4096


@dataclass(frozen=True, slots=True)
class Relay:
    """An IPv4 packet to send. Toward a backend (`backend` set): to its MAC, from the sensor's own.
    Toward an attacker: to `dst`'s MAC (the neighbour table), from virtual host `vhost`'s MAC."""

    packet: bytes
    dst: int
    backend: Backend | None = None
    vhost: int = 0


@dataclass(frozen=True, slots=True)
class Redirected:
    """A new attacker connection relayed to a backend; `sticky`: the attacker's backend from before."""

    attacker: int
    attacker_port: int
    vhost: int
    port: int
    backend: Backend
    sticky: bool


@dataclass(frozen=True, slots=True)
class Outbound:
    """Something a backend started itself: a TCP connection "sinkholed" (answered by the
    sinkhole) or "refused" (beyond the hourly limit), or another protocol's packet "dropped"."""

    backend: Backend
    sport: int
    dst: int
    dport: int
    verdict: str
    used: int  # outbound connections (or dropped packets reported) of this backend this hour
    proto: int = IPPROTO_TCP


@dataclass(frozen=True, slots=True)
class OutboundData:
    """What the sinkhole kept of one outbound connection (at most `sinkhole_bytes`), when it ended."""

    backend: Backend
    sport: int
    dst: int
    dport: int
    data: bytes
    total: int  # bytes the backend sent in all


Output = Relay | Redirected | Outbound | OutboundData


class _Flow:
    __slots__ = ("aport", "attacker", "backend", "expires", "fins", "port", "vhost")

    def __init__(
        self, attacker: int, aport: int, vhost: int, port: int, backend: Backend, expires: float
    ) -> None:
        self.attacker, self.aport, self.vhost, self.port = attacker, aport, vhost, port
        self.backend, self.expires = backend, expires
        self.fins = 0  # bit 1: the attacker's FIN seen, bit 2: the backend's


class _Sink:
    """The sinkhole's side of one outbound connection: accept, acknowledge, keep the first bytes."""

    __slots__ = ("data", "expires", "rcv_nxt", "snd_nxt", "total")

    def __init__(self, isn: int, rcv_nxt: int, expires: float) -> None:
        self.snd_nxt, self.rcv_nxt, self.expires = isn, rcv_nxt, expires
        self.data = bytearray()
        self.total = 0


def _fold_adjust(csum: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: the checksum `csum` with 32-bit word `old` replaced by `new`."""
    x = (~csum & 0xFFFF) + (~old >> 16 & 0xFFFF) + (~old & 0xFFFF) + (new >> 16) + (new & 0xFFFF)
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return ~x & 0xFFFF


def _rewrite(ip: IPv4, src: int, dst: int, checksums_ok: bool) -> bytes:
    """`ip` (TCP, unfragmented) from `src` to `dst`, both checksums right for the new addresses."""
    header = bytearray(ip.header)
    header[12:20] = src.to_bytes(4, "big") + dst.to_bytes(4, "big")
    header[10:12] = b"\0\0"
    header[10:12] = _H.pack(checksum(bytes(header)))
    tcp = bytearray(ip.payload)
    if checksums_ok:
        (old,) = _H.unpack_from(tcp, 16)
        new = _fold_adjust(_fold_adjust(old, ip.src, src), ip.dst, dst)
    else:
        tcp[16:18] = b"\0\0"
        pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + IPPROTO_TCP + len(tcp)
        new = checksum(bytes(tcp), pseudo)
    tcp[16:18] = _H.pack(new)
    return bytes(header) + bytes(tcp)


class RedirectTable:
    """The NAT state of one sensor: relayed flows, sticky attackers, the backends' outbound budgets."""

    def __init__(self, backends: Sequence[Backend], limits: RedirectLimits, secret: bytes = b"") -> None:
        self.limits = limits
        self.backends = {b.ip: b for b in backends}
        self.counters: Counter[str] = Counter()
        self._flows: OrderedDict[tuple[int, int, int, int], _Flow] = OrderedDict()  # attacker side
        self._replies: dict[tuple[int, int, int, int], _Flow] = {}  # backend side
        self._sticky: OrderedDict[int, tuple[Backend, float]] = OrderedDict()
        self._sinks: OrderedDict[tuple[int, int, int, int], _Sink] = OrderedDict()
        self._outbound: dict[int, deque[float]] = {}
        self._drops_logged: dict[int, deque[float]] = {}
        self._per_attacker: Counter[int] = Counter()
        self.own: frozenset[int] = frozenset()  # the sensor's own addresses: the kernel's traffic
        self._secret = secret

    def __len__(self) -> int:
        return len(self._flows)

    def health(self) -> dict[str, int]:
        return {"flows": len(self._flows), "attackers": len(self._sticky), "sinkholed": len(self._sinks)}

    def backend_of(self, attacker: int, now: float) -> Backend | None:
        """The backend `attacker` sticks to now, if any."""
        found = self._sticky.get(attacker)
        return found[0] if found is not None and found[1] >= now else None

    # ------------------------------------------------------------------ attacker -> backend

    def from_attacker(
        self, ip: IPv4, candidates: Sequence[Backend], now: float, checksums_ok: bool = True
    ) -> list[Output]:
        """A TCP packet from an attacker to a redirected port (`candidates`: the backends that may
        serve it, the planned one first). A segment of no flow that is not a SYN is dropped (the
        backend would answer it with a RST; so does silence, at less cost)."""
        tcp = ip.payload
        if ip.mf or ip.frag_offset or len(tcp) < 20:
            self.counters["redirect: fragment or truncated"] += 1
            return []
        sport, dport = tcp[0] << 8 | tcp[1], tcp[2] << 8 | tcp[3]
        flags = tcp[13]
        key = (ip.src, sport, ip.dst, dport)
        flow = self._flows.get(key)
        if flow is not None and flow.expires < now:
            self._forget(key, flow)
            flow = None
        out: list[Output] = []
        if flow is None:
            if flags & (_SYN | _ACK | _RST) != _SYN or not candidates:
                self.counters["redirect: segment of no flow"] += 1
                return out
            flow = self._open(ip.src, sport, ip.dst, dport, candidates, now, out)
            if flow is None:
                return out
        else:
            self._flows.move_to_end(key)
        self._track(flow, flags, 1, now)
        out.append(Relay(_rewrite(ip, ip.src, flow.backend.ip, checksums_ok), flow.backend.ip, flow.backend))
        return out

    def _open(
        self,
        attacker: int,
        aport: int,
        vhost: int,
        port: int,
        candidates: Sequence[Backend],
        now: float,
        out: list[Output],
    ) -> _Flow | None:
        self._expire(now)
        stuck = self.backend_of(attacker, now)
        backend = stuck if stuck is not None and stuck in candidates else candidates[0]
        reply_key = (backend.ip, port, attacker, aport)
        if reply_key in self._replies:  # the same attacker port to two hosts on one backend port
            self.counters["redirect: port clash"] += 1
            return None
        if self._per_attacker[attacker] >= self.limits.flows_per_attacker:
            self.counters["redirect: attacker at its flow limit"] += 1
            return None
        if len(self._flows) >= self.limits.max_flows:
            key, idlest = next(iter(self._flows.items()))
            self._forget(key, idlest)
            self.counters["redirect: flow evicted"] += 1
        flow = _Flow(attacker, aport, vhost, port, backend, now + self.limits.idle_timeout)
        self._flows[(attacker, aport, vhost, port)] = flow
        self._replies[reply_key] = flow
        self._per_attacker[attacker] += 1
        self._stick(attacker, backend, now)
        out.append(Redirected(attacker, aport, vhost, port, backend, stuck == backend))
        return flow

    def _stick(self, attacker: int, backend: Backend, now: float) -> None:
        sticky = self._sticky
        sticky[attacker] = (backend, now + self.limits.sticky_seconds)
        sticky.move_to_end(attacker)
        while len(sticky) > self.limits.max_attackers:
            sticky.popitem(last=False)
            self.counters["redirect: attacker forgotten (table full)"] += 1

    def _track(self, flow: _Flow, flags: int, side: int, now: float) -> None:
        if flags & _RST:
            flow.expires = now + CLOSED_LINGER
            return
        if flags & _FIN:
            flow.fins |= side
        flow.expires = now + (CLOSED_LINGER if flow.fins == 3 else self.limits.idle_timeout)

    def _forget(self, key: tuple[int, int, int, int], flow: _Flow) -> None:
        if self._flows.pop(key, None) is None:
            return
        self._replies.pop((flow.backend.ip, flow.port, flow.attacker, flow.aport), None)
        left = self._per_attacker[flow.attacker] - 1
        if left > 0:
            self._per_attacker[flow.attacker] = left
        else:
            del self._per_attacker[flow.attacker]

    def _expire(self, now: float) -> None:
        """Forget the flows at the idle end of the table that have expired."""
        flows = self._flows
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.expires >= now:
                break
            self._forget(key, flow)

    # ------------------------------------------------------------------ backend -> anyone

    def from_backend(self, ip: IPv4, now: float, checksums_ok: bool = True) -> list[Output]:
        """A packet a backend sent through its gateway (the sensor): a reply of a relayed flow goes
        back to its attacker from the virtual host's address; anything else is contained."""
        backend = self.backends.get(ip.src)
        if backend is None or ip.dst in self.own:
            return []  # the sensor's kernel talking to the backend (a health check) is the kernel's
        if ip.proto != IPPROTO_TCP:
            return self._dropped(backend, ip, now)
        tcp = ip.payload
        if ip.mf or ip.frag_offset or len(tcp) < 20:
            self.counters["containment: fragment or truncated dropped"] += 1
            return []
        sport, dport = tcp[0] << 8 | tcp[1], tcp[2] << 8 | tcp[3]
        flow = self._replies.get((ip.src, sport, ip.dst, dport))
        if flow is not None and flow.expires >= now:
            self._track(flow, tcp[13], 2, now)
            packet = _rewrite(ip, flow.vhost, ip.dst, checksums_ok)
            return [Relay(packet, flow.attacker, vhost=flow.vhost)]
        return self._contain(backend, ip, sport, dport, now)

    def _dropped(self, backend: Backend, ip: IPv4, now: float) -> list[Output]:
        """A backend's packet of another protocol (DNS, ICMP, ...): never sent on; the first
        DROPS_LOGGED_PER_HOUR an hour reported, all counted."""
        self.counters[f"containment: protocol {ip.proto} dropped"] += 1
        logged = self._drops_logged.setdefault(backend.ip, deque())
        while logged and logged[0] <= now - HOUR:
            logged.popleft()
        if len(logged) >= DROPS_LOGGED_PER_HOUR:
            return []
        logged.append(now)
        body = ip.payload
        ports = (
            (body[0] << 8 | body[1], body[2] << 8 | body[3]) if ip.proto == 17 and len(body) >= 4 else (0, 0)
        )
        return [Outbound(backend, ports[0], ip.dst, ports[1], "dropped", len(logged), ip.proto)]

    def _contain(self, backend: Backend, ip: IPv4, sport: int, dport: int, now: float) -> list[Output]:
        tcp = ip.payload
        flags = tcp[13]
        seq = int.from_bytes(tcp[4:8], "big")
        key = (ip.src, sport, ip.dst, dport)
        sink = self._sinks.get(key)
        if sink is not None:
            return self._sink_segment(backend, key, sink, ip, seq, flags, now)
        if flags & (_SYN | _ACK | _RST) != _SYN:
            self.counters["containment: segment of no connection dropped"] += 1
            return []
        recent = self._outbound.setdefault(backend.ip, deque())
        while recent and recent[0] <= now - HOUR:
            recent.popleft()
        if len(recent) >= self.limits.outbound_per_hour:
            self.counters["containment: outbound refused"] += 1
            rst = build_tcp_packet(ip.dst, ip.src, dport, sport, 0, seq + 1, _RST | _ACK, 0, 64, 0, True)
            return [
                Outbound(backend, sport, ip.dst, dport, "refused", len(recent) + 1),
                Relay(rst, ip.src, backend),
            ]
        recent.append(now)
        out = self._expire_sinks(now)
        if len(self._sinks) >= SINKHOLE_MAX:
            old_key, old = self._sinks.popitem(last=False)
            self.counters["containment: sinkhole connection evicted"] += 1
            out.extend(self._captured(self.backends[old_key[0]], old_key, old) if old.total else ())
        self.counters["containment: outbound sinkholed"] += 1
        isn = int.from_bytes(
            hashlib.blake2b(struct.pack("!IHIHd", *key, now), key=self._secret[:64], digest_size=4).digest(),
            "big",
        )
        self._sinks[key] = _Sink((isn + 1) & 0xFFFFFFFF, (seq + 1) & 0xFFFFFFFF, now + SINKHOLE_IDLE)
        synack = build_tcp_packet(
            ip.dst, ip.src, dport, sport, isn, seq + 1, _SYN | _ACK, 64240, 64, 0, True, _MSS_1460
        )
        out += [
            Outbound(backend, sport, ip.dst, dport, "sinkholed", len(recent)),
            Relay(synack, ip.src, backend),
        ]
        return out

    def _sink_segment(
        self,
        backend: Backend,
        key: tuple[int, int, int, int],
        sink: _Sink,
        ip: IPv4,
        seq: int,
        flags: int,
        now: float,
    ) -> list[Output]:
        _, sport, dst, dport = key
        if flags & _RST:
            del self._sinks[key]
            return self._captured(backend, key, sink)
        tcp = ip.payload
        offset = (tcp[12] >> 4) * 4
        data = tcp[offset:] if 20 <= offset <= len(tcp) else b""
        sink.expires = now + SINKHOLE_IDLE
        if data and seq == sink.rcv_nxt:
            room = self.limits.sinkhole_bytes - len(sink.data)
            if room > 0:
                sink.data += data[:room]
            sink.total += len(data)
            sink.rcv_nxt = (sink.rcv_nxt + len(data)) & 0xFFFFFFFF
        out: list[Output] = []
        if flags & _FIN and (seq + len(data)) & 0xFFFFFFFF == sink.rcv_nxt:
            sink.rcv_nxt = (sink.rcv_nxt + 1) & 0xFFFFFFFF
            fin = build_tcp_packet(
                dst, ip.src, dport, sport, sink.snd_nxt, sink.rcv_nxt, _FIN | _ACK, 64240, 64, 0, True
            )
            del self._sinks[key]
            out.append(Relay(fin, ip.src, backend))
            out.extend(self._captured(backend, key, sink))
            return out
        if data or flags & _FIN:
            ack = build_tcp_packet(
                dst, ip.src, dport, sport, sink.snd_nxt, sink.rcv_nxt, _ACK, 64240, 64, 0, True
            )
            out.append(Relay(ack, ip.src, backend))
        return out

    def _captured(self, backend: Backend, key: tuple[int, int, int, int], sink: _Sink) -> list[Output]:
        _, sport, dst, dport = key
        return [OutboundData(backend, sport, dst, dport, bytes(sink.data), sink.total)]

    def _expire_sinks(self, now: float) -> list[Output]:
        out: list[Output] = []
        for key in [k for k, s in self._sinks.items() if s.expires < now]:
            sink = self._sinks.pop(key)
            backend = self.backends.get(key[0])
            if backend is not None and sink.total:
                out.extend(self._captured(backend, key, sink))
        return out

    def expire(self, now: float) -> list[Output]:
        """Forget what has expired (call now and then: it looks at every entry); returns what silent
        sinkhole connections kept."""
        for key, flow in [(k, f) for k, f in self._flows.items() if f.expires < now]:
            self._forget(key, flow)
        for attacker in [a for a, (_, until) in self._sticky.items() if until < now]:
            del self._sticky[attacker]
        return self._expire_sinks(now)
