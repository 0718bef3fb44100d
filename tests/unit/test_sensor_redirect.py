"""The sensor relays redirected ports to a real backend at packet level and contains the backend.

Frames in, frames and events out: the raw socket is a list (the lab test runs the same code
on a real AF_PACKET socket with a real sshd behind it).
"""

from __future__ import annotations

import functools

from dynapot.config import BackendSettings, RedirectSettings
from dynapot.honeyd import parse_config
from dynapot.netstack.packets import build_tcp_packet, parse_ethernet, parse_ipv4, parse_tcp
from dynapot.netstack.types import TcpFlags
from dynapot.personality.osdb import load_osdb
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.eventlog import Event, EventWriter
from dynapot.sensor.runtime import Sensor

SYN, ACK, RST = int(TcpFlags.SYN), int(TcpFlags.ACK), int(TcpFlags.RST)
CONFIG = """
create lin
set lin personality "Linux 5.4"
add lin tcp port 22 proxy 198.18.0.50:22
add lin tcp port 80 open
add lin tcp port 8080 proxy 198.18.0.9:80
bind 198.18.0.100 lin
"""
ATTACKER, ATTACKER_MAC = 0xC6120003, bytes.fromhex("020000000003")
SENSOR_MAC = bytes.fromhex("020000000002")
VIP = 0xC6120064
BACKEND, BACKEND_MAC = 0xC6120032, bytes.fromhex("020000000050")
OUTSIDE = 0xC6130050  # 198.19.0.80


class FakeRaw:
    mac = SENSOR_MAC

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)


class Events(EventWriter):
    def __init__(self) -> None:
        self.items: list[Event] = []

    def submit(self, event: Event) -> None:
        self.items.append(event)


@functools.cache
def fingerprints():
    return load_osdb()


def make_sensor(catalog, **redirect):
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    backend = BackendSettings(
        name="lin1", address="198.18.0.50", os="Linux", ports=(22,), mac="02:00:00:00:00:50"
    )
    raw, events = FakeRaw(), Events()
    sensor = Sensor(config, raw, events, backends=[backend], redirect=RedirectSettings(**redirect))
    return sensor, raw, events


def from_attacker(sensor, flags, dport=22, sport=40000, seq=1000):
    packet = build_tcp_packet(ATTACKER, VIP, sport, dport, seq, 0, flags, 29200, 64, 1, True)
    return sensor.hosts[VIP].definition.mac + ATTACKER_MAC + b"\x08\x00" + packet


def from_backend(dst, sport, dport, flags, seq=5000, ack=0):
    packet = build_tcp_packet(BACKEND, dst, sport, dport, seq, ack, flags, 64240, 64, 1, True)
    return SENSOR_MAC + BACKEND_MAC + b"\x08\x00" + packet


def test_a_redirected_port_is_relayed_with_the_attackers_address_and_not_open_in_the_fast_path(catalog):
    sensor, raw, events = make_sensor(catalog)
    host = sensor.hosts[VIP]
    assert list(host.redirected) == [22]
    assert 22 not in host.open_ports() and 80 in host.open_ports()  # the C thread never answers its SYNs
    sensor.handle_frame(from_attacker(sensor, SYN))
    (frame,) = raw.sent
    eth = parse_ethernet(frame)
    assert (eth.dst, eth.src) == (BACKEND_MAC, SENSOR_MAC)
    ip = parse_ipv4(eth.payload)
    assert (ip.src, ip.dst) == (ATTACKER, BACKEND)  # the backend sees the attacker
    assert parse_tcp(ip).flags == SYN
    assert [e.kind for e in events.items] == ["redirect"]
    assert events.items[0].data == {"backend": "lin1", "backend_ip": "198.18.0.50", "sticky": False}
    raw.sent.clear()
    sensor.handle_frame(from_backend(ATTACKER, 22, 40000, SYN | ACK, ack=1001))
    (frame,) = raw.sent
    eth = parse_ethernet(frame)
    assert (eth.dst, eth.src) == (ATTACKER_MAC, host.definition.mac)  # from the virtual host's MAC
    ip = parse_ipv4(eth.payload)
    assert (ip.src, ip.dst) == (VIP, ATTACKER)
    assert parse_tcp(ip).flags == SYN | ACK
    assert host.stack is None  # our own stack never saw it


def test_other_ports_stay_with_the_sensor_and_a_proxy_elsewhere_stays_a_proxy(catalog):
    sensor, raw, _events = make_sensor(catalog)
    sensor.handle_frame(from_attacker(sensor, SYN, dport=80))
    reply = parse_tcp(parse_ipv4(parse_ethernet(raw.sent[-1]).payload))
    assert reply.flags == SYN | ACK and reply.sport == 80  # answered by the virtual host's own stack
    assert 8080 in sensor.hosts[VIP].open_ports()  # honeyd's proxy: a TCP proxy from the sensor


def test_proxy_mode_keeps_honeyds_tcp_proxy(catalog):
    sensor, _raw, _ = make_sensor(catalog, mode="proxy")
    assert sensor.redirector is None and 22 in sensor.hosts[VIP].open_ports()


def test_the_backends_own_connections_are_sinkholed_then_refused_and_logged(catalog):
    sensor, raw, events = make_sensor(catalog, outbound_per_hour=1)
    sensor.handle_frame(from_backend(OUTSIDE, 50000, 80, SYN))
    eth = parse_ethernet(raw.sent[-1])
    assert eth.dst == BACKEND_MAC  # answered toward the backend, never sent on toward OUTSIDE
    answer = parse_tcp(parse_ipv4(eth.payload))
    assert answer.flags == SYN | ACK and answer.sport == 80
    sensor.handle_frame(from_backend(OUTSIDE, 50001, 80, SYN))
    refused = parse_tcp(parse_ipv4(parse_ethernet(raw.sent[-1]).payload))
    assert refused.flags == RST | ACK
    outbound = [e for e in events.items if e.kind == "outbound"]
    assert [(e.src, e.dst, e.dport, e.detail) for e in outbound] == [
        (BACKEND, OUTSIDE, 80, "sinkholed"),
        (BACKEND, OUTSIDE, 80, "refused"),
    ]
    assert sensor.counters["containment: outbound refused"] == 1
    assert all(parse_ipv4(parse_ethernet(f).payload).dst == BACKEND for f in raw.sent)
    assert sensor.health()["redirect"] == {"flows": 0, "attackers": 0, "sinkholed": 1}


def test_a_backends_frame_to_someone_else_is_not_ours(catalog):
    sensor, raw, events = make_sensor(catalog)
    frame = from_backend(OUTSIDE, 50000, 80, SYN)
    sensor.handle_frame(ATTACKER_MAC + frame[6:])  # seen in promiscuous mode, not sent to its gateway
    assert raw.sent == [] and events.items == []
