"""The sensor's packet path without a network: frames in, frames and events out.

The raw socket is replaced by a list (no root, no namespace needed here; the lab tests
run the same code on a real AF_PACKET socket).
"""

from __future__ import annotations

import asyncio
import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from dynapot.honeyd import parse_config
from dynapot.netstack.packets import (
    build_arp_frame,
    build_icmp,
    build_ipv4,
    build_tcp_packet,
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


def make_sensor(catalog, conflicts=None):
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw, events = FakeRaw(), Events()
    on_conflict = (lambda ip, mac: conflicts.append(ip)) if conflicts is not None else None
    return Sensor(config, raw, events, on_conflict=on_conflict), raw, events


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


def test_an_arp_announcement_by_another_machine_releases_the_address(catalog):
    conflicts: list[str] = []
    sensor, raw, events = make_sensor(catalog, conflicts)
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, OTHER_MAC, VIP, bytes(6), VIP))  # gratuitous ARP
    assert VIP not in sensor.hosts and conflicts == ["198.18.0.100"]
    assert "conflict" in events.kinds()
    raw.sent.clear()
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP))
    assert raw.sent == []  # never answered again
    assert VIP + 1 in sensor.hosts  # the other address is untouched


def test_ip_traffic_from_a_bound_address_with_a_foreign_mac_releases_it(catalog):
    sensor, _, events = make_sensor(catalog)
    packet = build_ipv4(VIP, ATTACKER_IP, 1, build_icmp(8, 0, 1, b"x"), ttl=64, ident=1)
    sensor.handle_frame(ip_frame(sensor, packet, dst_mac=ATTACKER_MAC, src_mac=OTHER_MAC))
    assert VIP not in sensor.hosts and "conflict" in events.kinds()


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
