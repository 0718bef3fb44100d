"""The SMTP emulator: smtplib and nmap over loopback, and the sans-IO session fed byte by byte."""

from __future__ import annotations

import re
import smtplib
import socket
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import ServiceServer, needs_nmap, nmap_service_scan

from dynapot.services import http, smtp
from dynapot.services.contract import ConnectionInfo
from dynapot.services.identity import identity_for
from dynapot.services.machine import machine_for
from dynapot.services.shell import FakeShell
from dynapot.services.smtp import (
    HARD_ERROR_LIMIT,
    LOCAL_USERS,
    MAX_LINE,
    SOFT_ERROR_LIMIT,
    SmtpConfig,
    SmtpSession,
    local_domains,
    local_users,
    make_handler,
    serve_smtp,
    server_for,
)

pytestmark = pytest.mark.timeout(30)


def info(personality: str | None = "Linux 5.4", product: str | None = None, version: str | None = None):
    return ConnectionInfo("tcp", "127.0.0.1", 40000, "198.18.0.40", 25, personality, "t", product, version)


@pytest.fixture
def postfix():
    with ServiceServer(serve_smtp, info()) as s:
        yield s


# -- a real client --------------------------------------------------------------------------------------


def test_banner_and_ehlo_look_like_postfix(postfix):
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=5) as client:
        code, _ = client.ehlo("attacker.example")
        assert code == 250
        assert client.has_extn("pipelining") and client.has_extn("8bitmime")
        assert client.esmtp_features["size"] == str(smtp.MESSAGE_LIMIT)
        assert client.has_extn("chunking") and client.has_extn("etrn") and client.has_extn("smtputf8")
        assert not client.has_extn("auth")  # smtpd_sasl_auth_enable = no
        assert not client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls()
    with socket.create_connection(("127.0.0.1", postfix.port), timeout=5) as raw:
        greeting = raw.recv(1024)
    assert re.fullmatch(rb"220 srv-[0-9a-f]{4} ESMTP Postfix \(Ubuntu\)\r\n", greeting)


def test_login_attempts_are_recorded_and_refused():
    with ServiceServer(serve_smtp, info(product="Exim smtpd")) as exim:  # Exim offers AUTH
        with smtplib.SMTP("127.0.0.1", exim.port, timeout=5) as client:
            client.ehlo("x")
            with pytest.raises(smtplib.SMTPAuthenticationError) as error:
                client.login("webmaster", "s3cret!")
            assert error.value.smtp_code == 535
        logins = exim.kinds("login")
    # smtplib tries every offered mechanism in turn: both attempts are recorded.
    assert [r[2]["mechanism"] for r in logins] == ["PLAIN", "LOGIN"]
    for record in logins:
        assert record[1] == "webmaster:s3cret!"
        assert record[2] | {"mechanism": None} == {
            "user": "webmaster",
            "password": "s3cret!",
            "accepted": False,
            "mechanism": None,
        }


def test_postfix_refuses_auth_but_keeps_the_credentials_it_was_sent():
    s, reports = session()
    assert (
        replies(s.feed(b"AUTH PLAIN AGFkbWluAGFkbWlu\r\nAUTH LOGIN\r\n"))
        == ["503 5.5.1 Error: authentication not enabled"] * 2
    )
    assert [r[1] for r in reports if r[0] == "login"] == ["admin:admin"]


def test_mail_for_local_users_is_accepted_and_kept(postfix):
    message = (
        b"From: a@spam.example\r\nSubject: You have\r\n won!\r\n\r\n"
        b".leading dot\r\nclick http://x.example/\r\n" + b"x" * 200_000 + b"\r\n"
    )
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=5) as client:
        client.ehlo("spammer")
        host = info().identity.hostname
        refused = client.sendmail("a@spam.example", ["root", f"www-data@{host}", "v2@corp.example"], message)
        assert refused == {"v2@corp.example": (454, b"4.7.1 <v2@corp.example>: Relay access denied")}
        assert client.noop()[0] == 250
    event = postfix.kinds("message")[0]
    data = event[2]
    assert event[1] == f"a@spam.example -> root, www-data@{host}"
    assert data["from"] == "a@spam.example" and data["to"] == ["root", f"www-data@{host}"]
    assert data["subject"] == "You have won!" and data["helo"] == "spammer"
    assert data["size"] == len(message) and re.fullmatch(r"[0-9A-F]{11}", data["id"])
    assert (
        data["excerpt"].startswith("From: a@spam.example\\r\\n") and "\\r\\n.leading dot" in data["excerpt"]
    )
    assert len(data["excerpt"]) < 20_000
    commands = [r[1] for r in postfix.kinds("command")]
    assert commands[:2] == ["ehlo spammer", f"mail FROM:<a@spam.example> size={len(message)}"]


@pytest.mark.parametrize(
    ("personality", "product", "version", "banner"),
    [
        (
            "Microsoft Windows 7 SP1",
            None,
            None,
            rb"220 HOST Microsoft ESMTP MAIL Service, Version: 7\.5\.7601\.17514 ready at  "
            rb"\w{3}, \d\d \w{3} \d{4} [\d:]{8} \+0000\r\n",
        ),
        ("Linux 4.15", "Exim smtpd", "4.96", rb"220 HOST ESMTP Exim 4\.96 Ubuntu \w{3}, .*\r\n"),
        ("FreeBSD 13.1", None, None, rb"220 HOST ESMTP Postfix\r\n"),
        ("Linux 3.10", None, None, rb"220 HOST ESMTP Postfix\r\n"),  # CentOS's own Postfix
    ],
)
def test_other_servers(personality, product, version, banner):
    conn = info(personality, product, version)
    banner = banner.replace(b"HOST", re.escape(conn.identity.hostname).encode())
    s = ServiceServer(make_handler(SmtpConfig(relay=True)), conn)
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            assert re.fullmatch(banner, raw.recv(1024))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as client:
            client.ehlo("x")
            if client.has_extn("auth"):
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login("admin", "admin")
            # An open relay (SmtpConfig.relay): a remote recipient is taken.
            assert client.sendmail("a@b.example", ["c@d.example"], b"Subject: t\r\n\r\nhi\r\n") == {}
    finally:
        s.close()
    assert s.kinds("message")[0][2]["subject"] == "t"
    assert bool(s.kinds("login")) == (personality.startswith("Microsoft") or product is not None)


def test_idle_client_gets_421(monkeypatch):
    monkeypatch.setattr(smtp, "IDLE", 0.3)
    s = ServiceServer(serve_smtp, info())
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            raw.recv(1024)
            raw.sendall(b"EHLO slow")  # slowloris: never a line end
            data = b""
            while chunk := raw.recv(1024):
                data += chunk
    finally:
        s.close()
    assert data.endswith(b"421 4.4.2 " + info().identity.hostname.encode() + b" Error: timeout exceeded\r\n")


@needs_nmap
def test_nmap_names_the_servers():
    with (
        ServiceServer(serve_smtp, info()) as postfix,
        ServiceServer(serve_smtp, info("Microsoft Windows Server 2008 R2")) as iis,
        ServiceServer(serve_smtp, info(product="Exim smtpd", version="4.96")) as exim,
    ):
        lines = nmap_service_scan([postfix.port, iis.port, exim.port]).ports
    assert "smtp" in lines[postfix.port] and "Postfix smtpd" in lines[postfix.port]
    assert "Microsoft ESMTP 7.5.7601.17514" in lines[iis.port]
    assert "Exim smtpd 4.96" in lines[exim.port]


# -- the session, without IO ----------------------------------------------------------------------------


def session(personality: str | None = "Linux 5.4", relay: bool = False) -> tuple[SmtpSession, list[tuple]]:
    reports: list[tuple] = []
    conn = info(personality)
    s = SmtpSession(
        server_for(conn),
        conn.identity.hostname,
        conn.src,
        lambda *r: reports.append(r),
        relay=relay,
        domains=local_domains(conn.identity),
    )
    return s, reports


def replies(output: bytes) -> list[str]:
    return output.decode().split("\r\n")[:-1]


def test_inventory_strings_cannot_break_the_banner():
    conn = info(product="Exim smtpd", version="4.9{x} }{date")
    s = SmtpSession(server_for(conn), conn.identity.hostname, conn.src, lambda *r: None)
    assert s.greeting().startswith(
        f"220 {s.host} ESMTP Exim 4.95 Ubuntu ".encode()
    )  # not a version: not echoed


def test_host_name_is_the_web_servers():
    # An attacker who reads both sees one host, under one name.
    with ServiceServer(http.serve_http, info()) as web, ServiceServer(serve_smtp, info()) as mail:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(f"http://127.0.0.1:{web.port}/", timeout=5) as response:
            page = response.read().decode()
        with mail.connect() as raw:
            name = raw.recv(1024).decode().split()[1]
    assert name == info().identity.hostname
    assert re.fullmatch(r"srv-[0-9a-f]{4}", name)
    assert f"<p>{name}</p>" in page


PIPELINED = (
    b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n"
    b"Subject: hi\r\n\r\n..x\r\n.\r\nRSET\r\nNOOP\r\nVRFY root\r\nQUIT\r\nNOOP\r\n"
)


def test_pipelined_whole_or_byte_by_byte():
    whole, reports = session()
    out_whole = whole.feed(PIPELINED)
    drip, drip_reports = session()
    out_drip = b"".join(drip.feed(PIPELINED[i : i + 1]) for i in range(len(PIPELINED)))
    assert replies(out_whole)[:5] == [
        "250 " + whole.host,
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as [0-9A-F]{11}", replies(out_whole)[5])
    assert replies(out_whole)[6:] == ["250 2.0.0 Ok", "250 2.0.0 Ok", "252 2.0.0 root", "221 2.0.0 Bye"]
    assert whole.closed and drip.closed
    # Queue ids are random; everything else is the same whichever way the bytes arrive.
    assert replies(out_drip)[:5] == replies(out_whole)[:5] and replies(out_drip)[6:] == replies(out_whole)[6:]
    message = next(r for r in reports if r[0] == "message")
    assert message[2]["excerpt"] == "Subject: hi\\r\\n\\r\\n.x\\r\\n"
    assert message[2]["to"] == ["root", "postmaster@localhost"]
    assert [r[0] for r in drip_reports] == [r[0] for r in reports]


# Each answer as Debian 12's Postfix 3.7 gave it, in the lab (bench/realism_probes.py and by hand).
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"MAIL FROM:<a@b>\r\n", "250 2.1.0 Ok"),  # smtpd_helo_required = no
        (b"EHLO x\r\nRCPT TO:<a@b>\r\n", "503 5.5.1 Error: need MAIL command"),
        (b"DATA\r\n", "503 5.5.1 Error: need RCPT command"),
        (b"EHLO x\r\nMAIL FROM:<a@b>\r\nDATA x\r\n", "554 5.5.1 Error: no valid recipients"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nDATA x\r\n", "501 5.5.4 Syntax: DATA"),
        (b"EHLO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n", "503 5.5.1 Error: nested MAIL command"),
        (b"EHLO x\r\nMAIL FROM:a@b SIZE=999999999\r\n", "552 5.3.4 Message size exceeds fixed limit"),
        # Postfix keeps the SIZE of a refused MAIL until RSET.
        (
            b"MAIL FROM:a@b SIZE=999999999\r\nMAIL FROM:<c@d>\r\n",
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        (b"MAIL FROM:a@b SIZE=999999999\r\nRSET\r\nMAIL FROM:<c@d>\r\n", "250 2.1.0 Ok"),
        (b"MAIL FROM: a@@example\r\n", "250 2.1.0 Ok"),
        (b"MAIL FROM:<a b>\r\n", "501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<a@b> FOO=bar\r\n", "555 5.5.4 Unsupported option: FOO=bar"),
        (b"MAIL FROM:<a@b> SIZE=x\r\n", "501 5.5.4 Bad message size syntax"),
        (b"MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8\r\n", "250 2.1.0 Ok"),
        (b"EHLO x\r\nMAIL TO:<a@b>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:\r\n", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<>\r\n", "501 5.1.3 Bad recipient address syntax"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO: b@@\r\n", "501 5.1.3 Bad recipient address syntax"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<b@example.org>\r\n", "454 4.7.1 <b@example.org>: Relay access denied"),
        (
            b"MAIL FROM:<a@b>\r\nRCPT TO:<root@localhost.localdomain>\r\n",
            "454 4.7.1 <root@localhost.localdomain>: Relay access denied",
        ),
        (
            b"MAIL FROM:<a@b>\r\nRCPT TO:<nosuchuser>\r\n",
            "550 5.1.1 <nosuchuser>: Recipient address rejected: User unknown in local recipient table",
        ),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<Root+tag@localhost>\r\n", "250 2.1.5 Ok"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<Postmaster>\r\n", "250 2.1.5 Ok"),
        (b"VRFY root SMTPUTF8\r\n", "252 2.0.0 root"),
        (b"VRFY <www-data>\r\n", "252 2.0.0 <www-data>"),
        (b"VRFY\r\n", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),
        (b"VRFY a b\r\n", "501 5.1.3 Bad recipient address syntax"),
        (b"VRFY x@example.org\r\n", "454 4.7.1 <x@example.org>: Relay access denied"),
        (b"HELO\r\n", "501 Syntax: HELO hostname"),
        (b"HELO a b\r\n", "250 {host}"),
        (b"XYZZY\r\n", "500 5.5.2 Error: command not recognized"),
        (b"EXPN root\r\n", "500 5.5.2 Error: command not recognized"),
        (b"HELP\r\n", "500 5.5.2 Error: command not recognized"),
        (b"NO\x00OP\r\n", "500 5.5.2 Error: command not recognized"),
        (b"NOOP\tx\r\n", "250 2.0.0 Ok"),
        (b"RSET x\r\n", "501 5.5.4 Syntax: RSET"),
        (b"STARTTLS\r\n", "502 5.5.1 Error: command not implemented"),
        (b"ETRN\r\n", "500 Syntax: ETRN domain"),
        (b"ETRN #example.com\r\n", "459 <example.com>: service unavailable"),
        (b"MAIL FROM:<a@b>\r\nETRN example.com\r\n", "503 Error: MAIL transaction in progress"),
        (b"XCLIENT NAME=x\r\n", "550 5.7.0 Error: insufficient authorization"),
        (b"\r\n", "500 5.5.2 Error: bad syntax"),
        (b"\x01\x02garbage\x9f\r\n", "500 5.5.2 Error: bad UTF-8 syntax"),
        (b"AUTH LOGIN\r\n", "503 5.5.1 Error: authentication not enabled"),
        # An over-long line is cut at line_length_limit, the rest skipped: the head is the command.
        (b"NOOP " + b"a" * 5000 + b"\r\n", "250 2.0.0 Ok"),
        (b"EHLO " + b"b" * (MAX_LINE + 10) + b"\r\nMAIL FROM:<a@b>\r\n", "250 2.1.0 Ok"),
    ],
)
def test_errors(lines, expected):
    s, _ = session()
    assert replies(s.feed(lines))[-1] == expected.format(host=s.host) and not s.closed


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nBDAT 5 LAST\r\nhello", "250 2.0.0 Ok: 7 bytes queued as *"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nbdat 4 last\r\nab\r\n", "250 2.0.0 Ok: 4 bytes queued as *"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nBDAT 3\r\nabc", "250 2.0.0 Ok: 3 bytes"),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nBDAT 3\r\nabcDATA\r\n", "503 5.5.1 Error: DATA after BDAT"),
        (b"BDAT 5\r\nhelloNOOP\r\n", "250 2.0.0 Ok"),  # refused ("need RCPT"), its bytes skipped
        (b"MAIL FROM:<a@b>\r\nBDAT 3 LAST\r\nabc", "554 5.5.1 Error: no valid recipients"),
    ],
)
def test_bdat(lines, expected):
    s, _ = session()
    last = replies(s.feed(lines))[-1]
    assert last == expected if not expected.endswith("*") else re.fullmatch(r"[^*]+[0-9A-F]{11}", last)
    assert last.startswith(expected.rstrip("*")) and not s.closed


def test_bdat_message_is_recorded_and_bad_bdat_hangs_up():
    s, reports = session()
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nBDAT 12\r\nSubject: hi\r")
    s.feed(b"BDAT 7 LAST\r\n\n\r\nbody")
    message = next(r for r in reports if r[0] == "message")
    assert message[2]["subject"] == "hi" and message[2]["size"] == 19
    assert replies(s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nBDAT 3 LAST x\r\n")) == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "521 5.5.4 Syntax: BDAT count [LAST]",
    ]
    assert s.closed


def test_relay_is_an_option():
    s, _ = session(relay=True)
    out = replies(s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<v@corp.example>\r\nRCPT TO:<nosuchuser>\r\n"))
    assert out == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",  # relayed
        "550 5.1.1 <nosuchuser>: Recipient address rejected: User unknown in local recipient table",
    ]


def test_local_users_follow_the_hosts_system():
    ubuntu = info().identity
    assert ubuntu.distribution.id == "ubuntu"
    assert "root" in local_users(ubuntu) and "ubuntu" in local_users(ubuntu)
    debian = identity_for("198.18.0.41", "Linux 5.4", hint="OpenSSH 9.2p1 Debian 2+deb12u3")
    assert debian.distribution.id == "debian" and "ubuntu" not in local_users(debian)


def test_the_mail_server_knows_the_users_the_shell_shows():
    # One machine: whom VRFY and RCPT know is who /etc/passwd lists, its admin user included.
    identity = identity_for("198.18.0.42", "Linux 5.4", hint="OpenSSH 9.2p1 Debian 2+deb12u3 Postfix")
    passwd = FakeShell(identity, "root").execute("cat /etc/passwd")
    names = {line.split(":")[0] for line in passwd.splitlines() if ":" in line}
    assert local_users(identity) == names
    admin = machine_for(identity).admin.name
    assert admin in local_users(identity) and admin not in LOCAL_USERS  # a drawn name, not a base account


def test_local_domains_are_the_hosts_names():
    conn = info()
    assert local_domains(conn.identity) >= {
        conn.identity.hostname.lower(),
        f"{conn.identity.hostname.lower()}.localdomain",
        "localhost",
    }
    assert "localhost.localdomain" not in local_domains(conn.identity)


def test_non_letter_command_makes_postfix_hang_up():
    s, reports = session()
    assert replies(s.feed(b"\x16\x03\x01\x00\x05hello\r\n")) == [
        "221 2.7.0 Error: I can break rules, too. Goodbye."
    ]
    assert s.closed and reports[0][0] == "bad-request"


def test_http_request_makes_postfix_hang_up():
    s, reports = session()
    assert replies(s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == [
        "221 2.7.0 Error: I can break rules, too. Goodbye."
    ]
    assert s.closed and reports[0][:2] == ("bad-request", "GET / HTTP/1.1")
    assert s.feed(b"EHLO x\r\n") == b""


def test_too_many_errors_closes_and_past_the_soft_limit_postfix_slows_down():
    s, _ = session()
    delays = []
    out: list[str] = []
    for _ in range(HARD_ERROR_LIMIT + 5):
        out += replies(s.feed(b"BOGUS\r\n"))
        delays.append(s.delay)
    assert len(out) == HARD_ERROR_LIMIT + 1 and s.closed
    assert out[-1] == f"421 4.7.0 {s.host} Error: too many errors"
    assert delays[:SOFT_ERROR_LIMIT] == [0.0] * SOFT_ERROR_LIMIT
    assert delays[SOFT_ERROR_LIMIT] == smtp.ERROR_SLEEP


def test_auth_plain_with_initial_response_and_login_dialogue():
    s, reports = session(personality="Microsoft Windows Server 2012")
    s.feed(b"EHLO x\r\n")
    assert s.feed(b"AUTH PLAIN AGFkbWluAHBhc3N3b3Jk\r\n").startswith(b"535 ")
    assert s.feed(b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"
    assert s.feed(b"cm9vdA==\r\n") == b"334 UGFzc3dvcmQ6\r\n"
    assert s.feed(b"dG9vcgo=\r\n").startswith(b"535 ")
    logins = [r for r in reports if r[0] == "login"]
    assert [r[1] for r in logins] == ["admin:password", "root:toor\\n"]  # control characters escaped


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"EHLO x\r\nAUTH CRAM-MD5\r\n", "504 5.7.4 Unrecognized authentication type"),
        (b"EHLO x\r\nAUTH LOGIN\r\n!!!\r\n", "501 5.5.4 Invalid arguments"),
        (b"EHLO x\r\nAUTH PLAIN\r\n*\r\n", "501 5.7.0 Authentication aborted"),
        (b"AUTH PLAIN AGEAYg==\r\n", "503 5.5.2 Send hello first"),
        (b"X" * (MAX_LINE + 10) + b"\r\n", "500 5.5.2 Line too long"),  # only Postfix cuts and goes on
    ],
)
def test_auth_and_line_errors_of_a_server_that_offers_auth(lines, expected):
    s, _ = session("Microsoft Windows Server 2012")
    assert replies(s.feed(lines))[-1] == expected and not s.closed


def test_windows_replies():
    s, _ = session("Microsoft Windows Server 2012")
    out = replies(
        s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<administrator>\r\nFOO\r\nQUIT\r\n")
    )
    assert out[0] == f"250-{s.host} Hello [127.0.0.1]" and "250-AUTH LOGIN" in out
    assert out[-5:] == [
        "250 2.1.0 a@b....Sender OK",
        "550 5.7.1 Unable to relay",
        "250 2.1.5 administrator ",
        "500 5.3.3 Unrecognized command",
        f"221 2.0.0 {s.host} Service closing transmission channel",
    ]


def test_oversized_message_is_refused_after_data(monkeypatch):
    monkeypatch.setattr(smtp, "MESSAGE_LIMIT", 1000)
    s, reports = session()
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root>\r\nDATA\r\n")
    out = s.feed(b"y" * 5000 + b"\r\n" + b"z" * 10 + b"\r\n.\r\n")
    assert replies(out) == ["552 5.3.4 Message size exceeds fixed limit"]
    assert not any(r[0] == "message" for r in reports)
    assert replies(s.feed(b"MAIL FROM:<a@b>\r\n")) == ["250 2.1.0 Ok"]  # the transaction was reset


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_garbage_never_raises(chunks):
    s, _ = session()
    s.greeting()
    for chunk in chunks:
        assert isinstance(s.feed(chunk), bytes)
    assert len(s._buf) <= MAX_LINE + 200


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"EHLO a",
                b"HELO b",
                b"MAIL FROM:<x@y>",
                b"RCPT TO:<z@w>",
                b"DATA",
                b".",
                b"RSET",
                b"AUTH LOGIN",
                b"AUTH PLAIN",
                b"BDAT 3",
                b"BDAT 0 LAST",
                b"ETRN x",
                b"dXNlcg==",
                b"*",
                b"=",
                b"QUIT",
                b"NOOP",
                b"VRFY",
                b"",
                b"\x00\xff",
            ]
        ),
        max_size=40,
    )
)
def test_command_soup_never_raises(lines):
    s, _ = session()
    for line in lines:
        assert isinstance(s.feed(line + b"\r\n"), bytes)
