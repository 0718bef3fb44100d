"""The event catalogue: every kind of event dynapot records, and what its fields hold.

An event is one row of `honeypot_events`: when, protocol, source and destination, a `kind`,
a free-text `detail` and a JSON `data` object. The sensor, the services and honeyd's actions
write them; correlation, alerts and reports read them. This module is the one place that
lists the kinds, so that a writer and a reader cannot disagree on a spelling: code names a
kind as `Kind.LOGIN`, never as the string, and a test checks that every kind emitted
anywhere is in `CATALOGUE`.

`Kind` is a `StrEnum`: a member is the very string stored in the database, so rows written
before the catalogue existed read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "COMMAND_KINDS",
    "LOGIN_KINDS",
    "NEWS_KINDS",
    "NMAP_OS_SCAN_TOOL",
    "NOISE_KINDS",
    "NO_FLOW_ADDRESS",
    "PAYLOAD_KEYS",
    "EventSpec",
    "Kind",
]


class Kind(StrEnum):
    """The `kind` column of an event."""

    # --- the wire, as the sensor sees it
    CONNECT = "connect"
    CLOSE = "close"
    PROBE = "probe"
    DATA = "data"
    DATAGRAM = "datagram"
    ECHO = "echo"
    ICMP = "icmp"
    OS_SCAN = "os-scan"
    CONFLICT = "conflict"
    CONFLICT_UNCONFIRMED = "conflict-unconfirmed"
    # --- what services learn
    LOGIN = "login"
    LOGIN_KEY = "login-key"
    COMMAND = "command"
    REQUEST = "request"
    BAD_REQUEST = "bad-request"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    MESSAGE = "message"
    TERMINAL = "terminal"
    ENVIRON = "environ"
    SHELL_LIMITS = "shell-limits"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    # --- honeyd's actions
    SCRIPT = "script"
    SCRIPT_FAILED = "script-failed"
    SCRIPT_REFUSED = "script-refused"
    PROXY = "proxy"
    PROXY_FAILED = "proxy-failed"
    PROXY_CLOSED = "proxy-closed"
    # --- real high-interaction backends (packet-level redirect, containment)
    REDIRECT = "redirect"
    OUTBOUND = "outbound"
    OUTBOUND_DATA = "outbound-data"
    # --- the sensor's own news (no flow: source and destination 0.0.0.0)
    SENSOR_START = "sensor-start"
    SENSOR_RELOAD = "sensor-reload"
    EVENTS_LOST = "events-lost"
    STORAGE_FULL = "storage-full"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What one kind means and what its `detail` and `data` hold."""

    kind: Kind
    meaning: str
    detail: str
    data: tuple[str, ...] = ()  # the keys `data` may carry


# What an aggregated noise row adds: how many packets it stands for (the row that came first for
# the same source and target is not among them), and the first and last of them (ISO 8601, UTC).
# A row without `count` stands for one.
_NOISE_DATA = ("count", "first", "last")


def _spec(kind: Kind, meaning: str, detail: str, *data: str) -> tuple[Kind, EventSpec]:
    return kind, EventSpec(kind, meaning, detail, data)


CATALOGUE: dict[Kind, EventSpec] = dict(
    (
        _spec(Kind.CONNECT, "a TCP handshake completed (honeyd's S line)", "None"),
        _spec(
            Kind.CLOSE,
            "a connection ended (honeyd's E line)",
            "why: closed, reset, aborted, timeout, idle, evicted",
            "bytes_in",
            "bytes_out",
        ),
        _spec(
            Kind.PROBE,
            "a segment or datagram outside any connection",
            "flags and verdict: 'S closed'",
            *_NOISE_DATA,
        ),
        _spec(Kind.DATA, "what arrived on a port with no emulator", "an excerpt", "bytes", "excerpt"),
        _spec(Kind.DATAGRAM, "a UDP datagram to an open port", "its size", "excerpt", *_NOISE_DATA),
        _spec(Kind.ECHO, "an ICMP echo request (a ping)", "'8(0): replied' or 'ignored'", *_NOISE_DATA),
        _spec(Kind.ICMP, "any other ICMP message", "'type(code)'", *_NOISE_DATA),
        _spec(Kind.OS_SCAN, "nmap's OS-detection probes from a source (once per episode)", "what was seen"),
        _spec(Kind.CONFLICT, "another machine uses a virtual host's address: released", "the evidence"),
        _spec(
            Kind.CONFLICT_UNCONFIRMED,
            "evidence against a virtual host's address that nobody confirmed (a spoofed packet?): kept",
            "the evidence",
        ),
        _spec(
            Kind.LOGIN,
            "a password login attempt",
            "'user:password'",
            "user",
            "password",
            "accepted",
            "hash",
            "version",
            # what the services add: the mechanism or protocol, the material to crack offline, the client
            "mechanism",
            "protocol",
            "source",
            "domain",
            "workstation",
            "anonymous",
            "hashcat_mode",
            "hash_type",
            "salt",
            "response",
            "plugin",
            "database",
            "attrs",
            "capabilities",
            "client_os",
            "client_lanman",
            "engine_id",
            "auth",
            "privacy",
            "datagram",
        ),
        _spec(
            Kind.LOGIN_KEY,
            "a public-key login attempt",
            "'user:fingerprint'",
            "user",
            "key_type",
            "fingerprint",
            "accepted",
        ),
        _spec(Kind.COMMAND, "a command line typed or requested", "the command line"),
        _spec(
            Kind.REQUEST,
            "a protocol request (HTTP, SNMP, SMB, RDP, ...)",
            "the request line",
            "method",
            "user_agent",
            "excerpt",
            # SNMP
            "version",
            "community",
            "user",
            "accepted",
            "pdu",
            "oids",
            "values",
            "request_id",
            "engine_id",
            "flags",
            # SMB and NetBIOS
            "protocol",
            "dialects",
            "path",
            "name",
            "called",
            "calling",
            # RDP
            "requested_protocols",
            "cookie_user",
            "routing_token",
            "client_name",
            "client_build",
            "keyboard_layout",
        ),
        _spec(
            Kind.BAD_REQUEST, "input the protocol could not parse", "why", "bytes", "excerpt", "line", "peer"
        ),
        _spec(
            Kind.UPLOAD,
            "a file stored by a service",
            "the file name",
            "bytes",
            "sha256",
            "path",
            "name",
            "size",
            "truncated",
            "stored",
            "duplicate",  # the same content was kept already: stored once
            "dropped",  # why not kept: "source quota", "spool budget", "database budget", "cannot write"
        ),
        _spec(
            Kind.DOWNLOAD,
            "a file a shell command asked for (wget, curl): recorded, never fetched",
            "the command and URL",
            "tool",
            "url",
            "host",
            "port",
        ),
        _spec(
            Kind.MESSAGE,
            "a mail message offered over SMTP",
            "sender and recipients",
            "bytes",
            "from",
            "to",
            "subject",
            "size",
            "id",
            "helo",
            "excerpt",
        ),
        _spec(Kind.TERMINAL, "the terminal type a client announced", "the type", "type"),
        _spec(Kind.ENVIRON, "environment variables a client sent", "the variables", "vars"),
        _spec(
            Kind.SHELL_LIMITS,
            "what a fake shell session cut or left unrecorded by its bounds (loops and lines stopped, "
            "nesting too deep, uploads past the cap), said once at its end",
            "the counts, as 'what N, ...'",
            "counts",
        ),
        _spec(Kind.TIMEOUT, "a session ended by a time limit", "None", "seconds", "lifetime"),
        _spec(Kind.REFUSED, "a connection turned away by a limit (handshake rate, sessions)", "why", "limit"),
        _spec(Kind.SCRIPT, "a honeyd script started for a connection", "the command line", "pid"),
        _spec(Kind.SCRIPT_FAILED, "a honeyd script could not start", "why", "command"),
        _spec(Kind.SCRIPT_REFUSED, "too many scripts were running", "why", "command"),
        _spec(Kind.PROXY, "a connection relayed to a real machine", "'host:port'"),
        _spec(Kind.PROXY_FAILED, "the relay target did not answer", "'host:port: why'"),
        _spec(Kind.PROXY_CLOSED, "a relayed connection ended", "'host:port'", "bytes_in", "bytes_out"),
        _spec(
            Kind.REDIRECT,
            "an attacker's connection relayed to a real backend with the attacker's own address",
            "'backend (address)'",
            "backend",
            "backend_ip",
            "sticky",
        ),
        _spec(
            Kind.OUTBOUND,
            "a connection a backend started itself (source: the backend): never reaches the network",
            "'sinkholed' (the sensor answered) or 'refused' (beyond the hourly limit: RST)",
            "backend",
            "used",
            "limit",
        ),
        _spec(
            Kind.OUTBOUND_DATA,
            "what a backend sent on a sinkholed connection (source: the backend)",
            "an excerpt",
            "backend",
            "bytes",
            "excerpt",
        ),
        _spec(Kind.SENSOR_START, "the sensor started", "how many hosts"),
        _spec(Kind.SENSOR_RELOAD, "the sensor applied a new configuration", "the counts, as JSON"),
        _spec(Kind.EVENTS_LOST, "events dropped before they were stored", "how many, and why"),
        _spec(
            Kind.STORAGE_FULL,
            "a storage budget was reached: payloads and noise are counted, not stored (once per crossing)",
            "which budget, how full",
            "store",
            "used",
            "budget",
        ),
    )
)

LOGIN_KINDS = frozenset({Kind.LOGIN, Kind.LOGIN_KEY})
COMMAND_KINDS = frozenset({Kind.COMMAND})
NEWS_KINDS = frozenset({Kind.SENSOR_START, Kind.SENSOR_RELOAD, Kind.EVENTS_LOST, Kind.STORAGE_FULL})
# What one packet makes, outside any connection: stored as one row per source, target and
# window (the first at once, the repeats as one more row whose `count` says how many).
NOISE_KINDS = frozenset({Kind.PROBE, Kind.DATAGRAM, Kind.ECHO, Kind.ICMP})
# Data keys holding what the attacker sent, as it was sent: dropped past the database budget.
PAYLOAD_KEYS = frozenset({"excerpt", "line"})

# The source and destination of events that belong to no flow (the sensor's own news).
NO_FLOW_ADDRESS = "0.0.0.0"  # noqa: S104 - an address written, never bound
# The `scan_tool` the sensor writes on a source's events while nmap's OS detection runs.
NMAP_OS_SCAN_TOOL = "nmap OS scan"
