"""Choosing what a virtual host wears: an nmap-os-db fingerprint and a fitting MAC address.

Built once from the installed nmap's files, then queried by the pure planner.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dynapot.personality.osdb import Fingerprint, fingerprints_by_name

DEFAULT_MAC_PREFIXES = Path("/usr/share/nmap/nmap-mac-prefixes")

# Where real hosts of a group show no usable OUI, NIC vendors typical of the kind of machine.
FALLBACK_VENDORS: dict[str, tuple[str, ...]] = {
    "windows": ("Dell", "Hewlett Packard", "Lenovo", "Intel"),
    "linux": ("Dell", "Hewlett Packard", "Super Micro Computer", "Intel"),
    "bsd": ("Super Micro Computer", "Intel"),
    "mac os x": ("Apple",),
    "ios": ("Cisco Systems",),
    "router": ("Cisco Systems", "Juniper Networks", "MikroTik"),
    "switch": ("Cisco Systems", "Hewlett Packard"),
    "printer": ("Hewlett Packard", "Brother Industries", "Xerox", "Lexmark International"),
    "": ("Dell", "Hewlett Packard", "Intel"),
}
_WORD = re.compile(r"[a-z0-9.]+")


class MacVendors:
    """nmap-mac-prefixes: OUI to vendor and vendor to OUIs."""

    def __init__(self, entries: Iterable[tuple[int, str]]) -> None:
        self.vendor_by_prefix: dict[int, str] = {}
        self._prefixes_by_vendor: dict[str, list[int]] = defaultdict(list)
        for prefix, vendor in entries:
            self.vendor_by_prefix[prefix] = vendor
            self._prefixes_by_vendor[vendor.lower()].append(prefix)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_MAC_PREFIXES) -> MacVendors:
        entries = []
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                hexpart, _, vendor = line.strip().partition(" ")
                # Longer (MA-M/MA-S) prefixes exist in newer files; only 24-bit OUIs are used here.
                if len(hexpart) == 6 and vendor and not hexpart.startswith("#"):
                    try:
                        entries.append((int(hexpart, 16), vendor.strip()))
                    except ValueError:
                        continue
        return cls(entries)

    def vendor_of(self, mac: str) -> str | None:
        prefix = oui_of(mac)
        return None if prefix is None else self.vendor_by_prefix.get(prefix)

    def prefixes_for(self, vendor: str) -> list[int]:
        return self._prefixes_by_vendor.get(vendor.lower(), [])


def oui_of(mac: str) -> int | None:
    """The 24-bit OUI of a MAC, or None for a malformed or locally administered one."""
    digits = mac.replace(":", "").replace("-", "").lower()
    if len(digits) != 12:
        return None
    try:
        prefix = int(digits[:6], 16)
    except ValueError:
        return None
    if prefix & 0x020000 or prefix & 0x010000:  # locally administered or multicast: no vendor
        return None
    return prefix


def stable_choice(options: Sequence[str] | Sequence[int], key: str) -> int:
    """Index of the option that `key` always picks: variety across hosts, stability across runs."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(options)


def format_mac(prefix: int, suffix: bytes) -> str:
    """A MAC from a 24-bit vendor prefix and three host bytes."""
    return (prefix.to_bytes(3, "big") + suffix).hex(":")


def make_mac(prefix: int, key: str) -> str:
    """A MAC with vendor prefix `prefix` and a host part derived from `key` (stable per host)."""
    return format_mac(prefix, hashlib.blake2b(b"mac:" + key.encode(), digest_size=3).digest())


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """What the planner knows of an OS group when it asks for fingerprints."""

    name: str
    vendor: str | None = None
    family: str | None = None
    generation: str | None = None
    device_type: str | None = None
    seen_names: tuple[str, ...] = ()  # the tools' own labels for real hosts of the group


class PersonalityCatalog:
    """Fingerprints indexed for the questions the planner asks."""

    def __init__(self, fingerprints: Sequence[Fingerprint], mac_vendors: MacVendors) -> None:
        self.mac_vendors = mac_vendors
        self.names: set[str] = set()
        self._by_class: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._by_family: dict[str, list[str]] = defaultdict(list)
        self._words: list[tuple[str, frozenset[str]]] = []
        self.device_type: dict[str, str] = {}
        for fp in fingerprints_by_name(fingerprints).values():
            self.names.add(fp.name)
            class_words: set[str] = set()
            for cls in fp.classes:
                self._by_class[(cls.family.lower(), cls.generation.lower())].append(fp.name)
                self._by_family[cls.family.lower()].append(fp.name)
                class_words.update(_WORD.findall(f"{cls.vendor} {cls.family} {cls.generation}".lower()))
            if fp.classes:
                self.device_type[fp.name] = fp.classes[0].device_type
            self._words.append((fp.name, frozenset(_WORD.findall(fp.name.lower())) | class_words))

    def fingerprints_for(self, group: GroupDescription) -> list[str]:
        """Fingerprint names that fit `group`, most specific evidence first; [] if none fits."""
        exact = sorted({name for name in group.seen_names if name in self.names})
        if exact:
            return exact
        family = (group.family or "").lower()
        generation = (group.generation or "").lower()
        if not family:
            # A bare group name such as "Windows NT" may spell out an nmap class: family + generation.
            family, generation = self._class_named(group.name.lower())
        wanted_type = (group.device_type or "general purpose").lower()
        if family:
            by_class = self._by_class.get((family, generation))
            if by_class:
                return self._prefer_type(_dedupe(by_class), wanted_type)
        words = set(_WORD.findall(group.name.lower()))
        if words:
            matching = [name for name, vocab in self._words if words <= vocab]
            if matching:
                return self._prefer_type(matching, wanted_type)
        if family and self._by_family.get(family):
            return self._prefer_type(_dedupe(self._by_family[family]), wanted_type)
        return []

    def _class_named(self, name: str) -> tuple[str, str]:
        for family, generation in self._by_class:
            if f"{family} {generation}".strip() == name:
                return family, generation
        return "", ""

    def _prefer_type(self, names: list[str], device_type: str) -> list[str]:
        """Only fingerprints of the wanted device type, when there are any: no printers for a PC."""
        typed = [n for n in names if self.device_type.get(n, "").lower() == device_type]
        return typed or names

    def mac_prefixes_for(self, group: GroupDescription, real_macs: Iterable[str]) -> list[int]:
        """OUIs for virtual hosts of `group`: those of its real hosts, else typical vendors."""
        seen = sorted({p for mac in real_macs if (p := oui_of(mac)) in self.mac_vendors.vendor_by_prefix})
        if seen:
            return seen
        keys = [(group.device_type or "").lower(), (group.family or "").lower()]
        keys += [w for w in _WORD.findall(group.name.lower())]
        for key in [*keys, ""]:
            for vendor in FALLBACK_VENDORS.get(key, ()):
                prefixes = self.mac_vendors.prefixes_for(vendor)
                if prefixes:
                    return prefixes
        return sorted(self.mac_vendors.vendor_by_prefix)[:1]


def _dedupe(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
