"""One event of the sensor, and its forms: the journal's and the pipe's (JSON), honeyd's log line.

`encode` writes events as the body of a JSON array (ASCII: times in microseconds, then the
fields), the form of a journal record and of a batch to the event writer process; `decode`
reads it back and `event_from` checks every field, because a journal is written by the
unprivileged sensor and read back as hostile input (parsed as JSON only, never unpickled).
`honeyd_line` is the event in honeyd's log format, its attacker strings escaped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from socket import inet_ntoa
from typing import Any

from dynapot.textsafe import TEXT_LIMIT, for_display, for_storage, json_for_storage

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
# kinds that honeyd logs as a connection start (S), end (E) or single packet (-)
START_KINDS = frozenset({"connect", "udp-session"})
END_KINDS = frozenset({"close"})
FIELDS = 13  # an event's fields on the wire and in the journal


@dataclass(slots=True)
class Event:
    """One touch of a virtual host. Addresses are ints on the hot path; rendered in the writer."""

    time: float  # epoch seconds
    proto: str
    src: int
    sport: int | None
    dst: int
    dport: int | None
    kind: str  # a `dynapot.events.Kind`: connect, close, probe, datagram, echo, data, login, conflict, ...
    detail: str | None = None
    attacker_os: str | None = None
    scan_tool: str | None = None
    data: dict[str, Any] | None = field(default=None)
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def news(cls, kind: str, detail: str) -> Event:
        """The sensor's own news (start, reload, lost events): no flow, no addresses."""
        return cls(time.time(), "tcp", 0, None, 0, None, kind, detail)


# ---------------------------------------------------------------------- the journal's and pipe's form


def _fallback(value: Any) -> Any:
    """What JSON cannot carry as it is (bytes, other objects), as storable JSON."""
    return json_for_storage(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_fallback)
_U32 = 1 << 32


def encode(events: Iterable[Event]) -> bytes:
    """The events as the body of a JSON array (ASCII): times in microseconds, then the fields."""
    rows = [
        (int(e.time * 1_000_000), e.proto, e.src, e.sport, e.dst, e.dport, e.kind, e.detail,
         e.attacker_os, e.scan_tool, e.data, e.bytes_in, e.bytes_out)
        for e in events
    ]  # fmt: skip
    try:
        body = _ENCODER.encode(rows)
    except (ValueError, TypeError, RecursionError):  # a huge integer, a cycle: made storable first
        body = _ENCODER.encode([json_for_storage(list(row)) for row in rows])
    return body[1:-1].encode("ascii")


def event_from(fields: Any) -> Event:
    """The event that decoded `fields` describe; ValueError when they describe none (the journal
    is written by the unprivileged sensor: its contents are checked, never trusted)."""
    if type(fields) is not list or len(fields) != FIELDS:
        raise ValueError(f"{FIELDS} fields expected")
    micros, proto, src, sport, dst, dport, kind, detail, attacker_os, scan_tool, data, b_in, b_out = fields
    if type(micros) is not int or not 0 <= micros < 1 << 53:
        raise ValueError("time out of range")
    if type(src) is not int or type(dst) is not int or not (0 <= src < _U32 and 0 <= dst < _U32):
        raise ValueError("addresses out of range")
    for port in (sport, dport):
        if port is not None and (type(port) is not int or not 0 <= port < 65536):
            raise ValueError("ports out of range")
    if type(proto) is not str or type(kind) is not str:
        raise ValueError("protocol and kind must be text")
    for value in (detail, attacker_os, scan_tool):
        if value is not None and type(value) is not str:
            raise ValueError("detail, attacker OS and scan tool must be text")
    if data is not None and type(data) is not dict:
        raise ValueError("data must be an object")
    if type(b_in) is not int or type(b_out) is not int:
        raise ValueError("byte counts must be integers")
    return Event(micros / 1_000_000, proto, src, sport, dst, dport, kind, detail, attacker_os, scan_tool,
                 data, b_in, b_out)  # fmt: skip


def raw_text(value: Any) -> str:
    """Escaped text of whatever could not be stored: ASCII JSON (no NUL byte), bounded."""
    try:
        text_ = json.dumps(value, default=repr)
    except (ValueError, TypeError, RecursionError):
        text_ = repr(value)
    return for_storage(text_.encode("ascii", "backslashreplace").decode("ascii"), TEXT_LIMIT)


def fields_of(event: Event) -> list[Any]:
    e = event
    return [e.time, e.proto, e.src, e.sport, e.dst, e.dport, e.kind, e.detail, e.attacker_os, e.scan_tool,
            e.data, e.bytes_in, e.bytes_out]  # fmt: skip


def decode(payload: bytes) -> tuple[list[Event], list[tuple[str, str]]]:
    """The events of a batch (records' JSON array bodies joined by commas), and what was not an
    event: (escaped raw text, why)."""
    try:
        items = json.loads(b"[" + payload + b"]")
    except (ValueError, RecursionError) as exc:
        return [], [(raw_text(payload.decode("latin-1")), f"not a batch of events: {exc}")]
    events: list[Event] = []
    malformed: list[tuple[str, str]] = []
    for fields in items:
        try:
            events.append(event_from(fields))
        except (ValueError, TypeError) as exc:
            malformed.append((raw_text(fields), f"not an event: {exc}"))
    return events, malformed


# ---------------------------------------------------------------------- honeyd's log


def honeyd_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%d-%H:%M:%S") + f".{int(moment.microsecond / 100):04d}"


def honeyd_line(event: Event) -> str:
    """The event in honeyd's log format (honeyd(8), 'LOGGING'): one line, whatever the attacker
    typed (its strings shown with `for_display`: no line end, no terminal escape)."""
    stamp = honeyd_time(event.time)
    kind = for_display(event.kind)
    detail = for_display(event.detail) if event.detail else ""
    if event.src == 0 and event.dst == 0:  # the sensor's own news (start, lost events): no flow
        return f"{stamp} dynapot: {kind} {detail}".rstrip()
    proto = f"{for_display(event.proto)}({PROTO_NUMBERS.get(event.proto, 0)})"
    src, dst = ip_text(event.src), ip_text(event.dst)
    flow = f"{src} {event.sport} {dst} {event.dport}"
    if event.proto == "icmp":
        line = f"{stamp} {proto} - {src} {dst}: {detail}"
    elif event.kind in START_KINDS:
        line = f"{stamp} {proto} S {flow}"
    elif event.kind in END_KINDS:
        line = f"{stamp} {proto} E {flow}: {event.bytes_in} {event.bytes_out}"
    else:
        line = f"{stamp} {proto} - {flow}: {kind}"
        if detail:
            line += f" {detail}"
    if event.attacker_os:
        line += f" [{for_display(event.attacker_os)}]"
    return line


def ip_text(address: int) -> str:
    # inet_ntoa: a fifth of str(IPv4Address(...))'s cost, paid twice for every event stored.
    return inet_ntoa(address.to_bytes(4, "big"))
