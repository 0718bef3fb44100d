"""A small, pure fake Linux shell for the emulated login services (ssh, telnet).

Nothing here touches the real system: the filesystem is a fixed in-memory tree, every
answer is a string. It only has to look right to a bot's first few commands.
"""

from __future__ import annotations

import posixpath
import shlex

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


class FakeShell:
    """A bash look-alike: `prompt()` and `execute(line) -> output` (output ends with a newline)."""

    UNAME = (
        "Linux {host} 5.15.0-91-generic #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023"
        " x86_64 x86_64 x86_64 GNU/Linux"
    )

    def __init__(self, hostname: str, user: str) -> None:
        self.hostname = hostname
        self.user = user
        self.home = "/root" if user == "root" else f"/home/{user}"
        self.cwd = self.home
        self.exited = False
        self.status = 0
        self._files = {
            "/etc/passwd": _PASSWD
            + ("" if user in ("root", "ubuntu") else f"{user}:x:1001:1001::/home/{user}:/bin/bash\n"),
            "/etc/hostname": f"{hostname}\n",
            "/etc/issue": "Ubuntu 22.04.3 LTS \\n \\l\n\n",
            "/etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n",
            "/etc/os-release": 'PRETTY_NAME="Ubuntu 22.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
            'VERSION="22.04.3 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\n',
        }

    # -- presentation -------------------------------------------------------------------------------------

    def prompt(self) -> str:
        where = "~" + self.cwd[len(self.home) :] if self.cwd.startswith(self.home) else self.cwd
        sign = "#" if self.user == "root" else "$"
        return f"{self.user}@{self.hostname}:{where}{sign} "

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
        if "-a" in args:
            return self.UNAME.format(host=self.hostname) + "\n"
        if "-r" in args:
            return "5.15.0-91-generic\n"
        if "-m" in args:
            return "x86_64\n"
        if "-n" in args:
            return self.hostname + "\n"
        return "Linux\n"

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

    def _cmd_cat(self, args: list[str]) -> str:
        out: list[str] = []
        for arg in args:
            path = self._path(arg)
            if path in self._files:
                out.append(self._files[path])
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
