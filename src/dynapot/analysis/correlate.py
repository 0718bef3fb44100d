"""Attack correlation over honeypot events: scans, brute force and worms, incrementally.

A `Correlator` is fed events one at a time (`feed`, a few dictionary operations each) and
returns the findings an event creates or escalates. It keeps sliding-window state per
source, per (source, virtual host, service) and per port, all bounded: states idle for a
whole window are dropped, and each table is capped (oldest first out).

The rules, with thresholds from `CorrelationSettings`:

- **scan**: one source touches >= `scan.hosts` virtual hosts or >= `scan.ports` ports
  (tcp and udp counted apart) within the window. nmap's OS detection (`Kind.OS_SCAN`, or
  the scan_tool `NMAP_OS_SCAN_TOOL`, as the sensor writes them) is an attribute of the scan
  finding that raises its risk; alone it raises a scan finding too (`scan.os_scan_alone`).
- **brute-force**: >= `brute_force.logins` login events (`LOGIN_KINDS`) from one source to
  one service (virtual host and port) within the window. An accepted login escalates it.
- **worm**: one port hit on >= `worm.hosts` virtual hosts by >= `worm.sources` sources
  within the window, counting only worm-like sources: those sweeping (on at least
  `worm.min_hosts_per_source` hosts) and touching at most `worm.max_ports` ports. A
  scanner touching hundreds of ports is not a worm instance, so a few Internet scanners do
  not make every port a worm; nor are thirty visitors of one web page each.

"Exactly one finding per attack": a worm instance sweeping one port also touches many
hosts. If, when such a single-port source crosses the scan threshold, its port is already
a worm, the source is part of the worm finding and raises no scan of its own. (A source
that swept alone before the others came is a scan; nobody can know the future.)

A finding lives while its state does: further activity within the window updates it
(counts, targets) without a new finding, so a second identical scan within the window sends
nothing. Its `key` - kind, source(s) or port, and the window-sized time bucket in which it
began - is stable: the same events give the same keys, in the daemon or in a re-run over
the database, and `store_findings` (analysis.findings) upserts by it. This module holds the
rules only: reading stored events is analysis.stored's job, storing findings analysis.findings'.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from dynapot.analysis.findings import LIST_LIMIT, Finding, addresses, higher_risk
from dynapot.config import CorrelationSettings
from dynapot.events import LOGIN_KINDS, NMAP_OS_SCAN_TOOL, NO_FLOW_ADDRESS, NOISE_KINDS, Kind

SCAN, BRUTE_FORCE, WORM = "scan", "brute-force", "worm"
KINDS = (SCAN, BRUTE_FORCE, WORM)
# A plain str, not the enum member: `feed` compares every event's kind with it, and a
# StrEnum's == costs three times a str's.
OS_SCAN_KIND: str = Kind.OS_SCAN.value
OS_SCAN_TOOLS = frozenset({NMAP_OS_SCAN_TOOL})
# Noise rows may stand for many packets (the sensor folds repeats): their `count` says how many.
NOISE = frozenset(kind.value for kind in NOISE_KINDS)
# The sensor's own news (lost events, ARP conflicts) has no source; not an address to bind.
NO_ADDRESS = frozenset({NO_FLOW_ADDRESS, "", None})

# A port key is one int: the port plus the protocol in the bits above it (cheaper than a tuple).
_PROTO_BITS = {"tcp": 0, "udp": 1 << 16, "sctp": 2 << 16}
_PROTO_NAMES = {bits >> 16: name for name, bits in _PROTO_BITS.items()}

USER_LIMIT = 50  # user names kept per brute-force finding
FIELD_LIMIT = 64  # characters kept of an attacker-chosen user name
TOOL_LIMIT = 8


class EventLike(Protocol):
    """What the correlator reads of an event: HoneypotEvent rows and SQL result rows fit."""

    @property
    def id(self) -> int | None: ...
    @property
    def time(self) -> datetime | float: ...
    @property
    def protocol(self) -> str: ...
    @property
    def src_ip(self) -> str: ...
    @property
    def dst_ip(self) -> str: ...
    @property
    def dst_port(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def scan_tool(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class CorrelationEvent:
    """A plain event for the correlator (tests, the sensor's events before they are stored)."""

    time: float | datetime  # epoch seconds or an aware datetime
    src_ip: str
    dst_ip: str
    dst_port: int | None
    kind: str
    protocol: str = "tcp"
    scan_tool: str | None = None
    data: dict[str, Any] | None = None
    id: int | None = None
    detail: str | None = None  # not read by the rules; kept for whoever stores the event

    @classmethod
    def from_sensor(cls, event: Any, event_id: int | None = None) -> CorrelationEvent:
        """From a `dynapot.sensor.eventlog.Event` (integer addresses, epoch time)."""
        return cls(
            event.time,
            str(ipaddress.IPv4Address(event.src)),
            str(ipaddress.IPv4Address(event.dst)),
            event.dport,
            event.kind,
            event.proto,
            event.scan_tool,
            event.data,
            event_id,
            event.detail,
        )


def port_label(port_key: int) -> str:
    return f"{port_key & 0xFFFF}/{_PROTO_NAMES.get(port_key >> 16, '?')}"


def _epoch(value: datetime | float | int | None) -> float | None:
    if value.__class__ is float:
        return value  # type: ignore[return-value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # the database hands back UTC
        return value.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return None


def _weight(data: dict[str, Any] | None) -> int:
    """How many packets a noise row stands for: its `count` (a sane one), else one."""
    if data.__class__ is not dict:
        return 1
    count = data.get("count")  # type: ignore[union-attr]
    return count if count.__class__ is int and 0 < count < 1 << 40 else 1


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --- per-rule state ----------------------------------------------------------------------


class _Source:
    """What one source did in its current episode (activity without a window-long pause)."""

    __slots__ = ("count", "finding", "first", "hosts", "ids", "last", "os_scan", "ports", "tools")

    def __init__(self, t: float) -> None:
        self.first = self.last = t
        self.count = 0
        self.hosts: dict[str, float] = {}  # host -> last touch, for the sliding window
        self.ports: dict[int, float] = {}
        self.ids: list[int] = []
        self.os_scan = False
        self.tools: set[str] | None = None
        self.finding: _Live | None = None


class _Logins:
    """Login attempts from one source to one service."""

    __slots__ = ("accepted", "count", "finding", "first", "ids", "last", "times", "users")

    def __init__(self, t: float, threshold: int) -> None:
        self.first = self.last = t
        self.count = 0
        self.accepted = 0
        self.times: deque[float] = deque(maxlen=threshold)  # the last N attempts say if N fit a window
        self.ids: list[int] = []
        self.users: set[str] = set()
        self.finding: _Live | None = None


class _Port:
    """Worm-like sources hitting one port."""

    __slots__ = ("count", "finding", "first", "hosts", "ids", "last", "sources")

    def __init__(self, t: float) -> None:
        self.first = self.last = t
        self.count = 0
        self.hosts: dict[str, float] = {}
        self.sources: dict[str, float] = {}
        self.ids: list[int] = []
        self.finding: _Live | None = None


class _Live:
    """A finding being updated: its identity plus the state its counts come from."""

    __slots__ = ("closed", "dirty", "dst", "first", "key", "kind", "port", "risk", "src", "state")

    def __init__(
        self,
        kind: str,
        key: str,
        risk: str,
        first: float,
        state: _Source | _Logins | _Port,
        src: str | None = None,
        dst: str | None = None,
        port: int | None = None,
    ) -> None:
        self.kind, self.key, self.risk, self.first, self.state = kind, key, risk, first, state
        self.src, self.dst, self.port = src, dst, port
        self.closed = False
        self.dirty = False


_K = TypeVar("_K")
_S = TypeVar("_S", _Source, _Logins, _Port)


def _note(table: dict[_K, float], key: _K, t: float, limit: int) -> bool:
    """Mark `key` seen at `t`; True when it is new (and there was room for it)."""
    if key in table:
        table[key] = t
        return False
    if len(table) < limit:
        table[key] = t
        return True
    return False


def _prune(table: dict[Any, float], oldest: float) -> None:
    stale = [k for k, t in table.items() if t < oldest]
    for k in stale:
        del table[k]


# --- the correlator ----------------------------------------------------------------------


class Correlator:
    """Incremental correlation: `feed` each event, get back new or escalated findings."""

    def __init__(self, settings: CorrelationSettings | None = None) -> None:
        self.settings = s = settings or CorrelationSettings()
        self._window = s.window
        # Hot-path copies of the settings (one attribute lookup instead of a chain per event).
        self._max_ids = s.max_event_ids
        self._max_distinct = s.max_distinct
        self._max_sources = s.max_sources
        self._worm_ports = s.worm.max_ports
        self._worm_hosts_each = s.worm.min_hosts_per_source
        self._scan_hosts = s.scan.hosts
        self._scan_ports = s.scan.ports
        self._sweep_every = min(s.window / 8, 1.0)
        self._now = float("-inf")
        self._next_sweep = float("-inf")
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._logins: OrderedDict[tuple[str, str, int], _Logins] = OrderedDict()
        self._new_logins = partial(_Logins, threshold=s.brute_force.logins)
        self._ports: OrderedDict[int, _Port] = OrderedDict()
        self._open: dict[str, _Live] = {}
        self._dirty: list[_Live] = []
        # Keys already announced: a state evicted early (caps) and rebuilt must not announce twice.
        self._announced: OrderedDict[str, None] = OrderedDict()
        self.events = 0
        self.ignored = 0

    # ------------------------------------------------------------------ public

    def feed(self, event: EventLike) -> list[Finding]:
        """Account one event; return snapshots of the findings it created or escalated."""
        src = event.src_ip
        proto = event.protocol
        t = event.time
        if t.__class__ is not float:
            t = _epoch(t)
        if src in NO_ADDRESS or t is None or proto == "arp":
            self.ignored += 1
            return []
        self.events += 1
        if t > self._now:
            self._now = t
            if t >= self._next_sweep:
                self._sweep(t)
        found: list[Finding] = []
        dst = event.dst_ip
        if dst in NO_ADDRESS:
            dst = None
        port = event.dst_port
        bits = _PROTO_BITS.get(proto)
        pk = port | bits if port is not None and bits is not None and 0 <= port <= 0xFFFF else None
        eid = event.id

        kind = event.kind
        tool = event.scan_tool
        weight = _weight(event.data) if kind in NOISE else 1
        st = self._episode(self._sources, src, t, eid, _Source, weight)
        new_target = self._account(src, st, dst, pk, t)
        live = st.finding
        if live is not None:
            self._touch(live)
        if tool is not None or kind == OS_SCAN_KIND:
            live = self._scan_tool(src, st, kind, tool, live, t, found)
        nports = len(st.ports)
        # The worm before the scan: a sweep that makes a port a worm must not also be a scan.
        if (
            pk is not None
            and dst is not None
            and nports <= self._worm_ports
            and len(st.hosts) >= self._worm_hosts_each
        ):
            self._worm(src, st, dst, pk, t, eid, found, weight)
        if live is None and new_target and (len(st.hosts) >= self._scan_hosts or nports >= self._scan_ports):
            self._check_scan(src, st, t, found)
        if pk is not None and dst is not None and kind in LOGIN_KINDS:
            self._login(src, dst, pk, t, eid, event.data, found)
        return found

    def updates(self) -> list[Finding]:
        """Snapshots of every finding changed since the last call (to store them)."""
        dirty, self._dirty = self._dirty, []
        out = []
        for live in dirty:
            live.dirty = False
            out.append(self._snapshot(live))
        return out

    def open_findings(self) -> list[Finding]:
        return [self._snapshot(live) for live in self._open.values()]

    def expire(self, now: float) -> None:
        """Drop states idle for a window as of `now` (epoch seconds): a clock tick with no events."""
        if now > self._now:
            self._now = now
        self._sweep(self._now)

    @property
    def tracked(self) -> dict[str, int]:
        """How many states each table holds (memory bound checks, metrics)."""
        return {
            "sources": len(self._sources),
            "logins": len(self._logins),
            "ports": len(self._ports),
            "open_findings": len(self._open),
        }

    # ------------------------------------------------------------------ the steps of feed

    def _episode(
        self,
        table: OrderedDict[_K, _S],
        key: _K,
        t: float,
        eid: int | None,
        new: Callable[[float], _S],
        weight: int = 1,
    ) -> _S:
        """The state of `key`'s current episode, begun afresh after a window-long pause; counts the
        event (as `weight` events: a noise row's repeats)."""
        state = table.get(key)
        if state is None or t - state.last > self._window:
            if state is not None:
                self._close(state.finding)
            state = table[key] = new(t)
            table.move_to_end(key)
            if len(table) > self._max_sources:
                self._close(table.popitem(last=False)[1].finding)
        else:
            table.move_to_end(key)
            if t > state.last:
                state.last = t
        state.count += weight
        if eid is not None and len(state.ids) < self._max_ids:
            state.ids.append(eid)
        return state

    def _account(self, src: str, st: _Source, dst: str | None, pk: int | None, t: float) -> bool:
        """Note the host and port a source touched; True when either is new to its episode."""
        new_host = dst is not None and _note(st.hosts, dst, t, self._max_distinct)
        if pk is None or not _note(st.ports, pk, t, self._max_distinct):
            return new_host
        if len(st.ports) == self._worm_ports + 1:
            self._widen(src, st)  # one port too many to be a worm instance
        return True

    def _scan_tool(
        self,
        src: str,
        st: _Source,
        kind: str,
        tool: str | None,
        live: _Live | None,
        t: float,
        found: list[Finding],
    ) -> _Live | None:
        """Note the scan tool the sensor recognised, and nmap's OS detection; the source's finding."""
        if tool is not None:
            if st.tools is None:
                st.tools = set()
            if len(st.tools) < TOOL_LIMIT:
                st.tools.add(tool[:FIELD_LIMIT])
        if (kind == OS_SCAN_KIND or tool in OS_SCAN_TOOLS) and not st.os_scan:
            st.os_scan = True
            if live is not None:
                self._escalate(live, self.settings.scan.os_scan_risk, found)
            elif kind == OS_SCAN_KIND and self.settings.scan.os_scan_alone:
                # Only the detection event itself: the sensor also tags the source's next events
                # (a login, say) with the tool, and those alone are no scan.
                live = self._raise_scan(src, st, t, found)
        return live

    # ------------------------------------------------------------------ rules

    def _check_scan(self, src: str, st: _Source, t: float, found: list[Finding]) -> None:
        s = self.settings
        oldest = t - self._window
        if st.first < oldest:  # a long episode: count only what fell within the window
            _prune(st.hosts, oldest)
            _prune(st.ports, oldest)
            if len(st.hosts) < s.scan.hosts and len(st.ports) < s.scan.ports:
                return
        if len(st.ports) <= s.worm.max_ports:
            for pk in st.ports:
                ps = self._ports.get(pk)
                if ps is not None and ps.finding is not None and ps.last >= oldest:
                    return  # a worm instance: reported in the worm finding
        self._raise_scan(src, st, t, found)

    def _raise_scan(self, src: str, st: _Source, t: float, found: list[Finding]) -> _Live:
        s = self.settings.scan
        first = max(st.first, t - self._window)
        risk = higher_risk(s.risk, s.os_scan_risk) if st.os_scan else s.risk
        live = _Live(SCAN, f"{SCAN}:{src}:{self._bucket(first)}", risk, first, st, src=src)
        st.finding = live
        self._announce(live, found)
        return live

    def _widen(self, src: str, st: _Source) -> None:
        # This source now touches too many ports to be a worm instance: withdraw it from the
        # ports it counted for (those not yet a worm; a worm finding keeps what it saw).
        for pk in st.ports:
            ps = self._ports.get(pk)
            if ps is not None and ps.finding is None:
                ps.sources.pop(src, None)

    def _worm(
        self,
        src: str,
        st: _Source,
        dst: str,
        pk: int,
        t: float,
        eid: int | None,
        found: list[Finding],
        weight: int = 1,
    ) -> None:
        s = self.settings
        ps = self._episode(self._ports, pk, t, eid, _Port, weight)
        hosts, sources = ps.hosts, ps.sources
        new_host = _note(hosts, dst, t, s.max_distinct)
        new_source = _note(sources, src, t, s.max_distinct)
        if new_source:
            # It has just shown itself sweeping: the hosts it hit before count for the port too.
            for host, when in st.hosts.items():
                if host not in hosts and len(hosts) < s.max_distinct:
                    hosts[host] = when
        live = ps.finding
        if live is not None:
            self._touch(live)
            return
        rule = s.worm
        if (new_host or new_source) and len(hosts) >= rule.hosts and len(sources) >= rule.sources:
            oldest = t - self._window
            if ps.first < oldest:
                _prune(hosts, oldest)
                _prune(sources, oldest)
                if len(hosts) < rule.hosts or len(sources) < rule.sources:
                    return
            first = max(ps.first, oldest)
            live = _Live(
                WORM, f"{WORM}:{port_label(pk)}:{self._bucket(first)}", rule.risk, first, ps, port=pk
            )
            ps.finding = live
            self._announce(live, found)

    def _login(
        self,
        src: str,
        dst: str,
        pk: int,
        t: float,
        eid: int | None,
        data: dict[str, Any] | None,
        found: list[Finding],
    ) -> None:
        s = self.settings
        rule = s.brute_force
        ls = self._episode(self._logins, (src, dst, pk), t, eid, self._new_logins)
        ls.times.append(t)
        accepted = False
        if isinstance(data, dict):
            accepted = data.get("accepted") is True
            user = data.get("user")
            if isinstance(user, str) and len(ls.users) < USER_LIMIT:
                ls.users.add(user[:FIELD_LIMIT])
        if accepted:
            ls.accepted += 1
        live = ls.finding
        if live is not None:
            self._touch(live)
            if accepted and ls.accepted == 1:  # the first success is news; later ones are not
                self._escalate(live, rule.accepted_risk, found)
            return
        if len(ls.times) == rule.logins and ls.times[0] >= t - self._window:
            first = ls.times[0] if ls.first < t - self._window else ls.first
            risk = rule.accepted_risk if ls.accepted else rule.risk
            label = port_label(pk)
            key_text = f"{BRUTE_FORCE}:{src}>{dst}:{label}:{self._bucket(first)}"
            live = _Live(BRUTE_FORCE, key_text, risk, first, ls, src=src, dst=dst, port=pk)
            ls.finding = live
            self._announce(live, found)

    # ------------------------------------------------------------------ bookkeeping

    def _bucket(self, t: float) -> int:
        return int(t // self._window)

    def _touch(self, live: _Live) -> None:
        if not live.dirty:
            live.dirty = True
            self._dirty.append(live)

    def _announce(self, live: _Live, found: list[Finding]) -> None:
        self._touch(live)
        self._open[live.key] = live
        if live.key in self._announced:
            return  # the same finding, its state rebuilt after an early eviction
        self._announced[live.key] = None
        if len(self._announced) > self.settings.max_sources:
            self._announced.popitem(last=False)
        found.append(self._snapshot(live))

    def _escalate(self, live: _Live, risk: str, found: list[Finding]) -> None:
        # Announced again (same key) when something changes its meaning: OS detection, a success.
        live.risk = higher_risk(live.risk, risk)
        self._touch(live)
        found.append(self._snapshot(live))

    def _close(self, live: _Live | None) -> None:
        if live is None or live.closed:
            return
        live.closed = True
        self._touch(live)  # its final state goes out with the next updates()
        if self._open.get(live.key) is live:
            del self._open[live.key]

    def _sweep(self, now: float) -> None:
        oldest = now - self._window
        for table in (self._sources, self._logins, self._ports):
            while table:
                key, state = next(iter(table.items()))
                if state.last >= oldest:
                    break
                del table[key]
                self._close(state.finding)
        self._next_sweep = now + self._sweep_every

    def _snapshot(self, live: _Live) -> Finding:
        st = live.state
        details: dict[str, Any]
        if isinstance(st, _Source):
            sources: tuple[str, ...] = (live.src or "",)
            targets = addresses(st.hosts)
            ports = tuple(port_label(pk) for pk in sorted(st.ports)[:LIST_LIMIT])
            details = {"host_count": len(st.hosts), "port_count": len(st.ports), "os_scan": st.os_scan}
            if st.tools:
                details["tools"] = sorted(st.tools)
            what = []
            if st.hosts:
                what.append(f"{len(st.hosts)} host{'s' if len(st.hosts) != 1 else ''}")
            if st.ports:
                what.append(f"{len(st.ports)} port{'s' if len(st.ports) != 1 else ''}")
            summary = f"{live.src} scanned {' and '.join(what) or 'the honeynet'}"
            if st.os_scan:
                summary += " with nmap OS detection"
        elif isinstance(st, _Logins):
            sources, targets = (live.src or "",), (live.dst or "",)
            label = port_label(live.port or 0)
            ports = (label,)
            users = sorted(st.users)
            details = {"logins": st.count, "accepted": st.accepted, "users": users}
            summary = f"{live.src} tried {st.count} logins on {live.dst} {label}"
            if users:
                shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
                summary += f" (users {shown})"
            if st.accepted:
                summary += f"; {st.accepted} accepted"
        else:
            sources = addresses(st.sources)
            targets = addresses(st.hosts)
            label = port_label(live.port or 0)
            ports = (label,)
            details = {"source_count": len(st.sources), "host_count": len(st.hosts)}
            summary = f"port {label} hit on {len(st.hosts)} hosts by {len(st.sources)} sources"
        return Finding(
            kind=live.kind,
            key=live.key,
            risk=live.risk,
            first_seen=_moment(min(live.first, st.last)),
            last_seen=_moment(st.last),
            sources=sources,
            targets=targets,
            ports=ports,
            event_count=st.count,
            event_ids=tuple(st.ids),
            summary=summary,
            details=details,
            closed=live.closed,
        )


def correlate(events: Iterable[EventLike], settings: CorrelationSettings | None = None) -> list[Finding]:
    """Batch correlation: every finding the events give, in its final state, oldest first."""
    correlator = Correlator(settings)
    for event in events:
        correlator.feed(event)
    latest = {finding.key: finding for finding in correlator.updates()}
    return sorted(latest.values(), key=lambda f: (f.first_seen, f.key))
