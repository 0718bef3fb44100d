"""nmap-os-db test expressions: matching an observed value and choosing one to wear.

An expression such as `3B-45`, `I|RD`, `>1000000`, `M5B4NW8ST11` or `|U` is what a
reference fingerprint allows for one attribute. `matches` reproduces nmap's own
`expr_match` (osscan.cc, nmap 7.9x) *including its quirks*, because nmap is the judge
we must satisfy:

- the observed value counts as numeric when the whole string is hex (the empty string
  too, as 0); only then do `<N`, `>N` and `a-b` alternatives apply;
- an alternative is taken as a range as soon as a `-` appears anywhere in the rest of
  the expression, so in `A|C-E` the value `A` does not match (nmap never reaches the
  string comparison for `A`);
- every alternative but the last is compared with `strncmp`, i.e. as a prefix: `A|AS`
  accepts `AS` through its first alternative, and an empty alternative (`|U`) accepts
  anything.

`choose` picks one concrete value that nmap would accept, preferring the middle of
ranges so that measured values (ISR, SP, TTL) survive noise; a host calls it once,
with its own seeded `random.Random`, and keeps the result.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_HEX = frozenset("0123456789abcdefABCDEF")
_U32 = 0xFFFFFFFF


def fmt(value: int) -> str:
    """A number as nmap prints it in fingerprints: upper-case hex, no padding (`%X`)."""
    return f"{value:X}"


def _is_hex(text: str) -> bool:
    return all(c in _HEX for c in text)


def _strtol16(text: str, start: int) -> tuple[int, int]:
    """C `strtol(text + start, &end, 16)` for the characters nmap-os-db uses: (value, end index)."""
    i = start
    while i < len(text) and text[i] in _HEX:
        i += 1
    if i == start:
        return 0, start
    return int(text[start:i], 16) & _U32, i


@lru_cache(maxsize=65536)
def matches(expr: str, value: str) -> bool:
    """True when nmap would accept the observed `value` for the reference `expr`."""
    numeric = _is_hex(value)
    val = int(value, 16) & _U32 if value and numeric else 0
    p = 0
    while True:
        q = expr.find("|", p)
        alt_end = q if q >= 0 else len(expr)
        q1 = expr.find("-", p)
        if numeric and p < len(expr) and expr[p] in "<>":
            num, end = _strtol16(expr, p + 1)
            if end == alt_end and ((expr[p] == "<" and val < num) or (expr[p] == ">" and val > num)):
                return True
        elif numeric and q1 >= 0:
            # nmap looks for '-' in the whole remainder; the string comparison is skipped.
            low, end = _strtol16(expr, p)
            if end == q1:
                high, end1 = _strtol16(expr, q1 + 1)
                if end1 == alt_end and low <= val <= high:
                    return True
        elif q >= 0:
            if value.startswith(expr[p:q]):  # strncmp over the alternative's length
                return True
        elif value == expr[p:]:
            return True
        if q < 0:
            return False
        p = q + 1


@dataclass(frozen=True, slots=True)
class Alternative:
    """One `|`-separated part of an expression, parsed for choosing."""

    text: str
    low: int | None = None  # numeric bounds, inclusive, when the part is numeric
    high: int | None = None

    @property
    def numeric(self) -> bool:
        return self.low is not None

    def preferred(self) -> str:
        """The value to wear for this alternative: the middle of a range, else the literal."""
        if self.low is None or self.high is None:
            return self.text
        return fmt((self.low + self.high) // 2)


@lru_cache(maxsize=16384)
def parse(expr: str) -> tuple[Alternative, ...]:
    """Split an expression into alternatives; numeric ones carry their inclusive bounds."""
    alternatives = []
    for part in expr.split("|"):
        if part[:1] in ("<", ">") and len(part) > 1 and _is_hex(part[1:]):
            num = int(part[1:], 16)
            if part[0] == ">":
                alternatives.append(Alternative(part, num + 1, max(num + 1, min(_U32, 2 * num + 1))))
            else:
                alternatives.append(Alternative(part, 0, max(0, num - 1)))
        elif "-" in part and all(_is_hex(x) and x for x in part.split("-", 1)):
            low, high = (int(x, 16) for x in part.split("-", 1))
            alternatives.append(Alternative(part, low, high))
        elif part and _is_hex(part):
            alternatives.append(Alternative(part, int(part, 16), int(part, 16)))
        else:
            alternatives.append(Alternative(part))
    return tuple(alternatives)


@lru_cache(maxsize=16384)
def candidates(expr: str) -> tuple[str, ...]:
    """The preferred value of each alternative that nmap really accepts, in expression order."""
    out: list[str] = []
    for alt in parse(expr):
        value = alt.preferred()
        if value not in out and matches(expr, value):
            out.append(value)
    return tuple(out)


def choose(expr: str, rng: random.Random, prefer: Sequence[str] = ()) -> str:
    """One value nmap accepts for `expr`: a listed `prefer`red value if allowed, else a random alternative.

    Raises ValueError when nothing can satisfy the expression.
    """
    for value in prefer:
        if matches(expr, value):
            return value
    options = candidates(expr)
    if not options:
        raise ValueError(f"no value satisfies nmap expression {expr!r}")
    return options[0] if len(options) == 1 else rng.choice(options)


def choose_int(expr: str, rng: random.Random, prefer: Sequence[int] = ()) -> int:
    """Like `choose` for numeric attributes (hex in the database): returns the integer."""
    value = choose(expr, rng, [fmt(p) for p in prefer])
    if not _is_hex(value) or not value:
        raise ValueError(f"nmap expression {expr!r} gave non-numeric value {value!r}")
    return int(value, 16)


@lru_cache(maxsize=16384)
def _alternative_targets(expr: str, index: int, limit: int) -> tuple[int, ...]:
    """Up to `limit` accepted integers of one alternative, from its middle outwards."""
    alt = parse(expr)[index]
    assert alt.low is not None and alt.high is not None
    mid = (alt.low + alt.high) // 2
    out: list[int] = []
    for step in range(0, alt.high - alt.low + 1):
        for value in (mid - step, mid + step) if step else (mid,):
            if alt.low <= value <= alt.high and matches(expr, fmt(value)):
                out.append(value)
        if len(out) >= limit:
            break
    return tuple(out)


def numeric_targets(expr: str, rng: random.Random | None, limit: int = 24) -> list[int]:
    """Integers accepted by `expr`, best first: near the middle of a (randomly ordered) alternative.

    Used where the host tunes a measured statistic (ISR, SP, TTL) and wants a few fallbacks;
    `rng` None keeps the expression's order.
    """
    indexes = [i for i, alt in enumerate(parse(expr)) if alt.numeric]
    if rng is not None:
        rng.shuffle(indexes)
    out: list[int] = []
    for index in indexes:
        for value in _alternative_targets(expr, index, limit):
            if value not in out:
                out.append(value)
                if len(out) >= limit:
                    return out
    return out
