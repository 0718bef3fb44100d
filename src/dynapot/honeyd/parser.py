"""Parse honeyd's configuration language into a `HoneydConfig`.

The grammar follows honeyd's parse.y for the statements dynapot understands, one statement a line.
Differences from honeyd, all deliberate:

* Quoted strings may contain ``\\"`` and ``\\\\`` escapes (honeyd has none); any other backslash is
  kept as written, so honeyd commands such as ``"perl -e 's/\\d//'"`` read the same in both.
* A template may not change after it has been bound: honeyd copies a template at `bind`, so a later
  `set`/`add` would silently not reach the bound hosts. We reject that instead of reproducing it.
* `route`, `include`, `dynamic`, `dhcp`, `delete`, `option`, `spoof`, `tarpit`, `internal` and
  `personality random` are rejected as not supported, naming the line.

Every problem raises `HoneydConfigError` with the source name, line number, line text and reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import NoReturn, cast

from dynapot.honeyd.config import (
    ANNOTATION_SETTINGS,
    BUILTIN_SERVICES,
    PORT_PROTOS,
    PROTOS,
    SIMPLE_ACTIONS,
    Action,
    ActionKind,
    Annotation,
    AnnotationSetting,
    HoneydConfig,
    PortProto,
    Proto,
    Subsystem,
    Template,
    canonical_mac,
    ethernet_problem,
    is_ipv4,
    name_problem,
    proxy_target_problem,
    service_action,
)

# honeyd statements we recognise but do not implement: a clear refusal beats "unknown statement".
UNSUPPORTED_STATEMENTS: frozenset[str] = frozenset(
    {"route", "include", "dynamic", "dhcp", "delete", "option", "list", "debug"}
)


class HoneydConfigError(ValueError):
    """A configuration line honeyd syntax or dynapot's model cannot accept."""

    def __init__(self, source: str, line: int, text: str, reason: str) -> None:
        self.source = source
        self.line = line
        self.text = text
        self.reason = reason
        super().__init__(f"{source}:{line}: {text}: {reason}")


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a line; `quoted` tells `"open"` (a command) from `open` (a keyword)."""

    value: str
    quoted: bool = False


class _LineError(Exception):
    """Raised inside one line's handling; the parser adds source, line number and text."""


def _fail(reason: str) -> NoReturn:
    raise _LineError(reason)


def tokenize(line: str) -> list[Token]:
    """Split one line into words and quoted strings, dropping a `#` comment."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            break
        elif ch == '"':
            i, value = _read_quoted(line, i + 1)
            tokens.append(Token(value, quoted=True))
            if i < n and not line[i].isspace() and line[i] != "#":
                _fail("a quoted string must be followed by a space")
        else:
            start = i
            while i < n and not line[i].isspace() and line[i] not in '"#':
                i += 1
            if i < n and line[i] == '"':
                _fail(f"unexpected quote after {line[start:i]!r}")
            tokens.append(Token(line[start:i]))
    return tokens


def _read_quoted(line: str, i: int) -> tuple[int, str]:
    """Read a quoted string whose opening quote is just before `i`; return (end index, value)."""
    out: list[str] = []
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == '"':
            if not out:
                _fail("empty quoted string")  # honeyd's lexer has no empty string either
            return i + 1, "".join(out)
        if ch == "\\" and i + 1 < n and line[i + 1] in '"\\':
            out.append(line[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    _fail("unterminated quoted string")


def _int(token: Token, what: str, low: int, high: int | None = None) -> int:
    """A decimal integer in low..high, as honeyd's NUMBER token (digits only)."""
    text = token.value
    if token.quoted or not text.isdigit():
        _fail(f"{what} {text!r} is not a whole number")
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        _fail(f"{what} {value} out of range {bound}")
    return value


def _word(token: Token, what: str) -> str:
    if token.quoted:
        _fail(f"{what} must not be quoted")
    return token.value


def _string(token: Token, what: str) -> str:
    if not token.quoted:
        _fail(f'{what} must be a quoted string, e.g. "{token.value}"')
    return token.value


class _Parser:
    """The parse state: the config built so far plus where each template was bound."""

    def __init__(self, builtin_services: Collection[str]) -> None:
        self.services = frozenset(builtin_services)
        self.config = HoneydConfig()
        self.bound_at: dict[str, int] = {}  # named template -> first line that bound it
        self.lineno = 0

    # --- templates -------------------------------------------------------------------------

    def _find(self, token: Token) -> Template:
        """The template a statement names: a created name, or a bound address (its host template)."""
        name = _word(token, "template name")
        if is_ipv4(name):
            if name not in self.config.binds:
                _fail(f"address {name} is not bound to a template")
            return self.config.templates[self.config.binds[name]]
        if name not in self.config.templates:
            _fail(f"unknown template {name!r}")
        return self.config.templates[name]

    def _modifiable(self, token: Token) -> Template:
        """The template a `set`/`add` changes; a bound address gets its own copy first."""
        name = _word(token, "template name")
        if is_ipv4(name) and name in self.config.binds:
            current = self.config.binds[name]
            if current != name:
                host = self.config.templates[current].copy(name, base=current, line=self.lineno)
                self.config.templates[name] = host
                self.config.binds[name] = name
            return self.config.templates[name]
        template = self._find(token)
        if template.name in self.bound_at:
            _fail(
                f"template {template.name!r} was already bound on line {self.bound_at[template.name]};"
                " honeyd copies a template when it is bound, so this change would not reach that"
                " address. Move the bind after the template's definition"
            )
        return template

    def _new_name(self, token: Token) -> str:
        name = _word(token, "template name")
        if problem := name_problem(name):
            _fail(problem)
        if name in self.config.templates:
            _fail(f"template {name!r} already exists (created on line {self.config.templates[name].line})")
        return name

    # --- statements ------------------------------------------------------------------------

    def _create(self, args: list[Token]) -> None:
        if len(args) != 1:
            _fail("expected: create NAME")
        name = self._new_name(args[0])
        self.config.templates[name] = Template(name, line=self.lineno)

    def _clone(self, args: list[Token]) -> None:
        if len(args) != 2:
            _fail("expected: clone NEWNAME EXISTING")
        name = self._new_name(args[0])
        source = self._find(args[1])
        self.config.templates[name] = source.copy(name, line=self.lineno)

    def _bind(self, args: list[Token]) -> None:
        if len(args) != 2:
            _fail("expected: bind IP TEMPLATE")
        ip = _word(args[0], "address")
        try:
            ip = str(ipaddress.IPv4Address(ip))
        except ValueError:
            _fail("not an IPv4 address")
        if ip in self.config.binds:
            _fail(f"address {ip} is already bound (line {self.config.bind_lines[ip]})")
        template = self._find(args[1])
        if template.is_host_template:
            # Binding to another host's address copies that host; keep the base a named template
            # so the renderer can write it as `bind IP BASE` plus the differences.
            base = cast(str, template.base)
            self.config.templates[ip] = template.copy(ip, base=base, line=self.lineno)
            self.config.binds[ip] = ip
            self.bound_at.setdefault(base, self.lineno)
        else:
            self.config.binds[ip] = template.name
            self.bound_at.setdefault(template.name, self.lineno)
        self.config.bind_lines[ip] = self.lineno

    def _set(self, args: list[Token]) -> None:
        if len(args) < 3:
            _fail("expected: set TEMPLATE SETTING VALUE")
        template = self._modifiable(args[0])
        what, rest = _word(args[1], "setting"), args[2:]
        handler = self._SETTERS.get(what)
        if handler is None:
            if what == "spoof":
                _fail("honeyd statement 'set ... spoof' is not supported by dynapot")
            _fail(f"unknown setting {what!r}")
        handler(self, template, rest)

    def _set_personality(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 1:
            _fail('expected: set TEMPLATE personality "FINGERPRINT NAME"')
        if not rest[0].quoted and rest[0].value == "random":
            _fail("'personality random' is not supported by dynapot; name a fingerprint")
        template.personality = _string(rest[0], "personality")

    def _set_ethernet(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 1:
            _fail('expected: set TEMPLATE ethernet "MAC or vendor"')
        value = _string(rest[0], "ethernet")
        if problem := ethernet_problem(value):
            _fail(problem)
        template.ethernet = canonical_mac(value) or value

    def _set_uptime(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 1:
            _fail("expected: set TEMPLATE uptime SECONDS")
        template.uptime = _int(rest[0], "uptime", 0)

    def _set_droprate(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 2 or rest[0].value not in ("in", "syn") or rest[0].quoted:
            _fail("expected: set TEMPLATE droprate in|syn PERCENT")
        rate = _int(rest[1], "droprate", 0, 100)
        if rest[0].value == "in":
            template.droprate = rate
        else:
            template.droprate_syn = rate

    def _set_uid(self, template: Template, rest: list[Token]) -> None:
        if len(rest) not in (1, 3) or (len(rest) == 3 and (rest[1].value != "gid" or rest[1].quoted)):
            _fail("expected: set TEMPLATE uid N [gid N]")
        template.uid = _int(rest[0], "uid", 1)  # honeyd refuses uid/gid 0: never run scripts as root
        if len(rest) == 3:
            template.gid = _int(rest[2], "gid", 1)

    def _set_maxfds(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 1:
            _fail("expected: set TEMPLATE maxfds N")
        template.maxfds = _int(rest[0], "maxfds", 4)  # honeyd: "Bad number of max file descriptors"

    def _set_default(self, template: Template, rest: list[Token]) -> None:
        if len(rest) < 3 or rest[0].quoted or rest[0].value not in PROTOS or rest[1].value != "action":
            _fail("expected: set TEMPLATE default tcp|udp|icmp action ACTION")
        proto = cast(Proto, rest[0].value)
        action = self._action(rest[2:])
        if proto == "icmp" and action.kind not in SIMPLE_ACTIONS:
            _fail("icmp default action must be one of " + ", ".join(sorted(SIMPLE_ACTIONS)))
        template.defaults[proto] = action

    _SETTERS: dict[str, Callable[[_Parser, Template, list[Token]], None]] = {
        "personality": _set_personality,
        "ethernet": _set_ethernet,
        "uptime": _set_uptime,
        "droprate": _set_droprate,
        "uid": _set_uid,
        "maxfds": _set_maxfds,
        "default": _set_default,
    }

    def _add(self, args: list[Token]) -> None:
        if len(args) < 3:
            _fail("expected: add TEMPLATE tcp|udp port N ACTION, or add TEMPLATE subsystem CMD")
        template = self._modifiable(args[0])
        what = _word(args[1], "protocol")
        if what == "subsystem":
            self._add_subsystem(template, args[2:])
            return
        if what not in PORT_PROTOS:
            _fail(f"expected tcp, udp or subsystem, not {what!r}")
        if len(args) < 5 or args[2].quoted or args[2].value != "port":
            _fail(f"expected: add TEMPLATE {what} port N ACTION")
        port = _int(args[3], "port", 1, 65535)
        key = (cast(PortProto, what), port)
        if key in template.ports:
            # honeyd's template_add fails on an existing port, so a config relying on override is broken.
            _fail(f"{what} port {port} already added to template {template.name!r}")
        template.ports[key] = self._action(args[4:])

    def _add_subsystem(self, template: Template, rest: list[Token]) -> None:
        command = _string(rest[0], "subsystem command")
        flags = [_word(t, "subsystem flag") for t in rest[1:]]
        if any(f not in ("shared", "restart") for f in flags) or len(set(flags)) != len(flags):
            _fail('expected: add TEMPLATE subsystem "CMD" [shared] [restart]')
        template.subsystems.append(Subsystem(command, "shared" in flags, "restart" in flags))

    def _action(self, tokens: list[Token]) -> Action:
        first = tokens[0]
        if first.quoted:
            if len(tokens) != 1:
                _fail("unexpected words after the quoted action")
            try:
                service = service_action(first.value, self.services)
            except ValueError as exc:
                _fail(str(exc))
            return service or Action("command", first.value)
        word = first.value
        if word in SIMPLE_ACTIONS:
            if len(tokens) != 1:
                _fail(f"unexpected words after {word!r}")
            return Action(cast(ActionKind, word))
        if word == "proxy":
            if len(tokens) != 2 or tokens[1].quoted:
                _fail("expected: proxy HOST:PORT")
            if problem := proxy_target_problem(tokens[1].value):
                _fail(problem)
            host, _, port = tokens[1].value.rpartition(":")
            return Action("proxy", f"{host}:{port}")
        if word in ("tarpit", "internal"):
            _fail(f"honeyd action {word!r} is not supported by dynapot")
        _fail(
            f"bad action {word!r}: expected open, closed, reset, block, filtered, proxy HOST:PORT"
            ' or a quoted service or command such as "sh scripts/ftp.sh $ipsrc $sport"'
        )

    def _annotate(self, args: list[Token]) -> None:
        if len(args) < 2:
            _fail('expected: annotate "FINGERPRINT" [no] finscan | fragment drop|old|new')
        personality = _string(args[0], "personality")
        setting = " ".join(_word(t, "annotation") for t in args[1:])
        if setting not in ANNOTATION_SETTINGS:
            _fail(f"unknown annotation {setting!r}: expected one of " + ", ".join(ANNOTATION_SETTINGS))
        self.config.annotations.append(
            Annotation(personality, cast(AnnotationSetting, setting), line=self.lineno)
        )

    _STATEMENTS: dict[str, Callable[[_Parser, list[Token]], None]] = {
        "create": _create,
        "clone": _clone,
        "bind": _bind,
        "set": _set,
        "add": _add,
        "annotate": _annotate,
    }

    def statement(self, tokens: list[Token]) -> None:
        head = tokens[0]
        handler = None if head.quoted else self._STATEMENTS.get(head.value)
        if handler is not None:
            handler(self, tokens[1:])
        elif not head.quoted and head.value in UNSUPPORTED_STATEMENTS:
            _fail(f"honeyd statement {head.value!r} is not supported by dynapot")
        else:
            _fail(f"unknown statement {head.value!r}")


def parse_config(
    text: str, *, builtin_services: Collection[str] = BUILTIN_SERVICES, source: str = "<string>"
) -> HoneydConfig:
    """Parse honeyd configuration text.

    A quoted port action that is exactly one of `builtin_services` becomes a `service` action; any
    other quoted string is a `command` (a honeyd script). `source` names the text in errors.
    """
    parser = _Parser(builtin_services)
    for lineno, line in enumerate(text.splitlines(), start=1):
        parser.lineno = lineno
        try:
            tokens = tokenize(line)
            if tokens:
                parser.statement(tokens)
        except (_LineError, ValueError) as exc:  # ValueError: a model invariant the checks missed
            raise HoneydConfigError(source, lineno, line.strip(), str(exc)) from None
    return parser.config


def load_config(
    path: str | PathLike[str], *, builtin_services: Collection[str] = BUILTIN_SERVICES
) -> HoneydConfig:
    """Read and parse a honeyd configuration file; errors name the file."""
    path = Path(path)
    return parse_config(path.read_text(encoding="utf-8"), builtin_services=builtin_services, source=str(path))
