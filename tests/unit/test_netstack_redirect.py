"""The sans-IO redirect table: relaying with the attacker's address, stickiness, bounds, containment."""

from __future__ import annotations

import ipaddress

from dynapot.netstack.packets import build_tcp_packet, parse_ipv4, parse_tcp
from dynapot.netstack.redirect import (
    Backend,
    Outbound,
    OutboundData,
    Redirected,
    RedirectLimits,
    RedirectTable,
    Relay,
)
from dynapot.netstack.types import TcpFlags

SYN, ACK, FIN, RST, PSH = (
    int(f) for f in (TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH)
)


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


ATTACKER, VH, VH2, OTHER = ip("198.18.0.3"), ip("198.18.0.20"), ip("198.18.0.21"), ip("198.18.0.4")
B1 = Backend("lin1", ip("198.18.0.50"), bytes.fromhex("020000000050"))
B2 = Backend("lin2", ip("198.18.0.51"), bytes.fromhex("020000000051"))
OUTSIDE = ip("198.19.0.80")


def segment(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    flags: int,
    payload: bytes = b"",
    seq: int = 1000,
    ack: int = 0,
):
    packet = build_tcp_packet(src, dst, sport, dport, seq, ack, flags, 29200, 64, 7, True, payload=payload)
    parsed = parse_ipv4(packet)
    assert not isinstance(parsed, str)
    return parsed


def relays(outputs) -> list[Relay]:
    return [o for o in outputs if isinstance(o, Relay)]


def table(**limits) -> RedirectTable:
    return RedirectTable([B1, B2], RedirectLimits(**limits), secret=b"k")


def test_a_syn_is_relayed_with_the_attackers_address_and_the_reply_comes_from_the_virtual_host() -> None:
    nat = table()
    out = nat.from_attacker(segment(ATTACKER, VH, 40000, 22, SYN), [B1, B2], 0.0)
    assert out[0] == Redirected(ATTACKER, 40000, VH, 22, B1, False)
    (relay,) = relays(out)
    assert relay.backend == B1 and relay.dst == B1.ip
    sent = parse_ipv4(relay.packet)  # checksums verified: the rewrite kept them right
    assert (sent.src, sent.dst) == (ATTACKER, B1.ip)
    tcp = parse_tcp(sent)
    assert (tcp.sport, tcp.dport, tcp.flags) == (40000, 22, SYN)
    reply = nat.from_backend(segment(B1.ip, ATTACKER, 22, 40000, SYN | ACK, seq=5, ack=1001), 0.1)
    (back,) = relays(reply)
    assert back.backend is None and back.vhost == VH and back.dst == ATTACKER
    sent = parse_ipv4(back.packet)
    assert (sent.src, sent.dst) == (VH, ATTACKER)
    assert parse_tcp(sent).flags == SYN | ACK
    data = nat.from_attacker(
        segment(ATTACKER, VH, 40000, 22, ACK | PSH, b"SSH-2.0-x\r\n", 1001, 6), [B1], 0.2
    )
    assert [type(o) for o in data] == [Relay]
    assert parse_tcp(parse_ipv4(data[0].packet)).payload == b"SSH-2.0-x\r\n"


def test_a_bad_checksum_stays_bad_and_an_unfinished_one_is_summed() -> None:
    nat = table()
    good = segment(ATTACKER, VH, 40000, 22, SYN)
    broken = bytearray(good.header + good.payload)
    broken[36] ^= 0xFF  # the TCP checksum
    bad = parse_ipv4(bytes(broken))
    (relay,) = relays(nat.from_attacker(bad, [B1], 0.0))
    assert isinstance(parse_tcp(parse_ipv4(relay.packet)), type(parse_tcp(parse_ipv4(bytes(broken))))), (
        "still refused"
    )
    assert str(parse_tcp(parse_ipv4(relay.packet))) == "tcp: bad checksum"
    (relay,) = relays(table().from_attacker(bad, [B1], 0.0, checksums_ok=False))
    assert parse_tcp(parse_ipv4(relay.packet)).sport == 40000


def test_an_attacker_sticks_to_its_backend_across_ports_and_hosts_until_sticky_seconds() -> None:
    nat = table(sticky_seconds=60)
    first = nat.from_attacker(segment(ATTACKER, VH, 40000, 22, SYN), [B2, B1], 0.0)
    assert first[0].backend == B2
    # Another host, another port, planned on B1: the attacker keeps B2.
    again = nat.from_attacker(segment(ATTACKER, VH2, 40001, 23, SYN), [B1, B2], 30.0)
    assert again[0] == Redirected(ATTACKER, 40001, VH2, 23, B2, True)
    # Another attacker gets the planned one.
    assert nat.from_attacker(segment(OTHER, VH2, 40001, 23, SYN), [B1, B2], 30.0)[0].backend == B1
    # A backend that may not serve this port (another OS) is never used, sticky or not.
    assert nat.from_attacker(segment(ATTACKER, VH2, 40002, 80, SYN), [B1], 31.0)[0].backend == B1
    # After sticky_seconds of no new connection, the planned one again.
    assert nat.from_attacker(segment(ATTACKER, VH, 40003, 22, SYN), [B2, B1], 100.0)[0].backend == B2
    assert nat.from_attacker(segment(ATTACKER, VH, 40004, 22, SYN), [B1, B2], 200.0)[0] == Redirected(
        ATTACKER, 40004, VH, 22, B1, False
    )


def test_a_segment_of_no_flow_is_dropped_and_counted() -> None:
    nat = table()
    assert nat.from_attacker(segment(ATTACKER, VH, 40000, 22, ACK), [B1], 0.0) == []
    assert nat.counters["redirect: segment of no flow"] == 1
    assert nat.from_backend(segment(B1.ip, ATTACKER, 22, 40000, ACK), 0.0) == []
    assert nat.counters["containment: segment of no connection dropped"] == 1


def test_the_flow_table_is_bounded_the_idlest_goes() -> None:
    nat = table(max_flows=16, flows_per_attacker=1000)
    for port in range(1000, 1100):
        nat.from_attacker(segment(ATTACKER, VH, port, 22, SYN), [B1], float(port))
    assert len(nat) == 16
    assert nat.counters["redirect: flow evicted"] == 84
    # The newest flows still relay replies; the evicted ones do not.
    assert relays(nat.from_backend(segment(B1.ip, ATTACKER, 22, 1099, SYN | ACK), 1500.0))
    assert nat.from_backend(segment(B1.ip, ATTACKER, 22, 1000, SYN | ACK), 1500.0) == []


def test_idle_and_closed_flows_expire() -> None:
    nat = table(idle_timeout=100)
    nat.from_attacker(segment(ATTACKER, VH, 40000, 22, SYN), [B1], 0.0)
    nat.from_attacker(segment(ATTACKER, VH, 40001, 22, SYN), [B1], 0.0)
    nat.from_attacker(segment(ATTACKER, VH, 40001, 22, RST), [B1], 1.0)
    nat.expire(20.0)
    assert len(nat) == 1  # the reset one lingered 10 s only
    nat.expire(101.0)
    assert len(nat) == 0


def test_sticky_memory_is_bounded() -> None:
    nat = table(max_attackers=16)
    for n in range(40):
        nat.from_attacker(segment(OTHER + n, VH, 40000, 22, SYN), [B1], 0.0)
    assert nat.health()["attackers"] == 16
    assert nat.counters["redirect: attacker forgotten (table full)"] == 24


def test_a_backends_own_connections_are_sinkholed_up_to_the_limit_then_refused() -> None:
    nat = table(outbound_per_hour=2, sinkhole_bytes=8)
    first = nat.from_backend(segment(B1.ip, OUTSIDE, 50000, 80, SYN, seq=99), 0.0)
    assert first[0] == Outbound(B1, 50000, OUTSIDE, 80, "sinkholed", 1)
    (synack,) = relays(first)
    assert synack.backend == B1  # back to the backend, never toward the outside address
    answer = parse_tcp(parse_ipv4(synack.packet))
    assert answer.flags == SYN | ACK and answer.ack == 100
    isn = answer.seq
    request = b"GET /x HTTP/1.1\r\n"
    acked = nat.from_backend(segment(B1.ip, OUTSIDE, 50000, 80, ACK | PSH, request, 100, isn + 1), 1.0)
    assert parse_tcp(parse_ipv4(relays(acked)[0].packet)).ack == 100 + len(request)
    closing = nat.from_backend(segment(B1.ip, OUTSIDE, 50000, 80, FIN | ACK, seq=100 + len(request)), 2.0)
    kept = [o for o in closing if isinstance(o, OutboundData)]
    assert kept == [OutboundData(B1, 50000, OUTSIDE, 80, request[:8], len(request))]
    assert parse_tcp(parse_ipv4(relays(closing)[0].packet)).flags == FIN | ACK
    assert nat.from_backend(segment(B1.ip, OUTSIDE, 50001, 443, SYN), 3.0)[0].verdict == "sinkholed"
    refused = nat.from_backend(segment(B1.ip, OUTSIDE, 50002, 22, SYN, seq=7), 4.0)
    assert refused[0] == Outbound(B1, 50002, OUTSIDE, 22, "refused", 3)
    rst = parse_tcp(parse_ipv4(relays(refused)[0].packet))
    assert rst.flags == RST | ACK and rst.ack == 8
    assert nat.counters["containment: outbound refused"] == 1
    # The budget is per hour: an hour later the sinkhole answers again.
    assert nat.from_backend(segment(B1.ip, OUTSIDE, 50003, 80, SYN), 3601.0)[0].verdict == "sinkholed"


def test_other_protocols_from_a_backend_never_leave() -> None:
    from dynapot.netstack.packets import build_udp_packet

    nat = table()
    dns = parse_ipv4(build_udp_packet(B1.ip, OUTSIDE, 5353, 53, b"\x00" * 12, 64, 1, False))
    assert nat.from_backend(dns, 0.0) == [Outbound(B1, 5353, OUTSIDE, 53, "dropped", 1, 17)]
    assert nat.counters["containment: protocol 17 dropped"] == 1
    for n in range(200):  # reported up to a bound per hour, all counted, none sent on
        assert not relays(nat.from_backend(dns, 1.0 + n))
    assert nat.counters["containment: protocol 17 dropped"] == 201
    assert nat.from_backend(dns, 300.0) == []
    assert [o.verdict for o in nat.from_backend(dns, 3601.0)] == ["dropped"]


def test_the_sensors_own_address_is_the_kernels_business() -> None:
    nat = table()
    nat.own = frozenset({OTHER})
    assert nat.from_backend(segment(B1.ip, OTHER, 22, 40000, SYN | ACK), 0.0) == []
    assert not nat.counters


def test_one_attacker_cannot_fill_the_table() -> None:
    nat = table(max_flows=1000, flows_per_attacker=8)
    for port in range(1000, 1100):
        nat.from_attacker(segment(ATTACKER, VH, port, 22, SYN), [B1], 0.0)
    assert len(nat) == 8
    assert nat.counters["redirect: attacker at its flow limit"] == 92
    assert nat.from_attacker(segment(OTHER, VH, 1000, 22, SYN), [B1], 0.0)[0].attacker == OTHER
    nat.from_attacker(segment(ATTACKER, VH, 1000, 22, RST), [B1], 1.0)
    nat.expire(20.0)  # one closed: room for one more
    assert isinstance(nat.from_attacker(segment(ATTACKER, VH, 2000, 22, SYN), [B1], 21.0)[0], Redirected)


def test_hostile_bytes_never_crash_it() -> None:
    import random

    rng = random.Random(7)
    nat = table()
    for _ in range(3000):
        raw = bytearray(
            segment(
                rng.choice([ATTACKER, B1.ip]), rng.choice([VH, ATTACKER, OUTSIDE]), 1, 22, rng.randrange(256)
            ).header
        )
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        raw[2:4] = (len(raw) + len(body)).to_bytes(2, "big")
        parsed = parse_ipv4(bytes(raw) + body, verify_checksums=False)
        if isinstance(parsed, str) or not hasattr(parsed, "payload"):
            continue
        nat.from_attacker(parsed, [B1], 0.0) if parsed.src == ATTACKER else nat.from_backend(parsed, 0.0)
