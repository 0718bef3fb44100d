"""Per-packet costs of the sans-IO stack (no sockets: pure CPU, one core).

Prints JSON lines: parsing a SYN frame (Ethernet + IPv4 + TCP), SYN -> SYN/ACK through
HostStack with the neutral personality, the Internet checksum of 1460 bytes, and whole
handshakes per second (in: SYN, ACK, FIN, last ACK; out: SYN/ACK, ACK, FIN -- building the client's packets
and parsing every frame included).  Best of several runs.
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
from dynapot.netstack.types import ETH_P_IP

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


if __name__ == "__main__":
    main()
