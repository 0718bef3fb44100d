"""SMTP emulator: a mail server that takes every message and refuses every login.

`SmtpSession` is the protocol, sans-IO: `greeting()` and `feed(bytes) -> reply bytes`, with
`closed` set once the server hangs up. It speaks as Postfix (Linux, BSD: the default), Exim
or Microsoft's IIS SMTP service (Windows), chosen from the product nmap found on the real
hosts, else from the OS (`SERVERS`): banner, EHLO extensions, reply texts and queue ids all
match the imitated server. `serve_smtp` runs a session over an asyncio stream pair.

Spam runs and relay tests are what SMTP honeypots see most, so mail is accepted ("250
queued as ...") and kept as an excerpt; AUTH PLAIN and LOGIN are offered (without TLS,
like a misconfigured server) and always fail with 535. Reported events:
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
from dataclasses import dataclass, replace

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Report, Service, excerpt, printable
from dynapot.services.profiles import Profile, choose

MAX_LINE = 2048  # Postfix's line_length_limit
MAX_RECIPIENTS = 100
MESSAGE_LIMIT = 10_240_000  # the SIZE we advertise (Postfix's default message_size_limit)
MESSAGE_KEEP = 64 * 1024  # bytes of each message kept for the report
HARD_ERROR_LIMIT = 20  # Postfix's smtpd_hard_error_limit
MAX_REPORTED = 100  # command events per connection
MAX_BYTES = 32 * 1024 * 1024  # read from one connection in all
IDLE = 60.0
LIFETIME = 600.0

_MAIL = re.compile(r"FROM:\s*(?:<([^<>]*)>|(\S+))\s*(.*)", re.IGNORECASE)
_RCPT = re.compile(r"TO:\s*(?:<([^<>]*)>|(\S+))\s*(.*)", re.IGNORECASE)
_SIZE = re.compile(r"(?:^|\s)SIZE=(\d{1,20})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MailServer:
    """One mail server's words. Templates take {host}, {client}, {helo}, {arg}, {id}, {date}
    (and the banner {version}, filled in by `server_for`)."""

    name: str
    banner: str
    ehlo: tuple[str, ...]  # the EHLO reply lines; the first is the greeting line
    helo: str
    replies: dict[str, str]
    needs_helo: bool = True
    forbid_http: bool = False  # Postfix hangs up on HTTP requests (smtpd_forbidden_commands)


POSTFIX_REPLIES = {
    "mail": "250 2.1.0 Ok",
    "rcpt": "250 2.1.5 Ok",
    "data": "354 End data with <CR><LF>.<CR><LF>",
    "queued": "250 2.0.0 Ok: queued as {id}",
    "rset": "250 2.0.0 Ok",
    "noop": "250 2.0.0 Ok",
    "vrfy": "252 2.0.0 {arg}",
    "quit": "221 2.0.0 Bye",
    "unknown": "502 5.5.2 Error: command not recognized",
    "bad_syntax": "500 5.5.2 Error: bad syntax",
    "line_too_long": "500 5.5.2 Error: line too long",
    "need_helo": "503 5.5.1 Error: send HELO/EHLO first",
    "need_mail": "503 5.5.1 Error: need MAIL command",
    "need_rcpt": "503 5.5.1 Error: need RCPT command",
    "nested_mail": "503 5.5.1 Error: nested MAIL command",
    "syntax_helo": "501 Syntax: HELO hostname",
    "syntax_ehlo": "501 Syntax: EHLO hostname",
    "syntax_mail": "501 5.5.4 Syntax: MAIL FROM:<address>",
    "syntax_rcpt": "501 5.5.4 Syntax: RCPT TO:<address>",
    "syntax_vrfy": "501 5.5.4 Syntax: VRFY address",
    "syntax_data": "501 5.5.4 Syntax: DATA",
    "too_many_rcpt": "452 4.5.3 Error: too many recipients",
    "too_big": "552 5.3.4 Message size exceeds fixed limit",
    "auth_failed": "535 5.7.8 Error: authentication failed: authentication failure",
    "auth_mechanism": "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
    "auth_aborted": "501 5.7.0 Authentication aborted",
    "auth_decode": "501 5.5.2 Cannot decode response",
    "auth_in_mail": "503 5.5.1 Error: MAIL transaction in progress",
    "not_implemented": "502 5.5.1 Error: command not implemented",
    "too_many_errors": "421 4.7.0 {host} Error: too many errors",
    "timeout": "421 4.4.2 {host} Error: timeout exceeded",
    "http": "221 2.7.0 Error: I can break rules, too. Goodbye.",
}

EXIM_REPLIES = {
    **POSTFIX_REPLIES,
    "mail": "250 OK",
    "rcpt": "250 Accepted",
    "data": '354 Enter message, ending with "." on a line by itself',
    "queued": "250 OK id={id}",
    "rset": "250 Reset OK",
    "noop": "250 OK",
    "vrfy": "252 Administrative prohibition",
    "quit": "221 {host} closing connection",
    "unknown": "500 unrecognized command",
    "bad_syntax": "500 unrecognized command",
    "line_too_long": "500 Command line too long",
    "need_mail": "503 sender not yet given",
    "need_rcpt": "503 valid RCPT command must precede DATA",
    "nested_mail": "503 sender already given",
    "syntax_helo": "501 Syntactically invalid HELO argument(s)",
    "syntax_ehlo": "501 Syntactically invalid EHLO argument(s)",
    "syntax_mail": "501 MAIL must have an address operand",
    "syntax_rcpt": "501 RCPT must have an address operand",
    "syntax_vrfy": "501 VRFY must have an address argument",
    "syntax_data": "501 DATA must have no arguments",
    "too_many_rcpt": "452 too many recipients",
    "too_big": "552 Message size exceeds maximum permitted",
    "auth_failed": "535 Incorrect authentication data",
    "auth_mechanism": "504 Unsupported authentication mechanism",
    "auth_aborted": "501 Authentication cancelled",
    "auth_decode": "501 Invalid base64 data",
    "auth_in_mail": "503 AUTH command used when not advertised",
    "not_implemented": "500 unrecognized command",
    "too_many_errors": "421 {host} Too many syntax or protocol errors",
    "timeout": "421 {host} SMTP incoming data timeout - closing connection.",
}

MICROSOFT_REPLIES = {
    **POSTFIX_REPLIES,
    "mail": "250 2.1.0 {arg}....Sender OK",
    "rcpt": "250 2.1.5 {arg} ",
    "data": "354 Start mail input; end with <CRLF>.<CRLF>",
    "queued": "250 2.6.0 <{id}@{host}> Queued mail for delivery",
    "rset": "250 2.0.0 Resetting",
    "noop": "250 2.0.0 OK",
    "vrfy": "252 2.1.5 Cannot VRFY user, but will take message for <{arg}@{host}>",
    "quit": "221 2.0.0 {host} Service closing transmission channel",
    "unknown": "500 5.3.3 Unrecognized command",
    "bad_syntax": "500 5.3.3 Unrecognized command",
    "line_too_long": "500 5.5.2 Line too long",
    "need_helo": "503 5.5.2 Send hello first",
    "need_mail": "503 5.5.2 Need mail command",
    "need_rcpt": "503 5.5.2 Need rcpt command",
    "nested_mail": "503 5.5.2 Sender already specified",
    "syntax_helo": "501 5.5.4 Invalid Address",
    "syntax_ehlo": "501 5.5.4 Invalid Address",
    "syntax_mail": "501 5.5.4 Invalid Address",
    "syntax_rcpt": "501 5.5.4 Invalid Address",
    "syntax_vrfy": "501 5.5.4 Invalid Address",
    "syntax_data": "501 5.5.4 Invalid Address",
    "too_many_rcpt": "452 4.5.3 Too many recipients",
    "too_big": "552 5.3.4 Message size exceeds fixed maximum message size",
    "auth_failed": "535 5.7.3 Authentication unsuccessful",
    "auth_mechanism": "504 5.7.4 Unrecognized authentication type",
    "auth_aborted": "501 5.7.0 Authentication aborted",
    "auth_decode": "501 5.5.4 Invalid arguments",
    "auth_in_mail": "503 5.5.2 Send hello first",
    "not_implemented": "500 5.3.3 Unrecognized command",
    "too_many_errors": "421 4.7.0 Too many errors on this connection, closing transmission channel",
    "timeout": "421 4.4.2 {host} Connection dropped due to timeout",
}


def _exim(comment: str) -> MailServer:
    return MailServer(
        "exim",
        f"220 {{host}} ESMTP Exim {{version}}{comment} {{date}}",
        (
            "250-{host} Hello {helo} [{client}]",
            "250-SIZE 52428800",
            "250-8BITMIME",
            "250-PIPELINING",
            "250-AUTH PLAIN LOGIN",
            "250 HELP",
        ),
        "250 {host} Hello {helo} [{client}]",
        EXIM_REPLIES,
        needs_helo=False,
    )


MICROSOFT = MailServer(
    "microsoft",
    "220 {host} Microsoft ESMTP MAIL Service, Version: {version} ready at  {date}",
    (
        "250-{host} Hello [{client}]",
        "250-SIZE 2097152",
        "250-PIPELINING",
        "250-DSN",
        "250-ENHANCEDSTATUSCODES",
        "250-8bitmime",
        "250-VRFY",
        "250-AUTH LOGIN",
        "250-AUTH=LOGIN",
        "250 OK",
    ),
    "250 {host} Hello [{client}]",
    MICROSOFT_REPLIES,
)


def _postfix(comment: str) -> MailServer:
    return MailServer(
        "postfix",
        f"220 {{host}} ESMTP Postfix{comment}",
        (
            "250-{host}",
            "250-PIPELINING",
            f"250-SIZE {MESSAGE_LIMIT}",
            "250-VRFY",
            "250-AUTH PLAIN LOGIN",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250 SMTPUTF8",
        ),
        "250 {host}",
        POSTFIX_REPLIES,
        forbid_http=True,
    )


# nmap's product first, then the host's system: Microsoft's SMTP service on Windows, Postfix
# elsewhere (as Debian and Ubuntu build it, it names the distribution).
SERVERS: tuple[Profile[MailServer], ...] = (
    Profile(_exim(" Ubuntu"), "exim", default_version="4.95"),
    Profile(MICROSOFT, "microsoft"),
    Profile(MICROSOFT, "exchange"),
    Profile(_postfix(" (Ubuntu)"), "postfix", os="ubuntu"),
    Profile(_postfix(" (Debian/GNU)"), "postfix", os="debian"),
    Profile(_postfix(""), "postfix"),
    Profile(MICROSOFT, os="windows"),
    Profile(_postfix(" (Ubuntu)"), os="ubuntu"),
    Profile(_postfix(" (Debian/GNU)"), os="debian"),
    Profile(_postfix("")),
)
# What the Windows SMTP service (IIS's) of each release says in its banner.
_IIS_SMTP = {"xp": "6.0.2600.5512", "2003": "6.0.3790.3959", "vista": "7.0.6002.18264"}
_IIS_SMTP |= dict.fromkeys(("2008", "7", "2008r2"), "7.5.7601.17514")
_IIS_SMTP |= dict.fromkeys(("8", "8.1", "2012", "2012r2"), "8.5.9600.16384")
MICROSOFT_VERSIONS: tuple[Profile[str], ...] = (
    *(Profile(version, os=f"windows-{release}") for release, version in _IIS_SMTP.items()),
    Profile("10.0.17763.1"),
)


def server_for(info: ConnectionInfo) -> MailServer:
    """The mail server this host runs, its banner claiming nmap's version or the row's."""
    row = choose(SERVERS, info)
    version = row.version(info)
    if row.what is MICROSOFT and not version:
        version = choose(MICROSOFT_VERSIONS, info).what
    # A version never holds braces (`profiles.version_of`): the other fields stay templates.
    return replace(row.what, banner=row.what.banner.replace("{version}", version))


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
COMMAND, DATA, AUTH_PLAIN, AUTH_USER, AUTH_PASSWORD = range(5)


class SmtpSession:
    """One SMTP conversation, without IO: feed it what the client sent, send what it returns."""

    def __init__(
        self, server: MailServer, host: str, client: str, report: Report, rng: random.Random | None = None
    ) -> None:
        self.server = server
        self.host = host
        self.client = client
        self.report = report
        self.rng = rng or random.Random()  # queue ids: no secret
        self.closed = False
        self.errors = 0
        self._reported = 0
        self._buf = bytearray()
        self._skipping = False  # inside an over-long command line
        self._state = COMMAND
        self._helo: str | None = None
        self._sender: str | None = None
        self._recipients: list[str] = []
        self._message = bytearray()
        self._size = 0
        self._line_start = True  # the next DATA bytes begin a line (for "." and dot-stuffing)
        self._auth_user = ""
        self._mechanism = ""

    # -- IO-facing ------------------------------------------------------------------------------------

    def greeting(self) -> bytes:
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
        self._buf += data
        out: list[bytes] = []
        pos = 0  # lines are taken by position and the buffer cut once: no quadratic copying
        while not self.closed:
            end = self._buf.find(b"\n", pos)
            if end < 0:
                if len(self._buf) - pos > MAX_LINE:
                    if self._state == DATA:
                        self._data_bytes(bytes(self._buf[pos:]), complete=False)
                    else:
                        self._skipping = True
                    pos = len(self._buf)
                break
            line = bytes(self._buf[pos : end + 1])
            pos = end + 1
            if self._state == DATA:
                reply = self._data_line(line)
            elif self._skipping or len(line) > MAX_LINE + 2:
                self._skipping, self._state = False, COMMAND  # an AUTH dialogue ends here too
                reply = self._error("line_too_long")
            else:
                reply = self._line(line.rstrip(b"\r\n").decode("latin-1"))
            if reply:
                out.append(reply)
            if self.errors >= HARD_ERROR_LIMIT and not self.closed:
                self.closed = True
                out.append(self._fmt(self.server.replies["too_many_errors"]))
        del self._buf[:pos]
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

    # -- commands -------------------------------------------------------------------------------------

    def _line(self, text: str) -> bytes:
        if self._state in (AUTH_PLAIN, AUTH_USER, AUTH_PASSWORD):
            return self._auth_step(text.strip())
        verb, _, arg = text.strip().partition(" ")
        verb, arg = verb.upper(), arg.strip()
        if not verb:
            return self._error("bad_syntax")
        if self.server.forbid_http and (verb in ("GET", "POST", "CONNECT") or not verb[0].isalpha()):
            self.report(Kind.BAD_REQUEST, printable(text), None)
            self.closed = True
            return self._reply("http")
        if verb != "AUTH":
            self._command_event(text)
        known = verb.isascii() and verb.isalpha() and len(verb) < 10
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
        size = _SIZE.search(match.group(3))
        if size and int(size.group(1)) > MESSAGE_LIMIT:
            return self._error("too_big")
        self._sender = printable(match.group(1) if match.group(1) is not None else match.group(2))
        return self._reply("mail", arg=self._sender or "<>")

    def _cmd_rcpt(self, arg: str) -> bytes:
        if self._sender is None:
            return self._error("need_mail")
        match = _RCPT.fullmatch(arg)
        address = match and (match.group(1) if match.group(1) is not None else match.group(2))
        if not address:
            return self._error("syntax_rcpt")
        if len(self._recipients) >= MAX_RECIPIENTS:
            return self._error("too_many_rcpt")
        self._recipients.append(printable(address))
        return self._reply("rcpt", arg=self._recipients[-1])

    def _cmd_data(self, arg: str) -> bytes:
        if arg:
            return self._error("syntax_data")
        if self._sender is None:
            return self._error("need_mail")
        if not self._recipients:
            return self._error("need_rcpt")
        self._state = DATA
        self._line_start = True
        return self._reply("data")

    def _cmd_rset(self, arg: str) -> bytes:
        self._reset()
        return self._reply("rset")

    def _cmd_noop(self, arg: str) -> bytes:
        return self._reply("noop")

    def _cmd_vrfy(self, arg: str) -> bytes:
        if not arg:
            return self._error("syntax_vrfy")
        return self._reply("vrfy", arg=printable(arg))

    def _cmd_quit(self, arg: str) -> bytes:
        self.closed = True
        return self._reply("quit")

    def _cmd_starttls(self, arg: str) -> bytes:
        return self._error("not_implemented")  # not offered: no TLS on this server

    # -- AUTH -----------------------------------------------------------------------------------------

    def _cmd_auth(self, arg: str) -> bytes:
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        self._command_event(f"AUTH {mechanism}")
        if self._helo is None:
            return self._error("need_helo")
        if self._sender is not None:
            return self._error("auth_in_mail")
        self._mechanism = mechanism
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
        decoded = _b64(text)
        if decoded is None:
            return self._error("auth_decode")
        # authzid NUL authcid NUL password; a broken client may leave out the authzid.
        parts = decoded.split(b"\0")
        if len(parts) >= 3:
            user, password = parts[1], parts[2]
        else:
            user, password = parts[0], parts[1] if len(parts) == 2 else b""
        return self._auth_failed(_text(user), _text(password))

    def _auth_failed(self, user: str, password: str) -> bytes:
        user, password = printable(user), printable(password)
        self.report(
            Kind.LOGIN,
            f"{user}:{password}",
            {"user": user, "password": password, "accepted": False, "mechanism": self._mechanism},
        )
        return self._error("auth_failed")

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

    def _end_of_message(self) -> bytes:
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
        return self._reply("queued", id=queue_id)


def _text(raw: bytes) -> str:
    # latin-1 keeps every byte; printable then escapes what is not printable ASCII, losing nothing.
    return raw.decode("latin-1")


def _b64(text: str) -> bytes | None:
    """A base64 SASL response; None when it is not valid base64."""
    if text == "=":
        return b""  # RFC 4954: "=" is an empty response
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


async def serve_smtp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    session = SmtpSession(server_for(info), info.identity.hostname, info.src, report)
    writer.write(session.greeting())
    try:
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
        if total > MAX_BYTES and not session.closed:
            reply += session.timeout()  # more than any message we accept: hang up
        writer.write(reply)
        await writer.drain()
    await writer.drain()


SERVICES = (Service(("smtp",), "tcp", serve_smtp),)
