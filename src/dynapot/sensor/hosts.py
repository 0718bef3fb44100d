"""The virtual hosts the sensor answers for: definition, identity, port actions, stack.

A `VirtualHost` is one bound address as the configuration defines it, with its identity
(name, boot time: `dynapot.services.identity`) and, once its first packet arrives, its
sans-IO stack wearing the compiled personality. `PortActions` is the host's honeyd port
table in the form the stack asks it: `(proto, port) -> Verdict`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from socket import inet_ntoa

from dynapot.honeyd.config import Action
from dynapot.netstack.host import HostStack, StackContext, Verdict
from dynapot.netstack.redirect import Backend
from dynapot.netstack.types import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from dynapot.personality.engine import compile_personality
from dynapot.sensor.config import HostDefinition
from dynapot.sensor.dynamic import Chooser
from dynapot.services.contract import ConnectionInfo, DataPorts, Handler
from dynapot.services.identity import HostIdentity, identity_for


def verdict(action: Action) -> Verdict:
    """What the stack does with a packet for a port carrying `action`."""
    if action.kind in ("proxy", "service", "command", "open"):
        return Verdict.TARPIT if action.tarpit else Verdict.OPEN
    if action.kind in ("closed", "reset"):
        return Verdict.CLOSED
    return Verdict.BLOCK  # block, filtered: silence


def same_machine(a: HostDefinition, b: HostDefinition) -> bool:
    """Whether `b` is the machine `a` was to an observer: MAC, personality and uptime."""

    def key(host: HostDefinition) -> tuple:
        return (host.mac, host.personality.name if host.personality else None, host.uptime)

    # A dynamic host's other templates are other machines too: any change there is a new host.
    return key(a) == key(b) and a.variants == b.variants


class PortActions:
    """The honeyd port actions of one host as the stack's (proto, port) -> Verdict callable."""

    __slots__ = ("_defaults", "_table")

    def __init__(self, host: HostDefinition) -> None:
        table = {(IPPROTO_TCP, port): verdict(a) for port, a in host.tcp.items()}
        # tarpit slows TCP only: a tarpitted UDP port is an open one
        table.update({(IPPROTO_UDP, port): verdict(replace(a, tarpit=False)) for port, a in host.udp.items()})
        icmp = verdict(host.default_icmp)
        table[(IPPROTO_ICMP, 8)] = Verdict.OPEN if icmp is Verdict.OPEN else Verdict.BLOCK
        self._table = table
        self._defaults = {
            IPPROTO_TCP: verdict(host.default_tcp),
            IPPROTO_UDP: verdict(host.default_udp),
            IPPROTO_ICMP: Verdict.BLOCK,
        }

    def __call__(self, proto: int, port: int) -> Verdict:
        found = self._table.get((proto, port))
        return found if found is not None else self._defaults.get(proto, Verdict.BLOCK)

    def open_tcp(self, port: int) -> Verdict | None:
        """Open a data port (FTP PASV) for a while; returns what it was, for `restore_tcp`."""
        before = self._table.get((IPPROTO_TCP, port))
        self._table[(IPPROTO_TCP, port)] = Verdict.OPEN
        return before

    def restore_tcp(self, port: int, before: Verdict | None) -> None:
        if before is None:
            self._table.pop((IPPROTO_TCP, port), None)
        else:
            self._table[(IPPROTO_TCP, port)] = before


@dataclass(slots=True)
class VirtualHost:
    """One bound address and everything the sensor keeps for it."""

    definition: HostDefinition
    identity: HostIdentity  # its name and boot time, for its services and its TCP clock
    handlers: dict[int, Handler] = field(default_factory=dict)  # TCP port -> service
    stack: HostStack | None = None  # built on the first packet: a /16 of idle hosts stays cheap
    # TCP port -> the real backends its connections are relayed to (packet mode, sensor/redirect.py)
    redirected: dict[int, tuple[Backend, ...]] = field(default_factory=dict)
    # honeyd's dynamic template: which of the address's machines answers a source (None: this
    # one always); `dynamic`: this host is one of several on its address, so the receive thread
    # never answers for it (its choice is made per packet, here).
    chooser: Chooser[VirtualHost] | None = None
    dynamic: bool = False

    @classmethod
    def define(cls, definition: HostDefinition, secret: bytes) -> VirtualHost:
        host = cls._one(definition, secret)
        if definition.variants:
            host.dynamic = True
            machines = {definition.template: host}  # one machine per template, however many rules use it
            rules = []
            for condition, variant in definition.variants:
                machine = machines.get(variant.template)
                if machine is None:
                    machine = machines[variant.template] = cls._one(variant, secret)
                    machine.dynamic = True
                rules.append((condition, machine))
            host.chooser = Chooser(host, rules)
        return host

    @classmethod
    def _one(cls, definition: HostDefinition, secret: bytes) -> VirtualHost:
        personality = definition.personality.name if definition.personality else None
        # what its services say they are ("OpenSSH 9.2p1 Debian 2+deb12u3") names its distribution
        actions = [*definition.tcp.values(), *definition.udp.values()]
        hint = " ".join(f"{a.product} {a.version or ''}" for a in actions if a.product)
        services = tuple(sorted({a.target for a in actions if a.kind == "service" and a.target}))
        identity = identity_for(
            definition.address,
            personality,
            secret=secret,
            uptime=definition.uptime,
            hint=hint,
            services=services,
        )
        return cls(definition, identity)

    def build_stack(self, context: StackContext) -> HostStack:
        """The host's stack; its TCP timestamp clock counts from the boot its services tell of."""
        definition = self.definition
        personality = None
        if definition.personality is not None:
            personality = compile_personality(
                definition.personality,
                seed=self.identity.seed,
                uptime=self.identity.uptime(time.time()),
                now=time.monotonic(),
            )
        self.stack = HostStack(definition.ip, definition.mac, personality, PortActions(definition), context)
        return self.stack

    def connection_info(
        self, proto: str, peer_ip: int, peer_port: int, local_port: int, data_ports: DataPorts | None = None
    ) -> ConnectionInfo:
        """What a service learns of its connection: the peer, this host, what it imitates."""
        definition = self.definition
        action = (definition.tcp if proto == "tcp" else definition.udp).get(local_port)
        return ConnectionInfo(
            proto,
            inet_ntoa(peer_ip.to_bytes(4, "big")),
            peer_port,
            definition.address,
            local_port,
            definition.personality.name if definition.personality else None,
            definition.template,
            action.product if action is not None else None,
            action.version if action is not None else None,
            data_ports,
            definition.mac,
            self.identity,
        )

    def open_ports(self) -> tuple[int, ...]:
        """The TCP ports that accept connections (the receive thread answers their SYNs); a port
        redirected to a backend is not among them: the backend answers."""
        redirected = self.redirected
        return tuple(
            port
            for port, action in self.definition.tcp.items()
            if verdict(action) is Verdict.OPEN and port not in redirected
        )
