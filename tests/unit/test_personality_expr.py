"""nmap-os-db expressions: matching (nmap's expr_match, quirks included) and choosing."""

from __future__ import annotations

import random

import pytest

from dynapot.personality.expr import candidates, choose, choose_int, fmt, matches, numeric_targets, parse

MATCH_CASES = [
    # (expression, observed value, nmap accepts?)
    ("3B-45", "40", True),
    ("3B-45", "3B", True),
    ("3B-45", "45", True),
    ("3B-45", "46", False),
    ("3B-45", "3A", False),
    ("40", "40", True),
    ("40", "41", False),
    ("I|RD", "I", True),
    ("I|RD", "RD", True),
    ("I|RD", "RI", False),
    ("I|RD", "BI", False),
    (">1000000", "1000001", True),
    (">1000000", "1000000", False),
    ("<5", "4", True),
    ("<5", "5", False),
    ("1-6|>1000000", "3", True),
    ("1-6|>1000000", "7", False),
    ("1-6|>1000000", "2000000", True),
    ("FA00|1F400|2EE00", "1F400", True),
    ("FA00|1F400|2EE00", "FA01", False),
    ("", "", True),  # no options at all
    ("", "M5B4", False),
    ("M5B4NW8ST11", "M5B4NW8ST11", True),
    ("M5B4NW8ST11", "M5B4NW8NNT11", False),
    ("M5B4ST11NW7|M5B4NNT11NW7", "M5B4NNT11NW7", True),
    ("AS", "AS", True),
    ("AS", "A", False),
    ("AR|AS", "AR", True),
    ("S+", "S+", True),
    ("S+", "S", False),
    ("O|S+", "O", True),
    ("Z", "Z", True),
    ("A+", "A", False),
    ("G", "G", True),
    ("0-FFFF", "G", False),  # nmap's G is a string: a numeric range never accepts it
    ("0-FFFF", "7FFF", True),
    ("U", "U", True),
    ("U", "", False),
    ("|U", "", True),
    ("|R", "R", True),
    # nmap quirks reproduced on purpose:
    ("A|AS", "AS", True),  # non-last alternatives compare as prefixes (strncmp)
    ("|U", "R", True),  # so an empty alternative accepts anything
    ("A|C-E", "A", False),  # a '-' later in the expression turns "A" into a failed range
    ("A|C-E", "D", True),
    ("7|8", "8", True),
    ("7|8", "9", False),
    ("", "0", False),
    ("0", "", False),  # "" is numeric (0) for nmap, but a plain "0" is compared as text
]


@pytest.mark.parametrize(("expr", "value", "expected"), MATCH_CASES)
def test_matches_like_nmap(expr: str, value: str, expected: bool) -> None:
    assert matches(expr, value) is expected


PARSE_CASES = [
    ("3B-45", [(0x3B, 0x45)]),
    ("I|RD", [(None, None), (None, None)]),
    (">0", [(1, 1)]),
    ("<10", [(0, 0xF)]),
    ("FA00|1F400", [(0xFA00, 0xFA00), (0x1F400, 0x1F400)]),
    ("|U", [(None, None), (None, None)]),
]


@pytest.mark.parametrize(("expr", "bounds"), PARSE_CASES)
def test_parse_bounds(expr: str, bounds: list[tuple[int | None, int | None]]) -> None:
    assert [(a.low, a.high) for a in parse(expr)] == bounds


CHOOSE_CASES = [
    # (expression, acceptable choices)
    ("3B-45", {"40"}),  # the middle of a range
    ("FA-104", {"FF"}),
    ("40", {"40"}),
    ("I|RD", {"I", "RD"}),
    ("", {""}),
    ("|U", {"", "U"}),
    ("M5B4NW8ST11", {"M5B4NW8ST11"}),
    ("O|S+", {"O", "S+"}),
    (">0", {"1"}),
    ("A|C-E", {"D"}),  # "A" would not be accepted by nmap
    ("0-FFFF", {"7FFF"}),
]


@pytest.mark.parametrize(("expr", "allowed"), CHOOSE_CASES)
def test_choose_gives_an_accepted_value(expr: str, allowed: set[str]) -> None:
    for seed in range(20):
        value = choose(expr, random.Random(seed))
        assert value in allowed
        assert matches(expr, value)


def test_choose_honours_preferences_only_when_allowed() -> None:
    rng = random.Random(1)
    assert choose("A|AS", rng, ("AS",)) == "AS"
    assert choose("AR", rng, ("AS",)) == "AR"
    assert choose_int("FFFF|16A0", rng, (0x16A0,)) == 0x16A0


def test_choose_varies_with_the_seed_where_allowed() -> None:
    assert {choose("I|RD|RI", random.Random(seed)) for seed in range(40)} == {"I", "RD", "RI"}


def test_choose_rejects_impossible_expressions() -> None:
    assert candidates("<0") == ()
    with pytest.raises(ValueError):
        choose("<0", random.Random(0))
    with pytest.raises(ValueError):
        choose_int("G", random.Random(0))


def test_numeric_targets_start_in_the_middle() -> None:
    targets = numeric_targets("104-10E", random.Random(0), limit=5)
    assert targets[0] == 0x109
    assert set(targets) == {0x107, 0x108, 0x109, 0x10A, 0x10B}
    assert all(matches("104-10E", fmt(v)) for v in numeric_targets("104-10E", random.Random(0), limit=50))


def test_fmt_is_nmaps_hex() -> None:
    assert fmt(0x5B4) == "5B4"
    assert fmt(0) == "0"
