"""MySQL / MariaDB emulator: a real protocol-v10 handshake that refuses every login.

What an attacker sees: the greeting of the server nmap found on the real hosts (MySQL 8 on
Ubuntu by default, MariaDB's "5.5.5-10.x-MariaDB" form when the product says so), a fresh
20-byte mysql_native_password salt per connection, and after the client's
HandshakeResponse41 the server's own "Access denied" error (1045, SQLSTATE 28000).
A client asking for another auth plugin is switched to mysql_native_password first, as a
server whose account uses it would do, so every attempt yields crackable material.

Reported events:
  login        "user:$mysqlna$SALT*RESPONSE"  {"user", "password": None, "accepted": False,
               "salt", "response", "hash", "plugin", "database", "attrs", "capabilities"}
               ("hash" is hashcat mode 11200 / John's mysqlna format, for offline cracking)
  bad-request  what came instead of a handshake response (SSL requests included: TLS is not
               advertised, and a server without TLS answers those "Bad handshake" too)

Bounded: one handshake per connection, packet size, connect_timeout-like read time-outs.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Report, Service, excerpt, printable
from dynapot.services.profiles import Profile, choose
from dynapot.services.reset import reset

CONNECT_TIMEOUT = 10.0  # MySQL's connect_timeout: the whole handshake must arrive within it
MAX_PACKET = 64 * 1024  # a handshake response with every connection attribute fits easily
MAX_ATTRS = 32
NATIVE = "mysql_native_password"

# Capability flags (MySQL include/mysql_com.h).
CLIENT_LONG_PASSWORD = 0x1
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x200000

ER_ACCESS_DENIED = 1045
ER_HANDSHAKE_ERROR = 1043
ER_NET_PACKETS_OUT_OF_ORDER = 1156
ER_ACCESS_DENIED_NO_PASSWORD = 1698
SERVER_STATUS_AUTOCOMMIT = 0x0002

DEFAULT_LINUX = "8.0.35-0ubuntu0.22.04.1"
DEFAULT_OTHER = "8.0.35"
# The version a host claims when nmap named none: its distribution's package, else upstream's.
VERSIONS: tuple[Profile[str], ...] = (
    Profile("5.7.42-0ubuntu0.18.04.1", os="ubuntu-18.04"),
    Profile(DEFAULT_LINUX, os="ubuntu"),
    Profile(DEFAULT_OTHER),
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a server family refuses: recorded from MariaDB 10.11 (Debian 12) with the realism
    probe suite (dynapot.lab.probes); MySQL keeps the emulator's earlier answers."""

    state_before_auth: bool = False  # SQLSTATE on errors before the client said it speaks 4.1
    check_sequence: bool = False  # a first packet not numbered 1: 1156 "Got packets out of order", RST
    quit_is_bad_handshake: bool = False  # COM_QUIT instead of a handshake response: 1043
    # Users the server has (on any host): a wrong password is 1045; other names get 1698.
    known_users: frozenset[str] | None = None


MYSQL = Dialect()
MARIADB = Dialect(True, True, True, frozenset({"root", "mysql", "mariadb.sys"}))


@dataclass(frozen=True, slots=True)
class Server:
    """What the greeting says: version string, capabilities, default collation."""

    version: str
    capabilities: int  # 32 bits; CLIENT_SSL is never set (no TLS here)
    charset: int
    mariadb_caps: int | None = None  # MariaDB's extended capabilities, in the reserved bytes
    dialect: Dialect = MYSQL


def server_for(info: ConnectionInfo) -> Server:
    """The server this host imitates: nmap's product/version, else a default fitting the OS."""
    product = (info.product or "").strip()
    # Printable only: the version is NUL-terminated on the wire.
    version = "".join(ch for ch in (info.version or "") if ch.isprintable()).strip()
    text = f"{product} {version}".lower()
    if "mariadb" in text:
        version = version or "10.6.12-MariaDB-0ubuntu0.22.04.1"
        if "mariadb" not in version.lower():
            version += "-MariaDB"
        major = version.removeprefix("5.5.5-").split(".", 1)[0]
        # MariaDB before 11 prefixes "5.5.5-" so that old MySQL clients accept the version.
        if not version.startswith("5.5.5-") and major.isdigit() and int(major) < 11:
            version = "5.5.5-" + version
        return Server(version[:60], 0x81FF_F7FE, 45, mariadb_caps=0x1D, dialect=MARIADB)
    if not version:
        version = choose(VERSIONS, info).what
    if version.startswith("8."):
        return Server(version[:60], 0xDFFF_F7FF, 255)
    return Server(version[:60], 0x81FF_F7FF, 8)


# Connection ids grow per host like a real server's, from a per-host starting point.
_CONNECTIONS = itertools.count(1)


def _connection_id(info: ConnectionInfo) -> int:
    base = info.identity.rng("mysql-connections").randrange(200_000)
    return (1000 + base + next(_CONNECTIONS)) % (1 << 24)  # < 2**24, as nmap's match expects


def new_salt() -> bytes:
    """20 bytes as the server makes them: 7-bit, never NUL (the salt is NUL-terminated) or '$'."""
    out = bytearray(b & 0x7F for b in secrets.token_bytes(20))
    for i, b in enumerate(out):
        if b in (0, 0x24):
            out[i] = b + 1
    return bytes(out)


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def greeting(server: Server, connection_id: int, salt: bytes) -> bytes:
    """The Protocol::HandshakeV10 payload."""
    caps = server.capabilities & ~CLIENT_SSL
    reserved = (
        bytes(10) if server.mariadb_caps is None else bytes(6) + server.mariadb_caps.to_bytes(4, "little")
    )
    return b"".join(
        [
            b"\x0a",
            server.version.encode("latin-1", "replace") + b"\0",
            connection_id.to_bytes(4, "little"),
            salt[:8],
            b"\0",
            (caps & 0xFFFF).to_bytes(2, "little"),
            bytes([server.charset]),
            SERVER_STATUS_AUTOCOMMIT.to_bytes(2, "little"),
            (caps >> 16).to_bytes(2, "little"),
            bytes([len(salt) + 1]),
            reserved,
            salt[8:] + b"\0",
            NATIVE.encode() + b"\0",
        ]
    )


def error(seq: int, code: int, state: str, message: str, *, protocol41: bool) -> bytes:
    """An ERR packet; the SQLSTATE marker only for clients that speak protocol 4.1."""
    body = b"\xff" + code.to_bytes(2, "little")
    if protocol41:
        body += b"#" + state.encode()
    return packet(seq, body + message.encode("utf-8", "replace"))


def native_hash(salt: bytes, response: bytes) -> str:
    """The attempt in hashcat 11200 / John "mysqlna" form."""
    return f"$mysqlna${salt.hex()}*{response.hex()}"


def native_response(password: str, salt: bytes) -> bytes:
    """What a client sends for `password` (for tests and for operators checking a guess)."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the protocol's own hash
    stage2 = hashlib.sha1(stage1).digest()  # noqa: S324
    mask = hashlib.sha1(salt[:20] + stage2).digest()  # noqa: S324
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


# -- the client's answer --------------------------------------------------------------------------------


class _Short(Exception):
    """The packet ended in the middle of a field."""


class _Cursor:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Short
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def lenenc(self) -> int:
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first in (0xFC, 0xFD, 0xFE):
            return self.uint({0xFC: 2, 0xFD: 3, 0xFE: 8}[first])
        raise _Short  # 0xFB (NULL) and 0xFF are not lengths

    def cstring(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise _Short
        return self.take(end - self.pos + 1)[:-1]

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _text(raw: bytes) -> str:
    """Attacker bytes as a short printable string (no control characters reach the log)."""
    return printable(raw.decode("latin-1"))


@dataclass(slots=True)
class Response:
    """A parsed HandshakeResponse41 (or the old 3.20 form)."""

    capabilities: int
    user: str
    auth: bytes
    database: str = ""
    plugin: str = ""
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def protocol41(self) -> bool:
        return bool(self.capabilities & CLIENT_PROTOCOL_41)


def parse_response(payload: bytes) -> Response | None:
    """The client's handshake response, or None when it is not one (SSL request, garbage)."""
    try:
        return _parse(payload)
    except (_Short, ValueError, KeyError):
        return None


def _parse(payload: bytes) -> Response | None:
    cur = _Cursor(payload)
    if len(payload) < 4:
        return None
    caps = int.from_bytes(payload[:4], "little")
    if not caps & CLIENT_PROTOCOL_41:
        # HandshakeResponse320: 2 bytes of capabilities, 3 of max packet size, user, scramble.
        caps = cur.uint(2)
        cur.take(3)
        user = cur.cstring()
        auth = cur.rest().rstrip(b"\0")
        return Response(caps, _text(user), auth)
    cur.take(4 + 4 + 1 + 23)  # capabilities, max packet size, collation, filler
    if cur.done:
        return None  # an SSL request (or a truncated response): no user at all
    user = cur.cstring()
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth = cur.take(cur.lenenc())
    elif caps & CLIENT_SECURE_CONNECTION:
        auth = cur.take(cur.uint(1))
    else:
        auth = cur.cstring()
    response = Response(caps, _text(user), auth)
    if caps & CLIENT_CONNECT_WITH_DB and not cur.done:
        response.database = _text(cur.cstring())
    if caps & CLIENT_PLUGIN_AUTH and not cur.done:
        end = payload.find(b"\0", cur.pos)
        response.plugin = _text(cur.take((end if end >= 0 else len(payload)) - cur.pos))
        if end >= 0:
            cur.take(1)
    if caps & CLIENT_CONNECT_ATTRS and not cur.done:
        attrs = _Cursor(cur.take(cur.lenenc()))
        while not attrs.done and len(response.attrs) < MAX_ATTRS:
            key = attrs.take(attrs.lenenc())
            response.attrs[_text(key)] = _text(attrs.take(attrs.lenenc()))
    return response


# -- the service ----------------------------------------------------------------------------------------


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes | None]:
    """(sequence id, payload); payload None when it is bigger than any handshake (left unread)."""
    header = await reader.readexactly(4)
    length = int.from_bytes(header[:3], "little")
    if length > MAX_PACKET:
        return header[3], None
    return header[3], await reader.readexactly(length)


async def serve_mysql(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    server = server_for(info)
    salt = new_salt()
    writer.write(packet(0, greeting(server, _connection_id(info), salt)))
    try:
        await writer.drain()
        await asyncio.wait_for(
            _handshake(reader, writer, info, report, salt, server.dialect), CONNECT_TIMEOUT
        )
    except _OutOfOrder:
        reset(writer)  # the packet's body is left unread: the kernel's close is a RST
        return
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass  # silent clients, and clients hanging up: the server just closes
    finally:
        writer.close()


class _OutOfOrder(Exception):
    """The server refused a packet by its sequence number and closes at once."""


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    info: ConnectionInfo,
    report: Report,
    salt: bytes,
    dialect: Dialect = MYSQL,
) -> None:
    if dialect.check_sequence:
        header = await reader.readexactly(4)
        if header[3] != 1:
            report(Kind.BAD_REQUEST, "packets out of order", {"bytes": 4})
            writer.write(
                error(1, ER_NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order", protocol41=True)
            )
            await writer.drain()
            raise _OutOfOrder
        length = int.from_bytes(header[:3], "little")
        seq, payload = 1, (await reader.readexactly(length) if length <= MAX_PACKET else None)
    else:
        seq, payload = await _read_packet(reader)
    if payload == b"\x01" and not dialect.quit_is_bad_handshake:
        return  # COM_QUIT: the client gives up before authenticating
    response = parse_response(payload) if payload else None
    if response is None:
        if payload is None:
            detail = "packet too large"
        elif len(payload) == 32 and int.from_bytes(payload[:4], "little") & CLIENT_SSL:
            detail = "SSL request"
        else:
            detail = excerpt(payload[:512])
        report(Kind.BAD_REQUEST, detail, {"bytes": len(payload) if payload is not None else None})
        state = dialect.state_before_auth
        writer.write(error(seq + 1, ER_HANDSHAKE_ERROR, "08S01", "Bad handshake", protocol41=state))
        await writer.drain()
        return
    plugin = response.plugin
    if response.capabilities & CLIENT_PLUGIN_AUTH and plugin and plugin != NATIVE:
        # Like a server whose account uses mysql_native_password: ask the client to switch.
        seq += 1
        writer.write(packet(seq, b"\xfe" + NATIVE.encode() + b"\0" + salt + b"\0"))
        await writer.drain()
        seq, auth = await _read_packet(reader)
        response.auth = auth or b""
        plugin = NATIVE
    auth = response.auth[:64]
    detail = f"{response.user}:{native_hash(salt, auth)}" if auth else f"{response.user}:"
    report(
        Kind.LOGIN,
        detail,
        {
            "user": response.user,
            "password": None,  # only its mysql_native_password hash is known: see "hash"
            "accepted": False,
            "salt": salt.hex(),
            "response": auth.hex(),
            "hash": native_hash(salt, auth) if auth else None,
            "plugin": plugin or NATIVE,
            "database": response.database,
            "attrs": response.attrs,
            "capabilities": response.capabilities,
        },
    )
    message = f"Access denied for user '{response.user}'@'{info.src}'"
    code = ER_ACCESS_DENIED
    if dialect.known_users is not None and response.user not in dialect.known_users:
        code = ER_ACCESS_DENIED_NO_PASSWORD  # MariaDB: a name it has no account for
    else:
        message += f" (using password: {'YES' if auth else 'NO'})"
    writer.write(error(seq + 1, code, "28000", message, protocol41=response.protocol41))
    await writer.drain()


SERVICES = (Service(("mysql",), "tcp", serve_mysql),)
