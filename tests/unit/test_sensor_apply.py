"""Live reconfiguration, UDP services and FTP-style data ports in the sensor, without a network.

Frames go in through `handle_frame`; the raw socket is a list (as in test_sensor_runtime).
"""

from __future__ import annotations

import asyncio

from test_sensor_runtime import (
    ATTACKER_IP,
    ATTACKER_MAC,
    BROADCAST,
    OTHER_MAC,
    VIP,
    Events,
    FakeRaw,
    fingerprints,
    ip_frame,
)

from dynapot.honeyd import parse_config
from dynapot.netstack.packets import (
    build_arp_frame,
    build_tcp_packet,
    build_udp_packet,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.runtime import Sensor

BASE = """
create web
set web personality "Linux 5.4"
add web tcp port 80 open
add web udp port 161 "snmp"
bind 198.18.0.100 web
bind 198.18.0.101 web
"""


def config_of(text: str, catalog):
    return build_sensor_config(
        parse_config(text), text, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )


def syn(dport: int, sport: int = 40000, dst: int = VIP) -> bytes:
    return build_tcp_packet(
        ATTACKER_IP, dst, sport, dport, 1000, 0, 2, 64240, 64, 1, True, b"\x02\x04\x05\xb4"
    )


def last_tcp(raw: FakeRaw):
    return parse_tcp(parse_ipv4(raw.sent[-1][14:]))


def test_apply_touches_only_the_hosts_that_differ(catalog):
    sensor = Sensor(config_of(BASE, catalog), FakeRaw(), Events())
    kept_host = sensor.hosts[VIP]
    changed = BASE.replace("bind 198.18.0.101 web", "bind 198.18.0.102 web").replace(
        "add web tcp port 80 open", "add web tcp port 80 open\nadd web tcp port 22 open"
    )
    counts = sensor.apply(config_of(changed, catalog))
    assert counts == {"changed": 1, "removed": 1, "added": 1}
    assert sensor.hosts[VIP] is kept_host  # same object: its stack and connections live on
    assert set(sensor.hosts) == {VIP, VIP + 2} and set(sensor.claims.arp.bindings) == {VIP, VIP + 2}
    assert 22 in sensor.hosts[VIP].definition.tcp
    assert sensor.apply(config_of(changed, catalog)) == {"kept": 2}


def test_apply_keeps_a_live_connection_on_an_unchanged_host(catalog):
    raw = FakeRaw()
    sensor = Sensor(config_of(BASE, catalog), raw, Events())
    sensor.handle_frame(ip_frame(sensor, syn(80)))
    assert last_tcp(raw).flags == 0x12
    before = len(sensor.hosts[VIP].stack.flows)
    sensor.apply(config_of(BASE.replace("bind 198.18.0.101 web\n", ""), catalog))
    assert len(sensor.hosts[VIP].stack.flows) == before == 1


def test_a_new_personality_is_a_new_host(catalog):
    sensor = Sensor(config_of(BASE, catalog), FakeRaw(), Events())
    old = sensor.hosts[VIP]
    counts = sensor.apply(config_of(BASE.replace("Linux 5.4", "Microsoft Windows 7 SP1"), catalog))
    assert counts == {"replaced": 2}
    assert sensor.hosts[VIP] is not old


def test_an_address_taken_back_by_a_real_host_is_not_claimed_again_by_a_stale_plan(catalog):
    raw = FakeRaw()
    sensor = Sensor(config_of(BASE, catalog), raw, Events())
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, OTHER_MAC, VIP, bytes(6), VIP))  # real host announces
    ours = sensor.hosts[VIP].definition.mac
    sensor.handle_frame(build_arp_frame(ours, 2, OTHER_MAC, VIP, ours, 0))  # ... and answers our check
    assert VIP not in sensor.hosts
    counts = sensor.apply(config_of(BASE, catalog))
    assert VIP not in sensor.hosts and counts["refused (a real host took it back)"] == 1


def test_a_udp_service_answers_within_its_budget(catalog):
    calls = []

    def echo(data, info, report):
        calls.append(info)
        report("request", data.decode(), None)
        return b"pong:" + data

    raw, events = FakeRaw(), Events()
    sensor = Sensor(config_of(BASE, catalog), raw, events, udp_services={"snmp": echo})
    packet = build_udp_packet(ATTACKER_IP, VIP, 5555, 161, b"ping", 64, 1, False)
    for _ in range(30):
        sensor.handle_frame(ip_frame(sensor, packet))
    replies = [parse_udp(parse_ipv4(f[14:])) for f in raw.sent]
    assert len(replies) == 20  # the per-source rate cap
    assert replies[0].payload == b"pong:ping" and replies[0].dport == 5555 and replies[0].sport == 161
    assert calls[0].proto == "udp" and calls[0].dst == "198.18.0.100" and calls[0].dport == 161
    assert events.kinds().count("request") == 30
    assert sensor.counters["udp reply refused (amplification budget)"] == 10


def test_a_udp_reply_larger_than_a_frame_is_never_sent(catalog):
    raw = FakeRaw()
    sensor = Sensor(
        config_of(BASE, catalog), raw, Events(), udp_services={"snmp": lambda d, i, r: b"x" * 4000}
    )
    sensor.handle_frame(ip_frame(sensor, build_udp_packet(ATTACKER_IP, VIP, 5555, 161, b"q", 64, 1, False)))
    assert raw.sent == []


def test_a_passive_data_port_takes_one_connection_from_the_same_peer(catalog):
    async def main():
        raw = FakeRaw()
        sensor = Sensor(config_of(BASE, catalog), raw, Events())
        sensor._loop = asyncio.get_running_loop()
        sensor.handle_frame(ip_frame(sensor, syn(80)))  # build the host's stack
        from dynapot.sensor.dataports import SensorDataPorts

        listener = await SensorDataPorts(sensor.dataports, VIP, ATTACKER_IP).listen()
        accepting = asyncio.ensure_future(listener.accept(5))
        sensor.handle_frame(ip_frame(sensor, syn(listener.port, sport=41000)))
        synack = last_tcp(raw)
        assert synack.flags == 0x12
        ack = build_tcp_packet(
            ATTACKER_IP,
            VIP,
            41000,
            listener.port,
            1001,
            synack.seq + 1,
            0x18,
            502,
            64,
            2,
            True,
            payload=b"hi",
        )
        sensor.handle_frame(ip_frame(sensor, ack))
        reader, _writer = await accepting
        assert await asyncio.wait_for(reader.read(10), 5) == b"hi"
        # The port closed behind the connection: a second SYN is reset.
        sensor.handle_frame(ip_frame(sensor, syn(listener.port, sport=41001)))
        assert last_tcp(raw).flags & 0x04
        # A listener nobody connects to times out and closes its port.
        idle = await SensorDataPorts(sensor.dataports, VIP, ATTACKER_IP).listen()
        try:
            await idle.accept(0.05)
        except TimeoutError:
            pass
        else:
            raise AssertionError("accept did not time out")
        assert (VIP, idle.port) not in sensor.dataports.listeners
        sensor.handle_frame(ip_frame(sensor, syn(idle.port, sport=41002)))
        assert last_tcp(raw).flags & 0x04

    asyncio.run(main())


def test_arp_answers_follow_the_applied_plan(catalog):
    raw = FakeRaw()
    sensor = Sensor(config_of(BASE, catalog), raw, Events())
    sensor.apply(config_of(BASE.replace("bind 198.18.0.101 web\n", ""), catalog))
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP + 1))
    assert raw.sent == []
    sensor.handle_frame(build_arp_frame(BROADCAST, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), VIP))
    assert parse_ethernet(raw.sent[-1]).dst == ATTACKER_MAC
