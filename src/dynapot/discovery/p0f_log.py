"""The logs of a p0f the admin already runs, as observations: `dynapot import-p0f`.

Two formats, told apart line by line:

* p0f 3's log (``p0f -o FILE``), one observation a line::

    [2012/01/13 10:01:11] mod=syn|cli=1.2.3.4/1234|srv=4.3.2.1/80|subj=cli|os=Linux 3.x|dist=0|...

  ``subj`` names the party described (``cli`` or ``srv``). ``syn`` and ``syn+ack`` lines
  carry ``os=`` (``???`` when no signature matched) or ``app=`` for a userland tool such
  as nmap's SYN scan; ``params`` says ``generic`` or ``fuzzy`` for a looser match. The
  other modules (``mtu``, ``uptime``, ``http request``, ``http response``, ``host
  change``, ``ip sharing``) name no OS. The time is p0f's local time.

* p0f 2's output, the fingerprinter of the original design (one line with ``-l``; the
  ``->`` and ``Signature:`` parts start indented lines without it; ``-t`` or ``-o``
  prefix the local time as ``<Mon Jan 13 10:01:11 2003>``)::

    192.0.2.7:1234 - Linux 2.6 (newer, 1) (up: 23 hrs) -> 192.0.2.1:80 (distance 0, link: ethernet)
    192.0.2.9:5555 - UNKNOWN [S4:64:1:60:M1460,S,T,N,W7:.:?:?] -> 192.0.2.1:22 (link: ethernet)

  The left address is the one described, named by genre and details; markers follow:
  ``(NAT!)``, ``(ECN)``, ``(firewall!)``, ``[tos N]``, ``[GENERIC]``, ``[FUZZY]``, then
  ``*`` for a no-detail signature (p0f 2 keeps those for scanners' userland stacks) or
  the uptime. Masquerade reports (``>> Masquerade at ...``) are skipped. A line without
  a time takes the log file's modification time.

What is stored, under tool ``p0f``: one observation per address, at the latest time p0f
described it, with its surest OS guess (of two equally sure, the later), given the
confidence passive discovery gives the same verdict (`passive.MATCH_ACCURACY`: exact 90,
fuzzy 70, generic 50). A line that names no OS (no match, a userland tool, another
module) still says the address was in use then. The label's OS name and flavor come from
the p0f 3 database when it knows the label; else a p0f 2 label splits into genre and
details at the first space, and any other label is its own family.

The whole input is checked before anything is returned: the first malformed line raises
`P0fLogError` naming the file, the line and what is wrong. Every line is bounded.

The paper's eight-number SYN (``512:124:1460:0:118:0:0:44``, its Figure 3) is p0f 1's
signature notation, not a log format: nothing reads it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dynapot.discovery.observation import Observation, OsGuess
from dynapot.discovery.p0f import P0fDatabase
from dynapot.discovery.passive import p0f_os_guess

__all__ = ["MAX_LINE", "P0fLogError", "P0fSightings", "label_names", "read_p0f_log"]

MAX_LINE = 65_536  # bytes; p0f 3's longest lines (HTTP signatures) stay far below
MAX_LABEL = 100  # characters: the inventory's OS family and generation columns
TOOL = "p0f"

# p0f 3.09b's modules: the first two fingerprint an OS, the rest only describe the subject.
_OS_MODULES = frozenset({"syn", "syn+ack"})
_OTHER_MODULES = frozenset({"mtu", "uptime", "http request", "http response", "host change", "ip sharing"})

_P0F3 = re.compile(r"\[(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\] (mod=.*)")
_P0F2 = re.compile(
    r"(?:<(?P<time>[^<>]{1,40})> )?"
    r"(?P<addr>\d{1,3}(?:\.\d{1,3}){3})(?:/[A-Za-z0-9.?-]{1,255})?:(?P<port>\d{1,5}) - (?P<rest>.*)"
)
_MASQUERADE = re.compile(r"(?:<[^<>]{1,40}> )?>> Masquerade at ")  # p0f 2 -M: about NAT, not an OS
_P0F2_ARROW_TAIL = re.compile(  # after the last "-> "
    r"\d{1,3}(?:\.\d{1,3}){3}(?:/[A-Za-z0-9.?-]{1,255})?:\d{1,5} \((?:distance \d+, )?link: .*\)"
)
_P0F2_UPTIME = re.compile(r"\(up: \d+ hrs\)")
# p0f 2's markers between the label and the uptime, last printed first: each is taken off the
# end at most once. "[...]" is the type of service ("[tos 16]").
_P0F2_MARKERS = ("[FUZZY]", "[GENERIC]", "[...]", "(firewall!)", "(ECN)", "(NAT2!)", "(NAT!)")
_P0F2_TWO_WORD_GENRES = ("RISC OS",)  # every other genre of p0f 2's database is one word


class P0fLogError(ValueError):
    """A p0f log cannot be read or a line of it is malformed: "FILE:LINE: what is wrong"."""


def _fault(source: str, line: int, reason: str) -> P0fLogError:
    return P0fLogError(f"{source}:{line}: {reason}" if line else f"{source}: {reason}")


class _LineError(ValueError):
    """What is wrong with one line (the reader adds file and line number)."""


@dataclass(frozen=True, slots=True)
class _Verdict:
    """One line's reading: who was described when, and the OS label if it names one."""

    ip: str
    seen_at: datetime
    label: str | None = None
    kind: str = "exact"  # "exact", "fuzzy" or "generic", as in p0f's params / markers
    genre_first: bool = False  # a p0f 2 label: genre, a space, details


def label_names(database: P0fDatabase) -> dict[str, tuple[str, str]]:
    """OS label as p0f prints it -> (OS name, flavor), for the labels of the database's TCP signatures."""
    return {
        rec.label.display: (rec.label.name, rec.label.flavor)
        for rec in database.tcp
        if not rec.label.is_userland
    }


class P0fSightings:
    """Lines of p0f logs in, one observation per described address out; opens no file."""

    def __init__(self, names: dict[str, tuple[str, str]] | None = None) -> None:
        self.names = names or {}
        self.lines = 0  # lines that described an address
        self._last_seen: dict[str, datetime] = {}
        self._os: dict[str, OsGuess] = {}

    def read(self, lines: Iterable[bytes], source: str, default_time: datetime) -> None:
        """Read one log; `default_time` dates p0f 2 lines printed without a time."""
        after_p0f2 = False
        for number, raw in enumerate(lines, start=1):
            try:
                text = _decode(raw)
                if not text.strip() or _MASQUERADE.match(text):
                    continue
                if text[0] in " \t":
                    if not after_p0f2:
                        raise _LineError("an indented line, but no p0f 2 line before it")
                    continue  # p0f 2's "->", "Signature:" or payload part of the line before
                verdict = _p0f3_line(text) if text.startswith("[") else _p0f2_line(text, default_time)
                after_p0f2 = not text.startswith("[")
            except _LineError as exc:
                raise _fault(source, number, str(exc)) from None
            self._note(verdict)

    def _note(self, verdict: _Verdict) -> None:
        self.lines += 1
        ip, seen = verdict.ip, verdict.seen_at
        last = self._last_seen.get(ip)
        self._last_seen[ip] = seen if last is None else max(last, seen)
        if verdict.label is None:
            return
        guess = p0f_os_guess(*self._split(verdict), verdict.kind)
        known = self._os.get(ip)
        # Like passive discovery: a less certain verdict does not replace a surer one.
        if known is None or guess.accuracy >= known.accuracy:
            self._os[ip] = guess

    def _split(self, verdict: _Verdict) -> tuple[str, str]:
        label = verdict.label or ""
        if label in self.names:
            return self.names[label]
        if verdict.genre_first:
            for genre in _P0F2_TWO_WORD_GENRES:
                if label.startswith(genre + " "):
                    return genre, label[len(genre) + 1 :]
            genre, _, details = label.partition(" ")
            return genre, details
        return label, ""

    def observations(self) -> list[Observation]:
        """One observation per address described, in address order."""
        order = sorted(self._last_seen, key=lambda ip: _address_key(ip))
        return [Observation(ip, self._last_seen[ip], TOOL, os=self._os.get(ip)) for ip in order]


def read_p0f_log(path: Path, sightings: P0fSightings) -> None:
    """Feed one log file to `sightings`; P0fLogError names the file and line of any fault."""
    source = str(path)
    try:
        with path.open("rb") as file:
            default_time = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            sightings.read(_bounded_lines(file, source), source, default_time)
    except OSError as exc:
        raise _fault(source, 0, f"cannot read: {exc.strerror or exc}") from None


def _bounded_lines(file: BinaryIO, source: str) -> Iterator[bytes]:
    number = 0
    while line := file.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE:
            raise _fault(source, number, f"line longer than {MAX_LINE} bytes")
        yield line


def _address_key(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def _decode(raw: bytes) -> str:
    if b"\x00" in raw:
        raise _LineError("NUL byte in the line")
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _label(text: str) -> str:
    """An OS label as stored: printable ASCII, bounded."""
    label = text.strip()
    if not label:
        raise _LineError("no OS label")
    if len(label) > MAX_LABEL:
        raise _LineError(f"OS label longer than {MAX_LABEL} characters")
    if not (label.isascii() and label.isprintable()):
        raise _LineError(f"OS label with characters p0f never prints: {label!r}")
    return label


def _local_time(text: str, fmt: str) -> datetime:
    try:
        return datetime.strptime(text, fmt).astimezone(UTC)  # naive: p0f wrote its local time
    except (ValueError, OverflowError):
        raise _LineError(f"bad time {text!r}") from None


# --- p0f 3 ------------------------------------------------------------------------------------


def _p0f3_line(text: str) -> _Verdict:
    match = _P0F3.fullmatch(text)
    if match is None:
        raise _LineError("not a p0f 3 log line ([YYYY/MM/DD HH:MM:SS] mod=...|cli=...|srv=...|subj=...)")
    seen_at = _local_time(match.group(1), "%Y/%m/%d %H:%M:%S")
    fields = _p0f3_fields(match.group(2))
    module = fields.get("mod", "")
    if module not in _OS_MODULES and module not in _OTHER_MODULES:
        raise _LineError(f"unknown p0f module {module[:40]!r}")
    subject = fields.get("subj")
    if subject not in ("cli", "srv"):
        raise _LineError("subj= must be cli or srv")
    ends = {side: _endpoint(fields.get(side), side) for side in ("cli", "srv")}
    ip = ends[subject]
    if module not in _OS_MODULES:
        return _Verdict(ip, seen_at)
    if "os" not in fields and "app" not in fields:
        raise _LineError(f"a {module} line without os= or app=")
    label = fields.get("os", "???")
    if label == "???":  # no signature matched, or a userland tool (app=): no OS guess
        return _Verdict(ip, seen_at)
    params = fields.get("params", "none").split()
    kind = "fuzzy" if "fuzzy" in params else "generic" if "generic" in params else "exact"
    return _Verdict(ip, seen_at, _label(label), kind)


def _p0f3_fields(text: str) -> dict[str, str]:
    """key=value|key=value; a piece without '=' continues the value before it (a '|' in raw_sig)."""
    fields: dict[str, str] = {}
    key = None
    for piece in text.split("|"):
        name, sep, value = piece.partition("=")
        if sep and name.replace("_", "").isalpha() and name.islower():
            key = name
            if key in fields:
                raise _LineError(f"{key}= appears twice")
            fields[key] = value
        elif key is None:
            raise _LineError(f"malformed field {piece[:40]!r}")
        else:
            fields[key] += "|" + piece
    return fields


def _endpoint(text: str | None, side: str) -> str:
    """'1.2.3.4/1234' or p0f's uncompressed IPv6 form -> the address, normalised."""
    address, _, port = (text or "").rpartition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise _LineError(f"{side}= is not address/port: {(text or '')[:60]!r}") from None
    if not (port.isdigit() and port.isascii() and int(port) <= 65535):
        raise _LineError(f"{side}= has a bad port {port[:10]!r}")
    return str(ip)


# --- p0f 2 ------------------------------------------------------------------------------------


def _p0f2_line(text: str, default_time: datetime) -> _Verdict:
    match = _P0F2.fullmatch(text)
    if match is None:
        raise _LineError("neither a p0f 3 log line nor p0f 2 output (ADDR:PORT - OS ...)")
    try:
        ip = str(ipaddress.IPv4Address(match["addr"]))
    except ValueError:
        raise _LineError(f"bad address {match['addr']!r}") from None
    if int(match["port"]) > 65535:
        raise _LineError(f"bad port {match['port']}")
    seen_at = default_time if match["time"] is None else _p0f2_time(match["time"])
    rest = match["rest"]
    if rest.startswith("UNKNOWN ["):
        return _Verdict(ip, seen_at)
    if "-> " in rest:
        rest, _, arrow = rest.rpartition("-> ")
        if _P0F2_ARROW_TAIL.fullmatch(arrow.rstrip()) is None:
            raise _LineError("malformed '-> ADDR:PORT (distance N, link: ...)' part")
    head, found, signature = rest.rpartition("Signature: [")
    if found:
        if not signature.rstrip().endswith("]") or "[" in signature:
            raise _LineError("malformed 'Signature: [...]' part")
        rest = head
    rest = rest.rstrip()
    if rest.endswith(" *"):  # printed instead of the uptime: a scanner's stack, not an OS
        return _Verdict(ip, seen_at)
    head, found, uptime = rest.rpartition(" (up: ")
    if found and _P0F2_UPTIME.fullmatch("(up: " + uptime):
        rest = head
    markers = set()
    for marker in _P0F2_MARKERS:
        rest = rest.rstrip()
        if marker == "[...]":
            cut = rest.rfind(" [") if rest.endswith("]") else -1
        else:
            cut = len(rest) - len(marker) if rest.endswith(" " + marker) else -1
        if cut >= 0:
            rest = rest[:cut]
            markers.add(marker)
    kind = "fuzzy" if "[FUZZY]" in markers else "generic" if "[GENERIC]" in markers else "exact"
    return _Verdict(ip, seen_at, _label(rest), kind, genre_first=True)


def _p0f2_time(text: str) -> datetime:
    """asctime's '<Mon Jan 13 10:01:11 2003>', p0f 2's -t, in local time."""
    return _local_time(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
