"""NetBIOS name service (UDP 137): a Windows host answering name queries and node-status requests.

Sans-IO (`DatagramService`): one datagram in, at most one out. The host's names are those the SMB
emulator uses (the host's identity), so `nbtscan`, `nmblookup -A` and nmap's nbstat agree
with smb-os-discovery: COMPUTER<00>, COMPUTER<20> (file server), WORKGROUP<00> and <1E>
(browser elections), and COMPUTER<03> (messenger) on XP and 2003. Queries for other names go
unanswered, as on a real network where only the owner replies. Anything unparsable is dropped
silently and reported as "bad-request"; Windows drops it too.

Node status carries a MAC address. The connection record does not hold the virtual host's MAC,
so a `mac` attribute is used when the sensor provides one, zeros otherwise (what Samba sends).
"""

from __future__ import annotations

import ipaddress
import struct

from dynapot.events import Kind
from dynapot.services import smb_messages as m
from dynapot.services.contract import ConnectionInfo, Report, Service, clip, excerpt, guarded
from dynapot.services.identity import HostIdentity

NB = 0x0020
NBSTAT = 0x0021
_HEADER = struct.Struct(">HHHHHH")
MAX_DATAGRAM = 576  # RFC 1002 keeps name service datagrams below this

# Name flags in a node status answer: group bit, node type B (0), active.
UNIQUE_ACTIVE = 0x0400
GROUP_ACTIVE = 0x8400


def host_names(profile: m.WindowsProfile, identity: HostIdentity) -> list[tuple[str, int, int]]:
    """(name, suffix, flags) this host has registered, in the order Windows lists them."""
    names = [
        (identity.computer, 0x00, UNIQUE_ACTIVE),
        (identity.netbios_domain, 0x00, GROUP_ACTIVE),
        (identity.computer, 0x20, UNIQUE_ACTIVE),
    ]
    if profile.key in ("xp", "2003", "2000", "nt4"):
        names.append((identity.computer, 0x03, UNIQUE_ACTIVE))
    names.append((identity.netbios_domain, 0x1E, GROUP_ACTIVE))
    return names


def _mac_of(info: ConnectionInfo) -> bytes:
    mac = getattr(info, "mac", None)
    if isinstance(mac, bytes) and len(mac) == 6:
        return mac
    if isinstance(mac, str):
        digits = mac.replace(":", "").replace("-", "")
        if len(digits) == 12:
            try:
                return bytes.fromhex(digits)
            except ValueError:
                pass
    return b"\0" * 6


def node_status(transaction: int, question: bytes, names: list[tuple[str, int, int]], mac: bytes) -> bytes:
    table = b"".join(
        name.upper().encode("latin-1", "replace")[:15].ljust(15, b" ")
        + bytes([suffix])
        + struct.pack(">H", flags)
        for name, suffix, flags in names
    )
    # Statistics: the unit id (MAC), then counters Windows leaves at zero.
    rdata = bytes([len(names)]) + table + mac + b"\0" * 40
    header = _HEADER.pack(transaction, 0x8400, 0, 1, 0, 0)
    return header + question + struct.pack(">HHIH", NBSTAT, 1, 0, len(rdata)) + rdata


def name_response(transaction: int, question: bytes, group: bool, address: str) -> bytes:
    header = _HEADER.pack(transaction, 0x8500, 0, 1, 0, 0)
    rdata = struct.pack(">H", 0x8000 if group else 0) + ipaddress.IPv4Address(address).packed
    return header + question + struct.pack(">HHIH", NB, 1, 300_000, len(rdata)) + rdata


def serve_netbios_ns(datagram: bytes, info: ConnectionInfo, report: Report) -> bytes | None:
    report = guarded(report, "netbios-ns")  # a broken sink must not break the emulation
    try:
        return _answer(datagram, info, report)
    except (m.MalformedMessage, struct.error, ValueError) as exc:
        report(Kind.BAD_REQUEST, str(exc)[:200], {"excerpt": excerpt(datagram[:128])})
        return None


def _answer(datagram: bytes, info: ConnectionInfo, report: Report) -> bytes | None:
    if len(datagram) > MAX_DATAGRAM or len(datagram) < _HEADER.size + 34 + 4:
        raise m.MalformedMessage("not a name service request")
    transaction, flags, questions, _, _, _ = _HEADER.unpack_from(datagram)
    if flags & 0x8000 or (flags >> 11) & 0x0F != 0 or questions != 1:
        return None  # a response, or a registration/release: not ours to answer
    name, suffix, used = m.netbios_name_decode(datagram[_HEADER.size :])
    end = _HEADER.size + used
    qtype, qclass = struct.unpack_from(">HH", datagram, end)
    question = datagram[_HEADER.size : end]  # the answer repeats the queried name
    profile, identity = m.profile_of(info), info.identity
    names = host_names(profile, identity)
    if qclass != 1:
        return None
    if qtype == NBSTAT and (name == "*" or name.upper() == identity.computer):
        report(Kind.REQUEST, "NBSTAT", {"name": clip(name)})
        return node_status(transaction, question, names, _mac_of(info))
    if qtype == NB:
        for owned, owned_suffix, owned_flags in names:
            if name.upper() == owned and suffix == owned_suffix:
                report(Kind.REQUEST, f"name query {owned}<{suffix:02x}>", None)
                return name_response(transaction, question, owned_flags & 0x8000 != 0, info.dst)
    return None


SERVICES = (Service(("netbios-ns", "nbns"), "udp", serve_netbios_ns),)
