"""The personality engine: one nmap-os-db fingerprint compiled into one virtual host's behaviour.

`compile_personality` reads every test expression once, lets the host pick one value
wherever the fingerprint allows several (with its own seeded `random.Random`), and
precomputes option bytes, flags and windows. The methods the stack calls per packet
(`syn_ack`, `closed_port`, `echo_reply`, ...) only look up a template, advance a clock
or counter and build a small frozen reply.

What nmap measures, and how this host reproduces it (nmap book, "TCP/IP Fingerprinting
Methods Supported by Nmap", and osscan2.cc):

- SEQ.GCD/ISR/SP come from six SYN/ACK ISNs taken 100 ms apart. The host's ISN grows by
  `g * n_k` units per 100 ms, where `n_k` cycles through five values planned at compile
  time so that *any* five consecutive increments give nmap's average rate (ISR), the
  standard deviation (SP) and the GCD the fingerprint wants. Increments scale with the
  elapsed time, so probe timing jitter cancels out of nmap's rate (= increment / time).
- TI/CI/II: IP ID generators per reply kind: Z (zero), RD (jumps > 20000), RI (random
  positive steps > 1000), BI (steps of 256), I (steps of 1) or a constant. Incremental
  kinds share one host-wide counter; ICMP gets its own when SS=O.
- TS: the TCP timestamp clock runs at 2 Hz (TS=1), 100 Hz (7), 250 Hz (8), 1000 Hz (A)
  or 2^k Hz, counted from the host's boot (`uptime`), so nmap's uptime guess is the very
  uptime the host's services tell (`dynapot.services.identity`), and hosts differ by it.
- T (initial TTL) per test, chosen so that both T and TG match; nmap derives T from the
  hop distance it measures with U1's quoted TTL, so where a fingerprint's T values lie
  above 255 (a host that decremented the quoted TTL) the quoted TTL is lowered to match.

Missing tests or attributes (a fingerprint without IE, or without SEQ.CI) fall back to
the usual behaviour of the OS family (`_FAMILY_DEFAULTS`): e.g. a Windows host answers
pings with code 0 (CD=Z), Linux echoes the request's code (CD=S); R=N means silence.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import sys
import time
import zlib
from array import array
from collections.abc import Mapping, Sequence

from dynapot.netstack.personality import IpReply, SegmentShape, TcpReply
from dynapot.netstack.types import IPPROTO_ICMP, IcmpMessage, TcpFlags, TcpSegment, UdpDatagram
from dynapot.personality import expr as X
from dynapot.personality.nmap_probes import classify_syn, classify_t, is_ecn_probe
from dynapot.personality.osdb import Fingerprint

__all__ = ["HostPersonality", "compile_personality"]

_MASK32 = 0xFFFFFFFF
_FIN, _SYN, _RST, _PSH = int(TcpFlags.FIN), int(TcpFlags.SYN), int(TcpFlags.RST), int(TcpFlags.PSH)
_ACK, _URG, _ECE, _CWR = int(TcpFlags.ACK), int(TcpFlags.URG), int(TcpFlags.ECE), int(TcpFlags.CWR)
_FLAG_LETTERS = {"E": _ECE, "U": _URG, "A": _ACK, "P": _PSH, "R": _RST, "S": _SYN, "F": _FIN}
_CC_FLAGS = {"Y": _ECE, "S": _ECE | _CWR, "O": _CWR, "N": 0}
_TS_PACK = struct.Struct("!II").pack
_ICMP_HEAD = struct.Struct("!BBHHH")
_UDP_HEAD = struct.Struct("!HHHH")
_LITTLE = sys.byteorder == "little"

# Relations of a reply's SEQ to the probe's ACK, and of its ACK to the probe's SEQ (nmap S and A).
_S_RULES = {"Z": 0, "A": 1, "A+": 2, "O": 3}
_A_RULES = {"Z": 0, "S": 1, "S+": 2, "O": 3}

# Behaviour of an OS family where the fingerprint is silent about a test or attribute.
_FAMILY_DEFAULTS: dict[str, dict[str, dict[str, str]]] = {
    "windows": {
        "SEQ": {"SP": "FE-108", "GCD": "1-6", "ISR": "104-10E", "TI": "I", "CI": "I", "II": "I", "SS": "S"},
        "IE": {"R": "Y", "DFI": "N", "CD": "Z"},
        "U1": {"R": "Y", "DF": "N", "IPL": "164", "UN": "0", "RIPL": "G", "RID": "G", "RIPCK": "G"},
    },
    "linux": {
        "SEQ": {"SP": "FE-108", "GCD": "1-6", "ISR": "104-10E", "TI": "Z", "CI": "Z", "II": "I"},
        "IE": {"R": "Y", "DFI": "N", "CD": "S"},
        "U1": {"R": "Y", "DF": "N", "IPL": "164", "UN": "0", "RIPL": "G", "RID": "G", "RIPCK": "G"},
    },
    "": {
        "SEQ": {"SP": "FE-108", "GCD": "1-6", "ISR": "104-10E", "TI": "I", "CI": "I", "II": "I", "SS": "S"},
        "IE": {"R": "Y", "DFI": "N", "CD": "S"},
        "U1": {"R": "Y", "DF": "N", "IPL": "38", "UN": "0", "RIPL": "G", "RID": "G", "RIPCK": "G"},
    },
}
_U1_COMMON = {"RUCK": "G", "RUD": "G"}
_T_DEFAULTS = {  # RFC 793 behaviour for a missing T2..T7 line
    "T2": {"R": "N"},
    "T3": {"R": "N"},
    "T4": {"R": "Y", "W": "0", "S": "A", "A": "Z", "F": "R", "O": "", "RD": "0", "Q": ""},
    "T5": {"R": "Y", "W": "0", "S": "Z", "A": "S+", "F": "AR", "O": "", "RD": "0", "Q": ""},
    "T6": {"R": "Y", "W": "0", "S": "A", "A": "Z", "F": "R", "O": "", "RD": "0", "Q": ""},
    "T7": {"R": "Y", "W": "0", "S": "Z", "A": "S+", "F": "AR", "O": "", "RD": "0", "Q": ""},
}
_ATTR_DEFAULTS = {"DF": "N", "W": "0", "S": "O", "A": "S+", "F": "AS", "O": "", "RD": "0", "Q": "", "CC": "N"}
_DEFAULT_SYNACK_OPTIONS = "M5B4"
_DEFAULT_WINDOW = "2000"


def _normalized(values: Sequence[float]) -> tuple[float, ...]:
    """`values` shifted and scaled to mean 0 and sample standard deviation 1 (divisor n-1)."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return tuple((v - mean) / sd for v in values)


# Shapes of the ISN increments over one period (5 increments, or 4 when nmap must drop the
# first SYN/ACK): evenly spread, one spike up (allows a std up to ~2.2x the mean while all
# rates stay positive), one spike down (keeps the largest increment below 2^31).
_SHAPES = {
    period: (
        _normalized(range(period)),
        _normalized([period - 1] + [-1] * (period - 1)),
        _normalized([1 - period] + [1] * (period - 1)),
    )
    for period in (4, 5)
}


def _family(fp: Fingerprint) -> str:
    text = " ".join(f"{c.vendor} {c.family}" for c in fp.classes).lower()
    for family in ("windows", "linux"):
        if family in text:
            return family
    return ""


def _checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071) summed as native 16-bit words, then byte-swapped if needed."""
    if len(data) & 1:
        data += b"\0"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    return ((total >> 8) | ((total & 0xFF) << 8)) if _LITTLE else total


def _forge_crc32(target: int) -> bytes:
    """Four bytes whose CRC-32 is `target` (nmap's RD: the CRC of the data in a RST).

    CRC-32 of a fixed-length message is affine over GF(2), so solve it by elimination.
    """
    base = zlib.crc32(b"\0\0\0\0")
    rows: list[tuple[int, int]] = []  # (vector, input bits that produce it), distinct leading bits
    for bit in range(32):
        vec, comb = zlib.crc32((1 << bit).to_bytes(4, "little")) ^ base, 1 << bit
        for rvec, rcomb in rows:
            if vec ^ rvec < vec:
                vec, comb = vec ^ rvec, comb ^ rcomb
        if vec:
            rows.append((vec, comb))
            rows.sort(reverse=True)
    want, x = target ^ base, 0
    for rvec, rcomb in rows:
        if want ^ rvec < want:
            want, x = want ^ rvec, x ^ rcomb
    return x.to_bytes(4, "little")


def _ttl_guess(ttl: int) -> int:
    """nmap's get_initial_ttl_guess."""
    return 32 if ttl <= 32 else 64 if ttl <= 64 else 128 if ttl <= 128 else 255


# --- TCP options -------------------------------------------------------------------------


def _option_tokens(text: str) -> list[tuple[str, int]]:
    """nmap's option string (`M5B4NW7ST11`) as tokens; T carries 2 bits (TSval, TSecr non-zero)."""
    tokens: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        kind = text[i]
        i += 1
        if kind in "MW":
            j = i
            while j < len(text) and j - i < (4 if kind == "M" else 2) and text[j] in "0123456789ABCDEF":
                j += 1
            tokens.append((kind, int(text[i:j] or "0", 16)))
            i = j
        elif kind == "T":
            bits = text[i : i + 2].ljust(2, "0")
            tokens.append(("T", (bits[0] != "0") << 1 | (bits[1] != "0")))
            i += 2
        elif kind in "NSL":
            tokens.append((kind, 0))
        else:
            raise ValueError(f"unknown TCP option letter {kind!r} in {text!r}")
    return tokens


def _filtered_tokens(tokens: list[tuple[str, int]], drop: str) -> list[tuple[str, int]]:
    """Tokens without the kinds in `drop` (and the NOPs that aligned them)."""
    out: list[tuple[str, int]] = []
    for token in tokens:
        if token[0] in drop:
            while out and out[-1][0] == "N":
                out.pop()
        else:
            out.append(token)
    while out and out[-1][0] in "NL":
        out.pop()
    return out


class _Options:
    """Encoded options of one reply kind; the timestamp's 8 value bytes are filled per packet."""

    __slots__ = ("has_ts", "prefix", "suffix", "ts_ecr", "ts_val")

    def __init__(self, tokens: list[tuple[str, int]]) -> None:
        parts: list[bytes] = []
        ts_at = -1
        self.ts_val = self.ts_ecr = False
        for kind, value in tokens:
            if kind == "M":
                parts.append(struct.pack("!BBH", 2, 4, value & 0xFFFF))
            elif kind == "W":
                parts.append(bytes((3, 3, value & 0xFF)))
            elif kind == "S":
                parts.append(b"\x04\x02")
            elif kind == "N":
                parts.append(b"\x01")
            elif kind == "L":
                parts.append(b"\x00")
            elif ts_at < 0:  # the first timestamp option is the live one
                ts_at = len(parts)
                self.ts_val, self.ts_ecr = bool(value & 2), bool(value & 1)
                parts.append(b"\x08\x0a")
            else:
                parts.append(b"\x08\x0a" + b"\0" * 8)
        length = sum(map(len, parts)) + (8 if ts_at >= 0 else 0)
        parts.append(b"\0" * (-length % 4))  # pad with EOL to whole words
        self.has_ts = ts_at >= 0
        self.prefix = b"".join(parts[: ts_at + 1]) if self.has_ts else b"".join(parts)
        self.suffix = b"".join(parts[ts_at + 1 :]) if self.has_ts else b""

    def render(self, tsval: int, peer_tsval: int) -> bytes:
        if not self.has_ts:
            return self.prefix
        return (
            self.prefix
            + _TS_PACK((tsval or 1) if self.ts_val else 0, peer_tsval if self.ts_ecr else 0)
            + self.suffix
        )


# --- counters and clocks -----------------------------------------------------------------


class _PyCounter:
    """An IP ID counter (the C one below is shared with the sensor's receive thread)."""

    __slots__ = ("_value",)

    def __init__(self, value: int = 0) -> None:
        self._value = value & 0xFFFF

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        self._value = value & 0xFFFF

    def advance(self, step: int) -> int:
        """Move on by `step`; the value before."""
        before = self._value
        self._value = (before + step) & 0xFFFF
        return before


try:  # the receive thread answers pings in C and numbers them from the same counters
    from dynapot._fastpath import Counter as _Counter
except ImportError:  # pragma: no cover - the set-up builds the extension
    _Counter = _PyCounter  # type: ignore[assignment,misc]


_Z, _CONST, _RD, _INC = 0, 1, 2, 3
_DF_MODES = {"N": 0, "Y": 1, "S": 2, "O": 3}  # IE's DFI, as _fastpath numbers it


class _IpId:
    """One IP ID sequence class (nmap TI/CI/II): Z, a constant, RD, or steps on a counter."""

    __slots__ = ("counter", "kind", "rng", "step_high", "step_low")

    def __init__(self, kind: int, counter: _Counter, rng: random.Random, low: int = 0, high: int = 0) -> None:
        self.kind, self.counter, self.rng, self.step_low, self.step_high = kind, counter, rng, low, high

    def next(self) -> int:
        kind = self.kind
        if kind == _INC:
            step = self.step_low
            if self.step_high != step:
                step = self.rng.randint(step, self.step_high)
                if step % 256 == 0:  # nmap reads multiples of 256 as broken increments
                    step += 1
            # The packet takes the next number and the counter then moves on by the whole
            # step: whichever kind of reply follows is numbered right after this one, which
            # is what nmap's SS (shared sequence) test looks for.
            return (self.counter.advance(step) + 1) & 0xFFFF
        if kind == _RD:
            # every step > 20000 (as nmap's unsigned difference): nmap calls it random
            jump = self.rng.randint(20001, 45535)
            return (self.counter.advance(jump) + jump) & 0xFFFF
        return self.counter.value  # Z (value 0) or a constant

    def rule(self) -> tuple:
        """This sequence for the C receive thread: (kind, constant, step low, step high, counter)."""
        return self.kind, self.counter.value, self.step_low, self.step_high, self.counter


def _ipid_class(choice: str, counter: _Counter, rng: random.Random) -> _IpId:
    if choice == "Z":
        return _IpId(_CONST, _Counter(0), rng)
    if choice == "RD":
        return _IpId(_RD, _Counter(rng.randrange(65536)), rng)
    if choice == "RI":
        return _IpId(_INC, counter, rng, 1001, 1999)
    if choice == "BI":
        return _IpId(_INC, counter, rng, 256, 256)
    if choice == "I":
        return _IpId(_INC, counter, rng, 1, 1)
    return _IpId(_CONST, _Counter(int(choice, 16) & 0xFFFF), rng)


class _PyIsn:
    """ISN generator: grows by `g * n_k` per 100 ms, n_k cycling through a planned pattern.

    The increment scales with the time since the previous ISN, so nmap's rate (increment
    divided by the time between its probes) does not depend on the probes' exact spacing.
    """

    __slots__ = ("g", "k", "last", "pattern", "value")

    def __init__(self, g: int, pattern: Sequence[int], start: int, now: float) -> None:
        self.g, self.pattern, self.k, self.value, self.last = g, tuple(pattern), 0, start, now

    def next(self, now: float) -> int:
        dt = now - self.last
        self.last = now
        n = self.pattern[self.k]
        self.k = (self.k + 1) % len(self.pattern)
        if n:
            units = round(n * dt * 10.0) if dt > 0 else n
            self.value = (self.value + self.g * (units if units > 0 else 1)) & _MASK32
        return self.value


try:  # the receive thread answers ordinary SYNs in C and draws their ISNs from the same generator
    from dynapot._fastpath import Isn as _Isn
except ImportError:  # pragma: no cover - the set-up builds the extension
    _Isn = _PyIsn  # type: ignore[assignment,misc]


def _nmap_isn_stats(incs: Sequence[int]) -> tuple[int, int, int]:
    """SP, GCD, ISR nmap computes from ISN increments 100 ms apart (osscan2.cc makeTSeqFP)."""
    gcd = 0
    for inc in incs:
        gcd = math.gcd(gcd, inc)
    if gcd == 0:
        return 0, 0, 0
    rates = [inc * 10.0 for inc in incs]
    avg = sum(rates) / len(rates)
    isr = int(math.log2(avg) * 8 + 0.5)
    div = gcd if gcd > 9 else 1
    var = sum((r / div - avg / div) ** 2 for r in rates) / (len(rates) - 1)
    sd = math.sqrt(var)
    return (0 if sd <= 1 else int(math.log2(sd) * 8 + 0.5)), gcd, isr


def _isn_patterns(g: int, isr: int, sp: int, period: int) -> list[list[int]]:
    """Candidate n_k (per 100 ms, in units of g) for an average rate 2^(isr/8)/s and std 2^(sp/8)."""
    mean = 2 ** (isr / 8) / (10 * g)
    base = max(1, math.floor(mean))
    flat = max(1, round(mean))
    out: list[list[int]] = []
    if sp > 0:
        spread = 2 ** (sp / 8) * (g if g > 9 else 1) / (10 * g)  # wanted std of n
        if spread >= 1.5:
            for shape in _SHAPES[period]:
                n = [round(mean + spread * v) for v in shape]
                if min(n) >= 0 and max(n) * g < 0x7FFFFFFF and sum(n):
                    out.append(n)
                    out.append([*n[:-1], n[-1] + 1])  # a nudge when all n share a factor
        else:  # a small spread: n differs by one unit here and there
            out += [[base] * (period - k) + [base + 1] * k for k in (1, 2)]
            low = [base - 1] if base > 1 else [base]
            out.append([*low, *[base] * (period - 2), base + (1 if base > 1 else 2)])
    out.append([flat] * period)
    if mean < 1:  # slower than one unit per 100 ms: the ISN moves on only now and then
        out += [[1] + [0] * (period - 1), [1, 1] + [0] * (period - 2)]
    return out


def _plan_isn(seq: Mapping[str, str], rng: random.Random, period: int = 5) -> tuple[int, list[int]]:
    """Choose g and `period` values n_k so that nmap's SP, GCD and ISR all match the fingerprint.

    nmap sees `period` increments: five, or four when the first SYN/ACK has SEQ 0 (T1.S=Z)
    and nmap drops it. Any `period` consecutive increments are a permutation of the
    pattern, so nmap measures the same statistics wherever its probes fall in the cycle.
    """
    sp_e, gcd_e, isr_e = seq["SP"], seq["GCD"], seq["ISR"]
    if X.matches(gcd_e, "0") and X.matches(isr_e, "0") and X.matches(sp_e, "0"):
        return 1, [0] * period  # a constant ISN
    gs: list[int] = []
    for alt in X.parse(gcd_e):
        if alt.low is not None and X.matches(gcd_e, X.fmt(max(1, alt.low))) and max(1, alt.low) not in gs:
            gs.append(max(1, alt.low))
    isrs = X.numeric_targets(isr_e, rng, 48) or [0x104]
    sps = X.numeric_targets(sp_e, rng, 48) or [0xFE]
    isr_rank = {v: i for i, v in enumerate(isrs)}
    sp_rank = {v: i for i, v in enumerate(sps)}
    best: tuple[int, list[int]] | None = None
    for g in gs or [1]:
        div = g if g > 9 else 1
        # The rates are non-negative, so their std can reach ~2.2x their mean at most.
        pairs = [
            (isr_rank[i] + sp_rank[s], i, s)
            for i in isrs
            for s in sps
            if s == 0 or 2 ** (s / 8) * div <= 2.2 * 2 ** (i / 8)
        ]
        pairs.sort()
        for _rank, isr, sp in pairs[:40]:
            for n in _isn_patterns(g, isr, sp, period):
                got_sp, got_gcd, got_isr = _nmap_isn_stats([g * k for k in n])
                if (
                    X.matches(sp_e, X.fmt(got_sp))
                    and X.matches(gcd_e, X.fmt(got_gcd))
                    and X.matches(isr_e, X.fmt(got_isr))
                ):
                    return g, n
                if best is None:
                    best = (g, n)
    return best or (1, [1] * period)


def _ts_class(hz: float) -> int:
    """nmap's TS value for a timestamp clock of `hz`."""
    if hz <= 5.66:
        return 1
    if 70 < hz <= 150:
        return 7
    if 150 < hz <= 350:
        return 8
    return int(0.5 + math.log2(hz))


def _ts_rate(choice: str) -> float | None:
    """Clock rate for a chosen TS value: None = no timestamps (U), 0 = TSval zero."""
    if choice == "U":
        return None
    k = int(choice, 16)
    if k == 0:
        return 0.0
    for hz in {1: 2.0, 7: 100.0, 8: 250.0, 10: 1000.0}.get(k, 2.0**k), 2.0**k:
        if _ts_class(hz) == k:
            return hz
    return 2.0**k


# --- reply templates ---------------------------------------------------------------------


class _TcpTemplate:
    """Everything fixed about one kind of TCP reply (a test line of the fingerprint)."""

    __slots__ = (
        "ack_rule", "df", "flags", "ipid", "options", "payload",
        "reserved", "seq_rule", "ttl", "urgent", "window",
    )  # fmt: skip

    def __init__(
        self,
        flags: int,
        window: int,
        options: _Options,
        ttl: int,
        df: bool,
        ipid: _IpId,
        seq_rule: int = 3,
        ack_rule: int = 2,
        urgent: int = 0,
        reserved: int = 0,
        payload: bytes = b"",
    ) -> None:
        self.flags, self.window, self.options, self.ttl, self.df = flags, window, options, ttl, df
        self.ipid, self.seq_rule, self.ack_rule = ipid, seq_rule, ack_rule
        self.urgent, self.reserved, self.payload = urgent, reserved, payload


class _Chooser:
    """Reads one test's attributes with defaults, choosing one value per attribute with the host RNG."""

    def __init__(self, rng: random.Random, attrs: Mapping[str, str], defaults: Mapping[str, str]) -> None:
        self.rng, self.attrs, self.defaults = rng, attrs, defaults

    def expr(self, name: str) -> str:
        if name in self.attrs:
            return self.attrs[name]
        return self.defaults.get(name, _ATTR_DEFAULTS.get(name, ""))

    def pick(self, name: str, prefer: Sequence[str] = ()) -> str:
        return X.choose(self.expr(name), self.rng, prefer)

    def number(self, name: str, prefer: Sequence[int] = ()) -> int:
        return X.choose_int(self.expr(name), self.rng, prefer)


class HostPersonality:
    """One virtual host wearing one fingerprint (implements `dynapot.netstack.personality.Personality`)."""

    def __init__(
        self, fp: Fingerprint, *, seed: int | bytes, uptime: float | None = None, now: float | None = None
    ) -> None:
        self.name = fp.name
        self.fingerprint = fp
        material = seed if isinstance(seed, bytes) else str(seed).encode()
        rng = self._rng = random.Random(hashlib.sha256(material + b"\0" + fp.name.encode()).digest())
        epoch = time.monotonic() if now is None else now
        self.uptime = rng.uniform(2 * 3600.0, 40 * 86400.0) if uptime is None else uptime
        tests = self._tests = self._with_defaults(fp)
        self._plan_ttls(tests)
        # Every choice draws from `rng`, so the steps keep this order: the same seed, the same host.
        t1_s = self._compile_seq(tests, rng, epoch)
        t1_flags, t1_rules = self._compile_syn_acks(tests, rng, t1_s)
        self._compile_ecn(tests.get("ECN"), rng, t1_flags, t1_rules)
        self._t: dict[str, _TcpTemplate | None] = {}
        for name in ("T2", "T3", "T4", "T5", "T6", "T7"):
            self._t[name] = self._t_template(name, tests[name], rng)
        self._ordinary: dict[int, _TcpTemplate] = {}
        w1 = self._seq_templates[0].window
        self._established_window = w1
        self._established_window_no_ts = self._ecn_window if self._ecn is not None else w1
        self._u1 = self._compile_u1(tests["U1"], rng)
        self._ie = self._compile_ie(tests["IE"], rng)

    # --- compile helpers -------------------------------------------------------------------

    def _compile_seq(self, tests: Mapping[str, Mapping[str, str]], rng: random.Random, epoch: float) -> str:
        """SEQ: the IP ID classes and their shared counters, the ISN generator, the timestamp clock.

        Returns the T1 S value chosen on the way (the ISN plan depends on it).
        """
        seq = _Chooser(rng, tests["SEQ"], {})
        counter = _Counter(rng.randrange(1024, 30000))
        ti = seq.pick("TI")
        self._ti = _ipid_class(ti, counter, rng)
        # TI=Z is Linux's: a SYN/ACK (sent before the socket exists) carries ID 0, and the
        # connection's own segments then count from a random inet_id of their own, never 0 all along.
        self.connection_ip_ids = ti == "Z"
        self._ci = _ipid_class(seq.pick("CI"), counter, rng)
        ss = seq.pick("SS") if "SS" in tests["SEQ"] else "S"
        self._icmp_counter = counter if ss == "S" else _Counter(rng.randrange(1024, 30000))
        self._ss_other = ss == "O"
        self._ii = _ipid_class(seq.pick("II"), self._icmp_counter, rng)
        t1_s = X.choose(tests["T1"].get("S", "O"), rng, ("O",))
        g, pattern = _plan_isn(tests["SEQ"], rng, 4 if t1_s == "Z" else 5)
        rng.shuffle(pattern)
        self._isn = _Isn(g, pattern, rng.getrandbits(32) or 1, epoch)
        self._ts_hz = _ts_rate(seq.pick("TS"))
        self._ts_base = int(self.uptime * (self._ts_hz or 0.0))
        self._epoch = epoch
        return t1_s

    def _compile_syn_acks(
        self, tests: Mapping[str, Mapping[str, str]], rng: random.Random, t1_s: str
    ) -> tuple[int, tuple[int, int]]:
        """T1 and OPS/WIN: the SYN/ACK for each of nmap's six SEQ probes, and for real clients.

        Returns T1's flags and (S, A) rules, which the ECN reply shares.
        """
        t1 = _Chooser(rng, tests["T1"], {})
        self._t1_df = t1.pick("DF") == "Y"
        self._t1_ttl = self._ttl_of["T1"]
        t1_flags = self._flags(t1.pick("F", ("AS",)))
        t1_rules = (_S_RULES.get(t1_s, 3), _A_RULES.get(t1.pick("A", ("S+",)), 2))
        t1_quirks = self._quirks(t1.pick("Q", ("",)))
        ops, win = tests["OPS"], tests["WIN"]
        self._seq_templates: list[_TcpTemplate | None] = []
        self._ops_text: list[str] = []
        for i in range(1, 7):
            o_text = _DEFAULT_SYNACK_OPTIONS if "R" in ops else X.choose(ops.get(f"O{i}", ""), rng)
            if (
                self._ts_hz is not None
                and "T" not in o_text
                and len(_Options(_option_tokens(o_text)).prefix) <= 28
            ):
                # nmap's SEQ.TS (worth 100 points) needs a timestamp in *every* SYN/ACK; a few
                # fingerprints lack it in some O1..O6 (a 20-point attribute): TS wins.
                o_text += "NNT01" if self._ts_hz == 0 else "NNT11"
            w_expr = win.get(f"W{i}", _DEFAULT_WINDOW) if "R" not in win else _DEFAULT_WINDOW
            self._ops_text.append(o_text)
            self._seq_templates.append(
                _TcpTemplate(
                    t1_flags, X.choose_int(w_expr, rng), _Options(_option_tokens(o_text)),
                    self._t1_ttl, self._t1_df, self._ti,
                    t1_rules[0] if i == 1 else 3, t1_rules[1], *t1_quirks,
                )
            )  # fmt: skip
        self._t1_silent = tests["T1"].get("R") == "N"
        # Real clients get a working handshake: the ISN and SEQ+1, whatever odd T1 S/A nmap saw.
        self._ordinary_flags, self._ordinary_rules, self._ordinary_quirks = t1_flags, (3, 2), t1_quirks
        return t1_flags, t1_rules

    def _compile_ecn(
        self, attrs: Mapping[str, str] | None, rng: random.Random, t1_flags: int, t1_rules: tuple[int, int]
    ) -> None:
        """ECN: the SYN/ACK to nmap's ECN probe (T1's, with the test's CC bits, window and options)."""
        self._ecn_cc = 0
        self._ecn: _TcpTemplate | None = None
        self._ecn_options_text: str | None = None
        if attrs is not None and attrs.get("R") != "N":
            ecn = _Chooser(rng, attrs, {})
            self._ecn_cc = _CC_FLAGS.get(ecn.pick("CC", ("N",)), 0)
            self._ecn_options_text = ecn.pick("O")
            self._ecn_window = ecn.number("W", (self._seq_templates[0].window,))
            self._ecn = _TcpTemplate(
                (t1_flags & ~(_ECE | _CWR)) | self._ecn_cc, self._ecn_window,
                _Options(_option_tokens(self._ecn_options_text)), self._ttl_of["ECN"],
                ecn.pick("DF") == "Y", self._ti, *t1_rules, *self._quirks(ecn.pick("Q", ("",))),
            )  # fmt: skip
        self._ecn_silent = attrs is not None and attrs.get("R") == "N"

    @staticmethod
    def _with_defaults(fp: Fingerprint) -> dict[str, dict[str, str]]:
        family = _FAMILY_DEFAULTS[_family(fp)]
        tests = {name: dict(attrs) for name, attrs in fp.tests.items()}
        seq = tests.setdefault("SEQ", {})
        if seq.get("R") == "N":
            seq.clear()
        for key, value in family["SEQ"].items():
            if key in ("SP", "GCD", "ISR"):
                if not all(k in seq for k in ("SP", "GCD", "ISR")):
                    seq.update({k: family["SEQ"][k] for k in ("SP", "GCD", "ISR")})
            else:
                seq.setdefault(key, value)
        if "TS" not in seq:
            o1 = tests.get("OPS", {}).get("O1", "")
            seq["TS"] = "7" if "T" in o1 else "U"
        tests.setdefault("OPS", {"R": "N"})
        tests.setdefault("WIN", {"R": "N"})
        tests.setdefault("T1", {"R": "Y", "DF": "N", "S": "O", "A": "S+", "F": "AS", "RD": "0", "Q": ""})
        for name, attrs in _T_DEFAULTS.items():
            tests.setdefault(name, dict(attrs))
        for name in ("U1", "IE"):
            if name not in tests:
                tests[name] = {**family[name], **(_U1_COMMON if name == "U1" else {})}
                tests[name].update({k: v for k, v in tests["T1"].items() if k in ("T", "TG")})
        return tests

    def _plan_ttls(self, tests: Mapping[str, Mapping[str, str]]) -> None:
        """Initial TTL per test such that nmap's T (TTL + distance - 1) and TG both match.

        `hop_bias` is how much lower than received this host quotes U1's TTL: nmap then
        believes the host is further away and adds the difference to every T (a negative
        bias, quoting a higher TTL, gives the T values near FFFF some fingerprints carry).
        """
        names = [n for n in ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "ECN", "U1", "IE") if n in tests]
        chosen = {name: self._ttl_for(tests[name], 0) for name in names}
        if all(ttl is not None for ttl in chosen.values()):
            self._hop_bias, self._ttl_of = 0, chosen  # type: ignore[assignment]
            return
        biases = []
        for name in names:  # T values above 255 tell the bias: T - (a TTL that fits TG)
            t, tg = tests[name].get("T"), tests[name].get("TG")
            if t and tg:
                for guess in X.candidates(tg):
                    for value in X.numeric_targets(t, None, 8):
                        bias = ((value - int(guess, 16) + 0x8000) & 0xFFFF) - 0x8000  # T is printed as u16
                        if -256 < bias < 256 and bias and bias not in biases:
                            biases.append(bias)
        for bias in biases[:12]:
            chosen = {}
            for name in names:
                ttl = self._ttl_for(tests[name], bias)
                if ttl is None:
                    break
                chosen[name] = ttl
            else:
                self._hop_bias, self._ttl_of = bias, chosen
                return
        self._hop_bias = 0
        self._ttl_of = {name: self._ttl_for(tests[name], 0, strict=False) or 64 for name in names}

    @staticmethod
    def _ttl_for(attrs: Mapping[str, str], bias: int, strict: bool = True) -> int | None:
        t, tg = attrs.get("T"), attrs.get("TG")
        options: list[int] = []
        if tg:
            options += [int(v, 16) for v in X.candidates(tg) if v and all(c in "0123456789ABCDEF" for c in v)]
        if t:
            options += [(v - bias) & 0xFFFF for v in X.numeric_targets(t, None, 16)]
        if not options:
            return 64  # the fingerprint says nothing about this TTL
        for ttl in options:
            if not 1 <= ttl <= 255:
                continue
            if t and not X.matches(t, X.fmt((ttl + bias) & 0xFFFF)):
                continue
            if tg and not X.matches(tg, X.fmt(_ttl_guess(ttl))):
                continue
            return ttl
        if strict:
            return None
        return next((ttl for ttl in options if 1 <= ttl <= 255), 64)

    @staticmethod
    def _flags(letters: str) -> int:
        flags = 0
        for letter in letters:
            flags |= _FLAG_LETTERS.get(letter, 0)
        return flags

    def _quirks(self, q: str) -> tuple[int, int]:
        """(urgent, reserved) for nmap's Q: U = urgent pointer without URG, R = reserved bits."""
        return (self._rng.randint(1, 0xFFFF) if "U" in q else 0), (1 if "R" in q else 0)

    def _t_template(self, name: str, attrs: Mapping[str, str], rng: random.Random) -> _TcpTemplate | None:
        if attrs.get("R") == "N":
            return None
        t = _Chooser(rng, attrs, {})
        flags = self._flags(t.pick("F"))
        payload = b""
        rd = t.number("RD", (0,))
        if rd and flags & _RST:
            payload = _forge_crc32(rd)
        ipid = self._ti if flags & _SYN and not flags & _RST else self._ci
        return _TcpTemplate(
            flags, t.number("W"), _Options(_option_tokens(t.pick("O"))), self._ttl_of[name],
            t.pick("DF") == "Y", ipid, _S_RULES.get(t.pick("S"), 3), _A_RULES.get(t.pick("A"), 2),
            *self._quirks(t.pick("Q", ("",))), payload,
        )  # fmt: skip

    def _compile_u1(self, attrs: Mapping[str, str], rng: random.Random) -> tuple | None:
        if attrs.get("R") == "N":
            return None
        u = _Chooser(rng, attrs, {**_FAMILY_DEFAULTS[""]["U1"], **_U1_COMMON})

        def field(name: str) -> int | None:  # None = give back as received (nmap's G)
            value = u.pick(name, ("G",))
            return None if value == "G" else int(value, 16)

        ipl = u.number("IPL", (0x164,))
        return (
            self._ttl_of["U1"], u.pick("DF") == "Y", max(0, ipl - 28), u.number("UN", (0,)) & _MASK32,
            field("RIPL"), field("RID"), u.pick("RIPCK", ("G",)), field("RUCK"), u.pick("RUD", ("G",)),
        )  # fmt: skip

    def _compile_ie(self, attrs: Mapping[str, str], rng: random.Random) -> tuple | None:
        if attrs.get("R") == "N":
            return None
        ie = _Chooser(rng, attrs, {"DFI": "N", "CD": "S"})
        dfi = ie.pick("DFI")
        cd = ie.pick("CD")
        code = -1 if cd == "S" else -2 if cd == "O" else 0 if cd == "Z" else int(cd, 16)
        return self._ttl_of["IE"], dfi, code

    def echo_recipe(self) -> tuple | None:
        """How this host answers a ping, for the C receive thread (`_fastpath.Responder.set_echo`):
        (ttl, DF mode, code, IP ID kind, constant IP ID, step low, step high, counter), with the
        same rules and the same IP ID counter as `echo_reply`; None when it does not answer."""
        if self._ie is None:
            return None
        ttl, dfi, code = self._ie
        return (ttl, _DF_MODES.get(dfi, 0), code, *self._ii.rule())

    def syn_recipe(self) -> tuple | None:
        """How this host answers an ordinary SYN, for the C receive thread (`_fastpath.Responder.
        set_tcp`, which adds the open ports): the SYN/ACK per offered-options key (timestamps |
        window scale << 1 | SACK << 2; ECN SYNs stay Python's), the IP ID rule, the shared ISN
        generator and the timestamp clock; None when the C thread cannot give the same answer."""
        if _Isn is _PyIsn:
            return None
        templates = []
        for key in range(8):
            tpl = self._ordinary_template_for(key)
            simple = (
                tpl.seq_rule == 3 and tpl.ack_rule == 2 and tpl.flags & _SYN and not tpl.urgent
                and not tpl.reserved and not tpl.payload
            )  # fmt: skip
            opts = tpl.options
            templates.append(
                (tpl.flags, tpl.window, tpl.ttl, tpl.df, opts.prefix, opts.suffix, opts.has_ts,
                 opts.ts_val, opts.ts_ecr) if simple else None
            )  # fmt: skip
        hz = -1.0 if self._ts_hz is None else float(self._ts_hz)
        return tuple(templates), self._ti.rule(), self._isn, hz, self._ts_base, self._epoch

    # --- the Personality protocol --------------------------------------------------------

    @property
    def ttl(self) -> int:
        return self._t1_ttl

    def isn(self, now: float) -> int:
        return self._isn.next(now)

    def tsval(self, now: float) -> int:
        """This host's TCP timestamp clock (0 when the host sends no or zero timestamps)."""
        hz = self._ts_hz
        if not hz:
            return 0
        return (self._ts_base + int((now - self._epoch) * hz)) & _MASK32

    def syn_ack(self, syn: TcpSegment, isn: int, now: float) -> TcpReply | None:
        probe = classify_syn(syn)
        if probe is not None:
            tpl = self._seq_templates[probe - 1]
            if probe == 1:
                if self._t1_silent:
                    return None
                self._prepare_scan()
                if tpl.seq_rule in (1, 2):
                    # T1 wants SEQ = the probe's ACK (+1): let the ISN sequence continue from
                    # there, so that SEQ's GCD/ISR/SP still see the planned increments.
                    self._isn.value = (syn.ack + tpl.seq_rule - 1) & _MASK32
        elif syn.flags & (_FIN | _RST | _ACK):
            return self.open_port_stray(syn, now)  # T3-like: SYN with other flags
        elif is_ecn_probe(syn):
            if self._ecn_silent:
                return None
            tpl = self._ecn or self._ordinary_template(syn)
        else:
            tpl = self._ordinary_template(syn)
        return self._reply(tpl, syn, now, isn)

    def open_port_stray(self, segment: TcpSegment, now: float) -> TcpReply | None:
        flags = segment.flags
        if flags & _RST:
            return None
        name = "T3" if flags & _SYN else "T4" if flags & _ACK else "T2"
        tpl = self._t[name]
        return None if tpl is None else self._reply(tpl, segment, now, None)

    def closed_port(self, segment: TcpSegment, now: float) -> TcpReply | None:
        flags = segment.flags
        if flags & _RST:
            return None  # never answer a reset
        if flags & _ACK:
            name = "T6"
        elif flags & _SYN:
            name = "T5"
            if classify_t(segment) == "T5":
                self._room(self._ci, 8)
        else:
            name = "T7"
        tpl = self._t[name]
        return None if tpl is None else self._reply(tpl, segment, now, None)

    def segment_shape(self, now: float, peer_tsval: int | None) -> SegmentShape:
        if peer_tsval is None or self._ts_hz is None:
            return SegmentShape(self._t1_df, self._ti.next(), self._established_window_no_ts, b"")
        options = b"\x01\x01\x08\x0a" + _TS_PACK(self.tsval(now), peer_tsval & _MASK32)
        return SegmentShape(self._t1_df, self._ti.next(), self._established_window, options)

    def echo_reply(self, echo: IcmpMessage, now: float) -> IpReply | None:
        ie = self._ie
        if ie is None or echo.type != 8:
            return None
        ttl, dfi, code = ie
        df = dfi == "Y" or (dfi == "S" and echo.ip.df) or (dfi == "O" and not echo.ip.df)
        if code < 0:
            code = echo.code if code == -1 else (echo.code + 1) & 0xFF
        body = _ICMP_HEAD.pack(0, code, 0, echo.ident, echo.seq) + echo.payload
        csum = _checksum(body)
        message = body[:2] + csum.to_bytes(2, "big") + body[4:]
        return IpReply(IPPROTO_ICMP, message, ttl, df, self._ii.next(), echo.ip.tos)

    def udp_closed(self, datagram: UdpDatagram, now: float) -> IpReply | None:
        u1 = self._u1
        if u1 is None:
            return None
        ttl, df, quote_len, unused, ripl, rid, ripck, ruck, rud = u1
        header = bytearray(datagram.ip.header)
        if self._hop_bias and 0 <= header[8] - self._hop_bias <= 255:
            header[8] -= self._hop_bias  # the quoted TTL nmap measures the distance with
        if ripl is not None:
            header[2:4] = (ripl & 0xFFFF).to_bytes(2, "big")
        if rid is not None:
            header[4:6] = (rid & 0xFFFF).to_bytes(2, "big")
        header[10:12] = b"\0\0"
        good = _checksum(bytes(header))
        csum = good if ripck == "G" else 0 if ripck == "Z" else ((good + 1) & 0xFFFF) or 1
        header[10:12] = csum.to_bytes(2, "big")
        udp_csum = datagram.checksum if ruck is None else ruck & 0xFFFF
        udp = _UDP_HEAD.pack(datagram.sport, datagram.dport, 8 + len(datagram.payload), udp_csum)
        data = datagram.payload
        if rud != "G" and data:
            data = bytes((data[0] ^ 0xFF,)) + data[1:]
        quoted = bytes(header) + udp + data
        quoted = (
            quoted[:quote_len] if len(quoted) >= quote_len else quoted + b"\0" * (quote_len - len(quoted))
        )
        body = struct.pack("!BBHI", 3, 3, 0, unused) + quoted
        csum = _checksum(body)
        message = body[:2] + csum.to_bytes(2, "big") + body[4:]
        return IpReply(IPPROTO_ICMP, message, ttl, df, self._ii.next())

    # --- per-packet helpers --------------------------------------------------------------

    def _reply(self, tpl: _TcpTemplate, seg: TcpSegment, now: float, isn: int | None) -> TcpReply:
        rule = tpl.seq_rule
        if rule == 3:
            seq = isn if isn is not None and tpl.flags & _SYN else self._other(seg.ack)
        elif rule == 0:
            seq = 0
        else:
            seq = (seg.ack + rule - 1) & _MASK32
        rule = tpl.ack_rule
        if rule == 2:
            ack = (seg.seq + 1 + len(seg.payload)) & _MASK32
        elif rule == 1:
            ack = seg.seq
        elif rule == 0:
            ack = 0
        else:
            ack = self._other(seg.seq)
        options = tpl.options
        if options.has_ts:
            peer = seg.options.timestamp
            tsval = self.tsval(now)
            opts = options.render(tsval, peer[0] if peer else tsval or 1)  # no TSval to echo: garbage
        else:
            opts = options.prefix
        return TcpReply(
            tpl.flags, tpl.window, opts, seq, ack, tpl.ttl, tpl.df, tpl.ipid.next(),
            tpl.urgent, tpl.reserved, tpl.payload,
        )  # fmt: skip

    def _other(self, near: int) -> int:
        """A number nmap reads as O(ther): not 0 and not `near` or `near + 1`."""
        value = self._rng.getrandbits(32)
        return value if value and (value - near) & _MASK32 > 1 else (near + 0x10000) & _MASK32 or 2

    def _ordinary_template(self, syn: TcpSegment) -> _TcpTemplate:
        """The SYN/ACK for an ordinary client: the richest reply, cut down to what the client offered."""
        offered = syn.options
        ecn = syn.flags & (_ECE | _CWR) == (_ECE | _CWR)
        key = (
            (offered.timestamp is not None and self._ts_hz is not None)
            | (offered.wscale is not None) << 1
            | offered.sack_permitted << 2
            | ecn << 3
        )
        return self._ordinary_template_for(key)

    def _ordinary_template_for(self, key: int) -> _TcpTemplate:
        tpl = self._ordinary.get(key)
        if tpl is None:
            tpl = self._ordinary[key] = self._build_ordinary(key)
        return tpl

    def _build_ordinary(self, key: int) -> _TcpTemplate:
        first = self._seq_templates[0]
        window = first.window
        tokens = _option_tokens(self._ops_text[0])
        if not key & 1:
            if self._ecn_options_text is not None and "T" not in self._ecn_options_text:
                tokens, window = _option_tokens(self._ecn_options_text), self._ecn_window
            else:
                tokens = _filtered_tokens(tokens, "T")
        drop = ("" if key & 2 else "W") + ("" if key & 4 else "S")
        if drop:
            tokens = _filtered_tokens(tokens, drop)
        flags = self._ordinary_flags | (self._ecn_cc if key & 8 else 0)
        return _TcpTemplate(
            flags, window, _Options(tokens), self._t1_ttl, self._t1_df, self._ti,
            *self._ordinary_rules, *self._ordinary_quirks,
        )  # fmt: skip

    def _prepare_scan(self) -> None:
        """nmap's SEQ probe 1 arrived: make sure no counter wraps during the scan (nmap would
        read a wrap as a random jump), and keep a separate ICMP counter above the TCP one (SS=O)."""
        self._room(self._ti, 24)
        if self._ss_other and self._ti.kind == _INC and self._ii.kind == _INC:
            tcp = self._ti.counter
            gap = 30 * self._ti.step_high + self._rng.randint(256, 2048)
            if tcp.value + gap + 8 * self._ii.step_high > 0xFFFF:
                tcp.value = self._rng.randint(0, 512)
            self._icmp_counter.value = tcp.value + gap
        else:
            self._room(self._ii, 8)

    def _room(self, gen: _IpId, packets: int) -> None:
        if gen.kind == _INC and gen.counter.value + packets * gen.step_high > 0xFFFF:
            gen.counter.value = self._rng.randint(0, 512)


def compile_personality(
    fp: Fingerprint, *, seed: int | bytes, uptime: float | None = None, now: float | None = None
) -> HostPersonality:
    """Compile `fp` for one virtual host.

    `seed` makes the host's choices, ISN, IP ID and clocks reproducible (the same seed
    gives the same host). `uptime` is the host's uptime in seconds at monotonic time
    `now` (default: a random 2 hours to 40 days, and time.monotonic()).
    """
    return HostPersonality(fp, seed=seed, uptime=uptime, now=now)
