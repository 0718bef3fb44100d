"""Passive OS fingerprinting speed: dynapot's p0f matcher against the p0f 3.09b binary.

Writes a capture of 100,000 SYNs (a dozen system shapes, TTLs spread over 30 hops, some
random windows; distinct flows) into a temporary folder, then prints JSON lines:

* dynapot_match_syn: packets/s of `P0fMatcher.match_syn` on the IP datagrams, the
  sensor's hot path (memoised on packet features, as in the sensor);
* dynapot_match_syn_uncached: the same with the memo bypassed (parse + bucket scan);
* dynapot_fingerprint_capture: packets/s of ``dynapot fingerprint --pcap``'s pipeline
  (pcap reading, `PassiveObserver`: parsing, flows, matching, per-host summaries), the
  peer of ``p0f -r``;
* p0f_binary: packets/s of ``p0f -r FILE -o LOG`` (stdout to /dev/null): the wall time
  minus the wall time of the same command on a one-packet capture (start-up: loading
  p0f.fp, opening pcap), best of three each;
* ratios: p0f's rate over dynapot's (how many times slower dynapot is; the target is 5).
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scapy.layers.inet import IP, TCP

from dynapot.discovery.p0f import P0fDatabase, P0fMatcher, _extract
from dynapot.discovery.passive import PassiveObserver
from dynapot.discovery.pcap import PcapReader, write_pcap

PACKETS = 100_000
REPEATS = 3
P0F = "/usr/sbin/p0f"

_LINUX = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
_WIN = [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
_MAC = [("MSS", 1460), ("NOP", None), ("WScale", 4), ("NOP", None), ("NOP", None)]
# (initial TTL, DF, window, options)
SHAPES = [
    (64, True, 29200, _LINUX),
    (64, True, 5840, [*_LINUX[:4], ("WScale", 7)]),
    (64, True, 14600, [*_LINUX[:4], ("WScale", 5)]),
    (128, True, 8192, _WIN),
    (128, True, 65535, [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")]),
    (64, True, 65535, [*_MAC, ("Timestamp", (1, 0)), ("SAckOK", b""), ("EOL", None)]),
    (64, True, 65535, [("MSS", 1460), ("NOP", None), ("WScale", 6), ("SAckOK", b""), ("Timestamp", (1, 0))]),
    (
        64,
        True,
        49640,
        [("MSS", 1460), ("NOP", None), ("WScale", 0), ("NOP", None), ("NOP", None), ("SAckOK", b"")],
    ),
    (64, False, 1024, [("MSS", 1460)]),  # nmap SYN scan
    (64, True, 64240, [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 1)]),
    (128, True, 0, _WIN),  # random window: mostly generic or unknown
    (255, True, 4128, [("MSS", 536)]),
]


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def _ip_checksum(header: bytearray) -> int:
    header[10:12] = b"\0\0"
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return ~(total + (total >> 16)) & 0xFFFF


def build_frames(n: int, seed: int = 7) -> list[bytes]:
    """Ethernet frames of SYNs; templates from scapy once, then patched with struct."""
    rng = random.Random(seed)
    templates = []
    for ttl, df, win, opts in SHAPES:
        ip = IP(src="10.0.0.1", dst="198.51.100.1", ttl=ttl, flags="DF" if df else 0, id=1)
        templates.append(
            (ttl, win, bytearray(bytes(ip / TCP(sport=1, dport=80, flags="S", window=win, options=opts))))
        )
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    frames = []
    for i in range(n):
        ttl, win, tpl = templates[rng.randrange(len(templates))]
        pkt = bytearray(tpl)
        hops = rng.randrange(30) if rng.random() < 0.97 else rng.randrange(30, 60)
        pkt[8] = max(1, ttl - hops)
        struct.pack_into("!H", pkt, 4, rng.randrange(1, 65536))  # IP ID
        pkt[12:16] = struct.pack("!I", 0x0A000000 + i + 1)  # one client per flow
        struct.pack_into("!HHI", pkt, 20, 1024 + i % 60000, 80, rng.getrandbits(32) | 1)
        if win == 0:
            struct.pack_into("!H", pkt, 34, rng.randrange(1, 65536))
        struct.pack_into("!H", pkt, 10, _ip_checksum(pkt[:20]))  # passive discovery checks it
        frames.append(eth + bytes(pkt))
    return frames


def wall(cmd: list[str]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        log = Path(cmd[-1])
        log.unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def best_of(func: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    db = P0fDatabase.load()
    with tempfile.TemporaryDirectory(prefix="dynapot-bench-p0f-") as tmp:
        big, tiny = Path(tmp, "syns.pcap"), Path(tmp, "one.pcap")
        frames = build_frames(PACKETS)
        base_ns = 1_700_000_000 * 10**9
        # 100 µs apart: 10 s of traffic, inside p0f's 30 s connection lifetime.
        write_pcap(big, [(base_ns + i * 100_000, f) for i, f in enumerate(frames)])
        write_pcap(tiny, [(base_ns, frames[0])])

        with PcapReader(big) as reader:
            ips = [bytes(ip) for _, ip in reader.ip_packets()]
        assert len(ips) == PACKETS

        def cached() -> None:
            matcher = P0fMatcher(db)
            match = matcher.match_syn
            for ip in ips:
                match(ip)

        def uncached() -> None:
            matcher = P0fMatcher(db)
            find = matcher._find
            for ip in ips:
                f = _extract(ip, 0x02, True)
                if f is not None:
                    find(True, f, 0)

        def pipeline() -> None:
            with PcapReader(big) as reader:
                PassiveObserver(P0fMatcher(db)).feed_capture(reader)

        matcher = P0fMatcher(db)
        labelled = sum(1 for ip in ips if matcher.match_syn(ip) is not None)
        distinct = len(matcher._syn_cache)
        rate_cached = PACKETS / best_of(cached)
        rate_uncached = PACKETS / best_of(uncached)
        rate_pipeline = PACKETS / best_of(pipeline)
        emit("dynapot_match_syn", rate_cached, "packets/s", labelled=labelled, distinct_feature_sets=distinct)
        emit("dynapot_match_syn_uncached", rate_uncached, "packets/s")
        emit("dynapot_fingerprint_capture", rate_pipeline, "packets/s")

        if not Path(P0F).exists():
            emit("p0f_binary", 0, "packets/s", note=f"{P0F} not installed")
            return
        startup = wall([P0F, "-r", str(tiny), "-o", str(Path(tmp, "tiny.log"))])
        total = wall([P0F, "-r", str(big), "-o", str(Path(tmp, "big.log"))])
        rate_p0f = PACKETS / max(total - startup, 1e-9)
        emit("p0f_startup", startup, "s", note="one-packet capture; subtracted below")
        emit("p0f_binary", rate_p0f, "packets/s", wall_s=round(total, 4))
        emit("ratio_p0f_over_dynapot_match_syn", rate_p0f / rate_cached, "x", target="<= 5")
        emit("ratio_p0f_over_dynapot_uncached", rate_p0f / rate_uncached, "x")
        emit("ratio_p0f_over_dynapot_pipeline", rate_p0f / rate_pipeline, "x")


if __name__ == "__main__":
    sys.exit(main())
