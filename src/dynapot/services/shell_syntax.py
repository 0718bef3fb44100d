"""bash's word expansion for one simple command (the grammar is `shell_grammar`'s).

`expand(text, lookup, substitute)` makes one command's words: quotes removed, `$NAME`,
`${...}`, `$?`, `$$`, `$(...)` (or backquotes) and `$((...))` expanded through the callbacks
and `shell_arith`, redirections (`>`, `>>`, `<`, `2>`, `2>&1`, `&>`) taken out. Unquoted
expansions are split into words at blanks (bash's default IFS; not in an assignment); unquoted
braces expand (`shell_braces`). A word with an unquoted `*`, `?` or `[` also gets its pattern
(`Command.patterns`: quoted characters backslash-escaped) for `shell_glob`. An unterminated
quote raises `SyntaxError`. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dynapot.services.shell_arith import evaluate as arithmetic
from dynapot.services.shell_braces import expand_braces
from dynapot.services.shell_glob import has_magic

__all__ = ["Command", "expand", "literal"]

_TO_STDOUT = "2>&1"
_REDIRECTIONS = (_TO_STDOUT, "2>>", "2>", "&>", ">>", ">", "<<<", "<")  # longest first


@dataclass(slots=True)
class Command:
    """One simple command: its words and where its output goes."""

    words: list[str] = field(default_factory=list)
    stdout: tuple[str, str] | None = None  # (">" or ">>", path)
    stderr: str | None = None  # a path, "&1" (to stdout)
    stdin: str | None = None
    here: str | None = None  # a here-string's text (`<<< word`)
    patterns: dict[int, str] = field(default_factory=dict)  # word index -> glob pattern


def literal(text: str) -> str:
    """`text` as a glob pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\{}," else c for c in text)


def _skip_quoted(line: str, i: int) -> int:
    """Index after the quoted part or $(...) starting at `i`; SyntaxError when it never ends."""
    c = line[i]
    if c in "'\"`":
        j = i + 1
        while j < len(line):
            if line[j] == "\\" and c != "'":
                j += 2
                continue
            if line[j] == c:
                return j + 1
            j += 1
        raise SyntaxError("unexpected EOF while looking for matching `" + c + "'")
    # $( ... )
    depth, j = 0, i + 1
    while j < len(line):
        if line[j] in "'\"`":
            j = _skip_quoted(line, j)
            continue
        if line[j] == "(":
            depth += 1
        elif line[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise SyntaxError("unexpected EOF while looking for matching `)'")


def _is_assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier() and name.isascii()


def expand(text: str, lookup: Callable[[str], str], substitute: Callable[[str], str]) -> Command:
    """One command's words, expanded; redirections taken out of them."""
    command = Command()
    words: list[str] = []
    buf: list[str] = []
    pattern: list[str] = []  # the word as a glob pattern
    magic = False  # it has an unquoted *, ? or [
    braced = False  # it has an unquoted {
    started = False  # a word has begun (even an empty "")
    redirect: str | None = None
    i, n = 0, len(text)

    def quoted(value: str) -> None:
        nonlocal started
        buf.append(value)
        pattern.append(literal(value))
        started = True

    def unquoted(value: str) -> None:
        """An unquoted expansion: split at blanks, except in an assignment's value."""
        nonlocal started
        assigning = all(_is_assignment(w) for w in words) and _is_assignment("".join(buf))
        if redirect is not None or assigning:
            quoted(value)
            return
        pieces = value.split()
        if value[:1].isspace():
            finish()
        for index, piece in enumerate(pieces):
            if index:
                finish()
            quoted(piece)
        if value[-1:].isspace():
            finish()

    def finish() -> None:
        nonlocal buf, pattern, magic, braced, started, redirect
        if not started:
            return
        word = "".join(buf)
        assignment = _is_assignment(word) and all(_is_assignment(w) for w in words)
        if redirect is None and braced and not assignment:
            for each in expand_braces("".join(pattern)):  # a{b,c} {1..5}: before the rest, as in bash
                if has_magic(each):
                    command.patterns[len(words)] = each
                words.append(re.sub(r"\\(.)", r"\1", each, flags=re.DOTALL))
        elif redirect is None:
            if magic:
                command.patterns[len(words)] = "".join(pattern)
            words.append(word)
        elif redirect in (">", ">>"):
            command.stdout = (redirect, word)
        elif redirect in ("2>", "2>>"):
            command.stderr = word
        elif redirect == "&>":
            command.stdout, command.stderr = (">", word), "&1"
        elif redirect == "<<<":
            command.here = word + "\n"
        elif redirect == "<":
            command.stdin = word
        buf, pattern, magic, braced, started, redirect = [], [], False, False, False, None

    def dollar(j: int) -> tuple[str, int]:
        """Expand the $-form at text[j] ('$'); (value, index after it)."""
        nxt = text[j + 1] if j + 1 < n else ""
        if text.startswith("$((", j):
            end = _skip_quoted(text, j)
            if text[end - 2 : end] == "))":
                return arithmetic(text[j + 3 : end - 2], lookup), end
        if nxt == "(":
            end = _skip_quoted(text, j)
            return substitute(text[j + 2 : end - 1]).rstrip("\n"), end
        if nxt == "{":
            end = text.find("}", j)
            if end < 0:
                raise SyntaxError("bad substitution")
            return lookup(text[j + 2 : end]), end + 1
        if nxt in "?$#!0-" and nxt:
            return lookup(nxt), j + 2
        k = j + 1
        while k < n and (text[k].isalnum() or text[k] == "_"):
            k += 1
        if k == j + 1:
            return "$", j + 1
        return lookup(text[j + 1 : k]), k

    while i < n:
        c = text[i]
        if c in " \t":
            finish()
            i += 1
            continue
        if c == "\\":
            quoted(text[i + 1 : i + 2])
            i += 2
            continue
        if c == "'":
            end = _skip_quoted(text, i)
            quoted(text[i + 1 : end - 1])
            i = end
            continue
        if c == '"':
            end = _skip_quoted(text, i)
            j = i + 1
            inside: list[str] = []
            buf, outside = inside, buf
            while j < end - 1:
                d = text[j]
                if d == "\\" and j + 1 < end - 1 and text[j + 1] in '$`"\\':
                    buf.append(text[j + 1])
                    j += 2
                elif d == "$":
                    value, j = dollar(j)
                    buf.append(value)
                elif d == "`":
                    stop = _skip_quoted(text, j)
                    buf.append(substitute(text[j + 1 : stop - 1]).rstrip("\n"))
                    j = stop
                else:
                    buf.append(d)
                    j += 1
            buf = outside
            quoted("".join(inside))
            i = end
            continue
        if c == "`":
            end = _skip_quoted(text, i)
            unquoted(substitute(text[i + 1 : end - 1]).rstrip("\n"))
            i = end
            continue
        if c == "$":
            value, after = dollar(i)
            if value == "$" and after == i + 1:
                quoted("$")
            else:
                unquoted(value)
            i = after
            continue
        if (
            c in "<>"
            or (c == "&" and text.startswith("&>", i))
            or (c == "2" and not started and text.startswith(("2>",), i))
        ):
            finish()
            op = next(t for t in _REDIRECTIONS if text.startswith(t, i))
            i += len(op)
            if op == _TO_STDOUT:
                command.stderr = "&1"
                continue
            if text.startswith("&1", i) and op == ">":
                i += 2
                continue
            redirect = op
            while i < n and text[i] in " \t":
                i += 1
            continue
        buf.append(c)
        pattern.append(c if c != "]" or magic else "\\]")
        magic = magic or c in "*?["
        braced = braced or c == "{"
        started = True
        i += 1
    finish()
    if redirect is not None:
        raise SyntaxError("syntax error near unexpected token `newline'")
    command.words = words
    return command
