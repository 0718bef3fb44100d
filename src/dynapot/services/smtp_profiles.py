"""Which mail server a host runs, in its own words: one `MailServer` row per product and version.

Postfix (as Debian and Ubuntu install it: recorded from Debian 12's Postfix 3.7 in the lab),
Exim, and Microsoft's IIS SMTP service, each with its banner, EHLO list in its order, reply texts
and the commands and checks it has. `server_for` picks the row for a connection from nmap -sV's
product on the real hosts, else the host's system (`profiles.choose`); another product or
version is another row. The protocol that speaks these words is `dynapot.services.smtp`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dynapot.services.contract import ConnectionInfo
from dynapot.services.profiles import Profile, choose

__all__ = ["MESSAGE_LIMIT", "SERVERS", "MailServer", "server_for"]

MESSAGE_LIMIT = 10_240_000  # the SIZE Postfix advertises (its default message_size_limit)


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
    # Postfix hangs up on HTTP requests and on lines not starting with a letter
    # (smtpd_forbidden_commands), and refuses lines that are not UTF-8 (it offers SMTPUTF8).
    forbid_http: bool = False
    auth: bool = True  # offers AUTH PLAIN LOGIN; else "authentication not enabled" (Postfix's default)
    commands: frozenset[str] = frozenset()  # further commands it knows: "etrn", "bdat", "xclient"
    check_users: bool = False  # refuses local recipients it has no account for (550 5.1.1)
    cut_long_lines: bool = False  # Postfix cuts an over-long command line; the others refuse it
    error_sleep: bool = False  # Postfix waits ERROR_SLEEP before replying past SOFT_ERROR_LIMIT errors
    strict: bool = False  # checks address syntax, MAIL's options and RSET's (lack of) arguments
    # Seconds (at least, at most) from the connection to the banner: the server's own start.
    # Postfix's is none: master hands the connection to an smtpd that is already waiting (0.2-0.45
    # ms after the SYN/ACK in the lab, less than the sensor's own path), except the first one after
    # smtpd's max_idle of 100 s, which waits for a new smtpd (9.7 ms, once in 20: not modelled).
    banner_delay: tuple[float, float] = (0.0, 0.0)


POSTFIX_REPLIES = {
    "mail": "250 2.1.0 Ok",
    "rcpt": "250 2.1.5 Ok",
    "data": "354 End data with <CR><LF>.<CR><LF>",
    "queued": "250 2.0.0 Ok: queued as {id}",
    "rset": "250 2.0.0 Ok",
    "noop": "250 2.0.0 Ok",
    "vrfy": "252 2.0.0 {arg}",
    "quit": "221 2.0.0 Bye",
    "unknown": "500 5.5.2 Error: command not recognized",
    "bad_syntax": "500 5.5.2 Error: bad syntax",
    "bad_utf8": "500 5.5.2 Error: bad UTF-8 syntax",
    "line_too_long": "500 5.5.2 Error: line too long",
    "need_helo": "503 5.5.1 Error: send HELO/EHLO first",
    "need_mail": "503 5.5.1 Error: need MAIL command",
    "need_rcpt": "503 5.5.1 Error: need RCPT command",
    "data_without_mail": "503 5.5.1 Error: need RCPT command",
    "nested_mail": "503 5.5.1 Error: nested MAIL command",
    "syntax_helo": "501 Syntax: HELO hostname",
    "syntax_ehlo": "501 Syntax: EHLO hostname",
    "syntax_mail": "501 5.5.4 Syntax: MAIL FROM:<address>",
    "syntax_rcpt": "501 5.5.4 Syntax: RCPT TO:<address>",
    "syntax_vrfy": "501 5.5.4 Syntax: VRFY address [SMTPUTF8]",
    "syntax_data": "501 5.5.4 Syntax: DATA",
    "syntax_rset": "501 5.5.4 Syntax: RSET",
    "bad_address": "501 5.1.3 Bad recipient address syntax",
    "bad_sender": "501 5.1.7 Bad sender address syntax",
    "bad_size": "501 5.5.4 Bad message size syntax",
    "bad_option": "555 5.5.4 Unsupported option: {arg}",
    "relay_denied": "454 4.7.1 <{arg}>: Relay access denied",
    "unknown_user": "550 5.1.1 <{arg}>: Recipient address rejected: User unknown in local recipient table",
    "no_recipients": "554 5.5.1 Error: no valid recipients",
    "auth_disabled": "503 5.5.1 Error: authentication not enabled",
    "etrn": "459 <{arg}>: service unavailable",
    "syntax_etrn": "500 Syntax: ETRN domain",
    "etrn_in_mail": "503 Error: MAIL transaction in progress",
    "syntax_bdat": "521 5.5.4 Syntax: BDAT count [LAST]",
    "data_after_bdat": "503 5.5.1 Error: DATA after BDAT",
    "chunk": "250 2.0.0 Ok: {arg} bytes",
    "chunk_queued": "250 2.0.0 Ok: {arg} bytes queued as {id}",
    "xclient": "550 5.7.0 Error: insufficient authorization",
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
    "relay_denied": "550 relay not permitted",
    "no_recipients": "503 valid RCPT command must precede DATA",
    "line_too_long": "500 Command line too long",
    "need_mail": "503 sender not yet given",
    "data_without_mail": "503 sender not yet given",
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
    "relay_denied": "550 5.7.1 Unable to relay",
    "no_recipients": "503 5.5.2 Need rcpt command",
    "line_too_long": "500 5.5.2 Line too long",
    "need_helo": "503 5.5.2 Send hello first",
    "need_mail": "503 5.5.2 Need mail command",
    "data_without_mail": "503 5.5.2 Need mail command",
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
    """Postfix 3.x as a distribution installs it (recorded: Debian 12's Postfix 3.7, main.cf as
    its postinst writes it for an "Internet site", without TLS certificates: no STARTTLS)."""
    return MailServer(
        "postfix",
        f"220 {{host}} ESMTP Postfix{comment}",
        (
            "250-{host}",
            "250-PIPELINING",
            f"250-SIZE {MESSAGE_LIMIT}",
            "250-VRFY",
            "250-ETRN",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250-SMTPUTF8",
            "250 CHUNKING",
        ),
        "250 {host}",
        POSTFIX_REPLIES,
        needs_helo=False,  # smtpd_helo_required = no
        forbid_http=True,
        auth=False,  # smtpd_sasl_auth_enable = no
        commands=frozenset({"etrn", "bdat", "xclient", "xforward"}),
        check_users=True,
        cut_long_lines=True,
        error_sleep=True,
        strict=True,
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
