"""Telnet emulator: real option negotiation, an OS-fitting login, then a fake shell.

Two sans-IO layers do the work: `TelnetOptions` speaks the telnet protocol (RFC 854/855 option
negotiation, subnegotiation, IAC escaping; fed bytes, it returns the user's data and the replies
owed), and `TelnetSession` is the terminal a user sees (echo, line editing, login prompts, the
shell), fed bytes and returning an `Output`. `make_handler` builds the thin IO loop around them.

What an attacker sees per virtual host: the negotiation and login screens of the telnet server
it runs (`SERVERS`: nmap's product, else its OS: Linux telnetd with its distribution's issue, a
Cisco IOS router, Microsoft Telnet Service, BusyBox), the host's own name, and after a
"successful" login a shell of the same kind (`shell.shell_for`: bash with the host's MOTD, a
small IOS exec, a small cmd.exe). Reported events:
  login     "user:password"  {"user", "password", "accepted"}
  command   the command line
  terminal  the terminal type {"type"}       environ  variables sent {"vars"} (NEW-ENVIRON)
  timeout   None              {"seconds"}
Bounds: login attempts (then hang up), subnegotiation size, line length, login time, idle
time, connection lifetime; output per command is bounded by the shells.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Handler, Report, Service, clip, guarded
from dynapot.services.profiles import Profile, choose
from dynapot.services.shell import Shell, finish, interrupt, is_secret, one_pause, shell_for, take_events
from dynapot.services.ssh import WEAK_PAIRS, AcceptPolicy
from dynapot.services.telnet_busybox import BusyboxTelnetd
from dynapot.services.telnet_pty import Pty
from dynapot.services.uploads import UploadStore

log = logging.getLogger(__name__)

# Telnet commands (RFC 854) and the options we deal with.
SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB = 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250
WILL, WONT, DO, DONT, IAC = 251, 252, 253, 254, 255
BINARY, ECHO, SGA, STATUS, TTYPE, NAWS = 0, 1, 3, 5, 24, 31
TSPEED, LFLOW, XDISPLOC, AUTHENTICATION, NEW_ENVIRON = 32, 33, 35, 37, 39
_IS, _SEND, _INFO = 0, 1, 2
_VAR, _VALUE, _ESC, _USERVAR = 0, 1, 2, 3

SB_LIMIT = 512  # bytes of one subnegotiation kept; the rest is dropped
MAX_ENV = 32  # environment variables kept from one client

# What Mirai-style bots try on telnet first, on top of SSH's weak pairs.
TELNET_PAIRS: frozenset[tuple[str, str]] = WEAK_PAIRS | frozenset(
    {
        ("root", "xc3511"),
        ("root", "vizxv"),
        ("root", "888888"),
        ("root", "default"),
        ("admin", "password"),
        ("support", "support"),
        ("cisco", "cisco"),
    }
)


WEAK_PER_HOST = 4  # pairs of TELNET_PAIRS each host accepts under the "weak" policy


@dataclass(frozen=True)
class TelnetConfig:
    """How telnet serves. `accept` is the login policy: "weak" (the default) lets in a small
    set of `TELNET_PAIRS` of the host's own (`WEAK_PER_HOST`, drawn from its seed, so hosts
    differ and one host never changes its mind), "none" nobody, "all" anyone, or an explicit
    set of (user, password) pairs."""

    accept: AcceptPolicy | Literal["weak"] = "weak"
    max_attempts: int = 3  # failed logins, then hang up
    fail_delay: float | None = None  # before "Login incorrect", as login(1) waits; None: the server's own
    negotiation_wait: float | None = None  # how long to wait for option answers; None: the OS's own
    login_timeout: float = 60.0  # login(1)'s LOGIN_TIMEOUT
    idle_timeout: float = 300.0
    lifetime: float = 900.0
    max_line: int = 1024
    write_timeout: float = 30.0
    uploads: UploadStore | None = None  # keeps the files its shells' sessions write (the sensor's store)


Event = tuple[Kind, str | None, dict[str, Any] | None]


# -- the telnet protocol --------------------------------------------------------------------------------


class TelnetOptions:
    """Option negotiation and IAC parsing, sans-IO: `feed(bytes) -> (data, replies)`.

    `ours` are the options we agree to perform (WILL), `theirs` those we let the client perform
    (DO). Requests we make are tracked so that the client's answer is not answered again (no
    negotiation loops, RFC 1143's rule in small); anything else is refused once per request.
    """

    _DATA, _IAC, _VERB, _SB, _SB_IAC, _CR = range(6)

    def __init__(self, ours: Iterable[int], theirs: Iterable[int]) -> None:
        self._ours = frozenset(ours)
        self._theirs = frozenset(theirs)
        self.local: dict[int, str] = {}  # option -> "yes" | "no" | "want": our side
        self.remote: dict[int, str] = {}  # option -> "yes" | "no" | "want": the client's side
        self._awaiting: set[int] = set()  # subnegotiation answers we asked for (SEND)
        self._state = self._DATA
        self._verb = 0
        self._sb = bytearray()
        self.terminal: str | None = None
        self.window: tuple[int, int] | None = None
        self.environ: dict[str, str] = {}
        self.events: list[Event] = []  # what the client told us, for the session to report

    # requests we make ---------------------------------------------------------------------------------

    def will(self, option: int) -> bytes:
        self.local[option] = "want"
        return bytes((IAC, WILL, option))

    def do(self, option: int) -> bytes:
        self.remote[option] = "want"
        return bytes((IAC, DO, option))

    @property
    def pending(self) -> bool:
        """Whether answers we asked for are still outstanding."""
        return bool(self._awaiting) or "want" in self.local.values() or "want" in self.remote.values()

    @property
    def echoing(self) -> bool:
        """Whether we echo: yes unless the client refused it (it then echoes itself)."""
        return self.local.get(ECHO) != "no"

    # parsing -----------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """The user's bytes in `data` (IAC sequences removed, CR NUL made CR) and our replies."""
        if self._state == self._DATA and IAC not in data and b"\r" not in data:
            return data, b""
        out = bytearray()
        replies = bytearray()
        for byte in data:
            state = self._state
            if state == self._DATA or state == self._CR:
                self._state = self._DATA
                if byte == IAC:
                    self._state = self._IAC
                elif state == self._CR and byte == 0:
                    pass  # CR NUL is a bare carriage return
                else:
                    out.append(byte)
                    if byte == 13:
                        self._state = self._CR
            elif state == self._IAC:
                self._state = self._DATA
                if byte == IAC:
                    out.append(IAC)
                elif byte in (WILL, WONT, DO, DONT):
                    self._verb = byte
                    self._state = self._VERB
                elif byte == SB:
                    self._sb.clear()
                    self._state = self._SB
                elif byte == AYT:
                    replies += b"\r\n[Yes]\r\n"
                elif byte == IP:
                    out.append(3)  # an interrupt is ^C to the terminal
                elif byte == EC:
                    out.append(0x7F)
                elif byte == EL:
                    out.append(0x15)
                # NOP, DM, BRK, AO, GA, SE out of place: nothing to do
            elif state == self._VERB:
                self._state = self._DATA
                replies += self._negotiate(self._verb, byte)
            elif state == self._SB:
                if byte == IAC:
                    self._state = self._SB_IAC
                elif len(self._sb) < SB_LIMIT:
                    self._sb.append(byte)
            else:  # _SB_IAC
                if byte == SE:
                    self._state = self._DATA
                    self._subnegotiation(bytes(self._sb))
                elif byte == IAC:
                    self._state = self._SB
                    if len(self._sb) < SB_LIMIT:
                        self._sb.append(IAC)
                else:
                    self._state = self._SB  # a stray IAC inside SB: keep going, bounded by SB_LIMIT
        return bytes(out), bytes(replies)

    def _negotiate(self, verb: int, option: int) -> bytes:
        if verb in (DO, DONT):
            table, supported, yes, no = self.local, self._ours, WILL, WONT
        else:
            table, supported, yes, no = self.remote, self._theirs, DO, DONT
        state = table.get(option, "no")
        if verb in (DO, WILL):
            if state == "yes":
                return b""
            if option in supported:
                table[option] = "yes"
                reply = b"" if state == "want" else bytes((IAC, yes, option))
                return reply + self._enabled(verb, option)
            table[option] = "no"
            # Refused, or asked for only to look like the real server (Windows' AUTHENTICATION): say no.
            return bytes((IAC, no, option))
        # DONT / WONT
        table[option] = "no"
        self._awaiting.discard(option)
        return bytes((IAC, no, option)) if state == "yes" else b""

    def _enabled(self, verb: int, option: int) -> bytes:
        """Ask for what a newly enabled client option can tell us."""
        if verb == WILL and option in (TTYPE, NEW_ENVIRON):
            self._awaiting.add(option)
            return bytes((IAC, SB, option, _SEND, IAC, SE))
        return b""

    def _subnegotiation(self, sb: bytes) -> None:
        if not sb:
            return
        option, body = sb[0], sb[1:]
        if option == TTYPE and body[:1] == bytes((_IS,)):
            self._awaiting.discard(TTYPE)
            name = body[1:65].decode("ascii", "replace")
            if self.terminal is None:
                self.terminal = name
                self.events.append((Kind.TERMINAL, clip(name), {"type": clip(name)}))
        elif option == NAWS and len(body) >= 4:
            self.window = (body[0] << 8 | body[1], body[2] << 8 | body[3])
        elif option == NEW_ENVIRON and body[:1] in (bytes((_IS,)), bytes((_INFO,))):
            self._awaiting.discard(NEW_ENVIRON)
            found = _parse_environ(body[1:])
            for name, value in found.items():
                if len(self.environ) < MAX_ENV or name in self.environ:
                    self.environ[name] = value
            if found:
                self.events.append((Kind.ENVIRON, clip(", ".join(found)), {"vars": dict(found)}))


def _parse_environ(body: bytes) -> dict[str, str]:
    """NEW-ENVIRON's VAR/USERVAR name VALUE value list (RFC 1572), ESC honoured."""
    found: dict[str, str] = {}
    name: bytearray | None = None
    value: bytearray | None = None
    escaped = False

    def flush() -> None:
        if name is not None and len(found) < MAX_ENV:
            key = clip(name.decode("latin-1"))
            found[key] = clip((value or b"").decode("latin-1"))

    for byte in body:
        if escaped:
            escaped = False
        elif byte == _ESC:
            escaped = True
            continue
        elif byte in (_VAR, _USERVAR):
            flush()
            name, value = bytearray(), None
            continue
        elif byte == _VALUE:
            value = bytearray()
            continue
        target = value if value is not None else name
        if target is not None:
            target.append(byte)
    flush()
    return found


# -- servers: what each kind of host shows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Telnetd:
    """One telnet server: how it negotiates, and which login screens (`kind`) it shows."""

    kind: str  # "linux", "busybox", "bsd", "cisco", "windows"
    ours: frozenset[int]  # options we perform
    theirs: frozenset[int]  # options we let the client perform
    opening: tuple[tuple[int, int], ...]  # the requests we send first, (WILL|DO, option)
    later: tuple[tuple[int, int], ...]  # requests sent along with the banner
    wait: float  # seconds to wait for answers before showing the banner
    protocol: Literal["rfc", "busybox"] = "rfc"  # who parses the stream: `TelnetOptions`, or BusyBox's
    pty: bool = False  # the login runs on a pty (`telnet_pty.Pty`) that echoes and edits the line
    fail_delay: float = 2.0  # seconds before "Login incorrect"
    fail_jitter: float = 0.0  # the delay varies by this fraction either way (PAM's: 25 %)
    # Seconds (at least, at most) between the opening requests and the login screen.
    opening_gap: tuple[float, float] = (0.0, 0.0)
    opening_merged: float = 0.0  # the share of connections where both leave in one segment
    # Seconds (at least, at most) between the issue and the login prompt, each then a segment of
    # its own: BusyBox telnetd's child prints the issue, then execs login, which prompts ...
    prompt_gap: tuple[float, float] = (0.0, 0.0)
    prompt_merged: float = 0.0  # ... except in this share of connections, where they leave together


_LINUX = Telnetd(
    "linux",
    frozenset({ECHO, SGA, STATUS}),
    frozenset({TTYPE, TSPEED, XDISPLOC, NEW_ENVIRON, NAWS, LFLOW, BINARY}),
    # What Linux telnetd sends first (nmap's "Linux telnetd" signature), then after the answers:
    ((DO, TTYPE), (DO, TSPEED), (DO, XDISPLOC), (DO, NEW_ENVIRON)),
    ((WILL, SGA), (WILL, ECHO), (DO, NAWS)),
    8.0,
)
_BSD = Telnetd("bsd", _LINUX.ours, _LINUX.theirs, _LINUX.opening, _LINUX.later, 8.0)
# BusyBox telnetd (1.35, recorded in the lab): four requests, then silence; the system's login
# (/bin/login with PAM on a distribution, FAIL_DELAY 3) on a pty. nmap -sV names no product.
_BUSYBOX = Telnetd(
    "busybox",
    frozenset(),
    frozenset(),
    ((DO, ECHO), (DO, NAWS), (WILL, ECHO), (WILL, SGA)),
    (),
    0.0,
    protocol="busybox",
    pty=True,
    fail_delay=3.0,
    fail_jitter=0.25,
    # On the wire (bench/bench_service_timing.py, 50 connections to the lab's BusyBox 1.35 telnetd,
    # one at a time): telnetd sends its four requests at once (0.1-0.3 ms after the SYN/ACK); its
    # forked child writes the issue into the pty (0.4-8 ms, median 2.4), then execs login, whose
    # prompt follows (2.7-11 ms after the SYN/ACK, median 3.3) in a segment of its own, or in the
    # issue's in 9 of 50. The issue never joined the requests' segment in those 50 (2 of 10 in
    # session 6's busier lab, when nmap -sV could name the product). The pauses below are those
    # figures less the sensor's own path (about 0.8 ms from the SYN/ACK to a service's write).
    opening_gap=(0.0002, 0.003),
    prompt_gap=(0.0003, 0.0025),
    prompt_merged=0.18,
)
_CISCO = Telnetd(
    "cisco",
    frozenset({ECHO, SGA}),
    frozenset({TTYPE, NAWS}),
    ((WILL, ECHO), (WILL, SGA), (DO, TTYPE), (DO, NAWS)),
    (),
    0.0,
)
_WINDOWS = Telnetd(
    "windows",
    frozenset({ECHO, SGA, BINARY}),
    frozenset({NEW_ENVIRON, NAWS, BINARY, TTYPE}),
    # NTLM AUTHENTICATION is asked for as Windows does (nmap's signature), and declined if offered.
    (
        (DO, AUTHENTICATION),
        (WILL, ECHO),
        (WILL, SGA),
        (DO, NEW_ENVIRON),
        (DO, NAWS),
        (DO, BINARY),
        (WILL, BINARY),
    ),
    (),
    1.0,
)


# nmap's product first, then the host's system. nmap names netkit's telnetd "Linux telnetd", so
# a Linux host whose scan named no product runs another one: BusyBox's, as most do.
SERVERS: tuple[Profile[Telnetd], ...] = (
    Profile(_WINDOWS, "microsoft"),
    Profile(_WINDOWS, "windows"),
    Profile(_CISCO, "cisco"),
    Profile(_BUSYBOX, "busybox"),
    Profile(_BSD, "bsd"),
    Profile(_LINUX, "linux"),
    Profile(_WINDOWS, os="windows"),
    Profile(_CISCO, os="cisco"),
    Profile(_BUSYBOX, os="busybox"),
    Profile(_BSD, os="bsd"),
    Profile(_BUSYBOX),
)


def telnetd_for(info: ConnectionInfo) -> Telnetd:
    """The telnet server this host runs."""
    return choose(SERVERS, info).what


# -- the session: what the user's terminal shows --------------------------------------------------------


@dataclass(slots=True)
class Output:
    """What to send, as the IO edge writes it: `send` now, then after `delay` seconds `later`,
    then each of `then` (seconds, bytes) after its pause. Each is a write of its own, and so a
    segment of its own on the wire (the sensor's TCP sends each write at once)."""

    send: bytes = b""
    events: list[Event] = field(default_factory=list)
    close: bool = False
    delay: float = 0.0  # then send `later`
    later: bytes = b""
    then: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, data: bytes | str) -> None:
        if self.then:
            pause, text = self.then[-1]
            self.then[-1] = (pause, text + _wire(data))
        elif self.delay:
            self.later += _wire(data)
        else:
            self.send += _wire(data)

    def pause(self, seconds: float) -> None:
        """What is added next leaves `seconds` after what was added before, in a write of its own."""
        if seconds <= 0:
            return
        if not self.delay and not self.later and not self.then:
            self.delay = seconds
        else:
            self.then.append((seconds, b""))

    @property
    def data(self) -> bytes:
        """Everything to send, in order, as one byte string."""
        return b"".join(data for _, data in self.writes)

    @property
    def writes(self) -> list[tuple[float, bytes]]:
        """Every write in order, as (pause before it, bytes): what `_emit` does. The pause before
        an empty piece still passes, before the next write."""
        found, pending = [], 0.0
        for pause, data in [(0.0, self.send), (self.delay, self.later), *self.then]:
            pending += pause
            if data:
                found.append((pending, data))
                pending = 0.0
        return found


def _wire(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    # Terminal output: LF becomes CR LF, and a 0xFF in text must be doubled on a telnet stream.
    raw = data.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace")
    return raw.replace(b"\xff", b"\xff\xff")


_NEGOTIATING, _USER, _PASSWORD, _SHELL, _CLOSED = "negotiating", "user", "password", "shell", "closed"


class TelnetSession:
    """One telnet login and shell, sans-IO: `start()`, then `receive(bytes)`, each -> Output."""

    def __init__(self, info: ConnectionInfo, config: TelnetConfig | None = None) -> None:
        self.config = config or TelnetConfig()
        self.info = info
        self.server = telnetd_for(info)
        self.hostname = info.identity.hostname
        self.options: TelnetOptions | BusyboxTelnetd = (
            BusyboxTelnetd()
            if self.server.protocol == "busybox"
            else TelnetOptions(self.server.ours, self.server.theirs)
        )
        self.pty = Pty() if self.server.pty else None
        self.device = "busybox" in info.identity.system.tags  # a BusyBox system, not a distribution
        self.state = _NEGOTIATING
        self.user = ""
        self.failures = 0
        self.shell: Shell | None = None
        self._line = bytearray()
        self._esc = 0  # 0: none, 1: after ESC, 2: inside a CSI/SS3 sequence
        self._cr = False

    @property
    def wait(self) -> float:
        wait = self.config.negotiation_wait
        return self.server.wait if wait is None else wait

    @property
    def negotiating(self) -> bool:
        return self.state == _NEGOTIATING

    @property
    def authenticated(self) -> bool:
        return self.state == _SHELL

    # entry points ------------------------------------------------------------------------------------

    def start(self) -> Output:
        out = Output()
        options = self.options
        for verb, option in self.server.opening:
            if isinstance(options, BusyboxTelnetd):
                out.add(bytes((IAC, verb, option)))  # asked, never tracked: BusyBox ignores answers
            else:
                out.add(options.will(option) if verb == WILL else options.do(option))
        low, high = self.server.opening_gap
        if high > 0 and random.random() >= self.server.opening_merged:
            out.delay = random.uniform(low, high)
        if self.wait <= 0:
            self._banner(out)
        return out

    def settle(self) -> Output:
        """The negotiation wait is over: show the login screen with what we know."""
        out = Output()
        if self.state == _NEGOTIATING:
            self._banner(out)
        return out

    def receive(self, data: bytes) -> Output:
        clean, replies = self.options.feed(data)
        out = Output(send=replies)
        out.events.extend(self.options.events)
        self.options.events.clear()
        if self.state == _NEGOTIATING and (clean or not self.options.pending):
            self._banner(out)  # all answered, or the user types already
        if self.pty is not None and self.state in (_USER, _PASSWORD):
            self._typed(clean, out)
            return out
        for byte in clean:
            if self.state == _CLOSED:
                break
            self._key(byte, out)
        return out

    def timed_out(self) -> Output:
        """No input for too long (login time in the login dialogue, idle time in the shell)."""
        out = Output(close=True)
        self.state = _CLOSED
        seconds = self.config.idle_timeout if self.shell else self.config.login_timeout
        out.events.append((Kind.TIMEOUT, None, {"seconds": seconds}))
        kind = self.server.kind
        if self.shell is not None:
            if kind in ("linux", "bsd", "busybox"):
                out.add("\ntimed out waiting for input: auto-logout\n")
        elif kind in ("linux", "bsd") or (kind == "busybox" and not self.device):
            self._say(out, f"\nLogin timed out after {int(seconds)} seconds.\n")
        elif kind == "cisco":
            out.add("\n% Username:  timeout expired!\n")
        return out

    # screens ------------------------------------------------------------------------------------------

    def _banner(self, out: Output) -> None:
        for verb, option in self.server.later:
            out.add(self.options.will(option) if verb == WILL else self.options.do(option))
        kind = self.server.kind
        if kind in ("linux", "bsd"):
            out.add(self.info.identity.issue_net())  # the host's own distribution
        elif kind == "busybox":
            # print_login_issue(): puts("\r"), then /etc/issue.net with each LF written as LF CR.
            self._say(out, "\r\n" + self.info.identity.issue_net().replace("\n", "\n\r"))
            low, high = self.server.prompt_gap
            if high > 0 and random.random() >= self.server.prompt_merged:
                out.pause(random.uniform(low, high))  # login(1) starts, then prompts
        elif kind == "cisco":
            out.add("\n\nUser Access Verification\n\n")
        elif kind == "windows":
            out.add("Welcome to Microsoft Telnet Service \n\n")
        # `telnet -l user` sends USER in the environment: login then asks only for the password.
        preset = self.options.environ.get("USER", "").strip()
        if preset and kind in ("linux", "bsd", "windows"):
            self.user = clip(preset)
            self.state = _PASSWORD
            out.add(self._password_prompt())
        else:
            self.state = _USER
            self._say(out, self._login_prompt())

    def _login_prompt(self) -> str:
        kind = self.server.kind
        if kind == "cisco":
            return "Username: "
        if kind in ("windows", "bsd"):
            return "login: "
        return f"{self.hostname} login: "

    def _password_prompt(self) -> str:
        return "password: " if self.server.kind == "windows" else "Password: "

    def _welcome(self) -> str:
        kind = self.server.kind
        if kind == "windows":
            line = "*" + "=" * 63
            return f"\n{line}\nMicrosoft Telnet Server.\n{line}\n"
        if kind == "cisco":
            return "\n"
        if kind == "busybox" and self.device:
            return "\n\nBusyBox v1.31.1 () built-in shell (ash)\n\n"
        assert self.shell is not None
        return self.shell.welcome(time.time())  # the host's MOTD and "Last login"

    def _failed(self, last: bool) -> str:
        kind = self.server.kind
        if kind == "cisco":
            return "% Login invalid\n\n" + ("" if last else self._login_prompt())
        if kind == "windows":
            tail = "Telnet Server has closed the connection\n" if last else self._login_prompt()
            return "The handle is invalid.\n\nLogin Failed\n\n" + tail
        return "\nLogin incorrect\n" + ("" if last else self._login_prompt())

    def _new_shell(self, password: str) -> Shell:
        kind = "linux" if self.server.kind == "busybox" and not self.device else self.server.kind
        return shell_for(
            kind,
            self.info.identity,
            self.user,
            peer=self.info.src,
            via="telnet",
            password=password,  # sudo takes the login's own for a sudoer
            uploads=self.config.uploads,
        )

    def close(self) -> list[Event]:
        """The connection ends: what the shell still has to record (files written and never run)."""
        return finish(self.shell) if self.shell is not None else []

    # the login's pty (BusyBox) ------------------------------------------------------------------------

    def _say(self, out: Output, text: str) -> None:
        """What login writes: through the pty when there is one (ONLCR, its column, ^S), and
        with 0xFF doubled as telnetd does; else straight to the wire."""
        if self.pty is None:
            out.add(text)
            return
        data = self.pty.write(text.encode("utf-8", "replace"))
        out.add(data.replace(b"\xff", b"\xff\xff"))

    def _typed(self, data: bytes, out: Output) -> None:
        """Keys typed during the login dialogue: the pty echoes and edits; login reads lines."""
        assert self.pty is not None
        typed = self.pty.feed(data)
        out.add(typed.echo.replace(b"\xff", b"\xff\xff"))
        for kind, line, terminated in typed.items:
            if self.state == _CLOSED:
                break
            if kind == "signal":
                if line != b"TSTP":  # ^C, ^\\: login dies, telnetd hangs up
                    self.state = _CLOSED
                    out.close = True
                continue
            if kind == "eof":  # ^D on an empty line: PAM ends the line and login waits on (lab)
                self._say(out, "\n")
                continue
            before = self.state
            if before == _PASSWORD or (not terminated and self.pty.echo):
                self._say(out, "\n")  # PAM ends a line the terminal did not (hidden, or cut by ^D)
            self._enter_login(line.decode("utf-8", "replace"), out)
            if self.state == _PASSWORD and before == _USER:
                self.pty.flush_input()  # TCSAFLUSH with the echo turned off: typed-ahead lines go
                break
            if self.state == _SHELL:
                break

    def _enter_login(self, line: str, out: Output) -> None:
        assert self.pty is not None
        if self.state == _USER:
            self.user = clip(line.strip())  # an empty name too: PAM asks for its password (lab)
            self.state = _PASSWORD
            self.pty.echo = False
            self._say(out, self._password_prompt())
        else:
            self.pty.echo = True
            self._login(line, out)

    # the terminal -------------------------------------------------------------------------------------

    def _echo(self, out: Output, data: bytes) -> None:
        if self.state != _PASSWORD and self.options.echoing and not self._secret():
            out.add(data.replace(b"\xff", b"\xff\xff"))

    def _key(self, byte: int, out: Output) -> None:
        if self._esc:
            # Cursor keys and the like (ESC [ ... final, ESC O x): swallowed, as readline would.
            if self._esc == 1:
                self._esc = 2 if byte in (0x5B, 0x4F) else 0
            elif 0x40 <= byte <= 0x7E:
                self._esc = 0
            return
        if byte in (13, 10):
            if byte == 10 and self._cr:
                self._cr = False
                return  # the LF of a CR LF
            self._cr = byte == 13
            if self.options.echoing or self.state == _PASSWORD or self._secret():
                out.add(b"\r\n")  # the echoed line end, or the newline after a hidden password
            line = bytes(self._line).decode("utf-8", "replace")
            self._line.clear()
            self._enter(line, out)
            return
        self._cr = False
        if byte == 0x1B:
            self._esc = 1
        elif byte in (0x7F, 0x08):
            if self._line:
                self._line.pop()
                self._echo(out, b"\b \b")
        elif byte == 0x15:  # ^U: kill the line
            self._echo(out, b"\b \b" * len(self._line))
            self._line.clear()
        elif byte == 0x03:  # ^C
            self._line.clear()
            if self.shell is not None:
                interrupt(self.shell)  # bash forgets an unfinished line, sudo its password prompt
            if self.state in (_SHELL, _USER):
                out.add("^C\n")
                out.add(self.shell.prompt() if self.shell else self._login_prompt())
        elif byte == 0x04:  # ^D on an empty line ends the session
            if not self._line:
                if self.shell is not None and self.server.kind in ("linux", "bsd", "busybox"):
                    out.add("logout\n")
                self.state = _CLOSED
                out.close = True
        elif (byte >= 0x20 or byte == 0x09) and len(self._line) < self.config.max_line:
            self._line.append(byte)
            self._echo(out, bytes((byte,)))

    def _enter(self, line: str, out: Output) -> None:
        if self.state == _USER:
            name = line.strip()
            if not name:
                out.add(self._login_prompt())
                return
            self.user = clip(name)
            self.state = _PASSWORD
            out.add(self._password_prompt())
        elif self.state == _PASSWORD:
            self._login(line, out)
        elif self.state == _SHELL and self.shell is not None:
            secret = is_secret(self.shell)  # a password typed at sudo's or su's prompt: a login event
            if line.strip() or secret:
                if not secret:
                    out.events.append((Kind.COMMAND, clip(line), None))
                text = self.shell.execute(line)
                out.events.extend(take_events(self.shell))
                now, wait, later = one_pause(self.shell, text)
                out.add(now)  # then, after what takes the real tools time (wget, sleep), the rest
                out.delay = wait
                out.add(later)
            if self.shell.exited:
                if self.server.kind in ("linux", "bsd", "busybox"):
                    out.add("logout\n")
                self.state = _CLOSED
                out.close = True
                return
            out.add(self.shell.prompt())

    def _secret(self) -> bool:
        """Whether the shell waits for a password (sudo, su): not echoed, not recorded as a command."""
        return self.state == _SHELL and self.shell is not None and is_secret(self.shell)

    def accepts(self, user: str, password: str) -> bool:
        """Whether the login policy lets this pair in on this host."""
        policy = self.config.accept
        if policy == "weak":
            pool = sorted(TELNET_PAIRS)
            return (user, password) in self.info.identity.rng("telnet-logins").sample(pool, WEAK_PER_HOST)
        return policy == "all" or (not isinstance(policy, str) and (user, password) in policy)

    def _login(self, password: str, out: Output) -> None:
        accepted = self.accepts(self.user, password)
        pw = clip(password)
        out.events.append(
            (Kind.LOGIN, f"{self.user}:{pw}", {"user": self.user, "password": pw, "accepted": accepted})
        )
        if accepted:
            self.state = _SHELL
            self.shell = self._new_shell(password)
            out.add(self._welcome())
            out.add(self.shell.prompt())
            return
        self.failures += 1
        last = self.failures >= self.config.max_attempts
        delay = self.config.fail_delay
        if delay is None:
            jitter = self.server.fail_jitter
            delay = self.server.fail_delay * random.uniform(1 - jitter, 1 + jitter)
        out.delay = delay
        self._say(out, self._failed(last))
        if last:
            self.state = _CLOSED
            out.close = True
        else:
            self.state = _USER


# -- the IO loop ----------------------------------------------------------------------------------------


async def _emit(writer: asyncio.StreamWriter, out: Output, report: Report, timeout: float) -> None:
    for kind, detail, data in out.events:
        report(kind, detail, data)
    for pause, data in out.writes:
        if pause > 0:
            await asyncio.sleep(pause)
        writer.write(data)
        await asyncio.wait_for(writer.drain(), timeout)


def make_handler(config: TelnetConfig | None = None) -> Handler:
    """A service handler `(reader, writer, info, report)` serving telnet with `config`."""
    config = config or TelnetConfig()

    async def serve_telnet(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        sink = guarded(report, "telnet")
        session = TelnetSession(info, config)
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + config.lifetime
        try:
            await _emit(writer, session.start(), sink, config.write_timeout)
            while True:
                now = loop.time()
                if session.negotiating:
                    deadline = start + session.wait
                elif session.authenticated:
                    deadline = now + config.idle_timeout
                else:
                    deadline = start + config.login_timeout
                if now >= end:
                    sink(Kind.TIMEOUT, None, {"lifetime": config.lifetime})
                    break
                try:
                    data = await asyncio.wait_for(reader.read(4096), max(0.0, min(deadline, end) - now))
                except TimeoutError:
                    if loop.time() >= end:
                        continue  # reported above
                    out = session.settle() if session.negotiating else session.timed_out()
                else:
                    if not data:
                        break
                    out = session.receive(data)
                await _emit(writer, out, sink, config.write_timeout)
                if out.close:
                    break
        except (OSError, ConnectionError, TimeoutError):
            pass  # the client went away, or stopped reading
        except Exception:
            log.exception("telnet: serving %s -> %s failed", info.src, info.dst)  # a bug: say so
        finally:
            for kind, detail, data in session.close():
                sink(kind, detail, data)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    return serve_telnet


SERVICES = (Service(("telnet",), "tcp", make_handler()),)


__all__ = [
    "SERVERS",
    "SERVICES",
    "TELNET_PAIRS",
    "WEAK_PER_HOST",
    "Output",
    "TelnetConfig",
    "TelnetOptions",
    "TelnetSession",
    "make_handler",
    "telnetd_for",
]
