"""The shells behind the emulated logins (ssh, telnet): a pure fake bash, and `shell_for`.

Nothing here touches the real system or the network: a `FakeShell` is fed one command line at
a time and returns its output. It shows the host's machine (`machine.machine_for`: users,
CPU, memory, software, processes) through a filesystem (`fakefs`) that each session may change
for itself (mkdir, touch, rm, chmod, `>`), and agrees with everything else the host says: its
name, `uname`, /etc/os-release and /proc/version are its identity's, and `uptime`, `w`, `ps`
and /proc/uptime count from the boot its SNMP sysUpTime and TCP timestamps count from.

Command lines are parsed here (quotes, `$VAR`, `${VAR}`, `$?`, `$(...)`, `;`, `&&`, `||`, `|`,
`>`, `>>`, `2>`): bashlex (GPL-3.0, a parser only: it neither expands nor runs) would not fit
the MIT licence and would save little. What a real tool would take time for (wget's name
resolution, `sleep`) is returned as `pauses`, (offset in the output, seconds), for the IO edge
to apply; URLs fetched are recorded in `events`, never fetched. Routers get an IOS exec
(`ios_exec`), Windows hosts cmd.exe (`cmd_exe`).
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from dynapot.events import Kind
from dynapot.services import logs, procfs
from dynapot.services.cmd_exe import CmdShell
from dynapot.services.contract import clip
from dynapot.services.fakefs import MAX_PATH, Node, SessionFS, base_tree
from dynapot.services.identity import HostIdentity
from dynapot.services.ios_exec import IosShell
from dynapot.services.machine import machine_for
from dynapot.services.shell_syntax import expand, split_list

MAX_OUTPUT = 64 * 1024


class Shell(Protocol):
    """What a login service drives: a prompt, one command line at a time, a greeting."""

    exited: bool
    status: int  # of the last command (an exec request's exit status)

    def prompt(self) -> str: ...

    def execute(self, line: str) -> str: ...

    def welcome(self, now: float) -> str:
        """What a fresh login shows before the first prompt."""
        ...


def shell_for(
    kind: str,
    identity: HostIdentity,
    user: str,
    *,
    hostname: str | None = None,
    peer: str | None = None,
    via: str = "ssh",
) -> Shell:
    """The shell of a host of this kind ("windows", "cisco", else a Unix shell); `via`: "ssh" or "telnet"."""
    if kind == "windows":
        return CmdShell(identity, user)
    if kind == "cisco":
        return IosShell(identity)
    return FakeShell(identity, user, hostname=hostname, peer=peer, via=via)


_SIX_MONTHS = 15_778_476  # seconds: ls shows the year of files older than this
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
MAX_HISTORY = 1000
MAX_VARIABLES = 500
MAX_PAUSE = 30.0  # seconds of pauses one line may ask for
RESOLVER_WAIT = 10.0  # glibc: two tries of 5 s at an unreachable name server
EXEC_COST = (0.0015, 0.004)  # seconds a program takes to start and finish, per host (fork, exec, exit)
# Programs that take longer, as multiples of that (measured with bench/bench_shell.py's reference).
_COSTS = {"ps": 6.0, "ls": 1.5, "w": 3.0, "free": 2.0, "lscpu": 3.0, "wget": 2.0, "curl": 2.0}
_NO_COST = frozenset({"sleep", "exit", "logout", "busybox", "sh", "bash"})  # their own pause, or none


class FakeShell:
    """A bash look-alike: `prompt()` and `execute(line) -> output` (output ends with a newline).

    After `execute`: `status` (of the last command), `exited`, `pauses` ((offset in the output,
    seconds) the IO edge waits before sending on) and `events` (what to record: fetched URLs).
    """

    def __init__(
        self,
        identity: HostIdentity,
        user: str,
        *,
        hostname: str | None = None,
        peer: str | None = None,
        clock: Callable[[], float] = time.time,
        via: str = "ssh",
    ) -> None:
        self.identity = identity
        self.hostname = hostname or identity.hostname
        self.user = user
        self.peer = peer  # the client's address, for `w` and `who`
        self.via = via
        self.clock = clock
        self.login = clock()
        self.machine = machine_for(identity).with_login(user)
        account = self.machine.user(user)
        assert account is not None
        self.account = account
        self.home = account.home
        self.cwd = self.home
        self.exited = False
        self.status = 0
        self.pauses: list[tuple[int, float]] = []
        self.events: list[tuple[Kind, str | None, dict[str, Any] | None]] = []
        self.history: list[str] = []
        base = base_tree(machine_for(identity))
        self.fs = SessionFS(base)
        if self.machine is not machine_for(identity):  # the login's own account and home
            self.fs.put("/etc/passwd", replace(base["/etc/passwd"], content=self.machine.passwd()))
            self.fs.put("/etc/group", replace(base["/etc/group"], content=self.machine.group_file()))
            if self.fs.get(self.home) is None:
                self.fs.put(self.home, Node("d", 0o755, user, user, self.login - 86_400 * 40))
        self.variables: dict[str, str] = {
            "HOME": self.home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "PATH": _PATH if user == "root" else _USER_PATH,
            "PWD": self.cwd,
            "LANG": "C.UTF-8" if identity.distribution.id == "debian" else "en_US.UTF-8",
            "TERM": "xterm",
            "SHLVL": "1",
            "MAIL": f"/var/mail/{user}",
        }
        if peer and via == "ssh":
            port = identity.rng("peer-port").randint(32768, 60999)
            self.variables["SSH_CLIENT"] = f"{peer} {port} 22"
            self.variables["SSH_CONNECTION"] = f"{peer} {port} {identity.address} 22"
            self.variables["SSH_TTY"] = "/dev/pts/0"
        self.exported = set(self.variables)
        self.variables["HOSTNAME"] = self.hostname
        self._exec_cost = identity.rng("exec").uniform(*EXEC_COST)
        self._out: list[str] = []
        self._size = 0
        self._depth = 0
        self._quiet_errors = False

    # -- presentation -------------------------------------------------------------------------------------

    def prompt(self) -> str:
        where = "~" + self.cwd[len(self.home) :] if self.cwd.startswith(self.home) else self.cwd
        sign = "#" if self.user == "root" else "$"
        if self.identity.distribution.id == "centos":
            base = "~" if self.cwd == self.home else posixpath.basename(self.cwd) or "/"
            return f"[{self.user}@{self.hostname.split('.')[0]} {base}]{sign} "
        return f"{self.user}@{self.hostname}:{where}{sign} "

    def welcome(self, now: float) -> str:
        """The MOTD, then login's "Last login" line."""
        return self.identity.motd(now) + self.identity.last_login(now)

    def take_events(self) -> list[tuple[Kind, str | None, dict[str, Any] | None]]:
        events, self.events = self.events, []
        return events

    # -- running a line -----------------------------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one command line. Sets `status`, `exited` and `pauses`."""
        self.pauses = []
        self._out, self._size = [], 0
        if line.strip() and len(self.history) < MAX_HISTORY:
            self.history.append(line.strip())
        self._run_line(line)
        return "".join(self._out)[:MAX_OUTPUT]

    def _emit(self, text: str) -> None:
        if self._size < MAX_OUTPUT and text:
            self._out.append(text)
            self._size += len(text)

    def _error(self, text: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        if not self._quiet_errors:
            self._emit(text)

    def _pause(self, seconds: float) -> None:
        total = sum(p[1] for p in self.pauses)
        seconds = min(seconds, MAX_PAUSE - total)
        if seconds > 0:
            self.pauses.append((self._size, seconds))

    def _run_line(self, line: str) -> None:
        try:
            parts = split_list(line)
        except SyntaxError as exc:
            self.status = 2
            self._emit(f"bash: syntax error: {exc}\n")
            return
        for op, stages in parts:
            if self.exited or (op == "&&" and self.status != 0) or (op == "||" and self.status == 0):
                continue
            data: str | None = None
            for index, stage in enumerate(stages):
                data = self._run_simple(stage, data, last=index == len(stages) - 1)
            if data:
                self._emit(data)

    def _substitute(self, text: str) -> str:
        """$(...): the output of a nested line (bounded depth)."""
        if self._depth >= 3:
            return ""
        saved_out, saved_size = self._out, self._size
        self._out, self._size = [], 0
        self._depth += 1
        try:
            self._run_line(text)
            return "".join(self._out)
        finally:
            self._depth -= 1
            self._out, self._size = saved_out, saved_size

    def _lookup(self, name: str) -> str:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(procfs.processes(self.machine, self.user, self.login, self.clock(), self.via)[-1].pid)
        if name == "0":
            return "-bash"
        if name == "#":
            return "0"
        return self.variables.get(name, "")

    def _run_simple(self, text: str, stdin: str | None, *, last: bool) -> str | None:
        """One command of a pipeline: its stdout (for the next stage, or the terminal)."""
        try:
            command = expand(text, self._lookup, self._substitute)
        except SyntaxError as exc:
            self.status = 2
            self._emit(f"bash: {exc}\n")
            return None
        words = command.words
        assignments = 0
        while assignments < len(words) and _ASSIGNMENT.match(words[assignments]):
            assignments += 1
        if assignments == len(words):
            for word in words:
                name, _, value = word.partition("=")
                if name in self.variables or len(self.variables) < MAX_VARIABLES:
                    self.variables[name] = value[:4096]
            self.status = 0
            return None
        words = words[assignments:]
        if command.stdin is not None:
            stdin = self._read_file(command.stdin, "bash")
            if stdin is None:
                return None
        quiet = self._quiet_errors
        self._quiet_errors = quiet or command.stderr == "/dev/null"
        self._tty = last and command.stdout is None
        try:
            out = self._dispatch(words, stdin)
        finally:
            self._quiet_errors = quiet
        if command.stdout is not None:
            mode, target = command.stdout
            if target != "/dev/null":
                self._write_file(target, out or "", append=mode == ">>")
            return None
        return out

    def _dispatch(self, words: list[str], stdin: str | None) -> str:
        cmd, args = words[0], words[1:]
        self.status = 0
        name = (
            cmd.rpartition("/")[2] if cmd.startswith(("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/")) else cmd
        )
        handler = (
            getattr(self, "_cmd_" + name.replace("-", "_"), None)
            if re.fullmatch(r"[a-z][a-z0-9_]*", name)
            else None
        )
        if handler is None:
            if "/" in cmd:
                node = self.fs.get(self._path(cmd))
                if node is None:
                    self._error(f"bash: {cmd}: No such file or directory\n", 127)
                else:
                    self._error(f"bash: {cmd}: Permission denied\n", 126)
                return ""
            self._error(f"bash: {cmd}: command not found\n", 127)
            return ""
        if name not in _BUILTINS and name not in _NO_COST:
            # a program: fork and exec, and its own work (ps reads all of /proc), on this host's CPU
            self._pause(self._exec_cost * _COSTS.get(name, 1.0))
        return handler(args, stdin) or ""

    # -- files ----------------------------------------------------------------------------------------

    def _path(self, arg: str) -> str:
        if arg == "~" or arg.startswith("~/"):
            arg = self.home + arg[1:]
        return posixpath.normpath(posixpath.join(self.cwd, arg)).replace("//", "/")

    def _readable(self, node: Node) -> bool:
        if self.user == "root":
            return True
        if node.owner == self.user:
            return bool(node.mode & 0o400)
        return bool(node.mode & 0o004)

    def _writable_dir(self, path: str) -> bool:
        if self.user == "root":
            return True
        node = self.fs.get(path)
        if node is None or not node.is_dir:
            return False
        return node.owner == self.user or bool(node.mode & 0o002)

    def _read(self, path: str) -> str | None:
        """A file's text, /proc's made now; None when there is none."""
        node = self.fs.get(path)
        if node is None or node.is_dir:
            return None
        if node.live:
            return logs.text(self.machine, posixpath.basename(path), self.clock())
        if not node.dynamic:
            return node.content
        now = self.clock()
        name = posixpath.basename(self.fs.resolve(path))
        if name == "uptime":
            up = self.identity.uptime(now)
            return f"{up:.2f} {up * self.machine.cpu.cores * 0.97:.2f}\n"
        if name == "loadavg":
            load = " ".join(f"{x:.2f}" for x in self.identity.load_average())
            count = len(procfs.processes(self.machine, self.user, self.login, now, self.via))
            return f"{load} 1/{count} {self.identity.rng('pid').randint(2000, 60000)}\n"
        if name == "cpuinfo":
            return procfs.cpuinfo(self.machine)
        if name == "meminfo":
            return procfs.meminfo(self.machine, now)
        if name == "version":
            return procfs.version(self.machine)
        if name == "mounts":
            return _MOUNTS
        return ""

    def _read_file(self, arg: str, tool: str) -> str | None:
        path = self._path(arg)
        node = self.fs.get(path)
        if node is None:
            self._error(f"{tool}: {arg}: No such file or directory\n", 1)
            return None
        if node.is_dir:
            self._error(f"{tool}: {arg}: Is a directory\n", 1)
            return None
        if not self._readable(node):
            self._error(f"{tool}: {arg}: Permission denied\n", 1)
            return None
        return self._read(path) or ""

    def _read_all(self, files: list[str], tool: str, stdin: str | None) -> str:
        """The files' texts one after the other (stdin when none), at most MAX_OUTPUT of them."""
        if not files:
            return (stdin or "")[:MAX_OUTPUT]
        out: list[str] = []
        size = 0
        for arg in files:
            text = self._read_file(arg, tool)
            if text is not None:
                out.append(text)
                size += len(text)
                if size >= MAX_OUTPUT:
                    break
        return "".join(out)[:MAX_OUTPUT]

    def _write_file(self, arg: str, text: str, *, append: bool = False) -> None:
        path = self._path(arg)
        node = self.fs.get(path)
        if node is not None and node.is_dir:
            self._error(f"bash: {arg}: Is a directory\n", 1)
            return
        if not self._writable_dir(posixpath.dirname(path)) and (node is None or node.owner != self.user):
            self._error(f"bash: {arg}: Permission denied\n", 1)
            return
        before = (self._read(path) or "") if append and node is not None else ""
        made = Node("-", node.mode if node else 0o644, self.user, self.user, self.clock(), before + text)
        if not self.fs.put(path, made):
            self._error(f"bash: {arg}: No space left on device\n", 1)

    # -- commands -------------------------------------------------------------------------------------

    def _cmd_busybox(self, args: list[str], stdin: str | None) -> str:
        # Mirai-style bots probe with `/bin/busybox WORD` and read "applet not found" as "a shell
        # worth infecting"; "command not found" would end their session before the payload.
        if not args:
            distribution = self.identity.distribution
            key = f"{distribution.id}-{distribution.version_id}"
            return f"BusyBox {_BUSYBOX.get(key, _BUSYBOX['debian-12'])} multi-call binary.\n"
        handler = getattr(self, "_cmd_" + args[0], None) if re.fullmatch(r"[a-z][a-z0-9]*", args[0]) else None
        if handler is not None:
            return handler(args[1:], stdin)
        self._error(f"{args[0]}: applet not found\n", 127)
        return ""

    def _cmd_sh(self, args: list[str], stdin: str | None) -> str:
        """sh -c LINE, or the lines piped in (`curl ... | sh`), run in this shell (bounded depth)."""
        if "-c" in args and args.index("-c") + 1 < len(args):
            script = args[args.index("-c") + 1]
        else:
            script = stdin or ""
        if not script.strip():
            return ""
        return self._substitute(script.replace("\n", ";"))

    _cmd_bash = _cmd_sh

    def _cmd_pwd(self, args: list[str], stdin: str | None) -> str:
        return self.cwd + "\n"

    def _cmd_whoami(self, args: list[str], stdin: str | None) -> str:
        return self.user + "\n"

    def _cmd_id(self, args: list[str], stdin: str | None) -> str:
        account = self.account
        if args and not args[0].startswith("-"):
            found = self.machine.user(args[0])
            if found is None:
                self._error(f"id: '{args[0]}': no such user\n", 1)
                return ""
            account = found
        groups = self.machine.groups_of(account)
        if "-u" in args:
            return f"{account.uid}\n"
        if "-g" in args:
            return f"{account.gid}\n"
        if "-un" in args or "-nu" in args:
            return account.name + "\n"
        if "-Gn" in args or "-nG" in args:
            return " ".join(g.name for g in groups) + "\n"
        primary = self.machine.group_of(account.gid)
        gname = primary.name if primary else str(account.gid)
        listed = ",".join(f"{g.gid}({g.name})" for g in groups)
        return f"uid={account.uid}({account.name}) gid={account.gid}({gname}) groups={listed}\n"

    def _cmd_groups(self, args: list[str], stdin: str | None) -> str:
        return " ".join(g.name for g in self.machine.groups_of(self.account)) + "\n"

    def _cmd_hostname(self, args: list[str], stdin: str | None) -> str:
        if "-I" in args or "-i" in args:
            return self.identity.address + (" \n" if "-I" in args else "\n")
        return self.hostname + "\n"

    def _cmd_uname(self, args: list[str], stdin: str | None) -> str:
        kernel = self.identity.kernel
        flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and not a.startswith("--"))
        long = {a for a in args if a.startswith("--")}
        if "a" in flags or "--all" in long:
            return kernel.uname(self.hostname) + "\n"
        parts = []
        for letter, value in (
            ("s", kernel.sysname),
            ("n", self.hostname),
            ("r", kernel.release),
            ("v", kernel.version),
            ("m", kernel.machine),
            ("p", kernel.machine if kernel.platform else "unknown"),
            ("i", kernel.machine if kernel.platform else "unknown"),
            ("o", "GNU/Linux"),
        ):
            if letter in flags:
                parts.append(value)
        bad = set(flags) - set("snrvmpioa")
        if bad:
            self._error(
                f"uname: invalid option -- '{sorted(bad)[0]}'\nTry 'uname --help' for more information.\n", 1
            )
            return ""
        return " ".join(parts or [kernel.sysname]) + "\n"

    def _cmd_uptime(self, args: list[str], stdin: str | None) -> str:
        now = self.clock()
        up = self.identity.uptime(now)
        if "-p" in args or "--pretty" in args:
            return pretty_uptime(up) + "\n"
        if "-s" in args or "--since" in args:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.identity.boot_time)) + "\n"
        return uptime_line(now, up, 1, self.identity.load_average()) + "\n"

    def _cmd_w(self, args: list[str], stdin: str | None) -> str:
        now = self.clock()
        since = time.strftime("%H:%M", time.gmtime(self.login))
        head = "USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT"
        me = f"{self.user[:8]:<8} pts/0    {(self.peer or '-')[:16]:<16} {since}    0.00s  0.01s  0.00s w"
        if "-h" in args:
            return me + "\n"
        return (
            f"{uptime_line(now, self.identity.uptime(now), 1, self.identity.load_average())}\n{head}\n{me}\n"
        )

    def _cmd_who(self, args: list[str], stdin: str | None) -> str:
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.login))
        peer = f" ({self.peer})" if self.peer else ""
        return f"{self.user[:8]:<8} pts/0        {since}{peer}\n"

    def _cmd_echo(self, args: list[str], stdin: str | None) -> str:
        newline, escapes = True, False
        while args and re.fullmatch(r"-[neE]+", args[0]):
            newline = newline and "n" not in args[0]
            escapes = "e" in args[0] or (escapes and "E" not in args[0])
            args = args[1:]
        text = " ".join(args)
        if escapes:
            text = _escapes(text)
        return text + ("\n" if newline else "")

    def _cmd_printf(self, args: list[str], stdin: str | None) -> str:
        if not args:
            self._error("printf: usage: printf [-v var] format [arguments]\n", 2)
            return ""
        fmt = _escapes(args[0])
        values = args[1:]
        if re.search(r"%[-0-9.]*\d{4}", fmt):  # a width or precision that would make megabytes
            self._error("bash: printf: field width too large\n", 1)
            return ""
        try:
            count = len(re.findall(r"%[-0-9.]*[sdxo]", fmt))
            out = fmt.replace("%%", "\0") % tuple((values + [""] * count)[:count]) if count else fmt
            return out.replace("\0", "%")
        except (TypeError, ValueError):
            return fmt

    def _cmd_exit(self, args: list[str], stdin: str | None) -> str:
        self.exited = True
        return ""

    _cmd_logout = _cmd_exit

    def _cmd_true(self, args: list[str], stdin: str | None) -> str:
        return ""

    def _cmd_false(self, args: list[str], stdin: str | None) -> str:
        self.status = 1
        return ""

    _cmd_clear = _cmd_true

    def _cmd_sleep(self, args: list[str], stdin: str | None) -> str:
        try:
            self._pause(float(args[0].rstrip("s")))
        except (IndexError, ValueError):
            self._error("sleep: missing operand\nTry 'sleep --help' for more information.\n", 1)
        return ""

    def _cmd_cd(self, args: list[str], stdin: str | None) -> str:
        if args and args[0] == "-":
            target = self.variables.get("OLDPWD", self.cwd)
        else:
            target = self._path(args[0]) if args else self.home
        node = self.fs.get(target)
        if node is None:
            self._error(f"bash: cd: {args[0]}: No such file or directory\n", 1)
            return ""
        if not node.is_dir:
            self._error(f"bash: cd: {args[0]}: Not a directory\n", 1)
            return ""
        if not (self.user == "root" or node.owner == self.user or node.mode & 0o001):
            self._error(f"bash: cd: {args[0]}: Permission denied\n", 1)
            return ""
        self.variables["OLDPWD"], self.cwd = self.cwd, target
        self.variables["PWD"] = target
        return target + "\n" if args and args[0] == "-" else ""

    def _cmd_ls(self, args: list[str], stdin: str | None) -> str:
        flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--") and len(a) > 1)
        if "--all" in args:
            flags += "a"
        paths = [a for a in args if not a.startswith("-")] or ["."]
        long, every, human, one = "l" in flags, "a" in flags, "h" in flags, "1" in flags or not self._tty
        almost = "A" in flags
        out: list[str] = []
        files: list[tuple[str, Node, str]] = []
        dirs: list[tuple[str, str]] = []
        for arg in paths:
            path = self._path(arg)
            node = self.fs.get(path)
            if node is None:
                self._error(f"ls: cannot access '{arg}': No such file or directory\n", 2)
            elif node.is_dir and "d" not in flags:
                dirs.append((arg, path))
            else:
                files.append((arg, self.fs.lookup(self.fs.resolve(path)) or node, path))
        if files:
            out.append(self._listing(files, long, human, one, total=False))
        for arg, path in dirs:
            node = self.fs.get(path)
            if node is not None and not self._readable(node):
                self._error(f"ls: cannot open directory '{arg}': Permission denied\n", 2)
                continue
            entries = [(n, e, posixpath.join(path, n)) for n, e in self.fs.children(path).items()]
            if not every:
                entries = [e for e in entries if not e[0].startswith(".")]
            if every and not almost and node is not None:
                up = posixpath.dirname(path)
                entries = [(".", node, path), ("..", self.fs.get(up) or node, up), *entries]
            if len(paths) > 1:
                out.append(("\n" if out else "") + f"{arg}:\n")
            out.append(self._listing(entries, long, human, one, total=True))
        return "".join(out)

    def _listing(
        self, entries: list[tuple[str, Node, str]], long: bool, human: bool, one: bool, *, total: bool
    ) -> str:
        entries = sorted(entries, key=lambda e: (e[0] not in (".", ".."), e[0]))
        if not long:
            names = [e[0] for e in entries]
            return _columns(names, 80) if not one else "".join(n + "\n" for n in names)
        now = self.clock()
        rows = []
        blocks = 0
        for name, node, path in entries:
            if node.live:  # a log: as long as its text now, written a moment ago
                text = logs.text(self.machine, posixpath.basename(path), now)
                node = replace(node, size=len(text.encode()), mtime=logs.last_write(self.machine, now))
            size = node.length
            blocks += 0 if node.dynamic or node.kind == "l" else -(-size // 4096) * 4
            stamp = time.gmtime(node.mtime)
            recent = now - _SIX_MONTHS < node.mtime <= now + 3600
            when = time.strftime("%b %e %H:%M", stamp) if recent else time.strftime("%b %e  %Y", stamp)
            shown = procfs.human(size) if human else str(size)
            label = f"{name} -> {node.target}" if node.kind == "l" else name
            links = node.nlink
            if node.is_dir:  # its own entry, "." and each subdirectory's ".."
                links = max(links, 2 + sum(1 for child in self.fs.children(path).values() if child.is_dir))
            rows.append((node.permissions(), str(links), node.owner, node.group, shown, when, label))
        widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else [0] * 5
        lines = [
            f"{r[0]} {r[1]:>{widths[1]}} {r[2]:<{widths[2]}} {r[3]:<{widths[3]}} "
            f"{r[4]:>{widths[4]}} {r[5]} {r[6]}"
            for r in rows
        ]
        head = [f"total {procfs.human(blocks * 1024) if human else blocks}"] if total else []
        return "\n".join(head + lines) + "\n"

    def _cmd_cat(self, args: list[str], stdin: str | None) -> str:
        files = [a for a in args if a != "-" and not (a.startswith("-") and len(a) > 1)]
        return self._read_all(files, "cat", stdin)

    def _cmd_ps(self, args: list[str], stdin: str | None) -> str:
        now = self.clock()
        rows = procfs.processes(self.machine, self.user, self.login, now, self.via)
        shell = rows[-1]
        flags = "".join(args)
        own = procfs.Process(
            self.user,
            shell.pid + 1 + len(self.history),
            shell.pid,
            0,
            11_200,
            3_900,
            "pts/0",
            "R+",
            now,
            "ps " + " ".join(args) if args else "ps",
        )
        own = replace(own, command=("ps " + " ".join(args)).strip())
        if "aux" in flags or ("a" in flags and "x" in flags):
            return procfs.ps(rows, "aux", self.machine, now, own)
        if "e" in flags or "A" in flags:
            return procfs.ps(rows, "ef" if "f" in flags else "every", self.machine, now, own)
        return procfs.ps(rows, "plain", self.machine, now, own)

    def _cmd_free(self, args: list[str], stdin: str | None) -> str:
        unit = "m" if "-m" in args else "g" if "-g" in args else "h" if "-h" in args else "k"
        return procfs.free(self.machine, self.clock(), unit)

    def _cmd_df(self, args: list[str], stdin: str | None) -> str:
        return procfs.df(self.machine, any("h" in a for a in args if a.startswith("-")))

    def _cmd_nproc(self, args: list[str], stdin: str | None) -> str:
        return f"{self.machine.cpu.cores}\n"

    def _cmd_lscpu(self, args: list[str], stdin: str | None) -> str:
        return procfs.lscpu(self.machine)

    def _cmd_env(self, args: list[str], stdin: str | None) -> str:
        if args:
            self._error(f"env: '{args[0]}': No such file or directory\n", 127)
            return ""
        return "".join(f"{k}={v}\n" for k, v in self.variables.items() if k in self.exported)

    _cmd_printenv = _cmd_env

    def _cmd_export(self, args: list[str], stdin: str | None) -> str:
        if not args or args == ["-p"]:
            return "".join(
                f'declare -x {k}="{v}"\n' for k, v in sorted(self.variables.items()) if k in self.exported
            )
        for arg in args:
            name, equals, value = arg.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self._error(f"bash: export: `{arg}': not a valid identifier\n", 1)
                continue
            if equals and (name in self.variables or len(self.variables) < MAX_VARIABLES):
                self.variables[name] = value[:4096]
            self.exported.add(name)
        return ""

    def _cmd_unset(self, args: list[str], stdin: str | None) -> str:
        for name in args:
            self.variables.pop(name, None)
            self.exported.discard(name)
        return ""

    def _cmd_history(self, args: list[str], stdin: str | None) -> str:
        if args and args[0] == "-c":
            self.history.clear()
            return ""
        return "".join(f"{n:>5}  {line}\n" for n, line in enumerate(self.history, 1))

    def _where(self, name: str) -> str | None:
        for directory in self.variables.get("PATH", "").split(":"):
            if directory:
                candidate = f"{directory.rstrip('/')}/{name}"
                node = self.fs.get(candidate)
                if node is not None and not node.is_dir and node.mode & 0o111:
                    return candidate
        return None

    def _cmd_which(self, args: list[str], stdin: str | None) -> str:
        out = []
        for name in args:
            found = self._where(name) if "/" not in name else name if self.fs.get(self._path(name)) else None
            if found:
                out.append(found + "\n")
            else:
                self.status = 1
        return "".join(out)

    def _cmd_type(self, args: list[str], stdin: str | None) -> str:
        out = []
        for name in args:
            if name in _BUILTINS:
                out.append(f"{name} is a shell builtin\n")
            elif (found := self._where(name)) is not None:
                out.append(f"{name} is {found}\n")
            else:
                self._error(f"bash: type: {name}: not found\n", 1)
        return "".join(out)

    def _cmd_wget(self, args: list[str], stdin: str | None) -> str:
        return self._fetch("wget", args)

    def _cmd_curl(self, args: list[str], stdin: str | None) -> str:
        return self._fetch("curl", args)

    def _fetch(self, tool: str, args: list[str]) -> str:
        """Record the URL, never fetch it; fail as the tool does on a host whose name server does
        not answer (a name) or whose firewall refuses (an address)."""
        urls = [a for a in args if not a.startswith("-") and ("." in a or ":" in a)]
        if not urls:
            if tool == "wget":
                self._error(
                    "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\n"
                    "Try `wget --help' for more options.\n",
                    1,
                )
            else:
                self._error("curl: try 'curl --help' or 'curl --manual' for more information\n", 2)
            return ""
        for url in urls[:8]:
            full = url if "://" in url else f"http://{url}"
            found = re.match(r"(\w+)://(\[[^\]]*\]|[^/:?#]*)(?::(\d+))?", full)
            scheme, host = (found.group(1), found.group(2)) if found else ("http", "")
            port = (
                int(found.group(3))
                if found and found.group(3)
                else (443 if scheme == "https" else 21 if scheme == "ftp" else 80)
            )
            self.events.append(
                (
                    Kind.DOWNLOAD,
                    clip(url),
                    {"tool": tool, "url": clip(url), "host": clip(host), "port": port},
                )
            )
            address = re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", host) is not None
            if tool == "wget":
                self._error(time.strftime("--%Y-%m-%d %H:%M:%S--  ", time.gmtime(self.clock())) + full + "\n")
                if address:
                    self._error(f"Connecting to {host}:{port}... ")
                    self._pause(self.identity.rng(f"rtt-{host}").uniform(0.02, 0.2))
                    self._error("failed: Connection refused.\n", 4)
                else:
                    self._error(f"Resolving {host} ({host})... ")
                    self._pause(RESOLVER_WAIT)
                    self._error(
                        "failed: Temporary failure in name resolution.\n"
                        f"wget: unable to resolve host address \u2018{host}\u2019\n",
                        4,
                    )
            elif address:
                wait = self.identity.rng(f"rtt-{host}").uniform(0.02, 0.2)
                self._pause(wait)
                self._error(
                    f"curl: (7) Failed to connect to {host} port {port} after {int(wait * 1000)} ms: "
                    "Couldn't connect to server\n",
                    7,
                )
            else:
                self._pause(RESOLVER_WAIT)
                self._error(f"curl: (6) Could not resolve host: {host}\n", 6)
        return ""

    def _cmd_mkdir(self, args: list[str], stdin: str | None) -> str:
        parents = "-p" in args
        for arg in (a for a in args if not a.startswith("-")):
            path = self._path(arg)
            if len(path) > MAX_PATH:
                self._error(f"mkdir: cannot create directory '{arg}': File name too long\n", 1)
                continue
            if self.fs.get(path) is not None:
                if not parents:
                    self._error(f"mkdir: cannot create directory '{arg}': File exists\n", 1)
                continue
            parent = posixpath.dirname(path)
            if self.fs.get(parent) is None and not parents:
                self._error(f"mkdir: cannot create directory '{arg}': No such file or directory\n", 1)
                continue
            if not self._writable_dir(parent) and self.fs.get(parent) is not None:
                self._error(f"mkdir: cannot create directory '{arg}': Permission denied\n", 1)
                continue
            chain = []
            path = self.fs.resolve(path)
            while self.fs.lookup(path) is None and path != "/":
                chain.append(path)
                path = posixpath.dirname(path)
            for made in reversed(chain):
                if not self.fs.put(made, Node("d", 0o755, self.user, self.user, self.clock())):
                    self._error(f"mkdir: cannot create directory '{arg}': No space left on device\n", 1)
                    break
        return ""

    def _cmd_touch(self, args: list[str], stdin: str | None) -> str:
        for arg in (a for a in args if not a.startswith("-")):
            path = self._path(arg)
            node = self.fs.get(path)
            if node is not None:
                self.fs.put(self.fs.resolve(path), replace(node, mtime=self.clock()))
            elif self.fs.get(posixpath.dirname(path)) is None:
                self._error(f"touch: cannot touch '{arg}': No such file or directory\n", 1)
            elif not self._writable_dir(posixpath.dirname(path)):
                self._error(f"touch: cannot touch '{arg}': Permission denied\n", 1)
            elif not self.fs.put(path, Node("-", 0o644, self.user, self.user, self.clock())):
                self._error(f"touch: cannot touch '{arg}': No space left on device\n", 1)
        return ""

    def _cmd_rm(self, args: list[str], stdin: str | None) -> str:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        for arg in (a for a in args if not a.startswith("-")):
            path = self._path(arg)
            node = self.fs.lookup(self.fs.resolve(path))
            if node is None:
                if "f" not in flags:
                    self._error(f"rm: cannot remove '{arg}': No such file or directory\n", 1)
            elif node.is_dir and "r" not in flags.lower():
                self._error(f"rm: cannot remove '{arg}': Is a directory\n", 1)
            elif not self._writable_dir(posixpath.dirname(path)):
                self._error(f"rm: cannot remove '{arg}': Permission denied\n", 1)
            else:
                self.fs.remove(self.fs.resolve(path))
        return ""

    def _cmd_chmod(self, args: list[str], stdin: str | None) -> str:
        operands = [a for a in args if not (a.startswith("-") and not re.fullmatch(r"-[rwxXst]+", a))]
        if len(operands) < 2:
            self._error("chmod: missing operand\nTry 'chmod --help' for more information.\n", 1)
            return ""
        mode, targets = operands[0], operands[1:]
        for arg in targets:
            path = self.fs.resolve(self._path(arg))
            node = self.fs.get(path)
            if node is None:
                self._error(f"chmod: cannot access '{arg}': No such file or directory\n", 1)
                continue
            if self.user != "root" and node.owner != self.user:
                self._error(f"chmod: changing permissions of '{arg}': Operation not permitted\n", 1)
                continue
            new = _mode(mode, node.mode)
            if new is None:
                self._error(f"chmod: invalid mode: '{mode}'\nTry 'chmod --help' for more information.\n", 1)
                return ""
            self.fs.put(path, replace(node, mode=new))
        return ""

    def _cmd_grep(self, args: list[str], stdin: str | None) -> str:
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        operands = [a for a in args if not a.startswith("-") or len(a) == 1]
        if not operands:
            self._error(
                "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n", 2
            )
            return ""
        pattern, files = operands[0], operands[1:]
        text = self._read_all(files, "grep", stdin)
        try:
            regex = re.compile(
                pattern if "F" not in flags else re.escape(pattern), re.IGNORECASE if "i" in flags else 0
            )
        except re.error:
            regex = re.compile(re.escape(pattern))
        lines = [line for line in text.splitlines() if bool(regex.search(line)) != ("v" in flags)]
        self.status = 0 if lines else 1
        if "c" in flags:
            return f"{len(lines)}\n"
        return "".join(line + "\n" for line in lines)

    def _count_arg(self, args: list[str]) -> tuple[int, list[str]]:
        count, rest = 10, []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "-n" and i + 1 < len(args):
                count = int(args[i + 1]) if args[i + 1].isdigit() else 10
                i += 2
                continue
            if re.fullmatch(r"-n?\d+", arg):
                count = int(arg.lstrip("-n"))
            elif not arg.startswith("-"):
                rest.append(arg)
            i += 1
        return count, rest

    def _cmd_head(self, args: list[str], stdin: str | None) -> str:
        count, files = self._count_arg(args)
        text = self._read_all(files, "head", stdin)
        return "".join(line + "\n" for line in text.splitlines()[:count])

    def _cmd_tail(self, args: list[str], stdin: str | None) -> str:
        count, files = self._count_arg(args)
        text = self._read_all(files, "tail", stdin)
        lines = text.splitlines()
        return "".join(line + "\n" for line in lines[max(0, len(lines) - count) :])

    def _cmd_wc(self, args: list[str], stdin: str | None) -> str:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        files = [a for a in args if not a.startswith("-")]
        text = self._read_all(files, "wc", stdin)
        counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode())}
        chosen = [counts[k] for k in "lwc" if k in flags] or [counts["l"], counts["w"], counts["c"]]
        if len(chosen) == 1 and not files:
            return f"{chosen[0]}\n"
        width = 7 if not files else max(len(str(c)) for c in chosen)
        tail = f" {files[0]}" if files else ""
        return " ".join(f"{c:>{width}}" for c in chosen) + tail + "\n"

    def _cmd_crontab(self, args: list[str], stdin: str | None) -> str:
        self._error(f"no crontab for {self.user}\n", 1)
        return ""

    def _cmd_last(self, args: list[str], stdin: str | None) -> str:
        since = time.strftime("%a %b %e %H:%M", time.gmtime(self.login))
        begins = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(self.machine.installed))
        me = f"{self.user[:8]:<8} pts/0        {(self.peer or '')[:16]:<16} {since}   still logged in"
        return f"{me}\n\nwtmp begins {begins}\n"


_MOUNTS = (
    "/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0\n"
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
)
# The busybox package of each distribution release (CentOS's from EPEL).
_BUSYBOX = {
    "debian-12": "v1.35.0 (Debian 1:1.35.0-4+b3)",
    "debian-11": "v1.30.1 (Debian 1:1.30.1-6+b3)",
    "ubuntu-22.04": "v1.30.1 (Ubuntu 1:1.30.1-7ubuntu3)",
    "ubuntu-18.04": "v1.27.2 (Ubuntu 1:1.27.2-2ubuntu3.4)",
    "centos-7": "v1.22.1 (2014-05-22 21:05:52 UTC)",
    "centos-6": "v1.15.1 (2013-05-14 00:31:37 UTC)",
}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_BUILTINS = frozenset(
    [
        "alias",
        "cd",
        "echo",
        "exit",
        "export",
        "history",
        "printf",
        "pwd",
        "set",
        "source",
        "type",
        "unset",
        "true",
        "false",
        "kill",
        "test",
        "read",
    ]
)


def _escapes(text: str) -> str:
    table = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "a": "\a", "e": "\x1b", "0": "\0"}

    def one(found: re.Match[str]) -> str:
        body = found.group(1)
        if body.startswith("x"):
            return chr(int(body[1:], 16))
        if body[0].isdigit() and len(body) > 1:
            return chr(int(body, 8) & 0xFF)
        return table.get(body, "\\" + body)

    return re.sub(r"\\(x[0-9a-fA-F]{1,2}|0[0-7]{1,3}|.)", one, text)


def _mode(spec: str, current: int) -> int | None:
    """chmod's MODE: octal, or [ugoa]*[+-=][rwxX]*, comma-separated."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        found = re.fullmatch(r"([ugoa]*)([+\-=])([rwxXst]*)", clause)
        if found is None:
            return None
        who = found.group(1) or "a"
        shifts = [s for c, s in (("u", 6), ("g", 3), ("o", 0)) if c in who or "a" in who]
        bits = sum({"r": 4, "w": 2, "x": 1, "X": 1}.get(c, 0) for c in found.group(3))
        for shift in shifts:
            if found.group(2) == "+":
                mode |= bits << shift
            elif found.group(2) == "-":
                mode &= ~(bits << shift)
            else:
                mode = (mode & ~(7 << shift)) | (bits << shift)
    return mode


def _columns(names: list[str], width: int) -> str:
    """GNU ls's columns on a terminal: filled top to bottom, as many as fit in `width`, padded
    with tabs (every 8) and spaces as coreutils pads them."""
    if not names:
        return ""
    for columns in range(min(len(names), width // 3), 0, -1):
        rows = -(-len(names) // columns)
        cols = [c for c in (names[i * rows : (i + 1) * rows] for i in range(columns)) if c]
        widths = [max(len(n) for n in c) + 2 for c in cols]
        if sum(widths) - 2 < width or columns == 1:
            break
    lines = []
    for r in range(rows):
        line, position = "", 0
        cells = [(c[r], w) for c, w in zip(cols, widths, strict=True) if r < len(c)]
        for index, (name, column_width) in enumerate(cells):
            line += name
            if index < len(cells) - 1:
                line += _indent(position + len(name), position + column_width)
            position += column_width
        lines.append(line)
    return "\n".join(lines) + "\n"


def _indent(start: int, end: int) -> str:
    """coreutils' indent(): tabs to each tab stop (8) before `end`, then spaces."""
    out = []
    while start < end:
        if end // 8 > (start + 1) // 8:
            out.append("\t")
            start += 8 - start % 8
        else:
            out.append(" ")
            start += 1
    return "".join(out)


def paced(shell: Shell, text: str) -> list[tuple[str, float]]:
    """A line's output as (text, seconds to wait after it): how the IO edge sends what `shell`
    answered, its pauses applied (a shell without pauses: one piece)."""
    pieces: list[tuple[str, float]] = []
    start = 0
    for offset, seconds in getattr(shell, "pauses", ()):
        pieces.append((text[start:offset], seconds))
        start = offset
    pieces.append((text[start:], 0.0))
    return pieces


def one_pause(shell: Shell, text: str) -> tuple[str, float, str]:
    """A line's output as (what to send now, seconds to wait, the rest): for an edge that waits
    once, the whole wait at the longest pause (wget's resolver), the rest after it."""
    pauses = list(getattr(shell, "pauses", ()))
    if not pauses:
        return text, 0.0, ""
    offset = max(pauses, key=lambda p: p[1])[0]
    return text[:offset], sum(seconds for _, seconds in pauses), text[offset:]


def take_events(shell: Shell) -> list[tuple[Kind, str | None, dict[str, Any] | None]]:
    """What `shell` has to record since last asked (fetched URLs); none for shells that record none."""
    take = getattr(shell, "take_events", None)
    return take() if take is not None else []


def uptime_line(now: float, up: float, users: int, load: tuple[float, float, float]) -> str:
    """procps `uptime`: " 10:12:01 up 23 days,  4:05,  1 user,  load average: 0.00, 0.01, 0.05"."""
    clock = time.strftime("%H:%M:%S", time.gmtime(now))
    total = int(up)
    days, minutes = total // 86400, total // 60
    hours, minutes = minutes // 60 % 24, minutes % 60
    text = f" {clock} up "
    if days:
        text += f"{days} day{'s' if days != 1 else ''}, "
    text += f"{hours:2d}:{minutes:02d}, " if hours else f"{minutes} min, "
    text += f"{users:2d} user{'' if users == 1 else 's'}, "
    return text + f" load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def pretty_uptime(up: float) -> str:
    """procps `uptime -p`: "up 3 weeks, 2 days, 4 hours, 5 minutes" (units that are zero left out)."""
    total = int(up) // 60
    parts: list[str] = []
    for name, size in (("year", 525_600), ("week", 10_080), ("day", 1_440), ("hour", 60), ("minute", 1)):
        count, total = divmod(total, size)
        if count or (name == "minute" and not parts):
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return "up " + ", ".join(parts)
