"""Per-packet costs of the sans-IO stack (no sockets: pure CPU, one core).

Prints JSON lines: parsing a SYN frame (Ethernet + IPv4 + TCP), SYN -> SYN/ACK through
HostStack with the neutral personality, the Internet checksum of 1460 bytes, and whole
handshakes per second (in: SYN, ACK, FIN, last ACK; out: SYN/ACK, ACK, FIN -- building the client's packets
and parsing every frame included), and `TcpConnection.receive_segment` alone on an established
connection (segments built beforehand): an in-order data segment, an ACK of data we sent, and a
bare ACK that changes nothing.  Best of several runs.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable

from dynapot.netstack.events import SendPacket
from dynapot.netstack.host import HostStack, PortPolicy, StackContext, StackLimits
from dynapot.netstack.neutral import NeutralPersonality
from dynapot.netstack.packets import (
    build_ethernet,
    build_tcp_packet,
    checksum,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)
from dynapot.netstack.tcp import TcpConnection
from dynapot.netstack.types import ETH_P_IP, IPv4, TcpOptions, TcpSegment

SERVER = 0xC612000A  # 198.18.0.10
MAC = b"\x02\x00\x00\x00\x00\x0a"
PEER_MAC = b"\x02\x00\x00\x00\x00\x63"
SYN_OPTIONS = bytes.fromhex("020405b40402080a0001e24000000000010303070000")[:20]
REPEATS = 5


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def best(func: Callable[[], int]) -> float:
    """Seconds per operation, best of REPEATS runs; `func` returns its operation count."""
    result = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        n = func()
        result = min(result, (time.perf_counter() - start) / n)
    return result


def syn_frame(src: int, sport: int) -> bytes:
    packet = build_tcp_packet(src, SERVER, sport, 80, 1000, 0, 2, 64240, 64, 1, True, SYN_OPTIONS)
    return build_ethernet(MAC, PEER_MAC, ETH_P_IP, packet)


def new_host() -> HostStack:
    limits = StackLimits(max_half_open_per_host=1 << 20, max_half_open=1 << 20, max_connections=1 << 20)
    return HostStack(SERVER, MAC, NeutralPersonality(1), PortPolicy.open_tcp(80), StackContext(limits))


def segment(seq: int, ack: int, flags: int, payload: bytes = b"", ts: int = 1) -> TcpSegment:
    """A client segment on the benchmark connection, as `parse_tcp` would give it (timestamps on)."""
    ip = IPv4(0x0A000001, SERVER, 64, 6, 0, True, False, 0, 0, 0, b"", b"")
    options = TcpOptions((1, 1, 8), None, None, False, (ts, 1))
    return TcpSegment(
        ip, 40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, 65535, 0, 0, b"", options, payload
    )


def established() -> TcpConnection:
    """A connection past its handshake: client ISN 1000, ours 5000, window scaling and timestamps."""
    personality = NeutralPersonality(1)
    conn = TcpConnection(SERVER, 80, 0x0A000001, 40000, personality)
    syn = segment(1000, 0, 0x02)
    syn.options = TcpOptions((2, 4, 8, 1, 3), 1460, 7, True, (1, 0))
    conn.open(syn, 5000, personality.syn_ack(syn, 5000, 0.0), 0.0)  # type: ignore[arg-type]
    conn.receive_segment(segment(1001, 5001, 0x10), 0.0)
    return conn


def per_segment(make: Callable[[TcpConnection, int], list[TcpSegment]]) -> float:
    """Seconds per `receive_segment` call on `make`'s segments (built untimed), best of REPEATS."""
    result = float("inf")
    for _ in range(REPEATS):
        conn = established()
        segments = make(conn, 20_000)
        receive = conn.receive_segment
        start = time.perf_counter()
        for seg in segments:
            receive(seg, 1.0)
        result = min(result, (time.perf_counter() - start) / len(segments))
    return result


def data_segments(conn: TcpConnection, n: int) -> list[TcpSegment]:
    return [segment(1001 + i * 100, 5001, 0x18, b"x" * 100, 2 + i) for i in range(n)]


def acks_of_sent_data(conn: TcpConnection, n: int) -> list[TcpSegment]:
    conn.send(b"y" * (1460 * (n + 20)), 1.0)
    return [segment(1001, conn.snd_una + (i + 1) * 1448, 0x10, ts=2 + i) for i in range(n)]


def bare_acks(conn: TcpConnection, n: int) -> list[TcpSegment]:
    return [segment(1001, 5001, 0x10, ts=2 + i) for i in range(n)]


def main() -> None:
    rng = random.Random(1)
    n = 20_000
    frames = [syn_frame(0x0A000000 | rng.getrandbits(24), rng.randrange(1024, 65535)) for _ in range(n)]

    def parse_only() -> int:
        for f in frames:
            eth = parse_ethernet(f)
            ip = parse_ipv4(eth.payload)  # type: ignore[union-attr]
            parse_tcp(ip)  # type: ignore[arg-type]
        return n

    emit("parse SYN frame (eth+ip+tcp)", best(parse_only) * 1e6, "us")

    def syn_to_synack() -> int:
        host = new_host()
        for i, f in enumerate(frames):
            eth = parse_ethernet(f)
            host.receive(parse_ipv4(eth.payload), i * 1e-6)  # type: ignore[union-attr, arg-type]
        return n

    emit("SYN -> SYN/ACK via HostStack (parse included)", best(syn_to_synack) * 1e6, "us")

    data = os.urandom(1460)

    def csum() -> int:
        for _ in range(n):
            checksum(data)
        return n

    emit("checksum 1460 bytes", best(csum) * 1e6, "us")

    def handshakes() -> int:
        host = new_host()
        count = 5_000
        now = 0.0
        for i in range(count):
            src = 0x0A000000 | i
            out = host.receive(parse_ipv4(syn_frame(src, 40000)[14:]), now)  # type: ignore[arg-type]
            synack = parse_tcp(parse_ipv4(out[0].packet))  # type: ignore[arg-type]
            sseq = (synack.seq + 1) & 0xFFFFFFFF  # type: ignore[union-attr]
            ack = build_tcp_packet(src, SERVER, 40000, 80, 1001, sseq, 0x10, 502, 64, 2, True)
            out = host.receive(parse_ipv4(ack), now)  # type: ignore[arg-type]
            fin = build_tcp_packet(src, SERVER, 40000, 80, 1001, sseq, 0x11, 502, 64, 3, True)
            out = host.receive(parse_ipv4(fin), now)  # type: ignore[arg-type]
            conn = host.connection(src, 40000, 80)
            out = conn.close(now)  # type: ignore[union-attr]
            assert isinstance(out[0], SendPacket)
            last = build_tcp_packet(src, SERVER, 40000, 80, 1002, sseq + 1, 0x10, 502, 64, 4, True)
            host.receive(parse_ipv4(last), now)  # type: ignore[arg-type]
        assert not host.flows
        return count

    emit(
        "full handshake+close (4 packets in, 3 out)",
        1 / best(handshakes),
        "connections/s",
        note="client-side packet building counted",
    )

    emit("receive_segment: in-order data segment (100 B)", per_segment(data_segments) * 1e6, "us")
    emit(
        "receive_segment: ACK of sent data (sends the next segments)",
        per_segment(acks_of_sent_data) * 1e6,
        "us",
    )
    emit("receive_segment: bare ACK, nothing to do", per_segment(bare_acks) * 1e6, "us")


if __name__ == "__main__":
    main()
