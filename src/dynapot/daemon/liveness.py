"""ARP liveness: ask, at a bounded rate, whether the known real hosts are still there.

Only the question is sent here; the answers are ARP replies that the daemon's sniffer sees
and records like any other sighting, so a host that stops answering ages out after the
planner's hold-off and its address becomes free.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable

from dynapot.netstack.packets import build_arp_frame

BROADCAST = b"\xff" * 6


def arp_requests(own_mac: bytes, own_ip: str, targets: Iterable[str]) -> list[bytes]:
    sender = int(ipaddress.IPv4Address(own_ip))
    return [
        build_arp_frame(BROADCAST, 1, own_mac, sender, bytes(6), int(ipaddress.IPv4Address(target)))
        for target in targets
    ]


async def sweep(send, frames: list[bytes], rate: float) -> int:
    """Send `frames` at `rate` per second (in bursts of 1/20 s); returns how many were sent."""
    burst = max(1, int(rate / 20))
    for start in range(0, len(frames), burst):
        for frame in frames[start : start + burst]:
            send(frame)
        await asyncio.sleep(burst / rate)
    return len(frames)
