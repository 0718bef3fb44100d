"""SMB emulator (TCP 445 direct, TCP 139 behind a NetBIOS session): a Windows file server's front door.

Enough of SMB1 and SMB2 that scanners and clients see the Windows release of the virtual host
(`smb_messages.profile_for`, from its nmap-os-db personality) and its own names:

- `nmap -sV` names the service from the SMB1 NEGOTIATE answer; `smb-os-discovery` reads NativeOS
  and NativeLanMan from an anonymous session setup, and the computer, domain and clock from the
  NTLMSSP CHALLENGE;
- `smbclient -L` negotiates SMB2 (Vista and later; XP and 2003 speak SMB1 only), logs on, and is
  refused at the IPC$ tree connect (anonymous) or at the logon itself (any password).

Every logon attempt is reported as a "login" event with the user, domain, client workstation and,
for NTLM, the response as a hashcat line (mode 5600 NetNTLMv2, 5500 NetNTLMv1): the part a
honeypot operator wants. Anonymous (null) sessions are accepted, as Windows does; named users
never are. Anything past the logon (tree connects, file commands) gets ACCESS_DENIED or the
error Windows sends for a missing session or share.

The protocol logic is `SmbConnection`, sans-IO: one SMB message in, the replies out. `serve_smb`
adds the framing, the time-outs and the size caps. Malformed input is reported as
"bad-request" and the connection closed, as Windows does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from dynapot.events import Kind
from dynapot.services import smb_messages as m
from dynapot.services.contract import ConnectionInfo, Handler, Report, Service, clip, excerpt, guarded
from dynapot.services.identity import HostIdentity

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # bytes of one SMB message; logon tokens stay far below
MAX_MESSAGES = 200  # per connection
MAX_EVENTS = 64  # reports per connection, so that a flood cannot flood the event log
MAX_LOGONS = 10  # logon attempts per connection, then the connection is dropped
IDLE = 30.0  # seconds without a message
LIFETIME = 300.0


@dataclass(slots=True)
class Reply:
    """What to send (SMB messages, not yet framed) and whether to hang up afterwards."""

    messages: list[bytes] = field(default_factory=list)
    close: bool = False


class SmbConnection:
    """The SMB state of one connection: negotiation, logon, and the refusals after it."""

    def __init__(self, info: ConnectionInfo, report: Report) -> None:
        self.profile = m.profile_of(info)
        self.identity = info.identity
        self._report = guarded(report, "smb")
        self._events = 0
        self.dialect: str | None = None  # "smb1", "smb2-wildcard" (SMB1 asked, SMB2 offered), "smb2"
        self.smb1_extended = False
        self.smb1_challenge = os.urandom(8)  # the challenge of a non-extended SMB1 logon
        self.ntlm_challenge: bytes | None = None  # of the NTLMSSP exchange in progress
        self.ntlm_spnego = True  # wrap our NTLMSSP answers as the client wrapped its own
        self.logons = 0
        self.uid = 0  # SMB1 user id handed out; nonzero once a logon is under way
        self.session_id = 0  # SMB2 session id, likewise
        self.logged_on = False
        self._salt = os.urandom(32)
        self._client: tuple[str, str] = ("", "")  # SMB1 NativeOS / NativeLanMan of the client

    # -- reporting ---------------------------------------------------------------------------

    def report(self, kind: Kind, detail: str | None, data: dict[str, Any] | None = None) -> None:
        if self._events >= MAX_EVENTS:
            return
        self._events += 1
        self._report(kind, detail, data)

    def _logon(
        self, auth: m.NtlmAuth, challenge: bytes, accepted: bool, protocol: str, password: str | None
    ) -> None:
        detail, data = m.login_event(auth, challenge, accepted=accepted, protocol=protocol, password=password)
        if self._client != ("", ""):
            data["client_os"], data["client_lanman"] = self._client
        self.report(Kind.LOGIN, detail, data)

    # -- entry point -------------------------------------------------------------------------

    def receive(self, message: bytes) -> Reply:
        """The reply to one SMB message (the payload of one NetBIOS/direct-TCP frame)."""
        try:
            if message.startswith(m.SMB1_MAGIC):
                return self._smb1(m.smb1_parse(message))
            if message.startswith(m.SMB2_MAGIC):
                return self._smb2(message)
            raise m.MalformedMessage("neither SMB1 nor SMB2")
        except (m.MalformedMessage, struct.error, IndexError, UnicodeError) as exc:
            self.report(Kind.BAD_REQUEST, str(exc)[:200], {"excerpt": excerpt(message[:256])})
            return Reply(close=True)

    # -- SMB1 --------------------------------------------------------------------------------

    def _smb1(self, message: m.Smb1Message) -> Reply:
        header = message.header
        if header.command == m.SMB1_NEGOTIATE:
            if self.dialect is not None:
                return Reply(close=True)  # Windows drops a second NEGOTIATE
            return self._smb1_negotiate(message)
        if self.dialect != "smb1":
            return Reply(close=True)
        if header.command == m.SMB1_SESSION_SETUP_ANDX:
            return self._smb1_session_setup(message)
        session = self.logged_on and header.uid == self.uid
        if header.command == m.SMB1_TREE_CONNECT_ANDX:
            path = m.smb1_tree_path(message)
            self.report(Kind.REQUEST, f"TREE_CONNECT {path}", {"path": path, "protocol": "SMB1"})
            status = m.STATUS_ACCESS_DENIED if session else m.STATUS_USER_SESSION_DELETED
            return Reply([m.smb1_error(header, status)])
        if header.command == m.SMB1_LOGOFF_ANDX:
            self.logged_on = False
            words = struct.pack("<BBH", 0xFF, 0, 0)
            return Reply([m.smb1_packet(header, m.STATUS_SUCCESS, words, b"")])
        if header.command == m.SMB1_ECHO:
            words = struct.pack("<H", 1)
            return Reply([m.smb1_packet(header, m.STATUS_SUCCESS, words, message.data[:1024])])
        self.report(Kind.REQUEST, f"SMB1 command 0x{header.command:02x}", {"protocol": "SMB1"})
        return Reply([m.smb1_error(header, m.STATUS_NOT_SUPPORTED if session else m.STATUS_ACCESS_DENIED)])

    def _smb1_negotiate(self, message: m.Smb1Message) -> Reply:
        header = message.header
        dialects = m.smb1_dialects(message.data)
        self.report(Kind.REQUEST, "SMB1 NEGOTIATE", {"dialects": [clip(d) for d in dialects[:16]]})
        highest = self.profile.smb2_max
        # Vista and later answer a multi-protocol negotiate offering SMB2 in SMB2.
        if highest and "SMB 2.???" in dialects and highest > 0x0202:
            self.dialect = "smb2-wildcard"
            return Reply([self._smb2_negotiate_reply(_SMB2_UPGRADE, m.SMB2_WILDCARD, None)])
        if highest and "SMB 2.002" in dialects:
            self.dialect = "smb2"
            return Reply([self._smb2_negotiate_reply(_SMB2_UPGRADE, 0x0202, None)])
        if not self.profile.smb1 or "NT LM 0.12" not in dialects:
            return Reply([m.smb1_no_dialect(header)], close=True)
        self.dialect = "smb1"
        self.smb1_extended = self.profile.extended_security and bool(
            header.flags2 & m.SMB1_FLAGS2_EXTENDED_SECURITY
        )
        reply = m.smb1_negotiate_response(
            header,
            dialects.index("NT LM 0.12"),
            self.profile,
            self.identity,
            challenge=self.smb1_challenge,
            extended=self.smb1_extended,
        )
        return Reply([reply])

    def _next_uid(self) -> int:
        # Windows hands out small, increasing user ids.
        return 0x0800 + (self.logons % 0x100) * 8

    def _smb1_session_setup(self, message: m.Smb1Message) -> Reply:
        header = message.header
        setup = m.smb1_session_setup(message)
        self._client = (setup.native_os, setup.native_lanman)
        if not setup.extended:
            return self._smb1_basic_logon(header, setup)
        if not self.smb1_extended:
            return Reply([m.smb1_error(header, m.STATUS_INVALID_PARAMETER)])
        status, blob, accepted = self._ntlm_step(setup.blob, "SMB1")
        if status == m.STATUS_MORE_PROCESSING_REQUIRED:
            self.uid = self.uid or self._next_uid()
        elif status == m.STATUS_SUCCESS:
            self.logged_on = accepted
        else:
            return self._after_failure([m.smb1_error(header, status)])
        reply = m.smb1_session_setup_response(
            header, status, self.uid, self.profile, self.identity, blob=blob
        )
        return Reply([reply])

    def _smb1_basic_logon(self, header: m.Smb1Header, setup: m.Smb1SessionSetup) -> Reply:
        self.logons += 1
        lm, nt = setup.oem_password, setup.unicode_password
        password: str | None = None
        if len(nt) < 24 and len(lm) not in (0, 1, 24):
            # Only a server that does not ask for encrypted passwords gets these; record them anyway.
            password = clip(lm.rstrip(b"\0").decode("latin-1"))
        auth = m.NtlmAuth(setup.account, setup.domain, "", lm, nt)
        accepted = auth.anonymous
        self._logon(auth, self.smb1_challenge, accepted, "SMB1", password)
        if not accepted:
            status = m.STATUS_ACCOUNT_DISABLED if auth.user.lower() == "guest" else m.STATUS_LOGON_FAILURE
            return self._after_failure([m.smb1_error(header, status)])
        self.uid = self._next_uid()
        self.logged_on = True
        reply = m.smb1_session_setup_response(
            header, m.STATUS_SUCCESS, self.uid, self.profile, self.identity, blob=None
        )
        return Reply([reply])

    def _after_failure(self, messages: list[bytes]) -> Reply:
        self.uid = 0
        self.session_id = 0
        self.ntlm_challenge = None
        return Reply(messages, close=self.logons >= MAX_LOGONS)

    # -- NTLMSSP inside SPNEGO, shared by SMB1 and SMB2 ----------------------------------------

    def _ntlm_step(self, blob: bytes, protocol: str) -> tuple[int, bytes, bool]:
        """(status, security blob to return, accepted) for one logon leg."""
        token = m.find_ntlmssp(blob)
        if token is None:
            if m.is_spnego(blob):
                # Kerberos or another mechanism: point the client at NTLMSSP instead.
                return m.STATUS_MORE_PROCESSING_REQUIRED, m.spnego_response(m.NEG_ACCEPT_INCOMPLETE), False
            return m.STATUS_INVALID_PARAMETER, b"", False
        self.ntlm_spnego = m.is_spnego(blob)
        kind = m.ntlm_message_type(token)
        if kind == 1:
            flags = m.ntlm_negotiate_flags(token)
            self.ntlm_challenge = os.urandom(8)
            challenge = m.ntlm_challenge(flags, self.ntlm_challenge, self.profile, self.identity)
            wrapped = m.spnego_response(m.NEG_ACCEPT_INCOMPLETE, challenge) if self.ntlm_spnego else challenge
            return m.STATUS_MORE_PROCESSING_REQUIRED, wrapped, False
        if kind != 3 or self.ntlm_challenge is None:
            return m.STATUS_INVALID_PARAMETER, b"", False
        self.logons += 1
        auth = m.ntlm_authenticate(token)
        accepted = auth.anonymous
        self._logon(auth, self.ntlm_challenge, accepted, protocol, None)
        self.ntlm_challenge = None
        if accepted:
            done = m.spnego_response(m.NEG_ACCEPT_COMPLETED, mech=None) if self.ntlm_spnego else b""
            return m.STATUS_SUCCESS, done, True
        status = m.STATUS_ACCOUNT_DISABLED if auth.user.lower() == "guest" else m.STATUS_LOGON_FAILURE
        return status, b"", False

    # -- SMB2 --------------------------------------------------------------------------------

    def _smb2(self, message: bytes) -> Reply:
        replies: list[bytes] = []
        close = False
        for header, request in m.smb2_parse(message):
            if header.flags & m.SMB2_FLAGS_SERVER_TO_REDIR:
                raise m.MalformedMessage("a response where a request belongs")
            reply = self._smb2_one(header, request)
            replies.extend(reply.messages)
            if reply.close:
                close = True
                break
        if len(replies) > 1:
            replies = [m.smb2_compound(replies)]
        return Reply(replies, close)

    def _credits(self, header: m.Smb2Header) -> int:
        return max(1, min(header.credits, 64))

    def _smb2_one(self, header: m.Smb2Header, request: bytes) -> Reply:
        command = header.command
        if command == m.SMB2_NEGOTIATE:
            if self.dialect not in (None, "smb2-wildcard") or not self.profile.smb2_max:
                # A second NEGOTIATE, or SMB2 to a host that predates it: Windows hangs up.
                return Reply(close=True)
            client = m.smb2_negotiate_request(request)
            self.report(
                Kind.REQUEST, "SMB2 NEGOTIATE", {"dialects": [f"0x{d:04x}" for d in client.dialects[:16]]}
            )
            dialect = m.smb2_pick_dialect(client.dialects, self.profile.smb2_max)
            if dialect is None:
                return Reply([m.smb2_error(header, m.STATUS_NOT_SUPPORTED)], close=True)
            self.dialect = "smb2"
            return Reply([self._smb2_negotiate_reply(header, dialect, client)])
        if self.dialect != "smb2":
            return Reply(close=True)
        credits = self._credits(header)
        if command == m.SMB2_SESSION_SETUP:
            return self._smb2_session_setup(header, request, credits)
        session = self.logged_on and header.session_id == self.session_id
        if command == m.SMB2_TREE_CONNECT:
            path = m.smb2_tree_path(request)
            self.report(Kind.REQUEST, f"TREE_CONNECT {path}", {"path": path, "protocol": "SMB2"})
            status = m.STATUS_ACCESS_DENIED if session else m.STATUS_USER_SESSION_DELETED
            return Reply([m.smb2_error(header, status, credits=credits)])
        if command == m.SMB2_LOGOFF:
            if not session:
                return Reply([m.smb2_error(header, m.STATUS_USER_SESSION_DELETED, credits=credits)])
            self.logged_on = False
            return Reply([m.smb2_simple_response(header, credits=credits)])
        if command == m.SMB2_TREE_DISCONNECT:
            status = m.STATUS_NETWORK_NAME_DELETED if session else m.STATUS_USER_SESSION_DELETED
            return Reply([m.smb2_error(header, status, credits=credits)])
        if command == m.SMB2_ECHO:
            return Reply([m.smb2_simple_response(header, credits=credits)])
        if command == m.SMB2_CANCEL:
            return Reply()
        if command > 0x12:
            return Reply([m.smb2_error(header, m.STATUS_INVALID_PARAMETER, credits=credits)])
        # File commands need a tree, and no tree is ever connected.
        self.report(Kind.REQUEST, f"SMB2 command 0x{command:02x}", {"protocol": "SMB2"})
        status = m.STATUS_NETWORK_NAME_DELETED if session else m.STATUS_USER_SESSION_DELETED
        return Reply([m.smb2_error(header, status, credits=credits)])

    def _smb2_negotiate_reply(
        self, header: m.Smb2Header, dialect: int, client: m.Smb2Negotiate | None
    ) -> bytes:
        return m.smb2_negotiate_response(
            header, dialect, self.profile, self.identity, client=client, salt=self._salt
        )

    def _smb2_session_setup(self, header: m.Smb2Header, request: bytes, credits: int) -> Reply:
        blob = m.smb2_session_setup_blob(request)
        status, answer, accepted = self._ntlm_step(blob, "SMB2")
        if status == m.STATUS_MORE_PROCESSING_REQUIRED:
            if not self.session_id:
                # Windows session ids: a small counter in the high half, never zero.
                self.session_id = (int.from_bytes(os.urandom(2), "little") | 0x4000) << 32 | 0x05
            reply = m.smb2_session_setup_response(header, status, self.session_id, answer, credits=credits)
            return Reply([reply])
        if status == m.STATUS_SUCCESS:
            self.logged_on = accepted
            reply = m.smb2_session_setup_response(
                header, status, self.session_id, answer, flags=m.SMB2_SESSION_FLAG_IS_NULL, credits=credits
            )
            return Reply([reply])
        failed = m.smb2_packet(header, status, struct.pack("<HBBI", 9, 0, 0, 0) + b"\0", credits=credits)
        return self._after_failure([failed])


# The header an SMB2 answer to an SMB1 NEGOTIATE carries: message id 0, nothing else.
_SMB2_UPGRADE = m.Smb2Header(0, 0, m.SMB2_NEGOTIATE, 0, 0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------------------------
# Framing and IO


def _accepts_called_name(name: str, identity: HostIdentity) -> bool:
    if name.upper() in (identity.computer, "*SMBSERVER"):
        return True
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return True
    return False


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """(type, payload) of the next NetBIOS frame; None when the peer is gone, slow or too big."""
    try:
        head = await asyncio.wait_for(reader.readexactly(4), IDLE)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    kind = head[0]
    # Type 0 carries a 24-bit length on 445 (17-bit on 139, whose flag bits are zero anyway).
    length = int.from_bytes(head[1:], "big") if kind == m.NBSS_MESSAGE else struct.unpack(">H", head[2:])[0]
    if length > MAX_MESSAGE:
        return None
    try:
        payload = await asyncio.wait_for(reader.readexactly(length), IDLE)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    return kind, payload


async def _session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    conn: SmbConnection,
    *,
    netbios: bool,
) -> None:
    established = not netbios
    for _ in range(MAX_MESSAGES):
        frame = await _read_frame(reader)
        if frame is None:
            return
        kind, payload = frame
        if kind == m.NBSS_KEEPALIVE:
            continue
        if netbios and not established:
            if kind != m.NBSS_REQUEST:
                # What Windows answers on 139 to anything but a session request (nmap matches on it).
                writer.write(m.nbss_frame(m.NBSS_NEGATIVE, bytes([m.NBSS_UNSPECIFIED])))
                await writer.drain()
                return
            called, _, used = m.netbios_name_decode(payload)
            calling = m.netbios_name_decode(payload[used:])[0] if len(payload) > used else ""
            conn.report(Kind.REQUEST, f"NetBIOS session {called}", {"called": called, "calling": calling})
            if not _accepts_called_name(called, conn.identity):
                writer.write(m.nbss_frame(m.NBSS_NEGATIVE, bytes([m.NBSS_CALLED_NAME_NOT_PRESENT])))
                await writer.drain()
                return
            writer.write(m.nbss_frame(m.NBSS_POSITIVE, b""))
            await writer.drain()
            established = True
            continue
        if kind != m.NBSS_MESSAGE:
            return
        reply = conn.receive(payload)
        for message in reply.messages:
            writer.write(m.nbss_frame(0, message) if netbios else m.direct_tcp_frame(message))
        await writer.drain()
        if reply.close:
            return


def _make(netbios: bool | None) -> Handler:
    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        # Port 139 is NetBIOS session service; anything else is SMB straight over TCP, as on 445.
        over_netbios = info.dport == 139 if netbios is None else netbios
        try:
            conn = SmbConnection(info, report)
            await asyncio.wait_for(_session(reader, writer, conn, netbios=over_netbios), LIFETIME)
        except (TimeoutError, ConnectionError):
            pass
        except m.MalformedMessage as exc:
            with contextlib.suppress(Exception):
                report(Kind.BAD_REQUEST, str(exc)[:200], None)
        except Exception:  # the sensor must outlive any bug here
            log.exception("SMB emulation failed")
        finally:
            writer.close()

    return serve


serve_smb = _make(None)
serve_netbios_ssn = _make(True)
serve_microsoft_ds = _make(False)


# "smb" picks the framing by port; the others are honeyd's names for 139 and 445.
SERVICES = (
    Service(("smb",), "tcp", serve_smb),
    Service(("netbios-ssn",), "tcp", serve_netbios_ssn),
    Service(("microsoft-ds",), "tcp", serve_microsoft_ds),
)
