"""The running sensor: one raw socket, one host stack per bound address, services on asyncio.

Packet path (kept short, it runs for every frame): parse Ethernet; ARP goes to the
responder; IPv4 addressed to a bound address goes to that host's sans-IO stack; the
outputs are frames to send (wrapped with the peer's MAC from the neighbour table) and
events (logged, or fed to the connection's service). Connection timers of all hosts
live in one heap (the stack's `StackContext`), driven by one asyncio timer handle.

Never steal an address: ARP from another machine for a bound address, or IPv4 from a
bound address with a foreign MAC, releases the address at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dynapot.discovery.p0f import P0fMatcher
from dynapot.honeyd.config import Action
from dynapot.netstack.arp import AddressConflict, ArpResponder, SendFrame, build_probe
from dynapot.netstack.events import (
    DatagramReceived,
    EchoRequest,
    IcmpReceived,
    PacketDropped,
    SendPacket,
    TcpProbe,
    UdpProbe,
)
from dynapot.netstack.host import HostStack, Output, StackContext, Verdict
from dynapot.netstack.packets import Malformed, parse_arp, parse_ethernet, parse_ipv4, parse_tcp
from dynapot.netstack.tcp import (
    ConnectionClosed,
    ConnectionEstablished,
    DataReceived,
    PeerClosed,
    TcpConnection,
)
from dynapot.netstack.types import ETH_P_ARP, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TcpFlags
from dynapot.personality.engine import compile_personality
from dynapot.personality.nmap_probes import PROBE_WINDOWS, classify_syn, classify_t, is_ecn_probe
from dynapot.sensor.actions import ScriptRunner, proxy
from dynapot.sensor.config import HostDefinition, SensorConfig
from dynapot.sensor.dataports import DataListener, SensorDataPorts, UdpBudget
from dynapot.sensor.events import Event, EventWriter
from dynapot.sensor.rawsock import RawSocket
from dynapot.sensor.streams import UserlandTransport, start_handler
from dynapot.services.contract import ConnectionInfo, DatagramService, Handler, Report, excerpt
from dynapot.services.identity import HostIdentity, identity_for
from dynapot.services.recorder import RECORD_LIMIT, record

log = logging.getLogger(__name__)

BROADCAST = b"\xff" * 6
NEIGHBOUR_LIMIT = 65536
SOURCE_MEMORY = 65536  # sources whose OS guess and scan tool we remember
NMAP_MEMORY = 300.0  # seconds a source stays "an nmap OS scan" after its last OS probe
NMAP_OS_SCAN = "nmap OS scan"
PROBE_RATE = 5000.0  # ARP probes per second at start-up
RELEASE_MEMORY = 300.0  # seconds an address given back to a real host is not claimed again
TIMER_SLACK = 0.005  # seconds a connection timer may fire late
PROBE_WAIT = 1.0  # seconds an address must stay unanswered before we claim it (RFC 5227 waits 1-2 s)
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_FLAG_LETTERS = "FSRPAUEC"


def _verdict(action: Action) -> Verdict:
    if action.kind in ("proxy", "service", "command", "open"):
        return Verdict.OPEN
    if action.kind in ("closed", "reset"):
        return Verdict.CLOSED
    return Verdict.BLOCK  # block, filtered: silence


def _identity(host: HostDefinition) -> tuple:
    """What makes a host the same machine to an observer: changing any of it is a new host."""
    return (host.mac, host.personality.name if host.personality else None, host.uptime)


_FLAG_TEXT = tuple(
    "".join(letter for bit, letter in enumerate(_FLAG_LETTERS) if flags >> bit & 1) or "-"
    for flags in range(256)
)


def _connection_info(
    proto: str,
    host: _Host,
    peer_ip: int,
    peer_port: int,
    local_port: int,
    action: Action | None,
    data_ports: SensorDataPorts | None,
) -> ConnectionInfo:
    """What a service learns of its connection: the peer, the virtual host, what it imitates."""
    definition = host.definition
    return ConnectionInfo(
        proto,
        str(IPv4Address(peer_ip)),
        peer_port,
        definition.address,
        local_port,
        definition.personality.name if definition.personality else None,
        definition.template,
        action.product if action is not None else None,
        action.version if action is not None else None,
        data_ports,
        definition.mac,
        host.identity,
    )


def flag_letters(flags: int) -> str:
    """tcpdump-style flag letters; a table, since every probe event needs them."""
    return _FLAG_TEXT[flags & 0xFF]


class _Policy:
    """The honeyd port actions of one host as the stack's (proto, port) -> Verdict callable."""

    __slots__ = ("_defaults", "_table")

    def __init__(self, host: HostDefinition) -> None:
        table = {(IPPROTO_TCP, port): _verdict(a) for port, a in host.tcp.items()}
        table.update({(IPPROTO_UDP, port): _verdict(a) for port, a in host.udp.items()})
        icmp = _verdict(host.default_icmp)
        table[(IPPROTO_ICMP, 8)] = Verdict.OPEN if icmp is Verdict.OPEN else Verdict.BLOCK
        self._table = table
        self._defaults = {
            IPPROTO_TCP: _verdict(host.default_tcp),
            IPPROTO_UDP: _verdict(host.default_udp),
            IPPROTO_ICMP: Verdict.BLOCK,
        }

    def __call__(self, proto: int, port: int) -> Verdict:
        verdict = self._table.get((proto, port))
        return verdict if verdict is not None else self._defaults.get(proto, Verdict.BLOCK)

    def open_tcp(self, port: int) -> Verdict | None:
        """Open a data port (FTP PASV) for a while; returns what it was, for `restore`."""
        before = self._table.get((IPPROTO_TCP, port))
        self._table[(IPPROTO_TCP, port)] = Verdict.OPEN
        return before

    def restore_tcp(self, port: int, before: Verdict | None) -> None:
        if before is None:
            self._table.pop((IPPROTO_TCP, port), None)
        else:
            self._table[(IPPROTO_TCP, port)] = before


@dataclass(slots=True)
class _Flow:
    """What the sensor keeps per live connection beside the stack's own state."""

    transport: UserlandTransport | None = None
    recorded: bytearray | None = None  # an open port with no service: what arrived, bounded
    bytes_in: int = 0
    bytes_out: int = 0
    attacker_os: str | None = None
    scan_tool: str | None = None


@dataclass(slots=True)
class _Host:
    definition: HostDefinition
    identity: HostIdentity  # its name and boot time, for its services and its TCP clock
    stack: HostStack | None = None  # built on the first packet: a /16 of idle hosts stays cheap
    handlers: dict[int, Handler] = field(default_factory=dict)


class _Ops:
    """ConnectionOps for one connection: application calls go through the sensor."""

    __slots__ = ("conn", "flow", "sensor")

    def __init__(self, sensor: Sensor, conn: TcpConnection, flow: _Flow) -> None:
        self.sensor, self.conn, self.flow = sensor, conn, flow

    def send(self, data: bytes) -> None:
        self.flow.bytes_out += len(data)
        self.sensor._run(self.conn.send(data, time.monotonic()))

    def finish(self) -> None:
        self.sensor._run(self.conn.close(time.monotonic()))

    def abort(self) -> None:
        self.sensor._run(self.conn.abort(time.monotonic()))

    def unsent(self) -> int:
        return self.conn.send_buffered


class Sensor:
    def __init__(
        self,
        config: SensorConfig,
        raw: RawSocket,
        events: EventWriter,
        *,
        p0f: P0fMatcher | None = None,
        services: dict[str, Handler] | None = None,
        scripts: ScriptRunner | None = None,
        udp_services: dict[str, DatagramService] | None = None,
        on_conflict: Callable[[str, str], None] | None = None,
        probe_first: bool = False,
        secret: bytes = b"",
    ) -> None:
        self.raw = raw
        # The C receive thread (when the raw socket has one): it answers ARP, pings and ordinary
        # SYNs for the hosts registered with it; every frame still comes here, with its reply.
        self.fast = getattr(raw, "responder", None)
        if self.fast is not None:
            self.fast.set_probe_windows(sorted(PROBE_WINDOWS))  # nmap's OS probes stay Python's
        self.events = events
        self.p0f = p0f
        self.services = services or {}
        self.udp_services = udp_services or {}
        self.udp_budget = UdpBudget()
        self.data_listeners: dict[tuple[int, int], DataListener] = {}
        self.scripts = scripts
        self.on_conflict = on_conflict
        self.secret = secret  # the deployment's: every host's identity is keyed with it
        self.context = StackContext()
        self.hosts: dict[int, _Host] = {}
        self.arp = ArpResponder()
        self.macs: set[bytes] = set()
        self.neighbours: OrderedDict[int, bytes] = OrderedDict()
        self.flows: dict[TcpConnection, _Flow] = {}
        self.source_os: OrderedDict[int, str] = OrderedDict()
        self.nmap_sources: OrderedDict[int, float] = OrderedDict()
        self.counters: Counter[str] = Counter()
        self.released: dict[str, str] = {}  # address -> the MAC of the real host that took it back
        self._released_at: dict[int, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        now = time.monotonic()
        self._started = now
        self._handlers: dict[Action, Handler | None] = {}
        # RFC 5227: with probe_first, an address is answered for only after an ARP probe for it
        # went unanswered; until then it waits here (address -> our MAC for it).
        self.probe_first = probe_first
        self.pending: dict[int, bytes] = {}
        self.probing_done = asyncio.Event() if probe_first else None
        for definition in config.hosts.values():
            self._add_host(definition, now)

    def _stack(self, host: _Host) -> HostStack:
        """The host's stack, built when it is first needed (personality clocks start at launch)."""
        definition = host.definition
        personality = None
        if definition.personality is not None:
            # The TCP timestamp clock counts from the boot the host's services tell of.
            personality = compile_personality(
                definition.personality,
                seed=host.identity.seed,
                uptime=host.identity.uptime(time.time()),
                now=time.monotonic(),
            )
        host.stack = HostStack(definition.ip, definition.mac, personality, _Policy(definition), self.context)
        self._register_fast(host)
        return host.stack

    def _register_fast(self, host: _Host) -> None:
        """Let the receive thread answer this host's pings and ordinary SYNs to its open ports, as
        its personality would, once its address is claimed and its stack built (the first packet,
        which builds the stack, is answered here)."""
        fast, stack, definition = self.fast, host.stack, host.definition
        if fast is None or stack is None or definition.ip not in self.arp.bindings:
            return
        personality = stack.personality
        echo = tcp = None
        if stack.policy(IPPROTO_ICMP, 8) is Verdict.OPEN and hasattr(personality, "echo_recipe"):
            echo = personality.echo_recipe()
        ports = tuple(port for port, action in definition.tcp.items() if _verdict(action) is Verdict.OPEN)
        if ports and hasattr(personality, "syn_recipe"):
            recipe = personality.syn_recipe()
            tcp = None if recipe is None else (*recipe, ports)
        fast.set_echo(definition.ip, echo)
        fast.set_tcp(definition.ip, tcp)

    # ------------------------------------------------------------------ set-up

    def _add_host(self, definition: HostDefinition, now: float) -> None:
        personality = definition.personality.name if definition.personality else None
        identity = identity_for(definition.address, personality, secret=self.secret, uptime=definition.uptime)
        host = _Host(definition, identity)
        for port, action in definition.tcp.items():
            handler = self._handler_for(action)
            if handler is not None:
                host.handlers[port] = handler
        self.hosts[definition.ip] = host
        if self.probe_first:
            self.pending[definition.ip] = definition.mac
            if self.fast is not None:
                self.fast.reserve(definition.ip)  # frames from it stay Python's to judge
        else:
            self._claim(definition.ip, definition.mac)

    def _claim(self, ip: int, mac: bytes) -> None:
        """Start answering for `ip`: ARP, and frames to its MAC."""
        host = self.hosts.get(ip)
        if host is not None:
            self.arp.bind(ip, mac)
            self.macs.add(mac)
            if self.fast is not None:
                self.fast.bind(ip, mac)
                self._register_fast(host)

    def _unclaim(self, ip: int, host: _Host) -> None:
        """Stop answering for `ip` (ARP, frames to its MAC, the receive thread), claimed or not."""
        self.pending.pop(ip, None)
        self.arp.unbind(ip)
        if self.fast is not None:
            self.fast.unbind(ip)
        self.macs.discard(host.definition.mac)

    def _handler_for(self, action: Action) -> Handler | None:
        """The handler serving `action`, one per distinct action (a /16 shares a handful)."""
        if action not in self._handlers:
            self._handlers[action] = self._make_handler(action)
        return self._handlers[action]

    def _make_handler(self, action: Action) -> Handler | None:
        if action.kind == "service":
            return self.services.get(action.target or "", record)
        if action.kind == "command" and self.scripts is not None and action.target:
            return self.scripts.handler(action.target)
        if action.kind == "proxy" and action.target:
            return proxy(action.target)
        if action.kind == "open":
            return record
        return None

    # ------------------------------------------------------------------ packet path

    def on_readable(self) -> None:
        handle = self.handle_frame
        for frame, checksums_ok, answered in self.raw.frames():
            try:
                handle(frame, checksums_ok, answered)
            except Exception:  # a bug must cost one frame, never the sensor
                self.counters["internal error"] += 1
                log.exception("frame handling failed")
        self._arm_timer()

    def handle_frame(self, frame: bytes, checksums_ok: bool = True, answered: bytes | None = None) -> None:
        """One frame from the wire; `answered`: the reply the receive thread already sent (ARP,
        echo or SYN/ACK): this records it, watches for conflicts and adopts the connection."""
        eth = parse_ethernet(frame)
        if type(eth) is Malformed:
            self.counters["ethernet: malformed"] += 1
            return
        ethertype = eth.ethertype
        if ethertype == ETH_P_IP:
            payload = eth.payload
            # Another machine sending from a bound address, to anyone (promiscuous mode shows it):
            # the address is taken. Checked on two bytes first; parsed only when it matters.
            src_host = self.hosts.get(int.from_bytes(payload[12:16], "big")) if len(payload) >= 20 else None
            if src_host is not None and eth.src != src_host.definition.mac:
                claimed = parse_ipv4(payload, checksums_ok)
                if type(claimed) is not Malformed:
                    self._release(claimed.src, eth.src, "IPv4 traffic from the address")
                return
            if eth.dst not in self.macs and eth.dst != BROADCAST:
                return  # other hosts' traffic: not ours to answer
            ip = parse_ipv4(payload, checksums_ok)
            if type(ip) is Malformed:
                self.counters[ip.reason] += 1
                return
            host = self.hosts.get(ip.dst)
            if host is None:
                return
            self._remember_neighbour(ip.src, eth.src)
            now = time.monotonic()
            if ip.proto == IPPROTO_TCP and len(ip.payload) > 15:
                tcp = ip.payload
                # Parse twice only what matters: a window nmap's OS probes use, or a SYN from a
                # source whose OS p0f has not guessed yet.
                if (tcp[14] << 8 | tcp[15]) in PROBE_WINDOWS or (
                    tcp[13] & _SYN and ip.src not in self.source_os and self.p0f is not None
                ):
                    self._inspect_syn(ip, checksums_ok, now)
            stack = host.stack or self._stack(host)
            self._run(stack.receive(ip, now, checksums_ok, answered), now)
        elif ethertype == ETH_P_ARP:
            arp = parse_arp(eth.payload)
            if type(arp) is Malformed:
                self.counters["arp: malformed"] += 1
                return
            if (
                self.pending
                and arp.sender_ip in self.pending
                and arp.sender_mac != self.pending[arp.sender_ip]
            ):
                self._release(arp.sender_ip, arp.sender_mac, "answer to our ARP probe")
                return
            result = self.arp.receive(eth, arp)
            if type(result) is SendFrame and answered is None:
                self.raw.send(result.frame)
            elif type(result) is AddressConflict:
                why = "ARP probe for the address" if result.probe else "ARP from the address"
                self._release(result.ip, result.mac, why)

    def _remember_neighbour(self, ip: int, mac: bytes) -> None:
        neighbours = self.neighbours
        if neighbours.get(ip) != mac:
            neighbours[ip] = mac
            if len(neighbours) > NEIGHBOUR_LIMIT:
                neighbours.popitem(last=False)

    def _inspect_syn(self, ip: IPv4, checksums_ok: bool, now: float) -> None:
        """Notice nmap's OS-detection probes, and guess the attacker's OS from its SYN (p0f)."""
        seg = parse_tcp(ip, checksums_ok)
        if type(seg) is Malformed:
            return
        if classify_syn(seg) is not None or is_ecn_probe(seg) or classify_t(seg) is not None:
            self._mark_nmap(ip.src, now)
            return  # nmap's probes are crafted: p0f would only name the tool
        if self.p0f is not None and ip.src not in self.source_os and seg.flags & (_SYN | _ACK) == _SYN:
            match = self.p0f.match_segment(seg)
            if match is not None:
                self.source_os[ip.src] = match.display
                if len(self.source_os) > SOURCE_MEMORY:
                    self.source_os.popitem(last=False)

    def _mark_nmap(self, src: int, now: float) -> None:
        first = src not in self.nmap_sources or self.nmap_sources[src] < now - NMAP_MEMORY
        self.nmap_sources[src] = now
        self.nmap_sources.move_to_end(src)
        if len(self.nmap_sources) > SOURCE_MEMORY:
            self.nmap_sources.popitem(last=False)
        if first:
            self._event("tcp", src, None, 0, None, "os-scan", "nmap OS detection probes", now)

    def _scan_tool(self, src: int, now: float) -> str | None:
        seen = self.nmap_sources.get(src)
        return NMAP_OS_SCAN if seen is not None and seen >= now - NMAP_MEMORY else None

    # ------------------------------------------------------------------ outputs

    def _run(self, outputs: list[Output], now: float | None = None) -> None:
        """Carry out what the stack returned: send packets, log events, drive services."""
        if not outputs:
            return
        now = time.monotonic() if now is None else now
        closing: list[TcpConnection] = []
        for out in outputs:
            kind = type(out)
            if kind is SendPacket:
                self._send(out)
            elif kind is DataReceived:
                flow = self.flows.get(out.conn)
                if flow is not None:
                    flow.bytes_in += len(out.data)
                    if flow.transport is not None:
                        flow.transport.data_received(out.data)
                    elif flow.recorded is not None and len(flow.recorded) < RECORD_LIMIT:
                        flow.recorded += out.data[: RECORD_LIMIT - len(flow.recorded)]
                self._run(out.conn.consume(len(out.data), now), now)
            elif kind is TcpProbe:
                self._on_probe(out, now)
            elif kind is ConnectionEstablished:
                self._on_established(out.conn, now)
            elif kind is PeerClosed:
                flow = self.flows.get(out.conn)
                if flow is not None and flow.transport is not None:
                    flow.transport.eof_received()
                elif flow is not None:
                    closing.append(out.conn)  # the recorder has nothing to say: close too, after the ACK
            elif kind is ConnectionClosed:
                self._on_closed(out, now)
            elif kind is EchoRequest:
                detail = f"8(0): {'replied' if out.replied else 'ignored'}"
                self._event("icmp", out.peer_ip, None, out.local_ip, None, "echo", detail, now)
            elif kind is DatagramReceived:
                self._on_datagram(out, now)
                self._event(
                    "udp",
                    out.peer_ip,
                    out.peer_port,
                    out.local_ip,
                    out.local_port,
                    "datagram",
                    f"{len(out.data)} bytes",
                    now,
                    data={"excerpt": out.data[:256].hex()},
                )
            elif kind is UdpProbe:
                self._event(
                    "udp",
                    out.peer_ip,
                    out.peer_port,
                    out.local_ip,
                    out.local_port,
                    "probe",
                    out.verdict,
                    now,
                )
            elif kind is IcmpReceived:
                self._event(
                    "icmp", out.peer_ip, None, out.local_ip, None, "icmp", f"{out.type}({out.code})", now
                )
            elif kind is PacketDropped:
                self.counters[out.reason] += 1
        for conn in closing:
            self._run(conn.close(now), now)
        self._arm_timer()

    def _send(self, out: SendPacket) -> None:
        host = self.hosts.get(out.src)
        mac = self.neighbours.get(out.dst)
        if host is None or mac is None:
            self.counters["send: no neighbour"] += 1
            return
        self.raw.send(mac + host.definition.mac + b"\x08\x00" + out.packet)

    def _on_probe(self, probe: TcpProbe, now: float) -> None:
        if probe.verdict == "open":
            self._event(
                "tcp", probe.peer_ip, probe.peer_port, probe.local_ip, probe.local_port, "connect", None, now
            )
        else:
            self._event(
                "tcp",
                probe.peer_ip,
                probe.peer_port,
                probe.local_ip,
                probe.local_port,
                "probe",
                f"{flag_letters(probe.flags)} {probe.verdict}",
                now,
            )

    def _on_established(self, conn: TcpConnection, now: float) -> None:
        host = self.hosts.get(conn.local_ip)
        if host is None:
            return
        flow = _Flow(
            attacker_os=self.source_os.get(conn.peer_ip), scan_tool=self._scan_tool(conn.peer_ip, now)
        )
        self.flows[conn] = flow
        # Almost always empty: no tuple, no lookup on the packet path unless an FTP data port is open.
        listener = (
            self.data_listeners.pop((conn.local_ip, conn.local_port), None) if self.data_listeners else None
        )
        if listener is not None:
            if listener.peer_ip == conn.peer_ip:  # a data connection a service asked for
                flow.transport = listener.attach(_Ops(self, conn, flow))
                return
            listener.close()  # someone else raced for the port: the service gets a time-out
        handler = host.handlers.get(conn.local_port, record)
        if handler is record:
            # No service: record in the packet loop itself, no task, no streams (the common case
            # under scans and floods). The stack's idle time-out ends a silent connection.
            flow.recorded = bytearray()
            return
        definition = host.definition
        info = _connection_info(
            "tcp",
            host,
            conn.peer_ip,
            conn.peer_port,
            conn.local_port,
            definition.tcp.get(conn.local_port),
            SensorDataPorts(self, conn.local_ip, conn.peer_ip),
        )
        report = self._reporter("tcp", conn.peer_ip, conn.peer_port, conn.local_ip, conn.local_port)
        flow.transport, _task = start_handler(_Ops(self, conn, flow), info, handler, report)

    def _reporter(self, proto: str, peer_ip: int, peer_port: int, local_ip: int, local_port: int) -> Report:
        """What a service reports about one connection or datagram becomes that flow's events."""

        def report(kind: str, detail: str | None, data: dict | None) -> None:
            self._event(
                proto, peer_ip, peer_port, local_ip, local_port, kind, detail, time.monotonic(), data=data
            )

        return report

    def _on_datagram(self, datagram: DatagramReceived, now: float) -> None:
        """A UDP service answers at most one bounded datagram, and only within the source's budget."""
        host = self.hosts.get(datagram.local_ip)
        if host is None or host.stack is None:
            return
        definition = host.definition
        action = definition.udp.get(datagram.local_port)
        if action is None or action.kind != "service":
            return
        service = self.udp_services.get(action.target or "")
        if service is None:
            return
        info = _connection_info(
            "udp", host, datagram.peer_ip, datagram.peer_port, datagram.local_port, action, None
        )
        report = self._reporter(
            "udp", datagram.peer_ip, datagram.peer_port, datagram.local_ip, datagram.local_port
        )

        try:
            reply = service(datagram.data, info, report)
        except Exception:  # a broken emulator costs one datagram
            self.counters["udp service error"] += 1
            log.exception("UDP service %s failed", action.target)
            return
        if reply and self.udp_budget.allow(datagram.peer_ip, len(datagram.data), len(reply), now):
            self._run(
                host.stack.send_udp(datagram.peer_ip, datagram.peer_port, datagram.local_port, reply, now),
                now,
            )
        elif reply:
            self.counters["udp reply refused (amplification budget)"] += 1

    def _on_closed(self, closed: ConnectionClosed, now: float) -> None:
        conn = closed.conn
        if self.fast is not None:  # a new SYN on this 4-tuple may be answered in C again
            self.fast.forget(conn.peer_ip, conn.peer_port, conn.local_ip, conn.local_port)
        flow = self.flows.pop(conn, None)
        if flow is not None and flow.transport is not None:
            flow.transport.connection_lost(
                None if closed.reason == "closed" else ConnectionResetError(closed.reason)
            )
        if flow is not None and flow.recorded:
            self._event(
                "tcp",
                conn.peer_ip,
                conn.peer_port,
                conn.local_ip,
                conn.local_port,
                "data",
                excerpt(bytes(flow.recorded)),
                now,
                data={"bytes": flow.bytes_in},
            )
        if closed.established or flow is not None:
            event = self._event(
                "tcp",
                conn.peer_ip,
                conn.peer_port,
                conn.local_ip,
                conn.local_port,
                "close",
                closed.reason,
                now,
            )
            if flow is not None:
                event.bytes_in, event.bytes_out = flow.bytes_in, flow.bytes_out

    def _event(
        self,
        proto: str,
        src: int,
        sport: int | None,
        dst: int,
        dport: int | None,
        kind: str,
        detail: str | None,
        now: float,
        *,
        data: dict | None = None,
    ) -> Event:
        event = Event(
            time.time(),
            proto,
            src,
            sport,
            dst,
            dport,
            kind,
            detail,
            self.source_os.get(src),
            self._scan_tool(src, now),
            data,
        )
        self.events.submit(event)
        return event

    # ------------------------------------------------------------------ timers

    def _arm_timer(self) -> None:
        deadline = self.context.next_deadline()
        if deadline is None or self._loop is None:
            return
        # Keep an armed timer that fires at most TIMER_SLACK late: TCP's timers are hundreds of
        # milliseconds, and re-arming on every earlier deadline costs a handle per connection.
        if self._timer_at is not None and self._timer_at <= deadline + TIMER_SLACK:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._run(self.context.on_timer(time.monotonic()))
        self._arm_timer()

    # ------------------------------------------------------------------ live reconfiguration

    def apply(self, config: SensorConfig) -> dict[str, int]:
        """Answer for exactly the hosts of `config`, touching only those that differ.

        A host whose identity (MAC, personality, uptime) is unchanged keeps its stack and its
        connections: only its port table and handlers are replaced. An address given back to a
        real host recently is taken again only through an ARP probe (with `probe_first`), or not at
        all: a stale plan must not steal it back.
        """
        now = time.monotonic()
        counts: Counter[str] = Counter()
        wanted = config.hosts
        for ip in [ip for ip in self.hosts if ip not in wanted]:
            self._retire(ip, now)
            counts["removed"] += 1
        fresh: list[tuple[int, bytes]] = []
        for ip, definition in wanted.items():
            host = self.hosts.get(ip)
            if host is None:
                recent = now - self._released_at.get(ip, -RELEASE_MEMORY) < RELEASE_MEMORY
                if recent and not self.probe_first:
                    counts["refused (a real host took it back)"] += 1
                    continue
                self._add_host(definition, now)
                if ip in self.pending:
                    fresh.append((ip, definition.mac))
                counts["added"] += 1
            elif host.definition == definition:
                counts["kept"] += 1
            elif _identity(host.definition) != _identity(definition):
                self._retire(ip, now)
                self._add_host(definition, now)
                if ip in self.pending:
                    fresh.append((ip, definition.mac))
                counts["replaced"] += 1
            else:
                self._update_ports(host, definition)
                counts["changed"] += 1
        if fresh and self._loop is not None:
            self._loop.create_task(self.probe_addresses(fresh))
        return dict(counts)

    def _update_ports(self, host: _Host, definition: HostDefinition) -> None:
        host.definition = definition
        host.handlers = {}
        for port, action in definition.tcp.items():
            handler = self._handler_for(action)
            if handler is not None:
                host.handlers[port] = handler
        if host.stack is not None:
            host.stack.policy = _Policy(definition)  # live connections keep their services
            self._register_fast(host)

    def _retire(self, ip: int, now: float) -> None:
        """Stop answering for `ip` because the plan no longer wants it."""
        host = self.hosts.pop(ip, None)
        if host is None:
            return
        self._unclaim(ip, host)
        for key in [key for key in self.data_listeners if key[0] == ip]:
            self.data_listeners[key].close()
        if host.stack is not None:
            self._run(host.stack.close_all(now), now)

    # ------------------------------------------------------------------ address release

    def _release(self, ip: int, mac: bytes, why: str) -> None:
        """Another machine uses `ip`: stop answering for it at once, and say so."""
        host = self.hosts.pop(ip, None)
        if host is None:
            return
        self._unclaim(ip, host)
        if host.stack is not None:
            self._run(host.stack.close_all(time.monotonic()))
        address, mac_text = host.definition.address, mac.hex(":")
        self.released[address] = mac_text
        self._released_at[ip] = time.monotonic()
        log.warning("released %s: %s (%s); recorded as a real host", address, why, mac_text)
        self._event("arp", 0, None, ip, None, "conflict", f"{why} by {mac_text}: released", time.monotonic())
        if self.on_conflict is not None:
            self.on_conflict(address, mac_text)

    # ------------------------------------------------------------------ running

    async def probe_addresses(
        self,
        addresses: list[tuple[int, bytes]] | None = None,
        rate: float = PROBE_RATE,
        wait: float = PROBE_WAIT,
    ) -> None:
        """Send an ARP probe for every pending address, then claim those nobody answered for."""
        batch = max(1, int(rate / 20))
        sent: deque[tuple[float, int]] = deque()
        todo = list(self.pending.items()) if addresses is None else addresses
        for count, (ip, mac) in enumerate(todo, start=1):
            self.raw.send(build_probe(mac, ip))
            sent.append((time.monotonic() + wait, ip))
            if count % batch == 0:
                await asyncio.sleep(0.05)  # paced: a /16 of probes must not be a broadcast storm
                self._claim_due(sent)
        while sent:
            await asyncio.sleep(max(0.0, sent[0][0] - time.monotonic()))
            self._claim_due(sent)
        if self.probing_done is not None:
            self.probing_done.set()

    def _claim_due(self, sent: deque[tuple[float, int]]) -> None:
        now = time.monotonic()
        while sent and sent[0][0] <= now:
            _, ip = sent.popleft()
            mac = self.pending.pop(ip, None)
            if mac is not None:  # not released or retired meanwhile
                self._claim(ip, mac)

    async def run(self, stop: asyncio.Event, *, busy_poll: bool = False) -> None:
        """Answer until `stop`. With `busy_poll` the socket is read on every loop turn instead of
        when the kernel wakes us: one CPU core spent for about half the reply latency (the wake-up
        of an idle process is most of a Python responder's time)."""
        self._loop = loop = asyncio.get_running_loop()
        self.raw.start()
        poller: asyncio.Handle | None = None
        if busy_poll:

            def poll() -> None:
                nonlocal poller
                self.on_readable()
                poller = loop.call_soon(poll)

            poller = loop.call_soon(poll)
        else:
            loop.add_reader(self.raw.fileno(), self.on_readable)
        prober = loop.create_task(self.probe_addresses()) if self.pending else None
        try:
            await stop.wait()
        finally:
            if prober is not None:
                prober.cancel()
            if poller is not None:
                poller.cancel()
            else:
                loop.remove_reader(self.raw.fileno())
            if self._timer is not None:
                self._timer.cancel()
            now = time.monotonic()
            for host in list(self.hosts.values()):
                if host.stack is not None:
                    self._run(host.stack.close_all(now), now)
