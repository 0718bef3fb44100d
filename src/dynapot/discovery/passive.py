"""Passive discovery: learn hosts, operating systems, services and names from frames on the wire.

`PassiveObserver` is sans-IO: `feed(frame, ts)` takes one Ethernet frame (or `feed_ip` an
IP datagram from a link type without Ethernet; `feed_capture` every packet a pcap reader
gives), and `observations(now)` drains what changed since the last call as `Observation`s
for `inventory.record_observations`. Nothing here opens a socket or a file; `dynapot watch`
and `dynapot fingerprint` do the IO.

What is learned, and under which tool name:

- ``arp``: every ARP request or reply marks its sender address (not 0.0.0.0, which ARP
  probes use) as used now, with the sender's MAC: the "never steal an address" evidence.
- ``p0f``: a SYN gives the client's OS, a SYN+ACK the server's (with the SYN's MSS when
  the SYN was seen, as p0f does). The accuracy given to the inventory is fixed per match
  kind: exact 90, fuzzy 70, generic 50 — below nmap's usual 85-100 for a good OS match,
  so that with the default fusion rule a confident nmap answer wins. A packet with no
  match, or one matched to a userland tool (p0f's ``!`` class, e.g. nmap's SYN probe),
  gives no OS guess: unknown stays unknown.
- ``passive``: a SYN+ACK from addr:port is an open TCP service; the first bytes the server
  sends on that flow give a banner (SSH identification, FTP/SMTP 220 greeting, HTTP
  ``Server:`` header). Host names come from DHCP requests (option 12), mDNS responses
  (A records) and NetBIOS name service registrations/answers (NB records).

Bounded memory: hosts, flows, ports per host and pending names are capped; the oldest
entries go first (LRU). A host evicted before its changes were drained loses them — drain
about once a second (as `dynapot watch` does) and this only happens under a flood.

Malformed input never raises: each rejected packet is counted in `malformed` by reason.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dynapot.discovery.observation import Observation, OsGuess, PortObservation
from dynapot.discovery.p0f import P0fMatch, P0fMatcher, guess_distance
from dynapot.discovery.pcap import LINKTYPE_ETHERNET, PcapReader
from dynapot.netstack.packets import Malformed, parse_arp, parse_ethernet, parse_ipv4, parse_tcp, parse_udp
from dynapot.netstack.types import ETH_P_ARP, ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP, IPv4, TcpSegment

__all__ = [
    "MATCH_ACCURACY",
    "HostSummary",
    "PassiveObserver",
    "os_guess_from_match",
    "p0f_os_guess",
    "parse_banner",
]

#: Accuracy (percent) handed to the inventory per p0f match kind; see the module docstring.
MATCH_ACCURACY: dict[str, int] = {"exact": 90, "fuzzy": 70, "generic": 50}

_VENDORS = {
    "Windows": "Microsoft",
    "Mac OS X": "Apple",
    "iOS": "Apple",
    "Solaris": "Oracle",
    "HP-UX": "HP",
    "AIX": "IBM",
}

# Port numbers only name a service when no banner did (nmap's names for the same ports).
_PORT_NAMES = {
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    53: "domain",
    80: "http",
    110: "pop3",
    139: "netbios-ssn",
    143: "imap",
    443: "https",
    445: "microsoft-ds",
    465: "smtps",
    587: "submission",
    993: "imaps",
    995: "pop3s",
    3306: "mysql",
    3389: "ms-wbt-server",
    5432: "postgresql",
    8080: "http-proxy",
}
_SMTP_PORTS = frozenset((25, 465, 587))

_SYN, _ACK, _RST, _FIN = 0x02, 0x10, 0x04, 0x01
_BANNER_MAX = 2048  # server bytes kept per flow while waiting for a complete banner
_FLOW_TIMEOUT = 30.0  # seconds a flow may wait for its SYN+ACK or its banner (p0f's -t)


def p0f_os_guess(name: str, flavor: str, kind: str) -> OsGuess:
    """The inventory's OsGuess for a p0f verdict: the label's OS name and flavor, the match kind."""
    return OsGuess(
        name=f"{name} {flavor}" if flavor else name,  # as p0f prints it after os=
        accuracy=MATCH_ACCURACY[kind],
        vendor=_VENDORS.get(name),
        family=name or None,  # "s:win:Windows:7 or 8" -> family "Windows"
        generation=flavor or None,  # ... generation "7 or 8"
    )


def os_guess_from_match(match: P0fMatch | None) -> OsGuess | None:
    """The inventory's OsGuess for a p0f match; None for no match or a userland tool."""
    if match is None or match.is_userland:
        return None
    return p0f_os_guess(match.name, match.flavor, match.kind)


# --------------------------------------------------------------------------- banners


@dataclass(frozen=True, slots=True)
class Banner:
    service: str
    product: str | None = None
    version: str | None = None
    extra_info: str | None = None


_SSH_RE = re.compile(rb"^SSH-(\d+\.\d+)-([^\s\r\n]+)(?:[ \t]+([^\r\n]*))?\r?\n")
# Only a complete header line counts: "Server: nginx/1.22" may continue in the next segment.
_SERVER_RE = re.compile(rb"^Server:[ \t]*([^\r\n]*)\r?\n", re.IGNORECASE | re.MULTILINE)
_PRODUCT_VERSION_RE = re.compile(r"([A-Za-z][\w.+-]*?)[ /_]v?(\d[\w.+-]*)")
_KNOWN_PRODUCTS = (
    "vsFTPd",
    "ProFTPD",
    "Pure-FTPd",
    "FileZilla Server",
    "Microsoft FTP Service",
    "Postfix",
    "Exim",
    "Sendmail",
    "Microsoft ESMTP MAIL Service",
    "OpenSMTPD",
)


def _product_in(text: str) -> tuple[str | None, str | None]:
    """A known product name in a greeting line, with the version right after it if any."""
    lowered = text.lower()
    for product in _KNOWN_PRODUCTS:
        at = lowered.find(product.lower())
        if at >= 0:
            m = re.match(r"[ /]v?(\d[\w.+-]*)", text[at + len(product) :])
            return product, m.group(1) if m else None
    return None, None


def _http_server(value: str) -> tuple[str | None, str | None, str | None]:
    """'Apache/2.4.57 (Debian)' -> ('Apache', '2.4.57', 'Debian'); 'SimpleHTTP/0.6 Python/3.11'."""
    value = value.strip()
    if not value:
        return None, None, None
    head, _, rest = value.partition(" ")
    product, _, version = head.partition("/")
    extra = rest.strip().strip("()") or None
    return product or None, version or None, extra


def parse_banner(data: bytes, port: int) -> Banner | bool | None:
    """What the first server bytes of a flow say.

    Returns a `Banner`, None when the bytes are complete but unrecognised, or False when
    more bytes are needed (a greeting line or the HTTP header block is not complete yet).
    """
    if data.startswith(b"SSH-"):
        m = _SSH_RE.match(data)
        if m is None:
            return False if b"\n" not in data else None
        software = m.group(2).decode("ascii", "replace")
        product, _, version = software.partition("_")  # "OpenSSH_9.2p1" -> OpenSSH, 9.2p1
        comment = m.group(3).decode("ascii", "replace").strip() if m.group(3) else None
        return Banner("ssh", product, version or None, comment or None)
    if data.startswith(b"HTTP/"):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        head = data if end < 0 else data[:end] + b"\n"  # the last header line, terminated
        m = _SERVER_RE.search(head)
        if m is None and end < 0:
            return False
        product, version, extra = _http_server(m.group(1).decode("latin-1")) if m else (None, None, None)
        return Banner("https" if port == 443 else "http", product, version, extra)
    if data[:3] in (b"220", b"421"):
        nl = data.find(b"\n")
        if nl < 0:
            return False
        line = data[:nl].decode("latin-1").strip()
        upper = line.upper()
        if "SMTP" in upper or port in _SMTP_PORTS:
            service = "smtp"
        elif "FTP" in upper or port == 21:
            service = "ftp"
        else:
            return None
        product, version = _product_in(line)
        if product is None:
            m = _PRODUCT_VERSION_RE.search(line[4:])
            if m is not None:
                product, version = m.group(1), m.group(2)
        return Banner(service, product, version)
    if b"\n" in data or len(data) >= _BANNER_MAX:
        return None
    return False


# --------------------------------------------------------------------------- names (DHCP, mDNS, NBNS)


_DHCP_MAGIC = b"\x63\x82\x53\x63"
_DNS_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class _BadName(ValueError):
    pass


def _dns_name(msg: bytes, pos: int) -> tuple[str, int]:
    """Read a (possibly compressed) DNS name at `pos`; returns the name and the offset after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if pos >= len(msg):
            raise _BadName("name runs past the message")
        length = msg[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise _BadName("truncated pointer")
            jumps += 1
            if jumps > 16:  # a pointer loop
                raise _BadName("pointer loop")
            if end < 0:
                end = pos + 2
            pos = (length & 0x3F) << 8 | msg[pos + 1]
            continue
        if length & 0xC0:
            raise _BadName("bad label type")
        label = msg[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise _BadName("truncated label")
        labels.append(label.decode("latin-1"))
        pos += 1 + length
    return ".".join(labels), (end if end >= 0 else pos)


def _dns_records(msg: bytes) -> Iterable[tuple[str, int, bytes]]:
    """(name, type, rdata) of every answer, authority and additional record; raises on damage."""
    if len(msg) < 12:
        raise _BadName("truncated header")
    _, _, qd, an, ns, ar = _DNS_HEADER.unpack_from(msg)
    pos = 12
    for _ in range(qd):
        _, pos = _dns_name(msg, pos)
        pos += 4
    for _ in range(an + ns + ar):
        name, pos = _dns_name(msg, pos)
        if pos + 10 > len(msg):
            raise _BadName("truncated record")
        rtype, _, _, rdlen = _RR.unpack_from(msg, pos)
        pos += 10
        rdata = msg[pos : pos + rdlen]
        if len(rdata) != rdlen:
            raise _BadName("truncated rdata")
        pos += rdlen
        yield name, rtype, rdata


def _netbios_name(encoded: str) -> tuple[str, int] | None:
    """Decode NetBIOS first-level encoding ('EOGFHEECEJEMEF...') -> (name, suffix byte)."""
    label = encoded.split(".", 1)[0]
    if len(label) != 32:
        return None
    raw = bytes(((ord(label[i]) - 0x41) << 4) | (ord(label[i + 1]) - 0x41) for i in range(0, 32, 2))
    return raw[:15].decode("latin-1").rstrip(" "), raw[15]


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class HostSummary:
    """What the observer knows of one address (for `dynapot fingerprint`)."""

    ip: str
    mac: str | None = None
    os: OsGuess | None = None
    match: str | None = None  # p0f's match kind: exact | fuzzy | generic
    distance: int | None = None
    hostname: str | None = None
    ports: dict[tuple[str, int], PortObservation] = field(default_factory=dict)


@dataclass(slots=True)
class _Host:
    summary: HostSummary
    last_seen: float = 0.0
    dirty: set[str] = field(default_factory=set)  # tools with news since the last drain


class _Flow:
    __slots__ = ("banner", "created", "next_seq", "syn_mss")

    def __init__(self, created: float, syn_mss: int) -> None:
        self.created = created
        self.syn_mss = syn_mss
        self.next_seq = -1  # the server's next sequence number, once its SYN+ACK was seen
        self.banner = b""


def _mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _ip_str(addr: int) -> str:
    return str(ipaddress.IPv4Address(addr))


class PassiveObserver:
    """Turn frames into observations; see the module docstring for what is learned.

    `max_hosts`, `max_flows`, `max_ports` (per host) and `max_pending_names` bound memory.
    """

    def __init__(
        self,
        matcher: P0fMatcher | None,
        *,
        max_hosts: int = 65536,
        max_flows: int = 4096,
        max_ports: int = 256,
        max_pending_names: int = 1024,
        flow_timeout: float = _FLOW_TIMEOUT,
    ) -> None:
        self.matcher = matcher
        self.max_hosts = max_hosts
        self.max_flows = max_flows
        self.max_ports = max_ports
        self.max_pending_names = max_pending_names
        self.flow_timeout = flow_timeout
        self.malformed: Counter[str] = Counter()
        self.frames = 0
        self._hosts: OrderedDict[int, _Host] = OrderedDict()
        # (client ip, client port, server ip, server port) -> flow; insertion order = age.
        self._flows: OrderedDict[tuple[int, int, int, int], _Flow] = OrderedDict()
        # DHCP host names of clients with no address yet, by MAC, until an ARP gives the address.
        self._pending_names: OrderedDict[bytes, str] = OrderedDict()
        self._last_ts = 0.0

    # -- input ---------------------------------------------------------------------------

    def feed(self, frame: bytes, ts: float, checksums_ok: bool = True) -> None:
        """One Ethernet frame captured at `ts` (epoch seconds).

        `checksums_ok=False` (unfinished checksums from offload, or a capture file taken on a
        sending host) skips the TCP/UDP checksum checks. Never raises.
        """
        self.frames += 1
        self._last_ts = ts
        try:
            eth = parse_ethernet(frame)
            if type(eth) is Malformed:
                self._bad(eth)
                return
            if eth.ethertype == ETH_P_ARP:
                self._arp(eth.payload, ts)
            elif eth.ethertype == ETH_P_IP:
                self._ip(eth.payload, ts, checksums_ok, eth.src)
        except Exception as exc:  # hostile input must never stop the capture loop
            self.malformed[f"internal: {type(exc).__name__}"] += 1

    def feed_ip(self, datagram: bytes, ts: float, checksums_ok: bool = True) -> None:
        """One IP datagram from a link type without Ethernet (no ARP, no MACs). Never raises."""
        self.frames += 1
        self._last_ts = ts
        try:
            if datagram and datagram[0] >> 4 == 4:
                self._ip(datagram, ts, checksums_ok, None)
        except Exception as exc:
            self.malformed[f"internal: {type(exc).__name__}"] += 1

    def feed_capture(self, reader: PcapReader) -> None:
        """Every packet of a capture file (`dynapot fingerprint --pcap`), in file order.

        Captures are often taken on a sending host, before checksum offload fills the
        checksums in: like p0f, TCP/UDP checksums are not verified here. A damaged tail ends
        the feed; `reader.error` says why.
        """
        if reader.linktype == LINKTYPE_ETHERNET:
            for pkt in reader:
                self.feed(bytes(pkt.data), pkt.ts, checksums_ok=False)
        else:
            for pkt, ip in reader.ip_packets():
                self.feed_ip(bytes(ip), pkt.ts, checksums_ok=False)

    def _bad(self, why: Malformed | str) -> None:
        self.malformed[str(why)] += 1

    def _host(self, addr: int, ts: float) -> _Host:
        hosts = self._hosts
        host = hosts.get(addr)
        if host is None:
            if len(hosts) >= self.max_hosts:
                hosts.popitem(last=False)  # LRU: the least recently seen address goes
            host = hosts[addr] = _Host(HostSummary(_ip_str(addr)))
        else:
            hosts.move_to_end(addr)
        if ts > host.last_seen:
            host.last_seen = ts
        return host

    def _arp(self, payload: bytes, ts: float) -> None:
        arp = parse_arp(payload)
        if type(arp) is Malformed:
            self._bad(arp)
            return
        if arp.sender_ip == 0:
            return  # an ARP probe (RFC 5227) claims nothing yet
        host = self._host(arp.sender_ip, ts)
        host.summary.mac = _mac_str(arp.sender_mac)
        host.dirty.add("arp")
        name = self._pending_names.pop(arp.sender_mac, None)
        if name is not None:
            self._set_name(host, name)

    def _ip(self, payload: bytes, ts: float, checksums_ok: bool, src_mac: bytes | None) -> None:
        ip = parse_ipv4(payload)  # the kernel always finishes IP header checksums
        if type(ip) is Malformed:
            self._bad(ip)
            return
        if ip.proto == IPPROTO_TCP:
            seg = parse_tcp(ip, checksums_ok)
            if type(seg) is Malformed:
                self._bad(seg)
                return
            self._tcp(seg, ts, src_mac)
        elif ip.proto == IPPROTO_UDP:
            dgram = parse_udp(ip, checksums_ok)
            if type(dgram) is Malformed:
                self._bad(dgram)
                return
            if dgram.dport == 67 and dgram.sport == 68:
                self._dhcp(dgram.payload, ts)
            elif dgram.sport == 5353:
                self._mdns(dgram.payload, ts)
            elif dgram.sport == 137 or dgram.dport == 137:
                self._nbns(dgram.payload, ts)

    def _local_mac(self, host: _Host, ip: IPv4, src_mac: bytes | None) -> None:
        # A frame's source MAC is the sender's own only if no router forwarded it: an
        # untouched initial TTL (64, 128, 255...) says so. ARP's MAC always wins.
        if src_mac is not None and host.summary.mac is None and guess_distance(ip.ttl) == 0:
            host.summary.mac = _mac_str(src_mac)

    # -- TCP: p0f and services ------------------------------------------------------------

    def _tcp(self, seg: TcpSegment, ts: float, src_mac: bytes | None) -> None:
        flags = seg.flags & (_SYN | _ACK | _RST | _FIN)
        ip = seg.ip
        if flags == _SYN:
            key = (ip.src, seg.sport, ip.dst, seg.dport)
            mss = seg.options.mss or 0
            self._new_flow(key, _Flow(ts, mss))
            host = self._host(ip.src, ts)
            self._local_mac(host, ip, src_mac)
            self._os(host, self.matcher.match_segment(seg) if self.matcher else None)
        elif flags == _SYN | _ACK:
            key = (ip.dst, seg.dport, ip.src, seg.sport)
            flow = self._flows.get(key)
            if flow is None:
                flow = self._new_flow(key, _Flow(ts, 0))  # the SYN was not seen (or not captured)
            flow.next_seq = (seg.seq + 1) & 0xFFFFFFFF
            host = self._host(ip.src, ts)
            self._local_mac(host, ip, src_mac)
            self._os(host, self.matcher.match_segment(seg, flow.syn_mss) if self.matcher else None)
            self._port(host, seg.sport, None)
        elif seg.payload:
            key = (ip.dst, seg.dport, ip.src, seg.sport)
            flow = self._flows.get(key)
            if flow is None or flow.next_seq < 0 or seg.seq != flow.next_seq:
                return  # not a server's next in-order bytes of a flow we track
            flow.banner += seg.payload[: _BANNER_MAX - len(flow.banner)]
            flow.next_seq = (flow.next_seq + len(seg.payload)) & 0xFFFFFFFF
            verdict = parse_banner(flow.banner, seg.sport)
            if verdict is False and len(flow.banner) < _BANNER_MAX:
                return
            del self._flows[key]
            if isinstance(verdict, Banner):
                self._port(self._host(ip.src, ts), seg.sport, verdict)
        if flags & (_RST | _FIN):
            self._flows.pop((ip.src, seg.sport, ip.dst, seg.dport), None)
            self._flows.pop((ip.dst, seg.dport, ip.src, seg.sport), None)

    def _new_flow(self, key: tuple[int, int, int, int], flow: _Flow) -> _Flow:
        flows = self._flows
        flows.pop(key, None)
        if len(flows) >= self.max_flows:
            flows.popitem(last=False)
        flows[key] = flow
        return flow

    def _os(self, host: _Host, match: P0fMatch | None) -> None:
        guess = os_guess_from_match(match)
        if guess is None or match is None:
            return
        summary = host.summary
        # A less certain match does not replace a more certain one of the same host.
        if summary.os is not None and guess.accuracy < summary.os.accuracy:
            return
        if summary.os != guess:
            host.dirty.add("p0f")
        summary.os, summary.match, summary.distance = guess, match.kind, match.distance

    def _port(self, host: _Host, port: int, banner: Banner | None) -> None:
        ports = host.summary.ports
        key = ("tcp", port)
        old = ports.get(key)
        if banner is None:
            if old is not None:
                return  # a later SYN+ACK adds nothing to what the banner said
            new = PortObservation("tcp", port, "open", _PORT_NAMES.get(port))
        else:
            new = PortObservation(
                "tcp", port, "open", banner.service, banner.product, banner.version, banner.extra_info
            )
        if old == new:
            return
        if old is None and len(ports) >= self.max_ports:
            return  # a host answering on everything (a scan target with SYN cookies...) is capped
        ports[key] = new
        host.dirty.add("passive")

    # -- UDP: names ---------------------------------------------------------------------

    def _set_name(self, host: _Host, name: str) -> None:
        name = name.rstrip(".")
        if name and host.summary.hostname != name:
            host.summary.hostname = name
            host.dirty.add("passive")

    def _dhcp(self, msg: bytes, ts: float) -> None:
        if len(msg) < 240 or msg[236:240] != _DHCP_MAGIC:
            self._bad("dhcp: truncated or no magic cookie")
            return
        if msg[0] != 1:  # BOOTREQUEST only: the client names itself
            return
        ciaddr = int.from_bytes(msg[12:16], "big")
        chaddr = bytes(msg[28:34])
        hostname: str | None = None
        requested = 0
        pos = 240
        while pos < len(msg):
            code = msg[pos]
            if code == 255:
                break
            if code == 0:
                pos += 1
                continue
            if pos + 1 >= len(msg) or pos + 2 + msg[pos + 1] > len(msg):
                self._bad("dhcp: truncated option")
                return
            value = msg[pos + 2 : pos + 2 + msg[pos + 1]]
            if code == 12 and value:
                hostname = value.decode("latin-1").strip("\x00 ")
            elif code == 50 and len(value) == 4:
                requested = int.from_bytes(value, "big")
            pos += 2 + msg[pos + 1]
        if not hostname:
            return
        addr = ciaddr or requested
        if addr:
            host = self._host(addr, ts)
            if host.summary.mac is None:
                host.summary.mac = _mac_str(chaddr)
            self._set_name(host, hostname)
        else:
            pending = self._pending_names
            pending.pop(chaddr, None)
            if len(pending) >= self.max_pending_names:
                pending.popitem(last=False)
            pending[chaddr] = hostname

    def _mdns(self, msg: bytes, ts: float) -> None:
        if len(msg) < 12 or not msg[2] & 0x80:
            return  # queries name nobody
        try:
            records = list(_dns_records(msg))
        except _BadName as exc:
            self._bad(f"mdns: {exc}")
            return
        for name, rtype, rdata in records:
            if rtype == 1 and len(rdata) == 4 and name:
                self._set_name(self._host(int.from_bytes(rdata, "big"), ts), name)

    def _nbns(self, msg: bytes, ts: float) -> None:
        if len(msg) < 12:
            self._bad("nbns: truncated header")
            return
        opcode = (msg[2] >> 3) & 0x0F
        is_response = bool(msg[2] & 0x80)
        # Registrations (5), refreshes (8, 9) and positive query answers name an address.
        if not (opcode in (5, 8, 9) or (opcode == 0 and is_response)):
            return
        try:
            records = list(_dns_records(msg))
        except _BadName as exc:
            self._bad(f"nbns: {exc}")
            return
        for name, rtype, rdata in records:
            decoded = _netbios_name(name)
            # Type NB (0x20); suffix 0x00 is the workstation name, the one worth keeping.
            if rtype != 0x20 or decoded is None or decoded[1] != 0 or len(rdata) < 6:
                continue
            for off in range(0, len(rdata) - 5, 6):
                addr = int.from_bytes(rdata[off + 2 : off + 6], "big")
                if addr:
                    self._set_name(self._host(addr, ts), decoded[0])

    # -- output -------------------------------------------------------------------------

    def hosts(self) -> list[HostSummary]:
        """Every address known, in address order."""
        return [self._hosts[addr].summary for addr in sorted(self._hosts)]

    def observations(self, now: float | None = None) -> list[Observation]:
        """Drain what changed since the last call; flows older than the flow timeout expire.

        One observation per host and tool with news: ``arp`` (liveness and MAC), ``p0f``
        (the OS guess), ``passive`` (every open port known, since the inventory replaces a
        tool's ports with its latest list, and the host name).
        """
        now = self._last_ts if now is None else now
        cutoff = now - self.flow_timeout
        flows = self._flows
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.created >= cutoff:
                break
            del flows[key]
        result: list[Observation] = []
        for host in self._hosts.values():
            if not host.dirty:
                continue
            s = host.summary
            seen = datetime.fromtimestamp(host.last_seen, UTC)
            for tool in sorted(host.dirty):
                if tool == "arp":
                    result.append(Observation(s.ip, seen, "arp", mac=s.mac))
                elif tool == "p0f":
                    result.append(Observation(s.ip, seen, "p0f", mac=s.mac, os=s.os))
                else:
                    ports = tuple(s.ports[k] for k in sorted(s.ports))
                    result.append(
                        Observation(s.ip, seen, "passive", mac=s.mac, hostname=s.hostname, ports=ports)
                    )
            host.dirty.clear()
        return result

    @property
    def flow_count(self) -> int:
        return len(self._flows)
