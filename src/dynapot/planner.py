"""The planner: a pure function from the network picture to the virtual honeypots to deploy.

Rules, from the original design and the issues:
- The virtual OS mix mirrors the real one (largest-remainder apportionment): 2 Windows NT
  and 3 Red Hat hosts with 10 free addresses give 4 virtual NT and 6 virtual Red Hat.
- Each virtual host wears an nmap-os-db fingerprint of its group, a MAC with a vendor
  prefix that fits, and the open ports of one real host of its group (so that hosts are
  not clones and every port combination is one that really occurs).
- Re-planning moves as few virtual hosts as possible: kept hosts keep address, MAC and
  personality; choices are made by consistent hashing, so adding or removing one real
  host changes the choice for only a small share of virtual hosts.

No IO here: the caller supplies the picture, the policy, the current deployment and
the personality catalog.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import socket
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from dynapot.personality.catalog import GroupDescription, PersonalityCatalog, format_mac

UNKNOWN_GROUP = "unknown"
OPEN = "open"  # a port served without an emulator: accept and record what arrives
MAX_FINGERPRINT_CHOICES = 8


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
    group: GroupDescription | None  # None: OS unknown
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
    unknown_os: Literal["group", "exclude"] = "group"
    # (protocol, nmap service name) -> emulator/script; from the service_scripts table.
    service_scripts: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VirtualHost:
    ip: str
    mac: str
    os: str
    personality: str | None  # exact nmap-os-db Fingerprint name; None for the unknown group
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

    def as_json(self) -> dict[str, object]:
        return {
            "virtual_hosts": [vh.as_json() for vh in self.virtual_hosts],
            "real_hosts": self.real_hosts,
            "free_ips": self.free_ips,
            "quotas": self.quotas,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "warnings": list(self.warnings),
        }


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ip_key(ip: str) -> int:
    """Sort key for dotted-quad addresses, far cheaper than building IPv4Address objects."""
    return int.from_bytes(socket.inet_aton(ip), "big")


class _Ring:
    """Consistent hashing: a key maps to the next member clockwise; few keys move when members change."""

    REPLICAS = 3  # points per member, to even out the arcs

    def __init__(self, members: Sequence[str], label: str) -> None:
        points = sorted(
            (_hash64(f"{label}:{replica}:{member}"), member)
            for member in members
            for replica in range(self.REPLICAS)
        )
        self._hashes = [h for h, _ in points]
        self._members = [m for _, m in points]

    def pick(self, point: int) -> str:
        """The member owning `point` (a 64-bit hash of the key)."""
        index = bisect.bisect(self._hashes, point) % len(self._hashes)
        return self._members[index]


class _Draws:
    """Independent stable pseudo-random numbers for one address, from a single hash.

    One digest per address instead of one per decision keeps planning a /16 well under a second.
    """

    __slots__ = ("mac_prefix", "mac_suffix", "personality", "slot", "template")

    def __init__(self, ip: str) -> None:
        digest = hashlib.blake2b(ip.encode(), digest_size=32, person=b"dynapot-plan").digest()
        self.slot = int.from_bytes(digest[0:8], "big")
        self.template = int.from_bytes(digest[8:16], "big")
        self.personality = int.from_bytes(digest[16:24], "big")
        self.mac_prefix = int.from_bytes(digest[24:29], "big")
        self.mac_suffix = digest[29:32]


def largest_remainder(counts: Mapping[str, int], seats: int) -> dict[str, int]:
    """Apportion `seats` to groups in proportion to `counts` (Hamilton's method).

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


def _group_name(host: RealHost) -> str:
    return host.group.name if host.group is not None else UNKNOWN_GROUP


def _service_spec(port: OpenPort, service: str) -> ServiceSpec:
    if service == OPEN:  # nothing behind the port speaks, so nothing can claim a product
        return ServiceSpec(port.proto, port.port, service)
    return ServiceSpec(port.proto, port.port, service, port.product, port.version)


def _services(host: RealHost | None, policy: Policy) -> tuple[ServiceSpec, ...]:
    if host is None:
        return ()
    specs = {
        (p.proto, p.port): _service_spec(p, policy.service_scripts.get((p.proto, p.service or ""), OPEN))
        for p in host.open_ports
    }
    return tuple(specs[key] for key in sorted(specs))


def _best_fingerprints(candidates: list[str], group: GroupDescription) -> list[str]:
    """The few candidates that fit the group's own words best: no exotic appliances for a PC."""
    if group.seen_names or len(candidates) <= MAX_FINGERPRINT_CHOICES:
        return candidates
    words = set(group.name.lower().split())
    ranked = sorted(candidates, key=lambda n: (-len(words & set(n.lower().split())), len(n), n))
    return ranked[:MAX_FINGERPRINT_CHOICES]


@dataclass
class _GroupPlan:
    """One OS group: its real hosts (by address), what its virtual hosts may wear, the rings that choose."""

    description: GroupDescription | None
    members: list[RealHost]
    fingerprints: list[str]
    mac_prefixes: list[int]
    templates: _Ring | None = None
    personalities: _Ring | None = None


def plan(
    picture: NetworkPicture,
    policy: Policy,
    current: Sequence[VirtualHost],
    catalog: PersonalityCatalog,
) -> Plan:
    """The desired deployment: `current` changed as little as the new picture allows.

    The steps: group the real hosts by OS, apportion the free addresses to the groups,
    keep what still fits of `current`, and fill each group's remaining seats with new hosts.
    """
    warnings: list[str] = []
    groups = _plan_groups(_members_by_group(picture, policy), catalog, warnings)
    seats = int(len(picture.free_ips) * policy.fill_ratio + 1e-9)
    quotas = largest_remainder({name: len(g.members) for name, g in groups.items()}, seats)
    services = _ServiceChoice(groups, policy)
    kept, removed, changed = _keep_current(current, set(picture.free_ips), groups, quotas, services)
    filled = Counter(vh.os for vh in kept)
    deficits = {name: quotas[name] - filled[name] for name in sorted(groups)}
    taken = {vh.ip for vh in kept}
    new = _place_new([ip for ip in picture.free_ips if ip not in taken], deficits, groups, services)
    return Plan(
        virtual_hosts=tuple(sorted(kept + new, key=lambda v: ip_key(v.ip))),
        real_hosts=len(picture.real_hosts),
        free_ips=len(picture.free_ips),
        quotas={name: quotas[name] for name in sorted(quotas)},
        added=tuple(sorted((vh.ip for vh in new), key=ip_key)),
        removed=tuple(sorted(removed, key=ip_key)),
        changed=tuple(sorted(changed, key=ip_key)),
        warnings=tuple(warnings),
    )


def _members_by_group(picture: NetworkPicture, policy: Policy) -> dict[str, list[RealHost]]:
    """The real hosts by OS group name; hosts of unknown OS form their own group unless excluded."""
    members: dict[str, list[RealHost]] = defaultdict(list)
    for host in picture.real_hosts:
        if host.group is None and policy.unknown_os == "exclude":
            continue
        members[_group_name(host)].append(host)
    return members


def _plan_groups(
    members: Mapping[str, list[RealHost]], catalog: PersonalityCatalog, warnings: list[str]
) -> dict[str, _GroupPlan]:
    """Each group's fingerprints, MAC prefixes and rings, by name; a group no fingerprint fits is left out."""
    groups: dict[str, _GroupPlan] = {}
    for name in sorted(members):
        group = _plan_group(name, members[name], catalog)
        if group is None:
            warnings.append(f"no nmap-os-db fingerprint fits OS group {name!r}; group left out")
        else:
            groups[name] = group
    return groups


def _plan_group(name: str, hosts: list[RealHost], catalog: PersonalityCatalog) -> _GroupPlan | None:
    """The plan of one group, or None when no fingerprint fits it."""
    description = hosts[0].group
    if description is None:
        fingerprints: list[str] = []
        prefixes = catalog.mac_prefixes_for(GroupDescription(UNKNOWN_GROUP), [])
    else:
        # The group as all its members saw it: every OS name nmap gave any of them.
        seen = tuple(sorted({n for h in hosts if h.group for n in h.group.seen_names}))
        description = GroupDescription(
            name,
            description.vendor,
            description.family,
            description.generation,
            description.device_type,
            seen,
        )
        fingerprints = _best_fingerprints(catalog.fingerprints_for(description), description)
        if not fingerprints:
            return None
        prefixes = catalog.mac_prefixes_for(description, [h.mac for h in hosts if h.mac])
    group = _GroupPlan(description, sorted(hosts, key=lambda h: h.ip), fingerprints, prefixes)
    group.templates = _Ring([h.ip for h in group.members], f"template:{name}")
    if fingerprints:
        group.personalities = _Ring(fingerprints, f"personality:{name}")
    return group


class _ServiceChoice:
    """Which real host of its group a virtual host copies its services from (by consistent hashing)."""

    def __init__(self, groups: Mapping[str, _GroupPlan], policy: Policy) -> None:
        self._policy = policy
        self._by_ip = {h.ip: h for g in groups.values() for h in g.members}
        self._cache: dict[str, tuple[ServiceSpec, ...]] = {}  # by template address

    def of(self, ip: str, group: _GroupPlan, draw: _Draws | None = None) -> tuple[ServiceSpec, ...]:
        """The services of virtual host `ip` in `group` (`draw`: its hashes, when already made)."""
        draw = draw or _Draws(ip)
        template_ip = group.templates.pick(draw.template) if group.templates else ""
        services = self._cache.get(template_ip)
        if services is None:
            services = self._cache[template_ip] = _services(self._by_ip.get(template_ip), self._policy)
        return services


def _keep_current(
    current: Sequence[VirtualHost],
    free: set[str],
    groups: Mapping[str, _GroupPlan],
    quotas: Mapping[str, int],
    services: _ServiceChoice,
) -> tuple[list[VirtualHost], list[str], list[str]]:
    """The current hosts that still fit (kept, with today's services), the addresses given up, and
    the kept addresses whose services changed.

    A host stays while its address is free, its group exists and its personality still fits that
    group, within the group's quota.
    """
    kept: list[VirtualHost] = []
    removed: list[str] = []
    changed: list[str] = []
    filled: Counter[str] = Counter()
    # Keep current hosts in a stable order so that, when a group shrinks, the same ones go.
    for vh in sorted(current, key=lambda v: _hash64(f"keep:{v.ip}")):
        group = groups.get(vh.os)
        valid_personality = group is not None and (
            vh.personality in group.fingerprints if group.fingerprints else vh.personality is None
        )
        if vh.ip not in free or group is None or not valid_personality or filled[vh.os] >= quotas[vh.os]:
            removed.append(vh.ip)
            continue
        filled[vh.os] += 1
        wanted = services.of(vh.ip, group)
        if wanted != vh.services:
            changed.append(vh.ip)
        kept.append(VirtualHost(vh.ip, vh.mac, vh.os, vh.personality, wanted))
    return kept, removed, changed


def _interleave(deficits: Mapping[str, int]) -> list[str]:
    """Group names, one seat at a time round the groups (so that no group sits in one block of addresses)."""
    order: list[str] = []
    remaining = {name: count for name, count in deficits.items() if count > 0}
    while remaining:
        for name in list(remaining):
            order.append(name)
            remaining[name] -= 1
            if remaining[name] == 0:
                del remaining[name]
    return order


def _place_new(
    free: Sequence[str],
    deficits: Mapping[str, int],
    groups: Mapping[str, _GroupPlan],
    services: _ServiceChoice,
) -> list[VirtualHost]:
    """New virtual hosts for the groups' missing seats, on addresses scattered over `free` by hash."""
    draws = {ip: _Draws(ip) for ip in free}
    candidates = sorted(draws, key=lambda ip: draws[ip].slot)
    new: list[VirtualHost] = []
    for ip, name in zip(candidates, _interleave(deficits), strict=False):
        group = groups[name]
        draw = draws[ip]
        personality = group.personalities.pick(draw.personality) if group.personalities else None
        prefix = group.mac_prefixes[draw.mac_prefix % len(group.mac_prefixes)]
        mac = format_mac(prefix, draw.mac_suffix)
        new.append(VirtualHost(ip, mac, name, personality, services.of(ip, group, draw)))
    return new
