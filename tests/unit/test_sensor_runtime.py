"""The sensor's packet path without a network: frames in, frames and events out.

The raw socket is replaced by a list (no root, no namespace needed here; the lab tests
run the same code on a real AF_PACKET socket).
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynapot.honeyd import parse_config
from dynapot.netstack.packets import (
    Malformed,
    build_arp_frame,
    build_icmp,
    build_ipv4,
    build_tcp_packet,
    build_udp_packet,
    parse_arp,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)
from dynapot.personality.nmap_probes import SEQ_OPTIONS, SEQ_WINDOWS
from dynapot.personality.osdb import load_osdb
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.eventlog import Event, EventWriter
from dynapot.sensor.runtime import Sensor

CONFIG = """
create web
set web personality "Linux 5.4"
add web tcp port 80 open
bind 198.18.0.100 web
bind 198.18.0.101 web
"""
ATTACKER_IP = 0xC6120003
ATTACKER_MAC = bytes.fromhex("020000000003")
OTHER_MAC = bytes.fromhex("020000000099")
VIP = 0xC6120064
BROADCAST = b"\xff" * 6


class FakeRaw:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def frames(self):
        return iter(())

    def start(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


class Events(EventWriter):
    """Keeps events in a list instead of writing them."""

    def __init__(self) -> None:
        self.items: list[Event] = []

    def submit(self, event: Event) -> None:
        self.items.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.items]


@functools.cache
def fingerprints():
    return load_osdb()


class Clock:
    """The address checks' clock, moved by the test (no test waits on the real one)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_sensor(catalog, conflicts=None, config_text=CONFIG):
    config = build_sensor_config(
        parse_config(config_text), config_text, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw, events = FakeRaw(), Events()
    on_conflict = (lambda ip, mac: conflicts.append(ip)) if conflicts is not None else None
    sensor = Sensor(config, raw, events, on_conflict=on_conflict)
    sensor.claims.clock = Clock()
    return sensor, raw, events


def vmac(sensor, ip=VIP) -> bytes:
    return sensor.hosts[ip].definition.mac


def ip_frame(sensor, packet: bytes, dst_mac: bytes | None = None, src_mac: bytes = ATTACKER_MAC) -> bytes:
    return (dst_mac or vmac(sensor)) + src_mac + b"\x08\x00" + packet


def test_arp_is_answered_for_bound_addresses_only(catalog):
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP))
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP + 50))
    assert len(raw.sent) == 1
    reply = parse_ethernet(raw.sent[0])
    assert reply.dst == ATTACKER_MAC and reply.src == vmac(sensor)


def announcement(mac: bytes = OTHER_MAC, ip: int = VIP) -> bytes:
    """A gratuitous ARP: `mac` says it has `ip` (what a machine joining the network sends)."""
    return build_arp_frame(BROADCAST, 1, mac, ip, bytes(6), ip)


def check_answer(sensor, mac: bytes = OTHER_MAC, ip: int = VIP) -> bytes:
    """A machine that has `ip` answering our ARP probe for it: unicast to the probe's sender."""
    ours = sensor.hosts[ip].definition.mac
    return build_arp_frame(ours, 2, mac, ip, ours, 0)


def probes(raw: FakeRaw) -> list[tuple[bytes, int]]:
    """The ARP probes sent: (sender MAC, address probed for)."""
    found = []
    for frame in raw.sent:
        arp = parse_arp(frame[14:]) if frame[12:14] == b"\x08\x06" else None
        if arp is not None and not isinstance(arp, Malformed) and arp.op == 1 and arp.sender_ip == 0:
            assert frame[:6] == BROADCAST and frame[6:12] == arp.sender_mac and arp.target_mac == bytes(6)
            found.append((arp.sender_mac, arp.target_ip))
    return found


def answers_arp(sensor, raw: FakeRaw, ip: int = VIP) -> bool:
    sent = len(raw.sent)
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), ip))
    return any(f[:6] == ATTACKER_MAC and f[12:14] == b"\x08\x06" for f in raw.sent[sent:])


def test_a_machine_that_announces_an_address_and_answers_our_check_gets_it(catalog):
    conflicts: list[str] = []
    sensor, raw, events = make_sensor(catalog, conflicts)
    vmac_ = vmac(sensor)
    sensor.handle_frame(announcement())  # a machine joins on the address: evidence, not proof
    assert VIP in sensor.hosts and conflicts == []
    assert probes(raw) == [(vmac_, VIP)]  # our check: an RFC 5227 probe from the host's own MAC
    sensor.handle_frame(check_answer(sensor))  # it has the address: it answers
    assert VIP not in sensor.hosts and conflicts == ["198.18.0.100"]
    conflict = events.items[-1]
    assert conflict.kind == "conflict" and conflict.dst == VIP
    assert conflict.detail == (
        "ARP announcement of the address by 02:00:00:00:00:99, then an answer to our ARP check "
        "by 02:00:00:00:00:99: released"
    )
    assert sensor.claims.released == {"198.18.0.100": "02:00:00:00:00:99"}
    assert sensor.counters["address check: answered by another MAC (released)"] == 1
    raw.sent.clear()
    assert not answers_arp(sensor, raw)  # never answered again
    assert VIP + 1 in sensor.hosts and answers_arp(sensor, raw, VIP + 1)  # the other address is untouched
    assert sensor.health()["address_checks"]["recent"][-1]["outcome"] == "answered our ARP check: released"


@pytest.mark.parametrize("spoof", ["gratuitous ARP", "ARP reply", "ARP request", "UDP", "ping"])
def test_one_spoofed_packet_does_not_take_an_address(catalog, spoof):
    """The attacker's MAC on a packet from a virtual host's address: we check, nobody answers,
    the address stays ours and the evidence is recorded as unconfirmed."""
    conflicts: list[str] = []
    sensor, raw, events = make_sensor(catalog, conflicts)
    frames = {
        "gratuitous ARP": announcement(ATTACKER_MAC),
        "ARP reply": build_arp_frame(BROADCAST, 2, ATTACKER_MAC, VIP, bytes(6), VIP),
        "ARP request": build_arp_frame(BROADCAST, 1, ATTACKER_MAC, VIP, bytes(6), ATTACKER_IP),
        "UDP": ip_frame(sensor, build_udp_packet(VIP, ATTACKER_IP, 53, 53, b"x", 64, 1, False), BROADCAST),
        "ping": ip_frame(
            sensor,
            build_ipv4(VIP, VIP + 1, 1, build_icmp(8, 0, 1, b"x"), ttl=64, ident=1),
            vmac(sensor, VIP + 1),
        ),
    }
    sensor.handle_frame(frames[spoof])
    assert probes(raw) == [(vmac(sensor), VIP)] and VIP in sensor.hosts
    clock = sensor.claims.clock
    sensor.claims.expire(clock.now + 0.99)  # the window and its grace are not over: nothing judged yet
    assert "conflict-unconfirmed" not in events.kinds()
    sensor.claims.expire(clock.now + 1.0)
    assert VIP in sensor.hosts and conflicts == [] and "conflict" not in events.kinds()
    (kept,) = [e for e in events.items if e.kind == "conflict-unconfirmed"]
    assert kept.dst == VIP and "by 02:00:00:00:00:03: nobody answered our ARP check, kept" in kept.detail
    assert sensor.counters["address check: unanswered (address kept; spoofed evidence?)"] == 1
    assert answers_arp(sensor, raw)
    recent = sensor.health()["address_checks"]["recent"]
    assert recent[-1]["outcome"] == "unanswered: kept" and recent[-1]["mac"] == "02:00:00:00:00:03"


def test_an_answer_after_the_check_window_is_only_new_evidence(catalog):
    sensor, _, _ = make_sensor(catalog)
    sensor.handle_frame(announcement(ATTACKER_MAC))
    sensor.claims.clock.now += 0.5  # the probe's window is over
    sensor.handle_frame(check_answer(sensor, ATTACKER_MAC))  # a late (or unsolicited) "answer"
    assert VIP in sensor.hosts
    assert sensor.counters["address check: evidence over a rate limit (no probe)"] == 1


def test_an_answer_to_a_probe_we_never_sent_is_not_proof(catalog):
    """An attacker sending the reply a real host would send, with no check running: evidence only."""
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(check_answer(sensor, ATTACKER_MAC))
    assert VIP in sensor.hosts and probes(raw) == [(vmac(sensor), VIP)]
    assert sensor.counters["address check: started (evidence; ARP probe sent)"] == 1


def test_a_reply_that_does_not_answer_our_probe_does_not_confirm(catalog):
    """During a check, only a reply to the probe's sender (our MAC) confirms: a gratuitous
    reply, or one to someone else, is more evidence."""
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(announcement(ATTACKER_MAC))
    for target in (bytes(6), BROADCAST, ATTACKER_MAC):
        sensor.handle_frame(build_arp_frame(BROADCAST, 2, ATTACKER_MAC, VIP, target, VIP))
        sensor.handle_frame(announcement(ATTACKER_MAC))
    assert VIP in sensor.hosts and len(probes(raw)) == 1
    assert sensor.counters["address check: more evidence during a check"] == 6


def test_a_probe_for_a_claimed_address_is_noted_and_its_announcement_checked(catalog):
    """RFC 5227: a host probing for an address must not see a probe of ours for it (it would
    give up). We note its probes, then check its announcement."""
    conflicts: list[str] = []
    sensor, raw, _ = make_sensor(catalog, conflicts)
    for _ in range(3):
        sensor.handle_frame(build_arp_frame(BROADCAST, 1, OTHER_MAC, 0, bytes(6), VIP))
    assert probes(raw) == [] and VIP in sensor.hosts
    assert sensor.counters["address check: ARP probe for a claimed address (noted)"] == 3
    ours = vmac(sensor)
    sensor.handle_frame(announcement())
    sensor.handle_frame(check_answer(sensor))
    assert probes(raw) == [(ours, VIP)] and conflicts == ["198.18.0.100"]


def test_checks_are_rate_limited_per_address_and_in_total(catalog):
    text = 'create web\nset web personality "Linux 5.4"\n' + "".join(
        f"bind 198.18.1.{i} web\n" for i in range(1, 101)
    )
    sensor, raw, _ = make_sensor(catalog, config_text=text)
    first = 0xC6120101
    for _ in range(50):  # a flood against one address: one probe
        sensor.handle_frame(announcement(ATTACKER_MAC, first))
    assert len(probes(raw)) == 1
    for i in range(100):  # against every address at once: a burst of 20
        for _ in range(10):
            sensor.handle_frame(announcement(ATTACKER_MAC, first + i))
    assert len(probes(raw)) == 20 and len(sensor.hosts) == 100
    assert sensor.counters["address check: evidence over a rate limit (no probe)"] == 80 * 10
    assert sensor.counters["address check: more evidence during a check"] == 49 + 10 + 19 * 9
    sensor.claims.clock.now += 0.5  # 0.5 s later: 10 more
    for i in range(100):
        sensor.handle_frame(announcement(ATTACKER_MAC, first + i))
    assert len(probes(raw)) == 30


def test_ipv4_from_a_claimed_address_through_a_router_is_no_evidence(catalog):
    router = bytes.fromhex("0200000000fe")
    sensor, raw, _ = make_sensor(catalog)
    sensor.claims.set_network([(0xC6120002, 24)])
    far = build_udp_packet(0x08080808, VIP, 53, 5353, b"far", 57, 1, False)
    sensor.handle_frame(ip_frame(sensor, far, src_mac=router))  # from afar: the router is learned
    assert sensor.health()["address_checks"]["routers"] == ["02:00:00:00:00:fe"]
    spoofed = build_udp_packet(VIP, ATTACKER_IP, 53, 53, b"x", 57, 2, False)
    sensor.handle_frame(ip_frame(sensor, spoofed, dst_mac=ATTACKER_MAC, src_mac=router))
    assert probes(raw) == [] and VIP in sensor.hosts
    assert sensor.counters["address check: IPv4 from a claimed address via a router (ignored)"] == 1
    sensor.handle_frame(ip_frame(sensor, spoofed, dst_mac=ATTACKER_MAC, src_mac=OTHER_MAC))  # not a router
    assert probes(raw) == [(vmac(sensor), VIP)]


def test_the_gateway_is_a_router(catalog):
    gateway_mac = bytes.fromhex("0200000000fe")
    sensor, raw, _ = make_sensor(catalog)
    sensor.claims.set_network([(0xC6120002, 24)], 0xC6120001)
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, gateway_mac, 0xC6120001, bytes(6), ATTACKER_IP))
    spoofed = build_udp_packet(VIP, ATTACKER_IP, 53, 53, b"x", 57, 2, False)
    sensor.handle_frame(ip_frame(sensor, spoofed, dst_mac=ATTACKER_MAC, src_mac=gateway_mac))
    assert probes(raw) == [] and VIP in sensor.hosts


def test_frames_for_other_macs_are_ignored(catalog):
    sensor, raw, events = make_sensor(catalog)
    packet = build_ipv4(ATTACKER_IP, VIP, 1, build_icmp(8, 0, 1, b"x"), ttl=64, ident=1)
    sensor.handle_frame(ip_frame(sensor, packet, dst_mac=OTHER_MAC))
    assert raw.sent == [] and events.items == []


def test_a_connection_to_an_open_port_is_recorded(catalog):
    async def main():
        sensor, raw, events = make_sensor(catalog)
        sensor._loop = asyncio.get_running_loop()
        sport = 40000
        syn = build_tcp_packet(
            ATTACKER_IP, VIP, sport, 80, 1000, 0, 2, 64240, 64, 1, True, b"\x02\x04\x05\xb4"
        )
        sensor.handle_frame(ip_frame(sensor, syn))
        synack = parse_tcp(parse_ipv4(raw.sent[-1][14:]))
        assert synack.flags == 0x12 and synack.ack == 1001
        for seq, flags, payload in (
            (1001, 0x10, b""),
            (1001, 0x18, b"GET / HTTP/1.0\r\n\r\n"),
            (1019, 0x11, b""),
        ):
            ack = synack.seq + 1
            packet = build_tcp_packet(
                ATTACKER_IP, VIP, sport, 80, seq, ack, flags, 502, 64, 2, True, payload=payload
            )
            sensor.handle_frame(ip_frame(sensor, packet))
        last = parse_tcp(parse_ipv4(raw.sent[-1][14:]))
        assert last.flags & 0x01  # the recorder closed its side after the peer's FIN
        final_ack = build_tcp_packet(ATTACKER_IP, VIP, sport, 80, 1020, last.seq + 1, 0x10, 502, 64, 3, True)
        sensor.handle_frame(ip_frame(sensor, final_ack))
        return events

    events = asyncio.run(main())
    assert events.kinds() == ["connect", "data", "close"]
    data = events.items[1]
    assert data.detail == "GET / HTTP/1.0\\r\\n\\r\\n" and data.data == {"bytes": 18}
    assert events.items[2].bytes_in == 18


def test_nmap_os_probes_mark_the_source_as_an_nmap_os_scan(catalog):
    sensor, _, events = make_sensor(catalog)
    probe = build_tcp_packet(
        ATTACKER_IP, VIP, 50000, 80, 1, 0, 2, SEQ_WINDOWS[0], 64, 1, False, SEQ_OPTIONS[0]
    )
    sensor.handle_frame(ip_frame(sensor, probe))
    assert events.items[0].kind == "os-scan"
    assert all(e.scan_tool == "nmap OS scan" for e in events.items)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.sampled_from([b"\x08\x00", b"\x08\x06", b"\x86\xdd"]))
def test_garbage_never_crashes_the_sensor(catalog, payload, ethertype):
    sensor, _, _ = make_sensor(catalog)
    sensor.handle_frame(vmac(sensor) + ATTACKER_MAC + ethertype + payload)
    sensor.handle_frame(payload)
    assert sensor.counters["internal error"] == 0
    assert len(sensor.hosts) == 2 or any(e for e in sensor.claims.released)


def test_addresses_are_claimed_only_after_an_unanswered_arp_probe(catalog):
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw, events = FakeRaw(), Events()
    sensor = Sensor(config, raw, events, probe_first=True)
    assert set(sensor.claims.pending) == {VIP, VIP + 1} and sensor.claims.arp.bindings == {}

    async def main():
        sensor._loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(sensor.claims.probe(wait=0.2))
        await asyncio.sleep(0.05)
        # Before the wait is over nobody gets an answer for either address ...
        sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP + 1))
        assert not any(parse_ethernet(f).dst == ATTACKER_MAC for f in raw.sent)
        # ... and a machine that answers the probe for .100 keeps it.
        sensor.handle_frame(build_arp_frame(vmac(sensor), 2, OTHER_MAC, VIP, vmac(sensor), VIP))
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    probes = [parse_ethernet(f) for f in raw.sent]
    assert len(probes) == 2 and all(p.dst == BROADCAST and p.ethertype == 0x0806 for p in probes)
    assert VIP not in sensor.hosts and "conflict" in events.kinds()
    assert set(sensor.claims.arp.bindings) == {VIP + 1} and sensor.claims.probing_done.is_set()
