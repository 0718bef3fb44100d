"""honeyd's personality names from nmap's first generation, read as today's nmap-os-db entries.

honeyd took its personalities from nmap.prints (nmap 3.x): "Linux 2.4.7 (X86)", "Windows NT4 /
Win95 / Win98", "Cisco 7206 running IOS 11.1(24)". nmap-os-db (the second generation, which the
sensor answers with) names none of them, so a configuration written for honeyd would not load.
`closest_fingerprint` picks, for such a name, the fingerprint of the same OS family whose
generation holds the name's version, and among those the closest version, then the closest
name. The choice is deterministic and the caller says which it took (a note), so the admin can
pin another with the exact name.

Pure: fed a name and the fingerprints, it answers.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from dynapot.personality.osdb import Fingerprint

__all__ = ["closest_fingerprint"]

#: Old spellings of a family, as nmap-os-db's class lines name it.
_ALIASES = {
    "win95": "Windows",
    "win98": "Windows",
    "winnt": "Windows",
    "nt4": "Windows",
    "sunos": "Solaris",
    "macos x": "Mac OS X",
}
#: Windows generations as the old names spell them (nmap-os-db's class generation on the right).
_WINDOWS_GENERATIONS = (
    (re.compile(r"\bnt\s*4|\bnt\b|\bwinnt\b"), "NT"),
    (re.compile(r"\b2000\b|\bw2k\b"), "2000"),
    (re.compile(r"\bxp\b"), "XP"),
    (re.compile(r"\b2003\b"), "2003"),
    (re.compile(r"\bwin95\b|\b95\b"), "95"),
    (re.compile(r"\bwin98\b|\b98\b"), "98"),
    (re.compile(r"\bme\b"), "Me"),
    (re.compile(r"\bvista\b"), "Vista"),
)
_VERSION = re.compile(r"\d+(?:\.\d+)*")
#: Families too general to say what a name is about.
_TOO_GENERAL = {"embedded", "i", "bsd", "other"}


def closest_fingerprint(name: str, fingerprints: Sequence[Fingerprint]) -> Fingerprint | None:
    """The fingerprint an old (first-generation) personality name means, or None when no family
    of nmap-os-db is named in it."""
    family, at = _family(name, fingerprints)
    if family is None:
        # No family named ("Cisco 762 Non-IOS Software"): the vendor's, by likeness of name.
        vendor, at = _named(name, {c.vendor for fp in fingerprints for c in fp.classes})
        if vendor is None:
            return None
        candidates = [fp for fp in fingerprints if any(c.vendor == vendor for c in fp.classes)]
        version = _first_version(name[at:])
        return max(
            candidates,
            key=lambda fp: (_likeness(name, fp.name), _shared_components(version, fp.name), -fp.line),
        )
    version = _first_version(name[at:])
    generation = _windows_generation(name) if family == "Windows" else None
    candidates = [fp for fp in fingerprints if any(c.family == family for c in fp.classes)]
    fitting = [fp for fp in candidates if _generation_fits(fp, family, version, generation)]
    pool = fitting or candidates
    if not pool:
        return None
    return max(
        pool, key=lambda fp: (_shared_components(version, fp.name), _likeness(name, fp.name), -fp.line)
    )


def _family(name: str, fingerprints: Sequence[Fingerprint]) -> tuple[str | None, int]:
    """The OS family `name` names (nmap-os-db's spelling) and where it starts."""
    families = {c.family for fp in fingerprints for c in fp.classes if c.family.lower() not in _TOO_GENERAL}
    family, position = _named(name, families)
    if family is not None:
        return family, position
    lowered = name.lower()
    aliased = [
        (match.start(), fam)
        for alias, fam in _ALIASES.items()
        if (match := re.search(rf"\b{alias}\b", lowered))
    ]
    if aliased:
        position, family = min(aliased)
        return (family, position) if family in families else (None, 0)
    return None, 0


def _named(name: str, words: set[str]) -> tuple[str | None, int]:
    """Which of `words` `name` says as a whole word, and where: spelled exactly as the database
    does before any case, then the earliest, then the longest ("Mac OS X" over "Mac OS");
    "Non-IOS" does not say IOS."""
    found: list[tuple[int, int, int, str]] = []  # (inexact, position, -length, word)
    lowered = name.lower()
    for word in words:
        if not word:
            continue
        for inexact, (haystack, needle) in enumerate(((name, word), (lowered, word.lower()))):
            match = re.search(rf"(?<![\w/-]){re.escape(needle)}(?![\w/-])", haystack)
            if match:
                found.append((inexact, match.start(), -len(word), word))
                break
    if not found:
        return None, 0
    _, position, _, word = min(found)
    return word, position


def _first_version(text: str) -> str:
    match = _VERSION.search(text)
    return match.group() if match else ""


def _windows_generation(name: str) -> str | None:
    lowered = name.lower()
    hits = [(m.start(), gen) for pattern, gen in _WINDOWS_GENERATIONS if (m := pattern.search(lowered))]
    return min(hits)[1] if hits else None


def _generation_fits(fp: Fingerprint, family: str, version: str, generation: str | None) -> bool:
    for cls in fp.classes:
        if cls.family != family or not cls.generation:
            continue
        if generation is not None:
            if cls.generation == generation:
                return True
            continue
        prefix = cls.generation.split("X", 1)[0]  # "2.4.X" -> "2.4."
        if "X" in cls.generation and version and (version + ".").startswith(prefix):
            return True
        if cls.generation == version:
            return True
    return False


def _shared_components(version: str, fp_name: str) -> int:
    """How many leading version components `version` shares with the closest version in the
    fingerprint's name (2.4.7 and "Linux 2.4.20 - 2.4.32" share 2)."""
    if not version:
        return 0
    ours = version.split(".")
    best = 0
    for theirs in _VERSION.findall(fp_name):
        shared = 0
        for a, b in zip(ours, theirs.split("."), strict=False):
            if a != b:
                break
            shared += 1
        best = max(best, shared)
    return best


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()
