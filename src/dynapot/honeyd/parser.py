"""Parse honeyd's configuration language into a `HoneydConfig`.

The grammar follows honeyd's parse.y for the statements dynapot understands, one statement a line.
Differences from honeyd, all deliberate:

* Quoted strings may contain ``\\"`` and ``\\\\`` escapes (honeyd has none); any other backslash is
  kept as written, so honeyd commands such as ``"perl -e 's/\\d//'"`` read the same in both.
* A template may not change after it has been bound: honeyd copies a template at `bind`, so a later
  `set`/`add` would silently not reach the bound hosts. We reject that instead of reproducing it.
* Statements are one a line (honeyd's lexer lets one run over several; no file in the wild does).

Everything else of honeyd's grammar (parse.y and lex.l of honeyd 1.5c / DataSoft's 1.6) is read
into the model: `route` topologies, `tarpit`, `dynamic` templates and their conditions, `delete`,
`spoof`, `dhcp`, `bind IP to IFACE`, `option`, `include`, `personality random`, `internal`,
`broadcast`. What the sensor does not act on is accepted with a `Note` (`HoneydConfig.notes`),
which `dynapot honeyd-check` prints; `list` and `debug`, honeyd's interactive commands, are
noted and skipped.

Every problem raises `HoneydConfigError` with the source name, line number, line text and reason.
"""

from __future__ import annotations

import ipaddress
import re
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
    Condition,
    DynamicRule,
    HoneydConfig,
    Note,
    PortProto,
    Proto,
    RouteNet,
    Spoof,
    Subsystem,
    Template,
    TimeOfDay,
    Tunnel,
    canonical_mac,
    ethernet_problem,
    is_ipv4,
    name_problem,
    proxy_target_problem,
    service_action,
)

# honeyd's interactive commands (its config socket): in a file they only print, so they are skipped.
INTERACTIVE_STATEMENTS: frozenset[str] = frozenset({"list", "debug"})
MAX_INCLUDE_DEPTH = 10  # honeyd's own limit on nested includes


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
        else:  # a word ends at a space, a comment or a quote (honeyd's lexer: `111"cmd"` is two)
            start = i
            while i < n and not line[i].isspace() and line[i] not in '"#':
                i += 1
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


# honeyd's lexer splits what our tokenizer keeps as one word: "5ms" is NUMBER MS, "10.0.0.0/16"
# is IPSTRING SLASH NUMBER, "12:00am" NUMBER COLON NUMBER STRING, "1Mbps" NUMBER NUMBER.
_LEXEME = re.compile(r"\d+\.\d+\.\d+\.\d+|\d+\.\d+|\d+|[$A-Za-z][.()/A-Za-z_\-0-9*]*|[-=:/.]")
_UNITS = {"Kbps": 1000, "Mbps": 1000000}


def lexemes(tokens: list[Token]) -> list[Token]:
    """`tokens` split as honeyd's lexer splits them (quoted strings stay whole)."""
    out: list[Token] = []
    for token in tokens:
        if token.quoted:
            out.append(token)
            continue
        pos = 0
        for match in _LEXEME.finditer(token.value):
            if match.start() != pos:
                _fail(f"illegal token in {token.value!r}")
            out.append(Token(match.group()))
            pos = match.end()
        if pos != len(token.value):
            _fail(f"illegal token in {token.value!r}")
    return out


class _Cursor:
    """Reads a statement's lexemes one by one, failing with what was expected."""

    def __init__(self, tokens: list[Token], usage: str) -> None:
        self.tokens, self.i, self.usage = tokens, 0, usage

    def peek(self) -> str | None:
        return (
            self.tokens[self.i].value
            if self.i < len(self.tokens) and not self.tokens[self.i].quoted
            else None
        )

    def take(self) -> Token:
        if self.i >= len(self.tokens):
            _fail(f"line ends too soon; expected: {self.usage}")
        self.i += 1
        return self.tokens[self.i - 1]

    def keyword(self, *words: str) -> str:
        token = self.take()
        if token.quoted or token.value not in words:
            _fail(f"expected {' or '.join(words)}, not {token.value!r}; expected: {self.usage}")
        return token.value

    def accept(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False

    def number(self, what: str) -> int:
        token = self.take()
        if token.quoted or not token.value.isdigit():
            _fail(f"{what} {token.value!r} is not a whole number")
        return int(token.value)

    def rate(self, what: str) -> float:
        token = self.take()
        if token.quoted or not re.fullmatch(r"\d+(\.\d+)?", token.value):
            _fail(f"{what} {token.value!r} is not a number")
        return float(token.value)

    def address(self, what: str) -> str:
        token = self.take()
        try:
            return str(ipaddress.IPv4Address(token.value))
        except ValueError:
            _fail(f"{what} {token.value!r} is not an IPv4 address")

    def network(self, what: str, notes: list[str]) -> ipaddress.IPv4Network:
        address = self.address(what)
        if self.peek() != "/":
            _fail(f"{what} {address} needs a prefix length (e.g. {address}/24)")
        self.take()
        bits = self.number(f"{what} prefix length")
        if bits > 32:
            _fail(f"{what} prefix length {bits} is above 32")
        network = ipaddress.IPv4Network(f"{address}/{bits}", strict=False)
        if str(network.network_address) != address:
            # honeyd warns "Bad network mask" and uses the network the mask gives.
            notes.append(f"{address}/{bits} has host bits set: read as {network}, as honeyd does")
        return network

    def done(self) -> None:
        if self.i != len(self.tokens):
            _fail(f"unexpected {self.tokens[self.i].value!r}; expected: {self.usage}")


class _Parser:
    """The parse state: the config built so far plus where each template was bound."""

    def __init__(self, builtin_services: Collection[str], base_dir: Path | None = None) -> None:
        self.services = frozenset(builtin_services)
        self.config = HoneydConfig()
        self.bound_at: dict[str, int] = {}  # named template -> first line that bound it
        self.lineno = 0
        self.source = "<string>"
        self.base_dir = base_dir  # where `include` looks for relative paths (None: no includes)
        self.depth = 0

    def note(self, text: str) -> None:
        where = "" if self.depth == 0 else f"{self.source}:{self.lineno}: "
        self.config.notes.append(Note(self.lineno, where + text))

    def feed(self, text: str, source: str) -> None:
        """Parse `text` (the file `source`) into the config, line by line."""
        outer = self.source, self.lineno
        self.source = source
        try:
            for lineno, line in enumerate(text.splitlines(), start=1):
                self.lineno = lineno
                try:
                    tokens = tokenize(line)
                    if tokens:
                        self.statement(tokens)
                except HoneydConfigError:
                    raise  # from an included file: it names its own file and line
                except (_LineError, ValueError) as exc:  # ValueError: a model invariant the checks missed
                    raise HoneydConfigError(source, lineno, line.strip(), str(exc)) from None
        finally:
            self.source, self.lineno = outer

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
        if len(args) == 3 and not args[1].quoted and args[1].value == "to":
            ip = _Cursor(args[:1], "bind IP to INTERFACE").address("address")
            self.config.interfaces[ip] = _word(args[2], "interface")
            self.note(
                f"bind {ip} to {args[2].value}: an address of another interface; not answered by the sensor"
            )
            return
        if len(args) > 2 and not args[0].quoted and args[0].value in ("source", "time", "otherwise", *PROTOS):
            self._bind_condition(args)
            return
        if len(args) != 2:
            _fail("expected: bind IP TEMPLATE, bind IP to INTERFACE or bind CONDITION IP TEMPLATE")
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

    def _bind_condition(self, args: list[Token]) -> None:
        """`bind CONDITION IP TEMPLATE`: the address answers with a dynamic template of its own."""
        cursor = _Cursor(lexemes(args[:-2]), "bind CONDITION IP TEMPLATE")
        condition = self._condition(cursor)
        cursor.done()
        ip = _Cursor(args[-2:-1], "bind CONDITION IP TEMPLATE").address("address")
        used = self._find(args[-1]).name
        if ip in self.config.binds:
            template = self.config.templates[self.config.binds[ip]]
            if template.dynamic is None:
                _fail(f"address {ip} is already bound to the non-dynamic template {template.name!r}")
        else:
            template = Template(ip, dynamic=[], line=self.lineno)
            self.config.templates[ip] = template
            self.config.binds[ip] = ip
            self.config.bind_lines[ip] = self.lineno
        assert template.dynamic is not None
        template.dynamic.append(DynamicRule(used, None if condition.kind == "otherwise" else condition))

    def _set(self, args: list[Token]) -> None:
        if len(args) < 3:
            _fail("expected: set TEMPLATE SETTING VALUE")
        template = self._modifiable(args[0])
        what, rest = _word(args[1], "setting"), args[2:]
        handler = self._SETTERS.get(what)
        if handler is None:
            _fail(f"unknown setting {what!r}")
        handler(self, template, rest)

    def _set_spoof(self, template: Template, rest: list[Token]) -> None:
        cursor = _Cursor(rest, "set TEMPLATE spoof from IP [to IP] | spoof to IP")
        source = destination = None
        if cursor.accept("from"):
            source = cursor.address("spoofed source")
        if cursor.accept("to"):
            destination = cursor.address("spoofed destination")
        cursor.done()
        if source is None and destination is None:
            _fail("expected: set TEMPLATE spoof from IP [to IP] | spoof to IP")
        template.spoof = Spoof(source, destination)
        self.note(f"set {template.name} spoof: the sensor does not rewrite addresses; ignored")

    def _set_personality(self, template: Template, rest: list[Token]) -> None:
        if len(rest) != 1:
            _fail('expected: set TEMPLATE personality "FINGERPRINT NAME"')
        if not rest[0].quoted and rest[0].value == "random":
            template.personality, template.random_personality = None, True
            return
        template.personality, template.random_personality = _string(rest[0], "personality"), False

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
        "spoof": _set_spoof,
    }

    def _add(self, args: list[Token]) -> None:
        if len(args) < 3:
            _fail("expected: add TEMPLATE tcp|udp port N ACTION, or add TEMPLATE subsystem CMD")
        template = self._modifiable(args[0])
        what = _word(args[1], "protocol")
        if what == "subsystem":
            self._add_subsystem(template, args[2:])
            return
        if what in ("use", "otherwise"):
            self._add_dynamic(template, args[1:])
            return
        if template.dynamic is not None:
            _fail(f"template {template.name!r} is dynamic: it takes `use T if CONDITION`, not ports")
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
        self.note(
            f"add {template.name} subsystem: honeyd runs it with its socket-interposing library, "
            "which the sensor does not have; not started"
        )

    def _add_dynamic(self, template: Template, rest: list[Token]) -> None:
        """`add DYN use T if CONDITION` or `add DYN otherwise use T` (DYN made by `dynamic`)."""
        if template.dynamic is None:
            _fail(f"template {template.name!r} is not dynamic (make it with `dynamic {template.name}`)")
        cursor = _Cursor(
            lexemes(rest), "add DYNAMIC use TEMPLATE if CONDITION | add DYNAMIC otherwise use TEMPLATE"
        )
        if cursor.accept("otherwise"):
            cursor.keyword("use")
            used = self._find(cursor.take()).name
            cursor.done()
            template.dynamic.append(DynamicRule(used))
            return
        cursor.keyword("use")
        used = self._find(cursor.take()).name
        cursor.keyword("if")
        condition = self._condition(cursor)
        cursor.done()
        template.dynamic.append(DynamicRule(used, None if condition.kind == "otherwise" else condition))

    def _condition(self, cursor: _Cursor) -> Condition:
        """honeyd's `condition`: source os = "FP", source ip = IP[/N], time between T - T, PROTO, otherwise"""
        word = cursor.keyword("source", "time", "otherwise", *PROTOS)
        if word == "otherwise":
            return Condition("otherwise")
        if word in PROTOS:
            return Condition("proto", word)
        if word == "time":
            cursor.keyword("between")
            start = self._time(cursor)
            cursor.keyword("-")
            return Condition("time", between=(start, self._time(cursor)))
        kind = cursor.keyword("os", "ip")
        cursor.keyword("=")
        if kind == "os":
            return Condition("os", _string(cursor.take(), "OS fingerprint class"))
        if cursor.i + 1 < len(cursor.tokens) and cursor.tokens[cursor.i + 1].value == "/":
            notes: list[str] = []
            network = cursor.network("source network", notes)
            for text in notes:
                self.note(text)
            return Condition("ip", str(network))
        return Condition("ip", cursor.address("source address"))

    def _time(self, cursor: _Cursor) -> TimeOfDay:
        token = cursor.take()
        if token.quoted:  # "hh:mm:ss" (honeyd's strptime %T, or %r: "hh:mm:ss AM")
            match = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})(?:\s*([AaPp][Mm]))?", token.value.strip())
            if not match:
                _fail(f'bad time {token.value!r}; use "hh:mm:ss"')
            hour, minute, second = int(match[1]), int(match[2]), int(match[3])
            if match[4]:
                hour = hour % 12 + (12 if match[4].lower() == "pm" else 0)
        else:  # NUMBER COLON NUMBER am|pm, as honeyd reads it: 12:00am is 12 o'clock, pm adds 12
            cursor.i -= 1
            hour = cursor.number("hour")
            cursor.keyword(":")
            minute = cursor.number("minute")
            half = cursor.keyword("am", "pm")
            hour, second = hour + (12 if half == "pm" else 0), 0
        if hour > 24 or minute > 59 or second > 60:
            _fail(f"bad time {hour}:{minute:02d}:{second:02d}")
        return TimeOfDay(hour, minute, second)

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
        if word == "tarpit":
            if len(tokens) < 2:
                _fail('expected: tarpit open | tarpit proxy HOST:PORT | tarpit "COMMAND"')
            inner = self._action(tokens[1:])
            if inner.tarpit or inner.kind not in ("open", "proxy", "service", "command"):
                _fail(f"tarpit takes open, proxy or a quoted command, not {tokens[1].value!r}")
            return Action(inner.kind, inner.target, inner.product, inner.version, tarpit=True)
        if word == "internal":
            if len(tokens) != 2:
                _fail('expected: internal "PYTHON MODULE"')
            module = _string(tokens[1], "internal module")
            self.note(
                f"internal {module!r}: honeyd's Python plugins do not run here; the port records instead"
            )
            return Action("open")
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

    def _dynamic(self, args: list[Token]) -> None:
        if len(args) != 1:
            _fail("expected: dynamic NAME")
        name = self._new_name(args[0])
        self.config.templates[name] = Template(name, dynamic=[], line=self.lineno)

    def _delete(self, args: list[Token]) -> None:
        """`delete TEMPLATE` or `delete TEMPLATE tcp|udp port N`: undone at once in the model."""
        if len(args) == 1:
            template = self._find(args[0])
            users = sorted(ip for ip, name in self.config.binds.items() if name == template.name)
            if users:
                bound = ", ".join(users)
                _fail(f"template {template.name!r} is bound to {bound}; honeyd has no unbind")
            del self.config.templates[template.name]
            return
        cursor = _Cursor(lexemes(args[1:]), "delete TEMPLATE [tcp|udp port N]")
        proto = cast(PortProto, cursor.keyword(*PORT_PROTOS))
        cursor.keyword("port")
        port = cursor.number("port")
        cursor.done()
        template = self._modifiable(args[0])
        if template.ports.pop((proto, port), None) is None:
            _fail(f"cannot find {proto} port {port} in {template.name!r}")

    def _route(self, args: list[Token]) -> None:
        """honeyd's routing topology: `route entry`, `link`, `add net`, `unreach`, `tunnel`."""
        usage = (
            "route entry IP [network NET] | route IP link NET | route IP unreach NET | "
            "route IP add net NET GATEWAY [latency N ms] [loss P] [bandwidth B] [drop between L ms - H ms] | "
            "route IP add net NET tunnel SRC DST"
        )
        cursor = _Cursor(lexemes(args), usage)
        topology = self.config.topology
        notes: list[str] = []
        if cursor.accept("entry"):
            router = cursor.address("entry router")
            network = cursor.network("entry network", notes) if cursor.accept("network") else None
            cursor.done()
            if router in topology.entries:
                _fail(f"{router} is already an entry point")
            topology.entries[router] = network
            topology.router(router)
        else:
            router = topology.router(cursor.address("router"))
            verb = cursor.keyword("link", "unreach", "add")
            if verb == "link":
                router.links.append(cursor.network("link", notes))
            elif verb == "unreach":
                router.unreachable.append(cursor.network("unreachable network", notes))
            else:
                cursor.keyword("net")
                network = cursor.network("network", notes)
                if cursor.accept("tunnel"):
                    source, destination = cursor.address("tunnel source"), cursor.address("tunnel end")
                    router.tunnels.append(Tunnel(network, source, destination))
                    self.note(
                        f"route {router.address} tunnel: GRE tunnels are not built by the sensor; ignored"
                    )
                else:
                    router.nets.append(self._route_net(cursor, network, router.address))
            cursor.done()
        for text in notes:
            self.note(text)

    def _route_net(self, cursor: _Cursor, network: ipaddress.IPv4Network, router: str) -> RouteNet:
        gateway = cursor.address("gateway")
        latency, loss, bandwidth, drop = 0, 0.0, 0, None
        if cursor.accept("latency"):
            latency = cursor.number("latency")
            cursor.keyword("ms")
        if cursor.accept("loss"):
            loss = cursor.rate("loss")
            if loss > 100:
                _fail(f"loss {loss:g} is above 100 percent")
        if cursor.accept("bandwidth"):
            bandwidth = cursor.number("bandwidth")
            unit = cursor.peek()
            if unit in _UNITS:
                cursor.take()
                bandwidth *= _UNITS[unit]
            elif unit is not None and unit.isdigit():  # honeyd's NUMBER NUMBER: a factor
                bandwidth *= cursor.number("bandwidth unit")
        if cursor.accept("drop"):
            cursor.keyword("between")
            low = cursor.number("drop threshold")
            cursor.keyword("ms")
            cursor.keyword("-")
            high = cursor.number("drop threshold")
            cursor.keyword("ms")
            if high <= low:
                _fail("drop between: the first threshold must be below the second")
            if bandwidth == 0:
                self.note(
                    f"route {router} add net {network}: drop between needs a bandwidth; ignored, as in honeyd"
                )
            else:
                drop = (low, high)
        if gateway == router:
            _fail(f"route {router} add net {network}: the gateway is the router itself")
        return RouteNet(network, gateway, latency, loss, bandwidth, drop)

    def _dhcp(self, args: list[Token]) -> None:
        cursor = _Cursor(args, 'dhcp TEMPLATE on INTERFACE [ethernet "MAC"]')
        template = self._find(cursor.take())
        cursor.keyword("on")
        interface = _word(cursor.take(), "interface")
        mac = None
        if cursor.accept("ethernet"):
            value = _string(cursor.take(), "ethernet")
            mac = canonical_mac(value) or value
        cursor.done()
        self.config.dhcp[template.name] = (interface, mac)
        self.note(f"dhcp {template.name}: the sensor does not lease addresses by DHCP; bind them instead")

    def _option(self, args: list[Token]) -> None:
        if len(args) < 3:
            _fail("expected: option PLUGIN KEY VALUE")
        plugin, key = _word(args[0], "plugin"), _word(args[1], "option")
        self.config.options.append((plugin, key, " ".join(t.value for t in args[2:])))
        self.note(f"option {plugin} {key}: honeyd plugins do not run here; ignored")

    def _broadcast(self, args: list[Token]) -> None:
        self.note("broadcast: DataSoft honeyd's broadcast senders are not simulated; ignored")

    def _include(self, args: list[Token]) -> None:
        if len(args) != 1:
            _fail("expected: include FILE")
        if self.base_dir is None:
            _fail("include needs a configuration read from a file")
        if self.depth >= MAX_INCLUDE_DEPTH:
            _fail(f"includes nested more than {MAX_INCLUDE_DEPTH} deep")
        path = self.base_dir / args[0].value
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}")
        line = self.lineno
        self.depth += 1
        try:
            self.feed(text, str(path))
        finally:
            self.depth -= 1
            self.lineno = line

    def _interactive(self, args: list[Token]) -> None:
        self.note("an interactive command of honeyd's config socket (list, debug): skipped")

    _STATEMENTS: dict[str, Callable[[_Parser, list[Token]], None]] = {
        "create": _create,
        "clone": _clone,
        "bind": _bind,
        "set": _set,
        "add": _add,
        "annotate": _annotate,
        "dynamic": _dynamic,
        "delete": _delete,
        "route": _route,
        "dhcp": _dhcp,
        "option": _option,
        "broadcast": _broadcast,
        "include": _include,
        "list": _interactive,
        "debug": _interactive,
    }

    def statement(self, tokens: list[Token]) -> None:
        head = tokens[0]
        handler = None if head.quoted else self._STATEMENTS.get(head.value)
        if handler is None:
            _fail(f"unknown statement {head.value!r}")
        handler(self, tokens[1:])


def parse_config(
    text: str,
    *,
    builtin_services: Collection[str] = BUILTIN_SERVICES,
    source: str = "<string>",
    base_dir: Path | None = None,
) -> HoneydConfig:
    """Parse honeyd configuration text.

    A quoted port action that is exactly one of `builtin_services` becomes a `service` action; any
    other quoted string is a `command` (a honeyd script). `source` names the text in errors;
    `include FILE` reads FILE relative to `base_dir` (refused when it is None).
    """
    parser = _Parser(builtin_services, base_dir)
    parser.feed(text, source)
    return parser.config


def load_config(
    path: str | PathLike[str], *, builtin_services: Collection[str] = BUILTIN_SERVICES
) -> HoneydConfig:
    """Read and parse a honeyd configuration file; errors name the file."""
    path = Path(path)
    return parse_config(
        path.read_text(encoding="utf-8"),
        builtin_services=builtin_services,
        source=str(path),
        base_dir=path.parent,
    )
