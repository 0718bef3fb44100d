"""From a honeyd configuration to the sensor's host definitions, refusing what cannot work.

Checks beyond the grammar: every personality must be the exact name of a Fingerprint in
the installed nmap-os-db (the closest names are suggested otherwise); an ethernet vendor
name must exist in nmap-mac-prefixes; no MAC may be used twice; the sensor interface's
own addresses may not be bound (the kernel owns them). Errors carry the line and reason.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dynapot.honeyd.config import Action, Condition, DynamicRule, HoneydConfig, Template, Topology
from dynapot.honeyd.parser import HoneydConfigError, parse_config
from dynapot.personality.catalog import MacVendors, format_mac
from dynapot.personality.legacy_names import closest_fingerprint
from dynapot.personality.osdb import Fingerprint, fingerprints_by_name

CLOSED = Action("closed")
OPEN = Action("open")


@dataclass(slots=True)
class HostDefinition:
    """One bound address, with everything the sensor needs to answer for it."""

    ip: int
    address: str
    mac: bytes
    template: str
    personality: Fingerprint | None
    uptime: int | None  # honeyd's `set T uptime N`; None: the host's identity decides
    tcp: dict[int, Action] = field(default_factory=dict)
    udp: dict[int, Action] = field(default_factory=dict)
    default_tcp: Action = CLOSED
    default_udp: Action = CLOSED
    default_icmp: Action = OPEN
    line: int = field(default=0, compare=False)  # where it was defined; not part of what it is
    # A dynamic template's other templates, each with the condition on the source that picks it
    # (in honeyd's order; the first that holds wins, else this definition answers).
    variants: tuple[tuple[Condition, HostDefinition], ...] = ()


@dataclass(slots=True)
class SensorConfig:
    hosts: dict[int, HostDefinition]
    source: str
    # What the configuration asks that the sensor does not do (yet), or did differently: logged
    # at load and printed by `dynapot honeyd-check`, never silent.
    notes: list[str] = field(default_factory=list)
    topology: Topology = field(default_factory=Topology)  # honeyd's routers (`route ...`)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _Checker:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, line: int | None, reason: str) -> HoneydConfigError:
        number = line or 0
        text = self.lines[number - 1].strip() if 0 < number <= len(self.lines) else ""
        return HoneydConfigError(self.source, number, text, reason)


def _vendor_mac(vendor: str, ip: str, vendors: MacVendors) -> bytes | None:
    wanted = vendor.strip().lower()
    prefixes = vendors.prefixes_for(vendor)
    if not prefixes:
        # honeyd users write short names ("dell", "intel"): take vendors whose name starts so.
        names = sorted(
            {name for name in vendors.vendor_by_prefix.values() if name.lower().split()[0] == wanted}
        )
        prefixes = sorted(p for p, name in vendors.vendor_by_prefix.items() if name in names)
    if not prefixes:
        return None
    prefix = prefixes[_stable_int(f"oui:{ip}") % len(prefixes)]
    suffix = hashlib.blake2b(f"mac:{ip}".encode(), digest_size=3).digest()
    return bytes.fromhex(format_mac(prefix, suffix).replace(":", ""))


def _mac_of(template: Template, ip: str, vendors: MacVendors, check: _Checker, line: int) -> bytes:
    value = template.ethernet
    if value is None:
        # No ethernet line: a stable MAC of a common NIC vendor, never a random one per start.
        value = "Intel"
    if ":" in value:
        return bytes.fromhex(value.replace(":", ""))
    mac = _vendor_mac(value, ip, vendors)
    if mac is None:
        raise check.fail(line, f"ethernet vendor {value!r} is not in nmap-mac-prefixes")
    return mac


def build_sensor_config(
    config: HoneydConfig,
    text: str,
    *,
    fingerprints: Iterable[Fingerprint],
    mac_vendors: MacVendors,
    own_addresses: Collection[str] = (),
    source: str = "<string>",
) -> SensorConfig:
    check = _Checker(text, source)
    notes = [f"line {note.line}: {note.text}" for note in config.notes]
    build = _Builder(check, list(fingerprints), notes)
    own = set(own_addresses)
    hosts: dict[int, HostDefinition] = {}
    macs: dict[bytes, str] = {}
    for router in config.topology.routers.values():
        if router.tunnels:
            notes.append(f"router {router.address}: GRE tunnels are not built; packets for them are dropped")
    for address in config.bound_addresses():
        template = config.template_for(address)
        assert template is not None  # the parser guarantees bound templates exist
        line = config.bind_lines.get(address, template.line or 0)
        rules: list[DynamicRule] = []
        if template.dynamic is not None:
            template, rules = _dynamic_rules(config, template, check, line)
        if address in own:
            raise check.fail(line, f"{address} belongs to the sensor interface itself; it cannot be virtual")
        mac = _mac_of(template, address, mac_vendors, check, template.line or line)
        explicit = template.ethernet is not None and ":" in template.ethernet
        while mac in macs and not explicit:
            # Two derived MACs collided (24 random bits per vendor prefix): step to the next one.
            mac = mac[:3] + ((int.from_bytes(mac[3:], "big") + 1) % (1 << 24)).to_bytes(3, "big")
        if mac in macs:
            raise check.fail(line, f"MAC {mac.hex(':')} is used by {macs[mac]} too")
        if mac[0] & 1:
            raise check.fail(template.line or line, f"MAC {mac.hex(':')} is a multicast address")
        macs[mac] = address
        host = build.definition(template, address, mac, line)
        # A dynamic template's conditional templates answer on the same address and MAC.
        host.variants = tuple(
            (rule.condition, build.definition(config.templates[rule.template], address, mac, line))
            for rule in rules
            if rule.condition is not None
        )
        hosts[host.ip] = host
    return SensorConfig(hosts=hosts, source=source, notes=notes, topology=config.topology)


class _Builder:
    """One template on one address as a HostDefinition, its personality checked."""

    def __init__(self, check: _Checker, fingerprints: list[Fingerprint], notes: list[str]) -> None:
        self.check, self.fingerprints, self.notes = check, fingerprints, notes
        self.by_name = fingerprints_by_name(fingerprints)
        self.read_as: dict[str, Fingerprint | None] = {}  # honeyd's old names, read once each

    def definition(self, template: Template, address: str, mac: bytes, line: int) -> HostDefinition:
        host = HostDefinition(
            ip=int(ipaddress.IPv4Address(address)),
            address=address,
            mac=mac,
            template=template.base or template.name,
            personality=self.personality(template, address, line),
            uptime=template.uptime,
            default_tcp=template.defaults.get("tcp", CLOSED),
            default_udp=template.defaults.get("udp", CLOSED),
            default_icmp=template.defaults.get("icmp", OPEN),
            line=line,
        )
        for (proto, port), action in template.ports.items():
            if action.tarpit and proto == "udp":
                self.notes.append(f"{address} udp port {port}: tarpit slows TCP only; served as usual")
            (host.tcp if proto == "tcp" else host.udp)[port] = action
        return host

    def personality(self, template: Template, address: str, line: int) -> Fingerprint | None:
        by_name = self.by_name
        if template.random_personality:  # honeyd draws one; ours is stable per address
            names = sorted(by_name)
            return by_name[names[_stable_int(f"random:{address}") % len(names)]]
        name = template.personality
        if name is None:
            return None
        personality = by_name.get(name)
        if personality is None and name not in self.read_as:
            # honeyd's names came from nmap's first generation: read as today's closest entry.
            self.read_as[name] = found = closest_fingerprint(name, self.fingerprints)
            if found is not None:
                self.notes.append(
                    f"line {template.line or line}: personality {name!r} is not in "
                    f"nmap-os-db (honeyd's first-generation name?): answering as {found.name!r}"
                )
        personality = personality or self.read_as.get(name)
        if personality is None:
            close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(repr(c) for c in close)}" if close else ""
            raise self.check.fail(
                template.line or line, f"personality {name!r} is not in the installed nmap-os-db{hint}"
            )
        return personality


def _dynamic_rules(
    config: HoneydConfig, template: Template, check: _Checker, line: int
) -> tuple[Template, list[DynamicRule]]:
    """A dynamic template's default template (its `otherwise` rule, else its last one, where
    honeyd too falls through) and the conditional rules tried before it, each naming a plain
    template."""
    rules = template.dynamic or []
    if not rules:
        reason = f"dynamic template {template.name!r} uses no template (add {template.name} use T if ...)"
        raise check.fail(line, reason)
    for rule in rules:
        used = config.templates.get(rule.template)
        if used is None or used.dynamic is not None:
            reason = (
                f"dynamic template {template.name!r} uses {rule.template!r}, which is not a plain template"
            )
            raise check.fail(line, reason)
    # Rules are tried in order and `otherwise` holds always: none after it is ever reached.
    first_otherwise = next((i for i, rule in enumerate(rules) if rule.condition is None), None)
    if first_otherwise is not None:
        return config.templates[rules[first_otherwise].template], list(rules[:first_otherwise])
    return config.templates[rules[-1].template], list(rules)


def parse_sensor_config(
    text: str,
    *,
    source: str,
    fingerprints: Iterable[Fingerprint],
    mac_vendors: MacVendors,
    own_addresses: Collection[str] = (),
    builtin_services: Collection[str] | None = None,
    base_dir: Path | None = None,
) -> SensorConfig:
    """A honeyd configuration's text as the sensor's hosts (parsed, then checked against the
    databases); `include` reads files relative to `base_dir` (refused when None)."""
    kwargs = {"builtin_services": builtin_services} if builtin_services is not None else {}
    return build_sensor_config(
        parse_config(text, source=source, base_dir=base_dir, **kwargs),
        text,
        fingerprints=fingerprints,
        mac_vendors=mac_vendors,
        own_addresses=own_addresses,
        source=source,
    )
