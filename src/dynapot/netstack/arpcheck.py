"""Whether another machine really uses one of our addresses: an ARP check before giving it back.

DESIGN's rule "never steal an address" means a virtual host gives its address back to a real
machine that takes it. But one packet with the address as its source proves nothing: anyone on
the link can send a gratuitous ARP or a UDP datagram from any address. So evidence only starts a
*check*, as RFC 5227 checks an address before using it: an ARP probe for the address (sender IP
0.0.0.0, sender MAC the virtual host's own, RFC 5227 2.1.1), broadcast. A machine that has the
address answers it; the address is given back only when an ARP reply from the address, by
another MAC and addressed to ours, arrives within `CHECK_WINDOW`. No answer: the address stays
ours and the evidence is recorded as unconfirmed (spoofed). An attacker on the link who answers
our probe as well is indistinguishable from a real host (RFC 5227's own limit); one spoofed
packet, or a flood of them, is not enough.

The rules, which the C receive thread (`dynapot._fastpath`) applies the same way, byte for byte
(tests/unit/test_fastpath.py checks one against the other):

- Evidence against a claimed address: an ARP request or reply whose sender IP is the address
  and whose sender MAC is another machine's (unicast, not zero); IPv4 from the address whose
  Ethernet source is another unicast MAC that is not a router's (routed traffic says nothing
  about who is on the link).
- A router's MAC: one that sent IPv4 from an address outside the interface's networks (not one
  of ours, not 0/8, 127/8, 169.254/16 or multicast: no router forwards those), or from the
  gateway's address, or ARP from the gateway's address. At most `ROUTER_SLOTS`, the oldest
  replaced first (forged routers in bulk only cost probes: a check still decides).
- An ARP probe for a claimed address (sender IP 0) from another MAC is noted, nothing more: to
  the prober, a probe of ours for the same address would be a conflict (RFC 5227 2.1.1), and
  the announcement it sends once its probing is over is the evidence that starts our check.
- Limits: one check per address per `CHECK_INTERVAL`; `1000 / CHECK_COST_MS` checks a second
  over all addresses in bursts of up to `CHECK_BURST` (a GCRA over whole milliseconds, so that
  C and Python agree exactly): never an ARP amplifier. Evidence during a check, or over a
  limit, is counted.

Pure logic: frames and the clock in, the probe to send and a `Note` out. The sensor's claims
(dynapot.sensor.claims) act on the notes: they give the address back on `CONFIRMED`.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from enum import IntEnum

from dynapot.netstack.arp import build_probe
from dynapot.netstack.packets import Malformed, parse_arp, parse_ipv4
from dynapot.netstack.types import ETH_P_ARP, ETH_P_IP, Arp, Ethernet

__all__ = [
    "CHECK_BURST",
    "CHECK_COST_MS",
    "CHECK_INTERVAL_MS",
    "CHECK_WINDOW_MS",
    "ROUTER_SLOTS",
    "AddressChecks",
    "Note",
]

CHECK_WINDOW_MS = 500  # how long an answer to our probe counts
CHECK_INTERVAL_MS = 1000  # one check per address per this
CHECK_COST_MS = 50  # the global rate: one check per 50 ms on average (20 a second) ...
CHECK_BURST = 20  # ... in bursts of up to 20
ROUTER_SLOTS = 64
MAX_NETWORKS = 16
_TAT_START = -(2**61)
_ZERO_MAC = bytes(6)


class Note(IntEnum):
    """What a frame means to the address checks (the C thread's NOTE_* numbers)."""

    NONE = 0  # nothing to do with a claimed address
    CHECK = 1  # evidence: a check started (its probe is to be sent)
    CONFIRMED = 2  # an answer to our check from another MAC: the address is another machine's
    BUSY = 3  # evidence while a check of the address runs
    LIMITED = 4  # evidence, but a check now would exceed a limit
    ROUTED = 5  # IPv4 from a claimed address through a router: never evidence
    PROBED = 6  # an ARP probe for a claimed address from another MAC: noted only


def clock_ms(now: float) -> int:
    """The checks' clock: whole milliseconds (0 for clocks no check can use), as C computes it."""
    return int(now * 1000.0) if 0.0 <= now < 1e12 else 0


def _bogus(mac: bytes) -> bool:
    return bool(mac[0] & 1) or mac == _ZERO_MAC


class AddressChecks:
    """The checks of one interface's claimed addresses (`bindings`: address -> our MAC, shared
    with the ARP responder; `pending`: addresses of ours still being probed), and its routers."""

    __slots__ = (
        "_next_router",
        "_started",
        "_tat",
        "bindings",
        "gateway",
        "networks",
        "pending",
        "routers",
        "silenced",
    )

    def __init__(self, bindings: Mapping[int, bytes], pending: Container[int] = ()) -> None:
        self.bindings = bindings
        self.pending = pending
        self.silenced: dict[int, bytes] = {}  # address -> the MAC that answered our check
        self.routers: list[bytes] = []
        self.networks: list[tuple[int, int]] = []  # (network, mask)
        self.gateway = 0
        self._next_router = 0
        self._started: dict[int, int] = {}  # address -> when its last check started (ms)
        self._tat = _TAT_START

    # ------------------------------------------------------------------ set-up

    def set_networks(self, networks: Iterable[tuple[int, int]], gateway: int = 0) -> None:
        """The interface's networks, as (address, prefix length), and its gateway (0: none)."""
        nets: list[tuple[int, int]] = []
        for address, prefix in networks:
            if not 0 <= prefix <= 32 or not 0 <= address <= 0xFFFFFFFF:
                raise ValueError("a network is (address, prefix length 0..32)")
            mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
            nets.append((address & mask, mask))
        if len(nets) > MAX_NETWORKS or not 0 <= gateway <= 0xFFFFFFFF:
            raise ValueError("at most 16 networks, and a gateway that is an IPv4 address")
        self.networks, self.gateway = nets, gateway

    def forget(self, ip: int) -> None:
        """`ip` is no longer claimed (given back, retired): its check state goes with it."""
        self._started.pop(ip, None)
        self.silenced.pop(ip, None)

    def routers_oldest_first(self) -> list[bytes]:
        n = len(self.routers)
        return [self.routers[(self._next_router + i) % n] for i in range(n)]

    # ------------------------------------------------------------------ routers

    def _add_router(self, mac: bytes) -> None:
        if _bogus(mac) or mac in self.routers:
            return
        if len(self.routers) < ROUTER_SLOTS:
            self.routers.append(mac)
        else:  # full: the oldest goes
            self.routers[self._next_router] = mac
            self._next_router = (self._next_router + 1) % ROUTER_SLOTS

    def _foreign(self, src: int) -> bool:
        top = src >> 24
        if not self.networks or top == 0 or top == 127 or src >> 16 == 0xA9FE or top >= 224:
            return False
        if any(src & mask == net for net, mask in self.networks):
            return False
        return src not in self.bindings and src not in self.silenced and src not in self.pending

    def learn_ipv4(self, src: int, mac: bytes) -> None:
        """An IPv4 frame from `mac` with source `src` (version 4, at least 20 bytes: not parsed)."""
        if (self.gateway and src == self.gateway) or self._foreign(src):
            self._add_router(mac)

    def learn_arp(self, arp: Arp) -> None:
        if self.gateway and arp.sender_ip == self.gateway:
            self._add_router(arp.sender_mac)

    # ------------------------------------------------------------------ checks

    def _checking(self, ip: int, ms: int) -> bool:
        started = self._started.get(ip)
        return started is not None and started <= ms < started + CHECK_WINDOW_MS

    def _start(self, ip: int, ms: int) -> tuple[bytes | None, Note]:
        if self._checking(ip, ms):
            return None, Note.BUSY
        started = self._started.get(ip)
        due = max(self._tat, ms)
        if (started is not None and started <= ms < started + CHECK_INTERVAL_MS) or due - ms > (
            CHECK_BURST - 1
        ) * CHECK_COST_MS:
            return None, Note.LIMITED
        self._tat = due + CHECK_COST_MS
        self._started[ip] = ms
        return build_probe(self.bindings[ip], ip), Note.CHECK

    def _claimed(self, ip: int) -> bytes | None:
        mac = self.bindings.get(ip)
        return None if mac is None or ip in self.silenced else mac

    def check_arp(self, arp: Arp, now: float) -> tuple[bytes | None, Note]:
        """A parsed ARP packet: the probe to send (or None) and what it means."""
        sha = arp.sender_mac
        if _bogus(sha):
            return None, Note.NONE
        spa = arp.sender_ip
        ours = self._claimed(spa)
        if ours is not None:
            if ours == sha:
                return None, Note.NONE  # ourselves, reflected
            ms = clock_ms(now)
            if arp.op == 2 and self._checking(spa, ms) and arp.target_mac == ours:
                self.silenced[spa] = sha  # the answer to our probe: another machine has it
                return None, Note.CONFIRMED
            return self._start(spa, ms)
        if spa == 0 and arp.op == 1:
            target = self._claimed(arp.target_ip)
            if target is not None and target != sha:
                return None, Note.PROBED
        return None, Note.NONE

    def check_ipv4(self, src: int, mac: bytes, now: float) -> tuple[bytes | None, Note]:
        """A valid IPv4 packet (`parse_ipv4` accepted it) from `src`, sent by `mac`."""
        ours = self._claimed(src)
        if ours is None or ours == mac or _bogus(mac):
            return None, Note.NONE
        if mac in self.routers:
            return None, Note.ROUTED
        return self._start(src, clock_ms(now))

    def judge(self, eth: Ethernet, checksums_ok: bool, now: float) -> tuple[bytes | None, Note]:
        """One frame, as the receive thread takes it: routers learned, then the check's rules."""
        ethertype = eth.ethertype
        if ethertype == ETH_P_IP:
            payload = eth.payload
            if len(payload) >= 20 and payload[0] >> 4 == 4:
                self.learn_ipv4(int.from_bytes(payload[12:16], "big"), eth.src)
            ip = parse_ipv4(payload, checksums_ok)
            if type(ip) is Malformed:
                return None, Note.NONE
            return self.check_ipv4(ip.src, eth.src, now)
        if ethertype == ETH_P_ARP:
            arp = parse_arp(eth.payload)
            if type(arp) is Malformed:
                return None, Note.NONE
            self.learn_arp(arp)
            return self.check_arp(arp, now)
        return None, Note.NONE
