"""The service contract: what an emulated service receives, how it reports, how it is described.

A TCP service is an async function `Handler` `(reader, writer, info, report)`: an asyncio
stream pair (the sensor's userland TCP or, in tests, a kernel socket), the `ConnectionInfo`
of its connection, and `report`, where everything the attacker does goes as
`(kind, detail, data)`. A UDP service is sans-IO (`DatagramService`): one datagram in, at
most one out. Services know nothing of packets or of the sensor; the sensor knows them only
through this module. Each service module describes itself the same way, `SERVICES`: a tuple
of `Service` (names, transport, function, what it loads before root is dropped), from which
`dynapot.services` builds the registries. Who the host is (`ConnectionInfo.identity`) is
`dynapot.services.identity`'s.

Attacker strings are hostile: `clip` bounds one field, `excerpt` makes bytes printable and
bounded, `printable` does both to a field, and `guarded` keeps a failing report sink from
ending the attacker's session.
"""

from __future__ import annotations

import asyncio
import encodings.latin_1
import encodings.unicode_escape
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from dynapot.events import Kind
from dynapot.services.identity import HostIdentity, identity_for

log = logging.getLogger(__name__)
# `excerpt`'s codecs, imported now: after the sensor drops root it may no longer read the library.
_CODECS = (encodings.latin_1, encodings.unicode_escape)

EXCERPT_LIMIT = 4096  # bytes of attacker data kept in one event
FIELD_LIMIT = 256  # characters of one attacker-chosen field (user, password, name) kept


class PassiveListener(Protocol):
    """A data port opened for one expected connection (FTP PASV)."""

    port: int

    async def accept(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The next connection to `port`; TimeoutError when none comes in time."""
        ...

    def close(self) -> None: ...


class DataPorts(Protocol):
    """Second connections a service may open on its host: a kernel socket's or the sensor's."""

    async def listen(self) -> PassiveListener: ...

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An outgoing connection (FTP PORT); OSError when the host cannot make one."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One connection (or datagram) as its service sees it: the peer, the virtual host, its role."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    personality: str | None
    template: str
    # What the service should claim to be: nmap -sV's product and version for the real hosts
    # this virtual host imitates ("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10"), when known.
    product: str | None = None
    version: str | None = None
    # How to open second connections (FTP data); None where the transport offers none.
    data_ports: DataPorts | None = None
    mac: bytes | None = None  # the virtual host's MAC (NetBIOS node status tells it)
    # Who the host is (its names, clock and system): the sensor's; else, on a kernel socket,
    # derived from the address and personality.
    identity: HostIdentity = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.identity is None:
            object.__setattr__(self, "identity", identity_for(self.dst, self.personality))


# A sink for what handlers learn: the kind (`dynapot.events.Kind`: its catalogue says what
# detail and data hold), detail, data.
Report = Callable[[Kind, str | None, dict[str, Any] | None], None]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ConnectionInfo, Report], Awaitable[None]]
# A UDP service is sans-IO: one datagram in, at most one datagram out (None: stay silent).
DatagramService = Callable[[bytes, ConnectionInfo, Report], bytes | None]


@dataclass(frozen=True, slots=True)
class Service:
    """One emulated service as the sensor knows it.

    `names` are what honeyd configurations call it (`add T tcp port 445 "smb"`); `handler` is a
    `Handler` for "tcp" and a `DatagramService` for "udp"; `preload`, when given, loads what the
    service would otherwise import lazily, while the sensor can still read the whole library.
    """

    names: tuple[str, ...]
    transport: Literal["tcp", "udp"]
    handler: Handler | DatagramService
    preload: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if not self.names or self.transport not in ("tcp", "udp"):
            raise ValueError(f"a service needs names and a transport (tcp or udp): {self!r}")


def excerpt(data: bytes) -> str:
    """A printable, bounded excerpt of attacker bytes for the event log."""
    return data[:EXCERPT_LIMIT].decode("latin-1").encode("unicode_escape").decode("ascii")


def clip(text: str, limit: int = FIELD_LIMIT) -> str:
    """One attacker-chosen field, bounded."""
    return text[:limit]


def printable(text: str, limit: int = FIELD_LIMIT) -> str:
    """One attacker-chosen field, bounded, with everything but printable ASCII escaped."""
    return excerpt(text[:limit].encode("latin-1", "replace"))


def guarded(report: Report, service: str) -> Report:
    """`report`, but a failing sink is logged instead of ending the attacker's session."""

    def call(kind: Kind, detail: str | None, data: dict[str, Any] | None) -> None:
        try:
            report(kind, detail, data)
        except Exception:
            log.exception("%s: report sink failed", service)

    return call
