"""The planner: a pure function from the network picture to the virtual honeypots to deploy.

Rules, from the original design and issues 2 and 16:
- The virtual OS mix mirrors the real one (largest-remainder apportionment): 2 Windows NT
  and 3 Red Hat hosts with 10 free addresses give 4 virtual NT and 6 virtual Red Hat.
- A virtual host wears a fingerprint of the same OS generation as the real hosts it mirrors
  (`PersonalityCatalog.resolve`: nmap's own match, else the same osclass and release by CPE,
  else the nearest generation; never another device type). A real host known only by its
  family (a p0f range, a TTL) mirrors the network's real hosts of that family.
- Within a group, virtual hosts take the real hosts' fingerprints and their open ports with
  nmap -sV's products in the same proportions (each real host weighs one, shared among the
  fingerprints its OS resolves to), so that a scan of the virtual hosts looks like a scan of
  the real ones. A MAC with a vendor prefix that fits the group.
- A real host with no OS guess from any source is left out of the ratio, and the plan says
  so: no virtual host is planned without a personality.
- Re-planning moves as few virtual hosts as possible: kept hosts keep address, MAC and
  personality (and their services while their kind still has seats); new hosts go to
  addresses scattered by hash, so that the same picture always gives the same plan.

No IO here: the caller supplies the picture, the policy, the current deployment and
the personality catalog.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import socket
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

from dynapot.personality.catalog import (
    GroupDescription,
    PersonalityCatalog,
    Resolution,
    format_mac,
    release_key,
)

OPEN = "open"  # a port served without an emulator: accept and record what arrives
LISTED = 4  # addresses named in one explanation or warning before "and N more"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    proto: str
    port: int
    service: str  # the emulator or script that serves it, or "open"
    # What nmap -sV named on the real host copied ("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10"): the
    # emulator says the same, so that virtual hosts run what real hosts of their OS run.
    product: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class OpenPort:
    proto: str
    port: int
    service: str | None  # nmap's service name
    product: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class RealHost:
    ip: str
    group: GroupDescription | None  # what is known of its OS; None: no guess from any source
    mac: str | None = None
    open_ports: tuple[OpenPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPicture:
    network: ipaddress.IPv4Network
    real_hosts: tuple[RealHost, ...]
    free_ips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    fill_ratio: float = 1.0
    # (protocol, nmap service name) -> emulator/script; from the service_scripts table.
    service_scripts: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VirtualHost:
    ip: str
    mac: str
    os: str
    personality: str | None  # exact nmap-os-db Fingerprint name (None only in deployments made before 16)
    services: tuple[ServiceSpec, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "ip": self.ip,
            "mac": self.mac,
            "os": self.os,
            "personality": self.personality,
            "services": [
                {
                    "proto": s.proto,
                    "port": s.port,
                    "service": s.service,
                    "product": s.product,
                    "version": s.version,
                }
                for s in self.services
            ],
        }


@dataclass(frozen=True, slots=True)
class Plan:
    virtual_hosts: tuple[VirtualHost, ...]
    real_hosts: int
    free_ips: int
    quotas: dict[str, int]
    added: tuple[str, ...]  # addresses newly taken
    removed: tuple[str, ...]  # addresses given up
    changed: tuple[str, ...]  # addresses kept whose services changed
    warnings: tuple[str, ...] = ()
    explanations: Mapping[str, str] = field(default_factory=dict)  # by virtual address: why it wears that
    groups: Mapping[str, str] = field(default_factory=dict)  # real address -> the OS group it counts in
    left_out: tuple[str, ...] = ()  # real addresses in no group: no OS guess, or no fingerprint fits
    # virtual address -> TCP port -> the backend address it is redirected to (dynapot.redirects)
    redirects: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "virtual_hosts": [
                {**vh.as_json(), "why": self.explanations.get(vh.ip)} for vh in self.virtual_hosts
            ],
            "real_hosts": self.real_hosts,
            "free_ips": self.free_ips,
            "quotas": self.quotas,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "warnings": list(self.warnings),
            "groups": dict(self.groups),
            "left_out": list(self.left_out),
            "redirects": {ip: {str(p): b for p, b in ports.items()} for ip, ports in self.redirects.items()},
        }


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ip_key(ip: str) -> int:
    """Sort key for dotted-quad addresses, far cheaper than building IPv4Address objects."""
    return int.from_bytes(socket.inet_aton(ip), "big")


class _Draws:
    """Independent stable pseudo-random numbers for one address, from a single hash.

    One digest per address instead of one per decision keeps planning a /16 well under a second.
    """

    __slots__ = ("mac_prefix", "mac_suffix", "slot")

    def __init__(self, ip: str) -> None:
        digest = hashlib.blake2b(ip.encode(), digest_size=32, person=b"dynapot-plan").digest()
        self.slot = int.from_bytes(digest[0:8], "big")
        self.mac_prefix = int.from_bytes(digest[24:29], "big")
        self.mac_suffix = digest[29:32]


def largest_remainder(counts: Mapping[str, int | Fraction], seats: int) -> dict[str, int]:
    """Apportion `seats` to groups in proportion to `counts` (Hamilton's method); counts may be fractions.

    Ties in the remainder go to the larger group, then to the name that sorts first,
    so the result is deterministic.
    """
    total = sum(counts.values())
    if total == 0 or seats <= 0:
        return dict.fromkeys(counts, 0)
    exact = {name: Fraction(count * seats, total) for name, count in counts.items()}
    quotas = {name: int(share) for name, share in exact.items()}
    left = seats - sum(quotas.values())
    order = sorted(counts, key=lambda n: (-(exact[n] - quotas[n]), -counts[n], n))
    for name in order[:left]:
        quotas[name] += 1
    return quotas


def free_addresses(
    network: ipaddress.IPv4Network,
    used: Iterable[int],
    *,
    gateway: ipaddress.IPv4Address | None = None,
    excluded: Iterable[tuple[int, int]] = (),
) -> list[int]:
    """Addresses of `network` that nothing uses and that policy allows to fill, as integers.

    Never free: the network and broadcast addresses (for prefixes shorter than /31),
    the gateway, excluded ranges, and anything in `used`.
    """
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.prefixlen < 31:
        first, last = first + 1, last - 1
    taken = set(used)
    if gateway is not None:
        taken.add(int(gateway))
    blocked = sorted(excluded)
    result = []
    block_index = 0
    for address in range(first, last + 1):
        while block_index < len(blocked) and blocked[block_index][1] < address:
            block_index += 1
        if block_index < len(blocked) and blocked[block_index][0] <= address:
            continue
        if address not in taken:
            result.append(address)
    return result


def _service_spec(port: OpenPort, service: str) -> ServiceSpec:
    if service == OPEN:  # nothing behind the port speaks, so nothing can claim a product
        return ServiceSpec(port.proto, port.port, service)
    return ServiceSpec(port.proto, port.port, service, port.product, port.version)


def _services(host: RealHost, policy: Policy) -> tuple[ServiceSpec, ...]:
    specs = {
        (p.proto, p.port): _service_spec(p, policy.service_scripts.get((p.proto, p.service or ""), OPEN))
        for p in host.open_ports
    }
    return tuple(specs[key] for key in sorted(specs))


def _listed(ips: Sequence[str]) -> str:
    shown = ", ".join(ips[:LISTED])
    return f"{shown} and {len(ips) - LISTED} more" if len(ips) > LISTED else shown


K = TypeVar("K")


def _interleave(deficits: Mapping[K, int]) -> Iterator[K]:
    """Keys one seat at a time round the keys (so that no kind sits in one block of addresses)."""
    remaining = {key: count for key, count in deficits.items() if count > 0}
    while remaining:
        for key in list(remaining):
            yield key
            remaining[key] -= 1
            if remaining[key] == 0:
                del remaining[key]


@dataclass(frozen=True, slots=True, eq=False)  # one object per kind (`_Group._kind`): hashed by identity
class _Kind:
    """One kind of virtual host in a group: a fingerprint and the services of the real hosts it copies."""

    personality: str
    services: tuple[ServiceSpec, ...]
    key: str  # a stable name, for ordering


@dataclass
class _Member:
    host: RealHost
    resolution: Resolution | None  # None: known by its family only, it mirrors the group's other hosts
    services: tuple[ServiceSpec, ...]


class _Group:
    """One OS group: its real hosts, the kinds of virtual host that mirror them and their seats."""

    def __init__(self, name: str, members: list[_Member], catalog: PersonalityCatalog) -> None:
        self.name = name
        self.members = sorted(members, key=lambda m: ip_key(m.host.ip))
        described = next(m.host.group for m in self.members if m.resolution is not None)
        assert described is not None
        self.mac_prefixes = catalog.mac_prefixes_for(described, [m.host.mac for m in members if m.host.mac])
        self.weights: Counter[_Kind] = Counter()
        self.os_of: dict[str, list[_Member]] = defaultdict(list)  # fingerprint -> members whose OS gave it
        self.services_of: dict[tuple[ServiceSpec, ...], list[str]] = defaultdict(list)
        self._kinds: dict[tuple[str, tuple[ServiceSpec, ...]], _Kind] = {}
        # Weights in whole numbers: every host weighs `unit`; a resolved host shares it equally among
        # its fingerprints, one known by its family only as the resolved hosts' fingerprints share theirs.
        resolved = [m.resolution for m in self.members if m.resolution is not None]
        unit = math.lcm(*{len(r.fingerprints) for r in resolved}) * len(resolved)
        shares: Counter[str] = Counter()
        for resolution in resolved:
            for name in resolution.fingerprints:
                shares[name] += unit // (len(resolution.fingerprints) * len(resolved))
        for member in self.members:
            self.services_of[member.services].append(member.host.ip)
            if member.resolution is not None:
                fingerprints = member.resolution.fingerprints
                mix = dict.fromkeys(fingerprints, unit // len(fingerprints))
            else:
                mix = shares
            for name, weight in mix.items():
                self.weights[self._kind(name, member.services)] += weight
                self.os_of[name].append(member)
        self.by_personality: dict[str, list[_Kind]] = defaultdict(list)
        for kind in sorted(self.weights, key=lambda k: k.key):
            self.by_personality[kind.personality].append(kind)
        self.seats: dict[_Kind, int] = {}
        self._explained: dict[_Kind, str] = {}

    def _kind(self, personality: str, services: tuple[ServiceSpec, ...]) -> _Kind:
        key = (personality, services)
        if key not in self._kinds:
            self._kinds[key] = _Kind(personality, services, f"{personality}\0{services!r}")
        return self._kinds[key]

    def kind_of(self, vh: VirtualHost) -> _Kind | None:
        return self._kinds.get((vh.personality or "", vh.services))

    def apportion(self, seats: int) -> None:
        """The group's seats shared among its kinds in proportion to their weights."""
        by_key = {kind.key: kind for kind in self.weights}
        quotas = largest_remainder({kind.key: weight for kind, weight in self.weights.items()}, seats)
        self.seats = {by_key[key]: count for key, count in quotas.items()}

    def explain(self, kind: _Kind) -> str:
        """Which real hosts' OS the kind mirrors, the osclass/CPE matched, why this fingerprint."""
        text = self._explained.get(kind)
        if text is None:
            text = self._explained[kind] = self._explain(kind)
        return text

    def _explain(self, kind: _Kind) -> str:
        gave = [m for m in self.os_of[kind.personality] if m.resolution is not None]
        first = gave[0]  # every fingerprint of the group came from a host whose OS resolved to it
        assert first.resolution is not None
        text = (
            f"mirrors the OS of {_listed([m.host.ip for m in gave])} ({_said(first.host)}); "
            f"{first.resolution.class_of(kind.personality)}; {first.resolution.why}"
        )
        joined = [m.host for m in self.members if m.resolution is None]
        if joined:
            ips = _listed([h.ip for h in joined])
            text += f"; counted with them: {ips} ({_said(joined[0])}), known by family only"
        copied = self.services_of[kind.services]
        ports = ", ".join(f"{s.port}/{s.proto}" for s in kind.services) or "no open port"
        return f"{text}; services ({ports}) of {_listed(copied)}"


def _said(host: RealHost) -> str:
    """What a real host's OS answer was and where it came from: "nmap 100%: Linux 2.4.18-14 (Red Hat 8)"."""
    group = host.group
    if group is None:
        return "no OS guess"
    label = group.seen_names[0] if group.seen_names else group.name
    return f"{group.source}: {label}" if group.source else label


def plan(
    picture: NetworkPicture,
    policy: Policy,
    current: Sequence[VirtualHost],
    catalog: PersonalityCatalog,
) -> Plan:
    """The desired deployment: `current` changed as little as the new picture allows.

    The steps: resolve each real host's OS to fingerprints and group the hosts, apportion the
    free addresses to the groups and each group's seats to its kinds of host, keep what still
    fits of `current`, and fill the remaining seats with new hosts.
    """
    warnings: list[str] = []
    groups, left_out = _groups(picture.real_hosts, policy, catalog, warnings)
    seats = int(len(picture.free_ips) * policy.fill_ratio + 1e-9)
    quotas = largest_remainder({name: len(g.members) for name, g in groups.items()}, seats)
    for name, group in groups.items():
        group.apportion(quotas[name])
    kept, removed, changed = _keep_current(current, set(picture.free_ips), groups)
    taken = {vh.ip for vh, _ in kept}
    new = _place_new([ip for ip in picture.free_ips if ip not in taken], groups)
    hosts = kept + new
    explanations: dict[str, str] = {}
    for vh, kind in hosts:
        explanations[vh.ip] = groups[vh.os].explain(kind)
    return Plan(
        virtual_hosts=tuple(sorted((vh for vh, _ in hosts), key=lambda v: ip_key(v.ip))),
        real_hosts=len(picture.real_hosts),
        free_ips=len(picture.free_ips),
        quotas={name: quotas[name] for name in sorted(quotas)},
        added=tuple(sorted((vh.ip for vh, _ in new), key=ip_key)),
        removed=tuple(sorted(removed, key=ip_key)),
        changed=tuple(sorted(changed, key=ip_key)),
        warnings=tuple(warnings),
        explanations=explanations,
        groups={m.host.ip: name for name, g in sorted(groups.items()) for m in g.members},
        left_out=tuple(sorted(left_out, key=ip_key)),
    )


def _groups(
    real_hosts: Sequence[RealHost], policy: Policy, catalog: PersonalityCatalog, warnings: list[str]
) -> tuple[dict[str, _Group], list[str]]:
    """The OS groups by name, and the real hosts left out of every group (said in `warnings`).

    A host whose OS names a generation counts in its own group; one known by its family only
    joins the largest group of that family and device type, or else forms a group of the
    family's fallback generation.
    """
    members: dict[str, list[_Member]] = defaultdict(list)
    family_only: list[tuple[RealHost, Resolution]] = []
    unknown: list[str] = []
    unfit: dict[str, list[str]] = defaultdict(list)
    for host in real_hosts:
        if host.group is None:
            unknown.append(host.ip)
            continue
        resolution = catalog.resolve(host.group)
        if resolution is None:
            unfit[host.group.name].append(host.ip)
        elif resolution.kind == "family":
            family_only.append((host, resolution))
        else:
            members[host.group.name].append(_Member(host, resolution, _services(host, policy)))
    for host, resolution in family_only:
        assert host.group is not None
        peer = _peer_group(host.group, members)
        if peer is not None:
            members[peer].append(_Member(host, None, _services(host, policy)))
        else:
            members[host.group.name].append(_Member(host, resolution, _services(host, policy)))
    if unknown:
        unknown.sort(key=ip_key)
        warnings.append(
            f"{len(unknown)} real host(s) with no OS guess from nmap, p0f, services, TTL or MAC vendor, "
            f"left out of the ratio: {_listed(unknown)}"
        )
    for name, ips in sorted(unfit.items()):
        ips.sort(key=ip_key)
        warnings.append(
            f"no nmap-os-db fingerprint fits OS group {name!r}; its {len(ips)} real host(s) left out "
            f"of the ratio: {_listed(ips)}"
        )
    groups = {name: _Group(name, members[name], catalog) for name in sorted(members)}
    return groups, unknown + [ip for ips in unfit.values() for ip in ips]


def _lineage(group: GroupDescription) -> tuple[str, str, str]:
    return (
        (group.vendor or "").lower(),
        (group.family or "").lower(),
        (group.device_type or "general purpose").lower(),
    )


def _peer_group(group: GroupDescription, members: Mapping[str, list[_Member]]) -> str | None:
    """The group of `group`'s family and device type (and vendor, where both say) with the most real
    hosts; of equals, the newest generation (as for a family alone), then the first by name."""
    vendor, family, device_type = _lineage(group)
    best: tuple[int, tuple[int, int], str] | None = None
    for name, hosts in members.items():
        described = hosts[0].host.group
        assert described is not None
        their_vendor, their_family, their_type = _lineage(described)
        if (their_family, their_type) != (family, device_type) or (
            vendor and their_vendor and vendor != their_vendor
        ):
            continue
        release = release_key(described.family, described.generation, described.cpe) or (0, 0)
        rank = (len(hosts), release, name)
        if (
            best is None
            or (rank[0], rank[1]) > (best[0], best[1])
            or (rank[:2] == best[:2] and name < best[2])
        ):
            best = rank
    return best[2] if best else None


def _keep_current(
    current: Sequence[VirtualHost], free: set[str], groups: Mapping[str, _Group]
) -> tuple[list[tuple[VirtualHost, _Kind]], list[str], list[str]]:
    """The current hosts that still fit (kept), the addresses given up, and the kept addresses whose
    services changed.

    A host stays while its address is free and its group still has a seat for its kind; failing
    that, a seat of another kind with the same fingerprint (its services change); else it goes.
    The hosts are taken in a stable order, so that when a kind shrinks, the same ones go.
    """
    kept: list[tuple[VirtualHost, _Kind]] = []
    removed: list[str] = []
    changed: list[str] = []
    left = {name: dict(g.seats) for name, g in groups.items()}
    unmatched: list[VirtualHost] = []
    for vh in sorted(current, key=lambda v: _hash64(f"keep:{v.ip}")):
        group = groups.get(vh.os)
        if vh.ip not in free or group is None:
            removed.append(vh.ip)
            continue
        kind = group.kind_of(vh)
        if kind is not None and left[vh.os][kind] > 0:
            left[vh.os][kind] -= 1
            kept.append((vh, kind))
        else:
            unmatched.append(vh)
    for vh in unmatched:
        seats = left[vh.os]
        open_kinds = [k for k in groups[vh.os].by_personality.get(vh.personality or "", ()) if seats[k] > 0]
        if not open_kinds:
            removed.append(vh.ip)
            continue
        kind = max(open_kinds, key=lambda k: seats[k])  # the first of equals: by_personality is ordered
        seats[kind] -= 1
        changed.append(vh.ip)
        kept.append((VirtualHost(vh.ip, vh.mac, vh.os, vh.personality, kind.services), kind))
    for name, seats in left.items():
        groups[name].seats = seats  # what is still to fill
    return kept, removed, changed


def _place_new(free: Sequence[str], groups: Mapping[str, _Group]) -> list[tuple[VirtualHost, _Kind]]:
    """New virtual hosts for the groups' empty seats, on addresses scattered over `free` by hash."""
    draws = {ip: _Draws(ip) for ip in free}
    candidates = sorted(draws, key=lambda ip: draws[ip].slot)
    kinds = {
        name: _interleave({k: g.seats[k] for k in sorted(g.seats, key=lambda k: k.key)})
        for name, g in groups.items()
    }
    deficits = {name: sum(g.seats.values()) for name, g in groups.items()}
    new: list[tuple[VirtualHost, _Kind]] = []
    for ip, name in zip(candidates, _interleave(deficits), strict=False):
        group, draw, kind = groups[name], draws[ip], next(kinds[name])
        mac = format_mac(group.mac_prefixes[draw.mac_prefix % len(group.mac_prefixes)], draw.mac_suffix)
        new.append((VirtualHost(ip, mac, name, kind.personality, kind.services), kind))
    return new
