"""ARP for the virtual hosts: answer who-has for bound addresses, notice conflicts.

Pure logic over a table of bound addresses {ip -> our MAC}.  The sensor parses the
frame (`packets.parse_ethernet` + `parse_arp`; malformed ARP never gets here) and
calls `ArpResponder.receive`, which returns complete Ethernet frames to send and
`AddressConflict` events.  DESIGN's rule "never steal an address" is why a conflict is
reported for *any* sign that another machine uses or wants a bound address:

* any ARP (request, reply, gratuitous announcement) whose sender IP is bound but whose
  sender MAC is not ours;
* an ARP probe (RFC 5227: sender IP 0.0.0.0) asking for a bound address -- someone is
  about to take it.  Probes are never answered.

We answer only well-formed requests for a bound address from a plausible sender
(unicast sender MAC, sender IP not 0/broadcast/multicast), unicast to the requester.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynapot.netstack.packets import BROADCAST_MAC, ZERO_MAC, build_arp_frame
from dynapot.netstack.types import Arp, Ethernet

__all__ = [
    "AddressConflict",
    "ArpResponder",
    "SendFrame",
    "build_announcement",
    "build_probe",
    "handle_arp",
]

ARP_REQUEST = 1
ARP_REPLY = 2


@dataclass(frozen=True, slots=True)
class SendFrame:
    """A complete Ethernet frame to put on the wire."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class AddressConflict:
    """Another machine (`mac`) uses or wants the bound address `ip`: release it."""

    ip: int
    mac: bytes
    probe: bool  # True: an RFC 5227 probe (it wants the address), False: it already uses it


def _bad_sender_ip(ip: int) -> bool:
    return ip == 0 or ip == 0xFFFFFFFF or (ip >> 28) == 0xE


def handle_arp(arp: Arp, bindings: Mapping[int, bytes]) -> SendFrame | AddressConflict | None:
    """Decide one parsed ARP packet against `bindings`: a reply frame, a conflict, or nothing."""
    sender_mac = arp.sender_mac
    if sender_mac[0] & 1 or sender_mac == ZERO_MAC:
        return None  # a multicast/broadcast/zero sender is bogus: no reply, no evidence
    sender_ip = arp.sender_ip
    ours = bindings.get(sender_ip)
    if ours is not None:
        # someone (or our own reflected announcement) speaks for a bound address
        return None if ours == sender_mac else AddressConflict(sender_ip, sender_mac, False)
    if arp.op != ARP_REQUEST:
        return None
    mac = bindings.get(arp.target_ip)
    if mac is None:
        return None
    if sender_ip == 0:
        return None if mac == sender_mac else AddressConflict(arp.target_ip, sender_mac, True)
    if _bad_sender_ip(sender_ip):
        return None
    return SendFrame(build_arp_frame(sender_mac, ARP_REPLY, mac, arp.target_ip, sender_mac, sender_ip))


class ArpResponder:
    """The bound addresses of one sensor interface and the ARP decisions over them."""

    __slots__ = ("bindings",)

    def __init__(self, bindings: Mapping[int, bytes] | None = None) -> None:
        self.bindings: dict[int, bytes] = dict(bindings or {})

    def bind(self, ip: int, mac: bytes) -> None:
        self.bindings[ip] = mac

    def unbind(self, ip: int) -> None:
        self.bindings.pop(ip, None)

    def receive(self, eth: Ethernet, arp: Arp) -> SendFrame | AddressConflict | None:
        """Handle an ARP frame; frames whose Ethernet source disagrees with the ARP sender are ignored
        unless they are conflict evidence (a forged sender is still somebody claiming the address)."""
        result = handle_arp(arp, self.bindings)
        if type(result) is SendFrame and eth.src != arp.sender_mac:
            return None  # do not reply to a spoofed requester on behalf of a third MAC
        return result


def build_probe(mac: bytes, ip: int) -> bytes:
    """An RFC 5227 ARP probe for `ip` from `mac` (sender IP 0.0.0.0), broadcast."""
    return build_arp_frame(BROADCAST_MAC, ARP_REQUEST, mac, 0, ZERO_MAC, ip)


def build_announcement(mac: bytes, ip: int) -> bytes:
    """An RFC 5227 ARP announcement (gratuitous request: sender and target IP both `ip`), broadcast."""
    return build_arp_frame(BROADCAST_MAC, ARP_REQUEST, mac, ip, ZERO_MAC, ip)
