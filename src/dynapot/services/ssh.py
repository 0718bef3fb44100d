"""SSH emulator: a real SSH-2 server (asyncssh) in front of a fake shell.

What an attacker sees per virtual host: the SSH version banner of nmap's product, else the
configured one, else its system's (`VERSIONS`: its distribution's OpenSSH, Windows', IOS'),
a stable ed25519 host key of its own (generated on first contact with that address, kept in
`key_dir`), password/public-key authentication, and after a "successful" login a small fake
shell of the host's kind (`dynapot.services.shell.shell_for`: bash with the host's MOTD,
IOS on routers, cmd.exe on Windows) for interactive sessions and exec requests.
Port/agent/X11 forwarding, SFTP and SCP are refused.

Reported events (`report(kind, detail, data)`), never logged anywhere else:
  login      "user:password"  {"user", "password", "accepted"}
  login-key  "user:SHA256:.." {"user", "key_type", "fingerprint", "accepted"}
  command    the command line  None    (interactive lines and exec requests alike)

Why a socketpair: services receive an asyncio StreamReader/StreamWriter pair, which may be
the sensor's userland TCP rather than a kernel socket. asyncssh's only public entry point
for serving one already-accepted connection is `asyncssh.run_server(sock)`, which needs a
real socket (it calls `loop.create_connection(sock=...)`); driving `SSHServerConnection`
by hand over a custom transport would depend on asyncssh internals. So each connection
gets a `socket.socketpair()`: asyncssh serves one end, and two bounded byte pumps copy
between the other end and the stream pair. Cost: two fds and one copy per byte.

Bounds: authentication attempts per connection (`max_auth_attempts`, then disconnect
"Too many authentication failures" like OpenSSH), `login_timeout`, whole-connection
`lifetime`, sessions per connection, input line length, output per command.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncssh

from dynapot.events import Kind
from dynapot.files import create_once
from dynapot.services import ssh_pq
from dynapot.services.banner import banner_for
from dynapot.services.contract import ConnectionInfo, Handler, Report, Service, clip, guarded
from dynapot.services.profiles import Profile, choose
from dynapot.services.reset import reset
from dynapot.services.shell import FakeShell, finish, interrupt, is_secret, paced, shell_for, take_events
from dynapot.services.ssh_admission import HandshakeBudget, StartupGate
from dynapot.services.ssh_ident import IdentReader, IdentResult
from dynapot.services.ssh_prekex import PreKexGuard, Verdict
from dynapot.services.ssh_profiles import SSHProfile, failure_time, profile_for, user_specific_delay
from dynapot.services.uploads import UploadStore

log = logging.getLogger(__name__)

DEFAULT_KEY_DIR = Path("/var/lib/dynapot/ssh-keys")
DEFAULT_VERSION = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"

# The default accept policy: a few of the pairs every SSH brute-forcer tries first, so bots
# that get in show us their next step. Anything else is refused.
WEAK_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("root", "123456"),
        ("root", "password"),
        ("root", "root"),
        ("root", "toor"),
        ("root", "admin"),
        ("admin", "admin"),
        ("admin", "123456"),
        ("ubuntu", "ubuntu"),
        ("pi", "raspberry"),
        ("test", "test"),
        ("user", "user"),
    }
)

AcceptPolicy = Literal["none", "all"] | frozenset[tuple[str, str]]

MAX_GEX_BITS = 4096  # the largest Diffie-Hellman group-exchange prime we compute with
MAX_SESSIONS = 10  # concurrent session channels per connection (OpenSSH's MaxSessions)
MAX_SESSIONS_TOTAL = 64  # session channels over a connection's life
_BUFSIZE = 16 * 1024
# The identification string of the SSH server a host of each system runs, when nmap named none
# and the configuration fixes none: its distribution's OpenSSH, a router's, Windows' own.
VERSIONS: tuple[Profile[str], ...] = (
    Profile("SSH-2.0-OpenSSH_for_Windows_8.1", os="windows"),
    Profile("SSH-2.0-Cisco-1.25", os="cisco"),
    Profile("SSH-2.0-OpenSSH_7.6p1 Ubuntu-4ubuntu0.7", os="ubuntu-18.04"),
    Profile("SSH-2.0-OpenSSH_7.4", os="centos-7"),
    Profile("SSH-2.0-OpenSSH_5.3", os="centos-6"),
    Profile(DEFAULT_VERSION),
)


@dataclass(frozen=True)
class SSHConfig:
    key_dir: Path = DEFAULT_KEY_DIR
    server_version: str | None = None  # "SSH-2.0-..."; None: what the host's system runs (VERSIONS)
    accept: AcceptPolicy = WEAK_PAIRS  # for passwords; public keys are accepted only with "all"
    hostname: str | None = None  # shell hostname; default: the host's name, as its other services say it
    max_auth_attempts: int = 6
    login_timeout: float = 60.0
    lifetime: float = 600.0
    max_line: int = 1024
    # CPU is a resource an attacker can burn: key exchanges are the dear part of SSH. Past its
    # budget a source's connections wait (a busy machine), dropped only past `handshake_max_wait`.
    handshakes_per_second: float = 4.0  # new connections per source a second, on average
    handshake_burst: int = 10  # ... and at once
    handshake_max_wait: float = 10.0  # seconds a source's queue may hold
    max_startups: tuple[int, int, int] = (10, 30, 100)  # sshd's MaxStartups start:rate:full, per host+source
    # Seconds before a wrong password is turned down (low, high); None: the imitated server's own.
    fail_delay: tuple[float, float] | None = None
    # Seconds from the connection to our identification (low, high); None: the imitated server's own.
    banner_delay: tuple[float, float] | None = None
    # Where files written in a shell session are kept (the sensor's store); None: digests only.
    uploads: UploadStore | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # further asyncssh server options


# -- host keys ------------------------------------------------------------------------------------------


#: Key files per type: the name sshd gives it, and how to make one (ssh-keygen's defaults).
KEY_KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "ssh-ed25519": ("ed25519", {}),
    "ssh-rsa": ("rsa", {"key_size": 3072}),
    "ecdsa-sha2-nistp256": ("ecdsa", {}),
}


class HostKeys:
    """A virtual host's host keys, one per type, created on first use and kept in `key_dir` (0600).

    Keys are per address, so no two virtual hosts share one, and survive restarts like a real
    host's /etc/ssh/ssh_host_*_key.
    """

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = Path(key_dir)
        self._cache: dict[tuple[str, str], asyncssh.SSHKey] = {}

    @staticmethod
    def _name(address: str, kind: str = "ssh-ed25519") -> str:
        try:
            text = str(ipaddress.ip_address(address))
        except ValueError:
            text = "host-" + re.sub(r"[^A-Za-z0-9.-]", "_", address)[:64]
        return f"ssh_host_{KEY_KINDS[kind][0]}_key-" + text.replace(":", "_")

    def get(self, address: str, kind: str = "ssh-ed25519") -> asyncssh.SSHKey:
        key = self._cache.get((address, kind))
        if key is None:
            key = self._load_or_create(self.key_dir / self._name(address, kind), kind)
            self._cache[(address, kind)] = key
        return key

    def get_all(self, address: str, kinds: tuple[str, ...]) -> list[asyncssh.SSHKey]:
        """The host's keys of `kinds`, in that order (an RSA key takes a moment to make)."""
        return [self.get(address, kind) for kind in kinds if kind in KEY_KINDS]

    def cached(self, address: str, kinds: tuple[str, ...]) -> bool:
        return all((address, kind) in self._cache for kind in kinds if kind in KEY_KINDS)

    def _load_or_create(self, path: Path, kind: str) -> asyncssh.SSHKey:
        options = KEY_KINDS[kind][1]
        try:
            return asyncssh.read_private_key(path)
        except FileNotFoundError:
            pass
        except (OSError, asyncssh.KeyImportError) as exc:
            log.warning("ssh host key %s unusable (%s); using a temporary key", path, exc)
            return asyncssh.generate_private_key(kind, **options)
        key = asyncssh.generate_private_key(kind, **options)
        try:
            self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not create_once(path, key.export_private_key(), 0o600):
                return asyncssh.read_private_key(path)  # another process made it first: use theirs
        except OSError as exc:
            log.warning("cannot store ssh host key %s (%s); it will change on restart", path, exc)
        return key


# -- authentication -------------------------------------------------------------------------------------


class _Server(asyncssh.SSHServer):
    """Per-connection authentication policy: report every attempt, bound their number."""

    def __init__(
        self,
        config: SSHConfig,
        report: Report,
        profile: SSHProfile | None = None,
        authenticated: Callable[[], None] | None = None,
        timing_secret: int = 0,
    ) -> None:
        self._config = config
        self._timing_secret = timing_secret  # sshd's, for its per-user failure time
        self._authenticated = authenticated  # MaxStartups counts a connection until this
        self._report = report
        self._profile = profile
        self._attempts = 0
        self._keys_seen: set[tuple[str, str]] = set()
        self._conn: asyncssh.SSHServerConnection | None = None
        self.password: str | None = None  # the accepted login's: the shell's sudo takes it

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        if self._profile is not None:
            _imitate_kexinit(conn, self._profile)

    def begin_auth(self, username: str) -> bool:
        return True

    def auth_completed(self) -> None:
        if self._authenticated is not None:
            self._authenticated()

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def _count(self) -> None:
        self._attempts += 1
        if self._attempts >= self._config.max_auth_attempts and self._conn is not None:
            conn = self._conn
            asyncio.get_running_loop().call_soon(
                conn.disconnect,
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "Too many authentication failures",
            )

    def kbdint_auth_supported(self) -> bool:
        return self._profile.kbdint if self._profile is not None else super().kbdint_auth_supported()

    async def validate_password(self, username: str, password: str) -> bool:
        if self._attempts >= self._config.max_auth_attempts:
            return False
        policy = self._config.accept
        accepted = policy == "all" or (not isinstance(policy, str) and (username, password) in policy)
        user, pw = clip(username), clip(password)
        self._report(Kind.LOGIN, f"{user}:{pw}", {"user": user, "password": pw, "accepted": accepted})
        if accepted:
            self.password = password
        if not accepted:
            # sshd answers a wrong password only after PAM's delay; an instant "no" is a tell.
            low, high = self._config.fail_delay or (self._profile.fail_delay if self._profile else (0.0, 0.0))
            if high > 0:
                await asyncio.sleep(self._failure_time(username, random.uniform(low, high)))
            self._count()
        return accepted

    def _failure_time(self, username: str, pam: float) -> float:
        """PAM's delay, then sshd's per-user minimum (OpenSSH 7.8+) when the profile has it."""
        profile = self._profile
        if self._config.fail_delay is not None or profile is None or not profile.minimum_fail_time:
            return pam
        return failure_time(pam, user_specific_delay(self._timing_secret, username))

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        accepted = self._config.accept == "all"
        fingerprint = key.get_fingerprint()
        # asyncssh asks once for the key query and once for the signed request: report once.
        if (username, fingerprint) not in self._keys_seen:
            if self._attempts >= self._config.max_auth_attempts:
                return False
            self._keys_seen.add((username, fingerprint))
            user = clip(username)
            self._report(
                Kind.LOGIN_KEY,
                f"{user}:{fingerprint}",
                {
                    "user": user,
                    "key_type": key.get_algorithm(),
                    "fingerprint": fingerprint,
                    "accepted": accepted,
                },
            )
            if not accepted:
                self._count()
        return accepted


# -- shell ----------------------------------------------------------------------------------------------


async def _lines(stdin: asyncssh.SSHReader, max_line: int, on_break: Callable[[], None] | None = None):
    """Yield input lines, each at most `max_line` characters; excess of a line is dropped.
    `on_break`: what ^C (the line editor's break) does."""
    buf = ""
    while True:
        try:
            chunk = await stdin.read(_BUFSIZE)
        except asyncssh.BreakReceived:
            if on_break is not None:
                buf = ""
                on_break()
            continue
        except (asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
            continue
        if not chunk:
            if buf.strip():
                yield buf[:max_line]
            return
        buf += chunk.replace("\r\n", "\n").replace("\r", "\n")
        *lines, buf = buf.split("\n")
        for line in lines:
            yield line[:max_line]
        buf = buf[:max_line]


def _make_process_factory(config: SSHConfig, info: ConnectionInfo, report: Report):
    sessions = total = 0

    async def process_factory(process: asyncssh.SSHServerProcess) -> None:
        nonlocal sessions, total
        total += 1
        if sessions >= MAX_SESSIONS or total > MAX_SESSIONS_TOTAL or process.subsystem:
            process.exit(1)
            return
        sessions += 1
        try:
            await _session(process, config, info, report)
        finally:
            sessions -= 1

    return process_factory


async def _session(
    process: asyncssh.SSHServerProcess, config: SSHConfig, info: ConnectionInfo, report: Report
) -> None:
    user = process.get_extra_info("username") or "root"
    identity = info.identity
    # The host's own name (as its web page, SMTP banner and SNMP sysName say it) unless configured.
    owner = process.channel.get_connection().get_owner()
    shell = shell_for(
        identity.system.family,
        identity,
        user,
        hostname=config.hostname,
        peer=info.src,
        password=getattr(owner, "password", None),
        uploads=config.uploads,
    )
    crlf = process.get_terminal_type() is not None
    if isinstance(shell, FakeShell):
        shell.terminal = crlf  # without one, sudo and su refuse to ask for a password
        if process.command is not None:
            shell.command_mode()  # `bash -c`: its errors say "bash: line 1: "
    # the line editor's, in a session with a terminal (without one, the client's own terminal echoes)
    set_echo = getattr(process.channel, "set_echo", None) if crlf else None

    def out(text: str) -> None:
        process.stdout.write(text.replace("\n", "\r\n") if crlf else text)

    async def run(line: str) -> None:
        secret = is_secret(shell)  # a password typed at sudo's or su's prompt: recorded as a login
        if not secret:
            report(Kind.COMMAND, line, None)
        text = shell.execute(line)
        for kind, detail, data in take_events(shell):
            report(kind, detail, data)
        for piece, wait in paced(shell, text):  # what takes the real tools time (wget, sleep)
            out(piece)
            if wait > 0:
                await asyncio.sleep(wait)

    try:
        if process.command is not None:
            await run(process.command[: config.max_line])
            process.exit(shell.status)
            return
        if crlf:
            out(shell.welcome(time.time()))
        out(shell.prompt())

        def interrupted() -> None:  # ^C: bash forgets the line (and sudo its prompt), a new prompt
            interrupt(shell)
            out("^C\n" + shell.prompt())
            if set_echo is not None:
                set_echo(True)

        async for line in _lines(process.stdin, config.max_line, interrupted):
            if line.strip():
                await run(line)
            if shell.exited:
                out("logout\n")
                break
            out(shell.prompt())
            if set_echo is not None:
                set_echo(not is_secret(shell))  # a password prompt is not echoed
        process.exit(0)
    except (asyncssh.Error, OSError, ConnectionError):
        process.close()
    finally:
        for kind, detail, data in finish(shell):  # what the session wrote and never ran
            report(kind, detail, data)


# -- the service ----------------------------------------------------------------------------------------


async def _sent(writer: asyncio.StreamWriter) -> None:
    """Until what was written has left (the sensor's TCP: until it is acknowledged)."""
    await writer.drain()
    while writer.transport.get_write_buffer_size():
        await asyncio.sleep(0.01)


def _offer(options: dict[str, Any], keys: list[asyncssh.SSHKey]) -> dict[str, list[str]]:
    """What our KEXINIT lists, for judging the client's (`PreKexGuard`)."""
    host_algs = [alg.decode("ascii") for key in keys for alg in key.sig_algorithms]
    return {
        "kex": options["kex_algs"],
        "hostkey": host_algs,
        "cipher": options["encryption_algs"],
        "mac": options["mac_algs"],
        "compression": options["compression_algs"],
    }


async def _skip_line(src: asyncio.StreamReader) -> None:
    """Drop asyncssh's own identification line: the client has had ours already."""
    with contextlib.suppress(ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError, OSError):
        await src.readuntil(b"\n")


async def _read_ident(reader: asyncio.StreamReader) -> IdentResult | None:
    """The client's identification, judged as sshd judges it (`IdentReader`); None at EOF."""
    judge = IdentReader()
    try:
        while chunk := await reader.read(_BUFSIZE):
            result = judge.feed(chunk)
            if result.status != "more":
                return result
    except (OSError, ConnectionError):
        pass
    return None


def _imitate_kexinit(conn: asyncssh.SSHServerConnection, profile: SSHProfile) -> None:
    """What asyncssh has no option for, set on the connection before its KEXINIT: the host key
    algorithms in the imitated sshd's order (asyncssh lists each key's in its own), and the
    pseudo-algorithms after the kex list (asyncssh always adds ext-info-s, which OpenSSH servers
    before 9.6 never send). Both are asyncssh internals: without them the lists stay asyncssh's."""
    keys = getattr(conn, "_server_host_keys", None)
    if isinstance(keys, dict) and hasattr(conn, "_server_host_key_algs"):
        wanted = [name.encode("ascii") for name in profile.host_key_algs]
        conn._server_host_key_algs = [alg for alg in wanted if alg in keys]
    extras = [b"ext-info-s"] if profile.ext_info else []
    extras += [b"kex-strict-s-v00@openssh.com"] if profile.strict_kex else []
    if hasattr(conn, "_get_extra_kex_algs"):
        conn._get_extra_kex_algs = lambda: list(extras)  # type: ignore[method-assign]


def _supported(wanted: tuple[str, ...], available: list[bytes]) -> list[str]:
    have = {name.decode("ascii") for name in available}
    return [name for name in wanted if name in have]


def algorithm_options(profile: SSHProfile) -> dict[str, Any]:
    """asyncssh's options for a profile: its lists in its order, less what asyncssh lacks
    (host key algorithms: `_imitate_kexinit`)."""
    from asyncssh import compression, encryption, kex, mac

    return {
        "kex_algs": _supported(profile.kex, kex.get_kex_algs()),
        "encryption_algs": _supported(profile.ciphers, encryption.get_encryption_algs()),
        "mac_algs": _supported(profile.macs, mac.get_mac_algs()),
        "compression_algs": _supported(profile.compression, compression.get_compression_algs()),
        "kbdint_auth": profile.kbdint,
    }


def _imitated_version(info: ConnectionInfo) -> str | None:
    """The software part of the identification string the real hosts sent ("OpenSSH_8.9p1 Ubuntu-3")."""
    if not info.product or not info.product.lower().startswith(("openssh", "dropbear")):
        return None
    line = banner_for(info).decode("latin-1").strip()
    version = line.removeprefix("SSH-2.0-")
    # RFC 4253: printable US-ASCII, no '-' is fine inside softwareversion but no spaces before comments.
    return version if version != line and version.isprintable() and len(version) < 200 else None


def banner_delay(config: SSHConfig, profile: SSHProfile | None) -> tuple[float, float]:
    """Seconds (low, high) to wait before the identification: configured, else the profile's, else none."""
    if config.banner_delay is not None:
        return config.banner_delay
    return profile.banner_delay if profile is not None else (0.0, 0.0)


def _version(config: SSHConfig, info: ConnectionInfo) -> str:
    """The software part of the identification string: nmap's product, the configuration's, the OS's."""
    chosen = config.server_version or choose(VERSIONS, info).what
    return _imitated_version(info) or chosen.removeprefix("SSH-2.0-")


def cap_group_exchange(bits: int = MAX_GEX_BITS) -> None:
    """Offer no Diffie-Hellman group-exchange prime above `bits`.

    A client may ask for 8,192 bits, and each such key exchange costs the server tens of
    milliseconds of CPU: a handful of clients could keep the sensor busy. asyncssh takes the
    groups from one module table and has no setting for it, so the table is trimmed here, once,
    for the whole process (the sensor's only SSH server is this one).
    """
    groups = asyncssh.kex_dh._dh_gex_groups
    asyncssh.kex_dh._dh_gex_groups = tuple(group for group in groups if group[0] <= bits)


def make_handler(config: SSHConfig | None = None) -> Handler:
    """A service handler `(reader, writer, info, report)` serving SSH with `config`."""
    config = config or SSHConfig()
    host_keys = HostKeys(config.key_dir)
    budget = HandshakeBudget(config.handshakes_per_second, config.handshake_burst, config.handshake_max_wait)
    startups = StartupGate(*config.max_startups)

    async def handle_ssh(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        sink = guarded(report, "ssh")
        gate = (info.dst, info.src)  # MaxStartups per host and source: one source cannot lock out others
        if not startups.admit(gate):
            # Too many unauthenticated connections to this host: dropped before the banner, as sshd does.
            sink(Kind.REFUSED, "MaxStartups", {"limit": startups.pending(gate)})
            writer.close()
            return
        pending = True

        def authenticated() -> None:
            nonlocal pending
            if pending:
                pending = False
                startups.done(gate)

        try:
            delay = budget.wait(info.src, time.monotonic())
            if delay is None:  # its queue is full: dropped like MaxStartups drops
                sink(Kind.REFUSED, "handshake rate", {"limit": config.handshakes_per_second})
                writer.close()
                return
            if delay > 0:
                await asyncio.sleep(delay)  # a busy machine answers late, it does not refuse
            await _serve_admitted(reader, writer, info, sink, authenticated)
        finally:
            authenticated()

    async def _serve_admitted(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: ConnectionInfo,
        sink: Report,
        authenticated: Callable[[], None],
    ) -> None:
        version = _version(config, info)
        profile = profile_for(version)
        # sshd speaks first, once its per-connection process is up, then reads the client's.
        low, high = banner_delay(config, profile)
        if high > 0:
            await asyncio.sleep(random.uniform(low, high))
        writer.write(f"SSH-2.0-{version}\r\n".encode("ascii", "replace"))
        wait = min(config.login_timeout, config.lifetime)
        try:
            ident = await asyncio.wait_for(_read_ident(reader), wait)
        except TimeoutError:
            ident = None
            if config.lifetime <= config.login_timeout:
                sink(Kind.TIMEOUT, None, {"lifetime": config.lifetime})
        if ident is None or ident.status != "ok":
            if ident is None:
                writer.close()
                return
            sink(Kind.BAD_REQUEST, f"identification: {ident.status}", None)
            writer.write(ident.reply)
            if ident.reset:
                with contextlib.suppress(TimeoutError, OSError, ConnectionError):
                    await asyncio.wait_for(_sent(writer), 1.0)
                reset(writer)
            else:
                writer.close()
            return
        kinds = profile.key_types if profile is not None else ("ssh-ed25519",)
        if host_keys.cached(info.dst, kinds):
            keys = host_keys.get_all(info.dst, kinds)
        else:  # first contact: an RSA key takes a moment to make, away from the event loop
            keys = await asyncio.to_thread(host_keys.get_all, info.dst, kinds)
        options = algorithm_options(profile) if profile is not None else {}
        timing_secret = info.identity.rng("ssh-timing").getrandbits(64)  # sshd derives its own at start
        ours, theirs = socket.socketpair()
        conn: asyncssh.SSHServerConnection | None = None

        async def serve() -> None:
            nonlocal conn
            try:
                conn = await asyncssh.run_server(
                    theirs,
                    server_factory=lambda: _Server(config, sink, profile, authenticated, timing_secret),
                    server_host_keys=keys,
                    server_version=version,
                    process_factory=_make_process_factory(config, info, sink),
                    login_timeout=config.login_timeout,
                    agent_forwarding=False,
                    x11_forwarding=False,
                    allow_scp=False,
                    max_line_length=config.max_line,
                    **{**options, **config.extra},
                )
                await conn.wait_closed()
            except (asyncssh.Error, OSError, ConnectionError, TimeoutError):
                pass  # refused logins, protocol errors, peers going away
            except Exception:
                log.exception("ssh: serving %s -> %s failed", info.src, info.dst)  # a bug: say so

        bridge_r, bridge_w = await asyncio.open_connection(sock=ours)
        bridge_w.write(ident.line)  # asyncssh reads the identification we judged
        guard = PreKexGuard(_offer(options, keys)) if profile is not None else None
        server_spoke = asyncio.Event()  # asyncssh's first packet has gone to the client
        ended = asyncio.Event()  # the guard closed the connection: asyncssh's words are dropped

        async def to_client() -> None:
            await _skip_line(bridge_r)  # the client has had our identification already
            try:
                while chunk := await bridge_r.read(_BUFSIZE):
                    if ended.is_set():
                        return
                    writer.write(chunk)
                    await writer.drain()
                    server_spoke.set()
                if not ended.is_set() and writer.can_write_eof():
                    writer.write_eof()
            except (OSError, ConnectionError, RuntimeError):
                pass

        async def from_client() -> None:
            data = ident.rest
            try:
                while True:
                    verdict = guard.feed(data) if guard is not None else Verdict("pass", forward=data)
                    if verdict.status == "close":
                        # After sshd's KEXINIT, as sshd would: its DISCONNECT or nothing, then the end.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(server_spoke.wait(), 2.0)
                        ended.set()
                        why = "disconnect" if verdict.reply else "close"
                        sink(Kind.BAD_REQUEST, f"key exchange: {why}", None)
                        writer.write(verdict.reply)
                        writer.close()
                        bridge_w.close()
                        return
                    if verdict.forward:
                        bridge_w.write(verdict.forward)
                        await bridge_w.drain()
                    data = await reader.read(_BUFSIZE)
                    if not data:
                        break
                if bridge_w.can_write_eof():
                    bridge_w.write_eof()
            except (OSError, ConnectionError, RuntimeError):
                pass

        tasks = [asyncio.create_task(serve()), asyncio.create_task(from_client())]
        try:
            # Everything ends with asyncssh closing its end of the pair.
            await asyncio.wait_for(to_client(), config.lifetime)
        except TimeoutError:
            sink(Kind.TIMEOUT, None, {"lifetime": config.lifetime})
        finally:
            if conn is not None:
                conn.abort()
            bridge_w.close()  # asyncssh sees EOF and lets go of its socket
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), 5.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if tasks[0].cancelled() and conn is None:
                theirs.close()
            writer.close()

    return handle_ssh


def preload() -> None:
    """Import every asyncssh module now: it loads algorithms lazily, and after the sensor drops
    root the Python installation may no longer be readable (a per-user interpreter, for one)."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(asyncssh.__path__, "asyncssh."):
        try:
            importlib.import_module(module.name)
        except Exception:  # noqa: S112 - optional back-ends (GSSAPI, PKCS#11...) may be missing
            continue


def match_openssh_limits() -> None:
    """Take identification lines up to OpenSSH's 8,192 bytes: asyncssh stops at RFC 4253's 255,
    which sshd does not enforce, so a long client version would tell them apart (module constant)."""
    from asyncssh import connection

    if getattr(connection, "_MAX_VERSION_LINE_LEN", 0) < 8192:
        connection._MAX_VERSION_LINE_LEN = 8192


cap_group_exchange()
match_openssh_limits()
ssh_pq.register()
SERVICES = (Service(("ssh",), "tcp", make_handler(), preload),)

__all__ = ["DEFAULT_VERSION", "SERVICES", "WEAK_PAIRS", "SSHConfig", "make_handler"]
