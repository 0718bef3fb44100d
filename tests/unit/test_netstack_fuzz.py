"""Nothing the wire can send makes the stack raise: only documented results come back."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from test_netstack_helpers import CLIENT_IP, SERVER_IP, Client, ip2int, make_host

from dynapot.netstack import events as E
from dynapot.netstack import tcp as T
from dynapot.netstack.arp import AddressConflict, ArpResponder, SendFrame
from dynapot.netstack.host import HostStack
from dynapot.netstack.packets import (
    Malformed,
    build_tcp_packet,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)
from dynapot.netstack.tcp import TcpState
from dynapot.netstack.types import Arp, Ethernet, IPv4

KNOWN = (
    E.SendPacket,
    T.ConnectionEstablished,
    T.DataReceived,
    T.PeerClosed,
    T.ConnectionClosed,
    E.TcpProbe,
    E.DatagramReceived,
    E.UdpProbe,
    E.EchoRequest,
    E.IcmpReceived,
    E.PacketDropped,
)
SRV = ip2int(SERVER_IP)
CLI = ip2int(CLIENT_IP)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seg(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    options: bytes = b"",
    window: int = 65535,
) -> IPv4:
    ip = parse_ipv4(
        build_tcp_packet(CLI, SRV, sport, dport, seq, ack, flags, window, 64, 1, False, options, payload)
    )
    assert isinstance(ip, IPv4)
    return ip


def check(host: HostStack, outputs: list) -> None:
    for o in outputs:
        assert isinstance(o, KNOWN), o
        if isinstance(o, E.SendPacket):
            ip = parse_ipv4(o.packet)  # everything we send parses back with valid checksums
            assert isinstance(ip, IPv4) and ip.src == SRV
    ctx = host.context
    assert ctx.connections == len(host.flows) >= len(host.half_open)


def full_pipeline(host: HostStack, frame: bytes, now: float = 0.0) -> None:
    """What the sensor does with a frame: Ethernet, then ARP or IPv4, then the host stack."""
    eth = parse_ethernet(frame)
    if isinstance(eth, Malformed):
        return
    assert isinstance(eth, Ethernet)
    arp = parse_arp(eth.payload)
    if isinstance(arp, Arp):
        r = ArpResponder({SRV: b"\x02" * 6}).receive(eth, arp)
        assert r is None or isinstance(r, SendFrame | AddressConflict)
    for verify in (True, False):
        ip = parse_ipv4(eth.payload, verify)
        if isinstance(ip, Malformed):
            continue
        assert isinstance(ip, IPv4)
        for parse in (parse_tcp, parse_udp, parse_icmp):
            parse(ip, verify)
        check(host, host.receive(ip, now, verify))


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    host = make_host(22, udp=(53,))
    full_pipeline(host, data)
    # and as the payload of an IPv4/Ethernet frame whose header is right
    full_pipeline(host, raw(Ether() / IP(src=CLIENT_IP, dst=SERVER_IP, proto=6)) + data)
    full_pipeline(host, raw(Ether() / IP(src=CLIENT_IP, dst=SERVER_IP, proto=17)) + data)
    full_pipeline(host, raw(Ether(type=0x0806)) + data)


SYN_OPTS = [("MSS", 1460), ("WScale", 9)]
SAMPLES = [
    Ether()
    / IP(src=CLIENT_IP, dst=SERVER_IP)
    / TCP(dport=22, flags="S", options=[("MSS", 1460), ("WScale", 9)]),
    Ether() / IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(dport=53) / b"q",
    Ether() / IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(dport=54) / b"q",
    Ether() / IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP() / b"ping",
    Ether() / ARP(psrc=CLIENT_IP, pdst=SERVER_IP),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.summary())
def test_every_truncation_and_every_single_byte_flip(sample) -> None:
    host = make_host(22, udp=(53,))
    data = raw(sample)
    for n in range(len(data) + 1):
        full_pipeline(host, data[:n])
    for i in range(len(data)):
        for x in (0x01, 0x80, 0xFF):
            b = bytearray(data)
            b[i] ^= x
            full_pipeline(host, bytes(b))


@FUZZ
@given(
    st.integers(0, 65535),  # total length
    st.integers(0, 15),  # ihl
    st.integers(0, 0xFFFF),  # flags/frag
    st.binary(max_size=40),  # options
    st.binary(max_size=60),
)
def test_ip_header_fields(total: int, ihl: int, frag: int, options: bytes, rest: bytes) -> None:
    host = make_host(22)
    head = struct.pack("!BBHHHBBHII", 0x40 | ihl, 0, total, 1, frag, 64, 6, 0, CLI, SRV)
    full_pipeline(host, raw(Ether()) + head + options + rest)


@pytest.mark.parametrize("port", [22, 23])
def test_all_256_flag_combinations_to_open_and_closed_ports(port: int) -> None:
    host = make_host(22)
    for flags in range(256):
        for payload in (b"", b"data"):
            pkt = build_tcp_packet(
                CLI, SRV, 40000 + flags, port, 1000, 2000, flags, 512, 64, 1, False, b"", payload
            )
            ip = parse_ipv4(pkt)
            assert isinstance(ip, IPv4)
            check(host, host.receive(ip, 0.0))
    # then every timer fires until nothing is left
    t = 0.0
    while (d := host.next_deadline()) is not None and t < 10_000:
        t = max(t, d)
        check(host, host.on_timer(t))
    assert host.flows == {}


def fast_connection(state: str) -> tuple[HostStack, int, int]:
    """A connection in `state`, built with our own builders (scapy is too slow for 20k of them)."""
    host = make_host(22)
    mss = b"\x02\x04\x05\xb4"
    out = host.receive(
        parse_ipv4(build_tcp_packet(CLI, SRV, 40000, 22, 1000, 0, 2, 65535, 64, 1, False, mss)), 0.0
    )
    synack = parse_tcp(parse_ipv4(out[0].packet))
    assert not isinstance(synack, Malformed)
    cseq, sseq = 1001, synack.seq + 1
    if state != "syn_rcvd":
        host.receive(
            parse_ipv4(build_tcp_packet(CLI, SRV, 40000, 22, cseq, sseq, 0x10, 65535, 64, 2, False)), 0.0
        )
        (conn,) = host.flows.values()
        assert conn.state is TcpState.ESTABLISHED
        if state == "fin_wait":
            conn.send(b"x" * 3000, 0.0)
            conn.close(0.0)
        elif state == "close_wait":
            host.receive(
                parse_ipv4(build_tcp_packet(CLI, SRV, 40000, 22, cseq, sseq, 0x11, 65535, 64, 3, False)), 0.0
            )
            cseq += 1
    return host, cseq, sseq


@pytest.mark.parametrize("state", ["syn_rcvd", "established", "fin_wait", "close_wait"])
def test_all_256_flag_combinations_on_a_live_connection(state: str) -> None:
    for flags in range(256):
        for seq_delta in (0, 1, -1, 5000, 1 << 31):
            for ack_delta in (0, 1, -1, 1 << 31):
                host, cseq, sseq = fast_connection(state)
                pkt = build_tcp_packet(
                    CLI,
                    SRV,
                    40000,
                    22,
                    cseq + seq_delta,
                    sseq + ack_delta,
                    flags,
                    100,
                    64,
                    1,
                    False,
                    b"",
                    b"zz",
                )
                check(host, host.receive(parse_ipv4(pkt), 0.5))
                check(host, host.on_timer(2.0))


segments = st.tuples(
    st.integers(0, 255),  # flags
    st.integers(-70000, 70000),  # seq offset
    st.integers(-70000, 70000),  # ack offset
    st.integers(0, 65535),  # window
    st.binary(max_size=1600),  # payload
    st.binary(max_size=44),  # options (maybe malformed)
    st.floats(0, 1000, allow_nan=False),  # time step
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segments, max_size=25), st.booleans())
def test_random_segment_sequences_with_timers(seq_list, app_sends) -> None:
    host = make_host(22)
    c = Client(host, 22, ts=True, wscale=3)
    c.connect()
    now = 0.0
    if app_sends:
        assert c.conn is not None
        check(host, c.conn.send(b"y" * 10_000, now))
    for flags, dseq, dack, window, payload, options, step in seq_list:
        now += step
        options = options[: min(40, len(options) - len(options) % 4)]  # the option space is 40 bytes
        pkt = build_tcp_packet(
            CLI,
            SRV,
            c.sport,
            22,
            c.snd_nxt + dseq,
            c.rcv_nxt + dack,
            flags,
            window,
            64,
            1,
            False,
            options,
            payload,
        )
        ip = parse_ipv4(pkt)
        assert isinstance(ip, IPv4)
        check(host, host.receive(ip, now))
        check(host, host.on_timer(now))
        if c.conn is not None and not c.conn.closed and flags & 1:
            check(host, c.conn.close(now))
    while (d := host.next_deadline()) is not None and now < 1e6:
        now = max(now, d)
        check(host, host.on_timer(now))
    assert host.flows == {} and host.context.connections == 0
