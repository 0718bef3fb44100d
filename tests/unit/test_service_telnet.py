"""The telnet emulator: option negotiation on its own, then real clients on a loopback socket
(a raw socket client that answers options, Python's telnetlib, and the Debian `telnet` in a pty)."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import time
import warnings

import pytest
from loopback import ServiceServer, needs

from dynapot.services.contract import ConnectionInfo
from dynapot.services.telnet import (
    DO,
    DONT,
    ECHO,
    IAC,
    NEW_ENVIRON,
    SB,
    SB_LIMIT,
    SE,
    SGA,
    TELNET_PAIRS,
    TTYPE,
    WILL,
    WONT,
    TelnetConfig,
    TelnetOptions,
    TelnetSession,
    make_handler,
    telnetd_for,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import telnetlib  # deprecated in 3.11, removed in 3.13: a real, independent client while it lasts

pytestmark = pytest.mark.timeout(30)

needs_telnet = needs("telnet", "the telnet client")

FAST = TelnetConfig(fail_delay=0.0, negotiation_wait=2.0, accept=TELNET_PAIRS)
NETKIT = "Linux telnetd"  # nmap's name for netkit's telnetd; a Linux host without it runs BusyBox's


def info(personality: str | None = "Linux 5.4", dst: str = "198.18.0.20", product: str | None = NETKIT):
    return ConnectionInfo("tcp", "198.18.0.3", 40000, dst, 23, personality, "t", product)


def telnet_server(
    config: TelnetConfig = FAST, personality: str | None = "Linux 5.4", product: str | None = NETKIT
) -> ServiceServer:
    """The telnet handler on a loopback port; each connection's info names its real client."""
    return ServiceServer(
        make_handler(config),
        lambda peer: ConnectionInfo("tcp", peer[0], peer[1], "198.18.0.20", 23, personality, "t", product),
    )


@pytest.fixture
def linux():
    with telnet_server() as server:
        yield server


class RawClient:
    """A socket client that answers options like a terminal would: yes to ECHO, SGA and TTYPE."""

    def __init__(self, port: int, *, answer: bool = True, terminal: bytes = b"VT100") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.answer = answer
        self.terminal = terminal
        self.seen = bytearray()  # everything the server sent, options included
        self.text = bytearray()  # what a terminal would show

    def _parse(self, data: bytes) -> None:
        self.seen += data
        i = 0
        while i < len(data):
            byte = data[i]
            if byte == IAC and i + 1 < len(data):
                verb = data[i + 1]
                if verb in (WILL, WONT, DO, DONT) and i + 2 < len(data):
                    self._negotiate(verb, data[i + 2])
                    i += 3
                    continue
                if verb == SB:
                    end = data.find(bytes((IAC, SE)), i)
                    if data[i + 2 : i + 4] == bytes((TTYPE, 1)) and self.answer:
                        self.sock.sendall(bytes((IAC, SB, TTYPE, 0)) + self.terminal + bytes((IAC, SE)))
                    i = end + 2
                    continue
                if verb == IAC:
                    self.text.append(IAC)
                i += 2
                continue
            self.text.append(byte)
            i += 1

    def _negotiate(self, verb: int, option: int) -> None:
        if not self.answer:
            return
        if verb == DO:
            self.sock.sendall(bytes((IAC, WILL if option == TTYPE else WONT, option)))
        elif verb == WILL:
            self.sock.sendall(bytes((IAC, DO if option in (ECHO, SGA) else DONT, option)))

    def expect(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Read until `marker` shows on the terminal; return the text so far and clear it."""
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {bytes(self.text)!r}"
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            assert data, f"closed before {marker!r}: {bytes(self.text)!r}"
            self._parse(data)
        text = bytes(self.text)
        self.text.clear()
        return text

    def closed(self, timeout: float = 5.0) -> bytes:
        """Everything until the server hangs up."""
        self.sock.settimeout(timeout)
        while data := self.sock.recv(4096):
            self._parse(data)
        return bytes(self.text)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


# -- the protocol layer alone -------------------------------------------------------------------------


def _feed_bytewise(options: TelnetOptions, data: bytes) -> tuple[bytes, bytes]:
    out, replies = b"", b""
    for i in range(len(data)):
        a, b = options.feed(data[i : i + 1])
        out += a
        replies += b
    return out, replies


def test_terminal_type_negotiation_whole_and_byte_by_byte() -> None:
    stream = (
        bytes((IAC, WILL, TTYPE, IAC, DO, ECHO))
        + b"ro"
        + bytes((IAC, SB, TTYPE, 0))
        + b"XTERM-256COLOR"
        + bytes((IAC, SE))
        + b"ot\r\n"
    )
    results = []
    for feed in (lambda o, d: o.feed(d), _feed_bytewise):
        options = TelnetOptions(ours={ECHO, SGA}, theirs={TTYPE})
        assert options.do(TTYPE) == bytes((IAC, DO, TTYPE))
        assert options.will(ECHO) == bytes((IAC, WILL, ECHO))
        assert options.pending
        results.append(feed(options, stream))
        assert options.terminal == "XTERM-256COLOR" and not options.pending
        assert options.events == [("terminal", "XTERM-256COLOR", {"type": "XTERM-256COLOR"})]
    assert results[0] == results[1]
    data, replies = results[0]
    assert data == b"root\r\n"
    # Our requests were answered: nothing to say back but the terminal-type question.
    assert replies == bytes((IAC, SB, TTYPE, 1, IAC, SE))


def test_refusals_and_no_negotiation_loops() -> None:
    options = TelnetOptions(ours={ECHO}, theirs={TTYPE})
    assert options.feed(bytes((IAC, DO, 99)))[1] == bytes((IAC, WONT, 99))
    assert options.feed(bytes((IAC, WILL, 42)))[1] == bytes((IAC, DONT, 42))
    assert options.feed(bytes((IAC, DONT, 99, IAC, WONT, 42)))[1] == b""  # already off: no answer
    assert options.feed(bytes((IAC, DO, ECHO)))[1] == bytes((IAC, WILL, ECHO))  # unasked, agreed
    options.do(37)  # asked for, but not supported: declined when the client agrees
    assert options.feed(bytes((IAC, WILL, 37)))[1] == bytes((IAC, DONT, 37))
    assert not options.pending
    assert options.feed(bytes((IAC, DO, ECHO)))[1] == b""  # already on
    assert options.echoing
    assert options.feed(bytes((IAC, DONT, ECHO)))[1] == bytes((IAC, WONT, ECHO))
    assert not options.echoing  # the client echoes for itself now


def test_data_escapes_and_commands() -> None:
    options = TelnetOptions(ours=(), theirs=())
    data, replies = options.feed(b"a\xff\xffb\r\x00c" + bytes((IAC, 246)) + bytes((IAC, 244)) + b"\r\n")
    assert data == b"a\xffb\rc\x03\r\n"  # IAC IAC is 0xFF, CR NUL is CR, IP is ^C
    assert replies == b"\r\n[Yes]\r\n"  # AYT


def test_subnegotiation_is_bounded() -> None:
    options = TelnetOptions(ours=(), theirs={TTYPE})
    options.do(TTYPE)
    options.feed(bytes((IAC, WILL, TTYPE, IAC, SB, TTYPE, 0)))
    for _ in range(100):
        assert options.feed(b"A" * 10_000) == (b"", b"")
    assert len(options._sb) <= SB_LIMIT
    data, _ = options.feed(bytes((IAC, SE)) + b"ok")
    assert data == b"ok" and options.terminal is not None and len(options.terminal) <= 64


def test_environment_is_recorded() -> None:
    options = TelnetOptions(ours=(), theirs={NEW_ENVIRON})
    options.do(NEW_ENVIRON)
    _, replies = options.feed(bytes((IAC, WILL, NEW_ENVIRON)))
    assert replies == bytes((IAC, SB, NEW_ENVIRON, 1, IAC, SE))
    options.feed(
        bytes((IAC, SB, NEW_ENVIRON, 0, 0))
        + b"USER"
        + bytes((1,))
        + b"-f root"
        + bytes((3,))
        + b"X"
        + bytes((IAC, SE))
    )
    assert options.environ == {"USER": "-f root", "X": ""}
    assert options.events[-1] == ("environ", "USER, X", {"vars": {"USER": "-f root", "X": ""}})


@pytest.mark.parametrize(
    ("personality", "product", "first", "screen"),
    [
        ("Linux 5.4", NETKIT, b"\xff\xfd\x18\xff\xfd \xff\xfd#\xff\xfd'", b"Ubuntu 22.04.3 LTS\r\nsrv-"),
        ("Linux 5.4", None, b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03", b"LTS\r\n\rsrv-"),
        (
            "Cisco 2811 router (IOS 12.4)",
            None,
            b"\xff\xfb\x01\xff\xfb\x03\xff\xfd\x18\xff\xfd\x1f",
            b"\r\n\r\nUser Access Verification\r\n\r\nUsername: ",
        ),
        (
            "Microsoft Windows 7 SP1",
            None,
            b"\xff\xfd%\xff\xfb\x01\xff\xfb\x03\xff\xfd'\xff\xfd\x1f\xff\xfd\x00\xff\xfb\x00",
            b"Welcome to Microsoft Telnet Service \r\n\r\nlogin: ",
        ),
        ("Linux 2.6.32", "BusyBox telnetd", b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03", b" login: "),
    ],
)
def test_each_os_has_its_own_screen(personality, product, first, screen) -> None:
    session = TelnetSession(info(personality, product=product), TelnetConfig(fail_delay=0))
    start = session.start()
    opening = start.send
    assert opening.startswith(first)  # the negotiation nmap's service probes recognise
    shown = start.data + (session.settle().send if session.negotiating else b"")
    assert screen in shown


def test_server_choice() -> None:
    assert telnetd_for(info("Apple iOS 14", product=None)).kind == "busybox"
    assert telnetd_for(info("Linux 5.4", product=None)).kind == "busybox"  # nmap named nothing
    assert telnetd_for(info("Linux 5.4")).kind == "linux"
    assert telnetd_for(info("Cisco Catalyst 2960 switch (IOS 12.2)", product=None)).kind == "cisco"
    assert telnetd_for(info(None, product="Microsoft Windows XP telnetd")).kind == "windows"
    assert telnetd_for(info("FreeBSD 12.1-RELEASE", product=None)).kind == "bsd"
    assert telnetd_for(info("Linux 2.6.32", product="BusyBox telnetd")).kind == "busybox"
    assert telnetd_for(info("Microsoft Windows 7 SP1", product="Linux telnetd")).kind == "linux"  # nmap first


def test_login_is_sans_io_and_password_not_echoed() -> None:
    session = TelnetSession(info(), TelnetConfig(fail_delay=1.5))
    session.start()
    out = session.receive(b"admin\r\n")  # a bot that skips the negotiation and types at once
    assert b"Ubuntu 22.04.3 LTS" in out.send and out.send.endswith(b"admin\r\nPassword: ")
    out = session.receive(b"s3cret\r\n")
    assert b"s3cret" not in out.send + out.later
    assert out.delay == 1.5 and out.later.endswith(
        b"Login incorrect\r\n" + session.hostname.encode() + b" login: "
    )
    assert out.events == [
        ("login", "admin:s3cret", {"user": "admin", "password": "s3cret", "accepted": False})
    ]


def test_hosts_are_not_clones() -> None:
    names = {TelnetSession(info(dst=f"198.18.0.{n}")).hostname for n in range(20, 30)}
    assert len(names) == 10


# -- real clients on loopback -----------------------------------------------------------------------


def test_raw_client_logs_in_and_runs_commands(linux: ServiceServer) -> None:
    client = RawClient(linux.port)
    try:
        screen = client.expect(b" login: ")
        assert screen.startswith(b"Ubuntu 22.04.3 LTS\r\nsrv-")
        client.send(b"root\r\n")
        assert client.expect(b"Password: ") == b"root\r\nPassword: "  # the user name is echoed
        client.send(b"root\r\n")
        welcome = client.expect(b":~# ")
        assert b"Welcome to Ubuntu 22.04.3 LTS" in welcome and b"root" not in welcome.split(b"\r\n")[0]
        client.send(b"id; uname -a\r\n")
        output = client.expect(b":~# ")
        assert b"uid=0(root)" in output and b"GNU/Linux" in output
        client.send(b"exit\r\n")
        assert client.closed().endswith(b"logout\r\n")
    finally:
        client.close()
    assert linux.kinds("terminal") == [("terminal", "VT100", {"type": "VT100"})]
    assert linux.kinds("login") == [
        ("login", "root:root", {"user": "root", "password": "root", "accepted": True})
    ]
    assert [r[1] for r in linux.kinds("command")] == ["id; uname -a", "exit"]


def test_three_failures_and_the_server_hangs_up(linux: ServiceServer) -> None:
    client = RawClient(linux.port)
    try:
        client.expect(b" login: ")
        for guess in (b"admin1", b"admin2"):
            client.send(b"admin\r\n")
            client.expect(b"Password: ")
            client.send(guess + b"\r\n")
            failed = client.expect(b" login: ")
            assert b"Login incorrect" in failed and guess not in failed
        client.send(b"admin\r\nadmin3\r\n")
        assert b"Login incorrect" in client.closed()
    finally:
        client.close()
    logins = linux.kinds("login")
    assert [r[1] for r in logins] == ["admin:admin1", "admin:admin2", "admin:admin3"]
    assert not any(r[2]["accepted"] for r in logins)


def test_bot_that_ignores_options_still_gets_a_prompt() -> None:
    server = telnet_server(TelnetConfig(fail_delay=0, negotiation_wait=0.3))
    client = RawClient(server.port, answer=False)
    try:
        started = time.monotonic()
        assert b"login: " in client.expect(b" login: ")
        assert time.monotonic() - started >= 0.25  # Linux telnetd waits for the answers first
    finally:
        client.close()
        server.close()


def test_garbage_and_huge_lines_neither_crash_nor_hang(linux: ServiceServer) -> None:
    client = RawClient(linux.port)
    try:
        client.expect(b" login: ")
        junk = bytes(range(256)) * 50 + bytes((IAC, SB)) + os.urandom(5000) + bytes((IAC, SE))
        client.send(junk.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x04", b""))
        client.send(b"x" * 200_000 + b"\r\n")
        client.expect(b"Password: ", timeout=10)
        client.send(b"wrong\r\n")
        client.expect(b" login: ")
    finally:
        client.close()
    user = linux.kinds("login")[0][2]["user"]
    assert 0 < len(user) <= 256


def test_login_timeout() -> None:
    server = telnet_server(TelnetConfig(fail_delay=0, negotiation_wait=0.0, login_timeout=0.4))
    client = RawClient(server.port)
    try:
        client.expect(b" login: ")
        client.send(b"ro")  # and then nothing: a slowloris
        assert b"Login timed out after 0 seconds." in client.closed()
    finally:
        client.close()
        server.close()
    assert server.kinds("timeout")


def test_telnetlib_windows_host() -> None:
    server = telnet_server(personality="Microsoft Windows Server 2008 R2", product=None)
    try:
        with telnetlib.Telnet("127.0.0.1", server.port, timeout=5) as client:
            screen = client.read_until(b"login: ", 5)
            assert b"Welcome to Microsoft Telnet Service" in screen
            client.write(b"administrator\r\n")
            client.read_until(b"password: ", 5)
            client.write(b"Password1\r\n")
            screen = client.read_until(b"login: ", 5)
            assert b"Login Failed" in screen
            client.write(b"admin\r\n")
            client.read_until(b"password: ", 5)
            client.write(b"admin\r\n")
            screen = client.read_until(b">", 5)
            assert b"Microsoft Telnet Server." in screen and screen.endswith(b"C:\\Users\\admin>")
            client.write(b"whoami\r\n")
            answer = client.read_until(b"admin>", 5)
            # The SMB computer name: one name per host, whatever service tells it.
            name = info("Microsoft Windows Server 2008 R2").identity.computer
            assert f"{name.lower()}\\admin".encode() in answer
            client.write(b"ls\r\n")
            assert b"is not recognized as an internal or external command" in client.read_until(b">", 5)
            client.write(b"exit\r\n")
            client.read_all()
    finally:
        server.close()
    assert [r[2]["accepted"] for r in server.kinds("login")] == [False, True]


def test_cisco_exec() -> None:
    server = telnet_server(personality="Cisco 2911 router (IOS 15.4)", product=None)
    client = RawClient(server.port)
    try:
        client.expect(b"Username: ")
        client.send(b"cisco\r\n")
        client.expect(b"Password: ")
        client.send(b"cisco\r\n")
        prompt = client.expect(b">").split(b"\r\n")[-1]
        client.send(b"show version\r\n")
        assert b"Cisco IOS Software" in client.expect(prompt)
        client.send(b"enable\r\n")
        assert b"% No password set" in client.expect(prompt)
        client.send(b"exit\r\n")
        client.closed()
    finally:
        client.close()
        server.close()


def _pty_client(port: int, *args: str) -> tuple[subprocess.Popen, int]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        ["telnet", *args, "127.0.0.1", str(port)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=dict(os.environ, TERM="xterm"),
        start_new_session=True,
    )
    os.close(terminal)
    return process, controller


def _expect(controller: int, marker: bytes, timeout: float = 5.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([controller], [], [], left)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the client exited
                break
            seen += chunk
    assert marker in seen, seen
    return seen


@needs_telnet
def test_debian_telnet_client(linux: ServiceServer) -> None:
    process, controller = _pty_client(linux.port)
    try:
        _expect(controller, b" login: ")
        os.write(controller, b"ubuntu\r")
        _expect(controller, b"Password: ")
        os.write(controller, b"ubuntu\r")
        _expect(controller, b"ubuntu@srv-")
        os.write(controller, b"whoami\r")
        assert b"ubuntu\r\n" in _expect(controller, b"$ ")
        os.write(controller, b"exit\r")
        _expect(controller, b"Connection closed by foreign host.")
        assert process.wait(5) is not None
    finally:
        process.kill()
        process.wait(5)
        os.close(controller)
    assert linux.kinds("terminal") == [("terminal", "XTERM", {"type": "XTERM"})]
    assert [r[1] for r in linux.kinds("command")] == ["whoami", "exit"]


@needs_telnet
def test_debian_telnet_with_user_name(linux: ServiceServer) -> None:
    # `telnet -l` sends USER through NEW-ENVIRON: login asks for the password only, as Linux does.
    process, controller = _pty_client(linux.port, "-l", "root")
    try:
        screen = _expect(controller, b"Password: ")
        assert b" login: " not in screen
        os.write(controller, b"toor\r")
        _expect(controller, b"root@srv-")
    finally:
        process.kill()
        process.wait(5)
        os.close(controller)
    assert ("environ", "USER", {"vars": {"USER": "root"}}) in linux.reports
    assert linux.kinds("login")[0][2] == {"user": "root", "password": "toor", "accepted": True}


def test_a_sudo_password_is_neither_echoed_nor_a_command_and_written_files_are_kept(tmp_path) -> None:
    """The shell's password prompts and file capture reach telnet as they reach SSH: what is typed at
    sudo's prompt is not echoed and is recorded as a login attempt, ^C forgets the prompt, and a
    file the session wrote and never ran is recorded (and kept) when the connection ends."""
    import hashlib

    from dynapot.services.uploads import UploadStore

    store = UploadStore(tmp_path)
    config = TelnetConfig(fail_delay=0, accept={("guest", "hunter2")}, uploads=store)
    session = TelnetSession(info(), config)
    session.start()
    session.receive(b"guest\r\n")
    assert session.receive(b"hunter2\r\n").data.endswith(b"$ ")
    assert session.receive(b"sudo -l\r\n").data.endswith(b"[sudo] password for guest: ")
    typed = session.receive(b"letmein\r\n")
    assert b"letmein" not in typed.data and typed.data.startswith(b"\r\n")
    assert [kind for kind, _, _ in typed.events] == ["login"]
    assert typed.events[0][2]["mechanism"] == "sudo" and typed.events[0][2]["password"] == "letmein"
    assert typed.data.endswith(b"[sudo] password for guest: ")  # try again
    interrupted = session.receive(b"\x03")
    assert interrupted.data.endswith(b"$ ") and b"password" not in interrupted.data.split(b"\n")[-1]
    echoed = session.receive(b"echo -ne '\\x7fELF\\x02' > /tmp/.k\r\n")
    assert b"/tmp/.k" in echoed.data and [e[0] for e in echoed.events] == ["command"]  # echoed again
    uploads = [event for event in session.close() if event[0] == "upload"]
    assert len(uploads) == 1 and uploads[0][2]["size"] == 5
    digest = hashlib.sha256(b"\x7fELF\x02").hexdigest()
    assert uploads[0][2]["sha256"] == digest and (tmp_path / digest).read_bytes() == b"\x7fELF\x02"
    assert session.close() == []  # once
