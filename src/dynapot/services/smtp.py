"""SMTP emulator: a mail server that keeps what it is sent for its local users and refuses logins.

`SmtpSession` is the protocol, sans-IO: `greeting()` and `feed(bytes) -> reply bytes`, with
`closed` set once the server hangs up and `delay` the seconds the server waits before its reply
(Postfix slows down a client that keeps making errors) or before its banner (its start-up). It
speaks as Postfix (Linux, BSD: the default), Exim or Microsoft's IIS SMTP service (Windows),
chosen from the product nmap found on the real hosts, else from the OS (`smtp_profiles`):
banner, its timing, EHLO extensions, reply texts, queue ids and the commands each knows
(Postfix's ETRN, BDAT/CHUNKING, XCLIENT) match the imitated server; a `MailServer` is data,
another version is another row.

Like a default installation, the server takes mail only for its own users (`LOCAL_USERS`, and
postmaster, at its own names: `local_domains`) and refuses to relay ("454 4.7.1 <...>: Relay
access denied"); a recipient it has no user for gets Postfix's "550 5.1.1 ... User unknown in
local recipient table". Spam runs and relay tests are what SMTP honeypots see most, so
`SmtpConfig.relay` (off by default) makes the server an open relay that takes every recipient,
to capture whole spam runs. Postfix offers no AUTH by default (it says "authentication not
enabled"); Exim and Microsoft's service offer PLAIN and LOGIN, which always fail with 535.
Reported events:
  command      the command line (AUTH lines excepted: their credentials go to "login")
  login        "user:password"  {"user", "password", "accepted": False, "mechanism"}
  message      "from -> to"     {"from", "to", "subject", "size", "id", "helo", "excerpt"}
  bad-request  an HTTP request or other junk that makes Postfix hang up

Bounded: command line length, recipients, message bytes kept, errors (then "421 too many
errors"), commands reported, bytes per connection, idle time and lifetime.
"""

from __future__ import annotations

import asyncio
import binascii
import random
import re
import time
from dataclasses import dataclass

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Handler, Report, Service, excerpt, printable
from dynapot.services.identity import HostIdentity
from dynapot.services.machine import machine_for
from dynapot.services.smtp_profiles import MESSAGE_LIMIT, MailServer, server_for

MAX_LINE = 2048  # Postfix's line_length_limit: a longer command line is cut there
MAX_RECIPIENTS = 100
MESSAGE_KEEP = 64 * 1024  # bytes of each message kept for the report
HARD_ERROR_LIMIT = 20  # Postfix's smtpd_hard_error_limit
SOFT_ERROR_LIMIT = 10  # Postfix's smtpd_soft_error_limit: past it, each error reply waits ...
ERROR_SLEEP = 1.0  # ... smtpd_error_sleep_time seconds
MAX_CHUNK = 1 << 40  # the largest BDAT size we parse (bytes past MESSAGE_KEEP are only counted)
MAX_REPORTED = 100  # command events per connection
MAX_BYTES = 32 * 1024 * 1024  # read from one connection in all
IDLE = 60.0
LIFETIME = 600.0

_MAIL = re.compile(r"FROM:\s*(?:<([^<>]*)>|(\S+))\s*(.*)", re.IGNORECASE)
_RCPT = re.compile(r"TO:\s*(?:<([^<>]*)>|(\S+))\s*(.*)", re.IGNORECASE)
_SIZE = re.compile(r"(?:^|\s)SIZE=(\d{1,20})", re.IGNORECASE)
# MAIL's ESMTP parameters Postfix knows (RFC 1870, 6152, 3461, 4954, 6531); SIZE= is read.
MAIL_OPTIONS = frozenset({"SIZE", "BODY", "RET", "ENVID", "AUTH", "SMTPUTF8"})
# Commands only some servers know (`MailServer.commands`); to the others they are unknown.
OPTIONAL_COMMANDS = frozenset({"etrn", "bdat", "xclient", "xforward"})
_BDAT = re.compile(r"(\d{1,20})(?:\s+(LAST))?", re.IGNORECASE)

# The accounts of a Debian or Ubuntu base system (and of the daemons dynapot's hosts run): whom a
# default Postfix delivers to (local_recipient_maps = unix:passwd.byname). postmaster is always taken.
_BASE_ACCOUNTS = (
    "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc nobody "
    "_apt systemd-network systemd-resolve systemd-timesync messagebus sshd postfix ftp mysql"
)
LOCAL_USERS = frozenset(_BASE_ACCOUNTS.split())  # where no passwd file is known (Exchange)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """What the deployment decides (not the imitated server): whether mail is relayed."""

    # True: an open relay that takes every recipient, to capture whole spam runs (a real server
    # refuses, so relay tests see a honeypot); False: Postfix's default, local users only.
    relay: bool = False


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _queue_id(server: str, rng: random.Random, host: str) -> str:
    if server == "exim":  # base-62 time, pid and sub-second parts: 1rABCD-000123-4X
        stamp, digits = int(time.time()), []
        for _ in range(6):
            stamp, rest = divmod(stamp, 62)
            digits.append(_B62[rest])
        pid = "".join(rng.choice(_B62) for _ in range(6))
        return f"{''.join(reversed(digits))}-{pid}-{rng.choice(_B62)}{rng.choice(_B62)}"
    if server == "microsoft":
        return f"{host.upper()}{rng.getrandbits(48):012X}"
    return f"{rng.getrandbits(44):011X}"  # Postfix's short hexadecimal queue ids


def _subject(head: bytes) -> str:
    """The Subject header of a message (unfolded, not decoded: decoding may need any codec)."""
    subject: list[str] | None = None
    for raw in head.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            break  # end of the header
        if subject is not None and line[:1] in (" ", "\t"):
            subject.append(line.strip())
        elif subject is not None:
            break
        elif line.lower().startswith("subject:"):
            subject = [line[8:].strip()]
    return printable(" ".join(subject)) if subject else ""


# Session states.
COMMAND, DATA, AUTH_PLAIN, AUTH_USER, AUTH_PASSWORD, CHUNK = range(6)


def local_users(identity: HostIdentity) -> frozenset[str]:
    """The accounts a Unix host's mail server delivers to: those of its /etc/passwd, as its shell
    shows them (`services.machine`: the distribution's accounts, the daemons' and its admin),
    so that VRFY and RCPT agree with what a login finds."""
    return frozenset(user.name for user in machine_for(identity).users)


def local_domains(identity: HostIdentity) -> frozenset[str]:
    """The domains a host's mail server takes mail for: Postfix's mydestination as Debian writes it
    ($myhostname, $myhostname.localdomain, localhost), with the host's DNS name."""
    names = {identity.hostname, f"{identity.hostname}.localdomain", identity.fqdn, "localhost"}
    return frozenset(name.lower() for name in names)


class SmtpSession:
    """One SMTP conversation, without IO: feed it what the client sent, send what it returns."""

    def __init__(
        self,
        server: MailServer,
        host: str,
        client: str,
        report: Report,
        rng: random.Random | None = None,
        *,
        relay: bool = False,
        domains: frozenset[str] | None = None,
        users: frozenset[str] = LOCAL_USERS,
    ) -> None:
        self.server = server
        self.host = host
        self.client = client
        self.report = report
        self.rng = rng or random.Random()  # queue ids: no secret
        self.relay = relay
        self.domains = domains if domains is not None else frozenset({host.lower(), "localhost"})
        self.users = users
        self.closed = False
        self.delay = 0.0  # seconds to wait before sending what the last `feed` returned
        self.errors = 0
        self._reported = 0
        self._buf = bytearray()
        self._cut: bytes | None = None  # the head of an over-long command line whose rest is skipped
        self._state = COMMAND
        self._helo: str | None = None
        self._sender: str | None = None
        self._recipients: list[str] = []
        self._message = bytearray()
        self._size = 0
        self._declared = 0  # MAIL's SIZE=; like Postfix's, it outlives a refused MAIL until RSET
        self._line_start = True  # the next DATA bytes begin a line (for "." and dot-stuffing)
        self._last_byte = b""  # of the message so far (BDAT: Postfix ends an unended last line)
        self._bdat = False  # this transaction's message comes in BDAT chunks
        self._chunk_left = 0
        self._chunk_last = False
        self._chunk_error: str | None = None  # the reply to a chunk that is only skipped
        self._auth_user = ""
        self._mechanism = ""

    # -- IO-facing ------------------------------------------------------------------------------------

    def greeting(self) -> bytes:
        """The banner; `delay` is then the server's start-up time before it (`MailServer.banner_delay`)."""
        low, high = self.server.banner_delay
        self.delay = random.uniform(low, high) if high > 0 else 0.0
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return self._fmt(self.server.banner, date=date)

    def timeout(self) -> bytes:
        """What the server says when the client went silent (the caller then closes)."""
        self.closed = True
        return self._fmt(self.server.replies["timeout"])

    def feed(self, data: bytes) -> bytes:
        """Consume client bytes; return the replies (several when the client pipelines)."""
        if self.closed:
            return b""
        errors_before = self.errors
        self._buf += data
        out: list[bytes] = []
        pos = 0  # lines are taken by position and the buffer cut once: no quadratic copying
        while not self.closed:
            if self._state == CHUNK:
                take = min(self._chunk_left, len(self._buf) - pos)
                self._chunk_bytes(bytes(self._buf[pos : pos + take]))
                pos += take
                if self._chunk_left:
                    break
                reply = self._chunk_done()
            else:
                end = self._buf.find(b"\n", pos)
                if end < 0:
                    if len(self._buf) - pos > MAX_LINE:
                        if self._state == DATA:
                            self._data_bytes(bytes(self._buf[pos:]), complete=False)
                        elif self._cut is None:
                            self._cut = bytes(self._buf[pos : pos + MAX_LINE])
                        pos = len(self._buf)
                    break
                line = bytes(self._buf[pos : end + 1])
                pos = end + 1
                reply = self._data_line(line) if self._state == DATA else self._command_line(line)
            if reply:
                out.append(reply)
            if self.errors >= HARD_ERROR_LIMIT and not self.closed:
                self.closed = True
                out.append(self._fmt(self.server.replies["too_many_errors"]))
        del self._buf[:pos]
        slow = self.server.error_sleep and errors_before >= SOFT_ERROR_LIMIT and self.errors > errors_before
        self.delay = ERROR_SLEEP if slow else 0.0
        return b"".join(out)

    # -- helpers --------------------------------------------------------------------------------------

    def _fmt(self, template: str, **values: str) -> bytes:
        fields = {"host": self.host, "client": self.client, "helo": self._helo or "", "arg": "", "id": ""}
        fields.update(values)
        return (template.format(**fields) + "\r\n").encode("latin-1", "replace")

    def _reply(self, key: str, **values: str) -> bytes:
        return self._fmt(self.server.replies[key], **values)

    def _error(self, key: str, **values: str) -> bytes:
        self.errors += 1
        return self._reply(key, **values)

    def _command_event(self, text: str) -> None:
        if self._reported < MAX_REPORTED:
            self._reported += 1
            self.report(Kind.COMMAND, printable(text), None)

    def _reset(self) -> None:
        self._sender = None
        self._recipients = []
        self._message = bytearray()
        self._size = 0
        self._declared = 0
        self._bdat = False
        self._last_byte = b""

    def _check_recipient(self, address: str) -> str | None:
        """Why this server refuses `address` as a recipient (a reply key), or None."""
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if domain and domain.lower().rstrip(".") not in self.domains:
            return None if self.relay else "relay_denied"
        if not self.server.check_users:
            return None
        user = local.lower().split("+", 1)[0]  # recipient_delimiter = +
        return None if user == "postmaster" or user in self.users else "unknown_user"

    # -- commands -------------------------------------------------------------------------------------

    def _command_line(self, line: bytes) -> bytes:
        if self._cut is not None or len(line) > MAX_LINE + 2:
            head = self._cut if self._cut is not None else line[:MAX_LINE]
            self._cut = None
            if not self.server.cut_long_lines or self._state != COMMAND:
                self._state = COMMAND  # an AUTH dialogue ends here too
                return self._error("line_too_long")
            line = head
        raw = line.rstrip(b"\r\n")
        if self._state in (AUTH_PLAIN, AUTH_USER, AUTH_PASSWORD):
            return self._auth_step(raw.decode("latin-1").strip())
        if self.server.forbid_http:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._error("bad_utf8")
        return self._line(raw.decode("latin-1"))

    def _line(self, text: str) -> bytes:
        words = text.strip(" \t").split(None, 1)
        if not words:
            return self._error("bad_syntax")
        verb, arg = words[0].upper(), words[1].strip() if len(words) > 1 else ""
        if self.server.forbid_http and (verb in ("GET", "POST", "CONNECT") or not "A" <= verb[0] <= "Z"):
            self.report(Kind.BAD_REQUEST, printable(text), None)
            self.closed = True
            return self._reply("http")
        if verb != "AUTH":
            self._command_event(text)
        known = verb.isascii() and verb.isalpha() and len(verb) < 10
        if verb.lower() in OPTIONAL_COMMANDS and verb.lower() not in self.server.commands:
            known = False
        handler = getattr(self, f"_cmd_{verb.lower()}", None) if known else None
        if handler is None:
            return self._error("unknown")
        return handler(arg)

    def _cmd_helo(self, arg: str) -> bytes:
        if not arg:
            return self._error("syntax_helo")
        self._helo = printable(arg.split()[0])
        self._reset()
        return self._fmt(self.server.helo)

    def _cmd_ehlo(self, arg: str) -> bytes:
        if not arg:
            return self._error("syntax_ehlo")
        self._helo = printable(arg.split()[0])
        self._reset()
        return b"".join(self._fmt(line) for line in self.server.ehlo)

    def _cmd_mail(self, arg: str) -> bytes:
        if self.server.needs_helo and self._helo is None:
            return self._error("need_helo")
        if self._sender is not None:
            return self._error("nested_mail")
        match = _MAIL.fullmatch(arg)
        if match is None:
            return self._error("syntax_mail")
        address = match.group(1) if match.group(1) is not None else match.group(2)
        if self.server.strict:
            refusal = _bad_sender(address) or self._mail_options(match.group(3))
            if refusal:
                return self._error(refusal[0], arg=refusal[1])
        else:
            size = _SIZE.search(match.group(3))
            if size:
                self._declared = int(size.group(1))
        if self._declared > MESSAGE_LIMIT:
            return self._error("too_big")
        self._sender = printable(address)
        return self._reply("mail", arg=self._sender or "<>")

    def _mail_options(self, text: str) -> tuple[str, str] | None:
        """Postfix's reading of MAIL's ESMTP parameters: the error, or None (SIZE= is kept)."""
        for option in text.split():
            name, _, value = option.partition("=")
            name = name.upper()
            if name == "SIZE":
                if not value.isdigit() or len(value) > 20:
                    return ("bad_size", "")
                self._declared = int(value)
            elif name not in MAIL_OPTIONS:
                return ("bad_option", printable(option))
        return None

    def _cmd_rcpt(self, arg: str) -> bytes:
        if self._sender is None:
            return self._error("need_mail")
        match = _RCPT.fullmatch(arg)
        address = match and (match.group(1) if match.group(1) is not None else match.group(2))
        if not address and not (self.server.strict and match):
            return self._error("syntax_rcpt")
        if self.server.strict and _bad_recipient(address or ""):
            return self._error("bad_address")
        if len(self._recipients) >= MAX_RECIPIENTS:
            return self._error("too_many_rcpt")
        refusal = self._check_recipient(address or "")
        if refusal:
            return self._error(refusal, arg=printable(address or ""))
        self._recipients.append(printable(address))
        return self._reply("rcpt", arg=self._recipients[-1])

    def _cmd_data(self, arg: str) -> bytes:
        if self._sender is None:
            return self._error("data_without_mail")
        if not self._recipients:
            return self._error("no_recipients")
        if arg:
            return self._error("syntax_data")
        if self._bdat:
            return self._error("data_after_bdat")
        self._state = DATA
        self._line_start = True
        return self._reply("data")

    def _cmd_rset(self, arg: str) -> bytes:
        if arg and self.server.strict:
            return self._error("syntax_rset")
        self._reset()
        return self._reply("rset")

    def _cmd_noop(self, arg: str) -> bytes:
        return self._reply("noop")

    def _cmd_vrfy(self, arg: str) -> bytes:
        if not arg:
            return self._error("syntax_vrfy")
        if self.server.check_users:
            words = arg.split()
            if len(words) == 2 and words[1].upper() == "SMTPUTF8":
                words = words[:1]
            address = words[0][1:-1] if words[0].startswith("<") and words[0].endswith(">") else words[0]
            if len(words) != 1 or _bad_recipient(address):
                return self._error("bad_address")
            refusal = self._check_recipient(address)
            if refusal:
                return self._error(refusal, arg=printable(address))
            return self._reply("vrfy", arg=printable(words[0]))
        return self._reply("vrfy", arg=printable(arg))

    def _cmd_quit(self, arg: str) -> bytes:
        self.closed = True
        return self._reply("quit")

    def _cmd_starttls(self, arg: str) -> bytes:
        return self._error("not_implemented")  # not offered: no TLS on this server

    def _cmd_etrn(self, arg: str) -> bytes:
        if len(arg.split()) != 1:
            return self._error("syntax_etrn")
        if self._sender is not None:
            return self._error("etrn_in_mail")
        domain = arg[1:] if arg[0] in "#@" else arg
        return self._error("etrn", arg=printable(domain))  # fast_flush_domains: none

    def _cmd_xclient(self, arg: str) -> bytes:
        return self._error("xclient")  # smtpd_authorized_xclient_hosts: none

    _cmd_xforward = _cmd_xclient

    # -- BDAT (RFC 3030 CHUNKING) ---------------------------------------------------------------------

    def _cmd_bdat(self, arg: str) -> bytes:
        match = _BDAT.fullmatch(arg)
        if match is None or int(match.group(1)) > MAX_CHUNK:
            self.closed = True  # the size of what follows is unknown: Postfix hangs up
            return self._error("syntax_bdat")
        self._state, self._chunk_left = CHUNK, int(match.group(1))
        self._chunk_last = bool(match.group(2))
        self._chunk_error = None
        if self._sender is None or not self._recipients:
            self._chunk_error = "data_without_mail" if self._sender is None else "no_recipients"
        return b""

    def _chunk_bytes(self, chunk: bytes) -> None:
        self._chunk_left -= len(chunk)
        if chunk and self._chunk_error is None:
            self._size += len(chunk)
            if len(self._message) < MESSAGE_KEEP:
                self._message += chunk[: MESSAGE_KEEP - len(self._message)]
            self._last_byte = chunk[-1:]

    def _chunk_done(self) -> bytes:
        self._state = COMMAND
        if self._chunk_error is not None:
            return self._error(self._chunk_error)
        self._bdat = True
        if not self._chunk_last:
            return self._reply("chunk", arg=str(self._size))
        ended = self._size + (0 if self._last_byte == b"\n" else 2)  # an unended last line gets CRLF
        return self._end_of_message(ended)

    # -- AUTH -----------------------------------------------------------------------------------------

    def _cmd_auth(self, arg: str) -> bytes:
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        self._command_event(f"AUTH {mechanism}")
        self._mechanism = mechanism
        if not self.server.auth:
            credentials = _plain(initial) if mechanism == "PLAIN" and initial else None
            if credentials is not None:  # they came anyway: keep them
                self._record_login(*credentials)
            return self._error("auth_disabled")
        if self._helo is None:
            return self._error("need_helo")
        if self._sender is not None:
            return self._error("auth_in_mail")
        if mechanism == "PLAIN":
            if initial:
                return self._auth_plain(initial)
            self._state = AUTH_PLAIN
            return b"334 \r\n"
        if mechanism == "LOGIN":
            if initial:
                return self._auth_step_user(initial)
            self._state = AUTH_USER
            return b"334 VXNlcm5hbWU6\r\n"  # "Username:"
        return self._error("auth_mechanism")

    def _auth_step(self, text: str) -> bytes:
        state, self._state = self._state, COMMAND
        if text == "*":
            return self._error("auth_aborted")
        if state == AUTH_PLAIN:
            return self._auth_plain(text)
        if state == AUTH_USER:
            return self._auth_step_user(text)
        password = _b64(text)
        if password is None:
            return self._error("auth_decode")
        return self._auth_failed(self._auth_user, _text(password))

    def _auth_step_user(self, text: str) -> bytes:
        user = _b64(text)
        if user is None:
            self._state = COMMAND
            return self._error("auth_decode")
        self._auth_user = _text(user)
        self._state = AUTH_PASSWORD
        return b"334 UGFzc3dvcmQ6\r\n"  # "Password:"

    def _auth_plain(self, text: str) -> bytes:
        credentials = _plain(text)
        if credentials is None:
            return self._error("auth_decode")
        return self._auth_failed(*credentials)

    def _auth_failed(self, user: str, password: str) -> bytes:
        self._record_login(user, password)
        return self._error("auth_failed")

    def _record_login(self, user: str, password: str) -> None:
        user, password = printable(user), printable(password)
        self.report(
            Kind.LOGIN,
            f"{user}:{password}",
            {"user": user, "password": password, "accepted": False, "mechanism": self._mechanism},
        )

    # -- DATA -----------------------------------------------------------------------------------------

    def _data_line(self, line: bytes) -> bytes:
        if self._line_start and line.rstrip(b"\r\n") == b".":
            return self._end_of_message()
        if self._line_start and line.startswith(b"."):
            line = line[1:]  # dot-stuffing (RFC 5321 4.5.2)
        self._data_bytes(line, complete=True)
        return b""

    def _data_bytes(self, chunk: bytes, *, complete: bool) -> None:
        self._size += len(chunk)
        if len(self._message) < MESSAGE_KEEP:
            self._message += chunk[: MESSAGE_KEEP - len(self._message)]
        self._line_start = complete

    def _end_of_message(self, chunked: int | None = None) -> bytes:
        """The message is complete (`chunked`: after BDAT LAST, the byte count Postfix reports)."""
        self._state = COMMAND
        message, size = bytes(self._message), self._size
        sender, recipients = self._sender or "", self._recipients
        self._reset()
        if size > MESSAGE_LIMIT:
            return self._error("too_big")
        queue_id = _queue_id(self.server.name, self.rng, self.host)
        self.report(
            Kind.MESSAGE,
            printable(f"{sender or '<>'} -> {', '.join(recipients)}"),
            {
                "from": sender,
                "to": recipients,
                "subject": _subject(message),
                "size": size,
                "id": queue_id,
                "helo": self._helo,
                "excerpt": excerpt(message),
            },
        )
        if chunked is not None:
            return self._reply("chunk_queued", arg=str(chunked), id=queue_id)
        return self._reply("queued", id=queue_id)


def _text(raw: bytes) -> str:
    # latin-1 keeps every byte; printable then escapes what is not printable ASCII, losing nothing.
    return raw.decode("latin-1")


def _bad_sender(address: str) -> tuple[str, str] | None:
    return ("bad_sender", "") if any(c.isspace() for c in address) else None


def _bad_recipient(address: str) -> bool:
    """What Postfix's address parser refuses as a recipient: nothing, blanks, an empty domain."""
    return not address or any(c.isspace() for c in address) or address.endswith("@")


def _plain(text: str) -> tuple[str, str] | None:
    """The user and password of a SASL PLAIN response; None when it is not base64."""
    decoded = _b64(text)
    if decoded is None:
        return None
    # authzid NUL authcid NUL password; a broken client may leave out the authzid.
    parts = decoded.split(b"\0")
    if len(parts) >= 3:
        user, password = parts[1], parts[2]
    else:
        user, password = parts[0], parts[1] if len(parts) == 2 else b""
    return _text(user), _text(password)


def _b64(text: str) -> bytes | None:
    """A base64 SASL response; None when it is not valid base64."""
    if text == "=":
        return b""  # RFC 4954: "=" is an empty response
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def make_handler(config: SmtpConfig | None = None) -> Handler:
    """The SMTP service with the deployment's choices (`SmtpConfig`)."""
    config = config or SmtpConfig()

    async def serve_smtp(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        identity = info.identity
        server = server_for(info)
        session = SmtpSession(
            server,
            identity.hostname,
            info.src,
            report,
            relay=config.relay,
            domains=local_domains(identity),
            # Exchange's recipients are directory users, not a passwd file: the base accounts.
            users=LOCAL_USERS if server.name == "microsoft" else local_users(identity),
        )
        await _serve(session, reader, writer)

    return serve_smtp


serve_smtp = make_handler()


async def _serve(session: SmtpSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    banner = session.greeting()
    try:
        if session.delay:
            await asyncio.sleep(session.delay)  # the server starts before it speaks
        writer.write(banner)
        await asyncio.wait_for(_converse(session, reader, writer), LIFETIME)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def _converse(session: SmtpSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await writer.drain()
    total = 0
    while not session.closed:
        try:
            data = await asyncio.wait_for(reader.read(65536), IDLE)
        except TimeoutError:
            writer.write(session.timeout())
            break
        if not data:
            break
        total += len(data)
        reply = session.feed(data)
        if session.delay:
            await asyncio.sleep(session.delay)
        if total > MAX_BYTES and not session.closed:
            reply += session.timeout()  # more than any message we accept: hang up
        writer.write(reply)
        await writer.drain()
    await writer.drain()


SERVICES = (Service(("smtp",), "tcp", serve_smtp),)
