"""The shells behind the emulated logins (ssh, telnet): a small, pure fake bash, and `shell_for`.

Nothing here touches the real system: the filesystem is a fixed in-memory tree, every
answer is a string. It only has to look right to a bot's first few commands, and agree with
everything else the host says: its name, `uname`, /etc/os-release and /etc/issue are its
identity's, and `uptime`, `w` and /proc/uptime count from the boot its SNMP sysUpTime and
TCP timestamps count from. Routers get an IOS exec (`ios_exec`), Windows hosts cmd.exe
(`cmd_exe`).
"""

from __future__ import annotations

import posixpath
import shlex
import time
from collections.abc import Callable
from typing import Protocol

from dynapot.services.cmd_exe import CmdShell
from dynapot.services.identity import HostIdentity
from dynapot.services.ios_exec import IosShell

MAX_OUTPUT = 64 * 1024

# A fake /etc/passwd (no secrets: "x" means shadowed).
_PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:100:102:systemd Network Management,,,:/run/systemd:/usr/sbin/nologin
messagebus:x:102:105::/nonexistent:/usr/sbin/nologin
sshd:x:105:65534::/run/sshd:/usr/sbin/nologin
ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash
"""  # noqa: S105

# Directory -> entries (a trailing "/" marks a directory).
_TREE: dict[str, list[str]] = {
    "/": [
        "bin/",
        "boot/",
        "dev/",
        "etc/",
        "home/",
        "lib/",
        "media/",
        "mnt/",
        "opt/",
        "proc/",
        "root/",
        "run/",
        "sbin/",
        "srv/",
        "sys/",
        "tmp/",
        "usr/",
        "var/",
    ],
    "/etc": ["hostname", "hosts", "issue", "os-release", "passwd", "group", "ssh/", "resolv.conf"],
    "/etc/ssh": ["sshd_config", "ssh_config"],
    "/proc": ["loadavg", "uptime"],
    "/home": ["ubuntu/"],
    "/home/ubuntu": [],
    "/root": [],
    "/tmp": [],  # noqa: S108 (a fake listing)
    "/usr": ["bin/", "lib/", "local/", "sbin/", "share/"],
    "/var": ["backups/", "cache/", "lib/", "log/", "mail/", "tmp/", "www/"],
    "/var/log": ["auth.log", "dpkg.log", "syslog", "wtmp"],
    "/var/www": ["html/"],
    "/var/www/html": ["index.html"],
}


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
    kind: str, identity: HostIdentity, user: str, *, hostname: str | None = None, peer: str | None = None
) -> Shell:
    """The shell of a host of this kind ("windows", "cisco", else a Unix shell)."""
    if kind == "windows":
        return CmdShell(identity, user)
    if kind == "cisco":
        return IosShell(identity)
    return FakeShell(identity, user, hostname=hostname, peer=peer)


class FakeShell:
    """A bash look-alike: `prompt()` and `execute(line) -> output` (output ends with a newline)."""

    def __init__(
        self,
        identity: HostIdentity,
        user: str,
        *,
        hostname: str | None = None,
        peer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.hostname = hostname or identity.hostname
        self.user = user
        self.peer = peer  # the client's address, for `w` and `who`
        self.clock = clock
        self.login = clock()
        self.home = "/root" if user == "root" else f"/home/{user}"
        self.cwd = self.home
        self.exited = False
        self.status = 0
        self._files = {
            "/etc/passwd": _PASSWD
            + ("" if user in ("root", "ubuntu") else f"{user}:x:1001:1001::/home/{user}:/bin/bash\n"),
            "/etc/hostname": f"{self.hostname}\n",
            "/etc/issue": identity.distribution.issue,
            "/etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {self.hostname}\n",
            "/etc/os-release": identity.distribution.os_release(),
        }

    # -- presentation -------------------------------------------------------------------------------------

    def prompt(self) -> str:
        where = "~" + self.cwd[len(self.home) :] if self.cwd.startswith(self.home) else self.cwd
        sign = "#" if self.user == "root" else "$"
        return f"{self.user}@{self.hostname}:{where}{sign} "

    def welcome(self, now: float) -> str:
        """The MOTD, then login's "Last login" line."""
        return self.identity.motd(now) + self.identity.last_login(now)

    def _uid(self) -> int:
        return {"root": 0, "ubuntu": 1000}.get(self.user, 1001)

    def _path(self, arg: str) -> str:
        if arg.startswith("~"):
            arg = self.home + arg[1:]
        return posixpath.normpath(posixpath.join(self.cwd, arg)).replace("//", "/")

    def _is_dir(self, path: str) -> bool:
        return path in _TREE or path == self.home

    # -- execution ------------------------------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one command line; `;`, `&&` and `||` separate commands. Sets `status` and `exited`."""
        out: list[str] = []
        for part in _split_commands(line):
            out.append(self._run(part))
            if self.exited:
                break
        return "".join(out)[:MAX_OUTPUT]

    def _run(self, line: str) -> str:
        try:
            argv = shlex.split(line)
        except ValueError:
            self.status = 2
            return "bash: syntax error: unexpected end of file\n"
        if not argv:
            return ""
        cmd, args = argv[0], argv[1:]
        self.status = 0
        name = cmd.rpartition("/")[2] if cmd.startswith(("/bin/", "/usr/bin/")) else cmd
        handler = getattr(self, "_cmd_" + name, None) if name.isidentifier() else None
        if handler is None:
            self.status = 127
            return f"bash: {cmd}: command not found\n"
        return handler(args)

    def _cmd_busybox(self, args: list[str]) -> str:
        # Mirai-style bots probe with `/bin/busybox WORD` and read "applet not found" as "a shell
        # worth infecting"; "command not found" would end their session before the payload.
        if not args:
            return "BusyBox v1.30.1 (Ubuntu 1:1.30.1-7ubuntu3) multi-call binary.\n"
        handler = getattr(self, "_cmd_" + args[0], None) if args[0].isidentifier() else None
        if handler is not None:
            return handler(args[1:])
        self.status = 127
        return f"{args[0]}: applet not found\n"

    def _cmd_pwd(self, args: list[str]) -> str:
        return self.cwd + "\n"

    def _cmd_whoami(self, args: list[str]) -> str:
        return self.user + "\n"

    def _cmd_id(self, args: list[str]) -> str:
        uid = self._uid()
        groups = f"{uid}({self.user})"
        if uid == 1000:
            groups += ",4(adm),24(cdrom),27(sudo),30(dip),46(plugdev)"
        return f"uid={uid}({self.user}) gid={uid}({self.user}) groups={groups}\n"

    def _cmd_hostname(self, args: list[str]) -> str:
        return self.hostname + "\n"

    def _cmd_uname(self, args: list[str]) -> str:
        kernel = self.identity.kernel
        if "-a" in args:
            return kernel.uname(self.hostname) + "\n"
        if "-r" in args:
            return kernel.release + "\n"
        if "-m" in args:
            return kernel.machine + "\n"
        if "-n" in args:
            return self.hostname + "\n"
        return kernel.sysname + "\n"

    def _cmd_uptime(self, args: list[str]) -> str:
        now = self.clock()
        up = self.identity.uptime(now)
        if "-p" in args or "--pretty" in args:
            return pretty_uptime(up) + "\n"
        if "-s" in args or "--since" in args:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.identity.boot_time)) + "\n"
        return uptime_line(now, up, 1, self.identity.load_average()) + "\n"

    def _cmd_w(self, args: list[str]) -> str:
        now = self.clock()
        since = time.strftime("%H:%M", time.gmtime(self.login))
        head = "USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT"
        me = f"{self.user[:8]:<8} pts/0    {(self.peer or '-')[:16]:<16} {since}    0.00s  0.01s  0.00s w"
        if "-h" in args:
            return me + "\n"
        return (
            f"{uptime_line(now, self.identity.uptime(now), 1, self.identity.load_average())}\n{head}\n{me}\n"
        )

    def _cmd_who(self, args: list[str]) -> str:
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.login))
        peer = f" ({self.peer})" if self.peer else ""
        return f"{self.user[:8]:<8} pts/0        {since}{peer}\n"

    def _cmd_echo(self, args: list[str]) -> str:
        return " ".join(args) + "\n"

    def _cmd_exit(self, args: list[str]) -> str:
        self.exited = True
        return ""

    _cmd_logout = _cmd_exit

    def _cmd_cd(self, args: list[str]) -> str:
        target = self._path(args[0]) if args else self.home
        if not self._is_dir(target):
            self.status = 1
            return f"bash: cd: {args[0]}: No such file or directory\n"
        self.cwd = target
        return ""

    def _cmd_ls(self, args: list[str]) -> str:
        paths = [a for a in args if not a.startswith("-")] or ["."]
        out: list[str] = []
        for arg in paths:
            path = self._path(arg)
            if self._is_dir(path):
                entries = [e.rstrip("/") for e in _TREE.get(path, [])]
                if entries:
                    out.append("  ".join(entries) + "\n")
            elif path in self._files or any(
                path == posixpath.join(d, e) for d, es in _TREE.items() for e in es
            ):
                out.append(arg + "\n")
            else:
                self.status = 2
                out.append(f"ls: cannot access '{arg}': No such file or directory\n")
        return "".join(out)

    def _read(self, path: str) -> str | None:
        """A file's content; /proc's are made when read."""
        if path == "/proc/uptime":
            up = self.identity.uptime(self.clock())
            return f"{up:.2f} {up * 1.93:.2f}\n"  # idle time: two cores, mostly idle
        if path == "/proc/loadavg":
            load = " ".join(f"{x:.2f}" for x in self.identity.load_average())
            processes = self.identity.rng("processes").randint(96, 260)
            return f"{load} 1/{processes} {self.identity.rng('pid').randint(2000, 60000)}\n"
        return self._files.get(path)

    def _cmd_cat(self, args: list[str]) -> str:
        out: list[str] = []
        for arg in args:
            path = self._path(arg)
            text = self._read(path)
            if text is not None:
                out.append(text)
            elif self._is_dir(path):
                self.status = 1
                out.append(f"cat: {arg}: Is a directory\n")
            else:
                self.status = 1
                out.append(f"cat: {arg}: No such file or directory\n")
        return "".join(out)


def _split_commands(line: str) -> list[str]:
    """Split on ; && || outside quotes (good enough for bots' one-liners)."""
    parts: list[str] = []
    buf: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = ""
            buf.append(c)
        elif c in "'\"":
            quote = c
            buf.append(c)
        elif c == ";" or line.startswith(("&&", "||"), i):
            parts.append("".join(buf))
            buf = []
            i += 1 if c == ";" else 2
            continue
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


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
