"""dynapot._fastpath (the C receive thread) against the Python stack it stands in for.

The thread answers ARP requests, ICMP echo requests and ordinary SYNs to open ports without
waking Python, and every frame still reaches Python with the reply C sent (or None), so
exactly one of the two replies.  An observer must not be able to tell which one did:
whenever C answers, its reply has to be byte for byte the frame Python would have sent
(`dynapot.netstack.arp` for ARP, the host stack and the personality's `echo_reply` and
`syn_ack` otherwise, with the same IP ID counters, ISN generator and timestamp clock).  C may
decline frames Python answers (Python then answers them), never the other way round.

Everything here goes through `Responder.answer()`, the thread's decision without IO (its
`now` standing for the monotonic clock), so no socket, root or sleep is needed.  Checked:

- `Counter` and `Isn`: the atomic IP ID counter and the locked ISN generator, against the
  engine's pure-Python ones;
- ARP: generated frames give exactly `ArpResponder.receive`'s reply (or none), and the
  address table survives bind/unbind churn;
- address checks: sequences of evidence, answers to our probes, ARP probes, routed and spoofed
  IPv4 give exactly `netstack.arpcheck`'s notes and probes, and the same routers;
- echo and SYN: real nmap-os-db personalities (and variants for values the database lacks)
  compiled twice with the same seed, one feeding C its `echo_recipe()`/`syn_recipe()`, the
  other a real `HostStack`; replies must be equal, IP IDs included where they are
  deterministic;
- the frames C declines (each differing from an answered one in one respect), repeated SYNs,
  the recipes and arguments it refuses;
- the sensor wired to a Responder: nothing is answered twice, a released address is answered
  by neither, and Python adopts the connections of the SYNs C answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import os
import random
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from dynapot._fastpath import Counter, Isn, Responder
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sensor_runtime import Events as ListedEvents
from test_sensor_runtime import FakeRaw

from dynapot.honeyd import parse_config
from dynapot.netstack.arp import ArpResponder, SendFrame, build_probe
from dynapot.netstack.arpcheck import AddressChecks, Note
from dynapot.netstack.events import SendPacket
from dynapot.netstack.host import HostStack, PortPolicy
from dynapot.netstack.packets import (
    BROADCAST_MAC,
    Malformed,
    build_arp_frame,
    build_icmp,
    build_ipv4,
    build_tcp_packet,
    build_udp_packet,
    checksum,
    parse_arp,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)
from dynapot.netstack.types import ETH_P_ARP, IPPROTO_ICMP, IPPROTO_TCP, TcpSegment
from dynapot.personality.catalog import PersonalityCatalog
from dynapot.personality.engine import HostPersonality, _PyCounter, _PyIsn, compile_personality
from dynapot.personality.nmap_probes import (
    ECN_OPTIONS,
    ECN_URGENT,
    ECN_WINDOW,
    PROBE_WINDOWS,
    SEQ_OPTIONS,
    SEQ_WINDOWS,
    T_PROBES,
)
from dynapot.personality.osdb import Fingerprint, fingerprints_by_name, load_osdb
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.runtime import Sensor

OSDB = Path("/usr/share/nmap/nmap-os-db")

HOST_IP = 0xC6120064  # 198.18.0.100: the virtual host answering pings
HOST_MAC = bytes.fromhex("02c612000064")
OTHER_IP = 0xC6120065  # another bound address (ARP only)
OTHER_MAC = bytes.fromhex("02c612000065")
THIRD_IP = 0x0A000001
THIRD_MAC = bytes.fromhex("00163e000001")
BINDINGS = {HOST_IP: HOST_MAC, OTHER_IP: OTHER_MAC, THIRD_IP: THIRD_MAC}
UNBOUND_IP = 0xC6120066
PEER_IP = 0xC6120003
PEER_MAC = bytes.fromhex("020000000003")
STRANGER_MAC = bytes.fromhex("020000000099")
ARP_HEAD = b"\x00\x01\x08\x00\x06\x04"
NOW = 1.0

# IP ID kinds and DF modes as _fastpath and the engine number them.
CONST, RD, INC = 1, 2, 3
DF_NO, DF_YES, DF_SAME, DF_OPPOSITE = 0, 1, 2, 3
STATS_KEYS = {
    "received",
    "answered_arp",
    "answered_echo",
    "answered_syn",
    "dropped",
    "silenced",
    "send_errors",
    "recv_errors",
    "queued",
    "queued_bytes",
    "checks",
    "check_busy",
    "check_limited",
    "routed",
    "probes_noted",
    "routers",
}

# Real fingerprints, each picked for how it answers pings (nmap's SEQ.II/SS and IE.DFI/CD).
PANEL = {
    "Linux 5.4": "II=I (own counter, TI=Z), DFI=N, CD=S",
    "Microsoft Windows 10": "II=I on the counter TCP shares (SS=S), DFI=N, CD=Z",
    "F5 BIG-IP AFM firewall": "II=RI, DFI=Y",
    "Cisco 1921 router (IOS 15.1)": "II=RI, DFI=S",
    "Asus 4G-N12 WAP": "II=I on an ICMP-only counter (SS=O), DFI=O, CD=Z",
    "Netgear FS752TS switch": "II=F558 (a constant), DFI=S",
    "D-Link DWL-G710 WAP": "II=1 (a constant), DFI=S",
    "IBM InfoPrint 1140 printer": "II=Z, DFI=Y",
    "Canon MF4360-4390 or 4370dn printer": "II=BI (shared), DFI=S, CD=Z",
    "HP LaserJet 4250 (JetDirect) printer": "II=I, DFI=S",
    "FreeNAS 9.10 (FreeBSD 10.3-STABLE)": "no IE line: the family defaults",
}
# Values no nmap-os-db entry has, on real fingerprints: (base, {test: {attribute: value}}).
VARIANTS = {
    "Linux 5.4 [II=RD, CD=O]": ("Linux 5.4", {"SEQ": {"II": "RD"}, "IE": {"CD": "O"}}),
    "Microsoft Windows 10 [DFI=Y, CD=A5]": ("Microsoft Windows 10", {"IE": {"DFI": "Y", "CD": "A5"}}),
}
# More real fingerprints for the SYN/ACK, each picked for how it answers an ordinary SYN (the IP ID
# rule is SEQ.TI, the timestamp clock SEQ.TS, the shape T1 and OPS/WIN).
SYN_PANEL = {
    "FreeBSD 10.3-RELEASE": "TS=22: a 2^34 Hz clock (the 64-bit arithmetic), DF",
    "FreeBSD 11.3-RELEASE": "TS=20, TI=Z, MSS 16344",
    "Nokia S60 mobile phone (Symbian OS 9.3)": "TS=14 (1 MHz), TTL 69, long option suffixes",
    "Aastra RFP L32 IP DECT WAP": "TS=8 (250 Hz), TI=Z",
    "Apple AirPort Express WAP": "TS=0: TSval zero (sent as 1), TSecr echoed",
    "Cisco C7200 router (IOS 15)": "TS=0 with both timestamp fields zero",
    "cab A4+/300 label printer": "TSecr zero, TTL 32, WS without NOPs",
    "Digi One SP serial-to-Ethernet bridge": "TI=1: a constant IP ID other than zero",
    "APC 7940 or 7723 Network Management Card (AOS 3.7.3 - 3.7.4)": "TI=RI, no options at all without TS",
    "Netgear PS105 print server": "T1 F=APS: a SYN/ACK with PSH",
    "3Com 3016 router": "TS=1 (2 Hz), no DF",
}
SYN_VARIANTS = {
    "Linux 5.4 [TI=RI, TS=8]": ("Linux 5.4", {"SEQ": {"TI": "RI", "TS": "8"}}),
    "Microsoft Windows 10 [TI=BI, TS=U, T1.DF=N]": (
        "Microsoft Windows 10",
        {"SEQ": {"TI": "BI", "TS": "U"}, "T1": {"DF": "N"}},
    ),
}


# --------------------------------------------------------------------------- helpers


@functools.cache
def osdb() -> dict[str, Fingerprint]:
    if not OSDB.exists():
        if os.environ.get("CI"):
            pytest.fail("nmap is not installed (the set-up installs it)")
        pytest.skip("nmap is not installed")
    return fingerprints_by_name(load_osdb(OSDB))


def fingerprint(name: str) -> Fingerprint:
    """A panel fingerprint, or a variant of one with some attributes replaced."""
    variants = {**VARIANTS, **SYN_VARIANTS}
    if name not in variants:
        return osdb()[name]
    base_name, changes = variants[name]
    base = osdb()[base_name]
    tests = {test: dict(attrs) for test, attrs in base.tests.items()}
    for test, attrs in changes.items():
        tests.setdefault(test, {}).update(attrs)
    return Fingerprint(name, base.line, base.classes, base.cpe, tests)


def twins(fp: Fingerprint, seed: int) -> tuple[HostPersonality, HostPersonality]:
    """Two personalities in the same state (same seed, uptime and start time)."""
    a, b = (compile_personality(fp, seed=seed, uptime=86400.0, now=0.0) for _ in range(2))
    return a, b


def responder(recipe: tuple | None = None) -> Responder:
    """A Responder (no socket) with BINDINGS bound and `recipe` answering pings for HOST_IP."""
    r = Responder(-1)
    for ip, mac in BINDINGS.items():
        r.bind(ip, mac)
    if recipe is not None:
        r.set_echo(HOST_IP, recipe)
    return r


def with_ip_fields(packet: bytes, *, frag: int | None = None, total: int | None = None) -> bytes:
    """`packet` with its IPv4 flags/offset word or total length replaced, header re-checksummed."""
    data = bytearray(packet)
    if frag is not None:
        data[6:8] = frag.to_bytes(2, "big")
    if total is not None:
        data[2:4] = total.to_bytes(2, "big")
    hl = (data[0] & 0x0F) * 4
    data[10:12] = b"\0\0"
    data[10:12] = checksum(bytes(data[:hl])).to_bytes(2, "big")
    return bytes(data)


def with_ip_id(packet: bytes, ident: int) -> bytes:
    """`packet` with another IP ID (and the header checksum that goes with it)."""
    data = bytearray(packet)
    data[4:6] = ident.to_bytes(2, "big")
    data[10:12] = b"\0\0"
    data[10:12] = checksum(bytes(data[:20])).to_bytes(2, "big")
    return bytes(data)


def ip_id(frame: bytes) -> int:
    return int.from_bytes(frame[18:20], "big")


@dataclass(frozen=True)
class Ping:
    """An ICMP echo request frame, every field a test may vary."""

    src: int = PEER_IP
    src_mac: bytes = PEER_MAC
    dst: int = HOST_IP
    dst_mac: bytes = HOST_MAC
    df: bool = False
    evil: bool = False  # the reserved flag bit (RFC 3514): neither side looks at it
    tos: int = 0
    ttl: int = 64
    ip_ident: int = 1
    icmp_type: int = 8
    code: int = 0
    ident: int = 0x1234
    seq: int = 1
    payload: bytes = b"0123456789abcdef"
    options: bytes = b""
    padding: bytes = b""

    def packet(self) -> bytes:
        message = build_icmp(self.icmp_type, self.code, self.ident << 16 | self.seq, self.payload)
        packet = build_ipv4(
            self.src,
            self.dst,
            IPPROTO_ICMP,
            message,
            self.ttl,
            self.ip_ident,
            self.df,
            self.tos,
            self.options,
        )
        return with_ip_fields(packet, frag=0x8000 | 0x4000 * self.df) if self.evil else packet

    def frame(self) -> bytes:
        return self.dst_mac + self.src_mac + b"\x08\x00" + self.packet() + self.padding


def python_echo(stack: HostStack, frame: bytes, checksums_ok: bool = True) -> bytes | None:
    """The frame Python sends for `frame` (the sensor's IPv4 path for one host), or None."""
    ip = parse_ipv4(frame[14:], checksums_ok)
    if type(ip) is Malformed or ip.dst != stack.ip:
        return None
    packets = [out.packet for out in stack.receive(ip, NOW, checksums_ok) if type(out) is SendPacket]
    assert len(packets) <= 1
    return frame[6:12] + stack.mac + b"\x08\x00" + packets[0] if packets else None


def arp_frame(
    op: int = 1,
    sender_mac: bytes = PEER_MAC,
    sender_ip: int = PEER_IP,
    target_ip: int = HOST_IP,
    *,
    target_mac: bytes = bytes(6),
    eth_src: bytes | None = None,
    eth_dst: bytes = BROADCAST_MAC,
    head: bytes = ARP_HEAD,
) -> bytes:
    body = head + struct.pack("!H6sI6sI", op, sender_mac, sender_ip, target_mac, target_ip)
    return eth_dst + (sender_mac if eth_src is None else eth_src) + b"\x08\x06" + body


def python_judge(
    frame: bytes,
    bindings: dict[int, bytes] = BINDINGS,
    checks: AddressChecks | None = None,
    checksums_ok: bool = True,
    now: float = NOW,
) -> tuple[bytes | None, int]:
    """What the sensor's Python path does with an ARP frame (or IPv4 from a bound address): the
    probe of an address check (`netstack.arpcheck`) and its note, or `netstack.arp`'s answer."""
    eth = parse_ethernet(frame)
    if type(eth) is Malformed:
        return None, Note.NONE
    checks = AddressChecks(bindings) if checks is None else checks
    probe, note = checks.judge(eth, checksums_ok, now)
    if note or eth.ethertype != ETH_P_ARP:
        return probe, note
    arp = parse_arp(eth.payload)
    if type(arp) is Malformed:
        return None, Note.NONE
    result = ArpResponder(bindings).receive(eth, arp)
    return (result.frame if type(result) is SendFrame else None), Note.NONE


def python_arp(frame: bytes, bindings: dict[int, bytes] = BINDINGS) -> bytes | None:
    """The frame the sensor's Python path sends for an ARP frame, or None."""
    return python_judge(frame, bindings)[0]


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
peer_ips = st.integers(0x01000000, 0xDFFFFFFF).filter(lambda ip: ip >> 24 != 127 and ip not in BINDINGS)
pings = st.builds(
    Ping,
    src=peer_ips,
    src_mac=macs,
    df=st.booleans(),
    evil=st.booleans(),
    tos=st.integers(0, 255),
    ttl=st.integers(1, 255),
    ip_ident=u16,
    code=st.integers(0, 255),
    ident=u16,
    seq=u16,
    payload=st.binary(max_size=1472),
    options=st.binary(max_size=40),
    padding=st.binary(max_size=32),
)


# --------------------------------------------------------------------------- Counter


def test_counter_advance_returns_the_value_before_and_wraps() -> None:
    c = Counter(65534)
    assert c.advance(1) == 65534
    assert c.advance(3) == 65535
    assert c.value == 2  # 65538 mod 65536
    assert c.advance(0) == 2 and c.value == 2
    assert Counter().value == 0
    assert Counter(70000).value == 70000 & 0xFFFF


def test_counter_value_setter_masks_to_16_bits() -> None:
    c = Counter(5)
    c.value = 0x12345
    assert c.value == 0x2345
    c.value = -1
    assert c.value == 0xFFFF
    with pytest.raises(AttributeError):
        del c.value
    with pytest.raises(TypeError):
        c.value = "1"  # type: ignore[assignment]


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(-(2**70), 2**70),
    ops=st.lists(st.tuples(st.booleans(), st.integers(-(2**70), 2**70)), max_size=30),
)
def test_counter_behaves_as_the_engines_python_counter(start: int, ops: list[tuple[bool, int]]) -> None:
    c, model = Counter(start), _PyCounter(start)
    assert c.value == model.value
    for assign, number in ops:
        if assign:
            c.value = model.value = number
        else:
            assert c.advance(number) == model.advance(number)
        assert c.value == model.value


def test_counter_advances_are_atomic_across_threads() -> None:
    c = Counter(123)
    seen: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(len(seen))

    def work(out: list[int]) -> None:
        barrier.wait()
        advance = c.advance
        for _ in range(10000):
            out.append(advance(1))

    threads = [threading.Thread(target=work, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.value == (123 + 40000) & 0xFFFF
    values = [v for out in seen for v in out]
    assert len(set(values)) == 40000  # no number was handed out twice


# --------------------------------------------------------------------------- Isn

# Times as the monotonic clock gives them, and multiples of 1/8 s: exact in binary, so that
# n * dt * 10 lands exactly on .5 (round-half-even) as often as it can.
times = st.one_of(
    st.integers(-8000, 800000).map(lambda k: k / 8),
    st.integers(-1000, 100000).map(lambda k: k / 10),
    st.floats(-1e4, 1e6, allow_nan=False),
)


def test_isn_rounds_half_to_even_like_python() -> None:
    """n * dt * 10 = 2.5 rounds to 2, 7.5 to 8 (Python's round); below 1 unit still moves on by one."""
    for isn in (Isn(1, [1], 0, 0.0), _PyIsn(1, [1], 0, 0.0)):
        assert [isn.next(t) for t in (0.25, 1.0, 1.125, 1.175, 1.175, 0.0)] == [2, 10, 11, 12, 13, 14]
    for isn in (Isn(3, [3, 0], 100, 0.0), _PyIsn(3, [3, 0], 100, 0.0)):
        assert [isn.next(t) for t in (0.25, 0.5, 1.0)] == [100 + 3 * 8, 124, 124 + 3 * 15]


@settings(max_examples=300, deadline=None)
@given(
    g=st.one_of(st.integers(0, 16), st.integers(0, 2**32), st.integers(0, 2**64 - 1)),
    pattern=st.lists(st.one_of(st.integers(-3, 40), st.integers(0, 2**20)), min_size=1, max_size=64),
    start=u32,
    origin=times,
    ops=st.lists(st.one_of(times, st.tuples(u32)), max_size=40),
)
def test_isn_behaves_as_the_engines_python_isn(
    g: int, pattern: list[int], start: int, origin: float, ops: list[float | tuple[int]]
) -> None:
    """The same numbers for the same calls: times equal, decreasing, far apart; value assignments."""
    c, model = Isn(g, pattern, start, origin), _PyIsn(g, pattern, start, origin)
    assert c.value == model.value == start
    for op in ops:
        if isinstance(op, tuple):
            c.value = model.value = op[0]
        else:
            assert c.next(op) == model.next(op)
        assert c.value == model.value


def test_isn_value_setter_and_arguments() -> None:
    isn = Isn(1, [0], 5, 0.0)
    assert isn.value == 5 and isn.next(1.0) == 5  # n = 0: the ISN stands still
    isn.value = 2**32 + 7
    assert isn.value == 7 and isn.next(2.0) == 7
    isn.value = -1
    assert isn.value == 0xFFFFFFFF
    with pytest.raises(AttributeError):
        del isn.value
    with pytest.raises(TypeError):
        isn.value = "1"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        isn.next("1.0")  # type: ignore[arg-type]
    assert Isn(1, [1], 2**32 + 3, 0.0).value == 3
    assert Isn(1, range(64), 0, 0.0).next(0.0) == 0  # 64 entries; the first is 0
    for args, error in (
        ((1, [], 0, 0.0), ValueError),
        ((1, [1] * 65, 0, 0.0), ValueError),
        ((1, 5, 0, 0.0), TypeError),
        ((1, ["1"], 0, 0.0), TypeError),
        ((1, [1], 0, "now"), TypeError),
    ):
        with pytest.raises(error):
            Isn(*args)


def test_isn_is_atomic_across_threads() -> None:
    """Python's threads and the receive thread draw ISNs from one generator: none is lost."""
    isn = Isn(3, [1, 2, 3], 0, 1.0)
    seen: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(len(seen))

    def work(out: list[int]) -> None:
        barrier.wait()
        draw = isn.next
        for _ in range(5000):
            out.append(draw(1.0))  # dt = 0: each call moves on by g * n_k

    threads = [threading.Thread(target=work, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isn.value == 3 * (6666 * 6 + 1 + 2)  # 20000 draws through the pattern 1, 2, 3
    values = [v for out in seen for v in out]
    assert len(set(values)) == 20000


def test_the_engine_uses_the_shared_isn() -> None:
    a, _ = twins(fingerprint("Linux 5.4"), 3)
    recipe = tcp_recipe(a)
    assert type(recipe[2]) is Isn and recipe[2] is a.syn_recipe()[2]
    assert a.isn(5.0) == recipe[2].value  # the personality draws from the object C holds


# --------------------------------------------------------------------------- ARP

ARP_CASES: dict[str, tuple[bytes, bool]] = {
    "request": (arp_frame(), True),
    "request for another bound address": (arp_frame(target_ip=THIRD_IP), True),
    "request padded to 60 bytes": (arp_frame() + bytes(18), True),
    "request sent unicast to the host": (arp_frame(eth_dst=HOST_MAC, target_mac=HOST_MAC), True),
    "probe (sender IP 0)": (arp_frame(sender_ip=0), False),
    "probe from our own MAC": (arp_frame(sender_mac=HOST_MAC, sender_ip=0), False),
    "broadcast sender MAC": (arp_frame(sender_mac=BROADCAST_MAC), False),
    "multicast sender MAC": (arp_frame(sender_mac=bytes.fromhex("01005e000001")), False),
    "zero sender MAC": (arp_frame(sender_mac=bytes(6)), False),
    "broadcast sender IP": (arp_frame(sender_ip=0xFFFFFFFF), False),
    "multicast sender IP": (arp_frame(sender_ip=0xE0000001), False),
    "spoofed requester": (arp_frame(eth_src=STRANGER_MAC), False),
    # evidence another machine has a bound address: not answered, but checked (our probe)
    "announcement of a bound address by another MAC": (arp_frame(1, STRANGER_MAC, HOST_IP, HOST_IP), True),
    "a bound address asking, with its own MAC": (arp_frame(1, OTHER_MAC, OTHER_IP, HOST_IP), False),
    "a bound address asking, with another MAC": (arp_frame(1, STRANGER_MAC, OTHER_IP, HOST_IP), True),
    "a reply from a bound address by another MAC": (arp_frame(2, STRANGER_MAC, OTHER_IP, PEER_IP), True),
    "reply": (arp_frame(op=2), False),
    "opcode 3": (arp_frame(op=3), False),
    "unbound target": (arp_frame(target_ip=UNBOUND_IP), False),
    "truncated (41 bytes)": (arp_frame()[:41], False),
    "hardware type 6": (arp_frame(head=b"\x00\x06" + ARP_HEAD[2:]), False),
    "protocol IPv6": (arp_frame(head=b"\x00\x01\x86\xdd\x06\x10"), False),
    "hardware length 8": (arp_frame(head=ARP_HEAD[:4] + b"\x08\x04"), False),
}


@pytest.mark.parametrize("case", ARP_CASES)
def test_arp_cases(case: str) -> None:
    frame, answered = ARP_CASES[case]
    expected = python_judge(frame)
    assert (expected[0] is not None) == answered  # the case says what it claims to say
    assert responder().judge(frame) == expected
    assert responder().answer(frame, False) == expected[0]  # checksum offload is irrelevant to ARP


def test_arp_reply_layout() -> None:
    reply = responder().answer(arp_frame())
    assert reply == build_arp_frame(PEER_MAC, 2, HOST_MAC, HOST_IP, PEER_MAC, PEER_IP)


special_macs = st.sampled_from(
    [PEER_MAC, STRANGER_MAC, HOST_MAC, OTHER_MAC, bytes(6), BROADCAST_MAC, bytes.fromhex("01005e7f0001")]
)
special_ips = st.sampled_from(
    [0, 0xFFFFFFFF, 0xE0000001, 0xEFFFFFFF, 0x7F000001, PEER_IP, UNBOUND_IP, *BINDINGS]
)
arp_heads = st.one_of(
    st.just(ARP_HEAD),
    st.sampled_from([b"\x00\x06" + ARP_HEAD[2:], b"\x00\x01\x86\xdd\x06\x04", ARP_HEAD[:4] + b"\x06\x10"]),
    st.binary(min_size=6, max_size=6),
)


@st.composite
def arp_frames(draw: st.DrawFn) -> bytes:
    sender_mac = draw(st.one_of(special_macs, macs))
    frame = arp_frame(
        draw(st.one_of(st.sampled_from([1, 1, 1, 2]), st.integers(0, 0xFFFF))),
        sender_mac,
        draw(st.one_of(special_ips, st.integers(0, 0xFFFFFFFF))),
        draw(st.one_of(st.sampled_from(list(BINDINGS)), special_ips, st.integers(0, 0xFFFFFFFF))),
        target_mac=draw(st.one_of(special_macs, macs)),
        eth_src=draw(st.one_of(st.just(sender_mac), special_macs, macs)),
        eth_dst=draw(st.one_of(st.just(BROADCAST_MAC), special_macs, macs)),
        head=draw(arp_heads),
    )
    cut = draw(st.one_of(st.none(), st.integers(0, len(frame))))
    return (frame if cut is None else frame[:cut]) + draw(st.binary(max_size=24))


@settings(max_examples=1000, deadline=None)
@given(frame=arp_frames(), checksums_ok=st.booleans())
def test_arp_answers_equal_the_python_responder(frame: bytes, checksums_ok: bool) -> None:
    assert responder().judge(frame, checksums_ok) == python_judge(frame)


def test_the_address_table_survives_churn() -> None:
    """Thousands of binds (the table grows past its first 1024 slots) and unbinds (tombstones)."""
    r = Responder(-1)
    model: dict[int, bytes] = {}
    base = 0x0A100000
    for i in range(3000):
        model[base + i] = bytes.fromhex("020000") + i.to_bytes(3, "big")
        r.bind(base + i, model[base + i])
    for i in range(0, 3000, 2):
        r.unbind(base + i)
        del model[base + i]
    for i in range(0, 3000, 6):  # some come back, with new MACs
        model[base + i] = bytes.fromhex("0a0000") + i.to_bytes(3, "big")
        r.bind(base + i, model[base + i])
    for i in range(1, 300, 2):  # a bound address bound again keeps its entry, with the new MAC
        model[base + i] = STRANGER_MAC
        r.bind(base + i, STRANGER_MAC)
    r.unbind(UNBOUND_IP)  # unbinding an unknown address is harmless
    for i in range(-5, 3005):
        frame = arp_frame(target_ip=base + i)
        assert r.answer(frame) == python_arp(frame, model), i


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 3)), max_size=80))
def test_bind_and_unbind_follow_a_dict(ops: list[tuple[bool, int, int]]) -> None:
    r = Responder(-1)
    model: dict[int, bytes] = {}
    for bind, n, m in ops:
        ip = 0xC0A80000 + n
        if bind:
            model[ip] = bytes((2, 0, 0, 0, n, m))
            r.bind(ip, model[ip])
        else:
            model.pop(ip, None)
            r.unbind(ip)
    for n in range(41):
        frame = arp_frame(target_ip=0xC0A80000 + n)
        assert r.answer(frame) == python_arp(frame, model)


# --------------------------------------------------------------------------- address checks

ROUTER_MAC = bytes.fromhex("0200000000fe")
GATEWAY_IP = 0xC6120001
NETWORKS = [(0xC6120002, 16), (0x0A000000, 8)]
FAR_IP = 0x08080808
# weighted towards one address and one stranger, so that checks start, overlap and get answered
check_macs = st.sampled_from(
    [STRANGER_MAC] * 4 + [PEER_MAC, ROUTER_MAC, HOST_MAC, OTHER_MAC, bytes(6), BROADCAST_MAC]
)
check_ips = st.sampled_from([HOST_IP] * 4 + [OTHER_IP, THIRD_IP, UNBOUND_IP])
# steps of the clock, in ms: on and around the window (500), the interval (1000) and the cost (50)
check_steps = st.sampled_from([0, 0, 0, 1, 49, 50, 51, 100, 250, 499, 500, 501, 999, 1000, 1001, 5000])
CHECK_KINDS = (
    ["announce"] * 2
    + ["answer"] * 3
    + ["ipv4", "far"] * 2
    + ["request", "reply", "probe", "gateway", "who-has"]
)


def udp_from(
    src: int, mac: bytes, dst: int = PEER_IP, dst_mac: bytes = PEER_MAC, *, bad_sum: bool = False
) -> bytes:
    packet = build_udp_packet(src, dst, 53, 5353, b"x", 64, 1, False)
    if bad_sum:
        packet = packet[:10] + bytes((packet[10] ^ 1,)) + packet[11:]
    return dst_mac + mac + b"\x08\x00" + packet


@st.composite
def check_frames(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A frame that matters to the address checks (evidence, an answer to a probe, a probe, routed
    or spoofed IPv4, a router or the gateway showing itself), or an ordinary request."""
    ip, mac = draw(check_ips), draw(check_macs)
    ours = BINDINGS.get(ip, HOST_MAC)
    kind = draw(st.sampled_from(CHECK_KINDS))
    ok = draw(st.booleans())
    if kind == "announce":
        return arp_frame(1, mac, ip, ip), ok
    if kind == "request":
        return arp_frame(1, mac, ip, PEER_IP), ok
    if kind == "reply":
        return arp_frame(
            2, mac, ip, PEER_IP, target_mac=draw(st.sampled_from([PEER_MAC, bytes(6), BROADCAST_MAC]))
        ), ok
    if kind == "answer":  # what a machine with the address sends to our probe
        return arp_frame(2, mac, ip, 0, target_mac=ours, eth_dst=ours), ok
    if kind == "probe":
        return arp_frame(1, mac, 0, ip), ok
    if kind == "ipv4":
        return udp_from(ip, draw(st.sampled_from([mac, ROUTER_MAC])), bad_sum=draw(st.booleans())), ok
    if kind == "far":
        src = draw(st.sampled_from([FAR_IP] * 4 + [0, 0x7F000001, 0xA9FE0001, 0xE0000001, UNBOUND_IP]))
        return udp_from(src, draw(st.sampled_from([ROUTER_MAC, mac]))), ok
    if kind == "gateway":
        if draw(st.booleans()):
            return arp_frame(1, mac, GATEWAY_IP, PEER_IP), ok
        return udp_from(GATEWAY_IP, mac), ok
    return arp_frame(1, PEER_MAC, PEER_IP, ip), ok


check_ops = st.one_of(
    st.tuples(st.just("frame"), check_steps, check_frames()),
    st.tuples(st.just("unbind"), check_steps, check_ips),
    st.tuples(st.just("bind"), check_steps, check_ips),
)


@settings(max_examples=600, deadline=None)
@given(ops=st.lists(check_ops, min_size=5, max_size=80), gateway=st.sampled_from([0, GATEWAY_IP]))
def test_address_checks_equal_the_python_rules(ops: list[tuple], gateway: int) -> None:
    """The thread's checks and `netstack.arpcheck`, frame after frame: the same probes, notes,
    answers, routers and counters. A confirmed check is followed by what the sensor does: the
    address unbound on both sides."""
    assert_checks_agree(ops, gateway)


def test_address_checks_agree_over_long_runs() -> None:
    """The same over 40 runs of 400 steps (hypothesis keeps its examples short): every note
    occurs many times."""
    seen: dict[int, int] = {}
    for seed in range(40):
        rng = random.Random(seed)
        ops: list[tuple] = []
        for _ in range(400):
            step = rng.choice([0, 0, 0, 1, 49, 50, 51, 100, 250, 499, 500, 501, 999, 1000, 1001])
            ip = rng.choice([HOST_IP] * 4 + [OTHER_IP, THIRD_IP, UNBOUND_IP])
            roll = rng.random()
            if roll < 0.03:
                ops.append(("unbind", step, ip))
            elif roll < 0.08:
                ops.append(("bind", step, ip))
            else:
                ops.append(("frame", step, random_check_frame(rng)))
        for note, count in assert_checks_agree(ops, rng.choice([0, GATEWAY_IP])).items():
            seen[note] = seen.get(note, 0) + count
    assert all(seen.get(note, 0) >= 20 for note in Note), seen


def random_check_frame(rng: random.Random) -> tuple[bytes, bool]:
    """A frame as `check_frames` draws them, from a seeded generator."""
    ip = rng.choice([HOST_IP] * 4 + [OTHER_IP, THIRD_IP, UNBOUND_IP])
    mac = rng.choice(
        [STRANGER_MAC] * 4 + [PEER_MAC, ROUTER_MAC, HOST_MAC, OTHER_MAC, bytes(6), BROADCAST_MAC]
    )
    ours = BINDINGS.get(ip, HOST_MAC)
    kind = rng.choice(CHECK_KINDS)
    ok = rng.random() < 0.8
    frames = {
        "announce": lambda: arp_frame(1, mac, ip, ip),
        "request": lambda: arp_frame(1, mac, ip, PEER_IP),
        "reply": lambda: arp_frame(
            2, mac, ip, PEER_IP, target_mac=rng.choice([PEER_MAC, bytes(6), BROADCAST_MAC])
        ),
        "answer": lambda: arp_frame(2, mac, ip, 0, target_mac=ours, eth_dst=ours),
        "probe": lambda: arp_frame(1, mac, 0, ip),
        "ipv4": lambda: udp_from(ip, rng.choice([mac, ROUTER_MAC]), bad_sum=rng.random() < 0.2),
        "far": lambda: udp_from(
            rng.choice([FAR_IP] * 4 + [0, 0x7F000001, UNBOUND_IP]), rng.choice([ROUTER_MAC, mac])
        ),
        "gateway": lambda: rng.choice([arp_frame(1, mac, GATEWAY_IP, PEER_IP), udp_from(GATEWAY_IP, mac)]),
        "who-has": lambda: arp_frame(1, PEER_MAC, PEER_IP, ip),
    }
    return frames[kind](), ok


def assert_checks_agree(ops: list[tuple], gateway: int) -> dict[int, int]:
    """Run `ops` through a Responder and through `AddressChecks`; returns how often each note came."""
    r = responder()
    r.set_networks(NETWORKS, gateway)
    bindings = dict(BINDINGS)
    checks = AddressChecks(bindings)
    checks.set_networks(NETWORKS, gateway)
    notes: dict[int, int] = {}
    now_ms = 5_000_000
    for op, step, arg in ops:
        now_ms += step
        now = now_ms / 1000
        if op == "unbind" or (op == "bind" and arg == UNBOUND_IP):
            r.unbind(arg)
            bindings.pop(arg, None)
            checks.forget(arg)
            continue
        if op == "bind":
            r.bind(arg, BINDINGS[arg])
            bindings[arg] = BINDINGS[arg]
            continue
        frame, ok = arg
        c = r.judge(frame, ok, now=now)
        py = python_judge(frame, bindings, checks, ok, now)
        assert c == py, (frame.hex(), ok, now)
        notes[py[1]] = notes.get(py[1], 0) + 1
        if py[1] == Note.CONFIRMED:
            ip = int.from_bytes(frame[28:32], "big")
            assert r.silenced(ip) == checks.silenced[ip] == frame[22:28]
            r.unbind(ip)
            bindings.pop(ip)
            checks.forget(ip)
        if py[1] == Note.CHECK:
            probed = int.from_bytes(py[0][38:42], "big")
            assert py[0] == build_probe(BINDINGS[probed], probed)
    assert r.routers() == checks.routers_oldest_first()
    stats = r.stats()
    counted = {
        Note.CHECK: "checks",
        Note.CONFIRMED: "silenced",
        Note.BUSY: "check_busy",
        Note.LIMITED: "check_limited",
        Note.ROUTED: "routed",
        Note.PROBED: "probes_noted",
    }
    assert {key: stats[key] for key in counted.values()} == {
        key: notes.get(n, 0) for n, key in counted.items()
    }
    assert stats["routers"] == len(checks.routers)
    return notes


def test_a_check_runs_and_is_answered() -> None:
    """Evidence -> our probe; the answer from another MAC within the window -> silenced, and
    every later ARP request, ping and SYN for the address left to Python (which gives it back)."""
    a, _ = twins(fingerprint("Linux 5.4"), 1)
    r = responder(a.echo_recipe())
    announcement = arp_frame(1, STRANGER_MAC, HOST_IP, HOST_IP)
    probe, note = r.judge(announcement, now=10.0)
    assert note == Note.CHECK and probe == build_probe(HOST_MAC, HOST_IP)
    assert r.answer(arp_frame(), now=10.1) is not None and r.answer(Ping().frame(), now=10.1) is not None
    assert r.judge(announcement, now=10.2) == (None, Note.BUSY)
    assert r.silenced(HOST_IP) is None
    answer = arp_frame(2, STRANGER_MAC, HOST_IP, 0, target_mac=HOST_MAC, eth_dst=HOST_MAC)
    assert r.judge(answer, now=10.499) == (None, Note.CONFIRMED)
    assert r.silenced(HOST_IP) == STRANGER_MAC
    assert r.answer(arp_frame(), now=10.5) is None and r.answer(Ping().frame(), now=10.5) is None
    assert r.judge(announcement, now=10.6) == (None, Note.NONE)  # no longer ours: no more checks
    assert r.answer(arp_frame(target_ip=OTHER_IP)) is not None  # the other addresses are untouched
    stats = r.stats()
    assert (stats["checks"], stats["silenced"], stats["check_busy"]) == (1, 1, 1)
    r.unbind(HOST_IP)  # what the sensor does next
    assert r.silenced(HOST_IP) is None


def test_an_unanswered_check_keeps_the_address() -> None:
    r = responder()
    assert r.judge(arp_frame(1, STRANGER_MAC, HOST_IP, HOST_IP), now=10.0)[1] == Note.CHECK
    late = arp_frame(2, STRANGER_MAC, HOST_IP, 0, target_mac=HOST_MAC, eth_dst=HOST_MAC)
    assert r.judge(late, now=10.5) == (None, Note.LIMITED)  # after the window: evidence, one check a second
    assert r.answer(arp_frame(), now=10.5) is not None and r.silenced(HOST_IP) is None
    assert r.judge(late, now=11.0)[1] == Note.CHECK  # a second later: checked again


def test_a_syn_from_a_claimed_address_with_another_mac_starts_a_check() -> None:
    """Another machine seems to use one of our addresses: C checks (its probe is the frame's
    reply), keeps answering for the address, and silences it only when the probe is answered."""
    r, _ = syn_pair()
    r.set_tcp(OTHER_IP, tcp_recipe(twins(fingerprint("Linux 5.4"), 4)[0]))
    conflict = with_variants(SYN, src=HOST_IP, src_mac=STRANGER_MAC, dst=OTHER_IP, dst_mac=OTHER_MAC).frame()
    assert r.judge(conflict, now=T0) == (build_probe(HOST_MAC, HOST_IP), Note.CHECK)
    assert r.answer(SYN.frame(), now=T0) is not None and r.answer(arp_frame(), now=T0) is not None
    answer = arp_frame(2, STRANGER_MAC, HOST_IP, 0, target_mac=HOST_MAC, eth_dst=HOST_MAC)
    assert r.judge(answer, now=T0 + 0.2)[1] == Note.CONFIRMED
    assert r.stats()["silenced"] == 1
    assert (
        r.answer(with_variants(SYN, sport=2).frame(), now=T0 + 0.3) is None and r.answer(arp_frame()) is None
    )
    to_other = with_variants(SYN, dst=OTHER_IP, dst_mac=OTHER_MAC, sport=1).frame()
    assert r.answer(to_other, now=T0) is not None  # the other address is untouched


def test_routers_are_learned_and_their_ipv4_is_no_evidence() -> None:
    r = responder()
    assert r.judge(udp_from(FAR_IP, ROUTER_MAC), now=1.0) == (None, Note.NONE)
    assert r.routers() == []  # no networks known: nobody is taken for a router
    r.set_networks([(0xC6120000, 16)], 0)
    r.judge(udp_from(FAR_IP, ROUTER_MAC), now=1.0)
    for src in (0, 0x7F000001, 0xA9FE0101, 0xE0000001, 0xC6120999, UNBOUND_IP, THIRD_IP):
        r.judge(udp_from(src, STRANGER_MAC), now=1.0)  # none of these is forwarded by a router
    assert r.routers() == [ROUTER_MAC]
    assert r.judge(udp_from(HOST_IP, ROUTER_MAC), now=1.0) == (None, Note.ROUTED)
    assert r.judge(udp_from(HOST_IP, STRANGER_MAC), now=1.0)[1] == Note.CHECK
    many = [bytes((2, 0, 0, 0, 1, i)) for i in range(70)]
    for mac in many:
        r.judge(udp_from(FAR_IP, mac), now=2.0)
    assert r.routers() == many[-64:] and r.stats()["routers"] == 64  # the oldest went first
    for bad in ([(1, 33)], [(1, -1)], [(2**32, 8)], [(1, 8)] * 17, [1], ["x"]):
        with pytest.raises(ValueError):
            r.set_networks(bad, 0)
    with pytest.raises(TypeError):
        r.set_networks(5, 0)


# --------------------------------------------------------------------------- echo

ECHO_PANEL = [*PANEL, *VARIANTS]


def test_the_panel_covers_every_recipe_field() -> None:
    """The differential below is only as good as its panel: every DF mode, code rule and IP ID kind."""
    recipes = [twins(fingerprint(name), 1)[0].echo_recipe() for name in ECHO_PANEL]
    assert all(recipe is not None for recipe in recipes)
    assert {r[1] for r in recipes} == {DF_NO, DF_YES, DF_SAME, DF_OPPOSITE}
    codes = {r[2] for r in recipes}
    assert {-1, -2, 0} <= codes and any(code > 0 for code in codes)
    assert {r[3] for r in recipes} == {CONST, RD, INC}
    assert {(r[5], r[6]) for r in recipes if r[3] == INC} == {(1, 1), (256, 256), (1001, 1999)}
    constants = {r[4] for r in recipes if r[3] == CONST}
    assert 0 in constants and len(constants) >= 3


def check_ip_id_step(kind: int, low: int, high: int, before: int, after: int) -> None:
    """nmap's rule for a random IP ID sequence: RI steps 1001..1999 (never a multiple of 256),
    RD jumps above 20000 (as an unsigned 16-bit difference)."""
    step = (after - before) & 0xFFFF
    if kind == RD:
        assert step > 20000
    else:
        assert low <= step <= high and step % 256 != 0


class ReplyChecker:
    """C's reply beside Python's for one host: equal byte for byte, or, where both sides draw IP
    ID steps at random, equal apart from the IP ID, each IP ID sequence following nmap's rule."""

    def __init__(self, kind: int, low: int, high: int) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.random_ids = kind == RD or (kind == INC and low != high)
        self.last: tuple[int, int] | None = None  # (C's, Python's) previous IP ID

    def check(self, reply: bytes | None, expected: bytes | None, src_mac: bytes) -> None:
        assert reply is not None and expected is not None
        assert reply[:14] == src_mac + HOST_MAC + b"\x08\x00"
        if not self.random_ids:
            assert reply == expected
            return
        assert reply[14:] == with_ip_id(expected[14:], ip_id(reply))
        if self.last is not None:
            check_ip_id_step(self.kind, self.low, self.high, self.last[0], ip_id(reply))
            check_ip_id_step(self.kind, self.low, self.high, self.last[1], ip_id(expected))
        self.last = ip_id(reply), ip_id(expected)


@pytest.mark.parametrize("name", ECHO_PANEL)
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), requests=st.lists(pings, min_size=1, max_size=6))
def test_echo_replies_equal_the_personality(name: str, seed: int, requests: list[Ping]) -> None:
    a, b = twins(fingerprint(name), seed)
    recipe = a.echo_recipe()
    assert recipe is not None and recipe[:7] == b.echo_recipe()[:7]
    kind, low, high = recipe[3], recipe[5], recipe[6]
    r = responder(recipe)
    stack = HostStack(HOST_IP, HOST_MAC, b)
    checker = ReplyChecker(kind, low, high)
    for request in requests:
        frame = request.frame()
        checker.check(r.answer(frame), python_echo(stack, frame), request.src_mac)


@pytest.mark.parametrize(
    ("name", "step"), [("Microsoft Windows 10", 1), ("Canon MF4360-4390 or 4370dn printer", 256)]
)
def test_icmp_and_tcp_share_one_ip_id_counter(name: str, step: int) -> None:
    """SS=S: C's pings and Python's TCP replies number from the one counter, in turn."""
    personality, _ = twins(fingerprint(name), 5)
    r = responder(personality.echo_recipe())
    ids: list[int] = []
    for seq in range(3):
        reply = r.answer(Ping(seq=seq).frame())
        assert reply is not None
        ids.append(ip_id(reply))
        ids.append(personality.segment_shape(NOW, None).ip_id)  # a TCP segment of this host
    assert [(y - x) & 0xFFFF for x, y in itertools.pairwise(ids)] == [step] * 5


def test_a_constant_ip_id_is_a_snapshot_nobody_moves() -> None:
    personality, _ = twins(fingerprint("Netgear FS752TS switch"), 5)
    recipe = personality.echo_recipe()
    assert recipe is not None and recipe[3] == CONST
    r = responder(recipe)
    for _ in range(3):
        reply = r.answer(Ping().frame())
        assert reply is not None and ip_id(reply) == 0xF558


# --------------------------------------------------------------------------- declines


def linux_responder() -> tuple[Responder, HostStack]:
    a, b = twins(fingerprint("Linux 5.4"), 3)
    return responder(a.echo_recipe()), HostStack(HOST_IP, HOST_MAC, b)


def patched(mutate: Callable[[bytes], bytes]) -> bytes:
    """The default ping's frame with its IPv4 packet changed by `mutate`."""
    frame = Ping().frame()
    return frame[:14] + mutate(frame[14:])


def flip(offset: int) -> Callable[[bytes], bytes]:
    return lambda p: p[:offset] + bytes((p[offset] ^ 0x01,)) + p[offset + 1 :]


# Frames Python drops too: C must decline them, and the stack must stay silent as well.
BOTH_SILENT: dict[str, bytes] = {
    "bad IP header checksum": patched(flip(10)),
    "bad ICMP checksum": patched(flip(22)),
    "more fragments": patched(lambda p: with_ip_fields(p, frag=0x2000)),
    "fragment offset": patched(lambda p: with_ip_fields(p, frag=0x0001)),
    "DF and fragment offset": patched(lambda p: with_ip_fields(p, frag=0x4000 | 0x00B9)),
    "total length beyond the frame": patched(lambda p: with_ip_fields(p, total=len(p) + 4)),
    "total length shorter than an ICMP header": patched(lambda p: with_ip_fields(p, total=27)),
    "IP header length 4 words": patched(lambda p: with_ip_fields(bytes((0x44,)) + p[1:])),
    "IP version 6": patched(lambda p: with_ip_fields(bytes((0x65,)) + p[1:])),
    "IP header cut short": Ping().frame()[: 14 + 19],
    "echo reply (type 0)": Ping(icmp_type=0).frame(),
    "timestamp request (type 13)": Ping(icmp_type=13, payload=bytes(12)).frame(),
    "source 0.x": Ping(src=0x00010203).frame(),
    "source 127.x": Ping(src=0x7F000001).frame(),
    "source multicast": Ping(src=0xE0000001).frame(),
    "source broadcast": Ping(src=0xFFFFFFFF).frame(),
    "source the host itself": Ping(src=HOST_IP, src_mac=HOST_MAC).frame(),  # (another MAC: a conflict)
}
# Frames C leaves to Python although Python answers them (documented in _fastpath.c).
C_DECLINES: dict[str, tuple[bytes, bool]] = {
    "Ethernet broadcast": (Ping(dst_mac=BROADCAST_MAC).frame(), True),
    "Ethernet destination another bound host's MAC": (Ping(dst_mac=OTHER_MAC).frame(), True),
    "checksums not verifiable (offload)": (Ping().frame(), False),
    "source another bound address": (Ping(src=OTHER_IP, src_mac=OTHER_MAC).frame(), True),
}


def test_the_default_ping_is_answered() -> None:
    """The control for the decline tests: each of them changes one thing about this frame."""
    r, stack = linux_responder()
    frame = Ping().frame()
    assert r.answer(frame) is not None and python_echo(stack, frame) is not None


@pytest.mark.parametrize("case", BOTH_SILENT)
def test_frames_nobody_answers(case: str) -> None:
    r, stack = linux_responder()
    frame = BOTH_SILENT[case]
    assert r.answer(frame) is None
    assert python_echo(stack, frame) is None
    assert r.answer(Ping().frame()) is not None  # nothing was disturbed


@pytest.mark.parametrize("case", C_DECLINES)
def test_frames_c_leaves_to_python(case: str) -> None:
    r, stack = linux_responder()
    frame, checksums_ok = C_DECLINES[case]
    assert r.answer(frame, checksums_ok) is None
    assert python_echo(stack, frame, checksums_ok) is not None


def test_other_frames_are_declined() -> None:
    r, _ = linux_responder()
    frame = Ping().frame()
    assert r.answer(b"") is None
    assert r.answer(frame[:13]) is None
    assert r.answer(frame[:12] + b"\x86\xdd" + frame[14:]) is None  # not IPv4
    assert r.answer(frame[:12] + b"\x81\x00" + frame[14:]) is None  # VLAN tagged
    assert r.answer(frame + bytes(65536)) is None  # longer than any frame the thread reads
    # another protocol to the host
    assert r.answer(patched(lambda p: with_ip_fields(p[:9] + b"\x06" + p[10:]))) is None


def test_unbound_destinations_and_withdrawn_recipes_are_declined() -> None:
    r, _ = linux_responder()
    recipe = twins(fingerprint("Linux 5.4"), 3)[0].echo_recipe()
    assert r.answer(Ping(dst=UNBOUND_IP).frame()) is None
    assert r.answer(Ping(dst=OTHER_IP, dst_mac=OTHER_MAC).frame()) is None  # bound, no recipe
    r.set_echo(HOST_IP, None)
    assert r.answer(Ping().frame()) is None
    assert r.answer(arp_frame()) is not None  # still answers ARP
    r.set_echo(HOST_IP, recipe)
    assert r.answer(Ping().frame()) is not None
    r.unbind(HOST_IP)
    assert r.answer(Ping().frame()) is None and r.answer(arp_frame()) is None
    r.bind(HOST_IP, HOST_MAC)  # bound again: a new entry, which answers ARP but not pings
    assert r.answer(arp_frame()) is not None and r.answer(Ping().frame()) is None


def test_a_personality_that_ignores_pings_has_no_recipe() -> None:
    silent = next(fp for fp in osdb().values() if fp.tests.get("IE", {}).get("R") == "N")
    a, b = twins(silent, 1)
    assert a.echo_recipe() is None
    r = responder()
    r.set_echo(HOST_IP, a.echo_recipe())
    frame = Ping().frame()
    assert r.answer(frame) is None
    assert python_echo(HostStack(HOST_IP, HOST_MAC, b), frame) is None


# --------------------------------------------------------------------------- refusals


def good_recipe() -> tuple:
    """A valid recipe whose counter starts at 7 (the first reply's IP ID is 8)."""
    return (64, DF_NO, -1, INC, 0, 1, 1, Counter(7))


BAD_RECIPES = {
    "ttl 0": (0, 0, -1, INC, 0, 1, 1, Counter()),
    "ttl 256": (256, 0, -1, INC, 0, 1, 1, Counter()),
    "df mode 4": (64, 4, -1, INC, 0, 1, 1, Counter()),
    "df mode -1": (64, -1, -1, INC, 0, 1, 1, Counter()),
    "code -3": (64, 0, -3, INC, 0, 1, 1, Counter()),
    "code 256": (64, 0, 256, INC, 0, 1, 1, Counter()),
    "kind 0": (64, 0, -1, 0, 0, 1, 1, Counter()),
    "kind 7": (64, 0, -1, 7, 0, 1, 1, Counter()),
    "constant 65536": (64, 0, -1, CONST, 65536, 0, 0, None),
    "negative constant": (64, 0, -1, CONST, -1, 0, 0, None),
    "step low > high": (64, 0, -1, INC, 0, 5, 4, Counter()),
    "step high 65536": (64, 0, -1, INC, 0, 1, 65536, Counter()),
    "incremental without a Counter": (64, 0, -1, INC, 0, 1, 1, _PyCounter()),
    "RD without a Counter": (64, 0, -1, RD, 0, 0, 0, 12345),
}


@pytest.mark.parametrize("case", BAD_RECIPES)
def test_bad_recipes_are_refused_and_change_nothing(case: str) -> None:
    r = responder(good_recipe())
    before = r.answer(Ping().frame())
    assert before is not None and ip_id(before) == 8
    with pytest.raises(ValueError, match="bad echo recipe"):
        r.set_echo(HOST_IP, BAD_RECIPES[case])
    after = r.answer(Ping().frame())
    assert after is not None and ip_id(after) == 9  # the old recipe, and its counter, still in place


def test_malformed_recipes_and_arguments_are_refused() -> None:
    r = responder()
    with pytest.raises(TypeError):
        r.set_echo(HOST_IP, good_recipe()[:7])
    with pytest.raises(KeyError):
        r.set_echo(UNBOUND_IP, good_recipe())
    with pytest.raises(KeyError):
        r.set_echo(UNBOUND_IP, None)
    with pytest.raises(ValueError, match="6 bytes"):
        r.bind(UNBOUND_IP, HOST_MAC[:5])
    with pytest.raises(ValueError, match="6 bytes"):
        r.bind(UNBOUND_IP, HOST_MAC + b"\0")
    with pytest.raises(TypeError):
        r.bind(UNBOUND_IP, HOST_MAC.hex())
    for address in (0, 0xFFFFFFFF):
        with pytest.raises(ValueError, match="not a host address"):
            r.bind(address, HOST_MAC)
    assert r.answer(arp_frame(target_ip=UNBOUND_IP)) is None  # nothing was bound by the failures
    with pytest.raises(TypeError):
        r.answer("not bytes")  # type: ignore[arg-type]
    # a constant IP ID needs no counter
    r.set_echo(HOST_IP, (64, DF_NO, 0, CONST, 42, 0, 0, None))
    reply = r.answer(Ping().frame())
    assert reply is not None and ip_id(reply) == 42


@pytest.mark.parametrize("recipe", [[64, DF_NO, -1, CONST, 0, 0, 0, None], 64, "recipe"])
def test_a_recipe_that_is_not_a_tuple_is_a_type_error(recipe: object) -> None:
    r = responder()
    with pytest.raises(TypeError):
        r.set_echo(HOST_IP, recipe)


def test_a_responder_is_initialised_once() -> None:
    """Its thread may be running on its state: a second __init__ is refused, and changes nothing
    (no eventfd, SYN memory or descriptor replaced or leaked)."""
    r = responder()
    fd = r.event_fd()
    for args in ((-1,), (5, 10, 1 << 20), (-1, 0)):
        with pytest.raises(TypeError, match="initialised once"):
            r.__init__(*args)
    assert r.event_fd() == fd and r.answer(arp_frame()) is not None


def test_an_isn_is_initialised_once() -> None:
    isn = Isn(1, [1], 5, 0.0)
    with pytest.raises(TypeError, match="initialised once"):
        isn.__init__(7, [2, 3], 9, 1.0)
    assert isn.value == 5 and isn.next(0.0) == 6


def test_a_recipe_refuses_an_isn_never_initialised_and_clocks_that_are_not_finite() -> None:
    """Either would reach the thread: a division by zero, or a cast of infinity to an integer."""
    a, _ = twins(fingerprint("Linux 5.4"), 3)
    r = responder()
    good = tcp_recipe(a)
    for bad in (
        replace_at(good, 2, Isn.__new__(Isn)),
        replace_at(good, 3, float("nan")),
        replace_at(good, 3, float("inf")),
        replace_at(good, 3, 1e300),
        replace_at(good, 5, float("-inf")),
    ):
        with pytest.raises(ValueError, match="bad TCP recipe"):
            r.set_tcp(HOST_IP, bad)
    assert r.answer(SYN.frame(), now=T0) is None  # no recipe in place
    for now in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            r.answer(SYN.frame(), now=now)


def test_responder_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        Responder(-1, max_frames=0)
    with pytest.raises(ValueError):
        Responder(-1, max_bytes=65535)
    Responder(-1, max_frames=1, max_bytes=65536)


# --------------------------------------------------------------------------- queue and stats


def test_without_a_socket_nothing_runs_or_queues() -> None:
    r = responder(good_recipe())
    with pytest.raises(ValueError, match="no socket"):
        r.start()
    r.stop()  # not running: nothing to stop
    assert r.answer(Ping().frame()) is not None  # answer() is not the thread: nothing queued
    assert r.take() == [] and r.take(5) == [] and r.take(0) == []
    stats = r.stats()
    assert set(stats) == STATS_KEYS and all(value == 0 for value in stats.values())
    fd = r.event_fd()
    assert isinstance(fd, int) and fd >= 0
    with pytest.raises(BlockingIOError):
        os.read(fd, 8)  # an eventfd with nothing signalled


# --------------------------------------------------------------------------- the sensor

CONFIG = """
create web
set web personality "Linux 5.4"
add web tcp port 80 open
bind 198.18.0.100 web
bind 198.18.0.101 web
"""
VIP = 0xC6120064  # CONFIG's first address (.101 is the second)
ATTACKER_IP = 0xC6120003
ATTACKER_MAC = bytes.fromhex("020000000003")


class FastRaw(FakeRaw):
    """The raw socket of a sensor with a receive thread, minus the socket and the thread."""

    def __init__(self) -> None:
        super().__init__()
        self.responder = Responder(-1)


class Events(ListedEvents):
    """The sensor's events, in a list."""

    def echoes(self) -> list[str | None]:
        return [e.detail for e in self.items if e.kind == "echo"]


def make_sensor(catalog: PersonalityCatalog, *, probe_first: bool = False) -> tuple[Sensor, FastRaw, Events]:
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=list(osdb().values()), mac_vendors=catalog.mac_vendors
    )
    raw, events = FastRaw(), Events()
    return Sensor(config, raw, events, probe_first=probe_first), raw, events  # type: ignore[arg-type]


def sensor_ping(
    sensor: Sensor, seq: int = 1, *, src: int = ATTACKER_IP, src_mac: bytes = ATTACKER_MAC, dst: int = VIP
) -> bytes:
    """A ping to one of the sensor's hosts, sent to its MAC."""
    return Ping(src=src, src_mac=src_mac, dst=dst, dst_mac=sensor.hosts[dst].definition.mac, seq=seq).frame()


def test_the_sensor_never_answers_twice(catalog: PersonalityCatalog) -> None:
    sensor, raw, events = make_sensor(catalog)
    fast = sensor.fast
    assert fast is raw.responder
    vmac = sensor.hosts[VIP].definition.mac
    ping = sensor_ping(sensor)
    # Before the host's stack exists C knows no recipe: the first ping is Python's.
    assert fast.answer(ping) is None
    sensor.handle_frame(ping)
    assert len(raw.sent) == 1 and events.echoes() == ["8(0): replied"]
    first = raw.sent[0]
    # Now C answers, numbering from the counter Python's reply used ...
    second = sensor_ping(sensor, seq=2)
    reply = fast.answer(second)
    assert reply is not None and reply[:14] == ATTACKER_MAC + vmac + b"\x08\x00"
    assert ip_id(reply) == (ip_id(first) + 1) & 0xFFFF  # Linux 5.4: II=I
    # ... and Python, told so, counts the ping (a repeat: its window's noise row) without replying again.
    sensor.handle_frame(second, True, answered=reply)
    assert len(raw.sent) == 1 and events.echoes() == ["8(0): replied"] and sensor.observer.noise.folded == 1
    # Had Python answered the same ping instead, it would have sent C's frame (with the next IP ID).
    sensor.handle_frame(second)
    assert len(raw.sent) == 2 and raw.sent[1][14:] == with_ip_id(reply[14:], (ip_id(reply) + 1) & 0xFFFF)
    assert raw.sent[1][:14] == reply[:14]

    # ARP: C's reply is the responder's, and Python does not repeat it.
    request = build_arp_frame(BROADCAST_MAC, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP)
    arp_reply = fast.answer(request)
    assert arp_reply is not None and arp_reply == build_arp_frame(
        ATTACKER_MAC, 2, vmac, VIP, ATTACKER_MAC, ATTACKER_IP
    )
    sensor.handle_frame(request, True, answered=arp_reply)
    assert len(raw.sent) == 2
    sensor.handle_frame(request)
    assert raw.sent[2:] == [arp_reply]

    # Another machine announces the address: C checks it (Python only notes the check) ...
    announcement = build_arp_frame(BROADCAST_MAC, 1, STRANGER_MAC, VIP, bytes(6), VIP)
    probe, note = fast.judge(announcement)
    assert probe == build_probe(vmac, VIP) and note == Note.CHECK
    sensor.handle_frame(announcement, True, probe, note)
    assert VIP in sensor.hosts and raw.sent[3:] == []
    # ... and the machine answers: neither side answers for the address any more.
    answer = build_arp_frame(vmac, 2, STRANGER_MAC, VIP, vmac, 0)
    assert fast.judge(answer) == (None, Note.CONFIRMED)
    assert fast.answer(request) is None and fast.answer(ping) is None  # C at once
    sensor.handle_frame(answer, True, None, Note.CONFIRMED)
    assert VIP not in sensor.hosts and events.items[-1].kind == "conflict"
    # The other address is untouched.
    other = build_arp_frame(BROADCAST_MAC, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP + 1)
    assert fast.answer(other) is not None


def test_ipv4_from_a_bound_address_is_checked_in_c(catalog: PersonalityCatalog) -> None:
    """IPv4 from a bound address with a foreign MAC: C checks, Python records the check; nobody
    answers, so the address stays, and Python records the evidence as unconfirmed."""
    sensor, raw, events = make_sensor(catalog)
    ping = sensor_ping(sensor)
    sensor.handle_frame(ping)
    assert sensor.fast.answer(ping) is not None
    packet = Ping(src=VIP, dst=ATTACKER_IP, dst_mac=ATTACKER_MAC, src_mac=STRANGER_MAC).frame()
    probe, note = sensor.fast.judge(packet)
    assert note == Note.CHECK and probe is not None
    sensor.handle_frame(packet, True, probe, note)
    assert VIP in sensor.hosts and len(raw.sent) == 1  # the probe was C's to send
    sensor.claims.expire(time.monotonic() + 1.0)
    assert VIP in sensor.hosts and events.items[-1].kind == "conflict-unconfirmed"
    assert sensor.fast.answer(sensor_ping(sensor, seq=2)) is not None


def test_a_check_c_confirmed_releases_the_address_even_if_its_frame_was_lost(
    catalog: PersonalityCatalog,
) -> None:
    """The answer that confirmed a check never reached Python (a full queue): when the check's
    time is up, Python asks the thread, and gives the address back all the same."""
    sensor, _, events = make_sensor(catalog)
    vmac = sensor.hosts[VIP].definition.mac
    announcement = build_arp_frame(BROADCAST_MAC, 1, STRANGER_MAC, VIP, bytes(6), VIP)
    sensor.handle_frame(announcement, True, *sensor.fast.judge(announcement))
    assert sensor.fast.judge(build_arp_frame(vmac, 2, STRANGER_MAC, VIP, vmac, 0))[1] == Note.CONFIRMED
    sensor.claims.expire(time.monotonic() + 1.0)  # the answer's frame is lost: only the thread knew
    assert VIP not in sensor.hosts
    assert events.items[-1].kind == "conflict" and "by 02:00:00:00:00:99: released" in events.items[-1].detail


def pending_sensor(catalog: PersonalityCatalog) -> tuple[Sensor, FastRaw]:
    """probe_first: .101 claimed (and answering pings), .100 still pending behind its ARP probe."""
    sensor, raw, _ = make_sensor(catalog, probe_first=True)
    mac = sensor.hosts[VIP + 1].definition.mac
    asyncio.run(sensor.claims.probe([(VIP + 1, mac)], wait=0.0))
    assert VIP in sensor.claims.pending and VIP + 1 in sensor.claims.arp.bindings
    sensor.handle_frame(sensor_ping(sensor, dst=VIP + 1))  # builds .101's stack: C learns its recipe
    raw.sent.clear()
    return sensor, raw


@pytest.mark.parametrize("kind", ["arp", "ping"])
def test_traffic_from_a_pending_address(catalog: PersonalityCatalog, kind: str) -> None:
    """A machine using an address we are still probing for talks to a claimed host: Python
    releases the pending address and answers nothing; C must not answer either."""
    sensor, raw = pending_sensor(catalog)
    if kind == "arp":
        frame = build_arp_frame(BROADCAST_MAC, 1, STRANGER_MAC, VIP, bytes(6), VIP + 1)
    else:
        frame = sensor_ping(sensor, src=VIP, src_mac=STRANGER_MAC, dst=VIP + 1)
    fast_reply = sensor.fast.answer(frame)
    sensor.handle_frame(frame)  # what Python alone does with it
    assert VIP not in sensor.hosts  # released
    assert fast_reply is None and raw.sent == []


# --------------------------------------------------------------------------- SYN

OPEN_PORTS = (22, 80, 443, 65535)
RESERVED_IP = 0xC6120067  # an address of ours still being probed (Responder.reserve)
SYN_PROBE_WINDOWS = sorted(PROBE_WINDOWS)
T0 = 1000.0  # a monotonic time after the twins' compilation (at 0.0)

MSS = b"\x02\x04\x05\xb4"
SACK_PERM = b"\x04\x02"
NOP, EOL = b"\x01", b"\x00"


def ts_option(tsval: int, tsecr: int = 0) -> bytes:
    return b"\x08\x0a" + struct.pack("!II", tsval, tsecr)


def ws_option(shift: int) -> bytes:
    return bytes((3, 3, shift))


def linux_options(tsval: int = 0x01020304, shift: int = 7, mss: int = 1460) -> bytes:
    """MSS, SACK permitted, TS, NOP, WS: a Linux SYN."""
    return struct.pack("!BBH", 2, 4, mss) + SACK_PERM + ts_option(tsval) + NOP + ws_option(shift)


def windows_options(shift: int = 8, mss: int = 1460) -> bytes:
    """MSS, NOP, WS, NOP, NOP, SACK permitted: a Windows SYN."""
    return struct.pack("!BBH", 2, 4, mss) + NOP + ws_option(shift) + NOP + NOP + SACK_PERM


@dataclass(frozen=True)
class Syn:
    """A TCP segment (by default an ordinary Linux SYN to an open port), every field a test may vary."""

    src: int = PEER_IP
    src_mac: bytes = PEER_MAC
    dst: int = HOST_IP
    dst_mac: bytes = HOST_MAC
    sport: int = 40000
    dport: int = 80
    seq: int = 0x11223344
    ack: int = 0
    flags: int = 0x02
    window: int = 64240
    urgent: int = 0
    reserved: int = 0
    options: bytes = linux_options()
    payload: bytes = b""
    df: bool = True
    tos: int = 0
    ttl: int = 64
    ip_ident: int = 1
    ip_options: bytes = b""
    padding: bytes = b""

    def packet(self) -> bytes:
        segment = build_tcp_packet(
            self.src, self.dst, self.sport, self.dport, self.seq, self.ack, self.flags, self.window,
            64, 0, False, self.options, self.payload, self.urgent, self.reserved,
        )[20:]  # fmt: skip
        return build_ipv4(
            self.src, self.dst, IPPROTO_TCP, segment, self.ttl, self.ip_ident, self.df, self.tos,
            self.ip_options,
        )  # fmt: skip

    def frame(self) -> bytes:
        return self.dst_mac + self.src_mac + b"\x08\x00" + self.packet() + self.padding


def tcp_recipe(personality: HostPersonality, ports: tuple[int, ...] = OPEN_PORTS) -> tuple:
    """What the sensor passes to set_tcp (Sensor._register_fast)."""
    recipe = personality.syn_recipe()
    assert recipe is not None
    return (*recipe, ports)


def syn_responder(personality: HostPersonality | None = None) -> Responder:
    """A Responder with BINDINGS bound, RESERVED_IP reserved, nmap's probe windows and (given a
    personality) its SYN recipe for HOST_IP."""
    r = responder()
    r.reserve(RESERVED_IP)
    r.set_probe_windows(SYN_PROBE_WINDOWS)
    if personality is not None:
        r.set_tcp(HOST_IP, tcp_recipe(personality))
    return r


def syn_stack(personality: HostPersonality) -> HostStack:
    return HostStack(HOST_IP, HOST_MAC, personality, PortPolicy.open_tcp(*OPEN_PORTS))


def syn_pair(name: str = "Linux 5.4", seed: int = 3) -> tuple[Responder, HostStack]:
    """C and Python in the same state: twin personalities, one in a Responder, one in a HostStack."""
    a, b = twins(fingerprint(name), seed)
    return syn_responder(a), syn_stack(b)


def python_syn(stack: HostStack, frame: bytes, now: float, checksums_ok: bool = True) -> bytes | None:
    """The frame Python sends for `frame` at `now` (the sensor's IPv4 path for one host), or None."""
    ip = parse_ipv4(frame[14:], checksums_ok)
    if type(ip) is Malformed or ip.dst != stack.ip:
        return None
    packets = [out.packet for out in stack.receive(ip, now, checksums_ok) if type(out) is SendPacket]
    assert len(packets) <= 1
    return frame[6:12] + stack.mac + b"\x08\x00" + packets[0] if packets else None


def tcp_of(frame: bytes) -> TcpSegment:
    """The TCP segment in an Ethernet frame (which must hold a well-formed one)."""
    ip = parse_ipv4(frame[14:])
    assert not isinstance(ip, Malformed)
    seg = parse_tcp(ip)
    assert not isinstance(seg, Malformed)
    return seg


def tcp_fields(frame: bytes) -> tuple[int, int, int, int]:
    """(seq, ack, flags, window) of the TCP segment in an Ethernet frame."""
    seg = tcp_of(frame)
    return seg.seq, seg.ack, seg.flags, seg.window


tsvals = st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF]), u32)
shifts = st.one_of(st.integers(0, 14), st.integers(0, 255))
mss_values = st.one_of(st.sampled_from([1460, 1380, 536, 0, 0xFFFF]), u16)
OPTION_PARTS = {
    "M": st.builds(lambda m: struct.pack("!BBH", 2, 4, m), mss_values),
    "W": st.builds(ws_option, shifts),
    "S": st.just(SACK_PERM),
    "T": st.builds(ts_option, tsvals, tsvals),
}
MALFORMED_TAILS = [
    b"\x08",  # a kind without its length
    b"\x03",
    b"\x03\x01",  # length below 2
    b"\x08\x00\x01\x02",
    b"\x08\x0a\x00\x00\x00",  # a TS cut short
    b"\x02\x04\x05",
    b"\x08\x08" + bytes(6),  # TS of the wrong length
    b"\x03\x04\x07\x00",  # WS of the wrong length
    b"\x04\x03\x00",  # SACK permitted of the wrong length
    b"\x02\x03\x05",  # MSS of the wrong length
    EOL + ts_option(7, 0),  # options after EOL are not read
    EOL + ws_option(7) + SACK_PERM,
    b"\x13\x12" + bytes(16),  # an unknown kind (MD5) skipped
    b"\xfe\x05\x00\x00\x00",
]


@st.composite
def ordered_options(draw: st.DrawFn) -> bytes:
    """Some of MSS, WS, SACK permitted and TS in any order, NOPs between them, maybe EOL and padding."""
    kinds = draw(st.permutations(list(OPTION_PARTS)))[: draw(st.integers(0, 4))]
    out = b""
    for kind in kinds:
        out += NOP * draw(st.integers(0, 2)) + draw(OPTION_PARTS[kind])
    if draw(st.booleans()):
        out += EOL + draw(st.binary(max_size=6))
    return out


syn_options = st.one_of(
    st.just(b""),
    OPTION_PARTS["M"],
    st.builds(linux_options, tsvals, shifts, mss_values),
    st.builds(windows_options, shifts, mss_values),
    st.builds(lambda m, t: m + NOP + NOP + t, OPTION_PARTS["M"], OPTION_PARTS["T"]),  # TS without WS
    st.builds(lambda t: SACK_PERM + t, OPTION_PARTS["T"]),
    ordered_options(),
    st.builds(lambda head, tail: head + tail, ordered_options(), st.sampled_from(MALFORMED_TAILS)),
    st.builds(lambda head, tail: head + tail, ordered_options(), st.binary(max_size=12)),
    st.binary(max_size=40),
).map(lambda options: options[:40])
ordinary_windows = st.one_of(
    st.sampled_from([64240, 65160, 29200, 8192, 5840, 0, 2]), u16.filter(lambda w: w not in PROBE_WINDOWS)
)
ip_option_bytes = st.one_of(st.just(b""), st.just(b""), st.binary(max_size=40))
dts = st.one_of(
    st.sampled_from([0.0, 0.05, 0.1, 0.125, 0.25, 0.75, 1.0, 119.9]), st.floats(0.0, 400.0, allow_nan=False)
)


Arrival = tuple[Syn, float, bool]  # a frame, its time and whether its checksums were verifiable


@st.composite
def syn_sequences(draw: st.DrawFn) -> list[Arrival]:
    """Ordinary SYNs on distinct 4-tuples, each with its (non-decreasing) arrival time and whether
    its checksums could be verified."""
    sports = draw(st.lists(st.integers(1, 0xFFFF), min_size=1, max_size=6, unique=True))
    now = draw(st.one_of(st.floats(0.0, 1e5, allow_nan=False), st.integers(0, 800000).map(lambda k: k / 8)))
    out = []
    for sport in sports:
        syn = Syn(
            src=draw(st.one_of(st.just(PEER_IP), peer_ips.filter(lambda ip: ip != RESERVED_IP))),
            src_mac=draw(st.one_of(st.just(PEER_MAC), macs)),
            sport=sport,
            dport=draw(st.sampled_from(OPEN_PORTS)),
            seq=draw(u32),
            ack=draw(st.one_of(st.just(0), u32)),
            window=draw(ordinary_windows),
            options=draw(syn_options),
            df=draw(st.booleans()),
            tos=draw(st.integers(0, 255)),
            ttl=draw(st.integers(1, 255)),
            ip_ident=draw(u16),
            ip_options=draw(ip_option_bytes),
            padding=draw(st.one_of(st.just(b""), st.binary(max_size=16))),
        )
        now += draw(dts)
        out.append((syn, now, draw(st.booleans())))
    return out


SYN_DIFF_PANEL = [*ECHO_PANEL, *SYN_PANEL, *SYN_VARIANTS]


def test_the_syn_panel_covers_every_recipe_field() -> None:
    """Every IP ID rule, kind of timestamp clock, TS field rule, DF, and odd SYN/ACK shapes."""
    recipes = [tcp_recipe(twins(fingerprint(name), 2)[0]) for name in SYN_DIFF_PANEL]
    rules = {recipe[1][:4] for recipe in recipes}
    assert {rule[0] for rule in rules} == {CONST, RD, INC}
    assert {(rule[2], rule[3]) for rule in rules if rule[0] == INC} == {(1, 1), (256, 256), (1001, 1999)}
    assert {rule[1] for rule in rules if rule[0] == CONST} >= {0, 1}
    hz = {recipe[3] for recipe in recipes}
    assert {-1.0, 0.0, 2.0, 100.0, 250.0, 1000.0} <= hz and max(hz) >= 2**34
    templates = [t for recipe in recipes for t in recipe[0]]
    assert all(t is not None for t in templates)
    flags, _windows, ttls, dfs, prefixes, suffixes, has_ts, ts_val, ts_ecr = zip(*templates, strict=True)
    assert set(dfs) == {False, True} and 0x1A in flags and {32, 64, 128, 255} <= set(ttls)
    assert b"" in prefixes and any(len(s) >= 8 for s in suffixes)
    assert {(v, e) for h, v, e in zip(has_ts, ts_val, ts_ecr, strict=True) if h} == {
        (True, True),
        (True, False),
        (False, True),
        (False, False),
    }


@pytest.mark.parametrize("name", SYN_DIFF_PANEL)
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), requests=syn_sequences())
def test_syn_acks_equal_the_python_stack(name: str, seed: int, requests: list[Arrival]) -> None:
    a, b = twins(fingerprint(name), seed)
    recipe = tcp_recipe(a)
    kind, _, low, high, _ = recipe[1]
    r = syn_responder()
    r.set_tcp(HOST_IP, recipe)
    stack = syn_stack(b)
    checker = ReplyChecker(kind, low, high)
    for syn, now, checksums_ok in requests:
        frame = syn.frame()
        checker.check(
            r.answer(frame, checksums_ok, now=now), python_syn(stack, frame, now, checksums_ok), syn.src_mac
        )
    assert r.answer(requests[-1][0].frame(), now=requests[-1][1]) is None  # each 4-tuple once


# --------------------------------------------------------------------------- SYN declines

SYN = Syn()  # the control: answered by C (test_the_default_syn_is_answered)


def syn_patched(mutate: Callable[[bytes], bytes], syn: Syn = SYN) -> bytes:
    """`syn`'s frame with its IPv4 packet changed by `mutate`."""
    frame = syn.frame()
    return frame[:14] + mutate(frame[14:])


def seq_probe(i: int) -> Syn:
    """nmap's SEQ probe i (0..5), sent to an open port."""
    return Syn(window=SEQ_WINDOWS[i], options=SEQ_OPTIONS[i])


def with_variants(syn: Syn, **changes: object) -> Syn:
    return dataclasses.replace(syn, **changes)  # type: ignore[arg-type]


# Each differs from SYN in one respect; C leaves all of them to Python. True: Python answers it.
SYN_DECLINES: dict[str, tuple[bytes, bool]] = {
    "SYN+ECE+CWR": (with_variants(SYN, flags=0xC2).frame(), True),
    "SYN+ECE": (with_variants(SYN, flags=0x42).frame(), True),
    "SYN+CWR": (with_variants(SYN, flags=0x82).frame(), True),
    "SYN+PSH": (with_variants(SYN, flags=0x0A).frame(), True),
    "SYN+URG": (with_variants(SYN, flags=0x22).frame(), True),
    "SYN+ACK": (with_variants(SYN, flags=0x12).frame(), False),
    "SYN+FIN": (with_variants(SYN, flags=0x03).frame(), False),
    "SYN+RST": (with_variants(SYN, flags=0x06).frame(), False),
    "SYN with a payload": (with_variants(SYN, payload=b"x").frame(), True),
    "urgent pointer without URG": (with_variants(SYN, urgent=1).frame(), True),
    **{f"reserved bit {bit}": (with_variants(SYN, reserved=bit).frame(), True) for bit in (1, 2, 4, 8)},
    **{f"probe window {w}": (with_variants(SYN, window=w).frame(), True) for w in SYN_PROBE_WINDOWS},
    "closed port": (with_variants(SYN, dport=81).frame(), True),  # a RST
    "closed port 0": (with_variants(SYN, dport=0).frame(), True),
    "Ethernet broadcast": (with_variants(SYN, dst_mac=BROADCAST_MAC).frame(), True),
    "Ethernet destination another bound host's MAC": (with_variants(SYN, dst_mac=OTHER_MAC).frame(), True),
    "bad TCP checksum": (syn_patched(flip(36)), False),
    "bad IP header checksum": (syn_patched(flip(10)), False),
    "more fragments": (syn_patched(lambda p: with_ip_fields(p, frag=0x2000)), False),
    "fragment offset": (syn_patched(lambda p: with_ip_fields(p, frag=0x4001)), False),
    "source 0.x": (with_variants(SYN, src=0x00010203).frame(), False),
    "source 127.x": (with_variants(SYN, src=0x7F000001).frame(), False),
    "source multicast": (with_variants(SYN, src=0xE0000001).frame(), False),
    "source broadcast": (with_variants(SYN, src=0xFFFFFFFF).frame(), False),
    "source the host itself": (with_variants(SYN, src=HOST_IP, src_mac=HOST_MAC).frame(), False),
    "source another bound address": (with_variants(SYN, src=OTHER_IP, src_mac=OTHER_MAC).frame(), True),
    "source a reserved address": (with_variants(SYN, src=RESERVED_IP).frame(), True),
    "TCP data offset 4 words": (syn_patched(lambda p: p[:32] + bytes((0x40,)) + p[33:]), False),
    "TCP data offset beyond the segment": (syn_patched(lambda p: p[:32] + bytes((0xF0,)) + p[33:]), False),
    "IP total length beyond the frame": (syn_patched(lambda p: with_ip_fields(p, total=len(p) + 1)), False),
    "IP total length cutting the TCP header": (syn_patched(lambda p: with_ip_fields(p, total=39)), False),
    "IP protocol UDP": (syn_patched(lambda p: with_ip_fields(p[:9] + b"\x11" + p[10:])), False),
    **{f"nmap SEQ probe {i + 1}": (seq_probe(i).frame(), True) for i in range(6)},
    "nmap ECN probe": (
        with_variants(SYN, flags=0xC2, window=ECN_WINDOW, options=ECN_OPTIONS, urgent=ECN_URGENT).frame(),
        True,
    ),
    **{
        f"nmap {name} probe": (
            with_variants(SYN, flags=f, window=w, options=o, df=df, dport=80 if to_open else 81).frame(),
            name in ("T4", "T5", "T6"),  # Linux 5.4 answers T4..T6, not T2, T3, T7
        )
        for name, (f, w, o, df, to_open) in T_PROBES.items()
    },
}


def test_the_default_syn_is_answered() -> None:
    """The control for the decline tests: each of them changes one thing about this frame."""
    r, stack = syn_pair()
    frame = SYN.frame()
    reply = r.answer(frame, now=T0)
    assert reply is not None and reply == python_syn(stack, frame, T0)
    assert tcp_fields(reply)[1:3] == (SYN.seq + 1, 0x12)


@pytest.mark.parametrize("case", SYN_DECLINES)
def test_syn_declines(case: str) -> None:
    frame, python_answers = SYN_DECLINES[case]
    r, stack = syn_pair()
    assert syn_pair()[0].answer(SYN.frame(), now=T0) is not None  # the frame it differs from, answered
    assert r.answer(frame, now=T0) is None
    assert (python_syn(stack, frame, T0) is not None) == python_answers
    # nothing moved on (ISN, IP ID): the next SYN is answered as if the declined one never came
    other = with_variants(SYN, sport=SYN.sport + 1).frame()
    reply = r.answer(other, now=T0 + 1)
    assert reply is not None and reply == syn_pair()[0].answer(other, now=T0 + 1)


@pytest.mark.parametrize("case", ["bad TCP checksum", "bad IP header checksum"])
def test_unverifiable_checksums_are_answered_as_python_answers(case: str) -> None:
    """Checksum offload (checksums_ok False): neither side can check, both answer alike."""
    frame = SYN_DECLINES[case][0]
    r, stack = syn_pair()
    reply = r.answer(frame, False, now=T0)
    assert reply is not None and reply == python_syn(stack, frame, T0, checksums_ok=False)


def test_a_host_whose_syn_ack_c_cannot_build_is_left_to_python() -> None:
    """T1 S=Z, F=AR: no SYN/ACK template C can fill, for any key."""
    name = "Aastra 57i VoIP phone"
    a, b = twins(osdb()[name], 3)
    assert set(tcp_recipe(a)[0]) == {None}
    r = syn_responder(a)
    assert r.answer(SYN.frame(), now=T0) is None
    assert python_syn(syn_stack(b), SYN.frame(), T0) is not None


def test_timestamps_offered_to_a_host_without_a_timestamp_clock() -> None:
    """TS=U: the key ignores the offered timestamp (Python: no TS in the reply either)."""
    a, b = twins(osdb()["Canon MF4360-4390 or 4370dn printer"], 3)
    assert tcp_recipe(a)[3] < 0
    r, stack = syn_responder(a), syn_stack(b)
    for sport, options in enumerate([linux_options(), ts_option(5), MSS + NOP + NOP + ts_option(5)]):
        frame = with_variants(SYN, sport=sport + 1, options=options).frame()
        reply = r.answer(frame, now=T0 + sport)
        assert reply is not None and reply == python_syn(stack, frame, T0 + sport)
        assert tcp_of(reply).options.timestamp is None


def test_every_open_port_and_no_other_is_answered() -> None:
    ports = (443, 65535, 0, 22, 80, 80, 1)  # unsorted, a duplicate: C sorts them
    a, _ = twins(fingerprint("Linux 5.4"), 3)
    r = syn_responder()
    r.set_tcp(HOST_IP, tcp_recipe(a, ports))
    candidates = {p + d for p in ports for d in (-2, -1, 0, 1, 2) if 0 <= p + d <= 0xFFFF}
    for port in sorted(candidates):
        answered = r.answer(with_variants(SYN, dport=port).frame(), now=T0) is not None
        assert answered == (port in ports), port
    r.set_tcp(HOST_IP, tcp_recipe(a, ()))  # no open port: nothing is answered
    assert r.answer(with_variants(SYN, sport=1).frame(), now=T0) is None


# Ways a segment may differ from an ordinary SYN (tcp_frames applies none, one or two).
SEGMENT_CHANGES: dict[str, st.SearchStrategy[object]] = {
    "flags": st.one_of(st.sampled_from([0xC2, 0x12, 0x03, 0x0A, 0x42, 0x10]), st.integers(0, 255)),
    "window": st.sampled_from(SYN_PROBE_WINDOWS),
    "urgent": st.integers(1, 0xFFFF),
    "reserved": st.integers(1, 15),
    "payload": st.binary(min_size=1, max_size=8),
    "options": st.sampled_from([*SEQ_OPTIONS, ECN_OPTIONS]),
    "src": st.one_of(special_ips, st.just(RESERVED_IP)),
    "src_mac": special_macs,
    "dst_mac": special_macs,
    "dport": u16,
}


@st.composite
def tcp_frames(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A TCP segment to the host: an ordinary SYN or one differing in a few respects (fields, a
    byte of the packet, its length); and checksums_ok."""
    syn = Syn(
        sport=draw(u16),
        dport=draw(st.sampled_from(OPEN_PORTS)),
        seq=draw(u32),
        window=draw(ordinary_windows),
        options=draw(syn_options),
        df=draw(st.booleans()),
    )
    for field in draw(st.lists(st.sampled_from(list(SEGMENT_CHANGES)), max_size=2)):
        syn = with_variants(syn, **{field: draw(SEGMENT_CHANGES[field])})
    frame = syn.frame()
    damage = draw(st.sampled_from(["none", "none", "byte", "cut"]))
    if damage == "byte":
        at = draw(st.integers(14, len(frame) - 1))
        frame = frame[:at] + bytes((draw(st.integers(0, 255)),)) + frame[at + 1 :]
    elif damage == "cut":
        frame = frame[: draw(st.integers(0, len(frame)))]
    return frame, draw(st.booleans())


@pytest.mark.parametrize("name", ["Linux 5.4", "Microsoft Windows 10", "Apple AirPort Express WAP"])
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), case=tcp_frames(), now=st.floats(0.0, 1e5, allow_nan=False))
def test_c_answers_a_tcp_segment_only_as_python_does(
    name: str, seed: int, case: tuple[bytes, bool], now: float
) -> None:
    """Whatever the segment, C declines it or sends exactly the frame Python sends: the probe of an
    address check when the segment claims to come from one of our addresses, else the answer."""
    frame, checksums_ok = case
    a, b = twins(fingerprint(name), seed)
    reply = syn_responder(a).answer(frame, checksums_ok, now=now)
    if reply is not None:
        probe, note = python_judge(frame, checksums_ok=checksums_ok, now=now)
        assert reply == (probe if note else python_syn(syn_stack(b), frame, now, checksums_ok))


# --------------------------------------------------------------------------- repeated SYNs


def test_a_syn_with_a_bad_checksum_takes_no_memory_of_its_4_tuple() -> None:
    """Python drops it and holds no flow, so it must not make the real SYN after it a "repeat"
    (a forged one would also evict the slot of a SYN Python does hold)."""
    r, _ = syn_pair()
    bad = syn_patched(flip(36))
    assert bad[34:38] == SYN.frame()[34:38] and r.answer(bad, now=T0) is None  # the same ports
    assert r.answer(SYN.frame(), now=T0 + 0.1) is not None
    assert r.answer(bad, now=T0 + 0.2) is None
    assert r.answer(SYN.frame(), now=T0 + 0.3) is None  # the real one is remembered: a repeat


def isn_of(reply: bytes | None) -> int:
    assert reply is not None
    return tcp_fields(reply)[0]


def test_a_repeated_syn_is_declined_for_120_seconds() -> None:
    r, _ = syn_pair()
    frame = SYN.frame()
    first = isn_of(r.answer(frame, now=T0))
    assert r.answer(frame, now=T0) is None
    assert r.answer(frame, now=T0 + 60.0) is None  # remembered again from here
    assert r.answer(frame, now=T0 + 60.0 + 119.99) is None
    again = r.answer(frame, now=T0 + 60.0 + 119.99 + 120.01)  # 120 s after the last one seen
    assert isn_of(again) != first
    assert r.answer(frame, now=T0 + 60.0 + 119.99 + 120.01 + 1.0) is None


def test_a_syn_is_answered_again_after_120_seconds() -> None:
    r, _ = syn_pair()
    frame = SYN.frame()
    assert r.answer(frame, now=T0) is not None
    assert r.answer(frame, now=T0 + 120.01) is not None


def test_the_syn_memory_survives_the_millisecond_clock_wrapping() -> None:
    r, _ = syn_pair()
    frame = SYN.frame()
    wrap = 2**32 / 1000  # the memory counts milliseconds in 32 bits
    assert r.answer(frame, now=wrap - 1.0) is not None
    assert r.answer(frame, now=wrap + 1.0) is None
    assert r.answer(frame, now=wrap + 119.5) is None
    assert r.answer(frame, now=wrap + 240.0) is not None


def test_other_4_tuples_are_not_repeats() -> None:
    r, _ = syn_pair()
    assert r.answer(SYN.frame(), now=T0) is not None
    other_tuples = ({"sport": SYN.sport + 1}, {"dport": 22}, {"src": PEER_IP + 7})
    for changes in (*other_tuples, {"seq": 1, "window": 1000}):  # the last: the same 4-tuple
        frame = with_variants(SYN, **changes).frame()
        assert (r.answer(frame, now=T0 + 1) is not None) == ("seq" not in changes), changes


@pytest.mark.parametrize(
    "case", ["SYN+ECE+CWR", "SYN with a payload", "probe window 1024", "nmap SEQ probe 1", "closed port"]
)
def test_a_declined_syn_is_remembered_too(case: str) -> None:
    """A SYN C leaves to Python makes Python hold the flow: a plain SYN on its 4-tuple is Python's."""
    frame = SYN_DECLINES[case][0]
    if case == "closed port":  # the 4-tuple includes the port: a closed one later opened
        r = syn_responder()
        a, _ = twins(fingerprint("Linux 5.4"), 3)
        r.set_tcp(HOST_IP, tcp_recipe(a, OPEN_PORTS))
        assert r.answer(frame, now=T0) is None
        r.set_tcp(HOST_IP, tcp_recipe(a, (*OPEN_PORTS, 81)))
        assert r.answer(with_variants(SYN, dport=81).frame(), now=T0 + 1) is None
        assert r.answer(with_variants(SYN, dport=81, sport=1).frame(), now=T0 + 1) is not None
        return
    seg = tcp_of(frame)
    assert (seg.ip.src, seg.sport, seg.dport) == (SYN.src, SYN.sport, SYN.dport)  # SYN's 4-tuple
    r, _ = syn_pair()
    assert r.answer(frame, now=T0) is None
    assert r.answer(SYN.frame(), now=T0 + 1) is None
    assert r.answer(SYN.frame(), now=T0 + 122) is not None


# --------------------------------------------------------------------------- TCP recipes


def sport_syn(sport: int, **changes: object) -> bytes:
    return with_variants(SYN, sport=sport, **changes).frame()


def test_withdrawn_and_unbound_tcp_recipes_are_not_used() -> None:
    a, _ = twins(fingerprint("Linux 5.4"), 3)
    r = syn_responder(a)
    r.set_echo(HOST_IP, a.echo_recipe())
    assert r.answer(sport_syn(1), now=T0) is not None
    r.set_tcp(HOST_IP, None)
    assert r.answer(sport_syn(2), now=T0) is None
    assert r.answer(arp_frame()) is not None and r.answer(Ping().frame()) is not None  # the rest stays
    r.set_tcp(HOST_IP, None)  # withdrawing twice is harmless
    r.set_tcp(HOST_IP, tcp_recipe(a))
    assert r.answer(sport_syn(3), now=T0) is not None
    r.unbind(HOST_IP)
    assert r.answer(sport_syn(4), now=T0) is None and r.answer(arp_frame()) is None
    r.bind(HOST_IP, HOST_MAC)  # a new entry: ARP, but no recipe
    assert r.answer(arp_frame()) is not None and r.answer(sport_syn(5), now=T0) is None
    # an address still being probed is never answered for, recipe or not
    r.set_tcp(RESERVED_IP, tcp_recipe(a))
    assert r.answer(sport_syn(6, dst=RESERVED_IP, dst_mac=bytes(6)), now=T0) is None
    # a bound host without a recipe, and an unbound address
    assert r.answer(sport_syn(7, dst=OTHER_IP, dst_mac=OTHER_MAC), now=T0) is None
    assert r.answer(sport_syn(8, dst=UNBOUND_IP), now=T0) is None
    for recipe in (tcp_recipe(a), None):
        with pytest.raises(KeyError):
            r.set_tcp(UNBOUND_IP, recipe)


def test_tcp_recipes_hold_their_isn_and_counter_while_in_use() -> None:
    a, _ = twins(fingerprint("Microsoft Windows 10"), 3)  # TI=I: the rule holds a Counter
    recipe = tcp_recipe(a)
    isn, counter = recipe[2], recipe[1][4]
    assert type(isn) is Isn and type(counter) is Counter
    before = sys.getrefcount(isn), sys.getrefcount(counter)
    r = syn_responder()
    r.set_tcp(HOST_IP, recipe)
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == (before[0] + 1, before[1] + 1)
    r.set_tcp(HOST_IP, recipe)  # replaced: the old references are released
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == (before[0] + 1, before[1] + 1)
    with pytest.raises(KeyError):
        r.set_tcp(UNBOUND_IP, recipe)
    with pytest.raises(ValueError):
        r.set_tcp(HOST_IP, (*recipe[:6], (70000,)))
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == (before[0] + 1, before[1] + 1)
    r.set_tcp(HOST_IP, None)
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == before
    r.set_tcp(HOST_IP, recipe)
    r.unbind(HOST_IP)
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == before
    r.bind(HOST_IP, HOST_MAC)
    r.set_tcp(HOST_IP, recipe)
    del r  # the responder's own references go with it
    assert (sys.getrefcount(isn), sys.getrefcount(counter)) == before


def replace_at(items: tuple, index: int, value: object) -> tuple:
    return (*items[:index], value, *items[index + 1 :])


def in_recipe(index: int, make: Callable[[object], object]) -> Callable[[tuple], tuple]:
    return lambda recipe: replace_at(recipe, index, make(recipe[index]))


def bad_template(field: int, value: object, key: int = 7) -> Callable[[tuple], tuple]:
    """A recipe whose template for `key` has `field` replaced by `value`."""
    return in_recipe(0, lambda tpls: replace_at(tpls, key, replace_at(tpls[key], field, value)))


def bad_rule(field: int, value: object) -> Callable[[tuple], tuple]:
    return lambda recipe: replace_at(recipe, 1, replace_at(recipe[1], field, value))


TEMPLATE, RULE = "bad SYN/ACK template", "bad IP ID rule"
# A good recipe made bad in one respect: (how, the exception, its message).
BAD_TCP_RECIPES: dict[str, tuple[Callable[[tuple], object], type[Exception], str | None]] = {
    "6 items": (lambda recipe: recipe[:6], TypeError, None),
    "8 items": (lambda recipe: (*recipe, 0), TypeError, None),
    "a list": (list, TypeError, None),
    "7 templates": (in_recipe(0, lambda t: t[:7]), ValueError, "bad TCP recipe"),
    "9 templates": (in_recipe(0, lambda t: (*t, None)), ValueError, "bad TCP recipe"),
    "templates in a list": (in_recipe(0, list), TypeError, None),
    "a template that is a list": (in_recipe(0, lambda t: replace_at(t, 3, list(t[3]))), TypeError, None),
    "a template of 8 items": (in_recipe(0, lambda t: replace_at(t, 3, t[3][:8])), TypeError, None),
    "template options of 3 bytes": (bad_template(4, b"\x02\x04\x05", key=0), ValueError, TEMPLATE),
    "template options of 2 + 8 bytes": (bad_template(4, b"\x01\x01"), ValueError, TEMPLATE),  # key 7: TS
    "template options of 44 bytes": (bad_template(4, bytes(44), key=0), ValueError, TEMPLATE),
    "template options of 36 + 8 bytes": (bad_template(4, bytes(36)), ValueError, TEMPLATE),
    "a suffix without a timestamp": (bad_template(5, b"\x01\x01\x01\x01", key=0), ValueError, TEMPLATE),
    "template flags without SYN": (bad_template(0, 0x10), ValueError, TEMPLATE),
    "template flags 256": (bad_template(0, 0x112), ValueError, TEMPLATE),
    "template window 65536": (bad_template(1, 65536), ValueError, TEMPLATE),
    "template TTL 0": (bad_template(2, 0), ValueError, TEMPLATE),
    "template TTL 256": (bad_template(2, 256), ValueError, TEMPLATE),
    "IP ID rule of 4 items": (in_recipe(1, lambda rule: rule[:4]), ValueError, "bad TCP recipe"),
    "IP ID rule a list": (in_recipe(1, list), TypeError, None),
    "IP ID kind 7": (bad_rule(0, 7), ValueError, RULE),
    "IP ID step above 65535": (bad_rule(3, 65536), ValueError, RULE),
    "incremental IP ID without a Counter": (bad_rule(4, _PyCounter()), ValueError, RULE),
    "an ISN generator that is not an Isn": (in_recipe(2, lambda _: _PyIsn(1, [1], 0, 0.0)), TypeError, None),
    "an ISN that is a number": (in_recipe(2, lambda _: 12345), TypeError, None),
    "a clock rate that is a string": (in_recipe(3, lambda _: "1000"), TypeError, None),
    "port 70000": (in_recipe(6, lambda _: (80, 70000)), ValueError, "bad port"),
    "port -1": (in_recipe(6, lambda _: (-1, 80)), ValueError, "bad port"),
    "port 'http'": (in_recipe(6, lambda _: (80, "http")), TypeError, None),
    "ports not a sequence": (in_recipe(6, lambda _: 80), TypeError, "sequence"),
}


@pytest.mark.parametrize("case", BAD_TCP_RECIPES)
def test_bad_tcp_recipes_are_refused_and_change_nothing(case: str) -> None:
    """The previous recipe stays in place, its ISN generator and counter untouched: C goes on
    answering exactly as a twin responder that never saw the bad recipe."""
    make_bad, error, message = BAD_TCP_RECIPES[case]
    a, b = twins(fingerprint("Microsoft Windows 10"), 3)
    r, twin = syn_responder(a), syn_responder(b)
    first = r.answer(sport_syn(1), now=T0)
    assert first is not None and first == twin.answer(sport_syn(1), now=T0)
    bad = make_bad(tcp_recipe(a))
    with pytest.raises(error, match=message):
        r.set_tcp(HOST_IP, bad)
    after = r.answer(sport_syn(2), now=T0 + 1)
    assert after is not None and after == twin.answer(sport_syn(2), now=T0 + 1)


def test_probe_windows_can_be_replaced_and_are_checked() -> None:
    r, _ = syn_pair()
    r.set_probe_windows([SYN.window])
    assert r.answer(sport_syn(1), now=T0) is None
    assert r.answer(sport_syn(2, window=1), now=T0) is not None  # no longer a probe window
    r.set_probe_windows(())
    assert r.answer(sport_syn(3), now=T0) is not None
    r.set_probe_windows(range(32))  # at most 32
    assert r.answer(sport_syn(4, window=31), now=T0) is None
    for windows, error in (
        (range(33), ValueError),
        ([70000], ValueError),
        ([-1], ValueError),
        (["1"], TypeError),
        (1024, TypeError),
    ):
        with pytest.raises(error):
            r.set_probe_windows(windows)
    assert r.answer(sport_syn(5, window=31), now=T0) is None  # the list in place before
    assert r.answer(sport_syn(6, window=32), now=T0) is not None
    assert set(SEQ_WINDOWS) | {ECN_WINDOW} <= PROBE_WINDOWS  # what the sensor passes covers nmap's SYNs


# --------------------------------------------------------------------------- the sensor adopts C's SYN/ACKs

ACK, PSH, FIN = 0x10, 0x08, 0x01


def from_attacker(sensor: Sensor, sport: int, **fields: object) -> bytes:
    """A TCP segment from the attacker to port 80 of the sensor's first host."""
    mac = sensor.hosts[VIP].definition.mac
    return with_variants(
        SYN, src=ATTACKER_IP, src_mac=ATTACKER_MAC, dst=VIP, dst_mac=mac, sport=sport, **fields
    ).frame()


def segment(sensor: Sensor, sport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return from_attacker(
        sensor, sport, seq=seq, ack=ack, flags=flags, window=502, options=b"", payload=payload
    )


def flow_events(events: Events, sport: int) -> list[str]:
    return [e.kind for e in events.items if e.proto == "tcp" and e.sport == sport]


def exchange_data_and_close(
    sensor: Sensor, raw: FastRaw, events: Events, sport: int, seq: int, isn: int
) -> None:
    """The peer completes the handshake with C's ISN, sends a request and closes: Python carries
    the connection on from that ISN."""
    sent = len(raw.sent)
    sensor.handle_frame(segment(sensor, sport, seq + 1, isn + 1, ACK))
    assert len(raw.sent) == sent  # a pure ACK is not answered
    stack = sensor.hosts[VIP].stack
    assert stack is not None
    conn = stack.connection(ATTACKER_IP, sport, 80)
    assert conn is not None and conn.iss == isn and conn.was_established
    request = b"GET / HTTP/1.0\r\n\r\n"
    sensor.handle_frame(segment(sensor, sport, seq + 1, isn + 1, PSH | ACK, request))
    end = seq + 1 + len(request)
    assert tcp_fields(raw.sent[-1])[:3] == (isn + 1, end, ACK)
    sensor.handle_frame(segment(sensor, sport, end, isn + 1, FIN | ACK))
    our_seq, our_ack, flags, _ = tcp_fields(raw.sent[-1])
    assert (our_seq, our_ack) == (isn + 1, end + 1) and flags & FIN  # the recorder closes too
    sensor.handle_frame(segment(sensor, sport, end + 1, isn + 2, ACK))
    assert flow_events(events, sport)[-2:] == ["data", "close"]
    assert stack.connection(ATTACKER_IP, sport, 80) is None


def test_python_adopts_the_connection_of_a_syn_c_answered(catalog: PersonalityCatalog) -> None:
    sensor, raw, events = make_sensor(catalog)
    fast = sensor.fast
    assert fast is raw.responder
    vmac = sensor.hosts[VIP].definition.mac
    # The first SYN builds the host's stack: Python answers it and registers the recipe.
    first = from_attacker(sensor, 40000)
    assert fast.answer(first) is None
    sensor.handle_frame(first)
    assert len(raw.sent) == 1 and tcp_fields(raw.sent[0])[1:3] == (SYN.seq + 1, 0x12)
    # The next connection's SYN is C's ...
    syn = from_attacker(sensor, 40001, seq=5000)
    reply = fast.answer(syn)
    assert reply is not None and reply[:14] == ATTACKER_MAC + vmac + b"\x08\x00"
    isn, ack, flags, _ = tcp_fields(reply)
    assert (ack, flags) == (5001, 0x12)
    # ... and Python, handed C's SYN/ACK, sends nothing and holds the connection half-open.
    sensor.handle_frame(syn, True, answered=reply)
    assert len(raw.sent) == 1 and flow_events(events, 40001) == ["connect"]
    # A retransmitted SYN is Python's (C declines a repeat): the same ISN again.
    assert fast.answer(syn) is None
    sensor.handle_frame(syn)
    assert len(raw.sent) == 2 and raw.sent[1][:14] == reply[:14]
    assert tcp_fields(raw.sent[1]) == tcp_fields(reply)
    exchange_data_and_close(sensor, raw, events, 40001, 5000, isn)
    assert flow_events(events, 40001) == ["connect", "data", "close"]


def test_python_starts_over_from_a_syn_ack_c_sent_for_a_flow_it_holds(catalog: PersonalityCatalog) -> None:
    """C never saw the first SYN (no recipe yet), so it answers its retransmission with an ISN of
    its own: Python drops its half-open flow and carries on from C's SYN/ACK."""
    sensor, raw, events = make_sensor(catalog)
    first = from_attacker(sensor, 40000, seq=7000)
    sensor.handle_frame(first)
    python_isn = tcp_fields(raw.sent[0])[0]
    reply = sensor.fast.answer(first)
    assert reply is not None
    isn = tcp_fields(reply)[0]
    assert isn != python_isn
    sensor.handle_frame(first, True, answered=reply)
    assert len(raw.sent) == 1
    exchange_data_and_close(sensor, raw, events, 40000, 7000, isn)


def restarted_flow_events(catalog: PersonalityCatalog, via_c: bool) -> list[str]:
    """The events of one connection whose first SYN was retransmitted, the retransmission
    answered by C (via_c) or by Python."""
    sensor, raw, events = make_sensor(catalog)
    first = from_attacker(sensor, 40000, seq=7000)
    sensor.handle_frame(first)
    reply = sensor.fast.answer(first) if via_c else None
    sensor.handle_frame(first, True, answered=reply)
    isn = tcp_fields(reply if reply is not None else raw.sent[-1])[0]
    exchange_data_and_close(sensor, raw, events, 40000, 7000, isn)
    return flow_events(events, 40000)


def test_a_retransmitted_syn_python_answers_is_logged_as_one_connection(catalog: PersonalityCatalog) -> None:
    assert restarted_flow_events(catalog, via_c=False) == ["connect", "data", "close"]


def test_a_retransmitted_syn_c_answers_is_logged_as_one_connection(catalog: PersonalityCatalog) -> None:
    """C never saw the first SYN (its memory of it was overwritten): it answers the retransmission
    and Python starts the half-open flow over from C's SYN/ACK, logging the attempt once."""
    assert restarted_flow_events(catalog, via_c=True) == ["connect", "data", "close"]


def test_a_retransmission_of_a_syn_python_answered_stays_python_s(catalog: PersonalityCatalog) -> None:
    """The thread sees every frame first: it remembers the first SYN even before the host has a
    recipe (Python answers that one), so the retransmission is Python's too, with the same ISN."""
    sensor, raw, events = make_sensor(catalog)
    first = from_attacker(sensor, 40000, seq=7000)
    assert sensor.fast.answer(first) is None  # no recipe yet: the stack is built by this SYN
    sensor.handle_frame(first)
    isn = tcp_fields(raw.sent[-1])[0]
    assert sensor.fast.answer(first) is None  # a repeat on the 4-tuple
    sensor.handle_frame(first)
    assert tcp_fields(raw.sent[-1])[0] == isn
    exchange_data_and_close(sensor, raw, events, 40000, 7000, isn)
    assert flow_events(events, 40000) == ["connect", "data", "close"]


def test_the_sensor_registers_its_syn_recipe_and_probe_windows(catalog: PersonalityCatalog) -> None:
    """What Sensor._register_fast gives C: nmap's windows and closed ports stay Python's, and C's
    SYN/ACK has the stack's shape, its ISN drawn from the generator the stack draws from."""
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(from_attacker(sensor, 40000))  # builds the stack
    fast = sensor.fast
    for window in SYN_PROBE_WINDOWS:
        assert fast.answer(from_attacker(sensor, 41000 + window % 1000, window=window)) is None
    assert fast.answer(from_attacker(sensor, 40002, dport=81)) is None  # closed in CONFIG
    stack = sensor.hosts[VIP].stack
    assert stack is not None
    now = time.monotonic()
    reply = fast.answer(from_attacker(sensor, 40003), now=now)
    assert reply is not None
    personality = stack.personality
    assert isinstance(personality, HostPersonality)
    assert personality.syn_recipe()[2].value == tcp_fields(reply)[0]  # type: ignore[index]
    sensor.handle_frame(from_attacker(sensor, 40004))  # Python answers another at about the same time
    ours, python = tcp_of(reply), tcp_of(raw.sent[-1])
    assert (ours.flags, ours.window, ours.ip.ttl, ours.ip.df, ours.ip.ident, ours.options.kinds) == (
        python.flags, python.window, python.ip.ttl, python.ip.df, python.ip.ident, python.options.kinds,
    )  # fmt: skip


PORTS_CONFIG = """
create mixed
set mixed personality "Linux 5.4"
set mixed default tcp action open
add mixed tcp port 21 open
add mixed tcp port 22 block
add mixed tcp port 23 reset
add mixed tcp port 25 proxy 198.18.0.9:25
add mixed tcp port 26 "sh /bin/true"
bind 198.18.0.100 mixed
"""


def test_c_answers_only_the_ports_python_opens(catalog: PersonalityCatalog) -> None:
    """The ports the sensor gives C: listed and open (C leaves the default action to Python)."""
    config = build_sensor_config(
        parse_config(PORTS_CONFIG),
        PORTS_CONFIG,
        fingerprints=list(osdb().values()),
        mac_vendors=catalog.mac_vendors,
    )
    raw, events = FastRaw(), Events()
    sensor = Sensor(config, raw, events)  # type: ignore[arg-type]
    sensor.handle_frame(from_attacker(sensor, 40000, dport=21))  # builds the stack
    for port, c_answers, python_flags in (
        (21, True, 0x12),
        (22, False, None),
        (23, False, 0x14),
        (25, True, 0x12),
        (26, True, 0x12),
        (27, False, 0x12),  # unlisted: the default action, open (Python's)
    ):
        syn = from_attacker(sensor, 41000 + port, dport=port)
        assert (sensor.fast.answer(syn) is not None) == c_answers, port
        sent = len(raw.sent)
        sensor.handle_frame(syn)
        assert (tcp_fields(raw.sent[-1])[2] if len(raw.sent) > sent else None) == python_flags, port


# --------------------------------------------------------------------------- mangled input


@st.composite
def mangled_frames(draw: st.DrawFn) -> bytes:
    """Any bytes, or a frame the thread answers (ARP, ping, SYN) cut short and with bytes changed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=128))
    frame = bytearray(draw(st.sampled_from([arp_frame(), Ping().frame(), Syn().frame()])))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut]) + draw(st.binary(max_size=16))


@settings(max_examples=3000, deadline=None)
@given(frames=st.lists(mangled_frames(), min_size=1, max_size=8), checksums_ok=st.booleans())
def test_mangled_frames_never_break_the_thread_s_rules(frames: list[bytes], checksums_ok: bool) -> None:
    """Whatever arrives (the thread reads it from the wire unchecked), a decision is a reply frame
    or nothing, never longer than an Ethernet frame can be, and a well-formed ping and SYN to a
    fresh 4-tuple are still answered afterwards (a mangled frame can silence an address only as
    conflict evidence, so the check uses a host the frames cannot claim to come from)."""
    a, _ = twins(fingerprint("Linux 5.4"), 1)
    r = syn_responder(a)
    r.set_echo(HOST_IP, a.echo_recipe())
    for frame in frames:
        reply = r.answer(frame, checksums_ok, now=10.0)
        assert reply is None or (isinstance(reply, bytes) and 42 <= len(reply) <= 14 + len(frame) + 40)
    r.unbind(HOST_IP)  # start the host over: mangled frames may have silenced it
    r.bind(HOST_IP, HOST_MAC)
    r.set_echo(HOST_IP, a.echo_recipe())
    r.set_tcp(HOST_IP, (*a.syn_recipe(), (SYN.dport,)))
    assert r.answer(Ping(seq=4242).frame()) is not None
    assert r.answer(Syn(sport=61111).frame(), now=1000.0) is not None
