"""What the stack hands back: packets to send and events to log or to pass to services.

Every call into the stack (`HostStack.receive`, `on_timer`, `TcpConnection.send`, ...)
returns a list of these, in order.  `SendPacket` carries a complete IPv4 packet; the
sensor wraps it in Ethernet with the host's MAC as source and, as destination, the MAC
it last saw frames from `dst` arrive with (its neighbour table; for an off-link peer
that is the router's MAC, which is exactly right).  Everything else is an event.

Events are frozen and slotted; addresses are ints as in `types`.  TCP connection
events carry the `TcpConnection` itself so a service can reply on it; its
`local_ip/local_port/peer_ip/peer_port` give the flow for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from dynapot.netstack.tcp import TcpConnection


@dataclass(slots=True)
class SendPacket:
    """An IPv4 packet from virtual host `src` to `dst`, checksums done."""

    src: int
    dst: int
    packet: bytes


# ----------------------------------------------------------------- TCP connection events


@dataclass(slots=True)
class ConnectionEstablished:
    """The three-way handshake completed; the application may now `send` on `conn`."""

    conn: TcpConnection


@dataclass(slots=True)
class DataReceived:
    """In-order bytes from the peer."""

    conn: TcpConnection
    data: bytes


@dataclass(slots=True)
class PeerClosed:
    """The peer sent FIN: no more data will come (we may still send until we `close`)."""

    conn: TcpConnection


@dataclass(slots=True)
class ConnectionClosed:
    """The connection is over (reported once).

    `reason`: "closed" (orderly, both FINs), "reset" (peer RST), "aborted" (our `abort`),
    "timeout" (retransmissions exhausted, SYN/ACK unanswered included), "idle" (no
    traffic for the idle time-out; we sent RST), "evicted" (dropped to bound the flow table).
    `established` says whether the handshake had completed.
    """

    conn: TcpConnection
    reason: str
    established: bool


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


TcpEvent: TypeAlias = ConnectionEstablished | DataReceived | PeerClosed | ConnectionClosed
Output: TypeAlias = (
    SendPacket
    | ConnectionEstablished
    | DataReceived
    | PeerClosed
    | ConnectionClosed
    | TcpProbe
    | DatagramReceived
    | UdpProbe
    | EchoRequest
    | IcmpReceived
    | PacketDropped
)
