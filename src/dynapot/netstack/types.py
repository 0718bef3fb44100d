"""Parsed views of frames, shared by the stack, the personality engine and the sensor.

Treat them as immutable. They are not frozen dataclasses because frozen construction costs
~2.6 µs against ~0.4 µs, several times per packet on the hot path.

Addresses are ints (IPv4) and 6-byte values (MAC) because they are compared and hashed
on the hot path; render them with `ipaddress.IPv4Address(n)` only for humans.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17


class TcpFlags(IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


@dataclass(slots=True)
class Ethernet:
    dst: bytes  # 6 bytes
    src: bytes  # 6 bytes
    ethertype: int
    payload: bytes


@dataclass(slots=True)
class Arp:
    op: int  # 1 request, 2 reply
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int


@dataclass(slots=True)
class IPv4:
    src: int
    dst: int
    ttl: int
    proto: int
    ident: int
    df: bool
    mf: bool
    frag_offset: int  # in 8-byte units
    tos: int
    total_length: int
    header: bytes  # the raw header, options included (quoted back in ICMP errors)
    payload: bytes  # exactly total_length - header length bytes


@dataclass(slots=True)
class TcpOptions:
    """What a TCP options field said, in order; `kinds` keeps the order nmap's probes differ by."""

    kinds: tuple[int, ...] = ()
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamp: tuple[int, int] | None = None  # (TSval, TSecr)


@dataclass(slots=True)
class TcpSegment:
    ip: IPv4
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int  # TcpFlags bits
    window: int
    urgent: int
    reserved: int  # the 4 reserved bits (nmap's Q=R quirk looks at them)
    options_raw: bytes
    options: TcpOptions
    payload: bytes


@dataclass(slots=True)
class UdpDatagram:
    ip: IPv4
    sport: int
    dport: int
    checksum: int
    payload: bytes


@dataclass(slots=True)
class IcmpMessage:
    ip: IPv4
    type: int
    code: int
    ident: int  # echo only
    seq: int  # echo only
    payload: bytes  # after the 8-byte header
