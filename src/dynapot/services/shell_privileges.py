"""sudo and su in the fake shell: a password prompt whose answer is recorded as a login attempt.

`Privileges` is a part of `shell.FakeShell` (a mixin: it uses the shell's user, machine, events
and output). As root, `sudo CMD` runs CMD and `sudo -l` lists; for another user sudo asks
`[sudo] password for USER: ` (the shell's `secret`: the edge neither echoes nor records the
next line as a command), refuses after pam_unix's delay with `Sorry, try again.` three times,
or, when the login's own password is given by a sudoer, runs as root; `su` asks `Password: `
and fails after its delay. Without a terminal (an SSH exec request) both refuse as they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynapot.events import Kind
from dynapot.services.contract import clip

__all__ = ["ROOT_PATH", "SUDO_DELAY", "SU_DELAY", "Asking", "Privileges"]

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUDO_DELAY = 2.0  # seconds pam_unix makes a wrong password wait (sudo)
SU_DELAY = 3.0  # and su


@dataclass(slots=True)
class Asking:
    """A password prompt: which program asks, its prompt, what it will run, the tries so far."""

    kind: str  # "sudo", "su"
    prompt: str
    detail: Any
    tries: int = 0


_SUDO = {"debian": "1.9.13p3", "ubuntu": "1.9.9", "centos": "1.8.23"}
_SUDO_USAGE = (
    "usage: sudo -h | -K | -k | -V\n"
    "usage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]\n"
    "usage: sudo -l [-ABkNnS] [-g group] [-h host] [-p prompt] [-U user] [-u user] [command [arg ...]]\n"
    "usage: sudo [-ABbEHkNnPS] [-r role] [-t type] [-C num] [-D directory] [-g group] [-h host] [-p\n"
    "            prompt] [-R directory] [-T timeout] [-u user] [VAR=value] [-i | -s] [command [arg ...]]\n"
    "usage: sudo -e [-ABkNnS] [-r role] [-t type] [-C num] [-D directory] [-g group] [-h host] [-p\n"
    "            prompt] [-R directory] [-T timeout] [-u user] file ...\n"
)


class Privileges:
    """sudo and su, for `FakeShell` (whose attributes and helpers they use)."""

    # what FakeShell provides
    user: str
    account: Any
    machine: Any
    identity: Any
    hostname: str
    password: str | None
    terminal: bool
    functions: dict[str, Any]
    events: list[tuple[Kind, str | None, dict[str, Any] | None]]
    variables: dict[str, str]
    _asking: Asking | None

    def _cmd_sudo(self, args: list[str], stdin: str | None) -> str:
        options: list[str] = []
        while args and args[0].startswith("-"):
            if args[0] in ("-u", "-g", "-C", "-p") and len(args) > 1:
                options.append(args[0] + args[1])
                args = args[2:]
            else:
                options.append(args[0])
                args = args[1:]
        if "-V" in options or "--version" in options:
            return f"Sudo version {_SUDO.get(self.identity.distribution.id, '1.9.13p3')}\n"
        if not args and not any(o in ("-l", "-i", "-s", "-v", "-k") for o in options):
            self._error(_SUDO_USAGE, 1)
            return ""
        if "-k" in options and not args:
            return ""
        if self.user == "root":
            return self._as_root(options, args, stdin)
        if "-n" in options:
            self._error("sudo: a password is required\n", 1)
            return ""
        if not self.terminal:
            self._error(
                "sudo: a terminal is required to read the password; either use the -S option to read "
                "from standard input or configure an askpass helper\nsudo: a password is required\n",
                1,
            )
            return ""
        self._asking = Asking("sudo", f"[sudo] password for {self.user}: ", (options, args))
        return ""

    def _as_root(self, options: list[str], args: list[str], stdin: str | None) -> str:
        """sudo as root (or with the right password): -l lists, a command runs, a shell is this one."""
        if "-l" in options:
            host = self.hostname.split(".")[0]
            return (
                f"Matching Defaults entries for {self.user} on {host}:\n"
                "    env_reset, mail_badpass,\n"
                "    secure_path=/usr/local/sbin\\:/usr/local/bin\\:/usr/sbin\\:/usr/bin\\:/sbin\\:/bin,\n"
                "    use_pty\n\n"
                f"User {self.user} may run the following commands on {host}:\n    (ALL : ALL) ALL\n"
            )
        if not args or args[0] in ("su", "bash", "sh", "-i", "-s"):
            self._become_root()
            return ""
        if args[0] in self.functions or (not self._where(args[0]) and "/" not in args[0]):
            self._error(f"sudo: {args[0]}: command not found\n", 1)
            return ""
        user = self.user
        self._become_root(keep=True)
        try:
            return self._dispatch(args, stdin)
        finally:
            self._restore_user(user)

    def _cmd_su(self, args: list[str], stdin: str | None) -> str:
        target = next((a for a in args if not a.startswith("-")), "root")
        if self.machine.user(target) is None:
            self._error(
                f"su: user {target} does not exist or the user entry does not contain all the "
                "required fields\n",
                1,
            )
            return ""
        if self.user == "root":
            return ""  # root's su asks nothing: a new shell, this one
        if not self.terminal:
            self._error("su: must be run from a terminal\n", 1)
            return ""
        self._asking = Asking("su", "Password: ", target)
        return ""

    def _answer(self, line: str) -> None:
        """The line typed at a password prompt: recorded as a login attempt, refused after PAM's delay."""
        asking = self._asking
        assert asking is not None
        password = line.rstrip("\r\n")
        target = asking.detail if asking.kind == "su" else self.user
        accepted = (
            asking.kind == "sudo"
            and self.password is not None
            and password == self.password
            and self._sudoer()
        )
        self.events.append(
            (
                Kind.LOGIN,
                f"{clip(str(target))}:{clip(password)}",
                {
                    "user": clip(str(target)),
                    "password": clip(password),
                    "accepted": accepted,
                    "mechanism": asking.kind,
                },
            )
        )
        if accepted:
            self._asking = None
            options, args = asking.detail
            out = self._as_root(options, args, None)
            self._emit(out)
            return
        if asking.kind == "su":
            self._asking = None
            self._pause(SU_DELAY)
            self._error("su: Authentication failure\n", 1)
            return
        asking.tries += 1
        self._pause(SUDO_DELAY)
        if asking.tries < 3:
            self._emit("Sorry, try again.\n")
            return
        self._asking = None
        self._error(f"sudo: {asking.tries} incorrect password attempts\n", 1)

    def _sudoer(self) -> bool:
        return any(g.name in ("sudo", "wheel", "admin") for g in self.machine.groups_of(self.account))

    def _become_root(self, *, keep: bool = False) -> None:
        root = self.machine.user("root")
        assert root is not None
        self.user, self.account = "root", root
        if not keep:
            self.home = self.cwd = root.home
            self.variables.update(HOME=root.home, USER="root", LOGNAME="root", PWD=root.home, PATH=ROOT_PATH)

    def _restore_user(self, user: str) -> None:
        account = self.machine.user(user)
        assert account is not None
        self.user, self.account = user, account
