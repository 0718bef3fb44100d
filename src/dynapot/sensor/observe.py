"""Events out of the sensor: every touch of a virtual host becomes one, with what we know of its source.

The `Observer` turns what the stack reports (probes, pings, datagrams, ICMP) and what
services report into `eventlog.Event` records for the event writer. It also remembers, per
source, the OS p0f guessed from its SYN and whether it ran nmap's OS detection, and stamps
both on the source's events. Both memories are bounded (oldest first out).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from dynapot.discovery.p0f import P0fMatcher
from dynapot.events import NMAP_OS_SCAN_TOOL, Kind
from dynapot.netstack.events import DatagramReceived, EchoRequest, IcmpReceived, TcpProbe, UdpProbe
from dynapot.netstack.packets import Malformed, parse_tcp
from dynapot.netstack.types import IPv4, TcpFlags
from dynapot.personality.nmap_probes import classify_syn, classify_t, is_ecn_probe
from dynapot.sensor.eventlog import Event, EventWriter
from dynapot.services.contract import Report

SOURCE_MEMORY = 65536  # sources whose OS guess and scan tool we remember
NMAP_MEMORY = 300.0  # seconds a source stays "an nmap OS scan" after its last OS probe
EXCERPT = 256  # bytes of a datagram kept in its event
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
# Plain strings for the per-connection kinds: read faster than enum members, and pickled to the
# event writer as they are.
_CONNECT, _PROBE = Kind.CONNECT.value, Kind.PROBE.value
_FLAG_LETTERS = "FSRPAUEC"
_FLAG_TEXT = tuple(
    "".join(letter for bit, letter in enumerate(_FLAG_LETTERS) if flags >> bit & 1) or "-"
    for flags in range(256)
)


class Flow(Protocol):
    """Anything naming one flow by its four ends: a connection, a probe, a datagram."""

    @property
    def peer_ip(self) -> int: ...
    @property
    def peer_port(self) -> int: ...
    @property
    def local_ip(self) -> int: ...
    @property
    def local_port(self) -> int: ...


def flag_letters(flags: int) -> str:
    """tcpdump-style flag letters; a table, since every probe event needs them."""
    return _FLAG_TEXT[flags & 0xFF]


class Observer:
    """Builds the sensor's events and submits them to the event writer."""

    def __init__(self, events: EventWriter, p0f: P0fMatcher | None = None) -> None:
        self.events = events
        self.p0f = p0f
        self.source_os: OrderedDict[int, str] = OrderedDict()
        self.nmap_sources: OrderedDict[int, float] = OrderedDict()

    def event(
        self,
        proto: str,
        src: int,
        sport: int | None,
        dst: int,
        dport: int | None,
        kind: Kind,
        detail: str | None,
        now: float,
        *,
        data: dict[str, Any] | None = None,
    ) -> Event:
        event = Event(
            time.time(),
            proto,
            src,
            sport,
            dst,
            dport,
            kind,
            detail,
            self.source_os.get(src),
            self.scan_tool(src, now),
            data,
        )
        self.events.submit(event)
        return event

    def on_flow(
        self,
        proto: str,
        flow: Flow,
        kind: Kind,
        detail: str | None,
        now: float,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """An event of one flow (a connection, a probe, a datagram): its four ends name it."""
        return self.event(
            proto, flow.peer_ip, flow.peer_port, flow.local_ip, flow.local_port, kind, detail, now, data=data
        )

    def reporter(self, proto: str, flow: Flow) -> Report:
        """What a service reports about one connection or datagram becomes that flow's events."""

        def report(kind: str, detail: str | None, data: dict | None) -> None:
            self.on_flow(proto, flow, kind, detail, time.monotonic(), data)  # type: ignore[arg-type]

        return report

    # ------------------------------------------------------------------ what the stack saw

    def probe(self, probe: TcpProbe, now: float) -> None:
        # One per connection attempt: the event call written out, the kinds as module constants.
        p = probe
        if p.verdict == "open":
            self.event("tcp", p.peer_ip, p.peer_port, p.local_ip, p.local_port, _CONNECT, None, now)
        else:
            detail = f"{flag_letters(p.flags)} {p.verdict}"
            self.event("tcp", p.peer_ip, p.peer_port, p.local_ip, p.local_port, _PROBE, detail, now)

    def echo(self, echo: EchoRequest, now: float) -> None:
        detail = f"8(0): {'replied' if echo.replied else 'ignored'}"
        self.event("icmp", echo.peer_ip, None, echo.local_ip, None, Kind.ECHO, detail, now)

    def icmp(self, message: IcmpReceived, now: float) -> None:
        detail = f"{message.type}({message.code})"
        self.event("icmp", message.peer_ip, None, message.local_ip, None, Kind.ICMP, detail, now)

    def datagram(self, datagram: DatagramReceived, now: float) -> None:
        data = {"excerpt": datagram.data[:EXCERPT].hex()}
        self.on_flow("udp", datagram, Kind.DATAGRAM, f"{len(datagram.data)} bytes", now, data)

    def udp_probe(self, probe: UdpProbe, now: float) -> None:
        self.on_flow("udp", probe, Kind.PROBE, probe.verdict, now)

    # ------------------------------------------------------------------ who the source is

    def inspect_syn(self, ip: IPv4, checksums_ok: bool, now: float) -> None:
        """Notice nmap's OS-detection probes, and guess the source's OS from its SYN (p0f)."""
        seg = parse_tcp(ip, checksums_ok)
        if type(seg) is Malformed:
            return
        if classify_syn(seg) is not None or is_ecn_probe(seg) or classify_t(seg) is not None:
            self._mark_nmap(ip.src, now)
            return  # nmap's probes are crafted: p0f would only name the tool
        if self.p0f is not None and ip.src not in self.source_os and seg.flags & (_SYN | _ACK) == _SYN:
            match = self.p0f.match_segment(seg)
            if match is not None:
                self.source_os[ip.src] = match.display
                if len(self.source_os) > SOURCE_MEMORY:
                    self.source_os.popitem(last=False)

    def scan_tool(self, src: int, now: float) -> str | None:
        seen = self.nmap_sources.get(src)
        return NMAP_OS_SCAN_TOOL if seen is not None and seen >= now - NMAP_MEMORY else None

    def _mark_nmap(self, src: int, now: float) -> None:
        first = src not in self.nmap_sources or self.nmap_sources[src] < now - NMAP_MEMORY
        self.nmap_sources[src] = now
        self.nmap_sources.move_to_end(src)
        if len(self.nmap_sources) > SOURCE_MEMORY:
            self.nmap_sources.popitem(last=False)
        if first:
            self.event("tcp", src, None, 0, None, Kind.OS_SCAN, "nmap OS detection probes", now)
