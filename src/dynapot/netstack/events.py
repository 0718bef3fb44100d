"""What a host's stack hands back: packets to send and observations to log.

Every call into the stack (`HostStack.receive`, `on_timer`, `TcpConnection.send`, ...)
returns a list of outputs, in order (`host.Output`).  `SendPacket` carries a complete IPv4 packet; the
sensor wraps it in Ethernet with the host's MAC as source and, as destination, the MAC
it last saw frames from `dst` arrive with (its neighbour table; for an off-link peer
that is the router's MAC, which is exactly right).  Everything else is an event.

Events are slotted; addresses are ints as in `types`.  What a TCP connection reports
(established, data, peer closed, closed) is defined beside it in `tcp`, since those
events carry the `TcpConnection` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(slots=True)
class SendPacket:
    """An IPv4 packet from virtual host `src` to `dst`, checksums done."""

    src: int
    dst: int
    packet: bytes


# ----------------------------------------------------------------- host-level observations


@dataclass(slots=True)
class TcpProbe:
    """A TCP segment that belongs to no connection: a SYN, a scan probe, a stray ACK...

    `verdict`: "open" (SYN accepted, SYN/ACK sent), "silent" (open port, personality chose
    silence), "stray" (non-SYN to an open port, personality answered or not), "closed",
    "blocked" (silence by policy), "full" (SYN dropped: flow table full of live connections).
    `replied` says whether anything was sent back.
    """

    local_ip: int
    local_port: int
    peer_ip: int
    peer_port: int
    flags: int
    verdict: str
    replied: bool


@dataclass(slots=True)
class DatagramReceived:
    """A UDP datagram to an open port: the service answers with `HostStack.send_udp`."""

    local_ip: int
    local_port: int
    peer_ip: int
    peer_port: int
    data: bytes


@dataclass(slots=True)
class UdpProbe:
    """A UDP datagram to a closed or blocked port (`verdict` "closed" or "blocked")."""

    local_ip: int
    local_port: int
    peer_ip: int
    peer_port: int
    verdict: str
    replied: bool
    data: bytes


@dataclass(slots=True)
class EchoRequest:
    """An ICMP echo request (a ping); `replied` is False when policy or personality kept silent."""

    local_ip: int
    peer_ip: int
    ident: int
    seq: int
    replied: bool


@dataclass(slots=True)
class IcmpReceived:
    """Any other ICMP message (unreachables, timestamp requests...): recorded, never answered."""

    local_ip: int
    peer_ip: int
    type: int
    code: int


@dataclass(slots=True)
class PacketDropped:
    """A packet for this host that was discarded: malformed, a fragment, a spoofed source...

    `reason` is short and fixed ("tcp: bad checksum", "ip: fragment", "bad source", ...),
    so the sensor can count by it.
    """

    local_ip: int
    peer_ip: int
    proto: int
    reason: str


HostEvent: TypeAlias = TcpProbe | DatagramReceived | UdpProbe | EchoRequest | IcmpReceived | PacketDropped
