"""Personality engine hot path: microseconds per call of syn_ack, closed_port and echo_reply.

Prints JSON lines ({"name", "value", "unit"}); each figure is the best of several runs over
a Linux and a Windows personality. Also reports the one-off compile time per fingerprint.
No packet is sent: the probes are parsed views built in memory.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable

from dynapot.netstack.types import IcmpMessage, IPv4, TcpFlags, TcpOptions, TcpSegment
from dynapot.personality.engine import HostPersonality, compile_personality
from dynapot.personality.osdb import load_osdb

CALLS = 20_000
REPEATS = 5
NAMES = ("Linux 5.0 - 5.4", "Microsoft Windows 10 1709 - 1909")


def _ip(proto: int, payload_len: int) -> IPv4:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 1, 0x4000, 64, proto, 0, bytes(4), bytes(4)
    )
    return IPv4(0xC6120001, 0xC6120063, 64, proto, 1, True, False, 0, 0, 20 + payload_len, header, b"")


SYN_OPTS = b"\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x01\x02\x03\x00\x00\x00\x00\x01\x03\x03\x07"
SYN = TcpSegment(
    _ip(6, 40), 50000, 80, 1000, 0, int(TcpFlags.SYN), 64240, 0, 0, SYN_OPTS,
    TcpOptions((2, 4, 8, 1, 3), 1460, 7, True, (0x00010203, 0)), b"",
)  # fmt: skip
CLOSED_SYN = TcpSegment(
    _ip(6, 24), 50000, 81, 1000, 0, int(TcpFlags.SYN), 64240, 0, 0, b"\x02\x04\x05\xb4",
    TcpOptions((2,), 1460), b"",
)  # fmt: skip
ECHO = IcmpMessage(_ip(1, 64), 8, 0, 0x1234, 1, bytes(56))


def best_us(fn: Callable[[float], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        now = 1.0
        for _ in range(CALLS):
            now += 0.0001
            fn(now)
        best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    return best


def _measure(p: HostPersonality) -> dict[str, float]:
    return {
        "syn_ack": best_us(lambda now: p.syn_ack(SYN, p.isn(now), now)),
        "closed_port": best_us(lambda now: p.closed_port(CLOSED_SYN, now)),
        "echo_reply": best_us(lambda now: p.echo_reply(ECHO, now)),
        "segment_shape": best_us(lambda now: p.segment_shape(now, 0x01020304)),
    }


def main() -> None:
    fps = load_osdb()
    by_name = {fp.name: fp for fp in fps}
    start = time.perf_counter()
    for i, fp in enumerate(fps):
        compile_personality(fp, seed=i, now=0.0)
    compile_us = (time.perf_counter() - start) / len(fps) * 1e6
    print(
        json.dumps({"name": "compile_personality", "value": round(compile_us, 1), "unit": "us/fingerprint"})
    )
    for name in NAMES:
        figures = _measure(compile_personality(by_name[name], seed=1, now=0.0))
        tag = "linux" if "Linux" in name else "windows"
        for call, value in figures.items():
            print(json.dumps({"name": f"{call} ({tag})", "value": round(value, 2), "unit": "us/call"}))


if __name__ == "__main__":
    main()
