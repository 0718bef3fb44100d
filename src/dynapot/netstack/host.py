"""One virtual host's stack: dispatch IPv4 packets to TCP/UDP/ICMP, keep a bounded flow table.

`HostStack.receive(ip, now)` takes a parsed IPv4 packet addressed to the host and
returns outputs (`events`): `SendPacket` (a complete IPv4 packet; the sensor adds the
Ethernet header with the host's MAC and the peer MAC from its neighbour table) and
events for every SYN/probe, connection, datagram, echo and dropped packet.

Port policy: a callable ``(proto, port) -> Verdict`` (`PortPolicy` is the table
form); for ICMP the "port" is the ICMP type, so ``(IPPROTO_ICMP, 8)`` decides pings.
OPEN accepts (TCP handshake, UDP delivered as `DatagramReceived`, echo answered by
the personality); CLOSED answers as the personality says (RST, port unreachable);
BLOCK is silence.

Flow table and SYN floods.  Flows are keyed per host by one int
``peer_ip << 32 | peer_port << 16 | local_port``.  A `StackContext` shared by all
hosts of a sensor bounds them: half-open (SYN_RCVD) connections per host and in
total, connections per source address, and all connections in total.  A SYN that would
exceed a half-open cap evicts the *oldest* half-open connection (quietly: no RST, which
would only be backscatter to spoofed sources); one that would exceed its source's cap
evicts that source's least recently active connection (one source cannot hold the table
for the others); one that would exceed the total evicts the oldest TIME_WAIT, else the
oldest half-open, else the least recently active connection if it has been idle for
`min_idle_to_evict`, else is dropped (`TcpProbe` verdict "full").  SYN cookies were rejected because
the ISN belongs to the personality (nmap measures ISN rate and GCD).  The context
also owns the timer queue: a heap of (deadline, n, host, conn) with lazy deletion,
compacted when stale entries outnumber live ones, so memory stays bounded too.

Application calls go through the connection (`conn.send(data, now)`, `close`,
`abort`, `consume`); it reports back to its host, which updates the table and timers.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeAlias

from dynapot.netstack.events import (
    DatagramReceived,
    EchoRequest,
    HostEvent,
    IcmpReceived,
    PacketDropped,
    SendPacket,
    TcpProbe,
    UdpProbe,
)
from dynapot.netstack.neutral import NeutralPersonality
from dynapot.netstack.packets import (
    Malformed,
    build_ipv4,
    build_udp_packet,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)
from dynapot.netstack.personality import Personality, TcpReply
from dynapot.netstack.tcp import (
    DEFAULT_CONFIG,
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpState,
    reply_packet,
    tarpit_reply,
)
from dynapot.netstack.types import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TcpFlags, TcpSegment

__all__ = ["HostStack", "Output", "PortPolicy", "StackContext", "StackLimits", "Verdict"]

# Everything a call into a host's stack may return, in order.
Output: TypeAlias = SendPacket | TcpEvent | HostEvent

_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_RST = int(TcpFlags.RST)
_FIN = int(TcpFlags.FIN)
_SYN_RCVD = TcpState.SYN_RCVD
_TIME_WAIT = TcpState.TIME_WAIT
_CLOSED = TcpState.CLOSED
_BAD_SOURCE = "bad source"
_FRAGMENT = "ip: fragment"


def _sent_syn_ack(frame: bytes) -> tuple[int, TcpReply] | None:
    """The ISN and shape of a SYN/ACK the sensor's receive thread sent (a whole Ethernet frame)."""
    ip = parse_ipv4(frame[14:], False)
    if type(ip) is Malformed:
        return None
    seg = parse_tcp(ip, False)
    if type(seg) is Malformed:
        return None
    return seg.seq, TcpReply(
        seg.flags, seg.window, seg.options_raw, seg.seq, seg.ack, ip.ttl, ip.df, ip.ident,
        seg.urgent, seg.reserved, seg.payload,
    )  # fmt: skip


class Verdict(StrEnum):
    OPEN = "open"
    TARPIT = "tarpit"  # open, and every connection crawls (honeyd's `tarpit`)
    CLOSED = "closed"
    BLOCK = "block"


class PortPolicy:
    """A port table with per-protocol defaults; ICMP entries are keyed by ICMP type."""

    __slots__ = ("defaults", "table")

    def __init__(
        self,
        table: Mapping[tuple[int, int], Verdict] | None = None,
        *,
        tcp: Verdict = Verdict.CLOSED,
        udp: Verdict = Verdict.CLOSED,
        icmp_echo: bool = True,
    ) -> None:
        self.table: dict[tuple[int, int], Verdict] = dict(table or {})
        self.defaults = {IPPROTO_TCP: tcp, IPPROTO_UDP: udp, IPPROTO_ICMP: Verdict.BLOCK}
        self.table.setdefault((IPPROTO_ICMP, 8), Verdict.OPEN if icmp_echo else Verdict.BLOCK)

    @classmethod
    def open_tcp(cls, *ports: int, udp: tuple[int, ...] = (), icmp_echo: bool = True) -> PortPolicy:
        """Listed TCP/UDP ports open, every other port closed."""
        table = {(IPPROTO_TCP, p): Verdict.OPEN for p in ports}
        table.update({(IPPROTO_UDP, p): Verdict.OPEN for p in udp})
        return cls(table, icmp_echo=icmp_echo)

    def __call__(self, proto: int, port: int) -> Verdict:
        v = self.table.get((proto, port))
        return v if v is not None else self.defaults.get(proto, Verdict.BLOCK)


@dataclass(frozen=True, slots=True)
class StackLimits:
    """Caps on flow-table state (about 270 B per connection entry, DESIGN)."""

    max_half_open_per_host: int = 256
    max_half_open: int = 16384
    max_connections: int = 65536
    max_connections_per_source: int = 16384  # one source's connections; its least recently active goes
    min_idle_to_evict: float = 10.0  # seconds: a full table evicts the least recent connection this idle


class StackContext:
    """What all host stacks of one sensor share: limits, flow accounting and the timer queue."""

    __slots__ = (
        "_counter",
        "_heap",
        "by_source",
        "connections",
        "half_open",
        "limits",
        "recent",
        "tarpit_config",
        "tcp_config",
        "time_wait",
    )

    def __init__(self, limits: StackLimits | None = None, tcp_config: TcpConfig = DEFAULT_CONFIG) -> None:
        self.limits = limits or StackLimits()
        self.tcp_config = tcp_config
        self.tarpit_config = replace(tcp_config, tarpit=True)
        self.connections = 0  # live (not CLOSED) connections of all hosts
        self.half_open: OrderedDict[TcpConnection, HostStack] = OrderedDict()
        self.time_wait: OrderedDict[TcpConnection, HostStack] = OrderedDict()
        # Live connections, least recently active first: all of them, and per source address.
        self.recent: OrderedDict[TcpConnection, HostStack] = OrderedDict()
        self.by_source: dict[int, OrderedDict[TcpConnection, HostStack]] = {}
        self._heap: list[tuple[float, int, HostStack, TcpConnection]] = []
        self._counter = 0

    def next_deadline(self) -> float | None:
        """The earliest time `on_timer` may have work (possibly early, never late)."""
        return self._heap[0][0] if self._heap else None

    def on_timer(self, now: float) -> list[Output]:
        """Run every connection timer due at `now`, for all hosts."""
        out: list[Output] = []
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        for d, _, host, conn in due:
            if conn.sched != d:
                continue  # superseded by an earlier entry
            conn.sched = None
            if conn.state is _CLOSED:
                continue
            dl = conn.deadline
            if dl is None:
                continue
            if dl > now:
                self._push(dl, host, conn)
                continue
            old = conn.state
            out += conn.on_timer(now)
            host._track(conn, old, now)
        return out

    def _push(self, deadline: float, host: HostStack, conn: TcpConnection) -> None:
        self._counter += 1
        conn.sched = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, self._counter, host, conn))
        if len(heap) > 2 * self.connections + 1024:
            # drop entries of closed or rescheduled connections so dead flows are freed
            live = [e for e in heap if e[3].sched == e[0] and e[3].state is not _CLOSED]
            heapq.heapify(live)
            self._heap = live


class HostStack:
    """One virtual host: address, personality, port policy and its TCP flows."""

    __slots__ = ("context", "flows", "half_open", "ip", "mac", "personality", "policy")

    def __init__(
        self,
        ip: int,
        mac: bytes,
        personality: Personality | None = None,
        policy: Callable[[int, int], Verdict] | None = None,
        context: StackContext | None = None,
    ) -> None:
        self.ip = ip
        self.mac = mac
        self.personality: Personality = personality if personality is not None else NeutralPersonality()
        self.policy: Callable[[int, int], Verdict] = policy if policy is not None else PortPolicy()
        self.context = context if context is not None else StackContext()
        self.flows: dict[int, TcpConnection] = {}
        self.half_open: OrderedDict[int, TcpConnection] = OrderedDict()

    # ------------------------------------------------------------------ entry points

    def receive(
        self, ip: IPv4, now: float, verify_checksums: bool = True, answered: bytes | None = None
    ) -> list[Output]:
        """Handle one IPv4 packet for this host (fragments and spoofed sources are dropped).
        `answered`: the frame the sensor's receive thread already sent in reply (an echo reply,
        or a SYN/ACK whose connection this stack then adopts)."""
        src = ip.src
        if ip.mf or ip.frag_offset:
            return [PacketDropped(self.ip, src, ip.proto, _FRAGMENT)]
        if ip.dst != self.ip:
            return [PacketDropped(self.ip, src, ip.proto, "not for this host")]
        top = src >> 24
        if top == 0 or top == 127 or top >= 224 or src == self.ip:
            # never answer these: reflection (smurf-like) and LAND tricks
            return [PacketDropped(self.ip, src, ip.proto, _BAD_SOURCE)]
        proto = ip.proto
        if proto == IPPROTO_TCP:
            return self._receive_tcp(ip, now, verify_checksums, answered)
        if proto == IPPROTO_UDP:
            return self._receive_udp(ip, now, verify_checksums)
        if proto == IPPROTO_ICMP:
            return self._receive_icmp(ip, now, verify_checksums, answered)
        return [PacketDropped(self.ip, src, proto, "unsupported protocol")]

    def on_timer(self, now: float) -> list[Output]:
        """Run due timers (of every host sharing this host's context)."""
        return self.context.on_timer(now)

    def next_deadline(self) -> float | None:
        return self.context.next_deadline()

    def send_udp(
        self, peer_ip: int, peer_port: int, local_port: int, data: bytes, now: float
    ) -> list[Output]:
        """A datagram from this host (IP ID and DF from the personality's segment shape)."""
        p = self.personality
        shape = p.segment_shape(now, None)
        packet = build_udp_packet(self.ip, peer_ip, local_port, peer_port, data, p.ttl, shape.ip_id, shape.df)
        return [SendPacket(self.ip, peer_ip, packet)]

    def connection(self, peer_ip: int, peer_port: int, local_port: int) -> TcpConnection | None:
        return self.flows.get(peer_ip << 32 | peer_port << 16 | local_port)

    def close_all(self, now: float) -> list[Output]:
        """Forget every flow quietly (the host is being removed or its address released)."""
        out: list[Output] = []
        for conn in list(self.flows.values()):
            old = conn.state
            out += conn.evict(now)
            self._track(conn, old, now)
        return out

    # ------------------------------------------------------------------ TCP

    def _receive_tcp(self, ip: IPv4, now: float, verify: bool, answered: bytes | None = None) -> list[Output]:
        seg = parse_tcp(ip, verify)
        if type(seg) is Malformed:
            return [PacketDropped(self.ip, ip.src, IPPROTO_TCP, str(seg))]
        assert type(seg) is TcpSegment
        key = ip.src << 32 | seg.sport << 16 | seg.dport
        flags = seg.flags
        conn = self.flows.get(key)
        restarted = False
        if answered is not None and conn is not None:
            # The thread answered a SYN for a flow we still hold (it had forgotten that 4-tuple):
            # the peer now has the thread's SYN/ACK, so the old flow ends and this one starts.
            old = conn.state
            restarted = old is _SYN_RCVD  # the same connection attempt: logged once already
            out = conn.evict(now)
            self._track(conn, old, now)
            conn = None
            out = [o for o in out if type(o) is not SendPacket]
        elif conn is not None:
            old = conn.state
            if not (old is _TIME_WAIT and flags & (_SYN | _ACK | _RST) == _SYN):
                out = conn.receive_segment(seg, now)
                self._track(conn, old, now)
                return out
            # a new SYN on a flow in TIME_WAIT starts a new incarnation
            out = conn.evict(now)
            self._track(conn, old, now)
        else:
            out = []
        verdict = self.policy(IPPROTO_TCP, seg.dport)
        if verdict == Verdict.OPEN or verdict == Verdict.TARPIT:  # == : a policy may answer "open"
            if flags & (_SYN | _ACK | _RST | _FIN) == _SYN:
                self._accept(seg, key, now, out, answered, tarpit=verdict == Verdict.TARPIT)
                return [o for o in out if type(o) is not TcpProbe] if restarted else out
            reply = None if flags & _RST else self.personality.open_port_stray(seg, now)
            kind = "stray"
        elif verdict == Verdict.CLOSED:
            reply = None if flags & _RST else self.personality.closed_port(seg, now)
            kind = "closed"
        else:
            out.append(TcpProbe(self.ip, seg.dport, ip.src, seg.sport, flags, "blocked", False))
            return out
        if reply is not None:
            out.append(SendPacket(self.ip, ip.src, self._stateless_reply(seg, reply)))
        out.append(TcpProbe(self.ip, seg.dport, ip.src, seg.sport, flags, kind, reply is not None))
        return out

    def _stateless_reply(self, seg: TcpSegment, reply: TcpReply) -> bytes:
        flags = seg.flags
        seq = reply.seq
        if seq is None:  # RFC 9293 reset generation
            seq = seg.ack if flags & _ACK else 0
        if reply.ack is not None:
            ack = reply.ack
        else:
            ack = seg.seq + len(seg.payload) + (1 if flags & _SYN else 0) + (1 if flags & _FIN else 0)
        return reply_packet(reply, self.ip, seg.ip.src, seg.dport, seg.sport, seq, ack)

    def _accept(
        self,
        seg: TcpSegment,
        key: int,
        now: float,
        out: list[Output],
        answered: bytes | None = None,
        *,
        tarpit: bool = False,
    ) -> None:
        ctx = self.context
        limits = ctx.limits
        if len(self.half_open) >= limits.max_half_open_per_host:
            self._evict(next(iter(self.half_open.values())), now, out)
        if len(ctx.half_open) >= limits.max_half_open:
            victim, owner = next(iter(ctx.half_open.items()))
            owner._evict(victim, now, out)
        mine = ctx.by_source.get(seg.ip.src)
        if mine is not None and len(mine) >= limits.max_connections_per_source:
            # One source may not hold the table: its own least recently active connection goes.
            victim, owner = next(iter(mine.items()))
            owner._evict(victim, now, out)
        if ctx.connections >= limits.max_connections:
            if ctx.time_wait:
                victim, owner = next(iter(ctx.time_wait.items()))
            elif ctx.half_open:
                victim, owner = next(iter(ctx.half_open.items()))
            else:
                victim, owner = next(iter(ctx.recent.items()))
                if now - victim.last_rx < limits.min_idle_to_evict:
                    out.append(TcpProbe(self.ip, seg.dport, seg.ip.src, seg.sport, seg.flags, "full", False))
                    return
            owner._evict(victim, now, out)
        p = self.personality
        sent = _sent_syn_ack(answered) if answered is not None else None
        if sent is not None:
            isn, reply = sent  # the receive thread's SYN/ACK, already on the wire
        else:
            isn = p.isn(now)
            reply = p.syn_ack(seg, isn, now)
        if reply is None:
            out.append(TcpProbe(self.ip, seg.dport, seg.ip.src, seg.sport, seg.flags, "silent", False))
            return
        config = ctx.tcp_config
        if tarpit:
            reply, config = tarpit_reply(reply), ctx.tarpit_config
        conn = TcpConnection(self.ip, seg.dport, seg.ip.src, seg.sport, p, config)
        conn.owner = self
        opened = conn.open(seg, isn, reply, now)
        out += opened if sent is None else [o for o in opened if type(o) is not SendPacket]
        self.flows[key] = conn
        self.half_open[key] = conn
        ctx.half_open[conn] = self
        ctx.recent[conn] = self
        source = ctx.by_source.get(conn.peer_ip)
        if source is None:
            source = ctx.by_source[conn.peer_ip] = OrderedDict()
        source[conn] = self
        ctx.connections += 1
        dl = conn.deadline
        if dl is not None:
            ctx._push(dl, self, conn)
        out.append(TcpProbe(self.ip, seg.dport, seg.ip.src, seg.sport, seg.flags, "open", True))

    def _evict(self, conn: TcpConnection, now: float, out: list[Output]) -> None:
        old = conn.state
        out += conn.evict(now)
        self._track(conn, old, now)

    def _track(self, conn: TcpConnection, old: TcpState, now: float) -> None:
        """Book-keeping after any call into `conn`: state sets, the flow table, its timer."""
        state = conn.state
        ctx = self.context
        if state is not old:
            key = conn.peer_ip << 32 | conn.peer_port << 16 | conn.local_port
            if old is _SYN_RCVD:
                self.half_open.pop(key, None)
                ctx.half_open.pop(conn, None)
            elif old is _TIME_WAIT:
                ctx.time_wait.pop(conn, None)
            if state is _CLOSED:
                if self.flows.get(key) is conn:
                    del self.flows[key]
                ctx.connections -= 1
                conn.sched = None
                ctx.recent.pop(conn, None)
                source = ctx.by_source.get(conn.peer_ip)
                if source is not None:
                    source.pop(conn, None)
                    if not source:
                        del ctx.by_source[conn.peer_ip]
                return
            if state is _TIME_WAIT:
                ctx.time_wait[conn] = self
        elif state is _CLOSED:
            return  # an application call on a connection already over
        # Least recently active first: this one was just active (two O(1) moves per segment).
        ctx.recent.move_to_end(conn)
        ctx.by_source[conn.peer_ip].move_to_end(conn)
        dl = conn.deadline
        if dl is not None and (conn.sched is None or dl < conn.sched):
            ctx._push(dl, self, conn)

    # ------------------------------------------------------------------ UDP and ICMP

    def _receive_udp(self, ip: IPv4, now: float, verify: bool) -> list[Output]:
        dgram = parse_udp(ip, verify)
        if type(dgram) is Malformed:
            return [PacketDropped(self.ip, ip.src, IPPROTO_UDP, str(dgram))]
        assert not isinstance(dgram, Malformed)
        verdict = self.policy(IPPROTO_UDP, dgram.dport)
        if verdict == Verdict.OPEN:
            return [DatagramReceived(self.ip, dgram.dport, ip.src, dgram.sport, dgram.payload)]
        out: list[Output] = []
        replied = False
        if verdict == Verdict.CLOSED:
            reply = self.personality.udp_closed(dgram, now)
            if reply is not None:
                packet = build_ipv4(
                    self.ip, ip.src, reply.proto, reply.payload, reply.ttl, reply.ip_id, reply.df
                )
                out.append(SendPacket(self.ip, ip.src, packet))
                replied = True
        out.append(
            UdpProbe(self.ip, dgram.dport, ip.src, dgram.sport, str(verdict), replied, dgram.payload[:256])
        )
        return out

    def _receive_icmp(
        self, ip: IPv4, now: float, verify: bool, answered: bytes | None = None
    ) -> list[Output]:
        msg = parse_icmp(ip, verify)
        if type(msg) is Malformed:
            return [PacketDropped(self.ip, ip.src, IPPROTO_ICMP, str(msg))]
        assert not isinstance(msg, Malformed)
        if msg.type != 8:
            return [IcmpReceived(self.ip, ip.src, msg.type, msg.code)]
        if answered is not None:
            return [EchoRequest(self.ip, ip.src, msg.ident, msg.seq, True)]
        out: list[Output] = []
        replied = False
        if self.policy(IPPROTO_ICMP, 8) == Verdict.OPEN:
            reply = self.personality.echo_reply(msg, now)
            if reply is not None:
                packet = build_ipv4(
                    self.ip, ip.src, reply.proto, reply.payload, reply.ttl, reply.ip_id, reply.df, reply.tos
                )
                out.append(SendPacket(self.ip, ip.src, packet))
                replied = True
        out.append(EchoRequest(self.ip, ip.src, msg.ident, msg.seq, replied))
        return out
