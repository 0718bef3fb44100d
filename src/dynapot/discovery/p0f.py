"""Passive OS fingerprinting with p0f v3 signatures, agreeing with the p0f 3.09b binary.

Two users, both through `P0fMatcher.match_segment` (a few microseconds, no scapy): the
sensor, which guesses each attacker's OS from its SYN on the hot path, and passive
discovery (`discovery.passive`, behind `dynapot fingerprint --pcap FILE` and `dynapot
watch`), which fingerprints SYNs and SYN+ACKs.

What is reproduced from p0f 3.09b (fp_tcp.c, process.c, readfp.c), on purpose exactly:

* the database syntax of p0f.fp: ``classes``, ``[tcp:request]``/``[tcp:response]``
  labels (``s:``/``g:``, ``!`` for userland tools plus their ``sys =`` line), signatures
  ``ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`` with every wildcard form, and
  p0f's "signature already covered by line N" check. ``[mtu]`` is kept as a table;
  ``[http:*]`` signatures are parsed into fields and kept, but not matched;
* packet features: the quirks as process.c computes them, including one oddity of the
  binary: ``ack+`` is tested as ``RD32(ack) & 1`` on the raw network-order word, so on a
  little-endian host it fires only when the top byte of the ACK number is odd (the
  README says "ACK number non-zero"). ``P0fMatcher(p0f_ack_bug=False)`` uses the README's
  definition instead;
* matching (tcp_find_match): signatures are bucketed by option layout; in file order the
  first exact non-generic match wins; otherwise the first exact generic one; otherwise the
  first fuzzy one (the TTL is out of range, or quirks differ only by ``df``/``id+``
  disappearing or ``id-``/``ecn`` appearing), except that userland ("!") signatures never
  match fuzzily. Distances are the signature's TTL minus the packet's, or p0f's guess.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from pathlib import Path
from struct import Struct
from typing import Literal

from dynapot.netstack.types import TcpSegment

__all__ = [
    "DEFAULT_DATABASE",
    "MAX_DIST",
    "HttpSignatureRecord",
    "P0fDatabase",
    "P0fDatabaseError",
    "P0fLabel",
    "P0fMatch",
    "P0fMatcher",
    "Quirk",
    "TcpFeatures",
    "TcpSignature",
    "TcpSignatureRecord",
    "WinType",
    "extract_features",
    "guess_distance",
]

DEFAULT_DATABASE = Path("/etc/p0f/p0f.fp")
MAX_DIST = 35  # p0f config.h: largest TTL distance for a non-fuzzy match
MAX_TCP_OPT = 24  # p0f config.h: options beyond this count are not parsed
NAME_CHARS = " ./-_!?()"  # p0f config.h: allowed in OS names besides letters and digits
SPECIAL_MSS = 1331  # p0f-sendsyn probes
SPECIAL_WIN = 1337

_MIN_TCP4 = 40
_MIN_TCP6 = 60


class Quirk(IntFlag):
    """p0f's quirks; the order is the order p0f prints them in raw signatures."""

    DF = 1 << 0  # df: "don't fragment" set
    NZ_ID = 1 << 1  # id+: DF set, IP ID non-zero
    ZERO_ID = 1 << 2  # id-: DF clear, IP ID zero
    ECN = 1 << 3  # ecn: explicit congestion notification support
    NZ_MBZ = 1 << 4  # 0+: the IPv4 "must be zero" flag set
    FLOW = 1 << 5  # flow: IPv6 flow label non-zero
    ZERO_SEQ = 1 << 6  # seq-: sequence number zero
    NZ_ACK = 1 << 7  # ack+: ACK number non-zero without ACK flag
    ZERO_ACK = 1 << 8  # ack-: ACK flag with ACK number zero
    NZ_URG = 1 << 9  # uptr+: urgent pointer non-zero without URG flag
    URG = 1 << 10  # urgf+: URG flag
    PUSH = 1 << 11  # pushf+: PUSH flag
    OPT_ZERO_TS1 = 1 << 12  # ts1-: own timestamp zero
    OPT_NZ_TS2 = 1 << 13  # ts2+: peer timestamp non-zero on a SYN
    OPT_EOL_NZ = 1 << 14  # opt+: non-zero bytes after EOL
    OPT_EXWS = 1 << 15  # exws: window scale above 14
    OPT_BAD = 1 << 16  # bad: malformed options


QUIRK_NAMES: dict[str, Quirk] = {
    "df": Quirk.DF,
    "id+": Quirk.NZ_ID,
    "id-": Quirk.ZERO_ID,
    "ecn": Quirk.ECN,
    "0+": Quirk.NZ_MBZ,
    "flow": Quirk.FLOW,
    "seq-": Quirk.ZERO_SEQ,
    "ack+": Quirk.NZ_ACK,
    "ack-": Quirk.ZERO_ACK,
    "uptr+": Quirk.NZ_URG,
    "urgf+": Quirk.URG,
    "pushf+": Quirk.PUSH,
    "ts1-": Quirk.OPT_ZERO_TS1,
    "ts2+": Quirk.OPT_NZ_TS2,
    "opt+": Quirk.OPT_EOL_NZ,
    "exws": Quirk.OPT_EXWS,
    "bad": Quirk.OPT_BAD,
}
_QUIRK_ORDER = tuple((int(bit), name) for name, bit in QUIRK_NAMES.items())
_V4_ONLY = {"df", "id+", "id-", "0+"}

# Plain ints for the hot path: IntFlag arithmetic costs a Python call per operation.
_Q_DF = int(Quirk.DF)
_Q_NZ_ID = int(Quirk.NZ_ID)
_Q_ZERO_ID = int(Quirk.ZERO_ID)
_Q_ECN = int(Quirk.ECN)
_Q_NZ_MBZ = int(Quirk.NZ_MBZ)
_Q_FLOW = int(Quirk.FLOW)
_Q_ZERO_SEQ = int(Quirk.ZERO_SEQ)
_Q_NZ_ACK = int(Quirk.NZ_ACK)
_Q_ZERO_ACK = int(Quirk.ZERO_ACK)
_Q_NZ_URG = int(Quirk.NZ_URG)
_Q_URG = int(Quirk.URG)
_Q_PUSH = int(Quirk.PUSH)
_Q_TS1 = int(Quirk.OPT_ZERO_TS1)
_Q_TS2 = int(Quirk.OPT_NZ_TS2)
_Q_EOL_NZ = int(Quirk.OPT_EOL_NZ)
_Q_EXWS = int(Quirk.OPT_EXWS)
_Q_BAD = int(Quirk.OPT_BAD)
_Q_FUZZY_DELETED = _Q_DF | _Q_NZ_ID  # may disappear in a fuzzy match
_Q_FUZZY_ADDED = _Q_ZERO_ID | _Q_ECN  # may appear in a fuzzy match
_Q_V4_ONLY = _Q_DF | _Q_NZ_ID | _Q_ZERO_ID

# TCP option kinds, as p0f names them in layouts.
OPT_EOL, OPT_NOP, OPT_MSS, OPT_WS, OPT_SOK, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
_OPT_NAMES = {OPT_NOP: "nop", OPT_MSS: "mss", OPT_WS: "ws", OPT_SOK: "sok", OPT_SACK: "sack", OPT_TS: "ts"}
_OPT_BY_NAME = {v: k for k, v in _OPT_NAMES.items()}

_TCP_FIN, _TCP_SYN, _TCP_RST, _TCP_PUSH, _TCP_ACK, _TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_SYN_ACK = _TCP_SYN | _TCP_ACK

# p0f reads the ACK word without ntohl() and tests bit 0: on a little-endian host that is
# bit 24 of the ACK number (see module docstring).
_ACK_BUG_SHIFT = 24 if sys.byteorder == "little" else 0

_IP4 = Struct("!BBHHHBBH")  # ver_hlen, tos, tot_len, id, flags_off, ttl, proto, cksum
_IP6 = Struct("!IHBB")  # ver_tc_flow, payload length, next header, hop limit
_TCP = Struct("!4xIIBBHxxH")  # seq, ack, doff_rsvd, flags, win, urg
_U16 = Struct("!H")
_U32 = Struct("!I")


class WinType(IntEnum):
    """How a signature's window size is given."""

    NORMAL = 0  # a literal value
    ANY = 1  # '*'
    MOD = 2  # '%N': a multiple of N
    MSS = 3  # 'mss*N'
    MTU = 4  # 'mtu*N'


class P0fDatabaseError(Exception):
    """The p0f database cannot be read or is malformed; says which file, line and why."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class _SigSyntaxError(ValueError):
    """A signature string is malformed (the loader adds file and line)."""


def guess_distance(ttl: int) -> int:
    """p0f's guess of the hop count when no signature tells the initial TTL."""
    if ttl <= 32:
        return 32 - ttl
    if ttl <= 64:
        return 64 - ttl
    if ttl <= 128:
        return 128 - ttl
    return 255 - ttl


# ----------------------------------------------------------------------------------------
# Signatures and labels
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class P0fLabel:
    """A ``label =`` line: ``s:unix:Linux:3.11 and newer`` (``g:`` for generic)."""

    text: str
    generic: bool
    os_class: str  # "unix", "win", "other", ... or "!" for userland tools
    name: str
    flavor: str
    sys: tuple[str, ...] = ()  # the ``sys =`` line of userland labels ("@unix", "Linux")

    @property
    def is_userland(self) -> bool:
        return self.os_class == "!"

    @property
    def display(self) -> str:
        """The label as p0f prints it after ``os=`` or ``app=``."""
        return f"{self.name} {self.flavor}" if self.flavor else self.name


@dataclass(frozen=True, slots=True)
class TcpSignature:
    """One p0f v3 TCP signature, ``ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass``.

    -1 stands for the ``*`` wildcard in `ip_ver`, `mss`, `wscale` and `pay_class`.
    """

    ip_ver: int
    ttl: int
    bad_ttl: bool
    ip_opt_len: int
    mss: int
    win_type: WinType
    win: int
    wscale: int
    olayout: bytes  # option kinds in order (0 = eol, 1 = nop, 2 = mss, ...)
    eol_pad: int
    quirks: int
    pay_class: int

    @classmethod
    def parse(cls, text: str) -> TcpSignature:
        """Parse a signature string; raises ValueError saying what is wrong."""
        parts = text.strip().split(":")
        if len(parts) != 8:
            raise _SigSyntaxError(f"expected 8 ':'-separated fields, got {len(parts)}")
        ver_s, ttl_s, olen_s, mss_s, win_s, layout_s, quirks_s, pclass_s = parts

        ip_ver = {"4": 4, "6": 6, "*": -1}.get(ver_s)
        if ip_ver is None:
            raise _SigSyntaxError(f"unrecognized IP version {ver_s!r}")

        bad_ttl = False
        if ttl_s.endswith("-"):
            bad_ttl, ttl_s = True, ttl_s[:-1]
            ttl = _number(ttl_s, "initial TTL", 1, 255)
        elif "+" in ttl_s:
            # 'ttl+dist', as p0f prints observed values: the sum is the initial TTL.
            base, _, add = ttl_s.partition("+")
            ttl = _number(base, "initial TTL", 1, 255) + _number(add, "TTL distance", 0, 255)
            if ttl > 255:
                raise _SigSyntaxError(f"bogus initial TTL {ttl_s!r}")
        else:
            ttl = _number(ttl_s, "initial TTL", 1, 255)

        olen = _number(olen_s, "IP option length", 0, 255)
        mss = -1 if mss_s == "*" else _number(mss_s, "MSS", 0, 65535)

        wsize_s, comma, scale_s = win_s.partition(",")
        if not comma:
            raise _SigSyntaxError(f"window field {win_s!r} lacks ',scale'")
        if wsize_s == "*":
            win_type, win = WinType.ANY, 0
        elif wsize_s.startswith("%"):
            win_type, win = WinType.MOD, _number(wsize_s[1:], "'%' window value", 2, 65535)
        elif wsize_s.startswith(("mss*", "mtu*")):
            win_type = WinType.MSS if wsize_s[1] == "s" else WinType.MTU
            win = _number(wsize_s[4:], "MSS/MTU multiplier", 1, 1000)
        else:
            win_type, win = WinType.NORMAL, _number(wsize_s, "window size", 0, 65535)
        wscale = -1 if scale_s == "*" else _number(scale_s, "window scale", 0, 255)

        layout = bytearray()
        eol_pad = 0
        tokens = layout_s.split(",") if layout_s else []
        for i, tok in enumerate(tokens):
            if tok.startswith("eol+"):
                if i != len(tokens) - 1:
                    raise _SigSyntaxError("EOL must be the last option")
                eol_pad = _number(tok[4:], "EOL padding", 0, 255)
                layout.append(OPT_EOL)
            elif tok.startswith("?"):
                layout.append(_number(tok[1:], "'?' option", 0, 255))
            elif tok in _OPT_BY_NAME:
                layout.append(_OPT_BY_NAME[tok])
            else:
                raise _SigSyntaxError(f"unrecognized TCP option {tok!r}")
        if len(layout) > MAX_TCP_OPT:
            raise _SigSyntaxError(f"too many TCP options ({len(layout)} > {MAX_TCP_OPT})")

        quirks = 0
        for tok in quirks_s.split(",") if quirks_s else []:
            bit = QUIRK_NAMES.get(tok)
            if bit is None:
                raise _SigSyntaxError(f"unrecognized quirk {tok!r}")
            if ip_ver == 6 and tok in _V4_ONLY:
                raise _SigSyntaxError(f"{tok!r} is not valid for IPv6")
            if ip_ver == 4 and tok == "flow":
                raise _SigSyntaxError("'flow' is not valid for IPv4")
            quirks |= int(bit)

        pay_class = {"*": -1, "0": 0, "+": 1}.get(pclass_s)
        if pay_class is None:
            raise _SigSyntaxError(f"malformed payload class {pclass_s!r}")

        return cls(
            ip_ver, ttl, bad_ttl, olen, mss, win_type, win, wscale, bytes(layout), eol_pad, quirks, pay_class
        )

    def __str__(self) -> str:
        ttl = f"{self.ttl}-" if self.bad_ttl else str(self.ttl)
        win = {
            WinType.ANY: "*",
            WinType.MOD: f"%{self.win}",
            WinType.MSS: f"mss*{self.win}",
            WinType.MTU: f"mtu*{self.win}",
        }.get(self.win_type, str(self.win))
        return ":".join(
            (
                "*" if self.ip_ver == -1 else str(self.ip_ver),
                ttl,
                str(self.ip_opt_len),
                "*" if self.mss == -1 else str(self.mss),
                f"{win},{'*' if self.wscale == -1 else self.wscale}",
                _layout_str(self.olayout, self.eol_pad),
                _quirks_str(self.quirks),
                {-1: "*", 0: "0", 1: "+"}[self.pay_class],
            )
        )


def _number(text: str, what: str, lo: int, hi: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise _SigSyntaxError(f"malformed {what} {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise _SigSyntaxError(f"bogus {what} {value} (must be {lo}..{hi})")
    return value


def _layout_str(layout: bytes, eol_pad: int) -> str:
    out = []
    for kind in layout:
        if kind == OPT_EOL:
            out.append(f"eol+{eol_pad}")
        else:
            out.append(_OPT_NAMES.get(kind) or f"?{kind}")
    return ",".join(out)


def _quirks_str(quirks: int) -> str:
    return ",".join(name for bit, name in _QUIRK_ORDER if quirks & bit)


@dataclass(frozen=True, slots=True)
class TcpSignatureRecord:
    """A signature as registered from the database: with its label, direction and line."""

    signature: TcpSignature
    label: P0fLabel
    to_server: bool  # True: [tcp:request] (SYN), False: [tcp:response] (SYN+ACK)
    line: int
    raw: str


@dataclass(frozen=True, slots=True)
class HttpSignatureRecord:
    """An [http:*] signature, split into p0f's four fields but not matched by dynapot."""

    label: P0fLabel
    to_server: bool
    line: int
    raw: str
    version: str  # '0', '1' or '*'
    header_order: tuple[str, ...]
    headers_absent: tuple[str, ...]
    software: str


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside [brackets] (HTTP header values may contain ':' and ',')."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


# ----------------------------------------------------------------------------------------
# The database
# ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class P0fDatabase:
    """The parsed p0f.fp: TCP signatures for both directions, MTUs, HTTP signatures."""

    path: str = "<memory>"
    classes: tuple[str, ...] = ()
    tcp: list[TcpSignatureRecord] = field(default_factory=list)
    mtu: dict[int, str] = field(default_factory=dict)
    http: list[HttpSignatureRecord] = field(default_factory=list)
    ua_os: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DATABASE) -> P0fDatabase:
        """Read and check a p0f v3 database; raises `P0fDatabaseError` with file:line."""
        name = str(path)
        try:
            text = Path(path).read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise P0fDatabaseError(name, 0, f"cannot read: {exc.strerror or exc}") from exc
        return cls.parse(text, name)

    @classmethod
    def parse(cls, text: str, path: str = "<memory>") -> P0fDatabase:
        return _Parser(path).run(text)

    def signatures(self, to_server: bool) -> list[TcpSignatureRecord]:
        return [r for r in self.tcp if r.to_server == to_server]


class _Parser:
    """readfp.c's state machine: section, then label, then (for '!' labels) sys, then sigs."""

    def __init__(self, path: str) -> None:
        self.db = P0fDatabase(path=path)
        self.path = path
        self.line = 0
        self.section: str | None = None  # "mtu", "tcp", "http"
        self.to_server = False
        self.state = "need_sect"  # need_sect, need_label, need_sys, need_sig
        self.label: P0fLabel | None = None
        self.mtu_label = ""
        # (to_server, layout, eol_pad, olen) -> records, for the "already covered" check
        self.buckets: dict[tuple[bool, bytes, int, int], list[TcpSignatureRecord]] = {}

    def fail(self, reason: str) -> P0fDatabaseError:
        return P0fDatabaseError(self.path, self.line, reason)

    def run(self, text: str) -> P0fDatabase:
        for self.line, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip(" \t\r")
            if not line or line.startswith(";"):
                continue
            if "\x00" in line:
                raise self.fail("NUL byte in line")
            if line.startswith("["):
                self.section_line(line)
            else:
                self.statement(line)
        return self.db

    def section_line(self, line: str) -> None:
        if line == "[mtu]":
            self.section, self.state = "mtu", "need_label"
            return
        if not line.endswith("]") or ":" not in line:
            raise self.fail(f"malformed section identifier {line!r}")
        module, _, direction = line[1:-1].partition(":")
        if module not in ("tcp", "http"):
            raise self.fail(f"unrecognized fingerprinting module {module!r}")
        if direction not in ("request", "response"):
            raise self.fail(f"unrecognized traffic direction {direction!r}")
        self.section, self.to_server, self.state = module, direction == "request", "need_label"
        self.label = None

    def statement(self, line: str) -> None:
        key, eq, value = line.partition("=")
        key = key.strip(" \t")
        value = value.strip(" \t")
        if not eq or not key or not all(c.isalpha() or c == "_" for c in key):
            raise self.fail(f"unexpected statement {line!r}")
        if key == "classes":
            if self.state != "need_sect":
                raise self.fail("misplaced 'classes'")
            self.parse_classes(value)
        elif key == "ua_os":
            if self.state != "need_label" or self.section != "http" or not self.to_server:
                raise self.fail("misplaced 'ua_os'")
            self.parse_ua_os(value)
        elif key == "label":
            if self.state not in ("need_label", "need_sig"):
                raise self.fail("misplaced 'label'")
            if self.section == "mtu":
                if not value:
                    raise self.fail("empty MTU label")
                self.mtu_label, self.state = value, "need_sig"
                return
            self.label = self.parse_label(value)
            self.state = "need_sys" if self.label.is_userland else "need_sig"
        elif key == "sys":
            if self.state != "need_sys" or self.label is None:
                raise self.fail("misplaced 'sys'")
            self.label = _replace_sys(self.label, self.parse_sys(value))
            self.state = "need_sig"
        elif key == "sig":
            if self.state != "need_sig":
                raise self.fail("misplaced 'sig'")
            self.signature(value)
        else:
            raise self.fail(f"unrecognized field {key!r}")

    def parse_classes(self, value: str) -> None:
        names = []
        for item in value.split(","):
            item = item.strip(" \t")
            if not item or not item.isalnum():
                raise self.fail(f"malformed class entry {item!r}")
            names.append(item)
        self.db.classes = self.db.classes + tuple(names)

    def parse_label(self, value: str) -> P0fLabel:
        parts = value.split(":", 3)
        if len(parts) != 4 or parts[0] not in ("s", "g"):
            raise self.fail(f"malformed label {value!r} (expected s|g:class:name:flavor)")
        kind, os_class, name, flavor = parts
        if os_class != "!":
            match = [c for c in self.db.classes if c.lower() == os_class.lower()]
            if not match:
                raise self.fail(f"unknown class {os_class!r} (declared: {', '.join(self.db.classes)})")
        if not name or not all(c.isalnum() or c in NAME_CHARS for c in name):
            raise self.fail(f"malformed name {name!r}")
        return P0fLabel(value, kind == "g", os_class, name, flavor)

    def parse_sys(self, value: str) -> tuple[str, ...]:
        out = []
        for item in value.split(","):
            item = item.strip(" \t")
            body = item[1:] if item.startswith("@") else item
            if not body or not all(c.isalnum() or c in NAME_CHARS for c in body):
                raise self.fail(f"malformed sys entry {item!r}")
            if item.startswith("@") and not any(c.lower() == body.lower() for c in self.db.classes):
                raise self.fail(f"unknown class {body!r} in sys")
            out.append(item)
        return tuple(out)

    def parse_ua_os(self, value: str) -> None:
        for item in value.split(","):
            item = item.strip(" \t")
            name, eq, ua = item.partition("=")
            if not name:
                raise self.fail(f"malformed ua_os entry {item!r}")
            self.db.ua_os[name] = ua.strip("[]") if eq else name

    def signature(self, value: str) -> None:
        if self.section == "mtu":
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                raise self.fail(f"malformed MTU {value!r}")
            self.db.mtu[int(value)] = self.mtu_label
            return
        assert self.label is not None
        if self.section == "http":
            fields = _split_top(value, ":")
            if len(fields) != 4 or fields[0] not in ("0", "1", "*"):
                raise self.fail(f"malformed HTTP signature {value!r}")
            order = tuple(f for f in _split_top(fields[1], ",") if f)
            absent = tuple(f for f in fields[2].split(",") if f)
            self.db.http.append(
                HttpSignatureRecord(
                    self.label, self.to_server, self.line, value, fields[0], order, absent, fields[3]
                )
            )
            return
        try:
            sig = TcpSignature.parse(value)
        except _SigSyntaxError as exc:
            raise self.fail(f"{exc} in signature {value!r}") from None
        key = (self.to_server, sig.olayout, sig.eol_pad, sig.ip_opt_len)
        bucket = self.buckets.setdefault(key, [])
        covering = _find_covering(bucket, sig)
        if covering is not None:
            raise self.fail(f"signature {value!r} is already covered by line {covering.line}")
        record = TcpSignatureRecord(sig, self.label, self.to_server, self.line, value)
        bucket.append(record)
        self.db.tcp.append(record)


def _replace_sys(label: P0fLabel, sys_entries: tuple[str, ...]) -> P0fLabel:
    return P0fLabel(label.text, label.generic, label.os_class, label.name, label.flavor, sys_entries)


def _find_covering(bucket: list[TcpSignatureRecord], new: TcpSignature) -> TcpSignatureRecord | None:
    """p0f's duplicate check: an earlier specific signature that matches `new` exactly.

    Mirrors tcp_find_match() called with a signature in place of a packet (dupe_det):
    the window is compared by type and value when `new` has a non-literal window.
    """
    if new.win_type == WinType.NORMAL:
        win_multi, use_mtu = _win_multi(new.win, new.mss, False, new.ip_ver, 0, 0)
    else:
        win_multi, use_mtu = -1, False
    for rec in bucket:
        ref = rec.signature
        if rec.label.generic:
            continue
        ref_quirks = ref.quirks
        if ref.ip_ver == -1:
            ref_quirks &= ~_Q_FLOW if new.ip_ver == 4 else ~_Q_V4_ONLY
        if ref_quirks != new.quirks:
            continue
        if ref.ttl < new.ttl or (not ref.bad_ttl and ref.ttl - new.ttl > MAX_DIST):
            continue
        if (ref.mss != -1 and ref.mss != new.mss) or (ref.wscale != -1 and ref.wscale != new.wscale):
            continue
        if ref.pay_class != -1 and ref.pay_class != new.pay_class:
            continue
        if new.win_type != WinType.NORMAL:
            if ref.win_type != new.win_type or ref.win != new.win:
                continue
        elif not _win_ok(ref.win_type, ref.win, new.win, win_multi, use_mtu):
            continue
        return rec
    return None


def _win_ok(win_type: int, ref_win: int, win: int, win_multi: int, use_mtu: bool) -> bool:
    if win_type == WinType.NORMAL:
        return ref_win == win
    if win_type == WinType.MOD:
        return win % ref_win == 0
    if win_type == WinType.MSS:
        return not use_mtu and ref_win == win_multi
    if win_type == WinType.MTU:
        return use_mtu and ref_win == win_multi
    return True


def _s16(value: int) -> int:
    return ((value + 0x8000) & 0xFFFF) - 0x8000


def _win_multi(
    win: int, mss: int, has_ts1: bool, ip_ver: int, tot_hdr: int, syn_mss: int
) -> tuple[int, bool]:
    """detect_win_multi(): is the window a multiple of the MSS or MTU, and by how much.

    The divisors are tried in p0f's order and the first that divides wins; the result is
    the s16 quotient (-1 if none), and whether it was an MTU multiple.
    """
    if not win or mss < 100:
        return -1, False
    divisors: list[tuple[int, bool]] = [(mss, False)]
    if has_ts1:
        divisors.append((mss - 12, False))
    divisors += [(1500 - _MIN_TCP4, False), (1500 - _MIN_TCP4 - 12, False)]
    if ip_ver == 6:
        divisors += [(1500 - _MIN_TCP6, False), (1500 - _MIN_TCP6 - 12, False)]
    divisors += [(mss + _MIN_TCP4, True), (mss + tot_hdr, True)]
    if ip_ver == 6:
        divisors.append((mss + _MIN_TCP6, True))
    divisors.append((1500, True))
    if syn_mss:
        # syn_mss - 12 may be <= 0 for absurd peers; C would trap on a zero divisor.
        divisors += [(syn_mss, False), (syn_mss - 12, False)]
    for div, use_mtu in divisors:
        if div and win % div == 0:
            return _s16(int(win / div)), use_mtu
    return -1, False


# ----------------------------------------------------------------------------------------
# Packet features
# ----------------------------------------------------------------------------------------

# The internal feature tuple, also the memo key:
# (ip_ver, ttl, ip_opt_len, mss, win, wscale, layout, eol_pad, quirks, pay_class, tot_hdr, has_ts1)
_Feat = tuple[int, int, int, int, int, int, bytes, int, int, int, int, bool]


@dataclass(frozen=True, slots=True)
class TcpFeatures:
    """What p0f looks at in a SYN or SYN+ACK."""

    ip_ver: int
    ttl: int
    ip_opt_len: int
    mss: int
    win: int
    wscale: int
    olayout: bytes
    eol_pad: int
    quirks: int
    pay_class: int
    tot_hdr: int  # IP header + TCP header, options included
    ts1: bool  # own timestamp present and non-zero
    synack: bool

    @property
    def initial_ttl_guess(self) -> int:
        return self.ttl + guess_distance(self.ttl)

    def raw_signature(self, syn_mss: int = 0) -> str:
        """The signature as p0f prints it in ``raw_sig=`` (dump_sig in fp_tcp.c)."""
        dist = guess_distance(self.ttl)
        ttl = f"{self.ttl}+?" if dist > MAX_DIST else f"{self.ttl}+{dist}"
        mss = "*" if self.synack and self.mss == SPECIAL_MSS else str(self.mss)
        multi, use_mtu = _win_multi(self.win, self.mss, self.ts1, self.ip_ver, self.tot_hdr, syn_mss)
        win = f"{'mtu' if use_mtu else 'mss'}*{multi}" if multi > 0 else str(self.win)
        return (
            f"{self.ip_ver}:{ttl}:{self.ip_opt_len}:{mss}:{win},{self.wscale}:"
            f"{_layout_str(self.olayout, self.eol_pad)}:{_quirks_str(self.quirks)}:"
            f"{'+' if self.pay_class else '0'}"
        )

    def _key(self) -> _Feat:
        return (
            self.ip_ver,
            self.ttl,
            self.ip_opt_len,
            self.mss,
            self.win,
            self.wscale,
            self.olayout,
            self.eol_pad,
            self.quirks,
            self.pay_class,
            self.tot_hdr,
            self.ts1,
        )


def _parse_options(
    buf: bytes | memoryview, i: int, end: int, syn_only: bool
) -> tuple[bytes, int, int, int, bool, int]:
    """Walk TCP options like process.c: (layout, eol_pad, mss, wscale, ts1 != 0, quirks)."""
    layout = bytearray()
    eol_pad = mss = wscale = quirks = 0
    has_ts1 = False
    count = 0
    while i < end and count < MAX_TCP_OPT:
        kind = buf[i]
        layout.append(kind)
        count += 1
        i += 1
        if kind == OPT_NOP:
            continue
        if kind == OPT_EOL:
            eol_pad = end - i
            # p0f scans for the first non-zero byte and flags it unless it is the last
            # byte (its pointer then lands exactly on the end): reproduced as is.
            j = i
            while j < end and not buf[j]:
                j += 1
            if j < end - 1:
                quirks |= _Q_EOL_NZ
            i = end
            break
        if kind == OPT_MSS:
            if i + 3 > end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            if buf[i] != 4:
                quirks |= _Q_BAD
            mss = buf[i + 1] << 8 | buf[i + 2]
            i += 3
        elif kind == OPT_WS:
            if i + 2 > end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            if buf[i] != 3:
                quirks |= _Q_BAD
            wscale = buf[i + 1]
            if wscale > 14:
                quirks |= _Q_EXWS
            i += 2
        elif kind == OPT_SOK:
            if i + 1 > end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            if buf[i] != 2:
                quirks |= _Q_BAD
            i += 1
        elif kind == OPT_TS:
            if i + 9 > end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            if buf[i] != 10:
                quirks |= _Q_BAD
            if buf[i + 1] | buf[i + 2] | buf[i + 3] | buf[i + 4]:
                has_ts1 = True
            else:
                quirks |= _Q_TS1
            if syn_only and (buf[i + 5] | buf[i + 6] | buf[i + 7] | buf[i + 8]):
                quirks |= _Q_TS2
            i += 9
        else:
            # SACK (10..34 bytes) and unknown options (2..40) carry a length byte.
            if i == end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            length = buf[i]
            if (kind == OPT_SACK and not 10 <= length <= 34) or not 2 <= length <= 40:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            if i - 1 + length > end:
                return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks | _Q_BAD
            i += length - 1
    if i != end:
        quirks |= _Q_BAD
    return bytes(layout), eol_pad, mss, wscale, has_ts1, quirks


def _extract(data: bytes | memoryview, want_type: int, ack_bug: bool) -> _Feat | None:
    """Features of an IP datagram holding a TCP segment of type `want_type`, else None.

    Applies process.c's sanity checks: packets p0f would drop yield None.
    """
    packet_len = len(data)
    if packet_len < _MIN_TCP4:
        return None
    first = data[0]
    if first >> 4 == 4:
        _vhl, tos, tot_len, ident, flags_off, ttl, proto, _ = _IP4.unpack_from(data, 0)
        hdr_len = (first & 0x0F) * 4
        if packet_len > tot_len:
            packet_len = tot_len  # honour the IP length over link-layer padding
        if packet_len < _MIN_TCP4 or hdr_len < 20 or tot_len > packet_len or hdr_len + 20 > packet_len:
            return None
        if proto != 6 or flags_off & 0x3FFF:  # not TCP, or a fragment (MF or an offset)
            return None
        ip_ver = 4
        ip_opt_len = hdr_len - 20
        quirks = _Q_ECN if tos & 0x03 else 0
        if flags_off & 0x8000:
            quirks |= _Q_NZ_MBZ
        if flags_off & 0x4000:
            quirks |= _Q_DF | _Q_NZ_ID if ident else _Q_DF
        elif not ident:
            quirks |= _Q_ZERO_ID
    elif first >> 4 == 6:
        ver_tc_flow, pay_len, proto, ttl = _IP6.unpack_from(data, 0)
        hdr_len = 40
        tot_len = pay_len + 40
        if packet_len > tot_len:
            packet_len = tot_len
        if packet_len < _MIN_TCP6 or tot_len > packet_len or proto != 6:
            return None
        ip_ver = 6
        ip_opt_len = 0
        quirks = _Q_FLOW if ver_tc_flow & 0xFFFFF else 0
        if (ver_tc_flow >> 20) & 0x03:
            quirks |= _Q_ECN
    else:
        return None

    seq, ack, doff_rsvd, flags, win, urg = _TCP.unpack_from(data, hdr_len)
    packet_len -= hdr_len
    doff = (doff_rsvd >> 4) * 4
    if doff < 20 or doff > packet_len:
        return None
    if flags & (_TCP_SYN | _TCP_ACK | _TCP_FIN | _TCP_RST) != want_type:
        return None
    if flags & 0xC0 or doff_rsvd & 0x01:
        quirks |= _Q_ECN
    if not seq:
        quirks |= _Q_ZERO_SEQ
    if flags & _TCP_ACK:
        if not ack:
            quirks |= _Q_ZERO_ACK
    elif (ack >> _ACK_BUG_SHIFT) & 1 if ack_bug else ack:
        quirks |= _Q_NZ_ACK
    if flags & _TCP_URG:
        quirks |= _Q_URG
    elif urg:
        quirks |= _Q_NZ_URG
    if flags & _TCP_PUSH:
        quirks |= _Q_PUSH

    opt_start = hdr_len + 20
    opt_end = hdr_len + doff
    if opt_end > opt_start:
        layout, eol_pad, mss, wscale, has_ts1, oq = _parse_options(
            data, opt_start, opt_end, want_type == _TCP_SYN
        )
        quirks |= oq
    else:
        layout, eol_pad, mss, wscale, has_ts1 = b"", 0, 0, 0, False
    return (
        ip_ver,
        ttl,
        ip_opt_len,
        mss,
        win,
        wscale,
        layout,
        eol_pad,
        quirks,
        1 if packet_len > doff else 0,
        hdr_len + doff,
        has_ts1,
    )


def extract_features(data: bytes | memoryview, *, p0f_ack_bug: bool = True) -> TcpFeatures | None:
    """Features of a SYN or SYN+ACK (IPv4 or IPv6 header, then TCP); None for anything else."""
    if len(data) < 34:
        return None
    ihl = (data[0] & 0x0F) * 4 if data[0] >> 4 == 4 else 40
    if len(data) < ihl + 14:
        return None
    flags = data[ihl + 13] & (_TCP_SYN | _TCP_ACK | _TCP_FIN | _TCP_RST)
    if flags not in (_TCP_SYN, _SYN_ACK):
        return None
    f = _extract(data, flags, p0f_ack_bug)
    return None if f is None else TcpFeatures(*f, synack=flags == _SYN_ACK)


# ----------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class P0fMatch:
    """The signature that matched a packet, as p0f would report it."""

    label: str  # the database label, "s:unix:Linux:3.11 and newer"
    os_class: str  # "unix", "win", "other", or "!" for userland tools (p0f prints app=)
    name: str  # "Linux"
    flavor: str  # "3.11 and newer" ("" when the label has none)
    kind: Literal["exact", "fuzzy", "generic"]
    distance: int  # hops: the signature's initial TTL minus the packet's TTL, or p0f's guess
    line: int = 0  # line of the matching signature in the database
    random_ttl: bool = False  # the signature's TTL is marked bad ('64-'): distance is a bound

    @property
    def display(self) -> str:
        """What p0f prints after ``os=`` (or ``app=`` for userland tools)."""
        return f"{self.name} {self.flavor}" if self.flavor else self.name

    @property
    def is_userland(self) -> bool:
        return self.os_class == "!"


class _Compiled:
    """A signature flattened for the matching loop (attribute access on slots is cheap)."""

    __slots__ = (
        "bad_ttl",
        "generic",
        "mss",
        "pay_class",
        "quirks4",
        "quirks6",
        "record",
        "ttl",
        "userland",
        "win",
        "win_type",
        "wscale",
    )

    def __init__(self, rec: TcpSignatureRecord) -> None:
        sig = rec.signature
        self.record = rec
        # p0f drops IPv6-only quirks from version-less signatures when matching IPv4
        # packets, and IPv4-only ones when matching IPv6: precompute both.
        if sig.ip_ver == -1:
            self.quirks4 = sig.quirks & ~_Q_FLOW
            self.quirks6 = sig.quirks & ~_Q_V4_ONLY
        else:
            self.quirks4 = self.quirks6 = sig.quirks
        self.ttl = sig.ttl
        self.bad_ttl = sig.bad_ttl
        self.mss = sig.mss
        self.wscale = sig.wscale
        self.pay_class = sig.pay_class
        self.win_type = int(sig.win_type)
        self.win = sig.win
        self.generic = rec.label.generic
        self.userland = rec.label.is_userland


_WT_NORMAL, _WT_ANY, _WT_MOD, _WT_MSS, _WT_MTU = (int(w) for w in WinType)


class P0fMatcher:
    """Match SYNs and SYN+ACKs against a `P0fDatabase` the way p0f 3.09b does.

    Signatures are indexed by (direction, option layout, EOL padding, IP option length):
    p0f only ever compares signatures with the packet's layout, and a signature with
    other fixed parameters is skipped without side effects, so a bucket holds exactly the
    candidates, in file order. Results are memoised on the packet's features (timestamps,
    addresses and sequence numbers are not among them), so repeated SYN shapes cost one
    parse and one dict lookup; the memo is cleared when it reaches `cache_size` entries.
    """

    def __init__(self, db: P0fDatabase, *, p0f_ack_bug: bool = True, cache_size: int = 4096) -> None:
        self.db = db
        self.p0f_ack_bug = p0f_ack_bug
        self.cache_size = cache_size
        self._index: tuple[dict[tuple[bytes, int, int], list[_Compiled]], ...] = ({}, {})
        for rec in db.tcp:
            key = (rec.signature.olayout, rec.signature.eol_pad, rec.signature.ip_opt_len)
            self._index[rec.to_server].setdefault(key, []).append(_Compiled(rec))
        self._syn_cache: dict[_Feat, P0fMatch | None] = {}
        self._synack_cache: dict[tuple[_Feat, int], P0fMatch | None] = {}

    # -- public entry points -----------------------------------------------------------

    def match_syn(self, ip_and_tcp: bytes | memoryview) -> P0fMatch | None:
        """Match a SYN given as IP header + TCP header (+ payload). None: no match / not a SYN."""
        f = _extract(ip_and_tcp, _TCP_SYN, self.p0f_ack_bug)
        return None if f is None else self._match_syn_features(f)

    def match_synack(self, ip_and_tcp: bytes | memoryview, syn_mss: int = 0) -> P0fMatch | None:
        """Match a SYN+ACK; `syn_mss` is the MSS of the SYN it answers, if it was seen."""
        f = _extract(ip_and_tcp, _SYN_ACK, self.p0f_ack_bug)
        if f is None:
            return None
        return self._match_synack_features(f, syn_mss)

    def match_features(self, features: TcpFeatures, syn_mss: int = 0) -> P0fMatch | None:
        if features.synack:
            return self._match_synack_features(features._key(), syn_mss)
        return self._match_syn_features(features._key())

    def match_segment(self, seg: TcpSegment, syn_mss: int = 0) -> P0fMatch | None:
        """Match a parsed IPv4 SYN or SYN+ACK from the sensor's stack, without re-parsing it."""
        f = self.segment_features(seg)
        if f is None:
            return None
        if seg.flags & _TCP_ACK:
            return self._match_synack_features(f, syn_mss)
        return self._match_syn_features(f)

    def _match_syn_features(self, f: _Feat) -> P0fMatch | None:
        """A SYN's match, cached by its feature tuple (attackers repeat the same SYN shape)."""
        cache = self._syn_cache
        try:
            return cache[f]
        except KeyError:
            pass
        result = self._find(True, f, 0)
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[f] = result
        return result

    def segment_features(self, seg: TcpSegment) -> _Feat | None:
        """The feature tuple of a `TcpSegment` (IPv4 only, like the stack)."""
        flags = seg.flags
        tcp_type = flags & (_TCP_SYN | _TCP_ACK | _TCP_FIN | _TCP_RST)
        if tcp_type != _TCP_SYN and tcp_type != _SYN_ACK:
            return None
        ip = seg.ip
        header = ip.header
        if ip.mf or ip.frag_offset:
            return None
        quirks = _Q_ECN if ip.tos & 0x03 else 0
        if header[6] & 0x80:
            quirks |= _Q_NZ_MBZ
        if ip.df:
            quirks |= _Q_DF | _Q_NZ_ID if ip.ident else _Q_DF
        elif not ip.ident:
            quirks |= _Q_ZERO_ID
        if flags & 0xC0 or seg.reserved & 0x01:
            quirks |= _Q_ECN
        if not seg.seq:
            quirks |= _Q_ZERO_SEQ
        if flags & _TCP_ACK:
            if not seg.ack:
                quirks |= _Q_ZERO_ACK
        elif (seg.ack >> _ACK_BUG_SHIFT) & 1 if self.p0f_ack_bug else seg.ack:
            quirks |= _Q_NZ_ACK
        if flags & _TCP_URG:
            quirks |= _Q_URG
        elif seg.urgent:
            quirks |= _Q_NZ_URG
        if flags & _TCP_PUSH:
            quirks |= _Q_PUSH
        opts = seg.options_raw
        if opts:
            layout, eol_pad, mss, wscale, has_ts1, oq = _parse_options(
                opts, 0, len(opts), tcp_type == _TCP_SYN
            )
            quirks |= oq
        else:
            layout, eol_pad, mss, wscale, has_ts1 = b"", 0, 0, 0, False
        hdr_len = len(header)
        return (
            4,
            ip.ttl,
            hdr_len - 20,
            mss,
            seg.window,
            wscale,
            layout,
            eol_pad,
            quirks,
            1 if seg.payload else 0,
            hdr_len + 20 + len(opts),
            has_ts1,
        )

    def clear_cache(self) -> None:
        self._syn_cache.clear()
        self._synack_cache.clear()

    # -- the matching proper -------------------------------------------------------------

    def _match_synack_features(self, f: _Feat, syn_mss: int) -> P0fMatch | None:
        key = (f, syn_mss)
        cache = self._synack_cache
        try:
            return cache[key]
        except KeyError:
            pass
        result = self._find(False, f, syn_mss)
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[key] = result
        return result

    def _find(self, to_srv: bool, f: _Feat, syn_mss: int) -> P0fMatch | None:
        """tcp_find_match() for a packet."""
        ip_ver, ttl, olen, mss, win, wscale, layout, eol_pad, quirks, pay_class, tot_hdr, has_ts1 = f
        bucket = self._index[to_srv].get((layout, eol_pad, olen))
        if not bucket:
            return None
        win_multi, use_mtu = _win_multi(win, mss, has_ts1, ip_ver, tot_hdr, syn_mss)
        v4 = ip_ver == 4
        fmatch: _Compiled | None = None
        gmatch: _Compiled | None = None
        for ref in bucket:
            ref_quirks = ref.quirks4 if v4 else ref.quirks6
            fuzzy = False
            if ref_quirks != quirks:
                diff = ref_quirks ^ quirks
                if (
                    fmatch is not None
                    or diff & ref_quirks & ~_Q_FUZZY_DELETED
                    or diff & quirks & ~_Q_FUZZY_ADDED
                ):
                    continue
                fuzzy = True
            if ref.bad_ttl:
                if ref.ttl < ttl:
                    continue
            elif ref.ttl < ttl or ref.ttl - ttl > MAX_DIST:
                fuzzy = True
            if ref.mss != -1 and ref.mss != mss:
                continue
            if ref.wscale != -1 and ref.wscale != wscale:
                continue
            if ref.pay_class != -1 and ref.pay_class != pay_class:
                continue
            wt = ref.win_type
            if wt == _WT_NORMAL:
                if ref.win != win:
                    continue
            elif wt == _WT_MOD:
                if win % ref.win:
                    continue
            elif wt == _WT_MSS:
                if use_mtu or ref.win != win_multi:
                    continue
            elif wt == _WT_MTU and (not use_mtu or ref.win != win_multi):
                continue
            if not fuzzy:
                if not ref.generic:
                    return _result(ref, "exact", ref.ttl - ttl)
                if gmatch is None:
                    gmatch = ref
            elif fmatch is None:
                fmatch = ref
        if gmatch is not None:
            return _result(gmatch, "generic", gmatch.ttl - ttl)
        if fmatch is None or fmatch.userland:  # no fuzzy matching for userland tools
            return None
        if fmatch.ttl < ttl or (not fmatch.bad_ttl and fmatch.ttl - ttl > MAX_DIST):
            dist = guess_distance(ttl)
        else:
            dist = fmatch.ttl - ttl
        return _result(fmatch, "fuzzy", dist)


def _result(ref: _Compiled, kind: Literal["exact", "fuzzy", "generic"], dist: int) -> P0fMatch:
    label = ref.record.label
    return P0fMatch(
        label.text, label.os_class, label.name, label.flavor, kind, dist, ref.record.line, ref.bad_ttl
    )
