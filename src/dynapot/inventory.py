"""The inventory: observations in, network picture out, deployments and expiry.

This is the only module that turns discovery results into rows and rows into the
planner's inputs. Every write happens in one transaction: a failure leaves the
database as it was.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from dynapot.config import ExpirySettings, NetworkSettings, PlannerSettings, parse_address_range
from dynapot.db import Database
from dynapot.db.models import (
    EXPIRABLE,
    EventRollup,
    HoneypotEvent,
    Host,
    HostOsGuess,
    OperatingSystem,
    Port,
    ServiceScript,
    utcnow,
)
from dynapot.db.rollup_mark import claim_mark
from dynapot.discovery.fusion import DEFAULT_RULE, FusionPolicy, ToolGuess, fuse
from dynapot.discovery.observation import Observation, OsGuess
from dynapot.discovery.osinfer import (
    TTL_TOOL,
    os_from_mac_vendor,
    os_from_services,
    os_from_ttl,
)
from dynapot.personality.catalog import GroupDescription
from dynapot.planner import NetworkPicture, OpenPort, Plan, RealHost, ServiceSpec, VirtualHost, free_addresses

DEPLOY_TOOL = "dynapot"  # the tool name on rows of hosts and ports that we created ourselves


@dataclass(frozen=True, slots=True)
class RecordStats:
    hosts_added: int = 0
    hosts_updated: int = 0
    ports: int = 0
    reclaimed: tuple[str, ...] = ()  # virtual addresses a real host turned out to use


def _os_row(session: Session, guess: OsGuess, cache: dict[str, OperatingSystem]) -> OperatingSystem:
    name = guess.group
    row = cache.get(name) or session.scalar(select(OperatingSystem).where(OperatingSystem.name == name))
    if row is None:
        row = OperatingSystem(
            name=name,
            vendor=guess.vendor,
            family=guess.family,
            generation=guess.generation,
            device_type=guess.device_type,
            description=guess.name,
        )
        session.add(row)
        session.flush()
    elif row.family is None and guess.family:
        # A row a deployment made with the name alone (a group named from a clue): the tool knows more.
        row.vendor, row.family = guess.vendor, guess.family
        row.generation, row.device_type = guess.generation, guess.device_type
    cache[name] = row
    return row


def _fuse_os(host: Host, guesses: Sequence[HostOsGuess], rule: FusionPolicy = DEFAULT_RULE) -> None:
    """The host's OS is the answer the fusion rule picks (discovery.fusion); none leaves it alone."""
    best = fuse([ToolGuess(g.tool, g.confidence, g.seen_at, g.detail, g) for g in guesses], rule)
    if best is None:
        return
    row = cast(HostOsGuess, best.ref)
    host.os_id, host.os_detail, host.reliability = row.os_id, row.detail, row.confidence


def _check(obs: Observation) -> None:
    """Refuse an observation the database would store wrongly, before anything is written."""
    try:
        ipaddress.ip_address(obs.ip)
    except ValueError:
        raise ValueError(f"observation with bad address {obs.ip!r}") from None
    if obs.seen_at.tzinfo is None:
        raise ValueError(f"observation of {obs.ip}: seen_at has no time zone")
    if not obs.tool:
        raise ValueError(f"observation of {obs.ip}: no tool named")
    for port in obs.ports:
        if port.protocol not in ("tcp", "udp", "sctp") or not 0 <= port.port <= 65535:
            raise ValueError(f"observation of {obs.ip}: bad port {port.protocol}/{port.port}")


# Tools whose port answers (service, product, version) are the detailed ones.
DETAILED_PORT_TOOLS = frozenset({"nmap"})


def record_observations(
    db: Database, observations: Iterable[Observation], fusion: FusionPolicy = DEFAULT_RULE
) -> RecordStats:
    """Merge observations into hosts, ports and OS guesses, all in one transaction.

    `fusion` decides the host's OS when tools disagree (config: [discovery.fusion]).
    """
    observations = list(observations)
    for obs in observations:
        _check(obs)
    added = updated = port_count = 0
    reclaimed: list[str] = []
    os_cache: dict[str, OperatingSystem] = {}
    with db.session() as session:
        for obs in observations:
            host = session.scalar(select(Host).where(Host.ip == obs.ip).options(selectinload(Host.ports)))
            if not obs.alive:
                continue  # a tool that found nothing there is no evidence that the address is free
            if host is None:
                host = Host(ip=obs.ip, tool=obs.tool, first_seen=obs.seen_at, last_seen=obs.seen_at)
                session.add(host)
                added += 1
            else:
                updated += 1
                if host.is_virtual:
                    reclaimed.append(obs.ip)
                    _reclaim(host, obs.seen_at)
                host.last_seen = max(host.last_seen, obs.seen_at)
            host.tool = obs.tool
            host.mac = obs.mac or host.mac
            host.mac_vendor = obs.mac_vendor or host.mac_vendor
            host.hostname = obs.hostname or host.hostname
            session.flush()
            if obs.os is not None:
                _record_os_guess(session, host, obs.tool, obs, obs.os, os_cache, fusion)
            elif (by_ttl := os_from_ttl(obs.initial_ttl)) is not None:
                # The tool named no OS, but the TTL of its replies points to a family: kept apart,
                # as the "ttl" tool, so that any tool's real answer outranks it.
                _record_os_guess(session, host, TTL_TOOL, obs, by_ttl, os_cache, fusion)
            if obs.ports:
                _record_ports(host, obs)
                port_count += len(obs.ports)
    return RecordStats(added, updated, port_count, tuple(reclaimed))


def _reclaim(host: Host, seen_at: datetime) -> None:
    """A real machine answers on an address we had taken: the row is a real host's now, ours goes."""
    host.is_virtual = False
    host.personality = None
    host.os_id = host.os_detail = host.reliability = None
    host.ports.clear()
    host.first_seen = seen_at


def _record_os_guess(
    session: Session,
    host: Host,
    tool: str,
    obs: Observation,
    os_guess: OsGuess,
    os_cache: dict[str, OperatingSystem],
    fusion: FusionPolicy,
) -> None:
    """Store this tool's OS guess for the host (one row per tool), then fuse all tools' guesses."""
    os_row = _os_row(session, os_guess, os_cache)
    guess = session.scalar(
        select(HostOsGuess).where(HostOsGuess.host_id == host.id, HostOsGuess.tool == tool)
    )
    if guess is None:
        guess = HostOsGuess(host_id=host.id, tool=tool)
        session.add(guess)
    guess.os_id, guess.detail = os_row.id, os_guess.name
    guess.confidence, guess.seen_at = os_guess.accuracy, obs.seen_at
    guess.cpe = list(os_guess.cpe) or None
    session.flush()
    _fuse_os(host, session.scalars(select(HostOsGuess).where(HostOsGuess.host_id == host.id)).all(), fusion)


def _record_ports(host: Host, obs: Observation) -> None:
    """Merge the observation's ports into the host's rows."""
    # A detailed scan states the ports as they are now; this tool's older rows are replaced.
    existing = {(p.protocol, p.port): p for p in host.ports}
    for stale in [p for p in host.ports if p.tool == obs.tool]:
        if not any((o.protocol, o.port) == (stale.protocol, stale.port) for o in obs.ports):
            host.ports.remove(stale)
    for seen in obs.ports:
        row = existing.get((seen.protocol, seen.port))
        if row is None:
            row = Port(protocol=seen.protocol, port=seen.port)
            host.ports.append(row)
        if row.tool in DETAILED_PORT_TOOLS and obs.tool not in DETAILED_PORT_TOOLS:
            # A banner heard in passing ("vsFTPd 3.0.3") is vaguer than nmap -sV's
            # answer ("vsftpd", "3.0.3"): it refreshes the port, fills gaps, replaces nothing.
            row.service = row.service or seen.service
            row.product = row.product or seen.product
            row.version = row.version or seen.version
            row.extra_info = row.extra_info or seen.extra_info
            row.seen_at = max(row.seen_at, obs.seen_at)
        else:
            row.state, row.service = seen.state, seen.service
            row.product, row.version = seen.product, seen.version
            row.extra_info = seen.extra_info
            row.tool, row.seen_at = obs.tool, obs.seen_at


def _in_network(ip: str, network: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in network
    except ValueError:
        return False


def network_picture(
    db: Database,
    network: NetworkSettings,
    policy: PlannerSettings,
    *,
    now: datetime | None = None,
) -> NetworkPicture:
    """Real hosts seen within the hold-off time, each with what is known of its OS, and the
    addresses free for honeypots."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=policy.hold_off)
    real: list[RealHost] = []
    used: list[int] = []
    with db.session() as session:
        hosts = session.scalars(
            select(Host)
            .where(Host.is_virtual.is_(False), Host.last_seen >= cutoff)
            .options(selectinload(Host.ports))
        ).all()
        os_rows = {row.id: row for row in session.scalars(select(OperatingSystem))}
        guesses: dict[int, list[HostOsGuess]] = defaultdict(list)
        for guess in session.scalars(select(HostOsGuess).join(Host).where(Host.last_seen >= cutoff)):
            guesses[guess.host_id].append(guess)
        for host in hosts:
            if not _in_network(host.ip, network.cidr):
                continue
            used.append(int(ipaddress.IPv4Address(host.ip)))
            ports = tuple(
                OpenPort(p.protocol, p.port, p.service, p.product, p.version)
                for p in sorted(host.ports, key=lambda p: (p.protocol, p.port))
                if p.state == "open"
            )
            group = _os_description(host, guesses[host.id], os_rows, policy)
            real.append(RealHost(host.ip, group, host.mac, ports))
    excluded = [parse_address_range(item) for item in network.exclude]
    free = free_addresses(network.cidr, used, gateway=network.gateway, excluded=excluded)
    return NetworkPicture(
        network=network.cidr,
        real_hosts=tuple(sorted(real, key=lambda h: ipaddress.IPv4Address(h.ip))),
        free_ips=tuple(str(ipaddress.IPv4Address(address)) for address in free),
    )


def _os_description(
    host: Host,
    guesses: Sequence[HostOsGuess],
    os_rows: Mapping[int, OperatingSystem],
    policy: PlannerSettings,
) -> GroupDescription | None:
    """What is known of the host's OS, from the best source that has an answer at the least accuracy.

    In order: the fused answer of the OS tools (nmap, p0f, ...), else the most confident other
    tool's; then, unless `policy.unknown_os` is "exclude", the family its services name, the
    family its TTL points to, the family of its NIC's maker. None: nothing names it.
    """
    least = max(policy.min_os_accuracy, 1)
    usable = [g for g in guesses if g.confidence >= least and g.os_id in os_rows]
    tools = [g for g in usable if g.tool != TTL_TOOL]
    fused = next(
        (
            g
            for g in tools
            if (g.os_id, g.detail, g.confidence) == (host.os_id, host.os_detail, host.reliability)
        ),
        None,
    )
    best = fused or max(tools, key=lambda g: (g.confidence, g.seen_at), default=None)
    if best is not None:
        return _described(os_rows[best.os_id], best.detail, best.cpe, f"{best.tool} {best.confidence}%")
    if not guesses and host.os is not None and (host.reliability or 0) >= least:
        return _described(host.os, host.os_detail, None, f"{host.tool} {host.reliability}%")
    if policy.unknown_os == "exclude":
        return None
    by_services = os_from_services(p for p in host.ports if p.state == "open")
    if by_services is not None and by_services.accuracy >= least:
        return _inferred(by_services, "services")
    by_ttl = next((g for g in usable if g.tool == TTL_TOOL), None)
    if by_ttl is not None:
        return _described(os_rows[by_ttl.os_id], by_ttl.detail, None, f"{TTL_TOOL} {by_ttl.confidence}%")
    by_mac = os_from_mac_vendor(host.mac_vendor)
    if by_mac is not None and by_mac.accuracy >= least:
        return _inferred(by_mac, "MAC vendor")
    return None


def _inferred(guess: OsGuess, source: str) -> GroupDescription:
    """A family guessed from a clue that is not stored as a tool's answer."""
    return GroupDescription(
        guess.group, guess.vendor, guess.family, None, None, (guess.name,), (), f"{source} {guess.accuracy}%"
    )


def _described(
    os_row: OperatingSystem, detail: str | None, cpe: Sequence[str] | None, source: str
) -> GroupDescription:
    return GroupDescription(
        name=os_row.name,
        vendor=os_row.vendor,
        family=os_row.family,
        generation=os_row.generation,
        device_type=os_row.device_type,
        seen_names=(detail,) if detail else (),
        cpe=tuple(cpe or ()),
        source=source,
    )


def _address_order(ip: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ip.split(".")) if "." in ip else (0,)


def host_listing(db: Database) -> list[dict[str, Any]]:
    """Every host, real and virtual, in address order, with its ports: plain values for JSON."""
    with db.session() as session:
        hosts = session.scalars(select(Host).options(selectinload(Host.ports))).all()
        return [
            {
                "ip": h.ip,
                "mac": h.mac,
                "virtual": h.is_virtual,
                "os": h.os.name if h.os else None,
                "os_detail": h.os_detail,
                "reliability": h.reliability,
                "personality": h.personality,
                "tool": h.tool,
                "last_seen": h.last_seen.isoformat(),
                "ports": [
                    {
                        "proto": p.protocol,
                        "port": p.port,
                        "state": p.state,
                        "service": p.service,
                        "product": p.product,
                    }
                    for p in sorted(h.ports, key=lambda p: (p.protocol, p.port))
                ],
            }
            for h in sorted(hosts, key=lambda h: _address_order(h.ip))
        ]


def service_scripts(db: Database) -> dict[tuple[str, str], str]:
    with db.session() as session:
        return {(r.protocol, r.service): r.script for r in session.scalars(select(ServiceScript))}


def release_outside(db: Database, network: ipaddress.IPv4Network) -> int:
    """Forget the virtual hosts deployed outside `network` (it changed); how many there were."""
    with db.session() as session:
        rows = session.scalars(select(Host.ip).where(Host.is_virtual.is_(True))).all()
        outside = [ip for ip in rows if not _in_network(ip, network)]
        if outside:
            session.execute(delete(Host).where(Host.is_virtual.is_(True), Host.ip.in_(outside)))
    return len(outside)


def current_deployment(db: Database, network: ipaddress.IPv4Network) -> list[VirtualHost]:
    """The virtual hosts we deployed in `network`, as the planner describes them."""
    result = []
    with db.session() as session:
        rows = session.scalars(
            select(Host).where(Host.is_virtual.is_(True)).options(selectinload(Host.ports))
        ).all()
        for host in rows:
            if not _in_network(host.ip, network):
                continue
            services = tuple(
                ServiceSpec(p.protocol, p.port, p.service or "open", p.product, p.version)
                for p in sorted(host.ports, key=lambda p: (p.protocol, p.port))
            )
            result.append(
                VirtualHost(
                    host.ip,
                    host.mac or "",
                    host.os.name if host.os else "unknown",
                    host.personality,
                    services,
                )
            )
    return result


def save_deployment(
    db: Database, plan: Plan, *, now: datetime | None = None, gone_before: datetime | None = None
) -> None:
    """Make the stored deployment equal to `plan` (one transaction).

    A real host's address is taken only when the host was last seen before `gone_before` (it
    left the network: the planner's hold-off passed); its row then becomes the virtual host's.
    """
    now = now or utcnow()
    wanted = {vh.ip: vh for vh in plan.virtual_hosts}
    with db.session() as session:
        os_rows = {row.name: row for row in session.scalars(select(OperatingSystem))}
        if plan.removed:
            session.execute(delete(Host).where(Host.is_virtual.is_(True), Host.ip.in_(list(plan.removed))))
        existing = {
            h.ip: h
            for h in session.scalars(
                select(Host).where(Host.ip.in_(list(wanted))).options(selectinload(Host.ports))
            )
        }
        for ip, vh in wanted.items():
            host = existing.get(ip)
            if host is not None and not host.is_virtual:
                if gone_before is None or host.last_seen >= gone_before:
                    raise ValueError(f"refusing to deploy on {ip}: a real host uses it")
                host.is_virtual, host.tool, host.first_seen = True, DEPLOY_TOOL, now
                host.os_detail = host.reliability = host.hostname = host.mac_vendor = None
                host.ports.clear()
                session.execute(delete(HostOsGuess).where(HostOsGuess.host_id == host.id))
            if host is None:
                host = Host(ip=ip, is_virtual=True, tool=DEPLOY_TOOL, first_seen=now, last_seen=now)
                session.add(host)
            os_row = os_rows.get(vh.os)
            if os_row is None:  # a group named from a clue, not by a tool: the row keeps the name
                os_row = os_rows[vh.os] = OperatingSystem(name=vh.os)
                session.add(os_row)
                session.flush()
            host.os_id = os_row.id
            host.mac, host.personality, host.last_seen = vh.mac, vh.personality, now
            current = {(p.protocol, p.port): p for p in host.ports}
            for key in set(current) - {(s.proto, s.port) for s in vh.services}:
                host.ports.remove(current[key])
            for spec in vh.services:
                row = current.get((spec.proto, spec.port))
                if row is None:
                    row = Port(protocol=spec.proto, port=spec.port, state="open", tool=DEPLOY_TOOL)
                    host.ports.append(row)
                row.service, row.product, row.version, row.seen_at = (
                    spec.service,
                    spec.product,
                    spec.version,
                    now,
                )


def expire(db: Database, ages: ExpirySettings, *, now: datetime | None = None) -> dict[str, int]:
    """Delete rows older than their table's configured age (0 = keep forever)."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    with db.session() as session:
        for table, (model, column) in EXPIRABLE.items():
            cutoff = ages.cutoff(table, now)
            if cutoff is None:
                counts[table] = 0
                continue
            statement = delete(model).where(column < cutoff)
            if model is Host:
                statement = statement.where(Host.is_virtual.is_(False))  # our deployment is not stale data
            counts[table] = session.execute(statement).rowcount or 0
            if model is HoneypotEvent:
                counts["event_rollup"] = _expire_rollup(session, cutoff)
    return counts


def _expire_rollup(session: Session, cutoff: datetime) -> int:
    """Delete the hourly roll-up of the hours whose events are all older than `cutoff` (they went
    with the events) and keep the cutoff, so that reports read the hour holding it from the events."""
    hour = int(cutoff.timestamp()) // 3600 * 3600  # hours before this one ended by the cutoff
    deleted = session.execute(delete(EventRollup).where(EventRollup.hour < hour)).rowcount or 0
    mark = claim_mark(session)
    if mark.expired_before is None or mark.expired_before < cutoff:
        mark.expired_before = cutoff
    return deleted


def expiring_hosts(
    db: Database, ages: ExpirySettings, ips: Iterable[str], *, now: datetime | None = None
) -> dict[str, datetime]:
    """The real hosts among `ips` that the next expiry deletes, with when they were last seen."""
    cutoff = ages.cutoff("hosts", now or utcnow())
    if cutoff is None:
        return {}
    wanted = set(ips)
    old = select(Host.ip, Host.last_seen).where(Host.is_virtual.is_(False), Host.last_seen < cutoff)
    with db.session() as session:
        return {ip: seen for ip, seen in session.execute(old) if ip in wanted}
