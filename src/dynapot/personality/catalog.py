"""Choosing what a virtual host wears: an nmap-os-db fingerprint and a fitting MAC address.

Built once from the installed nmap's files, then queried by the pure planner.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dynapot.personality.osdb import Fingerprint, OsClass, fingerprints_by_name

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
MAX_CHOICES = 8  # fingerprints one real host's OS resolves to, at most


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
    """What is known of one real host's OS when the planner asks for fingerprints.

    `name` is the OS group it counts in ("Windows NT", "Linux 2.4.X"); vendor, family,
    generation and device type are the tool's osclass (nmap's osfamily/osgen/type), `cpe`
    the CPE names of that class (cpe:/o:microsoft:windows_nt:4.0), `seen_names` the tool's
    own labels for the host ("Microsoft Windows NT 4.0 SP5 - SP6"), `source` which tool or
    clue gave the answer ("nmap 100%", "ttl 20%").
    """

    name: str
    vendor: str | None = None
    family: str | None = None
    generation: str | None = None
    device_type: str | None = None
    seen_names: tuple[str, ...] = ()
    cpe: tuple[str, ...] = ()
    source: str = ""


MatchKind = Literal["exact", "generation", "nearest", "family", "named"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """The fingerprints a real host's OS answer resolves to, and why.

    `kind`: "exact" (the tool's own match is an nmap-os-db fingerprint), "generation" (same
    osclass, and the same release by CPE where the class's generation has no number, as NT's),
    "nearest" (the nearest generation of the same vendor, family and device type: the exact one
    has no fingerprint), "family" (only the family is known: the planner prefers the generation
    of the network's real hosts of that family; these are the fallback), "named" (no osclass,
    only a name: the fingerprints named most like it). `classes` gives each fingerprint's osclass
    and CPE as nmap-os-db writes them; `why` says why these, in words.
    """

    fingerprints: tuple[str, ...]
    kind: MatchKind
    classes: tuple[str, ...]  # one per fingerprint, in the same order
    why: str

    def class_of(self, fingerprint: str) -> str:
        return self.classes[self.fingerprints.index(fingerprint)]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One Class line of one fingerprint, with its place in the order of releases."""

    name: str
    cls: OsClass
    release: tuple[int, int] | None


# Windows generations in the order they came out: (line, year); line 0 is the 9x line, 1 the NT one.
_WINDOWS_RELEASES: dict[str, tuple[int, int]] = {
    "3.x": (0, 1992),
    "95": (0, 1995),
    "98": (0, 1998),
    "me": (0, 2000),
    "2000": (1, 2000),
    "xp": (1, 2001),
    "2003": (1, 2003),
    "vista": (1, 2007),
    "2008": (1, 2008),
    "7": (1, 2009),
    "8": (1, 2012),
    "2012": (1, 2012),
    "8.1": (1, 2013),
    "10": (1, 2015),
    "2016": (1, 2016),
    "2019": (1, 2018),
    "11": (1, 2021),
    "2022": (1, 2021),
}
_NT_RELEASES = {"3.1": 1993, "3.5": 1994, "3.51": 1995, "4.0": 1996}  # nmap's osgen "NT": by CPE version
_NT_KERNEL = {"5": 2001, "6": 2009, "10": 2015}  # p0f's "NT kernel 5.x"
# Generations that name a range or a choice ("2.2.x-3.x", "7 or 8", "3.11 and newer", "NT kernel").
_VAGUE = re.compile(r"\bor\b|newer|older|earlier|later|kernel|\d\s*-\s*\d|x\s*-")
_ALTERNATIVE = re.compile(r"\s+or\s+|\s+and\s+|\s*-\s*")
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
_ANY_TYPE = "general purpose"


def _cpe_fields(cpe: str) -> tuple[str, ...]:
    """'cpe:/o:microsoft:windows_nt:4.0:sp5' -> ('o', 'microsoft', 'windows_nt', '4.0', 'sp5')."""
    return tuple(cpe.strip().lower().removeprefix("cpe:/").split(":"))


def _os_cpes(cpes: Iterable[str]) -> list[tuple[str, ...]]:
    return [f for f in map(_cpe_fields, cpes) if len(f) >= 3 and f[0] == "o"]


def _release_of_version(version: str) -> str:
    """A CPE version down to its release: '4.0' -> '4.0', '2.4.18-14' -> '2.4'."""
    return ".".join(version.split("-")[0].split(".")[:2])


def _numbered(generation: str) -> bool:
    return any(ch.isdigit() for ch in generation)


def _agreeing_cpes(host_cpes: Sequence[str], cls: OsClass) -> list[str]:
    """The class's CPE names for the release the host's CPE names.

    Where the class's generation has a number ("2.4.X", "7") it fixes the release, and a CPE
    need only name the same product; where it has none ("NT": 3.1, 3.51 and 4.0) the CPE's
    version must agree too (cpe:/o:microsoft:windows_nt:4.0 is NT 4.0).
    """
    numbered = _numbered(cls.generation)
    agreeing = []
    for cpe in cls.cpe:
        other = _cpe_fields(cpe)
        for mine in _os_cpes(host_cpes):
            wanted = _release_of_version(mine[3]) if len(mine) > 3 else ""
            if other[1:3] == mine[1:3] and (
                numbered or not wanted or (len(other) > 3 and _release_of_version(other[3]) == wanted)
            ):
                agreeing.append(cpe)
                break
    return agreeing


def _same_release(host_cpes: Sequence[str], cls: OsClass) -> bool:
    """Whether `cls` names the host's release; a host without an OS CPE agrees with any class."""
    if not _os_cpes(host_cpes):
        return True
    if not _os_cpes(cls.cpe):
        return _numbered(cls.generation)  # the generation's number is all there is to go by
    return bool(_agreeing_cpes(host_cpes, cls))


def _first_alternative(generation: str) -> str:
    """'2.2.x-3.x' -> '2.2.x', '7 or 8' -> '7', '3.11 and newer' -> '3.11'."""
    return _ALTERNATIVE.split(generation.strip(), maxsplit=1)[0]


def release_key(
    family: str | None, generation: str | None, cpes: Sequence[str] = ()
) -> tuple[int, int] | None:
    """A generation's place in its family's order of releases: (line, number); None if unknown.

    Windows by year and line (9x or NT; NT's own releases by CPE version); other families by
    the generation's version ("2.4.X" -> 2.4), else by the CPE's version.
    """
    text = (generation or "").strip().lower()
    if (family or "").lower() == "windows":
        if text == "nt":
            versions = [
                _release_of_version(f[3]) for f in _os_cpes(cpes) if len(f) > 3 and f[2] == "windows_nt"
            ]
            year = next((_NT_RELEASES[v] for v in versions if v in _NT_RELEASES), _NT_RELEASES["4.0"])
            return (1, year)
        kernel = re.match(r"nt kernel (\d+)", text)
        if kernel:
            year = _NT_KERNEL.get(kernel.group(1))
            return (1, year) if year else None
        return _WINDOWS_RELEASES.get(_first_alternative(text))
    match = _VERSION.search(_first_alternative(text)) if text else None
    if match is None:
        versions = [f[3] for f in _os_cpes(cpes) if len(f) > 3 and f[3]]
        match = _VERSION.search(versions[0]) if versions else None
    if match is None:
        return None
    return (0, int(match.group(1)) * 1000 + min(int(match.group(2) or 0), 999))


def _vague(generation: str | None) -> bool:
    return not generation or bool(_VAGUE.search(generation.lower()))


def _class_text(cls: OsClass, cpe: Sequence[str] = ()) -> str:
    text = f"{cls.vendor} | {cls.family} | {cls.generation} | {cls.device_type}"
    return f"{text}, {cpe[0]}" if cpe else text


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


class PersonalityCatalog:
    """Fingerprints indexed for the questions the planner asks."""

    def __init__(self, fingerprints: Sequence[Fingerprint], mac_vendors: MacVendors) -> None:
        self.mac_vendors = mac_vendors
        self.names: set[str] = set()
        self.device_type: dict[str, str] = {}
        self._types: dict[str, frozenset[str]] = {}
        self._name_words: dict[str, frozenset[str]] = {}
        self._entries: dict[str, list[_Entry]] = defaultdict(list)  # by fingerprint name
        self._by_lineage: dict[tuple[str, str], list[_Entry]] = defaultdict(list)  # (family, device type)
        self._class_names: dict[str, tuple[str, str]] = {}  # "windows nt" -> ("Windows", "NT")
        self._words: list[tuple[str, frozenset[str]]] = []
        for fp in fingerprints_by_name(fingerprints).values():
            self.names.add(fp.name)
            self._name_words[fp.name] = _words(fp.name)
            class_words: set[str] = set()
            for cls in fp.classes:
                entry = _Entry(fp.name, cls, release_key(cls.family, cls.generation, cls.cpe))
                self._entries[fp.name].append(entry)
                self._by_lineage[(cls.family.lower(), cls.device_type.lower())].append(entry)
                self._class_names.setdefault(
                    f"{cls.family} {cls.generation}".strip().lower(), (cls.family, cls.generation)
                )
                class_words.update(_WORD.findall(f"{cls.vendor} {cls.family} {cls.generation}".lower()))
            if fp.classes:
                self.device_type[fp.name] = fp.classes[0].device_type
            self._types[fp.name] = frozenset(c.device_type.lower() for c in fp.classes)
            self._words.append((fp.name, self._name_words[fp.name] | class_words))
        self._resolved: dict[GroupDescription, Resolution | None] = {}

    def os_names(self, fingerprint: str) -> frozenset[str]:
        """What a fingerprint's OS is called, lower-cased: each class's family ("linux") and its
        family and generation ("linux 2.6.x"); empty for a name not in the database."""
        names: set[str] = set()
        for entry in self._entries.get(fingerprint, ()):
            names.add(entry.cls.family.lower())
            names.add(f"{entry.cls.family} {entry.cls.generation}".strip().lower())
        return frozenset(names)

    def fingerprints_for(self, group: GroupDescription) -> list[str]:
        """Fingerprint names that fit `group`, best first; [] if none fits (see `resolve`)."""
        resolution = self.resolve(group)
        return list(resolution.fingerprints) if resolution else []

    def resolve(self, group: GroupDescription) -> Resolution | None:
        """The fingerprints of the same generation as `group`, or None when none fits.

        In order: the tool's own match if nmap-os-db has it; fingerprints of the same osclass
        and release (CPE); the nearest generation of the same vendor, family and device type;
        for a family alone, the generation nearest to what it hints at, else its newest. Never
        a fingerprint of another device type. Answers are cached: the daemon re-plans often.
        """
        if group not in self._resolved:
            self._resolved[group] = self._resolve(group)
        return self._resolved[group]

    def _resolve(self, group: GroupDescription) -> Resolution | None:
        labels = group.seen_names or (group.name,)
        exact = sorted({name for name in group.seen_names if name in self.names})
        if exact:
            why = (
                f"nmap-os-db has {exact[0]!r} itself"
                if len(exact) == 1
                else "nmap-os-db has these themselves"
            )
            return Resolution(tuple(exact), "exact", self._classes_of(exact, group.cpe), why)
        vendor, family, generation = group.vendor, group.family, group.generation
        if not family:
            family, generation = self._class_names.get(group.name.lower(), (None, None))
        device_type = (group.device_type or _ANY_TYPE).lower()
        if not family:
            return self._named(group, device_type)
        lineage = [
            e
            for e in self._by_lineage.get((family.lower(), device_type), ())
            if self._types[e.name] == {device_type} and (not vendor or e.cls.vendor.lower() == vendor.lower())
        ]
        if not lineage:
            return None
        described = " ".join(w for w in (vendor if vendor != family else None, family, generation) if w)
        key = release_key(family, generation, group.cpe)
        if not _vague(generation):
            same = [
                e
                for e in lineage
                if e.cls.generation.lower() == (generation or "").lower() and _same_release(group.cpe, e.cls)
            ]
            if same:
                return self._chosen(same, labels, group, "generation", self._why_same(same, labels, group))
            if key is not None and (nearest := self._nearest(lineage, key)):
                why = (
                    f"nearest generation: nmap-os-db has no {described} fingerprint "
                    f"({device_type}); {nearest[0].cls.generation} is the nearest"
                )
                return self._chosen(nearest, labels, group, "nearest", why)
        if key is not None and (nearest := self._nearest(lineage, key)):
            why = (
                f"only the family is known ({described}): {nearest[0].cls.generation} is the "
                f"generation nearest to {_first_alternative(generation or '')!r}"
            )
            return self._chosen(nearest, labels, group, "family", why)
        newest = self._newest(lineage)
        why = (
            f"only the family is known ({described}): its newest generation in nmap-os-db, "
            f"{newest[0].cls.generation}"
        )
        return self._chosen(newest, labels, group, "family", why)

    def _chosen(
        self,
        entries: Sequence[_Entry],
        labels: Sequence[str],
        group: GroupDescription,
        kind: MatchKind,
        why: str,
    ) -> Resolution:
        names = self._closest({e.name for e in entries}, labels)
        return Resolution(tuple(names), kind, self._classes_of(names, group.cpe, entries), why)

    def _why_same(self, same: Sequence[_Entry], labels: Sequence[str], group: GroupDescription) -> str:
        count = len({e.name for e in same})
        names = self._closest({e.name for e in same}, labels)
        if group.seen_names:
            return (
                f"same generation: nmap-os-db has no fingerprint named {labels[0]!r}; of the {count} "
                f"of its generation, the {len(names)} named most like it"
            )
        return f"same generation: {len(names)} of its {count} fingerprints"

    def _named(self, group: GroupDescription, device_type: str) -> Resolution | None:
        """No osclass: the fingerprints whose names and classes carry every word of the group's name."""
        words = set(_WORD.findall(group.name.lower()))
        matching = [
            n for n, vocab in self._words if words and words <= vocab and self._types[n] == {device_type}
        ]
        if not matching:
            return None
        names = self._closest(matching, group.seen_names or (group.name,))
        why = f"no osclass known: the fingerprints named most like {group.name!r}"
        return Resolution(tuple(names), "named", self._classes_of(names, ()), why)

    @staticmethod
    def _nearest(lineage: Sequence[_Entry], key: tuple[int, int]) -> list[_Entry]:
        """The entries of the release nearest to `key`: on the same line, the closest, the newer of two."""
        ranked = [(e, e.release) for e in lineage if e.release is not None]
        if not ranked:
            return []
        best = min(
            (release for _, release in ranked),
            key=lambda r: (r[0] != key[0], abs(r[1] - key[1]), -r[1]),
        )
        return [e for e, release in ranked if release == best]

    @staticmethod
    def _newest(lineage: Sequence[_Entry]) -> list[_Entry]:
        releases = [e.release for e in lineage if e.release is not None]
        if releases:
            best = max(releases)
            return [e for e in lineage if e.release == best]
        counts = Counter(e.cls.generation for e in lineage)
        common = min(counts, key=lambda g: (-counts[g], g))
        return [e for e in lineage if e.cls.generation == common]

    def _closest(self, names: Iterable[str], labels: Sequence[str]) -> list[str]:
        """The names most like the tool's labels by shared words (ties all kept), at most MAX_CHOICES."""
        wanted = [_words(label) for label in labels]

        def score(name: str) -> float:
            mine = self._name_words[name]
            return max((len(mine & w) / len(mine | w) for w in wanted if mine | w), default=0.0)

        scores = {name: score(name) for name in set(names)}
        ranked = sorted(scores, key=lambda n: (-scores[n], len(self._name_words[n]), n))
        return [n for n in ranked if scores[n] == scores[ranked[0]]][:MAX_CHOICES]

    def _classes_of(
        self, names: Sequence[str], host_cpe: Sequence[str], entries: Sequence[_Entry] | None = None
    ) -> tuple[str, ...]:
        """Each name's osclass and CPE as nmap-os-db writes them: the class among `entries` (all of the
        name's if None), the CPE of the host's release where the class has several."""
        texts = []
        for name in names:
            mine = [e for e in (entries if entries is not None else self._entries[name]) if e.name == name]
            shown = [_class_text(e.cls, _agreeing_cpes(host_cpe, e.cls) or e.cls.cpe) for e in mine]
            texts.append("; ".join(dict.fromkeys(shown)))
        return tuple(texts)

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
