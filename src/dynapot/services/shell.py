"""The shells behind the emulated logins (ssh, telnet): a pure fake bash, and `shell_for`.

Nothing here touches the real system or the network: a `FakeShell` is fed one command line at
a time and returns its output. It shows the host's machine (`machine.machine_for`: users,
CPU, memory, software, processes) through a filesystem (`fakefs`) that each session may change
for itself (mkdir, touch, rm, chmod, `>`), and agrees with everything else the host says: its
name, `uname`, /etc/os-release and /proc/version are its identity's, and `uptime`, `w`, `ps`
and /proc/uptime count from the boot its SNMP sysUpTime and TCP timestamps count from.

A line is parsed as bash parses it (`shell_grammar`: lists, pipelines, `for`, `while`/`until`,
`if`, `case`, `{ }`, `( )`, functions, here-documents; bash's syntax errors, and its `> `
prompt for an unfinished line), its words expanded as bash expands them (`shell_syntax`:
quotes, `$VAR`, `${...}` forms (`shell_params`), `$(...)`, `$((...))` (`shell_arith`), brace
expansion (`shell_braces`), word splitting, globbing against the session's files
(`shell_glob`)), and run here: builtins, `test`/`[ ]`/`[[ ]]` (`shell_test`), scripts (`sh
FILE`, `./FILE`, `. FILE`, `bash -c`), and a binary by its ELF header (`shell_binary`: the
host's architecture runs, another fails as exec does). bashlex (GPL-3.0, a parser only) would
not fit the MIT licence. Everything is bounded: MAX_STEPS commands and MAX_ITERATIONS rounds
of a loop per line, MAX_DEPTH nesting, MAX_OUTPUT; what is cut is counted in `counters`.

What a real tool would take time for (wget's name resolution, `sleep`, a wrong password) is
returned as `pauses`, (offset in the output, seconds), for the IO edge to apply; URLs fetched
are recorded in `events`, never fetched; files the session writes are recorded as uploads
(SHA-256, size; kept in the service's `UploadStore` if it has one) once they are made
executable, run, removed, or when the session ends (`close`). sudo and su ask for a password
(`secret`: the edge neither echoes nor records that line as a command; the shell records it
as a login attempt). Routers get an IOS exec (`ios_exec`), Windows hosts cmd.exe (`cmd_exe`).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import time
from collections import Counter
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
from dynapot.services.shell_arith import ArithmeticFailure
from dynapot.services.shell_binary import kind_of, runs_on
from dynapot.services.shell_capture import MAX_UPLOADS, Captures, byte, raw
from dynapot.services.shell_glob import glob, has_magic, match
from dynapot.services.shell_grammar import (
    Background,
    Case,
    Connected,
    For,
    Function,
    Group,
    If,
    Incomplete,
    Loop,
    Pipeline,
    Redirected,
    Sequence,
    Simple,
    parse,
)
from dynapot.services.shell_grammar import Node as Tree
from dynapot.services.shell_params import ParameterFailure, parameter
from dynapot.services.shell_privileges import ROOT_PATH, Asking, Privileges
from dynapot.services.shell_syntax import Command, expand, literal
from dynapot.services.shell_test import evaluate
from dynapot.services.uploads import UploadStore

MAX_OUTPUT = 64 * 1024
_RECORDED = frozenset({"uploads"})  # counters of what was kept, not of what a bound cut


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
    password: str | None = None,
    uploads: UploadStore | None = None,
) -> Shell:
    """The shell of a host of this kind ("windows", "cisco", else a Unix shell); `via`: "ssh" or "telnet".

    `password`: the one the login used (sudo accepts it for a sudoer); `uploads`: where files the
    session writes are kept (without one, only their digests are recorded).
    """
    if kind == "windows":
        return CmdShell(identity, user)
    if kind == "cisco":
        return IosShell(identity)
    return FakeShell(
        identity, user, hostname=hostname, peer=peer, via=via, password=password, uploads=uploads
    )


_SIX_MONTHS = 15_778_476  # seconds: ls shows the year of files older than this
_PATH = ROOT_PATH
_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
MAX_HISTORY = 1000
MAX_STEPS = 4000  # simple commands one line may run (loops, functions, scripts): then it stops
MAX_ITERATIONS = 1000  # of one loop: then it ends as if its condition had failed
MAX_DEPTH = 16  # nesting of $(...), sh -c, scripts and function calls
MAX_FUNCTIONS = 100
MAX_PENDING = 16 * 1024  # characters of an unfinished compound command kept for its next line
MAX_VARIABLES = 500
MAX_PAUSE = 30.0  # seconds of pauses one line may ask for
RESOLVER_WAIT = 10.0  # glibc: two tries of 5 s at an unreachable name server
EXEC_COST = (0.0015, 0.004)  # seconds a program takes to start and finish, per host (fork, exec, exit)
# Programs that take longer, as multiples of that (measured with bench/bench_shell.py's reference).
_COSTS = {"ps": 6.0, "ls": 1.5, "w": 3.0, "free": 2.0, "lscpu": 3.0, "wget": 2.0, "curl": 2.0}
_NO_COST = frozenset({"sleep", "exit", "logout", "busybox", "sh", "bash"})  # their own pause, or none


class FakeShell(Privileges, Captures):
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
        password: str | None = None,
        uploads: UploadStore | None = None,
    ) -> None:
        self.identity = identity
        self.password = password  # the login's, if the service knows it: sudo accepts it
        self.terminal = True  # the session has a terminal (sudo and su read passwords from it)
        self.name = "-bash"  # how bash names itself in its errors: a login shell's argv[0]
        self._dash = False  # a script dash runs (sh on Debian and Ubuntu)
        self._lines: str | None = None  # in a script: how its errors name it and the line ("s.sh: line {}")
        self.uploads = uploads
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
        self._steps = 0
        self._paused = 0.0
        self._jobs = 0  # started with `&`
        self._pipe: list[str] | None = None  # lines piped into a compound command, for `read`
        self._pending = ""  # an unfinished compound command: bash's `> ` prompt asks for the rest
        self._asking: Asking | None = None  # a password prompt (sudo, su) the next line answers
        self._written: dict[str, str | None] = {}  # files the session wrote -> digest recorded
        self.functions: dict[str, Tree] = {}
        self.counters: Counter[str] = Counter()  # what was cut or not recorded (loops stopped, ...)
        self._limits_said = False

    # -- presentation -------------------------------------------------------------------------------------

    def prompt(self) -> str:
        if self._asking is not None:
            return self._asking.prompt
        if self._pending:
            return "> "
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

    @property
    def secret(self) -> bool:
        """The next line answers a password prompt (sudo, su): not to be echoed, nor recorded as a command."""
        return self._asking is not None

    def execute(self, line: str) -> str:
        """Run one command line. Sets `status`, `exited` and `pauses`."""
        self.pauses = []
        self._paused = 0.0  # seconds of them
        self._out, self._size = [], 0
        self._steps = 0
        if self._asking is not None:
            self._answer(line)
            return self._finish_output()
        if line.strip() and len(self.history) < MAX_HISTORY and not self._pending:
            self.history.append(line.strip())
        text = self._pending + line
        self._pending = ""
        self._run_text(text, interactive=True)
        if self.exited:
            self._record_written("exit")
        return self._finish_output()

    def interrupt(self) -> None:
        """^C: forget an unfinished command (the `> ` prompt) or a password prompt, as bash and sudo do."""
        self._pending = ""
        self._asking = None

    def close(self) -> None:
        """The session ends: what it wrote and has not recorded yet becomes `events` (take them after),
        and what its bounds cut is said once (a `shell-limits` event with the counts)."""
        self._record_written("close")
        cut = {what: n for what, n in sorted(self.counters.items()) if what not in _RECORDED and n}
        if cut and not self._limits_said:
            self._limits_said = True
            detail = ", ".join(f"{what} {n}" for what, n in cut.items())
            self.events.append((Kind.SHELL_LIMITS, detail, {"counts": cut}))

    def _finish_output(self) -> str:
        # bytes written as escapes (\xff) travel as surrogates: the terminal gets U+FFFD for them
        return "".join(self._out)[:MAX_OUTPUT].encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    def _emit(self, text: str) -> None:
        room = max(0, MAX_OUTPUT - self._size)
        if text[:room]:
            self._out.append(text[:room])
            self._size += len(text[:room])
        if len(text) > room:
            self.counters["output characters cut"] += len(text) - room

    def _error(self, text: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        if not self._quiet_errors:
            self._emit(self.name + text[4:] if text.startswith("bash: ") else text)

    def command_mode(self) -> None:
        """The shell runs one command line (an SSH exec request: sshd's `bash -c`), not a login's."""
        self.name = "bash" if self.identity.distribution.id == "centos" else "bash: line 1"  # bash 4 / 5.1+
        self.terminal = False

    def _pause(self, seconds: float) -> None:
        seconds = min(seconds, MAX_PAUSE - self._paused)
        if seconds > 0:
            self.pauses.append((self._size, seconds))
            self._paused += seconds

    def _run_text(self, text: str, *, interactive: bool = False, where: str = "") -> None:
        """Parse and run a line or a script. `where`: how errors name it ("bash: -c: line 1: ")."""
        try:
            tree = parse(text)
        except RecursionError:  # bounded nesting should keep it from here: refuse, never crash
            self.counters["lines refused"] += 1
            self._error("bash: syntax error: expression nested too deeply\n", 2)
            return
        except Incomplete as exc:
            if interactive and len(text) < MAX_PENDING:
                self._pending = text + "\n"  # bash reads on, with its `> ` prompt
                return
            self._error(f"{where or 'bash: '}{exc}\n", 2)
            return
        except SyntaxError as exc:
            self._error(f"{where or 'bash: '}{exc}\n", 2)
            if where:
                self._error(f"{where}`{text.strip()[:200]}'\n")
            return
        try:
            self._run(tree)
        except _Stop:
            if self._depth:
                raise
        except (_Break, _Continue, _Return):
            pass

    def _run(self, node: Tree) -> None:
        """Run one node of a parsed line; what it prints goes to the output."""
        if self.exited:
            return
        if isinstance(node, Simple):
            if self._lines is not None:
                self.name = self._lines.format(node.line)
            out = self._run_simple(node.text, self._heredoc(node), last=True)
            if out:
                self._emit(out)
        elif isinstance(node, Sequence):
            for item in node.items:
                self._run(item)
        elif isinstance(node, Connected):
            self._run(node.first)
            for op, item in node.rest:
                if (op == "&&") == (self.status == 0):
                    self._run(item)
        elif isinstance(node, Pipeline):
            self._run_pipeline(node)
        elif isinstance(node, For):
            self._run_for(node)
        elif isinstance(node, Loop):
            self._run_loop(node)
        elif isinstance(node, If):
            for condition, body in node.branches:
                self._run(condition)
                if self.status == 0:
                    self._run(body)
                    return
            self.status = 0
            if node.otherwise is not None:
                self._run(node.otherwise)
        elif isinstance(node, Case):
            self._run_case(node)
        elif isinstance(node, Group):
            self._run_group(node)
        elif isinstance(node, Function):
            if node.name in self.functions or len(self.functions) < MAX_FUNCTIONS:
                self.functions[node.name] = node.body
            self.status = 0
        elif isinstance(node, Redirected):
            self._run_redirected(node)
        elif isinstance(node, Background):
            if self.terminal and not self._depth:  # job control: an interactive shell's notice
                self._jobs += 1
                shell = procfs.processes(self.machine, self.user, self.login, self.clock(), self.via)[-1]
                self._emit(f"[{self._jobs}] {shell.pid + 1 + len(self.history) + self._jobs}\n")
            self._run(node.command)
            self.status = 0

    def _step(self) -> None:
        """One more command run for this line: past MAX_STEPS the line stops (a loop without end)."""
        self._steps += 1
        if self._steps > MAX_STEPS:
            self.counters["lines stopped"] += 1
            raise _Stop

    def _captured(self, node: Tree) -> str:
        """What `node` prints, taken instead of shown (a pipeline's stage, a redirected compound)."""
        saved = self._out, self._size
        self._out, self._size = [], 0
        try:
            self._run(node)
            return "".join(self._out)
        finally:
            self._out, self._size = saved

    def _heredoc(self, node: Simple) -> str | None:
        """A here-document's lines, with $VAR and $(...) expanded when its delimiter was unquoted."""
        body = node.heredoc
        if body is None or not node.expand_heredoc or ("$" not in body and "`" not in body):
            return body
        quoted = '"' + re.sub(r'(?<!\\)"', r'\\"', body) + '"'
        try:
            return " ".join(expand(quoted, self._lookup, self._substitute).words)
        except SyntaxError:
            return body

    def _run_pipeline(self, node: Pipeline) -> None:
        data: str | None = None
        last = len(node.commands) - 1
        for index, command in enumerate(node.commands):
            if isinstance(command, Simple):
                stdin = self._heredoc(command) if command.heredoc is not None else data
                data = self._run_simple(command.text, stdin, last=index == last)
                if index == last and data:
                    self._emit(data)
            elif index == last:
                saved, self._pipe = self._pipe, (data or "").splitlines()[:MAX_ITERATIONS]
                try:
                    self._run(command)  # `... | while read line; do ...; done`: read takes its lines
                finally:
                    self._pipe = saved
            else:
                data = self._captured(command)
        if node.negate:
            self.status = 0 if self.status else 1

    def _words(self, sources: list[str]) -> list[str]:
        """Words' source texts expanded as a command's arguments are (variables, splitting, globbing)."""
        words: list[str] = []
        for source in sources:
            words.extend(self._expand_words(expand(source, self._lookup, self._substitute)))
        return words

    def _expand_words(self, command: Command) -> list[str]:
        """The command's words with each unquoted pattern replaced by the names it matches."""
        if not command.patterns:
            return command.words
        words: list[str] = []
        for index, word in enumerate(command.words):
            pattern = command.patterns.get(index)
            magic = pattern is not None and has_magic(pattern)
            found = glob(pattern, self.cwd, self._names, self._exists) if magic and pattern else None
            words.extend(found or [word])
        return words

    def _names(self, path: str) -> list[str] | None:
        node = self.fs.get(path)
        if node is None or not node.is_dir or not self._readable(node):
            return None
        return list(self.fs.children(path))

    def _exists(self, path: str) -> bool:
        return self.fs.get(path) is not None

    def _run_for(self, node: For) -> None:
        try:
            items = self._words(node.words) if node.words is not None else []
        except SyntaxError as exc:
            self._error(f"bash: {exc}\n", 1)
            return
        self.status = 0
        for item in items[:MAX_ITERATIONS]:
            self._step()
            self._set(node.name, item)
            try:
                self._run(node.body)
            except _Break:
                break
            except _Continue:
                continue

    def _run_loop(self, node: Loop) -> None:
        status = 0
        for _ in range(MAX_ITERATIONS):
            self._step()
            self._run(node.condition)
            if (self.status == 0) == node.until:
                break
            try:
                self._run(node.body)
            except _Break:
                status = self.status
                break
            except _Continue:
                pass
            status = self.status
        else:
            self.counters["loops stopped"] += 1
        self.status = status

    def _run_case(self, node: Case) -> None:
        try:
            subject = " ".join(expand(node.word, self._lookup, self._substitute).words)
            self.status = 0
            for patterns, body in node.items:
                for source in patterns:
                    command = expand(source, self._lookup, self._substitute)
                    pattern = command.patterns.get(0, literal(command.words[0] if command.words else ""))
                    if match(pattern, subject):
                        self._run(body)
                        return
        except SyntaxError as exc:
            self._error(f"bash: {exc}\n", 1)

    def _run_group(self, node: Group) -> None:
        if not node.subshell:
            self._run(node.body)
            return
        saved = self.cwd, dict(self.variables), set(self.exported), dict(self.functions)
        try:
            self._run(node.body)
        except (_Break, _Continue, _Return):
            pass
        finally:
            self.cwd, self.variables, self.exported, self.functions = saved
            self.exited = False  # `(exit)` ends the subshell only

    def _run_redirected(self, node: Redirected) -> None:
        quiet = self._quiet_errors
        target: tuple[str, str] | None = None
        try:
            for op, source in node.redirections:
                word = "".join(expand(source, self._lookup, self._substitute).words) if source else ""
                if op in ("2>", "2>>") and word == "/dev/null":
                    self._quiet_errors = True
                elif op in (">", ">>", "1>", ">|", "&>", "&>>"):
                    target = (">>" if op.endswith(">>") else ">", word)
                    self._quiet_errors = self._quiet_errors or (op.startswith("&") and word == "/dev/null")
        except SyntaxError as exc:
            self._error(f"bash: {exc}\n", 1)
            return
        try:
            if target is None:
                self._run(node.command)
                return
            out = self._captured(node.command)
            if target[1] != "/dev/null":
                self._write_file(target[1], out, append=target[0] == ">>")
        finally:
            self._quiet_errors = quiet

    def _set(self, name: str, value: str) -> None:
        if name in self.variables or len(self.variables) < MAX_VARIABLES:
            self.variables[name] = value[:4096]

    def _substitute(self, text: str) -> str:
        """$(...): the output of a nested line (bounded depth)."""
        if self._depth >= MAX_DEPTH:
            return ""
        saved_out, saved_size = self._out, self._size
        self._out, self._size = [], 0
        self._depth += 1
        try:
            self._run_text(text)
            return "".join(self._out)
        finally:
            self._depth -= 1
            self._out, self._size = saved_out, saved_size

    def _nested(self, text: str, where: str, positional: list[str] | None = None) -> None:
        """Run `text` (sh -c, a script, a function's body) one level deeper, its output shown."""
        if self._depth >= MAX_DEPTH:
            self.counters["too deep"] += 1
            self.status = 1
            return
        saved = {k: self.variables.get(k) for k in _POSITIONAL} if positional is not None else None
        if positional is not None:
            for index, key in enumerate(_POSITIONAL[1:], 1):
                self.variables[key] = positional[index - 1] if index <= len(positional) else ""
            self.variables["#"] = str(len(positional))
        self._depth += 1
        try:
            self._run_text(text, where=where)
        except _Return:
            pass
        finally:
            self._depth -= 1
            if saved is not None:
                for key, value in saved.items():
                    if value is None:
                        self.variables.pop(key, None)
                    else:
                        self.variables[key] = value

    def _call(self, name: str, args: list[str]) -> None:
        """A function the session defined, run with its arguments as $1 ... $9."""
        if self._depth >= MAX_DEPTH:
            self.counters["too deep"] += 1
            self.status = 1
            return
        saved = {k: self.variables.get(k) for k in _POSITIONAL}
        for index, key in enumerate(_POSITIONAL[1:], 1):
            self.variables[key] = args[index - 1] if index <= len(args) else ""
        self.variables["#"] = str(len(args))
        self._depth += 1
        try:
            self._run(self.functions[name])
        except _Return:
            pass
        finally:
            self._depth -= 1
            for key, value in saved.items():
                if value is None:
                    self.variables.pop(key, None)
                else:
                    self.variables[key] = value

    def _lookup(self, name: str) -> str:
        if not _PARAMETER.fullmatch(name):  # ${x:-default}, ${#x}, ${x%.*}, ...
            return parameter(name, self._get, self._set)
        if name in ("@", "*"):
            count = int(self.variables.get("#", "0") or 0)
            return " ".join(self.variables.get(str(n), "") for n in range(1, min(count, 9) + 1))
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(procfs.processes(self.machine, self.user, self.login, self.clock(), self.via)[-1].pid)
        if name == "0":
            return "-bash"
        if name == "#":
            return self.variables.get("#", "0")
        return self.variables.get(name, "")

    def _get(self, name: str) -> str | None:
        """A parameter's value, None when it is not set."""
        if _PARAMETER.fullmatch(name) and not name[0].isalpha() and name[0] != "_":
            return self._lookup(name)
        return self.variables.get(name)

    def _run_simple(self, text: str, stdin: str | None, *, last: bool) -> str | None:
        """One command of a pipeline: its stdout (for the next stage, or the terminal)."""
        self._step()
        try:
            command = expand(text, self._lookup, self._substitute)
        except (ArithmeticFailure, ParameterFailure) as exc:  # bash gives up the whole line
            self._error(f"bash: {exc}\n", 1)
            raise _Stop from None
        except SyntaxError as exc:
            self.status = 2
            self._error(f"bash: {exc}\n")
            return None
        if not command.words:  # `> file` alone makes it empty, as droppers do before they append
            self.status = 0
            if command.stdout is not None and command.stdout[1] != "/dev/null":
                self._write_file(command.stdout[1], "", append=command.stdout[0] == ">>")
            return None
        words = self._expand_words(command) if command.words[:1] != ["[["] else _conditional(command)
        assignments = 0
        while assignments < len(words) and _ASSIGNMENT.match(words[assignments]):
            assignments += 1
        if assignments == len(words):
            for word in words:
                name, _, value = word.partition("=")
                self._set(name, value)
            self.status = 0
            return None
        words = words[assignments:]
        if command.here is not None:
            stdin = command.here
        if command.stdin is not None:
            stdin = self._read_file(command.stdin, "bash")
            if stdin is None:
                return None
        quiet = self._quiet_errors
        self._quiet_errors = quiet or command.stderr == "/dev/null"
        self._tty = last and command.stdout is None
        try:
            if words[0] in self.functions:
                if command.stdout is None:
                    self._call(words[0], words[1:])
                    return None
                out = self._captured_call(words[0], words[1:])
            else:
                out = self._dispatch(words, stdin)
        finally:
            self._quiet_errors = quiet
        if command.stdout is not None:
            mode, target = command.stdout
            if target != "/dev/null":
                self._write_file(target, out or "", append=mode == ">>")
            return None
        return out

    def _captured_call(self, name: str, args: list[str]) -> str:
        saved = self._out, self._size
        self._out, self._size = [], 0
        try:
            self._call(name, args)
            return "".join(self._out)
        finally:
            self._out, self._size = saved

    def _dispatch(self, words: list[str], stdin: str | None) -> str:
        cmd, args = words[0], words[1:]
        self.status = 0
        name = (
            cmd.rpartition("/")[2] if cmd.startswith(("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/")) else cmd
        )
        name = _SPECIAL.get(name, name)
        handler = (
            getattr(self, "_cmd_" + name.replace("-", "_"), None)
            if re.fullmatch(r"[a-z][a-z0-9_]*", name)
            else None
        )
        if handler is None:
            if "/" in cmd:
                return self._execute_file(cmd, args)
            self._error(
                f"bash: {cmd}: not found\n" if self._dash else f"bash: {cmd}: command not found\n", 127
            )
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

    def _write_file(self, arg: str, text: str, *, append: bool = False, upload: bool = True) -> None:
        """`> FILE`: written in the session's overlay, and (`upload`) recorded later as an upload."""
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
            return
        real = self.fs.resolve(path)
        if not upload:
            return
        if real in self._written or len(self._written) < MAX_UPLOADS * 2:
            self._written.setdefault(real, None)  # recorded when run, made executable, removed, or at the end
        else:
            self.counters["writes not recorded"] += 1

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

    def _cmd_sh(self, args: list[str], stdin: str | None, *, program: str = "sh") -> str:
        """sh -c LINE, sh FILE, or the lines piped in (`curl ... | sh`), run in this shell (bounded depth)."""
        operands = [a for a in args if not a.startswith("-") or a == "-c"]
        if "-c" in operands:
            at = operands.index("-c")
            if at + 1 >= len(operands):
                self._error(f"{program}: -c: option requires an argument\n", 2)
                return ""
            where = f"{program}: -c: line 1: "
            lines = f"{program}: {{}}" if self._is_dash(program) else f"{program}: line {{}}"
            return self._script_output(
                operands[at + 1],
                where,
                operands[at + 3 :],
                subshell=True,
                lines=lines,
                dash=self._is_dash(program),
            )
        if operands:
            return self._run_script(operands[0], operands[1:], program)
        if not (stdin or "").strip():
            return ""
        lines = f"{program}: {{}}" if self._is_dash(program) else f"{program}: line {{}}"
        return self._script_output(
            stdin or "", f"{program}: line 1: ", [], subshell=True, lines=lines, dash=self._is_dash(program)
        )

    def _is_dash(self, program: str) -> bool:
        """Whether `program` is dash here: /bin/sh on Debian and Ubuntu (bash on CentOS)."""
        return program == "sh" and self.identity.distribution.id in ("debian", "ubuntu")

    def _cmd_bash(self, args: list[str], stdin: str | None) -> str:
        return self._cmd_sh(args, stdin, program="bash")

    def _script_output(
        self,
        text: str,
        where: str,
        positional: list[str],
        *,
        subshell: bool = False,
        lines: str | None = None,
        dash: bool = False,
    ) -> str:
        """What a script prints; in a `subshell` (sh FILE, ./FILE, sh -c) its cd, variables and exit do
        not last; sourced (`.`), they do. `lines`: how its errors begin ("s.sh: line {}"); `dash`:
        run by dash, whose errors say less ("sh: 1: foo: not found")."""
        saved = self._out, self._size
        state = self.cwd, dict(self.variables), set(self.exported), dict(self.functions)
        name, numbered, was_dash = self.name, self._lines, self._dash
        self._out, self._size = [], 0
        if subshell:
            self.name = "bash"  # a child bash names itself so in its errors
            self._lines, self._dash = lines, dash
        try:
            self._nested(text, where, positional)
            return "".join(self._out)
        finally:
            self._out, self._size = saved
            self.name, self._lines, self._dash = name, numbered, was_dash
            if subshell:
                self.cwd, self.variables, self.exported, self.functions = state
                self.exited = False

    def _script_text(self, arg: str, shell: str) -> str | None:
        """A script's text to run (None: bash's error said already); ELF binaries are not scripts."""
        path = self._path(arg)
        node = self.fs.get(path)
        if node is None or node.is_dir:
            reason = "No such file or directory" if node is None else "Is a directory"
            if shell == "sh" and node is None:
                self._error(f"sh: 0: cannot open {arg}: No such file\n", 2)
            else:
                self._error(f"{shell}: {arg}: {reason}\n", 127 if node is None else 126)
            return None
        if not self._readable(node):
            self._error(f"{shell}: {arg}: Permission denied\n", 126)
            return None
        self._record_written("run", self.fs.resolve(path))
        text = self._read(path) or ""
        if kind_of(raw(text[:64]))[0] == "elf" or (not text and node.size):
            self._error(f"{arg}: {arg}: cannot execute binary file\n", 126)
            return None
        return text

    def _run_script(self, arg: str, positional: list[str], shell: str) -> str:
        text = self._script_text(arg, shell)
        if text is None:
            return ""
        dash = self._is_dash(shell)
        lines = f"{arg}: {{}}" if dash else f"{arg}: line {{}}"
        return self._script_output(
            text, f"{arg}: line 1: ", positional, subshell=True, lines=lines, dash=dash
        )

    def _cmd_source(self, args: list[str], stdin: str | None) -> str:
        if not args:
            self._error(
                "bash: source: filename argument required\nsource: usage: source filename [arguments]\n", 2
            )
            return ""
        text = self._script_text(args[0], "bash")
        if text is None:
            return ""
        return self._script_output(text, f"{args[0]}: line 1: ", args[1:])

    def _execute_file(self, cmd: str, args: list[str]) -> str:
        """./FILE: an ELF of the host's architecture runs (and says nothing), another one fails as
        exec does; a script runs its lines here."""
        path = self._path(cmd)
        node = self.fs.get(path)
        if node is None:
            self._error(f"bash: {cmd}: No such file or directory\n", 127)
            return ""
        if node.is_dir:
            self._error(f"bash: {cmd}: Is a directory\n", 126)
            return ""
        if not node.mode & 0o111 or not self._readable(node):
            self._error(f"bash: {cmd}: Permission denied\n", 126)
            return ""
        if not node.content and node.size:  # one of the machine's programs we do not imitate (or a copy)
            return ""
        self._record_written("run", self.fs.resolve(path))
        text = self._read(path) or ""
        kind, detail = kind_of(raw(text[:64]))
        if kind == "elf":
            if runs_on(detail, self.identity.kernel.machine):
                self._pause(self._exec_cost * 2)
                return ""  # it ran: a bot's payload prints nothing, or its own secrets
            self._error(f"bash: {cmd}: cannot execute binary file: Exec format error\n", 126)
            return ""
        if detail and posixpath.basename(detail) not in ("sh", "bash", "dash", "ash", "busybox"):
            return ""  # python, perl: ran, said nothing
        return self._script_output(text, f"{cmd}: line 1: ", args, subshell=True, lines=f"{cmd}: line {{}}")

    def _cmd_test(self, args: list[str], stdin: str | None, *, name: str = "test") -> str:
        status, error = evaluate(args, self._file_test, name=name)
        self.status = status
        if error:
            self._error(error, status)
        return ""

    def _cmd_bracket(self, args: list[str], stdin: str | None) -> str:
        return self._cmd_test(args, stdin, name="[")

    def _cmd_double_bracket(self, args: list[str], stdin: str | None) -> str:
        return self._cmd_test(args, stdin, name="[[")

    def _file_test(self, op: str, arg: str) -> bool:
        path = self._path(arg)
        node = self.fs.get(path)
        if op in ("-L", "-h"):
            link = self.fs.lookup(self.fs.resolve(path))
            return link is not None and link.kind == "l"
        if node is None:
            return False
        root = self.user == "root"
        owner = node.owner == self.user
        if op == "-f":
            return node.kind == "-"
        if op == "-d":
            return node.is_dir
        if op == "-s":
            return node.length > 0
        if op == "-r":
            return self._readable(node)
        if op == "-w":
            return root or bool(node.mode & (0o200 if owner else 0o002))
        if op == "-x":
            if root:
                return node.is_dir or bool(node.mode & 0o111)
            return bool(node.mode & (0o100 if owner else 0o001))
        if op == "-O":
            return owner
        if op in ("-u", "-g", "-k"):
            return bool(node.mode & {"-u": 0o4000, "-g": 0o2000, "-k": 0o1000}[op])
        return op == "-e"

    def _cmd_eval(self, args: list[str], stdin: str | None) -> str:
        """eval WORDS: the words joined, run as a line of this shell (obfuscated droppers' favourite)."""
        text = " ".join(args)
        if not text.strip():
            return ""
        return self._script_output(text, "bash: eval: line 1: ", [])

    def _cmd_exec(self, args: list[str], stdin: str | None) -> str:
        """exec CMD: runs it (the shell it would replace is this one, which goes on)."""
        if not args or args[0] in ("sh", "bash", "-bash", "/bin/sh", "/bin/bash"):
            return ""
        return self._dispatch(args, stdin)

    def _cmd_base64(self, args: list[str], stdin: str | None) -> str:
        """base64 [-d] [FILE]: payloads arrive so (`echo f0VMRg... | base64 -d > .x`); bytes kept."""
        files = [a for a in args if not a.startswith("-")]
        text = self._read_all(files, "base64", stdin)
        if any(a in ("-d", "--decode", "-D") for a in args):
            data = "".join(text.split())
            try:
                decoded = binascii.a2b_base64(data + "=" * (-len(data) % 4))
            except binascii.Error:
                self._error("base64: invalid input\n", 1)
                return ""
            return decoded.decode("utf-8", "surrogateescape")
        encoded = base64.b64encode(raw(text)).decode()
        return "".join(encoded[i : i + 76] + "\n" for i in range(0, len(encoded), 76))

    def _cmd_seq(self, args: list[str], stdin: str | None) -> str:
        numbers = [a for a in args if re.fullmatch(r"-?\d{1,9}", a)]
        if not numbers or len(numbers) != len(args):
            self._error("seq: missing operand\nTry 'seq --help' for more information.\n", 1)
            return ""
        first, step, last = (
            (1, 1, int(numbers[0]))
            if len(numbers) == 1
            else (int(numbers[0]), 1, int(numbers[1]))
            if len(numbers) == 2
            else (int(numbers[0]), int(numbers[1]), int(numbers[2]))
        )
        if step == 0:
            self._error(f"seq: invalid Zero increment value: '{numbers[1]}'\n", 1)
            return ""
        values = range(first, last + (1 if step > 0 else -1), step)
        return "".join(f"{v}\n" for v in values[: MAX_OUTPUT // 2])  # the output's own bound cuts the rest

    def _cmd_shift(self, args: list[str], stdin: str | None) -> str:
        count = int(self.variables.get("#", "0") or 0)
        by = int(args[0]) if args and args[0].isdigit() else 1
        if by > count:
            self.status = 1
            return ""
        values = [self.variables.get(str(n), "") for n in range(1 + by, min(count, 9) + 1)]
        for index, key in enumerate(_POSITIONAL[1:], 1):
            self.variables[key] = values[index - 1] if index <= len(values) else ""
        self.variables["#"] = str(count - by)
        return ""

    def _cmd_local(self, args: list[str], stdin: str | None) -> str:
        if not self._depth:
            self._error("bash: local: can only be used in a function\n", 1)
            return ""
        for arg in args:
            name, _, value = arg.partition("=")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self._set(name, value)
        return ""

    def _cmd_ulimit(self, args: list[str], stdin: str | None) -> str:
        return "1024\n" if "-n" in args else "unlimited\n"

    def _cmd_kill(self, args: list[str], stdin: str | None) -> str:
        for arg in (a for a in args if not a.startswith("-")):
            if arg.isdigit():
                self._error(f"bash: kill: ({arg}) - No such process\n", 1)
            else:
                self._error(f"bash: kill: {arg}: arguments must be process or job IDs\n", 1)
        return ""

    def _cmd_wait(self, args: list[str], stdin: str | None) -> str:
        return ""  # the jobs `&` started have run already

    def _cmd_break(self, args: list[str], stdin: str | None) -> str:
        raise _Break

    def _cmd_continue(self, args: list[str], stdin: str | None) -> str:
        raise _Continue

    def _cmd_return(self, args: list[str], stdin: str | None) -> str:
        if not self._depth:
            self._error("bash: return: can only `return' from a function or sourced script\n", 1)
            return ""
        self.status = int(args[0]) & 0xFF if args and args[0].isdigit() else self.status
        raise _Return

    def _cmd_read(self, args: list[str], stdin: str | None) -> str:
        names = [a for a in args if not a.startswith("-")] or ["REPLY"]
        if stdin is None and self._pipe:
            stdin = self._pipe.pop(0) + "\n"
        if stdin is None:
            self.status = 1  # no terminal input to give it here
            return ""
        line = stdin.split("\n", 1)[0]
        values = line.split(None, len(names) - 1) if len(names) > 1 else [line.strip()]
        for index, name in enumerate(names):
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self._set(name, values[index] if index < len(values) else "")
        self.status = 0 if stdin else 1
        return ""

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
        fmt = _escapes(args[0], printf=True)
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
            if self._dash:
                self._error(f"bash: cd: can't cd to {args[0]}\n", 2)
                return ""
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
            ("ps " + " ".join(args)).strip(),
        )
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

    def _cmd_cp(self, args: list[str], stdin: str | None, *, tool: str = "cp") -> str:
        """cp (and mv) of files: the copy is the session's, a written file's copy is written too."""
        operands = [a for a in args if not a.startswith("-")]
        if len(operands) < 2:
            what = "missing file operand"
            if operands:
                what = f"missing destination file operand after '{operands[0]}'"
            self._error(f"{tool}: {what}\nTry '{tool} --help' for more information.\n", 1)
            return ""
        *sources, target = operands
        into = self.fs.get(self._path(target))
        if len(sources) > 1 and (into is None or not into.is_dir):
            self._error(f"{tool}: target '{target}' is not a directory\n", 1)
            return ""
        for source in sources:
            path = self._path(source)
            node = self.fs.get(path)
            if node is None:
                self._error(f"{tool}: cannot stat '{source}': No such file or directory\n", 1)
                continue
            if node.is_dir:
                self._error(f"{tool}: -r not specified; omitting directory '{source}'\n", 1)
                continue
            if not self._readable(node):
                self._error(f"{tool}: cannot open '{source}' for reading: Permission denied\n", 1)
                continue
            destination = self._path(target)
            if into is not None and into.is_dir:
                destination = posixpath.join(destination, posixpath.basename(path))
            if not self._writable_dir(posixpath.dirname(destination)):
                self._error(f"{tool}: cannot create regular file '{target}': Permission denied\n", 1)
                continue
            copy = replace(node, owner=self.user, group=self.user, mtime=self.clock(), live=False)
            if node.live or node.dynamic:
                copy = replace(copy, content=self._read(path) or "", dynamic=False, size=None)
            if not self.fs.put(self.fs.resolve(destination), copy):
                self._error(f"{tool}: error writing '{target}': No space left on device\n", 1)
                continue
            real, made = self.fs.resolve(path), self.fs.resolve(destination)
            if real in self._written:  # the copy of a file the session wrote is one it wrote
                self._written[made] = self._written[real]
            if tool == "mv":
                self.fs.remove(real)
                self._written.pop(real, None)
        return ""

    def _cmd_nohup(self, args: list[str], stdin: str | None) -> str:
        """nohup CMD: runs it; on a terminal its output goes to nohup.out, as it says."""
        if not args:
            self._error("nohup: missing operand\nTry 'nohup --help' for more information.\n", 125)
            return ""
        tty = self._tty and self.terminal
        out = (
            self._captured_call(args[0], args[1:])
            if args[0] in self.functions
            else self._dispatch(args, stdin)
        )
        if not tty:
            return out
        self._error("nohup: ignoring input and appending output to 'nohup.out'\n")
        if out:
            self._write_file("nohup.out", out, append=True, upload=False)
        return ""

    def _cmd_mv(self, args: list[str], stdin: str | None) -> str:
        return self._cmd_cp(args, stdin, tool="mv")

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
                real = self.fs.resolve(path)
                self._record_written("rm", real)
                for written in [w for w in self._written if w.startswith(real.rstrip("/") + "/")]:
                    self._record_written("rm", written)
                self.fs.remove(real)
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
            if new & 0o111 and not node.mode & 0o111:
                self._record_written("chmod", path)
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
        counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(raw(text))}
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
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9#?$!@*-]")
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
        "bracket",
        "double_bracket",
        "break",
        "continue",
        "wait",
        "eval",
        "exec",
        "shift",
        "local",
        "ulimit",
        "return",
    ]
)


def _escapes(text: str, *, printf: bool = False) -> str:
    """echo -e's escapes (octal as \\0NNN), or printf's (octal as \\NNN); bytes as `_byte` makes them."""
    table = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "a": "\a", "e": "\x1b", "0": "\0"}

    def one(found: re.Match[str]) -> str:
        body = found.group(1)
        if body.startswith("x"):
            return byte(int(body[1:], 16))
        if body[0].isdigit() and (len(body) > 1 or printf):
            return byte(int(body, 8) & 0xFF)
        return table.get(body, "\\" + body)

    octal = "[0-7]{1,3}" if printf else "0[0-7]{1,3}"
    return re.sub(rf"\\(x[0-9a-fA-F]{{1,2}}|{octal}|.)", one, text)


def _conditional(command: Command) -> list[str]:
    """`[[ ... ]]`'s words: not globbed; the right of `==` and `!=` a pattern (quoted parts literal)."""
    words = list(command.words)
    for index in range(2, len(words)):
        if words[index - 1] in ("==", "=", "!="):
            words[index] = command.patterns.get(index, literal(words[index]))
    return words


class _Stop(Exception):
    """The line ran MAX_STEPS commands: it stops where it is."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    pass


_POSITIONAL = ("#", "1", "2", "3", "4", "5", "6", "7", "8", "9")
_SPECIAL = {"[": "bracket", "[[": "double_bracket", ":": "true", ".": "source"}


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


def is_secret(shell: Shell) -> bool:
    """Whether `shell` waits for a password (sudo, su): the edge does not echo the next line, nor
    record it as a command (the shell records it as a login attempt)."""
    return bool(getattr(shell, "secret", False))


def interrupt(shell: Shell) -> None:
    """^C: `shell` forgets an unfinished line or a password prompt (shells without either: nothing)."""
    forget = getattr(shell, "interrupt", None)
    if forget is not None:
        forget()


def finish(shell: Shell) -> list[tuple[Kind, str | None, dict[str, Any] | None]]:
    """The session has ended: what `shell` still has to record (files written and never run)."""
    close = getattr(shell, "close", None)
    if close is not None:
        close()
    return take_events(shell)


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
