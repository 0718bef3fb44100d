"""Strings from the wire made safe in one place: for storage (every database) and for display.

Everything an attacker sends is hostile twice over: once when it is stored, once when a
person reads it. Both are handled here, so that no writer or printer has its own rules.

**Storage** (`for_storage`, `json_for_storage`): what any backend accepts. PostgreSQL refuses
NUL in text and JSON; no driver encodes a lone surrogate (the form that undecodable bytes
take after `surrogateescape`); columns have lengths. So NUL is written as the four
characters `\\x00`, a surrogate U+DC80..U+DCFF (an undecodable byte) as `\\xNN`, any other
surrogate as `\\uNNNN`, and every string is clipped; JSON values also lose what JSON cannot
carry everywhere (NaN and infinities, integers beyond 64 bits, bytes, other objects become
strings; containers are capped in depth and size). Everything else is kept as it was, so
that a stored login name is the login name.

**Display** (`for_display`): what no reader interprets. Control characters (C0, DEL, C1),
the Unicode line and paragraph separators, bidirectional overrides and isolates, invisible
format characters and surrogates are shown as `\\xNN` (below U+0100, and for an
undecodable byte) or `\\uNNNN`. The result is one line that cannot move a terminal's cursor,
change its colours, forge a line in a log or reorder what is shown around it. Media with
markup of their own escape it on top: `for_html` (reports, mail), `for_markdown` (chat).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

__all__ = [
    "JSON_DEPTH",
    "JSON_ITEMS",
    "TEXT_LIMIT",
    "for_display",
    "for_html",
    "for_markdown",
    "for_storage",
    "json_for_storage",
]

TEXT_LIMIT = 32768  # characters of one stored string (a detail, one JSON value)
KEY_LIMIT = 256  # characters of one JSON object key
JSON_DEPTH = 8  # nesting kept in a stored JSON value; deeper parts are stored as text
JSON_ITEMS = 1000  # items kept per stored JSON list or object

_STORAGE_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_DISPLAY_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0, DEL, C1 (ESC, CSI, OSC, NEL, ...)
    "\u061c\u180e\u200b-\u200f"  # Arabic letter mark, invisible separators and marks (LRM, RLM)
    "\u2028-\u202e"  # line and paragraph separators, bidirectional embeddings and overrides
    "\u2060-\u206f"  # word joiner, invisible operators, bidirectional isolates
    "\ufeff\ufff9-\ufffb"  # byte order mark, interlinear annotation
    "\ud800-\udfff]"  # surrogates: undecodable bytes (surrogateescape) or broken text
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that did not decode, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def for_storage(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` as every backend stores it: no NUL, encodable as UTF-8, at most `limit` characters."""
    if len(text) > limit:
        text = text[:limit]
    if text.isascii():
        if "\x00" not in text:
            return str(text)  # a plain str, also for a str subclass (an enum member)
        return text.replace("\x00", "\\x00")[:limit]
    return _STORAGE_UNSAFE.sub(_escape, text)[:limit]


def json_for_storage(value: Any, limit: int = TEXT_LIMIT, _depth: int = 0) -> Any:
    """A JSON value that every backend accepts: strings as `for_storage`, numbers finite and
    within 64 bits, containers capped (`JSON_DEPTH`, `JSON_ITEMS`), anything else as text."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return for_storage(value, limit)
    if isinstance(value, int):
        return int(value) if -(1 << 63) <= value < (1 << 63) else hex(value)[:64]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        shown = bytes(value[:limit]).decode("latin-1").encode("unicode_escape").decode("ascii")
        return for_storage(shown, limit)
    if _depth >= JSON_DEPTH and isinstance(value, dict | list | tuple):
        return for_storage(repr(value)[:limit], limit)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if len(out) >= JSON_ITEMS:
                break
            out[for_storage(key if isinstance(key, str) else str(key), KEY_LIMIT)] = json_for_storage(
                item, limit, _depth + 1
            )
        return out
    if isinstance(value, list | tuple):
        return [json_for_storage(item, limit, _depth + 1) for item in value[:JSON_ITEMS]]
    return for_storage(str(value), limit)


def for_display(value: Any) -> str:
    """`value` as text no terminal, log reader or viewer interprets: one line, control and
    invisible characters shown as `\\xNN` or `\\uNNNN` (a backslash typed stays one)."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return str(text)
    return _DISPLAY_UNSAFE.sub(_escape, text)


def for_html(value: Any) -> str:
    """`for_display`, then escaped for HTML element content and quoted attribute values."""
    return html.escape(for_display(value), quote=True)


def for_markdown(value: Any) -> str:
    """`for_display`, then every CommonMark-significant character backslash-escaped (chat)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", for_display(value))
