"""SNMP agent emulator (UDP 161), sans-IO: one datagram in, at most one datagram out.

SNMPv1 and v2c Get, GetNext and GetBulk are answered from the MIB-II system group for the
communities "public" and "private": sysDescr fitting the host's OS (`AGENTS`: net-snmp on
Linux and BSD with the host's `uname`, the Windows SNMP service of its release, Cisco IOS, an
HP JetDirect), sysObjectID, sysUpTime (the host's uptime: its TCP timestamps and shells
agree), sysContact, sysName (the host's name, as its other services show it), sysLocation
and sysServices. Set is refused the way a read-only agent refuses it.
A wrong community gets no answer, like a real agent, but is reported as a login. SNMPv3
gets the USM discovery report (usmStatsUnknownEngineIDs / UnknownUserNames) from agents
that speak it (net-snmp, IOS), with the agent's own engine ID, and silence elsewhere; the
user name is reported, and an authenticated request is kept whole for offline cracking.

Reported events:
  request      "v2c public get-next 1.3.6.1.2.1.1"  {"version", "community", "pdu", "oids", ...}
  login        ":community" (wrong community)      {"user": "", "password", "accepted": False}
               "user:" (SNMPv3)                     {"user", "password": None, "accepted": False,
                                                     "engine_id", "datagram" (authenticated only)}
  bad-request  a datagram that is not SNMP

The BER codec here is small on purpose: definite lengths only, a fixed depth (no recursion), item counts
and sizes; every malformed input raises `BerError`, which `respond` turns into silence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, DatagramService, Report, Service, excerpt
from dynapot.services.identity import HostIdentity
from dynapot.services.profiles import Profile, choose
from dynapot.services.systems import CISCO_IOS, windows_release

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65507
MAX_ITEMS = 128  # elements of one SEQUENCE (varbinds, arcs)
MAX_OID_ARCS = 128
MAX_VARBINDS = 64  # in one response (GetBulk)
MAX_RESPONSE = 1472  # bytes: a response that fits one Ethernet frame, as net-snmp aims for
MAX_REPORTED_OIDS = 16
COMMUNITIES = ("public", "private")

# BER tags.
INTEGER, OCTET_STRING, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GET_NEXT, RESPONSE, SET, TRAP, GET_BULK, INFORM, TRAP2, REPORT = range(0xA0, 0xA9)
PDU_NAMES = {
    GET: "get",
    GET_NEXT: "get-next",
    RESPONSE: "response",
    SET: "set",
    TRAP: "trap",
    GET_BULK: "get-bulk",
    INFORM: "inform",
    TRAP2: "trap2",
    REPORT: "report",
}
VERSIONS = {0: "v1", 1: "v2c", 3: "v3"}

# error-status values (RFC 3416).
NO_SUCH_NAME, NO_ACCESS, NOT_WRITABLE = 2, 6, 17

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
NET_SNMP_LINUX_OID = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)
NET_SNMP_FREEBSD_OID = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 8)
WINDOWS_OID = (1, 3, 6, 1, 4, 1, 311, 1, 1, 3, 1)  # .1 workstation, .2 server
CISCO_2911_OID = (1, 3, 6, 1, 4, 1, 9, 1, 1041)
JETDIRECT_OID = (1, 3, 6, 1, 4, 1, 11, 2, 3, 9, 1)
USM_UNKNOWN_USER_NAMES = (1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0)
USM_UNKNOWN_ENGINE_IDS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)


# -- BER ------------------------------------------------------------------------------------------------


class BerError(ValueError):
    """Malformed, unsupported or oversized BER."""


class Item(NamedTuple):
    """One BER element of a buffer: its tag, where its content starts and ends, where it begins."""

    tag: int
    start: int
    end: int
    begin: int


def read_tlv(data: bytes, pos: int, end: int) -> Item:
    """The element at `pos`, which must end by `end`."""
    if pos + 2 > end:
        raise BerError("truncated header")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tag")
    if first < 0x80:
        start, length = pos + 2, first
    else:
        size = first & 0x7F
        if size == 0 or size > 3:
            raise BerError("indefinite or huge length")
        start = pos + 2 + size
        if start > end:
            raise BerError("truncated length")
        length = int.from_bytes(data[pos + 2 : start], "big")
    if start + length > end:
        raise BerError("content beyond its container")
    return Item(tag, start, start + length, pos)


def read_items(data: bytes, start: int, end: int) -> list[Item]:
    """The elements of a constructed value's content."""
    items = []
    pos = start
    while pos < end:
        if len(items) >= MAX_ITEMS:
            raise BerError("too many elements")
        item = read_tlv(data, pos, end)
        items.append(item)
        pos = item.end
    return items


def expect(data: bytes, item: Item, tag: int) -> bytes:
    """The content of `item`, which must have tag `tag`."""
    if item.tag != tag:
        raise BerError(f"tag {item.tag:#x} where {tag:#x} was expected")
    return data[item.start : item.end]


def decode_int(content: bytes) -> int:
    if not content or len(content) > 9:
        raise BerError("bad integer")
    return int.from_bytes(content, "big", signed=True)


def decode_oid(content: bytes) -> tuple[int, ...]:
    if not content:
        raise BerError("empty OID")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if value >= 1 << 64:
            raise BerError("OID arc too large")
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            if len(arcs) > MAX_OID_ARCS:
                raise BerError("OID too long")
    if content[-1] & 0x80:
        raise BerError("unterminated OID arc")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + tuple(arcs[1:])


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(content)) + content


def encode_int(value: int, tag: int = INTEGER) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def encode_oid(oid: tuple[int, ...]) -> bytes:
    if len(oid) < 2:
        raise BerError("OID needs two arcs")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def oid_text(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


# -- what a host says -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agent:
    """The SNMP agent of one host: its system group and, if it speaks SNMPv3, its engine ID."""

    descr: str
    object_id: tuple[int, ...]
    services: int
    contact: str
    name: str
    location: str
    engine_id: bytes | None
    or_last_change: bool  # net-snmp also has sysORLastChange


_JETDIRECT = "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153,EEPROM JSI23900052,CIDATE 09/13/2019"
_CONTACTS = ("root@localhost", "IT Helpdesk", "sysadmin", "noc", "Network Operations", "admin")
_LOCATIONS = ("Server Room", "Server room, rack 2", "DC1 row B", "Main office", "Basement", "Unknown", "Lab")
# Debian's snmpd.conf as installed: many hosts keep it.
_NET_SNMP_DEFAULT = ("Me <me@example.org>", "Sitting on the Dock of the Bay")


def _windows(identity: HostIdentity, h: int, contact: str, location: str) -> Agent:
    release = identity.windows or windows_release(None)
    major, minor, build = release.version
    version = "6.3" if (major, minor) > (6, 3) else f"{major}.{minor}"  # Windows 10 and later still say 6.3
    stepping = (h >> 24) % 10
    cpu = "x86 Family 6 Model 15" if version == "5.1" else f"Intel64 Family 6 Model {42 + (h >> 16) % 50}"
    descr = (
        f"Hardware: {cpu} Stepping {stepping} AT/AT COMPATIBLE - "
        f"Software: Windows Version {version} (Build {build} Multiprocessor Free)"
    )
    # The Windows SNMP service has no SNMPv3: no engine ID, silence to v3.
    oid = (*WINDOWS_OID, 2 if release.server else 1)
    return Agent(descr, oid, 76, contact, identity.hostname, location, None, False)


def _cisco(identity: HostIdentity, h: int, contact: str, location: str) -> Agent:
    engine = b"\x80\x00\x00\x09\x03\x00\x1e\x13" + ((h >> 8) & 0xFFFFFF).to_bytes(3, "big")  # a MAC
    return Agent(
        "\r\n".join(CISCO_IOS), CISCO_2911_OID, 78, contact, identity.hostname, location, engine, False
    )


def _jetdirect(identity: HostIdentity, h: int, contact: str, location: str) -> Agent:
    return Agent(_JETDIRECT, JETDIRECT_OID, 72, "", identity.hostname, "", None, False)


def _net_snmp(identity: HostIdentity, h: int, contact: str, location: str) -> Agent:
    if h % 3 == 0:
        contact, location = _NET_SNMP_DEFAULT
    # net-snmp's own engine ID: enterprise 8072, format 128, then 8 bytes of its choosing.
    engine = b"\x80\x00\x1f\x88\x80" + (h >> 4).to_bytes(8, "big")
    kernel = identity.kernel
    oid = NET_SNMP_FREEBSD_OID if kernel.sysname == "FreeBSD" else NET_SNMP_LINUX_OID
    # uname's sysname, node, release, version and machine: the host's `uname -a` agrees.
    return Agent(
        kernel.describe(identity.hostname), oid, 72, contact, identity.hostname, location, engine, True
    )


AgentMaker = Callable[[HostIdentity, int, str, str], Agent]
# The agent a host of each system runs: nmap's product first (net-snmp wherever nmap saw it),
# then the host's OS.
AGENTS: tuple[Profile[AgentMaker], ...] = (
    Profile(_net_snmp, "net-snmp"),
    Profile(_windows, os="windows"),
    Profile(_cisco, os="cisco"),
    Profile(_jetdirect, os="printer"),
    Profile(_net_snmp),
)


def agent_for(info: ConnectionInfo) -> Agent:
    """The agent this host runs, with per-host details (name, contact, engine ID)."""
    identity = info.identity
    h = identity.rng("snmp-agent").getrandbits(64)
    contact, location = _CONTACTS[h % len(_CONTACTS)], _LOCATIONS[(h >> 8) % len(_LOCATIONS)]
    return choose(AGENTS, info).what(identity, h, contact, location)


def system_group(agent: Agent, seconds: float) -> list[tuple[tuple[int, ...], bytes]]:
    """The system group's (OID, encoded value) pairs, in OID order."""
    ticks = int(seconds * 100) % (1 << 32)
    rows = [
        ((*SYSTEM, 1, 0), tlv(OCTET_STRING, agent.descr.encode())),
        ((*SYSTEM, 2, 0), encode_oid(agent.object_id)),
        ((*SYSTEM, 3, 0), encode_int(ticks, TIMETICKS)),
        ((*SYSTEM, 4, 0), tlv(OCTET_STRING, agent.contact.encode())),
        ((*SYSTEM, 5, 0), tlv(OCTET_STRING, agent.name.encode())),
        ((*SYSTEM, 6, 0), tlv(OCTET_STRING, agent.location.encode())),
        ((*SYSTEM, 7, 0), encode_int(agent.services)),
    ]
    if agent.or_last_change:
        rows.append(((*SYSTEM, 8, 0), encode_int(2, TIMETICKS)))  # the OR table was filled at start-up
    return rows


# -- requests -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Pdu:
    tag: int
    request_id: int = 0
    error_status: int = 0  # non-repeaters in GetBulk
    error_index: int = 0  # max-repetitions in GetBulk
    oids: list[tuple[int, ...]] | None = None
    values: list[bytes] | None = None  # each value's whole TLV, as sent


def parse_pdu(data: bytes, item: Item) -> Pdu:
    """A PDU: request id, error fields and variable bindings (not v1 traps' other layout)."""
    if item.tag not in PDU_NAMES:
        raise BerError(f"unknown PDU {item.tag:#x}")
    fields = read_items(data, item.start, item.end)
    if item.tag == TRAP:
        return Pdu(item.tag)  # SNMPv1's trap layout: reported, never answered
    if len(fields) != 4:
        raise BerError("bad PDU")
    request_id, status, index = (decode_int(expect(data, f, INTEGER)) for f in fields[:3])
    oids: list[tuple[int, ...]] = []
    values: list[bytes] = []
    if fields[3].tag != SEQUENCE:
        raise BerError("variable bindings are not a SEQUENCE")
    for binding in read_items(data, fields[3].start, fields[3].end):
        pair = read_items(data, binding.start, binding.end) if binding.tag == SEQUENCE else []
        if len(pair) != 2:
            raise BerError("bad variable binding")
        oids.append(decode_oid(expect(data, pair[0], OID)))
        values.append(data[pair[1].begin : pair[1].end])
    return Pdu(item.tag, request_id, status, index, oids, values)


def _message(data: bytes) -> list[Item]:
    if len(data) > MAX_DATAGRAM:
        raise BerError("oversized datagram")
    top = read_tlv(data, 0, len(data))
    if top.tag != SEQUENCE:
        raise BerError("not a SEQUENCE")
    items = read_items(data, top.start, top.end)
    if len(items) < 2:
        raise BerError("not an SNMP message")
    return items


def _response(version: int, community: bytes, pdu: Pdu, status: int, index: int, bindings: list) -> bytes:
    body = b"".join(tlv(SEQUENCE, encode_oid(oid) + value) for oid, value in bindings)
    fields = encode_int(pdu.request_id) + encode_int(status) + encode_int(index) + tlv(SEQUENCE, body)
    return tlv(SEQUENCE, encode_int(version) + tlv(OCTET_STRING, community) + tlv(RESPONSE, fields))


def _after(
    rows: list[tuple[tuple[int, ...], bytes]], oid: tuple[int, ...]
) -> tuple[tuple[int, ...], bytes] | None:
    return next((row for row in rows if row[0] > oid), None)


def _answer_pdu(version: int, community: bytes, pdu: Pdu, rows: list, writable: bool) -> bytes | None:
    """The response to a v1/v2c request, or None where an agent stays silent."""
    oids, values = pdu.oids or [], pdu.values or []
    v1 = version == 0
    echo = list(zip(oids, values, strict=True))[:MAX_VARBINDS]
    table = dict(rows)
    objects = {oid[:-1] for oid, _ in rows}
    bindings: list[tuple[tuple[int, ...], bytes]] = []
    if pdu.tag == GET:
        for i, oid in enumerate(oids[:MAX_VARBINDS]):
            value = table.get(oid)
            if value is None and v1:
                return _response(version, community, pdu, NO_SUCH_NAME, i + 1, echo)
            if value is None:
                missing = NO_SUCH_INSTANCE if oid[:-1] in objects or oid in objects else NO_SUCH_OBJECT
                value = tlv(missing, b"")
            bindings.append((oid, value))
    elif pdu.tag == GET_NEXT:
        for i, oid in enumerate(oids[:MAX_VARBINDS]):
            row = _after(rows, oid)
            if row is None and v1:
                return _response(version, community, pdu, NO_SUCH_NAME, i + 1, echo)
            bindings.append(row or (oid, tlv(END_OF_MIB_VIEW, b"")))
    elif pdu.tag == GET_BULK and not v1:
        non_repeaters = min(max(pdu.error_status, 0), len(oids))
        repetitions = min(max(pdu.error_index, 0), MAX_VARBINDS)
        for oid in oids[:non_repeaters]:
            bindings.append(_after(rows, oid) or (oid, tlv(END_OF_MIB_VIEW, b"")))
        cursor = list(oids[non_repeaters:])
        for _ in range(repetitions if cursor else 0):
            if len(bindings) + len(cursor) > MAX_VARBINDS:
                break
            step = [_after(rows, oid) or (oid, tlv(END_OF_MIB_VIEW, b"")) for oid in cursor]
            bindings.extend(step)
            cursor = [oid for oid, _ in step]
            if all(value[0] == END_OF_MIB_VIEW for _, value in step):
                break  # RFC 3416 4.2.3: the agent may stop once every variable is past the end
        while bindings and len(_response(version, community, pdu, 0, 0, bindings)) > MAX_RESPONSE:
            bindings.pop()  # a GetBulk response is cut to fit, not refused
    elif pdu.tag == SET:
        status = NO_SUCH_NAME if v1 else NOT_WRITABLE if writable else NO_ACCESS
        return _response(version, community, pdu, status, 1 if oids else 0, echo)
    else:
        return None  # responses, traps, reports, informs, and GetBulk in v1: not for an agent
    answer = _response(version, community, pdu, 0, 0, bindings)
    if len(answer) > MAX_RESPONSE:
        return _response(version, community, pdu, 1, 0, [])  # tooBig, with no bindings
    return answer


def _oid_list(oids: list[tuple[int, ...]] | None) -> list[str]:
    return [oid_text(oid) for oid in (oids or [])[:MAX_REPORTED_OIDS]]


def _community_request(
    data: bytes,
    items: list[Item],
    version: int,
    info: ConnectionInfo,
    report: Report,
    now: float,
    communities: tuple[str, ...],
) -> bytes | None:
    if len(items) != 3:
        raise BerError("not a community message")
    community = expect(data, items[1], OCTET_STRING)
    pdu = parse_pdu(data, items[2])
    name = excerpt(community[:64])
    label = VERSIONS.get(version, str(version))
    oids = _oid_list(pdu.oids)
    accepted = community.decode("latin-1") in communities
    extra = (
        {"values": [excerpt(v[:128]) for v in (pdu.values or [])[:MAX_REPORTED_OIDS]]}
        if pdu.tag == SET
        else {}
    )
    report(
        Kind.REQUEST,
        f"{label} {name} {PDU_NAMES[pdu.tag]} {' '.join(oids[:4])}".rstrip(),
        {
            "version": label,
            "community": name,
            "accepted": accepted,
            "pdu": PDU_NAMES[pdu.tag],
            "oids": oids,
            "request_id": pdu.request_id,
            **extra,
        },
    )
    if not accepted:
        report(Kind.LOGIN, f":{name}", {"user": "", "password": name, "accepted": False, "version": label})
        return None
    agent = agent_for(info)
    seconds = info.identity.uptime(now)  # the TCP timestamp clock and a shell's `uptime` agree
    return _answer_pdu(version, community, pdu, system_group(agent, seconds), community == b"private")


def _v3(data: bytes, items: list[Item], info: ConnectionInfo, report: Report, now: float) -> bytes | None:
    """SNMPv3: report it; answer the USM discovery like the agent would, never more."""
    if len(items) != 4:
        raise BerError("not an SNMPv3 message")
    header = read_items(data, items[1].start, items[1].end) if items[1].tag == SEQUENCE else []
    if len(header) != 4:
        raise BerError("bad msgGlobalData")
    message_id = decode_int(expect(data, header[0], INTEGER))
    flags_raw = expect(data, header[2], OCTET_STRING)
    flags = flags_raw[0] if flags_raw else 0
    model = decode_int(expect(data, header[3], INTEGER))
    security = expect(data, items[2], OCTET_STRING)
    engine_id, user = b"", b""
    if model == 3 and security:
        usm = read_tlv(security, 0, len(security))
        fields = read_items(security, usm.start, usm.end) if usm.tag == SEQUENCE else []
        if len(fields) != 6:
            raise BerError("bad USM parameters")
        engine_id = expect(security, fields[0], OCTET_STRING)
        user = expect(security, fields[3], OCTET_STRING)
    pdu, kind = Pdu(REPORT), "encrypted"
    if items[3].tag == SEQUENCE:  # plaintext scoped PDU (an encrypted one is an OCTET STRING)
        scoped = read_items(data, items[3].start, items[3].end)
        if len(scoped) != 3:
            raise BerError("bad scoped PDU")
        pdu = parse_pdu(data, scoped[2])
        kind = PDU_NAMES[pdu.tag]
    name = excerpt(user[:64])
    oids = _oid_list(pdu.oids)
    report(
        Kind.REQUEST,
        f"v3 {name or '-'} {kind} {' '.join(oids[:4])}".rstrip(),
        {
            "version": "v3",
            "user": name,
            "engine_id": engine_id[:64].hex(),
            "flags": flags,
            "pdu": kind,
            "oids": oids,
        },
    )
    agent = agent_for(info)
    if user:
        login = {
            "user": name,
            "password": None,
            "accepted": False,
            "engine_id": engine_id[:64].hex(),
            "auth": bool(flags & 1),
            "privacy": bool(flags & 2),
        }
        if flags & 1 and agent.engine_id is not None and engine_id == agent.engine_id:
            # An authenticated request to our engine: the HMAC in it can be attacked offline.
            login["datagram"] = data[:MAX_RESPONSE].hex()
        report(Kind.LOGIN, f"{name}:", login)
    if agent.engine_id is None or not flags & 4:
        return None  # no SNMPv3 in this agent, or no report wanted
    seconds, boots = info.identity.uptime(now), info.identity.boots
    counter_oid = USM_UNKNOWN_ENGINE_IDS if engine_id != agent.engine_id else USM_UNKNOWN_USER_NAMES
    count = 1 + int(seconds // 3600) % 100_000
    usm_out = tlv(
        SEQUENCE,
        tlv(OCTET_STRING, agent.engine_id)
        + encode_int(boots)
        + encode_int(int(seconds))
        + tlv(OCTET_STRING, user)
        + tlv(OCTET_STRING, b"") * 2,
    )
    binding = tlv(SEQUENCE, encode_oid(counter_oid) + encode_int(count, COUNTER32))
    report_pdu = tlv(
        REPORT, encode_int(pdu.request_id) + encode_int(0) + encode_int(0) + tlv(SEQUENCE, binding)
    )
    scoped_out = tlv(SEQUENCE, tlv(OCTET_STRING, agent.engine_id) + tlv(OCTET_STRING, b"") + report_pdu)
    header_out = tlv(
        SEQUENCE, encode_int(message_id) + encode_int(65507) + tlv(OCTET_STRING, b"\x00") + encode_int(3)
    )
    return tlv(SEQUENCE, encode_int(3) + header_out + tlv(OCTET_STRING, usm_out) + scoped_out)


def respond(
    datagram: bytes,
    info: ConnectionInfo,
    report: Report,
    now: float,
    communities: tuple[str, ...] = COMMUNITIES,
) -> bytes | None:
    """The agent's answer to one datagram at time `now` (None: silence). Never raises on input."""
    try:
        items = _message(datagram)
        version = decode_int(expect(datagram, items[0], INTEGER))
        if version == 3:
            return _v3(datagram, items, info, report, now)
        if version not in (0, 1):
            report(Kind.REQUEST, f"version {version}", {"version": str(version)})
            return None
        return _community_request(datagram, items, version, info, report, now, communities)
    except BerError as exc:
        report(Kind.BAD_REQUEST, str(exc), {"bytes": len(datagram), "excerpt": excerpt(datagram[:128])})
        return None


def make_agent(
    clock: Callable[[], float] = time.time, communities: tuple[str, ...] = COMMUNITIES
) -> DatagramService:
    """The SNMP service; `clock` gives the time sysUpTime is counted at (injectable for tests)."""

    def answer(datagram: bytes, info: ConnectionInfo, report: Report) -> bytes | None:
        try:
            return respond(datagram, info, report, clock(), communities)
        except Exception:  # a bug, not bad input: say so, and stay silent like a busy agent
            log.exception("snmp: answering %s -> %s failed", info.src, info.dst)
            return None

    return answer


answer = make_agent()
SERVICES = (Service(("snmp",), "udp", answer),)
