"""An HTTP/1.x request head read the tolerant way real servers read it (sans-IO).

h11 refuses what Apache and nginx answer in their own ways (HTTP/0.9, lower-case methods,
HTTP/9.9, a header line without a colon, a 20 KB header), so the imitations of those servers
(`dynapot.services.http_servers`) read requests with `parse`, which never raises: it returns
`Need` (more bytes), a `Request`, or a `Bad` naming what is wrong, for the server's profile to
answer. Every length is bounded by the caller's limits; the bytes are the attacker's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_to_bytes

__all__ = ["Bad", "Limits", "Need", "Request", "decoded", "parse", "path_of"]

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")


@dataclass(frozen=True, slots=True)
class Limits:
    """A server's request limits (Apache: LimitRequestLine/FieldSize 8190, 100 fields)."""

    line: int = 8190
    field: int = 8190
    fields: int | None = 100  # None: no limit on the number of header fields


@dataclass(frozen=True, slots=True)
class Need:
    """Not a whole request head yet."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    version: tuple[int, int]  # (0, 9) for an HTTP/0.9 request
    headers: list[tuple[str, str]] = field(default_factory=list)
    consumed: int = 0  # bytes of the head (the body follows)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass(frozen=True, slots=True)
class Bad:
    """A request the server refuses; `why` is one of the kinds its profile answers."""

    why: str  # line-too-long, field-too-long, too-many-fields, bad-line, bad-version,
    # unsupported-version, bad-header, lowercase-method, garbage
    method: str = ""
    target: str = ""
    version: tuple[int, int] = (1, 0)
    consumed: int = 0


def _text(data: bytes) -> str:
    return data.decode("latin-1")


def parse(data: bytes, limits: Limits) -> Need | Request | Bad:
    """The first request in `data`; see the module docstring."""
    stripped = data.lstrip(b"\r\n")  # empty lines before a request are skipped, as servers do
    result = _parse(stripped, limits)
    if isinstance(result, Need) or len(stripped) == len(data):
        return result
    return replace(result, consumed=result.consumed + len(data) - len(stripped))


def _parse(data: bytes, limits: Limits) -> Need | Request | Bad:
    end_line = data.find(b"\n")
    if end_line < 0:
        return Bad("line-too-long", consumed=len(data)) if len(data) > limits.line else Need()
    line = data[:end_line].rstrip(b"\r")
    if len(line) > limits.line:
        return Bad("line-too-long", consumed=end_line + 1)
    parts = line.split(b" ")
    if len(parts) == 2 and parts[0] == b"GET":
        # HTTP/0.9: a request line without a version, no headers.
        return Request("GET", _text(parts[1]), (0, 9), consumed=end_line + 1)
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        return Bad("garbage", consumed=end_line + 1)
    method, target, version_text = _text(parts[0]), _text(parts[1]), parts[2]
    match = _VERSION.fullmatch(version_text)
    if match is None:
        return Bad("bad-version", method, target, consumed=end_line + 1)
    version = (int(match.group(1)), int(match.group(2)))
    head_end = data.find(b"\r\n\r\n")
    sep = 4
    if head_end < 0 or (0 <= data.find(b"\n\n") < head_end):
        head_end, sep = data.find(b"\n\n"), 2
    if head_end < 0:
        pending = data[end_line + 1 :]
        if any(len(x) > limits.field for x in pending.split(b"\n")):
            return Bad("field-too-long", method, target, version, consumed=len(data))
        return Need()
    consumed = head_end + sep
    if version[0] != 1:
        return Bad("unsupported-version", method, target, version, consumed=consumed)
    if method != method.upper():
        return Bad("lowercase-method", method, target, version, consumed=consumed)
    headers = []
    block = data[end_line + 1 : head_end] if head_end > end_line else b""
    for raw in block.split(b"\n") if block else ():
        raw = raw.rstrip(b"\r")
        if len(raw) > limits.field:
            return Bad("field-too-long", method, target, version, consumed=consumed)
        name, colon, value = raw.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return Bad("bad-header", method, target, version, consumed=consumed)
        headers.append((_text(name), _text(value.strip())))
    if limits.fields is not None and len(headers) > limits.fields:
        return Bad("too-many-fields", method, target, version, consumed=consumed)
    return Request(method, target, version, headers, consumed)


def path_of(target: str) -> str:
    """The path of a request target (origin or absolute form), without the query."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return target.split("?", 1)[0]


def decoded(path: str) -> bytes | None:
    """The %-decoded path, or None when it has a bad escape."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", path):
        return None
    return unquote_to_bytes(path)
