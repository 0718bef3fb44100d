"""textsafe: attacker strings for storage (every backend) and for display (nothing interprets them)."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from dynapot.textsafe import (
    JSON_DEPTH,
    JSON_ITEMS,
    for_display,
    for_html,
    for_markdown,
    for_storage,
    json_for_storage,
)

HOSTILE = "root\n2027-01-01-00:00:00.0000 tcp(6) S 6.6.6.6 1 198.18.0.1 22\x1b[31m\x00\u202e\x9b"


def test_storage_keeps_ordinary_text_and_escapes_nul_and_undecodable_bytes():
    assert for_storage("C:\\Windows ünïcode") == "C:\\Windows ünïcode"
    assert for_storage("ro\x00ot") == "ro\\x00ot"
    raw = b"ro\xffot\x00".decode("utf-8", "surrogateescape")
    assert for_storage(raw) == "ro\\xffot\\x00"
    assert for_storage("\ud800x") == "\\ud800x"
    assert for_storage("a" * 100, 10) == "a" * 10
    assert len(for_storage("\x00" * 100, 10)) == 10


@given(st.text())
def test_stored_text_is_utf8_without_nul_and_bounded(text):
    stored = for_storage(text, 64)
    stored.encode("utf-8")  # no lone surrogate left
    assert "\x00" not in stored and len(stored) <= 64


def test_json_values_are_kept_or_made_storable():
    value = {
        "user": "a\x00b",
        "n": 5,
        "ok": True,
        "nan": float("nan"),
        "big": 1 << 80,
        "raw": b"\x00\xff",
        "list": [1, "x\x00"],
        1: "key",
    }
    stored = json_for_storage(value)
    assert stored["user"] == "a\\x00b" and stored["n"] == 5 and stored["ok"] is True
    assert stored["nan"] == "nan" and stored["big"] == hex(1 << 80)
    assert stored["raw"] == "\\x00\\xff" and stored["list"] == [1, "x\\x00"] and stored["1"] == "key"
    json.dumps(stored, allow_nan=False).encode("utf-8")


def test_json_containers_are_capped():
    deep: object = "bottom"
    for _ in range(JSON_DEPTH + 5):
        deep = [deep]
    assert isinstance(json.dumps(json_for_storage(deep)), str)
    assert len(json_for_storage(list(range(JSON_ITEMS * 3)))) == JSON_ITEMS
    assert len(json_for_storage({str(i): i for i in range(JSON_ITEMS * 3)})) == JSON_ITEMS


def test_display_shows_controls_and_bidi_as_escapes():
    shown = for_display(HOSTILE)
    assert "\n" not in shown and "\x1b" not in shown and "\x00" not in shown and "\u202e" not in shown
    assert "\\x0a" in shown and "\\x1b[31m" in shown and "\\x00" in shown and "\\u202e" in shown
    assert "\\x9b" in shown  # C1 CSI
    assert for_display("plain text, 100%") == "plain text, 100%"
    assert for_display(42) == "42"


@given(st.text())
def test_displayed_text_has_no_control_or_format_character(text):
    shown = for_display(text)
    assert all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_html_and_markdown_escape_their_markup():
    assert for_html('<b onclick="x">\x1b') == "&lt;b onclick=&quot;x&quot;&gt;\\x1b"
    assert for_markdown("**bold** [link](http://x) `c`") == (
        "\\*\\*bold\\*\\* \\[link\\]\\(http://x\\) \\`c\\`"
    )
