"""Events out of the sensor: every touch of a virtual host becomes one, with what we know of its source.

The `Observer` turns what the stack reports (probes, pings, datagrams, ICMP) and what
services report into `eventlog.Event` records for the event writer. It also remembers, per
source, the OS p0f guessed from its SYN and whether it ran nmap's OS detection, and stamps
both on the source's events. Both memories are bounded (oldest first out).

Noise - what one packet outside any connection makes - is folded (`storage.NoiseFolder`): a
row at once for the first touch of a target in a window, one more for the window's repeats
when it ends. Every event passes the storage guard (`storage.StorageGuard`), which past the
database budget drops payloads and noise, counting them.
"""

from __future__ import annotations

import asyncio
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
from dynapot.sensor.storage import NoiseFolder, NoiseKey, StorageGuard, iso
from dynapot.services.contract import Report

SOURCE_MEMORY = 65536  # sources whose OS guess and scan tool we remember
NMAP_MEMORY = 300.0  # seconds a source stays "an nmap OS scan" after its last OS probe
EXCERPT = 256  # bytes of a datagram kept in its event
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
# Plain strings for the per-connection kinds: read faster than enum members, and pickled to the
# event writer as they are.
_CONNECT, _PROBE = Kind.CONNECT.value, Kind.PROBE.value
_ECHO, _ICMP, _DATAGRAM = Kind.ECHO.value, Kind.ICMP.value, Kind.DATAGRAM.value
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

    def __init__(
        self, events: EventWriter, p0f: P0fMatcher | None = None, guard: StorageGuard | None = None
    ) -> None:
        self.events = events
        self.p0f = p0f
        self.source_os: OrderedDict[int, str] = OrderedDict()
        self.nmap_sources: OrderedDict[int, float] = OrderedDict()
        self.guard = guard = guard or StorageGuard()
        settings = guard.settings
        self.noise = NoiseFolder(
            self._repeats,
            window=settings.noise_window,
            per_source=settings.noise_targets,
            rows=settings.noise_rows,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ running

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand out the repeats of each noise window when it ends, on `loop`."""
        self._loop = loop

    def stop(self) -> None:
        """Hand out the repeats counted so far (the sensor stops)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._loop = None
        self.noise.flush()

    def _arm_flush(self) -> None:
        if self._loop is not None and self._flusher is None:
            wall = time.time()
            delay = self.noise.boundary(wall) - wall + 0.01
            self._flusher = self._loop.call_later(delay, self._on_flush)

    def _on_flush(self) -> None:
        self._flusher = None
        self.noise.expire(time.time())
        if self.noise.pending:
            self._arm_flush()

    def storage_health(self) -> dict[str, object]:
        """The storage guard's budgets and counters, and how much noise was folded."""
        health = self.guard.health()
        health["noise folded"] = self.noise.folded
        if self.noise.early:
            health["noise windows sent early"] = self.noise.early
        return health

    def storage_news(self, news: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Budgets newly reached (`StorageGuard.update`): recorded as the sensor's news."""
        for _store, detail, data in news:
            event = Event.news(Kind.STORAGE_FULL, detail)
            event.data = data
            self.events.submit(event)

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
        at: float | None = None,
    ) -> Event:
        guard = self.guard
        if guard.level:  # past the database budget: payloads dropped, or nothing stored but counted
            stored, detail, data = guard.admit(kind, detail, data)
        else:
            stored = True
        event = Event(
            time.time() if at is None else at,
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
        if stored:
            self.events.submit(event)
        return event

    def _noise(
        self,
        kind: str,
        proto: str,
        src: int,
        sport: int | None,
        dst: int,
        dport: int | None,
        detail: str | None,
    ) -> bool:
        """True: this packet makes a row now; False: it is counted (a repeat, or past the budget)."""
        if self.guard.level:
            self.guard.counters["noise not stored"] += 1
            return False
        if self.noise.admit((kind, proto, src, dst, dport, detail), sport, time.time()):
            return True
        self._arm_flush()
        return False

    def _repeats(self, key: NoiseKey, count: int, first: float, last: float, sport: int | None) -> None:
        """One row for a window's repeats: how many, over which span."""
        kind, proto, src, dst, dport, detail = key
        if self.guard.level:
            self.guard.counters["noise not stored"] += count
            return
        span = last - first
        if dst == 0:
            what = "from many sources" if src == 0 else "to other targets"
            text = f"{detail or kind}: {count} {what} in {span:.1f} s (not itemised)"
            sport = None
        else:
            text = f"{detail or kind}: {count} more in {span:.1f} s"
        data = {"count": count, "first": iso(first), "last": iso(last)}
        self.event(proto, src, sport, dst, dport, kind, text, time.monotonic(), data=data, at=last)  # type: ignore[arg-type]

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
            if self._noise(_PROBE, "tcp", p.peer_ip, p.peer_port, p.local_ip, p.local_port, detail):
                self.event("tcp", p.peer_ip, p.peer_port, p.local_ip, p.local_port, _PROBE, detail, now)

    def echo(self, echo: EchoRequest, now: float) -> None:
        detail = f"8(0): {'replied' if echo.replied else 'ignored'}"
        if self._noise(_ECHO, "icmp", echo.peer_ip, None, echo.local_ip, None, detail):
            self.event("icmp", echo.peer_ip, None, echo.local_ip, None, Kind.ECHO, detail, now)

    def icmp(self, message: IcmpReceived, now: float) -> None:
        detail = f"{message.type}({message.code})"
        if self._noise(_ICMP, "icmp", message.peer_ip, None, message.local_ip, None, detail):
            self.event("icmp", message.peer_ip, None, message.local_ip, None, Kind.ICMP, detail, now)

    def datagram(self, datagram: DatagramReceived, now: float) -> None:
        d = datagram
        if self._noise(_DATAGRAM, "udp", d.peer_ip, d.peer_port, d.local_ip, d.local_port, "datagram"):
            data = {"excerpt": d.data[:EXCERPT].hex()}
            self.on_flow("udp", d, Kind.DATAGRAM, f"{len(d.data)} bytes", now, data)

    def udp_probe(self, probe: UdpProbe, now: float) -> None:
        p = probe
        if self._noise(_PROBE, "udp", p.peer_ip, p.peer_port, p.local_ip, p.local_port, p.verdict):
            self.on_flow("udp", p, Kind.PROBE, p.verdict, now)

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
