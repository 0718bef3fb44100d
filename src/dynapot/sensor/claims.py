"""Which addresses the sensor answers for, and giving them back to real machines.

Never steal an address. With `probe_first`, an address is claimed only after an ARP probe
for it (RFC 5227) went unanswered for `PROBE_WAIT`; until then it is *pending*. Once
claimed, ARP requests for it are answered with its MAC, and frames to that MAC are ours.
Evidence that another machine uses or wants a claimed or pending address (an answer to our
probe, ARP from the address with another MAC, an ARP probe for it, IPv4 from it with
another MAC) is handed to `on_evidence`, which releases the host; a released address is
remembered for `RELEASE_MEMORY` so that a stale plan does not take it back.

The C receive thread (`fast`) answers ARP for claimed addresses itself; it learns every
claim here, and pending addresses are reserved there so that their frames stay Python's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from dynapot.netstack.arp import AddressConflict, ArpResponder, SendFrame, build_probe
from dynapot.netstack.packets import Malformed, parse_arp, parse_ipv4
from dynapot.netstack.types import Ethernet

PROBE_RATE = 5000.0  # ARP probes per second at start-up
PROBE_WAIT = 1.0  # seconds an address must stay unanswered before we claim it (RFC 5227 waits 1-2 s)
RELEASE_MEMORY = 300.0  # seconds an address given back to a real host is not claimed again

# (address, MAC of the other machine, the evidence in words)
Evidence = Callable[[int, bytes, str], None]


class AddressClaims:
    def __init__(
        self,
        raw: Any,
        fast: Any,
        counters: Counter[str],
        *,
        probe_first: bool,
        on_evidence: Evidence,
        on_claimed: Callable[[int], None],
    ) -> None:
        self.raw, self.fast, self.counters = raw, fast, counters
        self.arp = ArpResponder()
        self.macs: set[bytes] = set()  # frames to these are ours
        self.pending: dict[int, bytes] = {}  # address -> our MAC for it, until its probe went unanswered
        self.probe_first = probe_first
        self.probing_done = asyncio.Event() if probe_first else None
        self.released: dict[str, str] = {}  # address -> the MAC of the real host that took it back
        self._released_at: dict[int, float] = {}
        self._on_evidence = on_evidence
        self._on_claimed = on_claimed  # the sensor registers the host with the receive thread

    # ------------------------------------------------------------------ claiming

    def add(self, ip: int, mac: bytes) -> bool:
        """A new host: claim its address now, or (probe_first) after its probe; True if pending."""
        if not self.probe_first:
            self.claim(ip, mac)
            return False
        self.pending[ip] = mac
        if self.fast is not None:
            self.fast.reserve(ip)  # frames from it stay Python's to judge
        return True

    def claim(self, ip: int, mac: bytes) -> None:
        """Start answering for `ip`: ARP, and frames to its MAC."""
        self.arp.bind(ip, mac)
        self.macs.add(mac)
        if self.fast is not None:
            self.fast.bind(ip, mac)
        self._on_claimed(ip)

    def unclaim(self, ip: int, mac: bytes) -> None:
        """Stop answering for `ip` (ARP, frames to its MAC, the receive thread), claimed or not."""
        self.pending.pop(ip, None)
        self.arp.unbind(ip)
        if self.fast is not None:
            self.fast.unbind(ip)
        self.macs.discard(mac)

    def claimed(self, ip: int) -> bool:
        return ip in self.arp.bindings

    async def probe(
        self,
        addresses: list[tuple[int, bytes]] | None = None,
        rate: float = PROBE_RATE,
        wait: float = PROBE_WAIT,
    ) -> None:
        """Send an ARP probe for every pending address, then claim those nobody answered for."""
        batch = max(1, int(rate / 20))
        sent: deque[tuple[float, int]] = deque()
        todo = list(self.pending.items()) if addresses is None else addresses
        for count, (ip, mac) in enumerate(todo, start=1):
            self.raw.send(build_probe(mac, ip))
            sent.append((time.monotonic() + wait, ip))
            if count % batch == 0:
                await asyncio.sleep(0.05)  # paced: a /16 of probes must not be a broadcast storm
                self._claim_due(sent)
        while sent:
            await asyncio.sleep(max(0.0, sent[0][0] - time.monotonic()))
            self._claim_due(sent)
        if self.probing_done is not None:
            self.probing_done.set()

    def _claim_due(self, sent: deque[tuple[float, int]]) -> None:
        now = time.monotonic()
        while sent and sent[0][0] <= now:
            _, ip = sent.popleft()
            mac = self.pending.pop(ip, None)
            if mac is not None:  # not released or retired meanwhile
                self.claim(ip, mac)

    # ------------------------------------------------------------------ giving back

    def remember_release(self, ip: int, address: str, mac: bytes) -> None:
        self.released[address] = mac.hex(":")
        self._released_at[ip] = time.monotonic()

    def recently_released(self, ip: int, now: float) -> bool:
        return now - self._released_at.get(ip, -RELEASE_MEMORY) < RELEASE_MEMORY

    # ------------------------------------------------------------------ evidence from the wire

    def on_arp(self, eth: Ethernet, answered: bytes | None) -> None:
        """An ARP frame: answer it (unless the receive thread did), or act on its evidence."""
        arp = parse_arp(eth.payload)
        if type(arp) is Malformed:
            self.counters["arp: malformed"] += 1
            return
        pending = self.pending
        if pending and arp.sender_ip in pending and arp.sender_mac != pending[arp.sender_ip]:
            self._on_evidence(arp.sender_ip, arp.sender_mac, "answer to our ARP probe")
            return
        result = self.arp.receive(eth, arp)
        if type(result) is SendFrame and answered is None:
            self.raw.send(result.frame)
        elif type(result) is AddressConflict:
            why = "ARP probe for the address" if result.probe else "ARP from the address"
            self._on_evidence(result.ip, result.mac, why)

    def on_foreign_ipv4(self, payload: bytes, mac: bytes, checksums_ok: bool) -> None:
        """IPv4 from one of our addresses sent with another MAC: the address is taken."""
        claimed = parse_ipv4(payload, checksums_ok)
        if type(claimed) is not Malformed:
            self._on_evidence(claimed.src, mac, "IPv4 traffic from the address")
