"""Services take the imitated daemon's own time, as recorded, and cut their greetings as it does.

Sans-IO: the pauses are actions the sessions return (`Reply.delay`, `SmtpSession.delay`,
telnet's `Output.writes`), never sleeps; the IO edges apply them. The sensor's TCP sends each
write as a segment of its own, so the session's writes are the segments on the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket

from test_netstack_helpers import Client, make_host

from dynapot.netstack.tcp import DataReceived
from dynapot.services import ftp, smtp, smtp_profiles, ssh, ssh_profiles, telnet
from dynapot.services.contract import ConnectionInfo
from dynapot.services.telnet_busybox import OPENING

TRIES = 200


def _info(port: int, product: str | None, version: str | None = None) -> ConnectionInfo:
    return ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.70", port, "Linux 5.4", "t", product, version)


def test_vsftpd_greets_after_its_recorded_start() -> None:
    info = _info(21, "vsftpd", "3.0.3")
    low, high = ftp.greeting_for(info)[0].banner_delay
    assert 0 < low < high < 0.05  # milliseconds: a fork, not a lookup
    delays = [ftp.FtpSession(info).greeting().delay for _ in range(TRIES)]
    assert all(low <= d <= high for d in delays) and len(set(delays)) > TRIES // 2
    fixed = ftp.FtpSession(info, ftp.FtpConfig(banner_delay=(0.0, 0.0))).greeting()
    assert fixed.delay == 0.0 and fixed.lines == ["220 (vsFTPd 3.0.3)"]


def test_smtp_banner_waits_for_the_servers_start_when_it_has_one() -> None:
    postfix = smtp_profiles.server_for(_info(25, "Postfix smtpd"))
    session = smtp.SmtpSession(postfix, "mail", "198.18.0.3", lambda *a: None)
    assert (
        session.greeting().startswith(b"220 mail ESMTP Postfix") and session.delay == 0.0
    )  # smtpd waits ready
    slow = dataclasses.replace(postfix, banner_delay=(0.01, 0.02))
    for _ in range(TRIES):
        session = smtp.SmtpSession(slow, "mail", "198.18.0.3", lambda *a: None)
        session.greeting()
        assert 0.01 <= session.delay <= 0.02
    assert session.feed(b"NOOP\r\n") == b"250 2.0.0 Ok\r\n" and session.delay == 0.0  # only the banner


def test_sshd_identification_delay_as_recorded() -> None:
    profile = ssh_profiles.profile_for("OpenSSH_9.2p1 Debian-2+deb12u10")
    assert profile is not None
    low, high = ssh.banner_delay(ssh.SSHConfig(), profile)
    assert 0 < low < high < 0.1


def _busybox() -> telnet.TelnetSession:
    return telnet.TelnetSession(_info(23, None), telnet.TelnetConfig(fail_delay=0))


def test_busybox_issue_and_prompt_in_writes_of_their_own() -> None:
    server = telnet.telnetd_for(_info(23, None))
    assert server.kind == "busybox"
    (gap_low, gap_high), (low, high) = server.opening_gap, server.prompt_gap
    assert 0 < gap_low < gap_high < 0.01 and 0 < low < high < 0.01  # milliseconds, as recorded
    shapes = []
    for _ in range(TRIES):
        session = _busybox()
        out = session.start()
        writes = out.writes
        issue = b"\r\r\n" + session.info.identity.issue_net().replace("\n", "\r\n\r").encode()
        prompt = session.hostname.encode() + b" login: "
        assert out.data == OPENING + issue + prompt and writes[0] == (0.0, OPENING)  # the requests at once
        if len(writes) == 3:  # the requests, the issue, the prompt: three segments, mostly
            assert [w[1] for w in writes] == [OPENING, issue, prompt]
            assert gap_low <= writes[1][0] <= gap_high and low <= writes[2][0] <= high
        else:  # the prompt in the issue's segment, now and then
            assert [w[1] for w in writes] == [OPENING, issue + prompt]
            assert gap_low <= writes[1][0] <= gap_high
        shapes.append(len(writes))
    assert shapes.count(3) > shapes.count(2) > 0


def test_busybox_failed_login_waits_pams_delay() -> None:
    session = telnet.TelnetSession(_info(23, None))
    session.start()
    session.receive(b"root\r\n")
    out = session.receive(b"wrong\r\n")
    server = session.server
    jitter = server.fail_jitter
    assert server.fail_delay * (1 - jitter) <= out.delay <= server.fail_delay * (1 + jitter)
    assert b"Login incorrect" in out.later and b"Login incorrect" not in out.send


def test_output_pauses_keep_their_order() -> None:
    out = telnet.Output()
    out.add(b"a")
    out.pause(0.5)
    out.add(b"b")
    out.pause(0.25)
    out.pause(0.25)
    out.add(b"c")
    out.pause(1.0)  # a pause before nothing sends nothing
    assert out.writes == [(0.0, b"a"), (0.5, b"b"), (0.5, b"c")]
    assert out.data == b"abc"


def test_the_telnet_edge_writes_each_piece_apart() -> None:
    """Over a kernel socket: the issue and the prompt leave as two writes, with the pause between
    (the event loop reads the first while the edge waits, so the reader gets them apart)."""

    async def run() -> list[bytes]:
        seen: list[bytes] = []
        ours, theirs = socket.socketpair()
        _, writer = await asyncio.open_connection(sock=ours)
        peer_reader, peer_writer = await asyncio.open_connection(sock=theirs)
        out = telnet.Output(send=b"issue")
        out.pause(0.05)
        out.add(b"prompt")
        task = asyncio.ensure_future(telnet._emit(writer, out, lambda *a: None, 5.0))
        while len(b"".join(seen)) < len(b"issueprompt"):
            seen.append(await peer_reader.read(100))
        await task
        writer.close()
        peer_writer.close()
        return seen

    assert asyncio.run(run()) == [b"issue", b"prompt"]


def test_the_sensors_tcp_sends_each_write_as_its_own_segment() -> None:
    client = Client(make_host(23), 23)
    client.connect()
    segments = client.app(lambda conn: conn.send(b"\r\r\nDebian GNU/Linux 12\r\n\r", client.now))
    segments += client.app(lambda conn: conn.send(b"srv login: ", client.now))
    payloads = [bytes(s.payload.payload) for s in segments if bytes(s.payload.payload)]
    assert payloads == [b"\r\r\nDebian GNU/Linux 12\r\n\r", b"srv login: "]
    assert not [e for e in client.events if isinstance(e, DataReceived)]


def test_sshd_answers_a_failure_at_a_per_user_minimum_doubled() -> None:
    """OpenSSH's auth2.c: a per-user minimum of 5-9.3 ms, doubled until it covers PAM's delay, so
    that one user's wrong passwords are refused at one of a few fixed times."""
    secret = 0x1234_5678_9ABC
    minimum = ssh_profiles.user_specific_delay(secret, "probe")
    assert 0.005 <= minimum < 0.0093
    assert minimum == ssh_profiles.user_specific_delay(secret, "probe")  # the same every time
    assert minimum != ssh_profiles.user_specific_delay(secret, "root")
    assert minimum != ssh_profiles.user_specific_delay(secret + 1, "probe")  # each server its own
    times = {ssh_profiles.failure_time(pam / 100, minimum) for pam in range(150, 251)}  # PAM's 1.5-2.5 s
    assert times <= {minimum * 256, minimum * 512} and len(times) >= 1
    assert all(t >= 1.5 for t in times)
    assert ssh_profiles.failure_time(0.001, minimum) == minimum
    assert ssh_profiles.failure_time(2.0, 0.0) == 2.0
    old = ssh_profiles.profile_for("OpenSSH_7.4p1 Debian-10+deb9u7")
    new = ssh_profiles.profile_for("OpenSSH_9.2p1 Debian-2+deb12u10")
    assert old is not None and new is not None and not old.minimum_fail_time and new.minimum_fail_time


def test_the_ssh_server_waits_the_failure_time() -> None:
    profile = ssh_profiles.profile_for("OpenSSH_9.2p1 Debian-2+deb12u10")
    server = ssh._Server(ssh.SSHConfig(), lambda *a: None, profile, timing_secret=7)
    minimum = ssh_profiles.user_specific_delay(7, "admin")
    assert server._failure_time("admin", 2.1) == ssh_profiles.failure_time(2.1, minimum)
    fixed = ssh._Server(ssh.SSHConfig(fail_delay=(0.1, 0.1)), lambda *a: None, profile, timing_secret=7)
    assert fixed._failure_time("admin", 0.1) == 0.1  # a configured delay is taken as it is
