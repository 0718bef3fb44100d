"""The running sensor: one raw socket, one host stack per bound address, services on asyncio.

`Sensor` is the wiring: it takes frames from the raw socket and hands each to the part that
owns it, and carries out what the stacks return. The parts, each in its own module:

- `claims`: which addresses are ours (RFC 5227 probing, ARP, giving them back);
- `hosts`: each virtual host (definition, identity, port actions, its stack);
- `flows`: the sensor's side of each live connection (the service serving it);
- `udp`: UDP services and their amplification budget;
- `observe`: every touch of a host as an event, with the source's OS and scan tool.

Packet path (kept short, it runs for every frame): parse Ethernet; ARP goes to the claims;
IPv4 addressed to a bound address goes to that host's sans-IO stack; the outputs are frames
to send (wrapped with the peer's MAC from the neighbour table) and events (logged, or fed to
the connection's service). Connection timers of all hosts live in one heap (the stack's
`StackContext`), driven by one asyncio timer handle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

from dynapot.config import BackendSettings, RedirectSettings, SensorSettings
from dynapot.discovery.p0f import P0fMatcher
from dynapot.events import Kind
from dynapot.honeyd.routing import RoutedNetwork
from dynapot.netstack.events import (
    DatagramReceived,
    EchoRequest,
    IcmpReceived,
    PacketDropped,
    SendPacket,
    TcpProbe,
    UdpProbe,
)
from dynapot.netstack.host import HostStack, Output, StackContext, StackLimits, Verdict
from dynapot.netstack.packets import Malformed, parse_ethernet, parse_ipv4
from dynapot.netstack.tcp import (
    ConnectionClosed,
    ConnectionEstablished,
    DataReceived,
    PeerClosed,
    TcpConfig,
    TcpConnection,
)
from dynapot.netstack.types import ETH_P_ARP, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TcpFlags
from dynapot.personality.nmap_probes import PROBE_WINDOWS
from dynapot.sensor.actions import ActionHandlers, ScriptRunner
from dynapot.sensor.claims import AddressClaims
from dynapot.sensor.config import HostDefinition, SensorConfig
from dynapot.sensor.dataports import DataPortRegistry
from dynapot.sensor.eventlog import EventWriter
from dynapot.sensor.flows import FlowTable
from dynapot.sensor.hosts import PortActions, VirtualHost, same_machine
from dynapot.sensor.observe import Observer
from dynapot.sensor.rawsock import RawSocket
from dynapot.sensor.redirect import Redirector
from dynapot.sensor.routes import RoutedHosts
from dynapot.sensor.storage import StorageGuard
from dynapot.sensor.udp import UdpServices
from dynapot.services.contract import DatagramService, Handler

log = logging.getLogger(__name__)

BROADCAST = b"\xff" * 6
_SYN = int(TcpFlags.SYN)
NEIGHBOUR_LIMIT = 65536
TIMER_SLACK = 0.005  # seconds a connection timer may fire late
THROTTLE_TICK = 0.05  # seconds between releases of data a source's rate held back


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
        limits: SensorSettings | None = None,
        storage: StorageGuard | None = None,
        backends: Sequence[BackendSettings] = (),
        redirect: RedirectSettings | None = None,
    ) -> None:
        self.raw = raw
        # The C receive thread (when the raw socket has one): it answers ARP, pings and ordinary
        # SYNs for the hosts registered with it; every frame still comes here, with its reply.
        self.fast = getattr(raw, "responder", None)
        if self.fast is not None:
            self.fast.set_probe_windows(sorted(PROBE_WINDOWS))  # nmap's OS probes stay Python's
        self.counters: Counter[str] = Counter()
        self.secret = secret  # the deployment's: every host's identity is keyed with it
        self.on_conflict = on_conflict
        self.hosts: dict[int, VirtualHost] = {}
        self.limits = limits = limits or SensorSettings()
        # Data is consumed when the sensor says so (`FlowTable.received`), so that a service that
        # does not read, or a source above its rate, closes its peer's window as a kernel would.
        self.context = StackContext(
            StackLimits(max_connections_per_source=limits.connections_per_source),
            TcpConfig(auto_consume=False),
        )
        self.neighbours: OrderedDict[int, bytes] = OrderedDict()
        self.observer = Observer(events, p0f, storage)
        self.claims = AddressClaims(
            raw,
            self.fast,
            self.counters,
            probe_first=probe_first,
            on_evidence=self._release,
            on_claimed=self._claimed,
            on_unconfirmed=self._unconfirmed,
        )
        # Without the receive thread, routers are learned here from every IPv4 frame (the thread
        # learns them itself).
        self._learn = self.claims.checks.learn_ipv4 if self.fast is None else None
        # Hot-path shortcuts to objects that live as long as the sensor (never replaced).
        self._macs = self.claims.macs
        self._source_os = self.observer.source_os
        self._p0f = p0f
        self.dataports = DataPortRegistry(self._serving)
        self.flows = FlowTable(self.observer, self.dataports, self._run, self.counters, limits)
        self.udp = UdpServices(udp_services or {}, self.counters, self.observer.reporter)
        self.actions = ActionHandlers(services or {}, scripts)
        # Packet-mode redirects to real backends: frames from a backend's address go to it first.
        self.redirector: Redirector | None = None
        redirect = redirect or RedirectSettings()
        if backends and redirect.mode == "packet":
            self.redirector = Redirector(
                backends,
                redirect,
                raw.mac,
                self.observer,
                self.counters,
                raw.send,
                self.neighbours.get,
                self._host_mac,
                secret,
            )
        self._backends = self.redirector.by_ip if self.redirector is not None else {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._throttle: asyncio.TimerHandle | None = None  # releases what source rates held back
        self._loop: asyncio.AbstractEventLoop | None = None
        # honeyd's routed networks: hosts behind its routers answer through them (`routes`).
        self.routes: RoutedHosts | None = None
        self._routed: set[int] = set()
        self._route(config)
        for definition in config.hosts.values():
            self._add_host(definition)

    @property
    def routed_hosts(self) -> int:
        """How many virtual hosts answer from behind honeyd's routers (never claimed on the link)."""
        return len(self._routed)

    @property
    def events(self) -> EventWriter:
        return self.observer.events

    def health(self) -> dict[str, object]:
        """What `dynapot status` shows of the sensor: hosts, claims, flows, drop counters."""
        return {
            "hosts": len(self.hosts),
            "pending": len(self.claims.pending),
            "released": self.claims.released,
            # checks of claimed addresses (evidence, probes, outcomes) and the routers seen
            "address_checks": self.claims.report(),
            "routed": len(self._routed),
            "routing_delayed": self.routes.delayed if self.routes is not None else 0,
            "flows": len(self.flows),
            "counters": dict(self.counters),
            # the C receive thread: frames read, ARP, pings and SYNs it answered, drops (queue full)
            "fastpath": self.fast.stats() if self.fast is not None else None,
            # budgets, noise folded, payloads and events not stored, uploads kept and refused
            "storage": self.observer.storage_health(),
            # relayed connections, sticky attackers, sinkholed backend connections
            "redirect": self.redirector.table.health() if self.redirector is not None else None,
        }

    def _serving(self, ip: int, peer: int, proto: int = IPPROTO_TCP) -> VirtualHost | None:
        """The machine that answers `peer` at `ip` for a new exchange: the host, or for a
        honeyd dynamic template the one its conditions choose."""
        host = self.hosts.get(ip)
        if host is None or host.chooser is None:
            return host
        return host.chooser.choose(peer, proto, self._source_os.get(peer))

    def _answering(self, host: VirtualHost, ip: IPv4) -> VirtualHost:
        """Which of a dynamic address's machines takes this packet: the one holding its TCP
        connection, else the one its conditions choose (honeyd keeps a connection's template)."""
        assert host.chooser is not None
        if ip.proto == IPPROTO_TCP and len(ip.payload) >= 4:
            tcp = ip.payload
            sport, dport = tcp[0] << 8 | tcp[1], tcp[2] << 8 | tcp[3]
            for machine in host.chooser.all():
                stack = machine.stack
                if stack is not None and stack.connection(ip.src, sport, dport) is not None:
                    return machine
        return host.chooser.choose(ip.src, ip.proto, self._source_os.get(ip.src))

    def _machine_of(self, conn: TcpConnection) -> VirtualHost | None:
        """The machine whose stack holds `conn`."""
        host = self.hosts.get(conn.local_ip)
        if host is None or host.chooser is None:
            return host
        for machine in host.chooser.all():
            if (
                machine.stack is not None
                and machine.stack.connection(conn.peer_ip, conn.peer_port, conn.local_port) is conn
            ):
                return machine
        return None

    def _host_mac(self, ip: int) -> bytes | None:
        host = self.hosts.get(ip)
        return host.definition.mac if host is not None else None

    # ------------------------------------------------------------------ hosts

    def _add_host(self, definition: HostDefinition) -> bool:
        """Answer for a new host (after its ARP probe, with probe_first); True if it is pending.
        A host behind routers is never claimed on the link: its packets come through them."""
        host = VirtualHost.define(definition, self.secret)
        for machine in host.chooser.all() if host.chooser is not None else (host,):
            machine.handlers = self.actions.for_host(machine.definition)
            if self.redirector is not None:
                machine.redirected = self.redirector.ports_of(machine.definition)
        self.hosts[definition.ip] = host
        if self.routes is not None and self.routes.routed(definition.ip):
            self._routed.add(definition.ip)
            return False
        return self.claims.add(definition.ip, definition.mac)

    def _route(self, config: SensorConfig) -> None:
        """Build the routed networks of `config` (none without `route` statements)."""
        if not config.topology:
            self.routes = None
            return
        self.routes = RoutedHosts(
            RoutedNetwork(config.topology),
            self.counters,
            deliver=self._deliver_routed,
            send=self.raw.send,
            mac_of=lambda ip: host.definition.mac if (host := self.hosts.get(ip)) is not None else None,
            neighbour=self.neighbours.get,
            ttl_of=self._initial_ttl,
        )
        self.routes.loop = self._loop

    def _initial_ttl(self, ip: int) -> int | None:
        host = self.hosts.get(ip)
        if host is None or host.definition.personality is None:
            return None
        return (host.stack or self._stack(host)).personality.ttl

    def _deliver_routed(self, ip: IPv4, now: float) -> None:
        """A packet that crossed the routers reaches its host (if it is still bound)."""
        host = self.hosts.get(ip.dst)
        if host is None:
            self.counters["routing: no host"] += 1
            return
        tcp = ip.payload
        if (
            ip.proto == IPPROTO_TCP
            and len(tcp) > 15
            and ((tcp[14] << 8 | tcp[15]) in PROBE_WINDOWS or tcp[13] & _SYN)
        ):
            self.observer.inspect_syn(ip, True, now)  # the attacker's OS, nmap's probes: as on the link
        if host.chooser is not None:
            host = self._answering(host, ip)
        stack = host.stack or self._stack(host)
        self._run(stack.receive(ip, now, True), now)

    def _claimed(self, ip: int) -> None:
        host = self.hosts.get(ip)
        if host is not None:
            self._register_fast(host)

    def _register_fast(self, host: VirtualHost) -> None:
        """Let the receive thread answer this host's pings and ordinary SYNs to its open ports, as
        its personality would, once its address is claimed and its stack built (the first packet,
        which builds the stack, is answered here)."""
        fast, stack, ip = self.fast, host.stack, host.definition.ip
        if fast is None or stack is None or host.dynamic or not self.claims.claimed(ip):
            return  # a dynamic address's machine is chosen per packet, in Python
        personality = stack.personality
        echo = tcp = None
        if stack.policy(IPPROTO_ICMP, 8) is Verdict.OPEN and hasattr(personality, "echo_recipe"):
            echo = personality.echo_recipe()
        ports = host.open_ports()
        if ports and hasattr(personality, "syn_recipe"):
            recipe = personality.syn_recipe()
            tcp = None if recipe is None else (*recipe, ports)
        fast.set_echo(ip, echo)
        fast.set_tcp(ip, tcp)

    def _stack(self, host: VirtualHost) -> HostStack:
        stack = host.build_stack(self.context)
        self._register_fast(host)
        return stack

    # ------------------------------------------------------------------ packet path

    def on_readable(self) -> None:
        handle = self.handle_frame
        for frame, checksums_ok, answered, note in self.raw.frames():
            try:
                handle(frame, checksums_ok, answered, note)
            except Exception:  # a bug must cost one frame, never the sensor
                self.counters["internal error"] += 1
                log.exception("frame handling failed")
        if self.redirector is not None:
            self.redirector.sweep(time.monotonic())
        self._arm_timer()

    def handle_frame(
        self, frame: bytes, checksums_ok: bool = True, answered: bytes | None = None, note: int | None = None
    ) -> None:
        """One frame from the wire; `answered`: the reply the receive thread already sent (ARP,
        echo or SYN/ACK): this records it, watches for conflicts and adopts the connection;
        `note`: what the thread's address checks made of it (None: no thread, judged here)."""
        eth = parse_ethernet(frame)
        if type(eth) is Malformed:
            self.counters["ethernet: malformed"] += 1
            return
        ethertype = eth.ethertype
        if ethertype == ETH_P_IP:
            payload = eth.payload
            # Another machine sending from a bound address, to anyone (promiscuous mode shows it):
            # evidence the address is taken. Checked on the source first; parsed only when it matters.
            src = int.from_bytes(payload[12:16], "big") if len(payload) >= 20 else -1
            if self._learn is not None and src >= 0 and payload[0] >> 4 == 4:
                self._learn(src, eth.src)
            if src in self._backends:  # a real backend, through its gateway: relayed or contained
                if eth.dst == self.raw.mac:
                    self._from_backend(payload, checksums_ok)
                return
            src_host = self.hosts.get(src)
            if src_host is not None and eth.src != src_host.definition.mac and src not in self._routed:
                self.claims.on_foreign_ipv4(payload, eth.src, checksums_ok, note)
                return
            if eth.dst not in self._macs and eth.dst != BROADCAST:
                return  # other hosts' traffic: not ours to answer
            ip = parse_ipv4(payload, checksums_ok)
            if type(ip) is Malformed:
                self.counters[ip.reason] += 1
                return
            host = self.hosts.get(ip.dst)
            if host is None or ip.dst in self._routed:
                # behind honeyd's routers (bound or not): through them, else not ours
                if self.routes is not None and eth.dst != BROADCAST and self.routes.routed(ip.dst):
                    self._remember_neighbour(ip.src, eth.src)
                    self.routes.receive(ip, time.monotonic())
                return
            self._remember_neighbour(ip.src, eth.src)
            now = time.monotonic()
            if ip.proto == IPPROTO_TCP and len(ip.payload) > 15:
                tcp = ip.payload
                # Parse twice only what matters: a window nmap's OS probes use, or a SYN from a
                # source whose OS p0f has not guessed yet (`Observer.inspect_syn`, written out:
                # this runs for every TCP frame).
                if (tcp[14] << 8 | tcp[15]) in PROBE_WINDOWS or (
                    tcp[13] & _SYN and ip.src not in self._source_os and self._p0f is not None
                ):
                    self.observer.inspect_syn(ip, checksums_ok, now)
                if host.chooser is not None:
                    host = self._answering(host, ip)
                if host.redirected:
                    backends = host.redirected.get(tcp[2] << 8 | tcp[3])
                    if backends is not None and self.redirector is not None:
                        self.redirector.from_attacker(ip, backends, now, checksums_ok)
                        return
            elif host.chooser is not None:
                host = self._answering(host, ip)
            stack = host.stack or self._stack(host)
            self._run(stack.receive(ip, now, checksums_ok, answered), now)
        elif ethertype == ETH_P_ARP:
            self.claims.on_arp(eth, answered, note)

    def _from_backend(self, payload: bytes, checksums_ok: bool) -> None:
        ip = parse_ipv4(payload, checksums_ok)
        if type(ip) is Malformed:
            self.counters[f"backend: {ip.reason}"] += 1
            return
        assert self.redirector is not None
        self.redirector.from_backend(ip, time.monotonic(), checksums_ok)

    def _remember_neighbour(self, ip: int, mac: bytes) -> None:
        neighbours = self.neighbours
        if neighbours.get(ip) != mac:
            neighbours[ip] = mac
            if len(neighbours) > NEIGHBOUR_LIMIT:
                neighbours.popitem(last=False)

    # ------------------------------------------------------------------ outputs

    def _run(self, outputs: list[Output], now: float | None = None) -> None:
        """Carry out what the stack returned: send packets, log events, drive services."""
        if not outputs:
            return
        now = time.monotonic() if now is None else now
        observer, flows = self.observer, self.flows
        closing: list[TcpConnection] = []
        for out in outputs:
            kind = type(out)
            if kind is SendPacket:
                self._send(out)
            elif kind is DataReceived:
                taken = flows.received(out, now)
                if taken:
                    self._run(out.conn.consume(taken, now), now)
            elif kind is TcpProbe:
                observer.probe(out, now)
            elif kind is ConnectionEstablished:
                host = self.hosts.get(out.conn.local_ip)
                if host is not None and host.chooser is not None:
                    host = self._machine_of(out.conn)
                if host is not None:
                    flows.established(out.conn, host)
            elif kind is PeerClosed:
                if flows.peer_closed(out.conn):
                    closing.append(out.conn)
            elif kind is ConnectionClosed:
                self._closed(out, now)
            elif kind is EchoRequest:
                observer.echo(out, now)
            elif kind is DatagramReceived:
                self._datagram(out, now)
                observer.datagram(out, now)
            elif kind is UdpProbe:
                observer.udp_probe(out, now)
            elif kind is IcmpReceived:
                observer.icmp(out, now)
            elif kind is PacketDropped:
                self.counters[out.reason] += 1
        for conn in closing:
            self._run(conn.close(now), now)
        self._arm_timer()
        if flows.throttled and self._throttle is None and self._loop is not None:
            self._throttle = self._loop.call_later(THROTTLE_TICK, self._release_throttled)

    def _send(self, out: SendPacket) -> None:
        if out.src in self._routed and self.routes is not None:
            self.routes.send(out.packet, out.src, out.dst, time.monotonic())
            return
        host = self.hosts.get(out.src)
        mac = self.neighbours.get(out.dst)
        if host is None or mac is None:
            self.counters["send: no neighbour"] += 1
            return
        self.raw.send(mac + host.definition.mac + b"\x08\x00" + out.packet)

    def _closed(self, closed: ConnectionClosed, now: float) -> None:
        conn = closed.conn
        if self.fast is not None:  # a new SYN on this 4-tuple may be answered in C again
            self.fast.forget(conn.peer_ip, conn.peer_port, conn.local_ip, conn.local_port)
        self.flows.closed(closed, now)

    def _datagram(self, datagram: DatagramReceived, now: float) -> None:
        host = self._serving(datagram.local_ip, datagram.peer_ip, IPPROTO_UDP)
        if host is None or host.stack is None:
            return
        reply = self.udp.answer(datagram, host, now)
        if reply:
            self._run(
                host.stack.send_udp(datagram.peer_ip, datagram.peer_port, datagram.local_port, reply, now),
                now,
            )

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

    def _release_throttled(self) -> None:
        self._throttle = None
        self.flows.release_throttled(time.monotonic())
        if self.flows.throttled and self._loop is not None:
            self._throttle = self._loop.call_later(THROTTLE_TICK, self._release_throttled)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._run(self.context.on_timer(time.monotonic()))
        self._arm_timer()

    # ------------------------------------------------------------------ live reconfiguration

    def apply(self, config: SensorConfig) -> dict[str, int]:
        """Answer for exactly the hosts of `config`, touching only those that differ.

        A host that is the same machine (MAC, personality, uptime) keeps its stack and its
        connections: only its port table and handlers are replaced. An address given back to a
        real host recently is taken again only through an ARP probe (with probe_first), or not at
        all: a stale plan must not steal it back.
        """
        now = time.monotonic()
        counts: Counter[str] = Counter()
        wanted = config.hosts
        self._route(config)
        for ip in [ip for ip in self.hosts if ip not in wanted or self._moves(ip)]:
            self._retire(ip, now)  # gone, or now behind routers (or no longer): a new machine
            counts["removed"] += 1
        fresh: list[tuple[int, bytes]] = []
        for ip, definition in wanted.items():
            host = self.hosts.get(ip)
            if host is None:
                if self.claims.recently_released(ip, now) and not self.claims.probe_first:
                    counts["refused (a real host took it back)"] += 1
                    continue
                if self._add_host(definition):
                    fresh.append((ip, definition.mac))
                counts["added"] += 1
            elif host.definition == definition:
                counts["kept"] += 1
            elif not same_machine(host.definition, definition):
                self._retire(ip, now)
                if self._add_host(definition):
                    fresh.append((ip, definition.mac))
                counts["replaced"] += 1
            else:
                self._update_ports(host, definition)
                counts["changed"] += 1
        if fresh and self._loop is not None:
            self._loop.create_task(self.claims.probe(fresh))
        return dict(counts)

    def _moves(self, ip: int) -> bool:
        """Whether `ip` changes sides: from the link to behind the routers, or back."""
        routed = self.routes is not None and self.routes.routed(ip)
        return routed != (ip in self._routed)

    def _update_ports(self, host: VirtualHost, definition: HostDefinition) -> None:
        host.definition = definition
        host.handlers = self.actions.for_host(definition)
        if self.redirector is not None:
            host.redirected = self.redirector.ports_of(definition)
        if host.stack is not None:
            host.stack.policy = PortActions(definition)  # live connections keep their services
            self._register_fast(host)

    def _retire(self, ip: int, now: float) -> None:
        """Stop answering for `ip` because the plan no longer wants it."""
        host = self.hosts.pop(ip, None)
        if host is None:
            return
        if ip in self._routed:
            self._routed.discard(ip)
        else:
            self.claims.unclaim(ip, host.definition.mac)
        self.dataports.close_host(ip)
        self._close_all(host, now)

    def _close_all(self, host: VirtualHost, now: float) -> None:
        """Close every connection of `host` (of each of its machines, for a dynamic address)."""
        for machine in host.chooser.all() if host.chooser is not None else (host,):
            if machine.stack is not None:
                self._run(machine.stack.close_all(now), now)

    def _unconfirmed(self, ip: int, mac: bytes, why: str) -> None:
        """Evidence against `ip` that nobody confirmed by answering our ARP check: it stays ours."""
        mac_text = mac.hex(":")
        log.info(
            "kept %s: %s by %s, but nobody answered our ARP check", ipaddress.IPv4Address(ip), why, mac_text
        )
        detail = f"{why} by {mac_text}: nobody answered our ARP check, kept"
        self.observer.event("arp", 0, None, ip, None, Kind.CONFLICT_UNCONFIRMED, detail, time.monotonic())

    def _release(self, ip: int, mac: bytes, why: str) -> None:
        """Another machine uses `ip`: stop answering for it at once, and say so."""
        host = self.hosts.pop(ip, None)
        if host is None:
            return
        now = time.monotonic()
        self.claims.unclaim(ip, host.definition.mac)
        self._close_all(host, now)
        address, mac_text = host.definition.address, mac.hex(":")
        self.claims.remember_release(ip, address, mac)
        log.warning("released %s: %s (%s); recorded as a real host", address, why, mac_text)
        self.observer.event("arp", 0, None, ip, None, Kind.CONFLICT, f"{why} by {mac_text}: released", now)
        if self.on_conflict is not None:
            self.on_conflict(address, mac_text)

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event, *, busy_poll: bool = False) -> None:
        """Answer until `stop`. With `busy_poll` the socket is read on every loop turn instead of
        when the kernel wakes us: one CPU core spent for about half the reply latency (the wake-up
        of an idle process is most of a Python responder's time)."""
        self._loop = loop = asyncio.get_running_loop()
        if self.routes is not None:
            self.routes.loop = loop
        self.observer.start(loop)
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
        prober = loop.create_task(self.claims.probe()) if self.claims.pending else None
        try:
            await stop.wait()
        finally:
            if prober is not None:
                prober.cancel()
            if poller is not None:
                poller.cancel()
            else:
                loop.remove_reader(self.raw.fileno())
            for handle in (self._timer, self._throttle):
                if handle is not None:
                    handle.cancel()
            now = time.monotonic()
            for host in list(self.hosts.values()):
                self._close_all(host, now)
            self.observer.stop()
