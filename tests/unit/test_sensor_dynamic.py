"""honeyd's dynamic templates: one address, several machines, chosen per source as honeyd does.

Pure conditions first, then the sensor's packet path (the raw socket replaced by a list, as in
test_sensor_runtime): the source's network, its passive OS (p0f of its SYN, the real p0f
database) and the packet's protocol pick the machine that answers, and a connection keeps the
machine that answered its first packet.
"""

from __future__ import annotations

import struct
import time

import pytest
from test_sensor_runtime import ATTACKER_IP, ATTACKER_MAC, Events, FakeRaw, fingerprints

from dynapot.discovery.p0f import P0fDatabase, P0fMatcher
from dynapot.honeyd import parse_config
from dynapot.honeyd.config import Condition, TimeOfDay
from dynapot.netstack.packets import (
    build_icmp,
    build_ipv4,
    build_tcp_packet,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)
from dynapot.netstack.types import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.dynamic import Chooser, holds
from dynapot.sensor.runtime import Sensor

NOON = time.struct_time((2026, 12, 7, 12, 0, 0, 0, 341, 0))
SRC = 0xC6120503  # 198.18.5.3


@pytest.mark.parametrize(
    ("condition", "src", "proto", "source_os", "expected"),
    [
        (Condition("ip", "198.18.5.0/24"), SRC, IPPROTO_TCP, None, True),
        (Condition("ip", "198.18.6.0/24"), SRC, IPPROTO_TCP, None, False),
        (Condition("ip", "198.18.5.3"), SRC, IPPROTO_TCP, None, True),
        (Condition("os", "windows"), SRC, IPPROTO_TCP, "Windows 7 or 8", True),
        (Condition("os", "Windows XP"), SRC, IPPROTO_TCP, "Windows XP", True),
        (Condition("os", "windows xp"), SRC, IPPROTO_TCP, "Windows 7 or 8", False),
        (Condition("os", "win"), SRC, IPPROTO_TCP, "Windows 7 or 8", False),  # whole words only
        (Condition("os", "linux"), SRC, IPPROTO_TCP, None, False),  # not known yet: no OS holds
        (Condition("proto", "udp"), SRC, IPPROTO_UDP, None, True),
        (Condition("proto", "icmp"), SRC, IPPROTO_TCP, None, False),
        (Condition("time", between=(TimeOfDay(9, 0), TimeOfDay(17, 0))), SRC, IPPROTO_TCP, None, True),
        (Condition("time", between=(TimeOfDay(0, 0), TimeOfDay(5, 0))), SRC, IPPROTO_TCP, None, False),
        # honeyd tests start <= now <= end within one day: a range across midnight never holds
        (Condition("time", between=(TimeOfDay(22, 0), TimeOfDay(2, 0))), SRC, IPPROTO_TCP, None, False),
        (Condition("otherwise"), SRC, IPPROTO_ICMP, None, True),
    ],
)
def test_conditions_hold_as_honeyd_tests_them(condition, src, proto, source_os, expected) -> None:
    assert holds(condition, src, proto, source_os, NOON) is expected


def test_the_first_rule_that_holds_wins_else_the_default() -> None:
    chooser = Chooser(
        "linux", [(Condition("proto", "udp"), "windows"), (Condition("ip", "198.18.5.0/24"), "router")]
    )
    assert chooser.choose(SRC, IPPROTO_UDP, None, NOON) == "windows"  # listed first
    assert chooser.choose(SRC, IPPROTO_TCP, None, NOON) == "router"
    assert chooser.choose(0xC6120703, IPPROTO_TCP, None, NOON) == "linux"
    assert chooser.all() == ("linux", "windows", "router")


CONFIG = """
create windows
set windows personality "Microsoft Windows XP Professional SP2"
set windows default tcp action reset
add windows tcp port 445 open
create linux
set linux personality "Linux 2.6.32"
set linux default tcp action reset
add linux tcp port 22 open
dynamic magic
add magic use windows if source ip = 198.18.0.0/30
add magic use windows if source os = "windows"
add magic otherwise use linux
add magic use windows if udp
bind 198.18.0.100 magic
"""
VIP = 0xC6120064
OTHER = 0xC6120009  # 198.18.0.9: outside the /30


def make_sensor(catalog, p0f: P0fMatcher | None = None):
    config = build_sensor_config(
        parse_config(CONFIG), CONFIG, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw, events = FakeRaw(), Events()
    return Sensor(config, raw, events, p0f=p0f), raw, events


def syn(sensor, src: int, dport: int, *, sport: int = 40000, windows: bool = False) -> bytes:
    if windows:  # what p0f's "Windows 7 or 8" signature describes: ttl 128, 8192, mss,nop,ws 8,nop,nop,sok
        options = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x03\x03\x08\x01\x01\x04\x02"
        packet = build_tcp_packet(src, VIP, sport, dport, 1000, 0, 0x02, 8192, 128, 7, True, options)
    else:
        packet = build_tcp_packet(src, VIP, sport, dport, 1000, 0, 0x02, 64240, 64, 7, True)
    return sensor.hosts[VIP].definition.mac + ATTACKER_MAC + b"\x08\x00" + packet


def answer(raw: FakeRaw):
    """The last frame sent, as (TTL, TCP flags)."""
    ip = parse_ipv4(parse_ethernet(raw.sent[-1]).payload)
    return ip.ttl, parse_tcp(ip).flags


def test_the_source_network_picks_the_machine(catalog) -> None:
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(syn(sensor, ATTACKER_IP, 445))  # 198.18.0.3: in the /30 -> Windows
    assert answer(raw) == (128, 0x12)  # SYN/ACK with Windows' TTL
    sensor.handle_frame(syn(sensor, ATTACKER_IP, 22, sport=40001))
    assert answer(raw)[1] & 0x04  # Windows has no port 22: reset
    sensor.handle_frame(syn(sensor, OTHER, 22))  # outside: `otherwise` -> Linux
    assert answer(raw) == (64, 0x12)
    sensor.handle_frame(syn(sensor, OTHER, 445, sport=40001))
    assert answer(raw)[1] & 0x04


def test_the_source_os_from_its_syn_picks_the_machine(catalog) -> None:
    sensor, raw, _ = make_sensor(catalog, P0fMatcher(P0fDatabase.load()))
    sensor.handle_frame(syn(sensor, OTHER, 445, windows=True))  # p0f: Windows -> the Windows machine
    assert sensor.observer.source_os[OTHER].startswith("Windows")
    assert answer(raw) == (128, 0x12)
    linux_source = OTHER + 1
    sensor.handle_frame(syn(sensor, linux_source, 445))
    assert answer(raw)[1] & 0x04 and answer(raw)[0] == 64


def test_a_connection_keeps_the_machine_that_answered_its_first_packet(catalog) -> None:
    sensor, raw, _ = make_sensor(catalog)
    sensor.handle_frame(syn(sensor, OTHER, 22))
    ttl, flags = answer(raw)
    assert (ttl, flags) == (64, 0x12)
    synack = parse_tcp(parse_ipv4(parse_ethernet(raw.sent[-1]).payload))
    # The conditions change under it (as a `time between` rule would at its hour): new exchanges
    # go to Windows, the connection in progress stays with Linux.
    host = sensor.hosts[VIP]
    windows = host.chooser.rules[0][1]
    host.chooser = Chooser(linux_machine := host.chooser.default, [(Condition("otherwise"), windows)])
    ack = build_tcp_packet(OTHER, VIP, 40000, 22, 1001, synack.seq + 1, 0x10, 64240, 64, 8, True)
    sent = len(raw.sent)
    sensor.handle_frame(host.definition.mac + ATTACKER_MAC + b"\x08\x00" + ack)
    assert len(raw.sent) == sent  # no reset: the Linux machine knew the connection
    assert linux_machine.stack.connection(OTHER, 40000, 22) is not None
    sensor.handle_frame(syn(sensor, OTHER, 22, sport=40002))  # a new one: Windows, port 22 closed
    assert answer(raw)[1] & 0x04 and answer(raw)[0] == 128


def test_rules_after_otherwise_are_never_reached_and_ping_follows_the_rules(catalog) -> None:
    sensor, raw, _ = make_sensor(catalog)
    host = sensor.hosts[VIP]
    # `add magic use windows if udp` comes after `otherwise`: honeyd never reaches it
    assert [c.kind for c, _ in host.chooser.rules] == ["ip", "os"]
    ping = build_ipv4(OTHER, VIP, 1, build_icmp(8, 0, 1, b"x" * 8), ttl=64, ident=9)
    sensor.handle_frame(host.definition.mac + ATTACKER_MAC + b"\x08\x00" + ping)
    assert parse_ipv4(parse_ethernet(raw.sent[-1]).payload).ttl == 64  # Linux answers OTHER's ping
    ping = build_ipv4(ATTACKER_IP, VIP, 1, build_icmp(8, 0, 1, b"x" * 8), ttl=64, ident=9)
    sensor.handle_frame(host.definition.mac + ATTACKER_MAC + b"\x08\x00" + ping)
    assert parse_ipv4(parse_ethernet(raw.sent[-1]).payload).ttl == 128  # Windows answers the /30


def test_a_dynamic_address_is_one_mac_and_its_machines_never_go_to_the_receive_thread(catalog) -> None:
    sensor, _, _ = make_sensor(catalog)
    host = sensor.hosts[VIP]
    machines = host.chooser.all()
    assert len(machines) == 2  # two rules name windows: one machine
    assert {m.definition.mac for m in machines} == {host.definition.mac}
    assert all(m.dynamic for m in machines)
