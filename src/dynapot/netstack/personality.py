"""The stack's plug-in contract: what a personality must provide.

The stack (dynapot.netstack) decides *whether* a packet is part of a connection and
builds the bytes; the personality decides *how* the host's replies look: TTL, DF, IP
IDs, windows, TCP options, ISNs, timestamps, and the answers to odd probes (nmap's
T2..T7, U1, IE, ECN). One `Personality` instance belongs to one virtual host and
keeps that host's clocks and counters, so two hosts with the same fingerprint still
differ. `dynapot.personality` implements it from nmap-os-db fingerprints; the stack
never imports that package (`neutral.NeutralPersonality` is its own default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dynapot.netstack.types import IcmpMessage, TcpSegment, UdpDatagram


@dataclass(slots=True)
class TcpReply:
    """The shape of one TCP segment the host sends. The stack fills addresses and checksums.

    `seq`/`ack` None means "the stack's own value" (the connection's next sequence number
    and the peer's next expected one); otherwise they are used as given.
    """

    flags: int
    window: int
    options: bytes  # encoded, padded to a multiple of 4
    seq: int | None
    ack: int | None
    ttl: int
    df: bool
    ip_id: int
    urgent: int = 0  # a non-zero urgent pointer without URG (nmap's Q=U quirk)
    reserved: int = 0  # reserved bits set (Q=R)
    payload: bytes = b""  # data in a RST (RD)


@dataclass(slots=True)
class SegmentShape:
    """IP and TCP details of an ordinary segment on an established connection."""

    df: bool
    ip_id: int
    window: int
    options: bytes  # a timestamp option when the peer negotiated timestamps, else b""


@dataclass(slots=True)
class IpReply:
    """An ICMP message or other IP payload the host sends: the stack wraps it in IPv4 + Ethernet."""

    proto: int
    payload: bytes  # complete, checksummed ICMP message
    ttl: int
    df: bool
    ip_id: int
    tos: int = 0


class Personality(Protocol):
    """One virtual host's TCP/IP behaviour. `now` is a monotonic time in seconds."""

    name: str  # the nmap-os-db Fingerprint name
    #: Whether a connection's own segments number their IP IDs on a counter of the connection's
    #: (Linux's inet_id: a random start, +1 a segment) rather than on the host's TI sequence.
    connection_ip_ids: bool

    def syn_ack(self, syn: TcpSegment, isn: int, now: float) -> TcpReply | None:
        """Reply to a SYN for a listening port (a SYN/ACK, or None to stay silent); `isn` is ours."""

    def isn(self, now: float) -> int:
        """The initial sequence number for a new connection (the host's ISN generator)."""

    def closed_port(self, segment: TcpSegment, now: float) -> TcpReply | None:
        """Reply to any segment for a closed port (nmap T5..T7 and ordinary RSTs); None = silence."""

    def open_port_stray(self, segment: TcpSegment, now: float) -> TcpReply | None:
        """Reply to a non-SYN segment for a listening port with no connection (nmap T2..T4)."""

    def segment_shape(self, now: float, peer_tsval: int | None) -> SegmentShape:
        """How an ordinary segment of a connection looks (ACKs, data, FIN, RST of a connection).

        `peer_tsval` is the last TSval the peer sent when timestamps were negotiated (it is
        echoed as TSecr beside this host's own clock), else None and no option is sent.
        """

    @property
    def ttl(self) -> int:
        """The initial TTL of every packet the host sends."""

    def echo_reply(self, echo: IcmpMessage, now: float) -> IpReply | None:
        """Reply to an ICMP echo request (nmap IE); None = silence."""

    def udp_closed(self, datagram: UdpDatagram, now: float) -> IpReply | None:
        """ICMP port unreachable for a closed UDP port (nmap U1); None = silence."""
