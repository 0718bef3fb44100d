"""packets.py against scapy: parse what scapy builds, and let scapy dissect what we build."""

from __future__ import annotations

import os
import struct

import pytest
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from test_netstack_helpers import CLIENT_IP, SERVER_IP, dissect, ip2int

from dynapot.netstack import packets as P
from dynapot.netstack.types import ETH_P_ARP, ETH_P_IP, Arp, IcmpMessage, IPv4, TcpSegment, UdpDatagram

SRC = ip2int(CLIENT_IP)
DST = ip2int(SERVER_IP)

SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None), ("WScale", 7)]


def scapy_syn(**kw: object) -> IP:
    return IP(src=CLIENT_IP, dst=SERVER_IP, id=7) / TCP(
        sport=40000, dport=22, seq=0xFFFFFFF0, flags="S", window=64240, options=SYN_OPTIONS, **kw
    )


def parse_all(pkt: IP, verify: bool = True):
    ip = P.parse_ipv4(raw(pkt), verify)
    assert isinstance(ip, IPv4), ip
    return ip


# ---------------------------------------------------------------- checksum


@pytest.mark.parametrize("n", [0, 1, 2, 3, 20, 21, 40, 1459, 1460])
def test_checksum_agrees_with_scapy(n: int) -> None:
    from scapy.utils import checksum as scapy_checksum

    for _ in range(20):
        data = os.urandom(n)
        assert P.checksum(data) == scapy_checksum(data) or (n == 0 or not any(data))


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to 0xddf2, checksum is its complement.
    assert P.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


# ---------------------------------------------------------------- parsing


def test_parse_ethernet_and_ipv4_trim_padding() -> None:
    frame = raw(Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:63") / scapy_syn()) + b"\x00" * 6
    eth = P.parse_ethernet(frame)
    assert not isinstance(eth, P.Malformed)
    assert eth.ethertype == ETH_P_IP and eth.dst == bytes.fromhex("02000000000a")
    ip = P.parse_ipv4(eth.payload)
    assert isinstance(ip, IPv4)
    assert ip.src == SRC and ip.dst == DST and ip.ttl == 64 and ip.ident == 7 and ip.proto == 6
    assert len(ip.payload) == ip.total_length - 20 and len(ip.header) == 20


def test_parse_tcp_syn_fields() -> None:
    seg = P.parse_tcp(parse_all(scapy_syn(urgptr=5, reserved=3)))
    assert isinstance(seg, TcpSegment)
    assert (seg.sport, seg.dport, seg.seq, seg.flags, seg.window) == (40000, 22, 0xFFFFFFF0, 2, 64240)
    # `reserved` holds all 4 bits below the data offset; scapy's 3-bit field sits above NS/AE
    assert seg.urgent == 5 and seg.reserved == 3 << 1
    o = seg.options
    assert o.kinds == (2, 4, 8, 1, 3)
    assert o.mss == 1460 and o.sack_permitted and o.timestamp == (123456, 0) and o.wscale == 7
    assert seg.payload == b""


def test_parse_tcp_with_payload_odd_length() -> None:
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP) / TCP(flags="PA") / Raw(b"hello")
    seg = P.parse_tcp(parse_all(pkt))
    assert isinstance(seg, TcpSegment) and seg.payload == b"hello"


def test_ip_options_are_kept_in_header() -> None:
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP, options=[IPOption_RR(routers=["1.2.3.4"])]) / TCP(flags="S")
    ip = parse_all(pkt)
    assert len(ip.header) > 20 and ip.header == raw(pkt)[: len(ip.header)]
    assert isinstance(P.parse_tcp(ip), TcpSegment)


def test_bad_ip_checksum() -> None:
    data = bytearray(raw(scapy_syn()))
    data[10] ^= 0xFF
    assert P.parse_ipv4(bytes(data)) is P.IP_BAD_CHECKSUM
    assert isinstance(P.parse_ipv4(bytes(data), verify_checksums=False), IPv4)


def test_bad_tcp_checksum_and_offload() -> None:
    pkt = scapy_syn()
    pkt[TCP].chksum = 0x1234
    ip = parse_all(pkt)
    assert P.parse_tcp(ip) is P.TCP_BAD_CHECKSUM
    assert isinstance(P.parse_tcp(ip, verify_checksums=False), TcpSegment)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b[:19], P.IP_TRUNCATED),
        (lambda b: b"\x65" + b[1:], P.IP_BAD_VERSION),
        (lambda b: b"\x44" + b[1:], P.IP_BAD_IHL),
        (lambda b: b"\x4f" + b[1:40], P.IP_BAD_IHL),
        (lambda b: b[:2] + struct.pack("!H", 9999) + b[4:], P.IP_BAD_LENGTH),
        (lambda b: b[:2] + struct.pack("!H", 10) + b[4:], P.IP_BAD_LENGTH),
    ],
)
def test_ipv4_malformed(mutate, expected) -> None:
    assert P.parse_ipv4(mutate(raw(scapy_syn())), verify_checksums=False) is expected


def test_tcp_bad_offset_and_truncation() -> None:
    short = IP(src=CLIENT_IP, dst=SERVER_IP, proto=6) / Raw(b"\x00" * 12)
    assert P.parse_tcp(parse_all(short)) is P.TCP_TRUNCATED
    bad = IP(src=CLIENT_IP, dst=SERVER_IP) / TCP(dataofs=15)
    assert P.parse_tcp(parse_all(bad)) is P.TCP_BAD_OFFSET
    bad = IP(src=CLIENT_IP, dst=SERVER_IP) / TCP(dataofs=2)
    assert P.parse_tcp(parse_all(bad)) is P.TCP_BAD_OFFSET


def test_fragments_are_marked() -> None:
    first = IP(src=CLIENT_IP, dst=SERVER_IP, flags="MF") / TCP(flags="S")
    ip = parse_all(first)
    assert P.is_fragment(ip) and ip.mf
    assert P.parse_tcp(ip) is P.IP_FRAGMENT
    later = IP(src=CLIENT_IP, dst=SERVER_IP, frag=100, proto=17) / Raw(b"x" * 16)
    ip = parse_all(later)
    assert P.is_fragment(ip) and ip.frag_offset == 100
    assert P.parse_udp(ip) is P.IP_FRAGMENT


@pytest.mark.parametrize(
    ("raw_options", "kinds", "mss", "ws"),
    [
        (b"", (), None, None),
        (b"\x02\x04\x05\xb4", (2,), 1460, None),
        (b"\x01\x01\x00\x02\x04\x05\xb4", (1, 1, 0), None, None),  # EOL ends the list
        (b"\x02\x00\x05\xb4", (2,), None, None),  # length 0: malformed, stop
        (b"\x03\x03\x07\x02\x08\x05\xb4", (3, 2), None, 7),  # MSS overruns: stop, keep kinds
        (b"\x02\x03\x05\x03\x03\x0e", (2, 3), None, 14),  # MSS with wrong length: skipped
        (b"\x08", (8,), None, None),  # kind without a length byte
        (b"\xfe\x04ab\x03\x03\x02", (254, 3), None, 2),  # unknown kind skipped by its length
    ],
)
def test_tcp_options_robust(raw_options: bytes, kinds, mss, ws) -> None:
    o = P.parse_tcp_options(raw_options)
    assert o.kinds == kinds and o.mss == mss and o.wscale == ws


def test_parse_udp() -> None:
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(sport=5353, dport=53) / Raw(b"abc")
    d = P.parse_udp(parse_all(pkt))
    assert isinstance(d, UdpDatagram) and (d.sport, d.dport, d.payload) == (5353, 53, b"abc")
    pkt[UDP].chksum = 0  # "no checksum"
    assert isinstance(P.parse_udp(parse_all(pkt)), UdpDatagram)
    pkt[UDP].chksum = 0x4321
    assert P.parse_udp(parse_all(pkt)) is P.UDP_BAD_CHECKSUM
    assert isinstance(P.parse_udp(parse_all(pkt), verify_checksums=False), UdpDatagram)
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(len=200) / Raw(b"abc")
    assert P.parse_udp(parse_all(pkt), verify_checksums=False) is P.UDP_BAD_LENGTH
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(len=4) / Raw(b"abc")
    assert P.parse_udp(parse_all(pkt), verify_checksums=False) is P.UDP_BAD_LENGTH


def test_parse_icmp() -> None:
    pkt = IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP(id=7, seq=9) / Raw(b"ping!")
    m = P.parse_icmp(parse_all(pkt))
    assert isinstance(m, IcmpMessage) and (m.type, m.code, m.ident, m.seq, m.payload) == (
        8,
        0,
        7,
        9,
        b"ping!",
    )
    pkt[ICMP].chksum = 1
    assert P.parse_icmp(parse_all(pkt)) is P.ICMP_BAD_CHECKSUM
    assert (
        P.parse_icmp(parse_all(IP(src=CLIENT_IP, dst=SERVER_IP, proto=1) / Raw(b"\x08"))) is P.ICMP_TRUNCATED
    )


def test_parse_arp() -> None:
    body = raw(ARP(op=1, hwsrc="02:00:00:00:00:63", psrc=CLIENT_IP, pdst=SERVER_IP))
    a = P.parse_arp(body + b"\x00" * 18)
    assert isinstance(a, Arp)
    assert (a.op, a.sender_ip, a.target_ip, a.sender_mac) == (1, SRC, DST, bytes.fromhex("020000000063"))
    assert P.parse_arp(body[:27]) is P.ARP_TRUNCATED
    for bad in (body[:1] + b"\x06" + body[2:], body[:3] + b"\xdd" + body[4:], body[:5] + b"\x10" + body[6:]):
        assert P.parse_arp(bad) is P.ARP_NOT_ETHER_IPV4
    assert P.parse_arp(raw(ARP(op=3, psrc=CLIENT_IP))) is P.ARP_BAD_OP


def test_wrong_protocol_for_layer() -> None:
    ip = parse_all(IP(src=CLIENT_IP, dst=SERVER_IP) / UDP())
    assert P.parse_tcp(ip) is P.IP_WRONG_PROTO and P.parse_icmp(ip) is P.IP_WRONG_PROTO


# ---------------------------------------------------------------- building


@pytest.mark.parametrize("payload", [b"", b"x", b"hello world!", os.urandom(1460), os.urandom(1459)])
@pytest.mark.parametrize(
    "options", [b"", b"\x02\x04\x05\xb4", b"\x01\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02"]
)
def test_build_tcp_packet_dissected_by_scapy(payload: bytes, options: bytes) -> None:
    b = P.build_tcp_packet(
        DST, SRC, 22, 40000, 0x1_0000_0005, 0xFFFFFFFF, 0x18, 512, 64, 4242, True, options, payload, 3, 10
    )
    p = dissect(b)
    assert (p.src, p.dst, p.ttl, p.id, p.flags) == (SERVER_IP, CLIENT_IP, 64, 4242, "DF")
    t = p[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, t.flags, t.window) == (22, 40000, 5, 0xFFFFFFFF, "PA", 512)
    assert t.urgptr == 3 and raw(t)[12] & 0x0F == 10 and bytes(t.payload) == payload
    seg = P.parse_tcp(parse_all(p))
    assert isinstance(seg, TcpSegment) and seg.payload == payload and seg.options_raw == options


def test_build_tcp_pads_odd_options() -> None:
    p = dissect(P.build_tcp_packet(DST, SRC, 1, 2, 3, 4, 2, 5, 64, 0, False, b"\x03\x03\x07"))
    assert p[TCP].dataofs == 6 and ("WScale", 7) in p[TCP].options


def test_build_udp_packet() -> None:
    for payload in (b"", b"a", b"abcd", os.urandom(513)):
        p = dissect(P.build_udp_packet(DST, SRC, 53, 5353, payload, 64, 9, False))
        assert (p[UDP].sport, p[UDP].dport, bytes(p[UDP].payload), p[UDP].len) == (
            53,
            5353,
            payload,
            8 + len(payload),
        )
        assert p[UDP].chksum != 0


def test_build_ipv4_with_options_and_icmp() -> None:
    icmp = P.build_icmp(0, 0, 7 << 16 | 9, b"pong")
    p = dissect(P.build_ipv4(DST, SRC, 1, icmp, 128, 77, False, 0x10, b"\x01\x01\x01"))
    assert p.ihl == 6 and p.tos == 0x10 and p.ttl == 128
    assert (p[ICMP].type, p[ICMP].id, p[ICMP].seq, bytes(p[ICMP].payload)) == (0, 7, 9, b"pong")
    p = dissect(P.build_icmp_packet(DST, SRC, 0, 0, 1, b"odd", 64, 1, True))
    assert p[ICMP].seq == 1


def test_build_arp_frame_and_ethernet() -> None:
    mac = bytes.fromhex("02000000000a")
    frame = P.build_arp_frame(P.BROADCAST_MAC, 2, mac, DST, bytes(6), SRC)
    e = Ether(frame)
    assert e.type == ETH_P_ARP and e.src == "02:00:00:00:00:0a" and e.dst == "ff:ff:ff:ff:ff:ff"
    assert (e[ARP].op, e[ARP].psrc, e[ARP].pdst, e[ARP].hwsrc) == (
        2,
        SERVER_IP,
        CLIENT_IP,
        "02:00:00:00:00:0a",
    )
    assert P.build_ethernet(mac, mac, ETH_P_IP, b"x")[12:] == b"\x08\x00x"


def test_round_trip_build_then_parse() -> None:
    b = P.build_tcp_packet(DST, SRC, 80, 1234, 1, 2, 0x12, 1000, 64, 1, True, b"\x02\x04\x05\xb4")
    ip = P.parse_ipv4(b)
    assert isinstance(ip, IPv4) and ip.df and not ip.mf
    seg = P.parse_tcp(ip)
    assert isinstance(seg, TcpSegment) and seg.options.mss == 1460 and seg.flags == 0x12


def test_malformed_reprs() -> None:
    assert str(P.TCP_BAD_CHECKSUM) == "tcp: bad checksum"
    assert "bad checksum" in repr(P.TCP_BAD_CHECKSUM)
