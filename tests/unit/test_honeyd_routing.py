"""honeyd's routed networks: the walk (pure), then the sensor answering through it.

The topology is the shape of honeyd's own examples: an entry router on the sensor's link, a
network behind it, and a second router further in.

    attacker ── 198.18.0.1 (entry) ─ 10 ms ─ 198.18.1.1 ─ 20 ms ─ 198.18.2.1
                      link 198.18.0.0/24      link 198.18.1.0/24    link 198.18.2.0/24
                                              unreach 198.18.9.0/24
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from test_sensor_runtime import ATTACKER_IP, ATTACKER_MAC, Events, FakeRaw, fingerprints

from dynapot.honeyd import parse_config
from dynapot.honeyd.routing import DEFAULT_LATENCY_MS, RoutedNetwork
from dynapot.netstack.packets import (
    build_arp_frame,
    build_icmp,
    build_ipv4,
    build_udp_packet,
    parse_ethernet,
    parse_ipv4,
)
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.runtime import Sensor

ROUTES = """
route entry 198.18.0.1 network 198.18.0.0/16
route 198.18.0.1 link 198.18.0.0/24
route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1 latency 10ms
route 198.18.0.1 add net 198.18.2.0/23 198.18.1.1 latency 99ms
route 198.18.0.1 add net 198.18.8.0/21 198.18.1.1
route 198.18.1.1 link 198.18.1.0/24
route 198.18.1.1 add net 198.18.2.0/24 198.18.2.1 latency 20ms
route 198.18.1.1 unreach 198.18.9.0/24
route 198.18.2.1 link 198.18.2.0/24
"""
HOSTS = """
create router
set router personality "Cisco 2811 router (IOS 12.X)"
create linux
set linux personality "Linux 5.4"
add linux udp port 53 open
bind 198.18.0.1 router
bind 198.18.1.1 router
bind 198.18.2.1 router
bind 198.18.2.20 linux
"""
ENTRY, MIDDLE, INNER, HOST = (
    int(IPv4Address(a)) for a in ("198.18.0.1", "198.18.1.1", "198.18.2.1", "198.18.2.20")
)


def network(text: str = ROUTES, **kwargs) -> RoutedNetwork:
    return RoutedNetwork(parse_config(text).topology, **kwargs)


def test_a_packet_crosses_every_router_on_its_way_losing_one_ttl_at_each() -> None:
    walk = network().inbound(HOST, 64, 60, 0.0)
    # entry -> middle (10 ms; the entry's later /23 route over the same link keeps the first
    # link's attributes, as in honeyd) -> inner (20 ms) -> delivered on the inner router's link
    assert (walk.outcome, walk.ttl, walk.delay_ms, walk.hops) == ("deliver", 61, 30.0, 3)
    assert network().inbound(ENTRY, 64, 60, 0.0).ttl == 64  # the entry router itself: no hop


def test_the_ttl_runs_out_at_each_router_in_turn_as_traceroute_sees_it() -> None:
    routes = network()
    seen = [
        (w.outcome, str(IPv4Address(w.at))) for w in (routes.inbound(HOST, t, 60, 0.0) for t in (1, 2, 3))
    ]
    assert seen == [
        ("time-exceeded", "198.18.0.1"),
        ("time-exceeded", "198.18.1.1"),
        ("time-exceeded", "198.18.2.1"),
    ]
    assert routes.inbound(HOST, 4, 60, 0.0).outcome == "deliver"


def test_unreach_networks_are_answered_by_their_router_and_unknown_ones_dropped() -> None:
    routes = network()
    unreachable = routes.inbound(int(IPv4Address("198.18.9.5")), 64, 60, 0.0)
    assert (unreachable.outcome, unreachable.at) == ("unreachable", MIDDLE)
    # the middle router has no route to 198.18.12.0/24 and is not an entry: honeyd drops it
    assert routes.inbound(int(IPv4Address("198.18.12.5")), 64, 60, 0.0).outcome == "drop"
    assert routes.inbound(int(IPv4Address("192.0.2.1")), 64, 60, 0.0).outcome == "outside"


def test_replies_find_their_way_out_by_the_default_routes_back() -> None:
    walk = network().outbound(HOST, ATTACKER_IP, 64, 60, 0.0)
    # the attacker is on the entry router's own link: delivered there
    assert (walk.outcome, walk.at, walk.ttl, walk.delay_ms) == ("deliver", ENTRY, 61, 30.0)
    assert network().outbound(HOST, int(IPv4Address("192.0.2.1")), 64, 60, 0.0).outcome == "outside"
    # a router sending its own packet does not count itself
    assert network().outbound(MIDDLE, ATTACKER_IP, 255, 60, 0.0).ttl == 254


def test_links_without_latency_cost_honeyds_default_and_loss_drops() -> None:
    text = "route entry 198.18.0.1\nroute 198.18.1.1 link 198.18.1.0/24\n"
    text += "route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1"
    plain = network(text + "\n")
    assert plain.inbound(int(IPv4Address("198.18.1.5")), 64, 60, 0.0).delay_ms == DEFAULT_LATENCY_MS
    text += " loss {}\n"
    lossy = network(text.format(50), rng=random.Random(7))
    outcomes = [lossy.inbound(int(IPv4Address("198.18.1.5")), 64, 60, 0.0).outcome for _ in range(2000)]
    assert 800 < outcomes.count("drop") < 1200  # half, give or take a few standard deviations
    assert all(
        network(text.format(100)).inbound(int(IPv4Address("198.18.1.5")), 64, 60, 0.0).outcome == "drop"
        for _ in range(20)
    )


def test_a_slow_link_queues_packets_and_drops_early_when_the_queue_is_long() -> None:
    text = (
        "route entry 198.18.0.1\nroute 198.18.1.1 link 198.18.1.0/24\n"
        "route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1 latency 5ms bandwidth 8Kbps"
        " drop between 100ms - 200ms\n"
    )
    routes = network(text, rng=random.Random(1))
    dst = int(IPv4Address("198.18.1.5"))
    # 8 kbit/s: a 100-byte packet takes 100 ms; sent together, each waits for the ones before
    first, second = (routes.inbound(dst, 64, 100, 0.0) for _ in range(2))
    assert (first.delay_ms, second.delay_ms) == (105.0, 205.0)
    assert routes.inbound(dst, 64, 100, 0.0).outcome == "drop"  # 200 ms queued: above `high`
    assert routes.inbound(dst, 64, 100, 10.0).delay_ms == 105.0  # ten seconds later: empty again


def test_a_route_straight_back_is_a_loop_and_is_dropped() -> None:
    text = (
        "route entry 198.18.0.1\n"
        "route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1\n"
        "route 198.18.1.1 add net 198.18.1.0/24 198.18.0.1\n"
    )
    assert network(text).inbound(int(IPv4Address("198.18.1.5")), 64, 60, 0.0).outcome == "drop"


# ------------------------------------------------------------------ the sensor, through the routers


def sensor(catalog):
    text = ROUTES + HOSTS
    config = build_sensor_config(
        parse_config(text), text, fingerprints=fingerprints(), mac_vendors=catalog.mac_vendors
    )
    raw = FakeRaw()
    return Sensor(config, raw, Events()), raw


def frame_to(s: Sensor, packet: bytes) -> bytes:
    return s.hosts[ENTRY].definition.mac + ATTACKER_MAC + b"\x08\x00" + packet


def udp_probe(ttl: int, dst: int = HOST) -> bytes:
    return build_udp_packet(ATTACKER_IP, dst, 33434 + ttl, 33434 + ttl, b"probe", ttl, ttl, False)


def test_traceroute_through_the_sensor_names_every_router_then_the_host(catalog) -> None:
    s, raw = sensor(catalog)
    for ttl in (1, 2, 3, 4):
        s.handle_frame(frame_to(s, udp_probe(ttl)))
    answers = [parse_ethernet(frame) for frame in raw.sent]
    packets = [parse_ipv4(eth.payload) for eth in answers]
    assert [str(IPv4Address(p.src)) for p in packets] == [
        "198.18.0.1",
        "198.18.1.1",
        "198.18.2.1",
        "198.18.2.20",
    ]
    assert [p.payload[0] for p in packets] == [11, 11, 11, 3]  # time exceeded x3, then port unreachable
    # each answer leaves by the entry router's MAC, to the attacker, and crossed the routers
    # before it on the way back: a Cisco starts at 255, Linux at 64
    assert all(eth.src == s.hosts[ENTRY].definition.mac and eth.dst == ATTACKER_MAC for eth in answers)
    assert [p.ttl for p in packets] == [255, 254, 253, 61]
    # the quoted header is the probe as the router received it: TTL 1
    assert all(p.payload[8 + 8] == 1 for p in packets[:3])


def test_a_routed_host_answers_ping_with_its_ttl_lowered_and_never_arp(catalog) -> None:
    s, raw = sensor(catalog)
    echo = build_ipv4(ATTACKER_IP, HOST, 1, build_icmp(8, 0, 0x1234_0001, b"x" * 16), 64, 7)
    s.handle_frame(frame_to(s, echo))
    reply = parse_ipv4(parse_ethernet(raw.sent[-1]).payload)
    assert (reply.src, reply.payload[0], reply.ttl) == (HOST, 0, 61)
    # nothing on the link answers for it: an ARP request for it stays unanswered, the entry's not
    sent = len(raw.sent)
    s.handle_frame(build_arp_frame(b"\xff" * 6, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), HOST))
    assert len(raw.sent) == sent and not s.claims.claimed(HOST)
    s.handle_frame(build_arp_frame(b"\xff" * 6, 1, ATTACKER_MAC, ATTACKER_IP, bytes(6), ENTRY))
    assert len(raw.sent) == sent + 1 and parse_ethernet(raw.sent[-1]).src == s.hosts[ENTRY].definition.mac


def test_a_links_latency_is_a_minimum_even_when_the_loops_timers_fire_early() -> None:
    """uvloop counts a timer from the clock it read at the start of the iteration, so it can
    fire up to a millisecond early; the routed hosts wait out the rest (CI saw 99.6 ms for 100)."""
    import asyncio
    import time
    from collections import Counter

    from dynapot.sensor.routes import RoutedHosts

    delivered: list[float] = []
    hosts = RoutedHosts(
        network(),
        Counter(),
        deliver=lambda ip, now: delivered.append(time.monotonic()),
        send=lambda frame: None,
        mac_of=lambda ip: None,
        neighbour=lambda ip: None,
        ttl_of=lambda ip: None,
    )
    source = int(IPv4Address("198.18.0.9"))
    packet = parse_ipv4(build_udp_packet(source, HOST, 4000, 53, b"x", ttl=64, ident=1, df=False))

    async def early_by_half() -> float:
        loop = asyncio.get_running_loop()
        real_call_later = loop.call_later
        loop.call_later = lambda delay, callback, *args: real_call_later(delay / 2, callback, *args)
        hosts.loop = loop
        sent = time.monotonic()
        hosts.receive(packet, sent)
        for _ in range(200):
            if delivered:
                break
            await asyncio.sleep(0.005)
        return sent

    sent = asyncio.run(early_by_half())
    assert len(delivered) == 1 and hosts.delayed == 0
    assert delivered[0] - sent >= 0.030  # the entry's 10 ms link, then the inner 20 ms one
