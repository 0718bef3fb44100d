"""The SSH emulator over a loopback kernel socket, driven by asyncssh's client (and OpenSSH's)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from loopback import ServiceServer

from dynapot.services import ssh as ssh_service
from dynapot.services.contract import ConnectionInfo
from dynapot.services.identity import identity_for
from dynapot.services.shell import FakeShell
from dynapot.services.ssh import DEFAULT_VERSION, SSHConfig, make_handler

pytestmark = pytest.mark.timeout(30)

CLIENT = {"known_hosts": None, "client_keys": None, "agent_path": None, "config": None}


# The shell says the host's own name, the one its other services carry.
NAME = ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.5", 22, None, "web01").identity.hostname


@contextlib.asynccontextmanager
async def serve(config: SSHConfig, dst: str = "198.18.0.5") -> AsyncIterator[tuple[int, list]]:
    handler = make_handler(config)
    reports: list[tuple[str, str | None, dict | None]] = []
    tasks: set[asyncio.Task] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        info = ConnectionInfo("tcp", peer[0], peer[1], dst, 22, None, "web01")
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        await handler(reader, writer, info, lambda k, d, x: reports.append((k, d, x)))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], reports
    finally:
        server.close()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        await server.wait_closed()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_wrong_password_refused_and_reported(tmp_path: Path) -> None:
    async def main():
        async with serve(SSHConfig(key_dir=tmp_path)) as (port, reports):
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh.connect(
                    "127.0.0.1",
                    port,
                    username="root",
                    password="hunter2",
                    preferred_auth="password",
                    **CLIENT,
                )
        return reports

    reports = run(main())
    logins = [r for r in reports if r[0] == "login"]
    assert logins[0] == ("login", "root:hunter2", {"user": "root", "password": "hunter2", "accepted": False})
    assert all(not r[2]["accepted"] for r in logins)


class _Guesser(asyncssh.SSHClient):
    """A brute-forcer: one password after another on the same connection."""

    def __init__(self) -> None:
        self.guesses = iter(f"guess{i}" for i in range(20))

    def password_auth_requested(self) -> str | None:
        return next(self.guesses, None)


def test_banner_and_attempts_bounded(tmp_path: Path) -> None:
    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, max_auth_attempts=3)) as (port, reports):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            banner = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
                await asyncssh.connect(
                    "127.0.0.1",
                    port,
                    username="root",
                    client_factory=_Guesser,
                    preferred_auth="password",
                    **CLIENT,
                )
        return banner, reports

    banner, reports = run(main())
    assert banner == DEFAULT_VERSION.encode() + b"\r\n"
    assert [r[1] for r in reports if r[0] == "login"] == ["root:guess0", "root:guess1", "root:guess2"]


def test_accepted_login_exec_and_shell(tmp_path: Path) -> None:
    async def main():
        async with (
            serve(SSHConfig(key_dir=tmp_path)) as (port, reports),
            asyncssh.connect("127.0.0.1", port, username="root", password="123456", **CLIENT) as conn,
        ):
            assert conn.get_extra_info("server_version") == DEFAULT_VERSION
            uname = await conn.run("uname -a", timeout=5)
            who = await conn.run("whoami", timeout=5)
            missing = await conn.run("wget http://198.18.0.99/y", timeout=5)
            shell = await conn.run(input="uname -a\nwhoami\ncd /etc\npwd\nexit\n", timeout=5)
            tty = await conn.create_process(term_type="xterm")
            tty.stdin.write("id\r")
            tty_out = await asyncio.wait_for(tty.stdout.readuntil(f"root@{NAME}:~# "), 5)
            tty_out += await asyncio.wait_for(tty.stdout.readuntil(f"root@{NAME}:~# "), 5)
            tty.stdin.write("exit\r")
            await asyncio.wait_for(tty.wait_closed(), 5)
        return reports, uname, who, missing, shell, tty_out

    reports, uname, who, missing, shell, tty_out = run(main())
    assert uname.stdout.startswith(f"Linux {NAME} 5.15.0-91-generic ") and uname.exit_status == 0
    assert who.stdout == "root\n"
    # wget fails as on a host whose firewall refuses; nothing is fetched
    assert missing.stdout.endswith("Connecting to 198.18.0.99:80... failed: Connection refused.\n")
    assert missing.exit_status == 4
    assert f"# Linux {NAME} " in shell.stdout and "# root\n" in shell.stdout
    assert "/etc# /etc\n" in shell.stdout
    assert shell.stdout.startswith(f"root@{NAME}:~# ")
    assert "uid=0(root) gid=0(root)" in tty_out and "Welcome to Ubuntu" in tty_out
    downloads = [r for r in reports if r[0] == "download"]  # recorded, never fetched
    assert [(r[1], r[2]["tool"], r[2]["host"], r[2]["port"]) for r in downloads] == [
        ("http://198.18.0.99/y", "wget", "198.18.0.99", 80)
    ]
    commands = [r[1] for r in reports if r[0] == "command"]
    exec_and_shell = [
        "uname -a",
        "whoami",
        "wget http://198.18.0.99/y",
        "uname -a",
        "whoami",
        "cd /etc",
        "pwd",
        "exit",
    ]
    assert commands == [*exec_and_shell, "id", "exit"]


def test_public_key_reported_and_refused(tmp_path: Path) -> None:
    client_key = asyncssh.generate_private_key("ssh-ed25519")

    async def main():
        async with serve(SSHConfig(key_dir=tmp_path)) as (port, reports):
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh.connect(
                    "127.0.0.1",
                    port,
                    username="admin",
                    known_hosts=None,
                    client_keys=[client_key],
                    agent_path=None,
                    config=None,
                    preferred_auth="publickey",
                )
        return reports

    reports = run(main())
    keys = [r for r in reports if r[0] == "login-key"]
    assert len(keys) == 1
    assert keys[0][2] == {
        "user": "admin",
        "key_type": "ssh-ed25519",
        "fingerprint": client_key.get_fingerprint(),
        "accepted": False,
    }


async def _host_key(config: SSHConfig, dst: str) -> str:
    async with (
        serve(config, dst) as (port, _),
        asyncssh.connect("127.0.0.1", port, username="root", password="123456", **CLIENT) as conn,
    ):
        return conn.get_server_host_key().get_fingerprint()


def test_host_key_per_address_and_persistent(tmp_path: Path) -> None:
    async def main():
        a1 = await _host_key(SSHConfig(key_dir=tmp_path), "198.18.0.5")
        b = await _host_key(SSHConfig(key_dir=tmp_path), "198.18.0.6")
        a2 = await _host_key(SSHConfig(key_dir=tmp_path), "198.18.0.5")  # a new handler instance
        return a1, a2, b

    a1, a2, b = run(main())
    assert a1 == a2 and a1 != b
    files = sorted(p.name for p in tmp_path.iterdir())
    # OpenSSH's set, as ssh-keygen -A makes it: RSA (3072 bits), ECDSA P-256, Ed25519; per address.
    assert files == [
        f"ssh_host_{kind}_key-{ip}"
        for kind in ("ecdsa", "ed25519", "rsa")
        for ip in ("198.18.0.5", "198.18.0.6")
    ]
    rsa = asyncssh.read_private_key(tmp_path / "ssh_host_rsa_key-198.18.0.5")
    assert rsa.pyca_key.key_size == 3072
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_described_as_a_tcp_service() -> None:
    (service,) = ssh_service.SERVICES
    assert service.names == ("ssh",) and service.transport == "tcp" and callable(service.handler)
    assert service.preload is ssh_service.preload  # asyncssh loads its algorithms lazily


def test_fake_shell() -> None:
    sh = FakeShell(identity_for("198.18.0.5"), "admin", hostname="web01")
    assert sh.prompt() == "admin@web01:~$ "
    assert sh.execute("pwd") == "/home/admin\n"
    assert sh.execute("cd /var/log; pwd") == "/var/log\n"
    assert sh.prompt() == "admin@web01:/var/log$ "
    assert "auth.log" in sh.execute("ls")
    assert sh.execute("cat /etc/passwd").startswith("root:x:0:0:root:/root:/bin/bash\n")
    assert sh.execute("echo 'a  b' c") == "a  b c\n"
    assert sh.execute("nope --x") == "-bash: nope: command not found\n"
    assert sh.execute("__init__") == "-bash: __init__: command not found\n"
    assert sh.execute("cd /nonexistent").startswith("-bash: cd: /nonexistent:")
    assert sh.execute("echo 'unterminated") == "" and sh.prompt() == "> "  # bash reads on
    assert sh.execute("'") == "unterminated\n\n"
    sh.execute("exit")
    assert sh.exited


@pytest.mark.skipif(not shutil.which("ssh"), reason="OpenSSH client not installed")
def test_openssh_client_sees_banner_and_key(tmp_path: Path) -> None:
    async def main():
        async with serve(SSHConfig(key_dir=tmp_path)) as (port, _):
            proc = await asyncio.create_subprocess_exec(
                "ssh",
                "-vv",
                "-F",
                "/dev/null",
                "-p",
                str(port),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
                "-o",
                "ConnectTimeout=5",
                "root@127.0.0.1",
                "true",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(), 10)
        return proc.returncode, err.decode(errors="replace")

    rc, err = run(main())
    assert rc != 0  # BatchMode: no password prompt, so the login fails after key exchange
    assert "Remote protocol version 2.0, remote software version OpenSSH_8.9p1 Ubuntu-3ubuntu0.6" in err
    key = (tmp_path / "ssh_host_ed25519_key-198.18.0.5").read_bytes()
    public = asyncssh.import_private_key(key).export_public_key().decode().split()[1]
    assert public in (tmp_path / "known_hosts").read_text()


async def _until_end(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    """Everything up to the end, and how it ended: "closed" (FIN) or "reset" (RST)."""
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        return received, "reset"
    return received, "closed"


def test_lifetime_and_garbage_end_the_connection(tmp_path: Path) -> None:
    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, lifetime=0.5)) as (port, reports):
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
            junk_r, junk_w = await asyncio.open_connection("127.0.0.1", port)
            junk_w.write(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 100_000)
            junk = await asyncio.wait_for(_until_end(junk_r), 5)
            idle = await asyncio.wait_for(idle_r.read(), 5)
            idle_w.close()
            junk_w.close()
        return reports, idle, junk

    reports, idle, junk = run(main())
    assert idle.startswith(b"SSH-2.0-OpenSSH_8.9p1")
    assert junk == (
        b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\nInvalid SSH identification string.\r\n",
        "reset",
    )
    assert ("timeout", None, {"lifetime": 0.5}) in reports


def test_busybox_probes_get_busybox_answers():
    sh = FakeShell(identity_for("198.18.0.5"), "root", hostname="web01")
    assert sh.execute("/bin/busybox MIRAI") == "MIRAI: applet not found\n" and sh.status == 127
    assert sh.execute("/bin/busybox echo hi") == "hi\n" and sh.status == 0
    assert sh.execute("busybox").startswith("BusyBox v1.30.1")


@pytest.mark.parametrize(
    ("personality", "product", "version", "configured", "banner"),
    [
        ("Linux 3.10", None, None, None, b"SSH-2.0-OpenSSH_7.4\r\n"),  # CentOS 7's own
        ("Microsoft Windows Server 2019", None, None, None, b"SSH-2.0-OpenSSH_for_Windows_8.1\r\n"),
        ("Cisco 2811 router (IOS 12.4)", None, None, None, b"SSH-2.0-Cisco-1.25\r\n"),
        ("Linux 3.10", None, None, "SSH-2.0-OpenSSH_9.6", b"SSH-2.0-OpenSSH_9.6\r\n"),
        (
            "Linux 3.10",
            "OpenSSH",
            "8.2p1 Ubuntu 4ubuntu0.5",
            "SSH-2.0-x",
            b"SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.5\r\n",
        ),
    ],
)
def test_the_banner_is_nmaps_product_else_the_configured_one_else_the_systems(
    tmp_path: Path, personality, product, version, configured, banner
) -> None:
    info = ConnectionInfo("tcp", "127.0.0.1", 40000, "198.18.0.9", 22, personality, "t", product, version)
    handler = make_handler(SSHConfig(key_dir=tmp_path, server_version=configured))
    with ServiceServer(handler, info) as server, server.connect() as client:
        assert client.recv(256) == banner


def test_group_exchange_primes_are_capped_and_the_exchange_still_works(tmp_path: Path) -> None:
    """A client asking for 8,192-bit groups cannot make every key exchange cost tens of ms."""
    sizes = [group[0] for group in asyncssh.kex_dh._dh_gex_groups]
    assert sizes and max(sizes) <= ssh_service.MAX_GEX_BITS

    async def main():
        async with serve(SSHConfig(key_dir=tmp_path)) as (port, reports):
            gex = {**CLIENT, "kex_algs": ["diffie-hellman-group-exchange-sha256"]}
            with pytest.raises(asyncssh.PermissionDenied):
                async with asyncssh.connect("127.0.0.1", port, username="root", password="nope", **gex):
                    pass
        return reports

    assert [r[0] for r in run(main())] == ["login"]


def test_a_source_over_its_budget_waits_and_is_dropped_only_past_its_queue(tmp_path: Path) -> None:
    # 2 at once, then one every 2 s, a queue of 1 s: the third connection is dropped, but only
    # because the queue would hold it longer than 1 s; with a longer queue it waits instead.
    async def main(max_wait: float):
        config = SSHConfig(
            key_dir=tmp_path, handshakes_per_second=0.5, handshake_burst=2, handshake_max_wait=max_wait
        )
        async with serve(config) as (port, reports):
            banners, waited = [], []
            for _ in range(3):
                started = time.monotonic()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                banners.append(await asyncio.wait_for(reader.read(100), 10))
                waited.append(time.monotonic() - started)
                writer.close()
        return banners, waited, reports

    banners, _, reports = run(main(1.0))
    assert [b.startswith(b"SSH-2.0-") for b in banners] == [True, True, False]
    assert [r[:2] for r in reports if r[0] == "refused"] == [("refused", "handshake rate")]

    banners, waited, reports = run(main(5.0))
    assert all(b.startswith(b"SSH-2.0-") for b in banners)
    assert not [r for r in reports if r[0] == "refused"]
    assert waited[2] > 1.0  # the third one got its banner late (about 2 s), not never


def test_max_startups_drops_before_the_banner_once_too_many_are_unauthenticated(tmp_path: Path) -> None:
    async def main():
        config = SSHConfig(key_dir=tmp_path, max_startups=(2, 100, 2))
        async with serve(config) as (port, reports):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            for reader, _ in held:
                assert (await asyncio.wait_for(reader.read(100), 5)).startswith(b"SSH-2.0-")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            third = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
            for _, w in held:  # the two end: their places are free again
                w.close()
            await asyncio.sleep(0.5)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            fourth = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
        return third, fourth, reports

    third, fourth, reports = run(main())
    assert third == b""
    assert fourth.startswith(b"SSH-2.0-")
    assert [r[:2] for r in reports if r[0] == "refused"] == [("refused", "MaxStartups")]


# -- answering as the OpenSSH it claims (issue 15) -------------------------------------------------------

DEBIAN = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    with contextlib.suppress(TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), 2):
            received += chunk
            if b"\x14" in received[len(DEBIAN) + 2 :]:  # a KEXINIT came: enough
                break
    writer.close()
    return received


def test_the_kexinit_is_the_imitated_openssh_s(tmp_path: Path) -> None:
    from dynapot.lab.probe_norm import ssh_kexinit_fields
    from dynapot.services.ssh_profiles import profile_for

    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, server_version=DEBIAN)) as (port, _):
            return await _exchange(port, b"SSH-2.0-OpenSSH_9.2p1\r\n")

    data = run(main())
    banner, _, packet = data.partition(b"\r\n")
    assert banner == DEBIAN.encode()
    length, padding = struct.unpack(">IB", packet[:5])
    fields = ssh_kexinit_fields(packet[5 : 4 + length - padding])
    profile = profile_for(DEBIAN.removeprefix("SSH-2.0-"))
    assert fields is not None and profile is not None
    assert fields["kex"].split(",") == [*profile.kex, "kex-strict-s-v00@openssh.com"]  # no ext-info-s
    assert fields["hostkey"] == "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    assert fields["enc_s2c"].split(",") == list(profile.ciphers)
    assert fields["mac_s2c"].split(",") == list(profile.macs)
    assert fields["comp_s2c"] == "none,zlib@openssh.com"


@pytest.mark.skipif(not shutil.which("ssh"), reason="OpenSSH client not installed")
def test_every_profile_names_only_algorithms_openssh_has() -> None:
    from dynapot.services.ssh_profiles import PROFILES

    def query(what: str) -> set[str]:
        return set(
            subprocess.run(["ssh", "-Q", what], capture_output=True, text=True, check=True).stdout.split()
        )

    kex, ciphers, macs, keys = query("kex"), query("cipher"), query("mac"), query("HostKeyAlgorithms")
    for profile in PROFILES:
        assert set(profile.kex) <= kex, profile.name
        assert set(profile.ciphers) <= ciphers and set(profile.macs) <= macs, profile.name
        assert set(profile.host_key_algs) <= keys and set(profile.key_types) <= keys, profile.name


@pytest.mark.parametrize(
    ("sent", "answer", "end"),
    [
        (b"SSH-1.5-Client\r\n", b"Protocol major versions differ.\r\n", "closed"),
        (b"SSH-2.0\r\n", b"Invalid SSH identification string.\r\n", "closed"),
        # sshd closes with the rest unread: its kernel resets the connection
        (b"GET / HTTP/1.0\r\n\r\n", b"Invalid SSH identification string.\r\n", "reset"),
    ],
)
def test_malformed_identifications_get_openssh_s_plain_text(
    tmp_path: Path, sent: bytes, answer: bytes, end
) -> None:
    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, server_version=DEBIAN)) as (port, reports):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(sent)
            received = await asyncio.wait_for(_until_end(reader), 5)
            writer.close()
        return received, reports

    received, reports = run(main())
    assert received == (DEBIAN.encode() + b"\r\n" + answer, end)
    assert [(r[0], r[1].split(":")[0]) for r in reports] == [("bad-request", "identification")]


@pytest.mark.skipif(not shutil.which("ssh"), reason="OpenSSH client not installed")
def test_openssh_client_negotiates_as_with_sshd(tmp_path: Path) -> None:
    async def ssh(port: int, *options: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ssh", "-v", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            *options, "root@127.0.0.1", "true",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        return err.decode(errors="replace")

    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, server_version=DEBIAN)) as (port, _):
            return await ssh(port), await ssh(port, "-o", "HostKeyAlgorithms=rsa-sha2-512")

    plain, rsa = run(main())
    assert "kex: algorithm: sntrup761x25519-sha512" in plain  # OpenSSH 9's first choice
    assert "Authentications that can continue: publickey,password\r\n" in plain  # no keyboard-interactive
    assert "Server host key: ssh-rsa SHA256:" in rsa  # the RSA key sshd has too


@pytest.mark.parametrize(
    ("packet", "answer"),
    [
        (b"\xff\xff\xff\xff" + b"\0" * 60, b""),  # a bad length: closed without a word
        (struct.pack(">IB", 20, 2) + b"\x05" + b"\0" * 18, b"Corrupted padlen 2 on input."),
        (struct.pack(">IB", 12, 6) + b"\x05" + b"\0" * 10, b""),  # not a KEXINIT first
    ],
)
def test_broken_packets_before_the_key_exchange_get_sshd_s_reaction(tmp_path: Path, packet, answer) -> None:
    from dynapot.lab.probe_norm import ssh_answer

    async def main():
        async with serve(SSHConfig(key_dir=tmp_path, server_version=DEBIAN)) as (port, reports):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"SSH-2.0-OpenSSH_9.2p1\r\n" + packet)
            received = await asyncio.wait_for(_until_end(reader), 5)
            writer.close()
        return received, reports

    (received, end), reports = run(main())
    packets = ssh_answer(received, "127.0.0.1").split(" | ")
    assert packets[1].startswith("KEXINIT ") and end == "closed"
    assert packets[2:] == ([f"DISCONNECT 2 {answer.decode()}"] if answer else [])
    assert ("bad-request", "key exchange") in [(r[0], r[1].split(":")[0]) for r in reports]


def test_the_banner_waits_as_the_imitated_sshd_does() -> None:
    from dynapot.services.ssh import banner_delay
    from dynapot.services.ssh_profiles import profile_for

    profile = profile_for(DEBIAN.removeprefix("SSH-2.0-"))
    assert profile is not None
    low, high = banner_delay(SSHConfig(), profile)
    assert 0 < low <= high < 0.1  # sshd's fork and re-exec: milliseconds, not none
    assert banner_delay(SSHConfig(banner_delay=(0.0, 0.0)), profile) == (0.0, 0.0)  # configurable
    assert banner_delay(SSHConfig(), None) == (0.0, 0.0)  # a server we have no recording of
