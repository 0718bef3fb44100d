"""Parser for nmap's second-generation OS database (nmap-os-db).

Each entry is a `Fingerprint NAME` line, `Class vendor | family | generation | type`
lines, `CPE` lines and test lines such as `SEQ(SP=28-32%GCD=1-6%...)`. Tests are kept
as raw strings per attribute here; the sensor's personality engine compiles them.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OSDB = Path("/usr/share/nmap/nmap-os-db")
TEST_NAMES = ("SEQ", "OPS", "WIN", "ECN", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "U1", "IE")
_TEST_LINE = re.compile(r"^([A-Z][A-Z0-9]*)\((.*)\)$")


class OsDbError(ValueError):
    """The nmap-os-db file cannot be read or has a malformed entry."""


@dataclass(frozen=True, slots=True)
class OsClass:
    vendor: str
    family: str
    generation: str  # may be empty
    device_type: str
    cpe: tuple[str, ...] = ()  # the CPE lines that follow this Class line: what it names, with versions


@dataclass(frozen=True, slots=True)
class Fingerprint:
    name: str
    line: int
    classes: tuple[OsClass, ...]
    cpe: tuple[str, ...]
    tests: dict[str, dict[str, str]] = field(hash=False, compare=False)


def _parse_test(body: str, line_no: int) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if not body:
        return attributes
    for item in body.split("%"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OsDbError(f"line {line_no}: malformed test attribute {item!r}")
        attributes[key] = value
    return attributes


def parse_osdb(text: str, *, source: str = "nmap-os-db") -> list[Fingerprint]:
    """All fingerprints of an nmap-os-db text, in file order."""
    fingerprints: list[Fingerprint] = []
    name: str | None = None
    start = 0
    classes: list[OsClass] = []
    cpe: list[str] = []
    tests: dict[str, dict[str, str]] = {}

    def finish() -> None:
        if name is not None:
            fingerprints.append(Fingerprint(name, start, tuple(classes), tuple(cpe), tests))

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("Fingerprint "):
            finish()
            name, start, classes, cpe, tests = line[len("Fingerprint ") :].strip(), line_no, [], [], {}
        elif name is None:
            continue  # the MatchPoints scoring table before the first fingerprint
        elif line.startswith("Class "):
            parts = [p.strip() for p in line[len("Class ") :].split("|")]
            if len(parts) != 4:
                raise OsDbError(f"{source}:{line_no}: Class needs 4 fields, got {len(parts)}")
            classes.append(OsClass(*parts))
        elif line.startswith("CPE "):
            cpe.append(line[len("CPE ") :].split()[0])
            if classes:
                last = classes[-1]
                classes[-1] = dataclasses.replace(last, cpe=(*last.cpe, cpe[-1]))
        else:
            match = _TEST_LINE.match(line)
            if not match:
                raise OsDbError(f"{source}:{line_no}: unexpected line {line[:60]!r}")
            tests[match.group(1)] = _parse_test(match.group(2), line_no)
    finish()
    return fingerprints


def load_osdb(path: Path | str = DEFAULT_OSDB) -> list[Fingerprint]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise OsDbError(f"cannot read nmap OS database {path}: {exc} (is nmap installed?)") from None
    fingerprints = parse_osdb(text, source=str(path))
    if not fingerprints:
        raise OsDbError(f"{path} has no Fingerprint entries")
    return fingerprints


# Attributes whose most common value among same-named entries describes the typical machine.
_TYPICAL = (
    ("T1", "TG"),
    ("T1", "DF"),
    ("OPS", "O1"),
    ("WIN", "W1"),
    ("SEQ", "TI"),
    ("SEQ", "TS"),
    ("IE", "DFI"),
)


def fingerprints_by_name(fingerprints: Iterable[Fingerprint]) -> dict[str, Fingerprint]:
    """One entry per name, the most typical one.

    nmap-os-db repeats names (116 entries are called "Microsoft Windows XP SP3", one of them
    with a TTL of 64 as seen behind some middlebox). Preferred, in order: a class that names
    the OS in the title (so "Linux 2.6.32" is Linux, not an appliance built on it), a general
    purpose device, and the entry agreeing most with the common values of its namesakes.
    """
    groups: dict[str, list[Fingerprint]] = {}
    for fp in fingerprints:
        groups.setdefault(fp.name, []).append(fp)
    chosen: dict[str, Fingerprint] = {}
    for name, entries in groups.items():
        if len(entries) == 1:
            chosen[name] = entries[0]
            continue
        common = [Counter(fp.tests.get(t, {}).get(a) for fp in entries) for t, a in _TYPICAL]
        lowered = name.lower()

        def fit(
            fp: Fingerprint, lowered: str = lowered, common: list[Counter] = common
        ) -> tuple[bool, bool, int]:
            named_family = any(c.family.lower() in lowered for c in fp.classes if c.family)
            general = any(c.device_type == "general purpose" for c in fp.classes)
            typical = sum(
                counts[fp.tests.get(t, {}).get(a)] for counts, (t, a) in zip(common, _TYPICAL, strict=True)
            )
            return named_family, general, typical

        chosen[name] = max(entries, key=fit)  # max keeps the first of equals: file order
    return chosen
