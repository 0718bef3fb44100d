"""dynapot._fastpath (the C receive thread) against the Python stack it stands in for.

The thread answers ARP requests and ICMP echo requests without waking Python, and every
frame still reaches Python flagged `answered`, so exactly one of the two replies.  An
observer must not be able to tell which one did: whenever C answers, its reply has to be
byte for byte the frame Python would have sent (`dynapot.netstack.arp` for ARP, the host
stack and the personality's `echo_reply` for pings, with the same IP ID counters).  C may
decline frames Python answers (Python then answers them), never the other way round.

Everything here goes through `Responder.answer()`, the thread's decision without IO, so no
socket, root or sleep is needed.  Checked:

- `Counter`: the atomic IP ID counter, against the engine's pure-Python counter;
- ARP: generated frames give exactly `ArpResponder.receive`'s reply (or none), and the
  address table survives bind/unbind churn;
- echo: real nmap-os-db personalities (and variants for values the database lacks)
  compiled twice with the same seed, one feeding C its `echo_recipe()`, the other a real
  `HostStack`; replies must be equal, IP IDs included where they are deterministic;
- the frames C declines, the recipes and arguments it refuses;
- the sensor wired to a Responder: nothing is answered twice, and a released address is
  answered by neither.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dynapot._fastpath import Counter, Responder
from hypothesis import given, settings
from hypothesis import strategies as st

from dynapot.honeyd import parse_config
from dynapot.netstack.arp import ArpResponder, SendFrame
from dynapot.netstack.events import SendPacket
from dynapot.netstack.host import HostStack
from dynapot.netstack.packets import (
    BROADCAST_MAC,
    Malformed,
    build_arp_frame,
    build_icmp,
    build_ipv4,
    checksum,
    parse_arp,
    parse_ethernet,
    parse_ipv4,
)
from dynapot.netstack.types import ETH_P_ARP, IPPROTO_ICMP
from dynapot.personality.catalog import PersonalityCatalog
from dynapot.personality.engine import HostPersonality, _PyCounter, compile_personality
from dynapot.personality.osdb import Fingerprint, fingerprints_by_name, load_osdb
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.events import Event, EventWriter
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
    "dropped",
    "send_errors",
    "recv_errors",
    "queued",
    "queued_bytes",
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
    if name not in VARIANTS:
        return osdb()[name]
    base_name, changes = VARIANTS[name]
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


def python_arp(frame: bytes, bindings: dict[int, bytes] = BINDINGS) -> bytes | None:
    """The frame dynapot.netstack.arp sends for `frame`, or None."""
    eth = parse_ethernet(frame)
    if type(eth) is Malformed or eth.ethertype != ETH_P_ARP:
        return None
    arp = parse_arp(eth.payload)
    if type(arp) is Malformed:
        return None
    result = ArpResponder(bindings).receive(eth, arp)
    return result.frame if type(result) is SendFrame else None


u16 = st.integers(0, 0xFFFF)
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
    "announcement of a bound address by another MAC": (arp_frame(1, STRANGER_MAC, HOST_IP, HOST_IP), False),
    "a bound address asking, with its own MAC": (arp_frame(1, OTHER_MAC, OTHER_IP, HOST_IP), False),
    "a bound address asking, with another MAC": (arp_frame(1, STRANGER_MAC, OTHER_IP, HOST_IP), False),
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
    expected = python_arp(frame)
    assert (expected is not None) == answered  # the case says what it claims to say
    assert responder().answer(frame) == expected
    assert responder().answer(frame, False) == expected  # checksum offload is irrelevant to ARP


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
    assert responder().answer(frame, checksums_ok) == python_arp(frame)


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


@pytest.mark.parametrize("name", ECHO_PANEL)
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), requests=st.lists(pings, min_size=1, max_size=6))
def test_echo_replies_equal_the_personality(name: str, seed: int, requests: list[Ping]) -> None:
    a, b = twins(fingerprint(name), seed)
    recipe = a.echo_recipe()
    assert recipe is not None and recipe[:7] == b.echo_recipe()[:7]
    kind, low, high = recipe[3], recipe[5], recipe[6]
    random_ids = kind == RD or (kind == INC and low != high)
    r = responder(recipe)
    stack = HostStack(HOST_IP, HOST_MAC, b)
    last: tuple[int, int] | None = None  # (C's, Python's) previous IP ID
    for request in requests:
        frame = request.frame()
        reply = r.answer(frame)
        expected = python_echo(stack, frame)
        assert reply is not None and expected is not None
        assert reply[:14] == request.src_mac + HOST_MAC + b"\x08\x00"
        if random_ids:
            # Both sides draw the step at random: the same packet apart from the IP ID ...
            assert reply[14:] == with_ip_id(expected[14:], ip_id(reply))
            # ... and both IP ID sequences follow the rule nmap checks.
            if last is not None:
                check_ip_id_step(kind, low, high, last[0], ip_id(reply))
                check_ip_id_step(kind, low, high, last[1], ip_id(expected))
            last = ip_id(reply), ip_id(expected)
        else:
            assert reply == expected


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
    "source the host itself": Ping(src=HOST_IP).frame(),
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


class FastRaw:
    """The raw socket of a sensor with a receive thread, minus the socket and the thread."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.responder = Responder(-1)

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def frames(self) -> Iterator[tuple[bytes, bool, bool]]:  # nothing arrives on its own
        return iter(())

    def start(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


class Events(EventWriter):
    """The sensor's events, in a list."""

    def __init__(self) -> None:  # no sink: kept in a list
        self.items: list[Event] = []

    def submit(self, event: Event) -> None:
        self.items.append(event)

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
    # ... and Python, told so, logs the ping without replying again.
    sensor.handle_frame(second, True, answered=True)
    assert len(raw.sent) == 1 and events.echoes() == ["8(0): replied"] * 2
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
    sensor.handle_frame(request, True, answered=True)
    assert len(raw.sent) == 2
    sensor.handle_frame(request)
    assert raw.sent[2:] == [arp_reply]

    # Another machine announces the address: neither side answers for it any more.
    sensor.handle_frame(build_arp_frame(BROADCAST_MAC, 1, STRANGER_MAC, VIP, bytes(6), VIP))
    assert VIP not in sensor.hosts
    assert fast.answer(request) is None and fast.answer(ping) is None
    # The other address is untouched.
    other = build_arp_frame(BROADCAST_MAC, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP + 1)
    assert fast.answer(other) is not None


def test_ipv4_from_a_bound_address_releases_it_in_c_too(catalog: PersonalityCatalog) -> None:
    sensor, _, _ = make_sensor(catalog)
    ping = sensor_ping(sensor)
    sensor.handle_frame(ping)
    assert sensor.fast.answer(ping) is not None
    # IPv4 from the bound address with a foreign MAC releases it too.
    packet = Ping(src=VIP, dst=ATTACKER_IP, dst_mac=ATTACKER_MAC, src_mac=STRANGER_MAC).frame()
    sensor.handle_frame(packet)
    assert VIP not in sensor.hosts
    assert sensor.fast.answer(ping) is None
    assert (
        sensor.fast.answer(build_arp_frame(BROADCAST_MAC, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP))
        is None
    )


def pending_sensor(catalog: PersonalityCatalog) -> tuple[Sensor, FastRaw]:
    """probe_first: .101 claimed (and answering pings), .100 still pending behind its ARP probe."""
    sensor, raw, _ = make_sensor(catalog, probe_first=True)
    mac = sensor.hosts[VIP + 1].definition.mac
    asyncio.run(sensor.probe_addresses([(VIP + 1, mac)], wait=0.0))
    assert VIP in sensor.pending and VIP + 1 in sensor.arp.bindings
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
