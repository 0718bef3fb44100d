"""p0f version 2 SYN signatures, and the short SYN tuple of the original dynamic-honeypot paper.

The original design fingerprinted attackers with p0f 2, whose p0f.fp lines read
``wwww:ttt:D:ss:OOO...:QQ:OS:Details``:

=======  ====================================================================
wwww     window size: a number, ``*``, ``%N`` (multiple of N), ``SN`` (N times
         the MSS) or ``TN`` (N times the MTU, i.e. MSS + 40)
ttt      initial TTL
D        don't-fragment bit, 0 or 1
ss       total SYN size in bytes; ``*`` means "larger than 100"
OOO      options in order: ``N`` nop, ``E`` eol, ``S`` sack-ok, ``T`` timestamp,
         ``T0`` timestamp with a zero value, ``Mnnn``/``Wnnn`` MSS and window
         scale (value, ``*`` or ``%N``), ``?n`` other option; ``.`` for none
QQ       quirks, unseparated: P options past EOL, Z zero IP ID, I IP options,
         U urgent pointer, X unused field, A ACK number, T second timestamp,
         F unusual flags, D data, ! broken options (K, Q, 0 are RST-mode only);
         ``.`` for none
OS       genre; a ``-`` prefix marks userland stacks, ``*`` no details, ``@`` generic
Details  free text
=======  ====================================================================

Matching follows p0f 2: every field must agree, the observed TTL must be at most the
initial TTL and within 40 hops of it (p0f 2's MAXDIST); the first specific signature in
file order wins, and generic (``@``) ones are used only when no specific one matches.

The paper's short form
----------------------

The paper writes an attacker's SYN as eight numbers, ``512:124:1460:0:118:0:0:44``, and
reads them as window 512, TTL 124, MSS 1460, DF 0, window scaling 118, SACK-OK 0, NOP 0,
packet size 44. `PaperSyn` takes the tuple literally, and `PaperSyn.to_packet()` maps it
onto p0f 2's fields:

* wwww = the window (512); D = the DF field; ss = the size (44);
* ttt: p0f 2 compares the observed TTL (124) with each signature's initial TTL (so 128
  matches, 4 hops away);
* OOO: the tuple has no option order, so the options are laid out in the usual order
  MSS, NOPs, window scale (a scale of 0 counts as absent), SACK-OK, keeping only those
  that fit in the ``size - 40`` option bytes the size leaves. A 44-byte SYN has room
  for exactly one 4-byte MSS option, so the example becomes ``M1460``. Its window
  scaling value 118 cannot be a window-scale option on that SYN: no room for it, and a
  shift above 14 is invalid (RFC 7323); it is kept in the tuple but gives no ``W``;
* QQ: the tuple records no quirks, so ``.``.

So the example reads as the p0f 2 observation ``512:124:0:44:M1460:.``, which a Windows
2000 line such as ``512:128:0:44:M*:.:Windows:2000 ...`` matches.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MAX_DIST_V2",
    "PACKET_BIG",
    "P0fV2Database",
    "P0fV2Error",
    "P0fV2Matcher",
    "PaperSyn",
    "V2Match",
    "V2Option",
    "V2Packet",
    "V2Signature",
]

MAX_DIST_V2 = 40  # p0f 2 config.h MAXDIST: the largest TTL distance of a match
PACKET_BIG = 100  # p0f 2: a '*' size means a SYN larger than this
_QUIRK_CHARS = frozenset("PZIUXATFD!KQ0")


class P0fV2Error(Exception):
    """A p0f 2 signature file or paper tuple is malformed; says where and why."""


@dataclass(frozen=True, slots=True)
class V2Option:
    """One option of a signature or packet: kind ('M', 'W', 'N', 'E', 'S', 'T', 'T0', '?').

    For 'M' and 'W', `mod` is '' (literal `value`), '*' (any) or '%' (a multiple of `value`);
    for '?', `value` is the option number.
    """

    kind: str
    value: int = 0
    mod: str = ""

    def __str__(self) -> str:
        if self.kind in ("M", "W"):
            if self.mod == "*":
                return f"{self.kind}*"
            return f"{self.kind}{self.mod}{self.value}"
        if self.kind == "?":
            return f"?{self.value}"
        return self.kind


@dataclass(frozen=True, slots=True)
class V2Signature:
    """One line of a p0f 2 SYN database."""

    wsize_mod: str  # '' literal, '*' any, '%' multiple, 'S' MSS multiple, 'T' MTU multiple
    wsize: int
    ttl: int
    df: bool
    size: int  # -1 for '*'
    options: tuple[V2Option, ...]
    quirks: frozenset[str]
    genre: str  # without the '-', '*', '@' prefixes
    details: str
    userland: bool  # '-'
    no_detail: bool  # '*'
    generic: bool  # '@'
    line: int = 0

    @classmethod
    def parse(cls, text: str, line: int = 0) -> V2Signature:
        parts = text.strip().split(":", 7)
        if len(parts) != 8:
            raise P0fV2Error(f"line {line}: expected 8 ':'-separated fields in {text!r}")
        w, t, d, s, o, q, genre, details = parts
        if w == "*":
            wmod, wval = "*", 0
        elif w[:1] in ("%", "S", "T"):
            wmod, wval = w[0], _int(w[1:], "window", line)
        else:
            wmod, wval = "", _int(w, "window", line)
        ttl = _int(t, "TTL", line)
        if not 1 <= ttl <= 255:
            raise P0fV2Error(f"line {line}: bogus TTL {ttl}")
        if d not in ("0", "1"):
            raise P0fV2Error(f"line {line}: DF must be 0 or 1, not {d!r}")
        size = -1 if s == "*" else _int(s, "size", line)
        options = (
            () if o == "." else tuple(_parse_option(tok, line) for tok in o.replace(" ", ",").split(","))
        )
        quirks = frozenset() if q == "." else frozenset(q)
        if not quirks <= _QUIRK_CHARS:
            raise P0fV2Error(f"line {line}: unknown quirk(s) {''.join(sorted(quirks - _QUIRK_CHARS))!r}")
        userland = genre.startswith("-")
        genre = genre.lstrip("-")
        no_detail = genre.startswith("*")
        generic = genre.startswith("@")
        genre = genre.lstrip("*@")
        if not genre:
            raise P0fV2Error(f"line {line}: empty OS genre")
        return cls(
            wmod,
            wval,
            ttl,
            d == "1",
            size,
            options,
            quirks,
            genre,
            details,
            userland,
            no_detail,
            generic,
            line,
        )

    @property
    def label(self) -> str:
        return f"{self.genre}:{self.details}"

    def __str__(self) -> str:
        w = "*" if self.wsize_mod == "*" else f"{self.wsize_mod}{self.wsize}"
        genre = (
            ("-" if self.userland else "") + ("*" if self.no_detail else "") + ("@" if self.generic else "")
        )
        return ":".join(
            (
                w,
                str(self.ttl),
                "1" if self.df else "0",
                "*" if self.size == -1 else str(self.size),
                ",".join(map(str, self.options)) or ".",
                "".join(sorted(self.quirks)) or ".",
                genre + self.genre,
                self.details,
            )
        )


def _int(text: str, what: str, line: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise P0fV2Error(f"line {line}: malformed {what} {text!r}")
    return int(text)


def _parse_option(tok: str, line: int) -> V2Option:
    if tok in ("N", "E", "S", "T", "T0"):
        return V2Option(tok)
    if tok[:1] in ("M", "W") and len(tok) > 1:
        rest = tok[1:]
        if rest == "*":
            return V2Option(tok[0], 0, "*")
        if rest.startswith("%"):
            return V2Option(tok[0], _int(rest[1:], f"{tok[0]} modulo", line), "%")
        return V2Option(tok[0], _int(rest, f"{tok[0]} value", line))
    if tok.startswith("?"):
        return V2Option("?", _int(tok[1:], "option number", line))
    raise P0fV2Error(f"line {line}: unrecognized option {tok!r}")


@dataclass(frozen=True, slots=True)
class V2Packet:
    """What p0f 2 observes in a SYN."""

    window: int
    ttl: int
    df: bool
    size: int
    options: tuple[V2Option, ...]  # literal values: M1460, W7, T or T0, ...
    quirks: frozenset[str] = frozenset()

    @property
    def mss(self) -> int:
        for opt in self.options:
            if opt.kind == "M":
                return opt.value
        return 0

    def __str__(self) -> str:
        opts = ",".join(map(str, self.options)) or "."
        quirks = "".join(sorted(self.quirks)) or "."
        return f"{self.window}:{self.ttl}:{int(self.df)}:{self.size}:{opts}:{quirks}"

    @classmethod
    def from_ip_tcp(cls, data: bytes | memoryview) -> V2Packet:
        """Observe an IPv4 SYN (IP header, TCP header, payload) the way p0f 2 does."""
        if len(data) < 40 or data[0] >> 4 != 4:
            raise ValueError("not an IPv4 packet with a TCP header")
        ihl = (data[0] & 0x0F) * 4
        tot_len, ident, flags_off, ttl = struct.unpack_from("!2xHHHB", data, 0)
        if ihl < 20 or len(data) < ihl + 20:
            raise ValueError("truncated IPv4 or TCP header")
        ack, doff_x2, flags, win, urg = struct.unpack_from("!8xIBBH2xH", data, ihl)
        doff = (doff_x2 >> 4) * 4
        quirks: set[str] = set()
        if not ident:
            quirks.add("Z")
        if ihl > 20:
            quirks.add("I")
        if doff_x2 & 0x0F:
            quirks.add("X")
        if ack and not flags & 0x10:
            quirks.add("A")
        if urg and not flags & 0x20:
            quirks.add("U")
        if flags & ~(0x02 | 0x10 | 0x40 | 0x80):  # beyond SYN, ACK and the ECN flags
            quirks.add("F")
        if tot_len > ihl + doff:
            quirks.add("D")
        opts: list[V2Option] = []
        i, end = ihl + 20, min(ihl + doff, len(data))
        while i < end:
            kind = data[i]
            if kind == 0:
                opts.append(V2Option("E"))
                if any(data[i + 1 : end]):
                    quirks.add("P")
                break
            if kind == 1:
                opts.append(V2Option("N"))
                i += 1
                continue
            if i + 1 >= end or data[i + 1] < 2 or i + data[i + 1] > end:
                quirks.add("!")
                break
            length = data[i + 1]
            if kind == 2 and length == 4:
                opts.append(V2Option("M", data[i + 2] << 8 | data[i + 3]))
            elif kind == 3 and length == 3:
                opts.append(V2Option("W", data[i + 2]))
            elif kind == 4:
                opts.append(V2Option("S"))
            elif kind == 8 and length == 10:
                tsval, tsecr = struct.unpack_from("!II", data, i + 2)
                opts.append(V2Option("T" if tsval else "T0"))
                if tsecr:
                    quirks.add("T")
            else:
                opts.append(V2Option("?", kind))
            i += length
        return cls(win, ttl, bool(flags_off & 0x4000), tot_len, tuple(opts), frozenset(quirks))


@dataclass(frozen=True, slots=True)
class V2Match:
    signature: V2Signature
    distance: int  # signature TTL minus observed TTL

    @property
    def label(self) -> str:
        return self.signature.label


class P0fV2Database:
    """A p0f 2 SYN signature file (``#`` comments, one signature per line)."""

    def __init__(self, signatures: list[V2Signature], path: str = "<memory>") -> None:
        self.signatures = signatures
        self.path = path

    @classmethod
    def parse(cls, text: str, path: str = "<memory>") -> P0fV2Database:
        sigs = []
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                sigs.append(V2Signature.parse(line, n))
            except P0fV2Error as exc:
                raise P0fV2Error(f"{path}:{exc}") from None
        return cls(sigs, path)

    @classmethod
    def load(cls, path: str | Path) -> P0fV2Database:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise P0fV2Error(f"{path}: cannot read: {exc.strerror or exc}") from exc
        return cls.parse(text, str(path))


class P0fV2Matcher:
    """First specific signature that agrees on every field; generic ones as a fallback."""

    def __init__(self, db: P0fV2Database) -> None:
        self.db = db

    def match(self, pkt: V2Packet) -> V2Match | None:
        generic: V2Signature | None = None
        for sig in self.db.signatures:
            if not _agrees(sig, pkt):
                continue
            if not sig.generic:
                return V2Match(sig, sig.ttl - pkt.ttl)
            if generic is None:
                generic = sig
        return V2Match(generic, generic.ttl - pkt.ttl) if generic is not None else None


def _agrees(sig: V2Signature, pkt: V2Packet) -> bool:
    if sig.size == -1:
        if pkt.size <= PACKET_BIG:
            return False
    elif sig.size != pkt.size:
        return False
    if sig.df != pkt.df or sig.quirks != pkt.quirks or len(sig.options) != len(pkt.options):
        return False
    if not (pkt.ttl <= sig.ttl and sig.ttl - pkt.ttl <= MAX_DIST_V2):
        return False
    for want, got in zip(sig.options, pkt.options, strict=True):
        if want.kind != got.kind:
            return False
        if want.kind in ("M", "W", "?"):
            if want.mod == "*":
                continue
            if want.mod == "%":
                if got.value % want.value:
                    return False
            elif want.value != got.value:
                return False
    mss = pkt.mss
    w = sig.wsize_mod
    if w == "*":
        return True
    if w == "%":
        return sig.wsize != 0 and pkt.window % sig.wsize == 0
    if w == "S":
        return mss > 0 and pkt.window == mss * sig.wsize
    if w == "T":
        return mss > 0 and pkt.window == (mss + 40) * sig.wsize
    return pkt.window == sig.wsize


@dataclass(frozen=True, slots=True)
class PaperSyn:
    """The paper's eight-number SYN: window:ttl:mss:df:wscale:sackok:nop:size, read literally."""

    window: int
    ttl: int
    mss: int
    df: int
    wscale: int
    sackok: int
    nop: int
    size: int

    @classmethod
    def parse(cls, text: str) -> PaperSyn:
        parts = text.strip().split(":")
        if len(parts) != 8 or not all(p.isdigit() for p in parts):
            raise P0fV2Error(f"expected eight ':'-separated numbers, got {text!r}")
        return cls(*(int(p) for p in parts))

    def __str__(self) -> str:
        return ":".join(
            str(v)
            for v in (self.window, self.ttl, self.mss, self.df, self.wscale, self.sackok, self.nop, self.size)
        )

    def to_packet(self) -> V2Packet:
        """The p0f 2 observation the tuple describes (see the module docstring)."""
        room = max(0, self.size - 40)
        opts: list[V2Option] = []
        if self.mss and room >= 4:
            opts.append(V2Option("M", self.mss))
            room -= 4
        for _ in range(min(self.nop, room)):
            opts.append(V2Option("N"))
            room -= 1
        if 0 <= self.wscale <= 14 and self.wscale and room >= 3:
            opts.append(V2Option("W", self.wscale))
            room -= 3
        if self.sackok and room >= 2:
            opts.append(V2Option("S"))
        return V2Packet(self.window, self.ttl, bool(self.df), self.size, tuple(opts))
