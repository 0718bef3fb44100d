"""ARP answers and conflict detection, with scapy building the requests and reading our replies."""

from __future__ import annotations

import pytest
from scapy.compat import raw
from scapy.layers.l2 import ARP, Ether
from test_netstack_helpers import CLIENT_IP, SERVER_IP, ip2int

from dynapot.netstack.arp import AddressConflict, ArpResponder, SendFrame, build_announcement, build_probe
from dynapot.netstack.packets import Malformed, parse_arp, parse_ethernet
from dynapot.netstack.types import Arp, Ethernet

OUR_MAC = "02:00:00:00:00:0a"
THEIR_MAC = "02:00:00:00:00:63"
OTHER_IP = "198.18.0.11"  # not bound


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


@pytest.fixture
def responder() -> ArpResponder:
    return ArpResponder({ip2int(SERVER_IP): mac(OUR_MAC)})


def run(responder: ArpResponder, frame: Ether):
    eth = parse_ethernet(raw(frame))
    assert isinstance(eth, Ethernet)
    arp = parse_arp(eth.payload)
    if isinstance(arp, Malformed):
        return arp
    assert isinstance(arp, Arp)
    return responder.receive(eth, arp)


def request(psrc: str = CLIENT_IP, pdst: str = SERVER_IP, hwsrc: str = THEIR_MAC, op: int = 1, **kw) -> Ether:
    return Ether(src=kw.pop("ether_src", hwsrc), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst, **kw
    )


def test_who_has_bound_gets_unicast_is_at(responder: ArpResponder) -> None:
    result = run(responder, request())
    assert isinstance(result, SendFrame)
    e = Ether(result.frame)
    assert e.dst == THEIR_MAC and e.src == OUR_MAC and e.type == 0x0806
    a = e[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, OUR_MAC, SERVER_IP, THEIR_MAC, CLIENT_IP)


def test_unbound_address_is_never_answered(responder: ArpResponder) -> None:
    assert run(responder, request(pdst=OTHER_IP)) is None
    responder.unbind(ip2int(SERVER_IP))
    assert run(responder, request()) is None
    responder.bind(ip2int(OTHER_IP), mac(OUR_MAC))
    assert isinstance(run(responder, request(pdst=OTHER_IP)), SendFrame)


def test_probe_for_bound_address_is_a_conflict_not_answered(responder: ArpResponder) -> None:
    result = run(responder, request(psrc="0.0.0.0"))
    assert result == AddressConflict(ip2int(SERVER_IP), mac(THEIR_MAC), True)
    assert run(responder, request(psrc="0.0.0.0", pdst=OTHER_IP)) is None


def test_our_own_probe_reflected_is_ignored(responder: ArpResponder) -> None:
    assert run(responder, Ether(build_probe(mac(OUR_MAC), ip2int(SERVER_IP)))) is None
    assert run(responder, Ether(build_announcement(mac(OUR_MAC), ip2int(SERVER_IP)))) is None


@pytest.mark.parametrize(
    "frame",
    [
        # gratuitous announcement (request, sender = target = our address)
        request(psrc=SERVER_IP, pdst=SERVER_IP),
        # gratuitous reply
        request(psrc=SERVER_IP, pdst=SERVER_IP, op=2),
        # an ordinary request *from* our address
        request(psrc=SERVER_IP, pdst=CLIENT_IP),
        # a reply from our address to someone
        request(psrc=SERVER_IP, pdst=CLIENT_IP, op=2, hwdst=THEIR_MAC),
    ],
)
def test_any_arp_from_a_bound_address_with_another_mac_is_a_conflict(responder: ArpResponder, frame) -> None:
    assert run(responder, frame) == AddressConflict(ip2int(SERVER_IP), mac(THEIR_MAC), False)


def test_replies_and_announcements_for_others_are_ignored(responder: ArpResponder) -> None:
    assert run(responder, request(op=2)) is None
    assert run(responder, request(psrc=OTHER_IP, pdst=OTHER_IP)) is None


@pytest.mark.parametrize(
    "frame",
    [
        request(hwsrc="ff:ff:ff:ff:ff:ff"),  # broadcast sender MAC
        request(hwsrc="01:00:5e:00:00:01"),  # multicast sender MAC
        request(hwsrc="00:00:00:00:00:00"),
        request(psrc="255.255.255.255"),
        request(psrc="224.0.0.1"),
        request(ether_src="02:00:00:00:00:99"),  # Ethernet source disagrees with the ARP sender
    ],
)
def test_implausible_requests_are_not_answered(responder: ArpResponder, frame) -> None:
    assert run(responder, frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        request(hwtype=6),
        request(ptype=0x86DD),
        request(hwlen=8),
        request(plen=16),
        request(op=3),
    ],
)
def test_malformed_arp_never_answered(responder: ArpResponder, frame) -> None:
    assert isinstance(run(responder, frame), Malformed)


def test_truncated_arp(responder: ArpResponder) -> None:
    data = raw(request())
    for n in range(14, 14 + 28):
        eth = parse_ethernet(data[:n])
        assert isinstance(eth, Ethernet)
        assert isinstance(parse_arp(eth.payload), Malformed)


def test_probe_and_announcement_builders() -> None:
    p = Ether(build_probe(mac(OUR_MAC), ip2int(SERVER_IP)))
    assert p.dst == "ff:ff:ff:ff:ff:ff" and p[ARP].op == 1 and p[ARP].psrc == "0.0.0.0"
    assert p[ARP].pdst == SERVER_IP and p[ARP].hwsrc == OUR_MAC
    a = Ether(build_announcement(mac(OUR_MAC), ip2int(SERVER_IP)))
    assert a[ARP].psrc == a[ARP].pdst == SERVER_IP
