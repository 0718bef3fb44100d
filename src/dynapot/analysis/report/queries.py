"""The report's queries: aggregated in SQL over honeypot_events, hosts, findings and alerts.

Every section is a list of flat rows (str, int, bool, None, or a list of str), so that
each renderer can print them without knowing the database. Lists of single events
(credentials, commands) and top-N lists are capped; the totals stay exact.

"Events" are counted as what happened, not as rows: the sensor folds repeated noise (probes,
datagrams, pings) into one row per source, target and window whose `count` says how many
packets it stands for, and every count here adds that up.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, case, distinct, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from dynapot.analysis.report.rollup import HOUR, epoch_seconds, report_rows, weight
from dynapot.analysis.report.story import stories
from dynapot.analysis.sessions import group_sessions
from dynapot.db import Database
from dynapot.db.models import Alert, Finding, HoneypotEvent, Host, OperatingSystem, Port
from dynapot.db.models import Session as SessionRow
from dynapot.events import COMMAND_KINDS, LOGIN_KINDS, NO_FLOW_ADDRESS, NOISE_KINDS, Kind

# Report sections in the order every renderer shows them.
SECTIONS = (
    "honeypots",
    "sources",
    "ports",
    "credentials",
    "commands",
    "high_interaction",
    "stories",
    "findings",
    "alerts",
    "timeline",
    "os_mix",
)
# Plain strings in a fixed order: SQL parameters, and the same statement text every time.
LOGINS = tuple(sorted(kind.value for kind in LOGIN_KINDS))
# The "commands and requests" section: command lines and protocol requests alike.
COMMANDS = tuple(sorted(kind.value for kind in COMMAND_KINDS | {Kind.REQUEST}))
NOISE = tuple(sorted(kind.value for kind in NOISE_KINDS))
BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400)
MAX_BUCKETS = 240
PORTS_PER_HONEYPOT = 10
TEXT_LIMIT = 500  # characters of an attacker string kept in a report row
MAX_SESSION_ROWS = 100_000  # Sebek rows read for the high-interaction section
COMMANDS_PER_SESSION = 100


@dataclass
class ReportData:
    """A report: the period, the totals and the sections' rows."""

    since: datetime
    until: datetime
    generated_at: datetime
    bucket_seconds: int
    totals: dict[str, int]
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {
                "since": _iso(self.since),
                "until": _iso(self.until),
                "generated_at": _iso(self.generated_at),
                "bucket_seconds": self.bucket_seconds,
            },
            "totals": dict(self.totals),
            **{name: self.sections.get(name, []) for name in SECTIONS},
        }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _clip(text: Any) -> str | None:
    """An attacker string, bounded and encodable (JSON can hand back lone surrogates)."""
    if text is None:
        return None
    return str(text)[:TEXT_LIMIT].encode("utf-8", "backslashreplace").decode("utf-8")


def bucket_size(since: datetime, until: datetime) -> int:
    """Timeline bucket: the smallest of BUCKETS giving at most MAX_BUCKETS points."""
    span = max((until - since).total_seconds(), 1.0)
    for size in BUCKETS:
        if span / size <= MAX_BUCKETS:
            return size
    return BUCKETS[-1]


def _events() -> ColumnElement[Any]:
    """The events of a group of log rows (an integer: SUM of nothing would be NULL)."""
    return func.coalesce(func.sum(weight()), 0)


def _sum(column: Any) -> ColumnElement[Any]:
    """The events (or rows) of a group of report rows."""
    return func.coalesce(func.sum(column), 0)


def _service_names(session: Session) -> dict[tuple[str, int], str]:
    """(protocol, port) -> the service name the inventory most often gives it."""
    votes: dict[tuple[str, int], tuple[int, str]] = {}
    rows = session.execute(
        select(Port.protocol, Port.port, Port.service, func.count())
        .where(Port.service.is_not(None))
        .group_by(Port.protocol, Port.port, Port.service)
    )
    for proto, port, service, count in rows:
        key = (proto, port)
        if key not in votes or count > votes[key][0]:
            votes[key] = (count, service)
    return {key: service for key, (_, service) in votes.items()}


def _service(names: dict[tuple[str, int], str], proto: str | None, port: int | None) -> str | None:
    if port is None or proto is None:
        return None
    known = names.get((proto, port))
    if known:
        return known
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):
        return None


def _secret(kind: str, data: dict[str, Any]) -> str | None:
    if kind == Kind.LOGIN_KEY:
        return _clip(data.get("fingerprint") or data.get("key_type"))
    value = data.get("password")
    return None if value is None else _clip(value)


class _Query:
    """The report's queries over one period, sharing the base filter, the service names and the
    rows they group (`rollup.report_rows`: the roll-up's whole hours and the events around them)."""

    def __init__(
        self,
        session: Session,
        since: datetime,
        until: datetime,
        limit: int,
        rows: int,
        *,
        use_rollup: bool = True,
    ) -> None:
        self.session = session
        self.since, self.until = since, until
        self.limit, self.rows = limit, rows
        self.use_rollup = use_rollup
        e = HoneypotEvent
        self.where = and_(e.time >= since, e.time < until, e.src_ip != NO_FLOW_ADDRESS)
        self.u = report_rows(session, since, until, use_rollup=use_rollup)
        self.services = _service_names(session)
        self.dialect = session.get_bind().dialect.name

    def totals(self) -> dict[str, int]:
        u = self.u.c
        events, sources, probes, honeypots = self.session.execute(
            select(
                _sum(u.events),
                func.count(distinct(u.src_ip)),
                _sum(case((u.kind == Kind.PROBE.value, u.events), else_=0)),
                func.count(distinct(case((u.dst_ip != NO_FLOW_ADDRESS, u.dst_ip)))),
            )
        ).one()
        by_kind = {
            kind: int(count)
            for kind, count in self.session.execute(
                select(u.kind, _sum(u.rows)).where(u.kind.in_((*LOGINS, *COMMANDS))).group_by(u.kind)
            )
        }
        e = HoneypotEvent
        notices = self.session.scalar(
            select(func.count()).where(e.time >= self.since, e.time < self.until, e.src_ip == NO_FLOW_ADDRESS)
        )
        findings = self.session.scalar(
            select(func.count())
            .select_from(Finding)
            .where(Finding.last_seen >= self.since, Finding.first_seen < self.until)
        )
        alerts = self.session.scalar(
            select(func.count()).select_from(Alert).where(Alert.time >= self.since, Alert.time < self.until)
        )
        return {
            "events": int(events or 0),
            "probes": int(probes or 0),
            "sources": sources or 0,
            "honeypots": honeypots or 0,
            "logins": sum(by_kind.get(k, 0) for k in LOGINS),
            "commands": by_kind.get(Kind.COMMAND, 0),
            "requests": by_kind.get(Kind.REQUEST, 0),
            "sensor_notices": notices or 0,
            "findings": findings or 0,
            "alerts": alerts or 0,
        }

    def _busiest(
        self, group: tuple[Any, ...], tie: Any, *columns: Any, where: tuple[Any, ...] = ()
    ) -> list[Row[Any]]:
        """The `limit` groups with the most events; a row is the group, its event count, `columns`."""
        events = _sum(self.u.c.events).label("events")
        return list(
            self.session.execute(
                select(*group, events, *columns)
                .where(*where)
                .group_by(*group)
                .order_by(events.desc(), tie, *group)
                .limit(self.limit)
            )
        )

    def honeypots(self) -> list[dict[str, Any]]:
        u = self.u.c
        rows = self._busiest(
            (u.dst_ip,),
            u.dst_ip,
            func.count(distinct(u.src_ip)),
            func.min(u.first_seen),
            func.max(u.last_seen),
            where=(u.dst_ip != NO_FLOW_ADDRESS,),
        )
        addresses = [row[0] for row in rows]
        hosts = (
            {h.ip: h for h in self.session.scalars(select(Host).where(Host.ip.in_(addresses)))}
            if addresses
            else {}
        )
        ports: dict[str, list[tuple[int, str]]] = defaultdict(list)
        if addresses:
            for dst, proto, port, count in self.session.execute(
                select(u.dst_ip, u.protocol, u.dst_port, _sum(u.events))
                .where(u.dst_ip.in_(addresses), u.dst_port.is_not(None))
                .group_by(u.dst_ip, u.protocol, u.dst_port)
            ):
                ports[dst].append((-int(count), f"{port}/{proto}"))
        result = []
        for dst, count, sources, first, last in rows:
            host = hosts.get(dst)
            os_name = None
            if host is not None:
                os_name = host.os.name if host.os else (host.personality or host.os_detail)
            result.append(
                {
                    "address": dst,
                    "virtual": None if host is None else host.is_virtual,
                    "os": os_name,
                    "events": int(count),
                    "source_count": sources,
                    "ports": [label for _, label in sorted(ports[dst])[:PORTS_PER_HONEYPOT]],
                    "first_seen": _iso(first),
                    "last_seen": _iso(last),
                }
            )
        return result

    def sources(self) -> list[dict[str, Any]]:
        u = self.u.c
        rows = self._busiest(
            (u.src_ip,),
            u.src_ip,
            func.count(distinct(case((u.dst_ip != NO_FLOW_ADDRESS, u.dst_ip)))),  # honeypots only
            func.count(distinct(u.dst_port)),
            _sum(case((u.kind.in_(LOGINS), u.rows), else_=0)),
            func.max(u.attacker_os),  # the sensor's p0f guess, one per source
            func.max(u.scan_tool),
            func.min(u.first_seen),
            func.max(u.last_seen),
        )
        return [
            {
                "address": src,
                "os": _clip(os_guess),
                "tool": _clip(tool),
                "events": int(count),
                "honeypot_count": honeypots,
                "port_count": port_count,
                "login_count": int(login_count or 0),
                "first_seen": _iso(first),
                "last_seen": _iso(last),
            }
            for src, count, honeypots, port_count, login_count, os_guess, tool, first, last in rows
        ]

    def ports(self) -> list[dict[str, Any]]:
        u = self.u.c
        rows = self._busiest(
            (u.protocol, u.dst_port),
            u.dst_port,
            func.count(distinct(u.src_ip)),
            func.count(distinct(u.dst_ip)),
            where=(u.dst_port.is_not(None),),
        )
        return [
            {
                "protocol": proto,
                "port": port,
                "service": _service(self.services, proto, port),
                "events": int(count),
                "source_count": sources,
                "honeypot_count": honeypots,
            }
            for proto, port, count, sources, honeypots in rows
        ]

    def _latest(self, kinds: tuple[str, ...]) -> list[HoneypotEvent]:
        e = HoneypotEvent
        start = self._hours_holding(kinds)
        if start is None:
            return []
        rows = self.session.scalars(
            select(e)
            .where(self.where, e.time >= start, e.kind.in_(kinds))
            .order_by(e.time.desc(), e.id.desc())
            .limit(self.rows)
        ).all()
        return list(reversed(rows))  # the most recent N, shown oldest first

    def _hours_holding(self, kinds: tuple[str, ...]) -> datetime | None:
        """From when the latest `rows` events of `kinds` are to be read (None: there are none):
        the start of the latest hours that hold as many, counted in the report's rows, so that
        the events are read back over those hours only, not over the whole period."""
        u = self.u.c
        hour = (u.epoch - u.epoch % HOUR).label("hour")
        counts = self.session.execute(
            select(hour, _sum(u.rows)).where(u.kind.in_(kinds)).group_by(hour).order_by(hour.desc())
        )
        total, start = 0, None
        for key, count in counts:
            total, start = total + int(count), int(key)
            if total >= self.rows:
                break
        if start is None:
            return None
        return max(self.since, datetime.fromtimestamp(start, UTC))

    def _event(self, ev: HoneypotEvent) -> dict[str, Any]:
        """What every row of a single event shows: when, who, which honeypot and service, what kind."""
        return {
            "time": _iso(ev.time),
            "src": ev.src_ip,
            "dst": ev.dst_ip,
            "port": ev.dst_port,
            "service": _service(self.services, ev.protocol, ev.dst_port),
            "kind": ev.kind,
        }

    def credentials(self) -> list[dict[str, Any]]:
        result = []
        for ev in self._latest(LOGINS):
            data = ev.data if isinstance(ev.data, dict) else {}
            user = data.get("user")
            if user is None and ev.detail and ":" in ev.detail:
                user = ev.detail.split(":", 1)[0]
            result.append(
                {
                    **self._event(ev),
                    "user": _clip(user),
                    "secret": _secret(ev.kind, data),
                    "accepted": data.get("accepted") is True,
                }
            )
        return result

    def commands(self) -> list[dict[str, Any]]:
        return [{**self._event(ev), "command": _clip(ev.detail)} for ev in self._latest(COMMANDS)]

    def high_interaction(self) -> list[dict[str, Any]]:
        """Sessions with commands typed on high-interaction honeypots (Sebek), per attacker, oldest
        first; at most `rows` sessions, `MAX_SESSION_ROWS` Sebek rows read (the newest)."""
        statement = (
            select(SessionRow)
            .where(SessionRow.time >= self.since, SessionRow.time < self.until)
            .order_by(SessionRow.id.desc())
            .limit(MAX_SESSION_ROWS)
        )
        result = []
        for found in group_sessions(list(self.session.scalars(statement))):
            commands = found.commands
            if commands:
                result.append(
                    {
                        "src": found.src_ip,
                        "dst": found.honeypot_ip,
                        "first_seen": _iso(found.start),
                        "last_seen": _iso(found.end),
                        "session": found.id,
                        "events": len(found.rows),
                        "lost": found.lost,
                        "command": _clip("; ".join(commands)),
                        "commands": commands[:COMMANDS_PER_SESSION],
                    }
                )
        result.sort(key=lambda r: (r["src"] is None, r["src"] or "", r["first_seen"]))
        result = result[: self.rows]
        # The attacker's story across the tiers: its first event on any honeypot (a probe of a
        # virtual host, usually) and how many it caused, in the same period.
        attackers = sorted({r["src"] for r in result if r["src"]})
        e = HoneypotEvent
        before: dict[str, tuple[Any, int]] = {}
        for chunk in range(0, len(attackers), 500):
            statement = (
                select(e.src_ip, func.min(e.time), _events())
                .where(
                    e.src_ip.in_(attackers[chunk : chunk + 500]), e.time >= self.since, e.time < self.until
                )
                .group_by(e.src_ip)
            )
            before.update((src, (first, count)) for src, first, count in self.session.execute(statement))
        for row in result:
            first, count = before.get(row["src"] or "", (None, 0))
            row["first_event"], row["event_count"] = _iso(first), int(count or 0)
        return result

    def stories(self) -> list[dict[str, Any]]:
        """One story per attacker with a recorded session: the tiers in time order (`story`)."""
        statement = (
            select(SessionRow)
            .where(SessionRow.time >= self.since, SessionRow.time < self.until)
            .order_by(SessionRow.id.desc())
            .limit(MAX_SESSION_ROWS)
        )
        rows = list(self.session.scalars(statement))
        return stories(self.session, self.since, self.until, rows, attackers=self.limit, iso=_iso, clip=_clip)

    def findings(self) -> list[dict[str, Any]]:
        f = Finding
        rows = self.session.scalars(
            select(f)
            .where(f.last_seen >= self.since, f.first_seen < self.until)
            .order_by(f.first_seen, f.id)
            .limit(self.rows)
        ).all()
        return [
            {
                "key": row.key,
                "kind": row.kind,
                "risk": row.risk,
                "first_seen": _iso(row.first_seen),
                "last_seen": _iso(row.last_seen),
                "sources": [str(x) for x in (row.sources or [])],
                "targets": [str(x) for x in (row.targets or [])],
                "ports": [str(x) for x in (row.ports or [])],
                "event_count": row.event_count,
                "summary": _clip(row.summary),
            }
            for row in rows
        ]

    def alerts(self) -> list[dict[str, Any]]:
        rows = self.session.execute(
            select(Alert, Finding.key)
            .outerjoin(Finding, Alert.finding_id == Finding.id)
            .where(Alert.time >= self.since, Alert.time < self.until)
            .order_by(Alert.time, Alert.id)
            .limit(self.rows)
        ).all()
        return [
            {
                "time": _iso(alert.time),
                "status": alert.status,
                "channel": _clip(alert.channel),
                "attempts": alert.attempts,
                "finding": key,
                "message": _clip(alert.message),
                "last_error": _clip(alert.last_error),
            }
            for alert, key in rows
        ]

    def timeline(self, size: int) -> list[dict[str, Any]]:
        # Buckets of whole hours group the roll-up's rows; shorter ones the events themselves.
        u = self.u.c
        if size % HOUR:
            u = report_rows(self.session, self.since, self.until, use_rollup=False).c
        start = int(self.since.timestamp()) // size * size
        counts: dict[int, tuple[int, int]] = {}
        if epoch_seconds(HoneypotEvent.time, self.dialect) is not None:
            bucket = (u.epoch - u.epoch % size).label("bucket")
            for key, count, sources in self.session.execute(
                select(bucket, _sum(u.events), func.count(distinct(u.src_ip))).group_by(bucket)
            ):
                counts[int(key)] = (int(count), sources)
        else:  # another backend: bucket in Python, reading only the columns it needs
            seen: dict[int, set[str]] = defaultdict(set)
            totals: dict[int, int] = defaultdict(int)
            rows = self.session.execute(select(u.first_seen, u.src_ip, u.events))
            for moment, src, events in rows:
                key = int(moment.timestamp()) // size * size
                totals[key] += int(events)
                seen[key].add(src)
            counts = {key: (totals[key], len(seen[key])) for key in totals}
        end = int(self.until.timestamp())
        result = []
        for key in range(start, end, size):
            count, sources = counts.get(key, (0, 0))
            result.append(
                {"start": _iso(datetime.fromtimestamp(key, UTC)), "events": count, "source_count": sources}
            )
        return result

    def os_mix(self) -> list[dict[str, Any]]:
        rows = self.session.execute(
            select(Host.is_virtual, OperatingSystem.name, func.count())
            .outerjoin(OperatingSystem, Host.os_id == OperatingSystem.id)
            .group_by(Host.is_virtual, OperatingSystem.name)
        ).all()
        merged: dict[tuple[bool, str], int] = defaultdict(int)
        for virtual, name, count in rows:
            merged[(bool(virtual), name or "unknown")] += count
        return [
            {"virtual": virtual, "os": name, "hosts": count}
            for (virtual, name), count in sorted(merged.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        ]


def events_by_kind(
    db: Database, since: datetime, until: datetime, *, use_rollup: bool = True
) -> dict[str, int]:
    """Events of [since, until) per kind (a folded noise row counts as the packets it stands for),
    the most frequent first; sensor notices (no flow) left out, as in the report's totals."""
    with db.session() as session:
        u = report_rows(session, since, until, use_rollup=use_rollup).c
        events = _sum(u.events).label("events")
        rows = session.execute(select(u.kind, events).group_by(u.kind).order_by(events.desc(), u.kind)).all()
    return {kind: int(count) for kind, count in rows}


def build_report(
    db: Database,
    since: datetime,
    until: datetime | None = None,
    *,
    limit: int = 50,
    rows: int = 500,
    now: datetime | None = None,
    use_rollup: bool = True,
) -> ReportData:
    """Everything the report shows for [since, until): `limit` rows per top list, `rows` per event list.
    Whole hours are read from the roll-up (`rollup.report_rows`) unless `use_rollup` is False;
    the report is the same either way."""
    now = now or datetime.now(UTC)
    until = until or now
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("report times must be timezone-aware")
    if until <= since:
        raise ValueError(f"the report period is empty: {_iso(since)} is not before {_iso(until)}")
    if until - since > timedelta(days=3660):
        raise ValueError("the report period is longer than ten years")
    size = bucket_size(since, until)
    with db.session() as session:
        query = _Query(session, since, until, limit, rows, use_rollup=use_rollup)
        data = ReportData(since, until, now, size, query.totals())
        data.sections = {
            "honeypots": query.honeypots(),
            "sources": query.sources(),
            "ports": query.ports(),
            "credentials": query.credentials(),
            "commands": query.commands(),
            "high_interaction": query.high_interaction(),
            "stories": query.stories(),
            "findings": query.findings(),
            "alerts": query.alerts(),
            "timeline": query.timeline(size),
            "os_mix": query.os_mix(),
        }
    return data
