"""Which addresses the sensor answers for, and giving them back to real machines.

Never steal an address, and never let one be stolen by a spoofed packet. With `probe_first`,
an address is claimed only after an ARP probe for it (RFC 5227) went unanswered for
`PROBE_WAIT`; until then it is *pending*, and any sign of another machine on it (ARP or IPv4
from it with another MAC) releases it. Once claimed, ARP requests for it are answered with its
MAC, and frames to that MAC are ours; evidence that another machine uses it then only starts
an ARP check (dynapot.netstack.arpcheck, RFC 5227 style): the address is given back
(`on_evidence`, which releases the host) when a machine answers our probe for it from another
MAC within the check's window, and kept otherwise, the evidence recorded as unconfirmed
(`on_unconfirmed`). A released address is remembered for `RELEASE_MEMORY` so that a stale plan
does not take it back.

The C receive thread (`fast`) answers ARP for claimed addresses and runs the checks itself (it
sends the probe and silences the address the moment the answer arrives, however far behind
Python is); each frame comes with its note, which is all Python acts on. Without the thread,
`checks` applies the same rules here. Pending addresses are reserved in the thread so that
their frames stay Python's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynapot.netstack.arp import ArpResponder, SendFrame, build_probe
from dynapot.netstack.arpcheck import CHECK_WINDOW_MS, AddressChecks, Note
from dynapot.netstack.packets import Malformed, parse_arp, parse_ipv4
from dynapot.netstack.types import Arp, Ethernet

PROBE_RATE = 5000.0  # ARP probes per second at start-up
PROBE_WAIT = 1.0  # seconds an address must stay unanswered before we claim it (RFC 5227 waits 1-2 s)
RELEASE_MEMORY = 300.0  # seconds an address given back to a real host is not claimed again
# Seconds after a check's window before Python calls it unanswered: the thread's clock may be
# ahead of the frames Python has read so far.
CHECK_GRACE = 0.5
OUTCOMES_KEPT = 32  # the latest check outcomes, for the status file

# (address, MAC of the other machine, the evidence in words)
Evidence = Callable[[int, bytes, str], None]

# What each note counts as (the sensor's counters, in `dynapot status`).
NOTE_COUNTERS = {
    Note.CHECK: "address check: started (evidence; ARP probe sent)",
    Note.CONFIRMED: "address check: answered by another MAC (released)",
    Note.BUSY: "address check: more evidence during a check",
    Note.LIMITED: "address check: evidence over a rate limit (no probe)",
    Note.ROUTED: "address check: IPv4 from a claimed address via a router (ignored)",
    Note.PROBED: "address check: ARP probe for a claimed address (noted)",
}
UNANSWERED = "address check: unanswered (address kept; spoofed evidence?)"


@dataclass(slots=True)
class Check:
    """A check of one claimed address under way: the evidence that started it."""

    mac: bytes
    why: str
    started: float  # Python's clock
    evidence: int = 1  # frames of evidence seen during it


def _arp_evidence(arp: Arp) -> str:
    if arp.op == 2:
        return "ARP reply from the address"
    return (
        "ARP announcement of the address"
        if arp.sender_ip == arp.target_ip
        else "ARP request from the address"
    )


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
        on_unconfirmed: Evidence | None = None,
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
        self._on_unconfirmed = on_unconfirmed
        # The checks' rules, applied here when there is no receive thread.
        self.checks = AddressChecks(self.arp.bindings, self.pending)
        self.checking: dict[int, Check] = {}
        self.outcomes: deque[dict[str, object]] = deque(maxlen=OUTCOMES_KEPT)
        self.clock: Callable[[], float] = time.monotonic  # the checks' clock (the thread's is its own)
        self._timer: asyncio.TimerHandle | None = None

    def set_network(self, networks: list[tuple[int, int]], gateway: int = 0) -> None:
        """The interface's networks, as (address, prefix length), and its gateway (0: unknown):
        how routers are told from hosts (a router's IPv4 from one of our addresses is no evidence)."""
        self.checks.set_networks(networks, gateway)
        if self.fast is not None:
            self.fast.set_networks(networks, gateway)

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
        self.checks.forget(ip)
        self.checking.pop(ip, None)
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

    def on_arp(self, eth: Ethernet, answered: bytes | None, note: int | None = None) -> None:
        """An ARP frame: answer it (unless the receive thread did), or act on its evidence.
        `note`: the thread's note for the frame; None without the thread (judged here)."""
        arp = parse_arp(eth.payload)
        if type(arp) is Malformed:
            self.counters["arp: malformed"] += 1
            return
        if note is None:
            self.checks.learn_arp(arp)
        pending = self.pending
        if pending and arp.sender_ip in pending and arp.sender_mac != pending[arp.sender_ip]:
            self._on_evidence(arp.sender_ip, arp.sender_mac, "answer to our ARP probe")
            return
        if note is None:
            probe, note = self.checks.check_arp(arp, self.clock())
            if probe is not None:
                self.raw.send(probe)
        if note:
            if note == Note.PROBED:
                self._noted(note, arp.target_ip, arp.sender_mac, "ARP probe for the address")
            else:
                self._noted(note, arp.sender_ip, arp.sender_mac, _arp_evidence(arp))
            return
        result = self.arp.receive(eth, arp)
        if type(result) is SendFrame and answered is None:
            self.raw.send(result.frame)

    def on_foreign_ipv4(
        self, payload: bytes, mac: bytes, checksums_ok: bool, note: int | None = None
    ) -> None:
        """IPv4 from one of our addresses sent with another MAC: a pending address is taken; a
        claimed one is checked (`note`: the thread's note, None without the thread)."""
        ip = parse_ipv4(payload, checksums_ok)
        if type(ip) is Malformed:
            return
        if ip.src in self.pending:
            self._on_evidence(ip.src, mac, "IPv4 traffic from the address")
            return
        if note is None:
            probe, note = self.checks.check_ipv4(ip.src, mac, self.clock())
            if probe is not None:
                self.raw.send(probe)
        if note:
            self._noted(note, ip.src, mac, "IPv4 from the address")

    # ------------------------------------------------------------------ checks

    def _noted(self, note: int, ip: int, mac: bytes, why: str) -> None:
        """Act on what the checks made of a frame (the thread's note, or the same rules here)."""
        note = Note(note)
        self.counters[NOTE_COUNTERS[note]] += 1
        now = self.clock()
        if note is Note.CHECK:
            self.checking[ip] = Check(mac, why, now)
            self._arm(now)
        elif note is Note.BUSY:
            check = self.checking.get(ip)
            if check is not None:
                check.evidence += 1
        elif note is Note.CONFIRMED:
            self._confirmed(ip, mac, self.checking.pop(ip, None), now)
        elif note is Note.PROBED:
            self._outcome(ip, mac, why, "noted (a machine probing for it; its announcement will be checked)")

    def _confirmed(self, ip: int, mac: bytes, check: Check | None, now: float) -> None:
        first = f"{check.why} by {check.mac.hex(':')}" if check is not None else "evidence"
        self._outcome(ip, mac, first, "answered our ARP check: released")
        self._on_evidence(ip, mac, f"{first}, then an answer to our ARP check")

    def expire(self, now: float) -> None:
        """Judge the checks whose window is over: unanswered ones keep the address, and say so."""
        over = CHECK_WINDOW_MS / 1000 + CHECK_GRACE
        for ip in [ip for ip, check in self.checking.items() if now >= check.started + over]:
            check = self.checking.pop(ip)
            if not self.claimed(ip):
                continue  # given back or retired meanwhile
            other = self.fast.silenced(ip) if self.fast is not None else None
            if other is not None:  # the thread's answer never reached us (a frame lost): act on it
                self.counters[NOTE_COUNTERS[Note.CONFIRMED]] += 1
                self._confirmed(ip, other, check, now)
                continue
            self.counters[UNANSWERED] += 1
            evidence = f"{check.why} ({check.evidence} frame{'s' if check.evidence > 1 else ''})"
            self._outcome(ip, check.mac, evidence, "unanswered: kept")
            if self._on_unconfirmed is not None:
                self._on_unconfirmed(ip, check.mac, evidence)

    def _arm(self, now: float) -> None:
        if self._timer is not None or not self.checking:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (tests drive `expire` themselves)
        first = min(check.started for check in self.checking.values())
        delay = max(0.0, first + CHECK_WINDOW_MS / 1000 + CHECK_GRACE - now)
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.clock()
        self.expire(now)
        self._arm(now)

    def _outcome(self, ip: int, mac: bytes, evidence: str, outcome: str) -> None:
        self.outcomes.append(
            {
                "time": round(time.time(), 3),
                "address": str(ipaddress.IPv4Address(ip)),
                "mac": mac.hex(":"),
                "evidence": evidence,
                "outcome": outcome,
            }
        )

    def report(self) -> dict[str, object]:
        """The checks for the status file: running, the latest outcomes, the routers known."""
        routers = self.fast.routers() if self.fast is not None else self.checks.routers_oldest_first()
        return {
            "checking": len(self.checking),
            "recent": list(self.outcomes),
            "routers": [mac.hex(":") for mac in routers],
        }
