"""bash's `test`, `[ ... ]` and (minimally) `[[ ... ]]`, for the fake shell.

`evaluate(args, files)` follows POSIX's rules by the number of arguments (so `[ = ]` is true and
`[ a = ]` is an error, as in bash), then `!`, `-a`, `-o` and parentheses for longer ones.
File tests ask `files(operator, path)`. Returns the exit status (0 true, 1 false) and bash's
error text for a bad expression (status 2). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dynapot.services.shell_glob import match

__all__ = ["FILE_TESTS", "evaluate"]

FILE_TESTS = frozenset(
    ["-e", "-f", "-d", "-x", "-r", "-w", "-s", "-L", "-h", "-b", "-c", "-p", "-S", "-g", "-u", "-k", "-O"]
)
_STRING_TESTS = frozenset(["-z", "-n"])
_BINARY = frozenset(
    ["=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef"]
)


class _Error(Exception):
    pass


def _integer(text: str) -> int:
    value = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", value):
        raise _Error(f"{text}: integer expression expected")
    return int(value)


def _binary(left: str, op: str, right: str, *, extended: bool) -> bool:
    if op in ("=", "=="):
        return match(right, left) if extended else left == right
    if op == "!=":
        return not match(right, left) if extended else left != right
    if op == "<":
        return left < right
    if op == ">":
        return left > right
    if op in ("-nt", "-ot", "-ef"):
        return False
    a, b = _integer(left), _integer(right)
    return {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b, "-gt": a > b, "-ge": a >= b}[op]


def _unary(op: str, operand: str, files: Callable[[str, str], bool]) -> bool:
    if op == "-z":
        return operand == ""
    if op == "-n":
        return operand != ""
    return files(op, operand)


class _Expression:
    """POSIX test's grammar for four arguments and more: `!`, `-a` over `-o`, parentheses."""

    def __init__(self, args: list[str], files: Callable[[str, str], bool], extended: bool) -> None:
        self.args, self.at, self.files, self.extended = args, 0, files, extended

    def parse(self) -> bool:
        value = self.either()
        if self.at < len(self.args):
            raise _Error("too many arguments")
        return value

    def either(self) -> bool:
        value = self.both()
        while self.at < len(self.args) and self.args[self.at] in ("-o", "||"):
            self.at += 1
            value = self.both() or value
        return value

    def both(self) -> bool:
        value = self.term()
        while self.at < len(self.args) and self.args[self.at] in ("-a", "&&"):
            self.at += 1
            value = self.term() and value
        return value

    def term(self) -> bool:
        args, at = self.args, self.at
        if at >= len(args):
            raise _Error("argument expected")
        if args[at] == "!":
            self.at += 1
            return not self.term()
        if args[at] == "(":
            self.at += 1
            value = self.either()
            if self.at >= len(args) or args[self.at] != ")":
                raise _Error("`)' expected")
            self.at += 1
            return value
        if at + 2 < len(args) and args[at + 1] in _BINARY:
            self.at += 3
            return _binary(args[at], args[at + 1], args[at + 2], extended=self.extended)
        if args[at] in FILE_TESTS | _STRING_TESTS and at + 1 < len(args):
            self.at += 2
            return _unary(args[at], args[at + 1], self.files)
        self.at += 1
        return args[at] != ""


def _posix(args: list[str], files: Callable[[str, str], bool], extended: bool) -> bool:
    """POSIX's rules by argument count."""
    count = len(args)
    if count == 0:
        return False
    if count == 1:
        return args[0] != ""
    if count == 2:
        if args[0] == "!":
            return args[1] == ""
        if args[0] in FILE_TESTS | _STRING_TESTS:
            return _unary(args[0], args[1], files)
        raise _Error(f"{args[0]}: unary operator expected")
    if count == 3:
        if args[1] in _BINARY:
            return _binary(args[0], args[1], args[2], extended=extended)
        if args[1] in ("-a", "-o"):
            return (args[0] != "" and args[2] != "") if args[1] == "-a" else (args[0] != "" or args[2] != "")
        if args[0] == "!":
            return not _posix(args[1:], files, extended)
        if args[0] == "(" and args[2] == ")":
            return args[1] != ""
        raise _Error(f"{args[1]}: binary operator expected")
    if count == 4 and args[0] == "!":
        return not _posix(args[1:], files, extended)
    return _Expression(args, files, extended).parse()


def evaluate(args: list[str], files: Callable[[str, str], bool], *, name: str = "test") -> tuple[int, str]:
    """(exit status, error text) of `test ARGS`; `name` "[" wants a closing "]", "[[" a "]]"."""
    if name == "[":
        if not args or args[-1] != "]":
            return 2, "bash: [: missing `]'\n"
        args = args[:-1]
    extended = name == "[["
    if extended:
        if not args or args[-1] != "]]":
            return 2, "bash: syntax error in conditional expression\n"
        args = args[:-1]
    try:
        return (0 if _posix(args, files, extended) else 1), ""
    except _Error as exc:
        return 2, f"bash: {name}: {exc}\n"
