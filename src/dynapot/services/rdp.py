"""RDP emulator (TCP 3389): Remote Desktop's security negotiation, then NLA as far as the client's hash.

What a client sees, by the host's Windows release (`smb_messages.profile_for`):

- XP / 2003 and older: an X.224 Connection Confirm without negotiation (RDP 5 knows none);
- Vista / 7 / 2008 (R2): a Connection Confirm selecting CredSSP (NLA) or TLS or standard RDP
  security, whichever the client offers first in that order (NLA was optional then);
- 8 / 2012 and later: NLA required; a client offering no CredSSP gets RDP_NEG_FAILURE
  HYBRID_REQUIRED_BY_SERVER, as from a default install.

`nmap -sV` names this "Microsoft Terminal Services". After the confirm comes TLS with a
self-signed certificate in the host's name (kept in memory per address, like the one Windows
makes for itself), and with NLA CredSSP: the NTLM CHALLENGE carries the host's names, build and
clock (what `rdp-ntlm-info` shows), and the client's AUTHENTICATE is reported as a "login"
with its NetNTLMv2 hashcat line. The logon always fails (STATUS_LOGON_FAILURE). The
"Cookie: mstshash=USER" of the connection request is reported as a "login" too: it is the user
name the client typed. Standard RDP security is not implemented: its MCS Connect Initial is
recorded (client name and build) and the connection closed. A TLS ClientHello in place of the
connection request (nmap's ssl-cert does that) gets the TLS handshake, as from Windows.

Everything is bounded: packet sizes, the number of reads, idle time and lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import ssl
import struct
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dynapot.events import Kind
from dynapot.services import smb_messages as m
from dynapot.services.contract import ConnectionInfo, Report, Service, clip, excerpt, guarded
from dynapot.services.identity import HostIdentity

log = logging.getLogger(__name__)

MAX_PDU = 8 * 1024  # bytes of one TPKT packet or CredSSP message
IDLE = 20.0
LIFETIME = 120.0
MAX_TLS_READS = 64  # TLS records read while waiting for one CredSSP message
CERT_CACHE = 256  # hosts whose certificate stays in memory

PROTOCOL_RDP = 0x0
PROTOCOL_SSL = 0x1
PROTOCOL_HYBRID = 0x2
PROTOCOL_HYBRID_EX = 0x8
HYBRID_REQUIRED_BY_SERVER = 0x5

_COOKIE = re.compile(rb"^Cookie: mstshash=([^\r\n]{0,256})\r\n")
_TOKEN = re.compile(rb"^Cookie: msts=([^\r\n]{0,256})\r\n")


# ---------------------------------------------------------------------------------------------
# X.224 / TPKT (ITU-T T.123, X.224; MS-RDPBCGR 2.2.1.1, 2.2.1.2)


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """What an X.224 Connection Request says: who (cookie), and which security it can do."""

    src_ref: int
    cookie_user: str | None
    routing_token: str | None
    requested: int | None  # None: no RDP_NEG_REQ (a pre-Vista client)


def parse_connection_request(packet: bytes) -> ConnectionRequest:
    """A TPKT packet holding an X.224 CR; MalformedMessage for anything else."""
    if len(packet) < 11 or packet[0] != 3 or packet[5] & 0xF0 != 0xE0:
        raise m.MalformedMessage("not an X.224 connection request")
    length_indicator = packet[4]
    if length_indicator + 5 > len(packet) or length_indicator < 6:
        raise m.MalformedMessage("bad X.224 length indicator")
    (src_ref,) = struct.unpack_from(">H", packet, 8)
    rest = packet[11 : 5 + length_indicator]
    cookie_user = routing_token = None
    if found := _COOKIE.match(rest):
        cookie_user = clip(found.group(1).decode("latin-1"))
        rest = rest[found.end() :]
    elif found := _TOKEN.match(rest):
        routing_token = clip(found.group(1).decode("latin-1"))
        rest = rest[found.end() :]
    requested = None
    if len(rest) >= 8 and rest[0] == 0x01:
        _, _, size, requested = struct.unpack_from("<BBHI", rest)
        if size != 8:
            raise m.MalformedMessage("bad RDP_NEG_REQ length")
    return ConnectionRequest(src_ref, cookie_user, routing_token, requested)


def connection_confirm(dst_ref: int, negotiation: bytes = b"") -> bytes:
    """X.224 CC in TPKT; Windows' source reference is always 0x1234."""
    body = struct.pack(">BBHHB", 6 + len(negotiation), 0xD0, dst_ref, 0x1234, 0) + negotiation
    return struct.pack(">BBH", 3, 0, 4 + len(body)) + body


def negotiation_response(flags: int, selected: int) -> bytes:
    return struct.pack("<BBHI", 0x02, flags, 8, selected)


def negotiation_failure(code: int) -> bytes:
    return struct.pack("<BBHI", 0x03, 0, 8, code)


def decide(profile: m.WindowsProfile, request: ConnectionRequest) -> bytes:
    """The Connection Confirm this host sends back to `request`."""
    requested = request.requested
    if profile.samba:
        # xrdp: TLS if the client can, no NLA.
        if requested is None:
            return connection_confirm(request.src_ref)
        selected = PROTOCOL_SSL if requested & PROTOCOL_SSL else PROTOCOL_RDP
        return connection_confirm(request.src_ref, negotiation_response(0, selected))
    if not profile.nt6:
        return connection_confirm(request.src_ref)  # RDP 5.x: no negotiation at all
    version = profile.version[:2]
    if version >= (6, 2):
        if requested is None or not requested & PROTOCOL_HYBRID:
            return connection_confirm(request.src_ref, negotiation_failure(HYBRID_REQUIRED_BY_SERVER))
        # EXTENDED_CLIENT_DATA, DYNVC_GFX, reserved; then restricted admin (8.1), redirected auth (10).
        flags = 0x1F if version >= (10, 0) else 0x0F if version >= (6, 3) else 0x07
        selected = PROTOCOL_HYBRID_EX if requested & PROTOCOL_HYBRID_EX else PROTOCOL_HYBRID
        return connection_confirm(request.src_ref, negotiation_response(flags, selected))
    if requested is None:
        return connection_confirm(request.src_ref)
    for choice in (PROTOCOL_HYBRID, PROTOCOL_SSL):
        if requested & choice:
            break
    else:
        choice = PROTOCOL_RDP
    return connection_confirm(request.src_ref, negotiation_response(0x01 if version >= (6, 1) else 0, choice))


def selected_protocol(confirm: bytes) -> int | None:
    """The protocol a confirm selected; None when it selected none (legacy) or refused."""
    if len(confirm) >= 19 and confirm[11] == 0x02:
        return struct.unpack_from("<I", confirm, 15)[0]
    return None


def client_core_data(packet: bytes) -> dict[str, Any] | None:
    """Client name, build and keyboard from the CS_CORE block of an MCS Connect Initial."""
    start = packet.find(b"\x01\xc0")
    if start < 0 or start + 56 > len(packet):
        return None
    _, _, _, _, _, _, _, keyboard, build = struct.unpack_from("<HHIHHHHII", packet, start)
    name = packet[start + 24 : start + 56].decode("utf-16-le", "replace").split("\0", 1)[0]
    return {"client_name": clip(name), "client_build": build, "keyboard_layout": f"0x{keyboard:08x}"}


# ---------------------------------------------------------------------------------------------
# CredSSP (MS-CSSP) TSRequest


def ts_request(version: int, token: bytes | None = None, error_code: int | None = None) -> bytes:
    body = m.der(0xA0, m.der(0x02, bytes([version])))
    if token is not None:
        body += m.der(0xA1, m.der(0x30, m.der(0x30, m.der(0xA0, m.der(0x04, token)))))
    if error_code is not None:
        body += m.der(0xA4, m.der(0x02, error_code.to_bytes(4, "big")))
    return m.der(0x30, body)


def ts_request_version(message: bytes) -> int:
    tag, content, _ = m.der_read(message)
    if tag != 0x30:
        raise m.MalformedMessage("not a TSRequest")
    tag, version, _ = m.der_read(content)
    if tag != 0xA0:
        raise m.MalformedMessage("TSRequest without a version")
    tag, value, _ = m.der_read(version)
    if tag != 0x02 or not 1 <= len(value) <= 4:
        raise m.MalformedMessage("bad TSRequest version")
    return int.from_bytes(value, "big")


def credssp_version(profile: m.WindowsProfile) -> int:
    # Vista/2008 stayed at version 2; the 2018 CredSSP update moved everything later to 6.
    return 2 if profile.version[:2] == (6, 0) else 6


# ---------------------------------------------------------------------------------------------
# TLS over any stream pair (the sensor's userland TCP as well as a kernel socket)


class _Certificates:
    """One self-signed RDP certificate per host address, made on first contact, kept in memory."""

    def __init__(self, size: int = CERT_CACHE) -> None:
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def cached(self, dst: str) -> ssl.SSLContext | None:
        with self._lock:
            return self._contexts.get(dst)

    def context(self, dst: str, identity: HostIdentity) -> ssl.SSLContext:
        """The host's TLS context, made (an RSA key, some 50 ms) on first use: call it off the loop."""
        with self._lock:
            if dst in self._contexts:
                self._contexts.move_to_end(dst)
                return self._contexts[dst]
        made = _make_context(identity)
        with self._lock:
            self._contexts[dst] = made
            while len(self._contexts) > self._size:
                self._contexts.popitem(last=False)
        return made


def _make_context(identity: HostIdentity) -> ssl.SSLContext:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.fqdn)])
    # Windows renews its RDP certificate every six months; this one is somewhere in that span.
    now = datetime.datetime.now(datetime.UTC)
    age = datetime.timedelta(
        seconds=int.from_bytes(identity.server_guid[:4], "little") % (170 * 86400) + 86400
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big") >> 1)
        .not_valid_before(now - age)
        .not_valid_after(now - age + datetime.timedelta(days=182))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, True, True, False, False, False, False, False), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The ssl module loads keys only from files: a private directory, emptied at once.
    with tempfile.TemporaryDirectory(prefix="dynapot-rdp-") as directory:
        path = os.path.join(directory, "cert.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            handle.write(certificate.public_bytes(serialization.Encoding.PEM))
        context.load_cert_chain(path)
    return context


CERTIFICATES = _Certificates()


class _Tls:
    """A server-side TLS session over a StreamReader/StreamWriter, through memory BIOs."""

    def __init__(
        self,
        context: ssl.SSLContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        received: bytes = b"",
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._incoming.write(received)  # bytes already read while looking for a TPKT header
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._reader = reader
        self._writer = writer

    async def _flush(self) -> None:
        if data := self._outgoing.read():
            self._writer.write(data)
            await self._writer.drain()

    async def _fill(self) -> None:
        data = await asyncio.wait_for(self._reader.read(16384), IDLE)
        if not data:
            raise ConnectionError("peer closed during TLS")
        self._incoming.write(data)

    async def handshake(self) -> None:
        for _ in range(MAX_TLS_READS):
            try:
                self._tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
        raise ConnectionError("TLS handshake too long")

    async def read_der(self) -> bytes:
        """One complete DER value (a TSRequest), at most MAX_PDU bytes."""
        buffer = bytearray()
        for _ in range(MAX_TLS_READS):
            if len(buffer) >= 2:
                needed = _der_size(bytes(buffer[:6]))
                if needed is not None and needed > MAX_PDU:
                    raise m.MalformedMessage("CredSSP message too large")
                if needed is not None and len(buffer) >= needed:
                    return bytes(buffer[:needed])
            try:
                buffer += self._tls.read(MAX_PDU)
            except ssl.SSLWantReadError:
                await self._fill()
            except ssl.SSLZeroReturnError:
                break
        raise ConnectionError("no complete CredSSP message")

    async def read_some(self) -> bytes:
        for _ in range(MAX_TLS_READS):
            try:
                return self._tls.read(MAX_PDU)
            except ssl.SSLWantReadError:
                await self._fill()
            except ssl.SSLZeroReturnError:
                return b""
        return b""

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    async def close(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError, OSError):
            self._tls.unwrap()
        with contextlib.suppress(ConnectionError, OSError):
            await self._flush()


def _der_size(head: bytes) -> int | None:
    """Total length of a DER value from its first bytes; None until enough of them are known."""
    first = head[1]
    if not first & 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 3:
        raise m.MalformedMessage("bad DER length")
    if len(head) < 2 + count:
        return None
    return 2 + count + int.from_bytes(head[2 : 2 + count], "big")


# ---------------------------------------------------------------------------------------------
# The connection


class _TlsHello(Exception):
    """The client started TLS where a TPKT packet belongs."""

    def __init__(self, head: bytes) -> None:
        super().__init__("TLS instead of TPKT")
        self.head = head


async def _read_tpkt(reader: asyncio.StreamReader, *, tls_ok: bool = False) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(4), IDLE)
    if tls_ok and head[0] == 0x16:
        raise _TlsHello(head)
    if head[0] != 3:
        raise m.MalformedMessage("not TPKT")
    (length,) = struct.unpack_from(">H", head, 2)
    if not 7 <= length <= MAX_PDU:
        raise m.MalformedMessage(f"TPKT length {length}")
    return head + await asyncio.wait_for(reader.readexactly(length - 4), IDLE)


class _Session:
    def __init__(self, info: ConnectionInfo, report: Report) -> None:
        self.info = info
        self.profile = m.profile_of(info)
        self.identity = info.identity
        self._report = guarded(report, "rdp")

    def report(self, kind: Kind, detail: str | None, data: dict[str, Any] | None = None) -> None:
        self._report(kind, detail, data)

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # Windows 8 and later go along with TLS straight away; Windows 7 and 2008 want X.224
            # first (nmap then names them by its TerminalServer probe, "Microsoft Terminal Service").
            packet = await _read_tpkt(reader, tls_ok=self.profile.version[:2] >= (6, 2))
        except _TlsHello as hello:
            await self._bare_tls(reader, writer, hello.head)
            return
        request = parse_connection_request(packet)
        requested = request.requested
        self.report(
            Kind.REQUEST,
            "X.224 connection request",
            {
                "requested_protocols": requested,
                "cookie_user": request.cookie_user,
                "routing_token": request.routing_token,
            },
        )
        if request.cookie_user:
            # The mstshash cookie carries the user name typed into the client.
            self.report(
                Kind.LOGIN,
                f"{request.cookie_user}:",
                {"user": request.cookie_user, "password": None, "accepted": False, "source": "mstshash"},
            )
        confirm = decide(self.profile, request)
        writer.write(confirm)
        await writer.drain()
        selected = selected_protocol(confirm)
        if selected is None:
            if len(confirm) > 11:
                return  # negotiation failure: Windows hangs up
            await self._legacy(reader)
            return
        if selected == PROTOCOL_RDP:
            await self._legacy(reader)
            return
        context = await self._tls_context()
        tls = _Tls(context, reader, writer)
        await tls.handshake()
        try:
            if selected in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX):
                await self._credssp(tls)
            else:
                data = await tls.read_some()
                self._mcs(data)
        finally:
            await tls.close()

    async def _bare_tls(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> None:
        """TLS straight away: Windows goes along with it; whatever follows is recorded, then we close."""
        self.report(Kind.REQUEST, "TLS without X.224", None)
        context = await self._tls_context()
        tls = _Tls(context, reader, writer, head)
        try:
            await tls.handshake()
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(tls.read_some(), IDLE)
                if data:
                    self.report(Kind.REQUEST, "data over TLS", {"excerpt": excerpt(data[:256])})
        finally:
            await tls.close()

    async def _tls_context(self) -> ssl.SSLContext:
        cached = CERTIFICATES.cached(self.info.dst)
        if cached is not None:
            return cached
        return await asyncio.to_thread(CERTIFICATES.context, self.info.dst, self.identity)

    async def _legacy(self, reader: asyncio.StreamReader) -> None:
        """Standard RDP security: note who connects (MCS Connect Initial), then hang up."""
        with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, m.MalformedMessage):
            self._mcs(await _read_tpkt(reader))

    def _mcs(self, packet: bytes) -> None:
        if not packet:
            return
        core = client_core_data(packet)
        self.report(Kind.REQUEST, "MCS connect initial", core or {"excerpt": excerpt(packet[:256])})

    async def _credssp(self, tls: _Tls) -> None:
        version = credssp_version(self.profile)
        first = await tls.read_der()
        client_version = ts_request_version(first)
        token = m.find_ntlmssp(first)
        if token is None or m.ntlm_message_type(token) != 1:
            raise m.MalformedMessage("CredSSP without an NTLM NEGOTIATE")
        flags = m.ntlm_negotiate_flags(token)
        challenge = os.urandom(8)
        await tls.write(ts_request(version, m.ntlm_challenge(flags, challenge, self.profile, self.identity)))
        second = await tls.read_der()
        token = m.find_ntlmssp(second)
        if token is None or m.ntlm_message_type(token) != 3:
            raise m.MalformedMessage("CredSSP without an NTLM AUTHENTICATE")
        auth = m.ntlm_authenticate(token)
        detail, data = m.login_event(auth, challenge, accepted=False, protocol="RDP-CredSSP")
        self.report(Kind.LOGIN, detail, data)
        if min(version, client_version) >= 3:
            await tls.write(ts_request(version, error_code=m.STATUS_LOGON_FAILURE))


async def serve_rdp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    session = _Session(info, report)
    try:
        await asyncio.wait_for(session.run(reader, writer), LIFETIME)
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    except (m.MalformedMessage, struct.error, IndexError, UnicodeError) as exc:
        session.report(Kind.BAD_REQUEST, str(exc)[:200], None)
    except Exception:  # the sensor must outlive any bug here
        log.exception("RDP emulation failed")
    finally:
        writer.close()


def preload() -> None:
    """What an RDP session loads on first use, loaded while the sensor may still read everything."""
    import concurrent.futures.thread  # noqa: F401 - asyncio.to_thread's pool

    tempfile.gettempdir()
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # reads the OpenSSL configuration


SERVICES = (Service(("rdp", "ms-wbt-server"), "tcp", serve_rdp, preload),)
