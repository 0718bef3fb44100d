"""The filesystem a Unix virtual host's shell shows: built once per machine, changed per session.

`base_tree(machine)` lays out what a fresh install of the host's distribution has, with the
machine's users, home directories, software and dates; it is shared by every session of the
host. `SessionFS` puts a session's own changes over it (mkdir, touch, rm, chmod, `>` a file):
they show in that session only, and are bounded. Files whose content depends on the moment
(/proc) are `dynamic`: the shell makes their text when read.

Pure: paths in, nodes out; nothing here touches the real filesystem.
"""

from __future__ import annotations

import posixpath
import random
from dataclasses import dataclass, replace
from functools import lru_cache

from dynapot.services.machine import Machine

__all__ = ["MAX_CHANGES", "Node", "SessionFS", "base_tree"]

MAX_CHANGES = 2000  # a session's own files and directories at most
MAX_FILE = 64 * 1024  # bytes a session may write into one file
MAX_PATH = 4096  # Linux's PATH_MAX: a longer path names nothing


@dataclass(frozen=True, slots=True)
class Node:
    """A file, directory or symbolic link."""

    kind: str  # "d", "-", "l"
    mode: int  # permission bits, e.g. 0o755
    owner: str
    group: str
    mtime: float
    content: str = ""
    size: int | None = None  # None: the content's length (a directory: 4096)
    target: str = ""  # a symbolic link's
    dynamic: bool = False  # made when read (/proc): ls shows size 0
    live: bool = False  # a log the machine keeps writing: made when read, its time a moment ago
    nlink: int = 1

    @property
    def is_dir(self) -> bool:
        return self.kind == "d"

    @property
    def length(self) -> int:
        if self.size is not None:
            return self.size
        if self.kind == "d":
            return 4096
        if self.kind == "l":
            return len(self.target)
        return 0 if self.dynamic else len(self.content.encode("utf-8", "surrogateescape"))

    def permissions(self) -> str:
        """ls's "drwxr-xr-x"."""
        bits = "".join(ch if self.mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
        if self.mode & 0o1000:  # sticky: /tmp
            bits = bits[:8] + ("t" if bits[8] == "x" else "T")
        return self.kind + bits


def _dir(owner: str, group: str, mtime: float, mode: int = 0o755) -> Node:
    return Node("d", mode, owner, group, mtime)


def _file(content: str, mtime: float, mode: int = 0o644, owner: str = "root", group: str = "root") -> Node:
    return Node("-", mode, owner, group, mtime, content)


# Commands a fresh install has in /usr/bin or /bin (ls /bin, which, type).
BIN = (
    "bash", "busybox", "cat", "chgrp", "chmod", "chown", "cp", "curl", "cut", "date", "dd", "df", "dmesg",
    "echo", "egrep", "env", "false", "free", "grep", "gzip", "head", "hostname", "id", "kill", "less", "ln",
    "ls", "lscpu", "mkdir", "mktemp", "more", "mount", "mv", "nano", "nproc", "perl", "ping", "ps", "pwd",
    "python3", "readlink", "rm", "rmdir", "sed", "sh", "sleep", "sort", "ssh", "stat", "su", "sudo",
    "tail", "tar", "top", "touch", "tr", "true", "umount", "uname", "uniq", "uptime", "vi", "w", "wc",
    "wget", "which", "who", "whoami", "xargs",
)  # fmt: skip
# What stays in /bin where /usr is not merged (CentOS 6, Debian 11, Ubuntu 18.04).
ROOT_BIN = frozenset(
    [
        "bash",
        "cat",
        "chgrp",
        "chmod",
        "chown",
        "cp",
        "date",
        "dd",
        "df",
        "dmesg",
        "echo",
        "egrep",
        "false",
        "grep",
        "gzip",
        "hostname",
        "kill",
        "ln",
        "ls",
        "mkdir",
        "mktemp",
        "more",
        "mount",
        "mv",
        "ping",
        "ps",
        "pwd",
        "readlink",
        "rm",
        "rmdir",
        "sed",
        "sh",
        "sleep",
        "stat",
        "su",
        "tar",
        "touch",
        "true",
        "umount",
        "uname",
    ]
)
SBIN = (
    "agetty", "blkid", "fdisk", "ifconfig", "init", "ip", "iptables", "mkfs", "reboot", "route", "shutdown",
    "sshd", "sysctl", "useradd", "userdel", "usermod",
)  # fmt: skip


@lru_cache(maxsize=256)
def base_tree(machine: Machine) -> dict[str, Node]:
    """Path -> node of everything the machine's disk holds (a dict shared by its sessions: read only)."""
    identity = machine.identity
    distribution = identity.distribution
    rng = identity.rng("files")
    install = machine.installed
    boot = identity.boot_time
    tree: dict[str, Node] = {}

    def when(lo: float, hi: float) -> float:
        return lo + rng.random() * max(0.0, hi - lo)

    def add(path: str, node: Node) -> None:
        tree[path] = node

    for name in ("/", "/boot", "/dev", "/etc", "/home", "/media", "/mnt", "/opt", "/proc", "/root", "/run",
                 "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/local",  # noqa: S108 (a fake tree's)
                 "/usr/share", "/usr/include", "/var/backups", "/var/cache", "/var/lib", "/var/log",
                 "/var/mail", "/var/spool", "/var/tmp", "/var/www", "/etc/ssh", "/etc/cron.d",  # noqa: S108 (a fake tree's)
                 "/etc/default", "/etc/init.d", "/usr/local/bin", "/usr/share/doc"):  # fmt: skip
        add(name, _dir("root", "root", when(install, boot)))
    add("/tmp", replace(tree["/tmp"], mode=0o1777, mtime=boot + 60))  # noqa: S108 (a fake tree's)
    add("/var/tmp", replace(tree["/var/tmp"], mode=0o1777))  # noqa: S108 (a fake tree's)
    add("/root", replace(tree["/root"], mode=0o700))
    add("/proc", replace(tree["/proc"], mode=0o555, mtime=boot, nlink=180))
    add("/sys", replace(tree["/sys"], mode=0o555, mtime=boot, nlink=13))
    add("/dev", replace(tree["/dev"], mtime=boot + 5, nlink=18))
    add("/run", replace(tree["/run"], mtime=boot + 30, nlink=24))
    for link in ("bin", "sbin", "lib", "lib64") if machine.merged_usr else ():
        add(f"/{link}", Node("l", 0o777, "root", "root", install, target=f"usr/{link}"))
    for name in ("/bin", "/sbin", "/lib", "/lib64") if not machine.merged_usr else ():
        add(name, _dir("root", "root", when(install, boot)))
    for name in BIN:
        bindir = "/bin" if not machine.merged_usr and name in ROOT_BIN else "/usr/bin"
        add(
            f"{bindir}/{name}",
            Node("-", 0o755, "root", "root", when(install, boot), size=rng.randint(18_000, 1_300_000)),
        )
    for name in SBIN:
        add(
            f"/usr/sbin/{name}",
            Node("-", 0o755, "root", "root", when(install, boot), size=rng.randint(30_000, 900_000)),
        )

    hostname = identity.hostname
    seed = identity.seed.hex()
    uuid = f"{seed[8:16]}-{seed[16:20]}-{seed[20:24]}-{seed[24:28]}-{seed[28:40]}"
    etc = {
        "/etc/passwd": machine.passwd(),
        "/etc/group": machine.group_file(),
        "/etc/hostname": f"{hostname}\n",
        "/etc/hosts": f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n"
        "# The following lines are desirable for IPv6 capable hosts\n"
        "::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
        "/etc/issue": distribution.issue,
        "/etc/issue.net": distribution.issue_net.split("\n")[0] + "\n",
        "/etc/os-release": distribution.os_release(),
        "/etc/resolv.conf": (f"search {machine.search}\n" if machine.search else "")
        + "".join(f"nameserver {server}\n" for server in machine.nameservers),
        "/etc/shells": "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n",
        "/etc/crontab": "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n"
        "17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly\n",
        "/etc/fstab": f"UUID={uuid} /               ext4    errors=remount-ro 0       1\n",
        "/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n"
        "UsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\n"
        "Subsystem\tsftp\t/usr/lib/openssh/sftp-server\n",
    }
    if distribution.id in ("debian", "ubuntu"):
        etc["/etc/debian_version"] = {"12": "12.4\n", "11": "11.8\n", "22.04": "bookworm/sid\n"}.get(
            distribution.version_id, "buster/sid\n"
        )
    elif distribution.id == "centos":
        etc["/etc/redhat-release"] = etc["/etc/centos-release"] = distribution.pretty + "\n"
    for path, text in etc.items():
        add(path, _file(text, when(install, boot)))
    add("/etc/shadow", _file(_shadow(machine, rng), when(install, boot), 0o640, "root", "shadow"))
    add(
        "/etc/motd",
        _file("" if distribution.id != "debian" else distribution.welcome.split("\n\n", 1)[1], install),
    )
    for name in ("resolv.conf", "hostname"):
        add(f"/etc/{name}", replace(tree[f"/etc/{name}"], mtime=boot + 20))
    for package in machine.packages:
        add(f"/usr/share/doc/{package}", _dir("root", "root", when(install, boot)))

    for user in machine.users:
        if not user.home.startswith("/home/"):
            continue
        made = when(install, install + 86_400 * 3)
        add(
            user.home,
            _dir(
                user.name, user.name, when(made, boot), 0o700 if identity.kernel.release[0] == "2" else 0o755
            ),
        )
        for dot, text in _SKEL.items():  # the skeleton's files, as their length says
            add(f"{user.home}/{dot}", Node("-", 0o644, user.name, user.name, made, text))
        if user == machine.admin:
            add(f"{user.home}/.ssh", _dir(user.name, user.name, when(made, boot), 0o700))
            add(
                f"{user.home}/.bash_history",
                Node("-", 0o600, user.name, user.name, when(made, boot), _HISTORY),
            )
    for dot, text in _ROOT_DOTFILES.items():
        add(f"/root/{dot}", Node("-", 0o644, "root", "root", install, text))

    for name in ("loadavg", "uptime", "cpuinfo", "meminfo", "version", "mounts", "stat"):
        add(f"/proc/{name}", Node("-", 0o444, "root", "root", boot, dynamic=True))
    texts = (
        ("auth.log", "syslog", "kern.log") if distribution.id != "centos" else ("secure", "messages", "cron")
    )
    for name in texts:  # written as the machine runs: made when read (`logs`)
        add(f"/var/log/{name}", Node("-", 0o640, "root", "adm", boot, live=True))
    binary = ("wtmp", "lastlog", "btmp")
    for name in binary:
        add(
            f"/var/log/{name}",
            Node(
                "-",
                0o664 if name != "btmp" else 0o660,
                "root",
                "utmp",
                boot + 40,
                size=rng.randint(3, 90) * 384,
            ),
        )
    if any(p in machine.packages for p in ("apache2", "httpd", "nginx")):
        add("/var/www/html", _dir("root", "root", when(install, boot)))
        add("/var/www/html/index.html", Node("-", 0o644, "root", "root", when(install, boot), size=10701))
    return tree


# A home directory's dot files (what ls -la shows, with their sizes, and what cat shows).
_SKEL = {
    ".bash_logout": "# ~/.bash_logout: executed by bash(1) when login shell exits.\n\n"
    "# when leaving the console clear the screen to increase privacy\n\n"
    'if [ "$SHLVL" = 1 ]; then\n    [ -x /usr/bin/clear_console ] && /usr/bin/clear_console -q\nfi\n',
    ".bashrc": "# ~/.bashrc: executed by bash(1) for non-login shells.\n\n"
    "# If not running interactively, don't do anything\n"
    "case $- in\n    *i*) ;;\n      *) return;;\nesac\n\n"
    "HISTCONTROL=ignoreboth\nshopt -s histappend\nHISTSIZE=1000\nHISTFILESIZE=2000\n"
    "shopt -s checkwinsize\n\n"
    "if [ -x /usr/bin/dircolors ]; then\n"
    '    test -r ~/.dircolors && eval "$(dircolors -b ~/.dircolors)" || eval "$(dircolors -b)"\n'
    "    alias ls='ls --color=auto'\n    alias grep='grep --color=auto'\nfi\n\n"
    "alias ll='ls -l'\nalias la='ls -A'\nalias l='ls -CF'\n\n"
    "if [ -f ~/.bash_aliases ]; then\n    . ~/.bash_aliases\nfi\n",
    ".profile": "# ~/.profile: executed by the command interpreter for login shells.\n\n"
    "# if running bash\n"
    'if [ -n "$BASH_VERSION" ]; then\n    # include .bashrc if it exists\n'
    '    if [ -f "$HOME/.bashrc" ]; then\n\t. "$HOME/.bashrc"\n    fi\nfi\n\n'
    "# set PATH so it includes user's private bin if it exists\n"
    'if [ -d "$HOME/bin" ] ; then\n    PATH="$HOME/bin:$PATH"\nfi\n\n'
    'if [ -d "$HOME/.local/bin" ] ; then\n    PATH="$HOME/.local/bin:$PATH"\nfi\n',
}
_ROOT_DOTFILES = {
    ".bashrc": "# ~/.bashrc: executed by bash(1) for non-login shells.\n\n"
    "# Note: PS1 and umask are already set in /etc/profile. You should not\n"
    "# need this unless you want different defaults for root.\n"
    "# PS1='${debian_chroot:+($debian_chroot)}\\h:\\w\\$ '\n# umask 022\n\n"
    "# You may uncomment the following lines if you want `ls' to be colorized:\n"
    "# export LS_OPTIONS='--color=auto'\n# eval \"$(dircolors)\"\n"
    "# alias ls='ls $LS_OPTIONS'\n# alias ll='ls $LS_OPTIONS -l'\n",
    ".profile": "# ~/.profile: executed by Bourne-compatible login shells.\n\n"
    'if [ "$BASH" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n\n'
    "mesg n 2> /dev/null || true\n",
}
_HISTORY = "ls\nsudo apt update\nsudo apt upgrade -y\ndf -h\nsudo systemctl status ssh\nexit\n"
_SALT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _shadow(machine: Machine, rng: random.Random) -> str:
    """/etc/shadow: locked system accounts; the people's hashes are random, in the distribution's scheme."""
    yescrypt = (
        machine.identity.distribution.id == "debian" and machine.identity.distribution.version_id >= "11"
    )
    days = int(machine.installed // 86_400)

    def hashed() -> str:
        salt = "".join(rng.choice(_SALT) for _ in range(16 if not yescrypt else 22))
        body = "".join(rng.choice(_SALT) for _ in range(86 if not yescrypt else 43))
        return f"$y$j9T${salt}${body}" if yescrypt else f"$6${salt}${body}"

    lines = []
    for user in machine.users:
        secret = hashed() if user.shell.endswith("sh") and user.uid >= 500 else "*" if user.uid else "!"
        lines.append(f"{user.name}:{secret}:{days}:0:99999:7:::")
    return "\n".join(lines) + "\n"


class SessionFS:
    """One session's view: the machine's tree with this session's own changes over it."""

    def __init__(self, base: dict[str, Node]) -> None:
        self.base = base
        self.changed: dict[str, Node | None] = {}  # None: removed here
        self._removed: set[str] = set()  # paths removed here (and not made again)

    def resolve(self, path: str) -> str:
        """`path` with symbolic links of its directories followed (/bin/ls -> /usr/bin/ls)."""
        if len(path) > MAX_PATH:
            return path
        parts = [p for p in path.split("/") if p]
        out = "/"
        for i, part in enumerate(parts):
            candidate = posixpath.join(out, part)
            # only links matter here, and only the machine's own (a session makes none)
            node = self.changed.get(candidate, self.base.get(candidate))
            if node is not None and node.kind == "l" and i < len(parts) - 1:
                candidate = posixpath.normpath(posixpath.join(out, node.target))
            out = candidate
        return out

    def lookup(self, path: str) -> Node | None:
        """The node at `path` (no link followed), or None."""
        if path in self.changed:
            return self.changed[path]
        if len(path) > MAX_PATH:
            return None
        removed = self._removed
        if removed and (
            any(path.startswith(r + "/") for r in removed)
            if len(removed) < path.count("/")
            else any(p in removed for p in _ancestors(path))
        ):
            return None  # something above it was removed in this session
        return self.base.get(path)

    def get(self, path: str) -> Node | None:
        """The node at `path`, links followed."""
        real = self.resolve(path)
        node = self.lookup(real)
        if node is not None and node.kind == "l":
            node = self.lookup(posixpath.normpath(posixpath.join(posixpath.dirname(real), node.target)))
        return node

    def children(self, path: str) -> dict[str, Node]:
        """A directory's entries, name -> node, sorted by name."""
        real = self.resolve(path)
        node = self.lookup(real)  # not `get`: the link itself, whose target holds the entries
        if node is not None and node.kind == "l":
            real = posixpath.normpath(posixpath.join(posixpath.dirname(real), node.target))
        prefix = real.rstrip("/") + "/"
        names = set()
        for candidate in (*self.base, *self.changed):
            if candidate.startswith(prefix) and "/" not in candidate[len(prefix) :] and candidate != prefix:
                names.add(candidate[len(prefix) :])
        out = {}
        for name in sorted(names):
            found = self.lookup(prefix + name)
            if found is not None:
                out[name] = found
        return out

    def put(self, path: str, node: Node) -> bool:
        """Add or replace; False when the session has changed too much already."""
        if path not in self.changed and len(self.changed) >= MAX_CHANGES:
            return False
        if node.kind == "-" and len(node.content) > MAX_FILE:
            node = replace(node, content=node.content[:MAX_FILE])
        self.changed[path] = node
        self._removed.discard(path)
        return True

    def remove(self, path: str) -> None:
        for candidate in [c for c in self.changed if c.startswith(path.rstrip("/") + "/")]:
            del self.changed[candidate]
        self.changed[path] = None
        self._removed = {r for r in self._removed if not r.startswith(path.rstrip("/") + "/")} | {path}


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(2, len(parts))]
