"""bash's grammar for the fake shell: a line (or a script) into a tree of commands to run.

`parse(text)` tokenises `text` (words kept whole with their quotes, `$(...)` and backquotes;
the operators `; & && || | ( ) ;;`, newlines and redirections) and builds the tree bash would:
lists, and-or lists, pipelines, simple commands, `for`, `while`/`until`, `if`/`elif`/`else`,
`case`, `{ ...; }`, `( ... )` and function definitions (`name() { ...; }`). A simple command
keeps its source text, which `shell_syntax.expand` turns into words when it runs.

Errors are bash's: `Unexpected(token)` is "syntax error near unexpected token `done'"; a line
that stops inside a compound command or a quote raises `Incomplete` (an interactive bash asks
for more with its `> ` prompt). Bounded: at most MAX_TOKENS tokens and MAX_NESTING levels.
Pure: text in, a tree out.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_NESTING",
    "MAX_TOKENS",
    "Background",
    "Case",
    "Connected",
    "For",
    "Function",
    "Group",
    "If",
    "Incomplete",
    "Loop",
    "Node",
    "Pipeline",
    "Sequence",
    "Simple",
    "Unexpected",
    "parse",
]

MAX_TOKENS = 20_000
MAX_NESTING = 64
_RESERVED = frozenset(
    [
        "if",
        "then",
        "elif",
        "else",
        "fi",
        "for",
        "in",
        "do",
        "done",
        "while",
        "until",
        "case",
        "esac",
        "{",
        "}",
        "!",
    ]
)
_COMPOUND = frozenset(["{", "if", "for", "while", "until", "case"])  # what a function's body may be
_ENDS = frozenset(["then", "elif", "else", "fi", "do", "done", "esac", "}"])  # end a list in a compound
_OPERATORS = ("&&", "||", ";;", ";", "&", "|", "(", ")", "\n")
_REDIRECTIONS = (
    "2>&1",
    ">&2",
    "1>&2",
    "&>>",
    "2>>",
    "&>",
    ">>",
    "2>",
    ">|",
    "1>",
    "<<<",
    "<<-",
    "<<",
    "<>",
    ">",
    "<",
)


class Unexpected(SyntaxError):
    """bash: syntax error near unexpected token `TOKEN'."""

    def __init__(self, token: str) -> None:
        super().__init__(f"syntax error near unexpected token `{token}'")
        self.token = token


class Incomplete(SyntaxError):
    """The text ends inside a compound command or a quote: bash would read another line."""


@dataclass(slots=True)
class Token:
    kind: str  # "word", "op", "redir"
    text: str
    start: int
    end: int
    body: str | None = None  # a here-document's (`<<`): its lines


@dataclass(slots=True)
class Simple:
    """A simple command: its source text (words, assignments, redirections), a here-document's lines."""

    text: str
    heredoc: str | None = None
    expand_heredoc: bool = False  # its delimiter was unquoted: $VAR and $(...) expand in its lines
    line: int = 1  # of the text parsed (bash names it in a script's errors)


@dataclass(slots=True)
class Pipeline:
    commands: list[Node]
    negate: bool = False


@dataclass(slots=True)
class Connected:
    """An and-or list: the first pipeline, then each (`&&` or `||`, pipeline)."""

    first: Node
    rest: list[tuple[str, Node]] = field(default_factory=list)


@dataclass(slots=True)
class Sequence:
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class For:
    name: str
    words: list[str] | None  # source text of each word; None: "$@"
    body: Sequence


@dataclass(slots=True)
class Loop:
    until: bool
    condition: Sequence
    body: Sequence


@dataclass(slots=True)
class If:
    branches: list[tuple[Sequence, Sequence]]
    otherwise: Sequence | None = None


@dataclass(slots=True)
class Case:
    word: str
    items: list[tuple[list[str], Sequence]]


@dataclass(slots=True)
class Group:
    """`{ LIST; }`, or `( LIST )` (a subshell: its cd and variables do not last)."""

    body: Sequence
    subshell: bool = False


@dataclass(slots=True)
class Function:
    name: str
    body: Node


@dataclass(slots=True)
class Redirected:
    """A compound command with redirections after it: [(operator, target word source)]."""

    command: Node
    redirections: list[tuple[str, str]]


@dataclass(slots=True)
class Background:
    """A command started with `&`: an interactive bash says its job number and process id."""

    command: Node


Node = (
    Simple
    | Pipeline
    | Connected
    | Sequence
    | For
    | Loop
    | If
    | Case
    | Group
    | Function
    | Redirected
    | Background
)


def _word_end(text: str, i: int) -> int:
    """Index after the word starting at `i` (quotes, `$(...)`, `${...}` and backquotes kept whole)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\n;&|()<>":
            return i
        if c == "\\":
            i += 2
        elif c in "'\"`":
            i = _quoted_end(text, i)
        elif text.startswith("$(", i) or text.startswith("${", i):
            i = _paren_end(text, i + 1)
        else:
            i += 1
    return min(i, n)


def _quoted_end(text: str, i: int) -> int:
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\" and quote != "'":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        if quote == '"' and text.startswith("$(", j):
            j = _paren_end(text, j + 1)
            continue
        j += 1
    raise Incomplete(f"unexpected EOF while looking for matching `{quote}'")


def _paren_end(text: str, i: int) -> int:
    """`text[i]` is "(" or "{": the index after its match."""
    close = ")" if text[i] == "(" else "}"
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c in "'\"`":
            j = _quoted_end(text, j)
            continue
        if c == text[i]:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise Incomplete(f"unexpected EOF while looking for matching `{close}'")


def _heredoc(text: str, i: int, delimiter: str, strip: bool) -> tuple[str, int]:
    """The lines from `i` up to the delimiter's line: (body, index after that line)."""
    lines: list[str] = []
    while True:
        end = text.find("\n", i)
        if end < 0:
            if (text[i:].lstrip("\t") if strip else text[i:]) == delimiter:
                return "".join(lines), len(text)
            raise Incomplete("syntax error: unexpected end of file")  # bash reads on for the rest
        line = text[i:end]
        i = end + 1
        if (line.lstrip("\t") if strip else line) == delimiter:
            return "".join(lines), i
        lines.append((line.lstrip("\t") if strip else line) + "\n")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    waiting: list[tuple[Token, bool]] = []  # here-documents whose lines follow the next newline
    i, n = 0, len(text)
    while i < n:
        if len(tokens) >= MAX_TOKENS:
            raise Unexpected("newline")
        c = text[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\\" and text.startswith("\\\n", i):  # a line continued
            i += 2
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            while i < n and text[i] != "\n":
                i += 1
            continue
        redirection = next((r for r in _REDIRECTIONS if text.startswith(r, i)), None)
        if redirection is not None and not (
            redirection[0].isdigit() and i > 0 and text[i - 1] not in " \t\n;&|()"
        ):
            tokens.append(Token("redir", redirection, i, i + len(redirection)))
            i += len(redirection)
            continue
        operator = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if operator is not None:
            tokens.append(Token("op", operator, i, i + len(operator)))
            i += len(operator)
            for here, strip in waiting if operator == "\n" else ():
                delimiter = re.sub(r"[\"'\\]", "", here.text)
                here.body, i = _heredoc(text, i, delimiter, strip)
            waiting = waiting if operator != "\n" else []
            continue
        end = _word_end(text, i)
        tokens.append(Token("word", text[i:end], i, end))
        if len(tokens) > 1 and tokens[-2].kind == "redir" and tokens[-2].text in ("<<", "<<-"):
            waiting.append((tokens[-1], tokens[-2].text == "<<-"))
        i = end
    if waiting:
        raise Incomplete("syntax error: unexpected end of file")
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.breaks = [i for i, c in enumerate(text) if c == "\n"]
        self.at = 0
        self.depth = 0

    # -- tokens ------------------------------------------------------------------------------------

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def reserved(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text in words

    def op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.text in ops

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise Incomplete("syntax error: unexpected end of file")
        self.at += 1
        return token

    def expect(self, word: str) -> None:
        token = self.peek()
        if token is None:
            raise Incomplete("syntax error: unexpected end of file")
        if token.text != word:
            raise Unexpected("newline" if token.text == "\n" else token.text)
        self.at += 1

    def line(self, token: Token) -> int:
        return bisect.bisect(self.breaks, token.start) + 1

    def newlines(self) -> None:
        while self.op("\n"):
            self.at += 1

    def unexpected(self) -> SyntaxError:
        token = self.peek()
        if token is None:
            return Incomplete("syntax error: unexpected end of file")
        return Unexpected("newline" if token.text == "\n" else token.text)

    # -- grammar -----------------------------------------------------------------------------------

    def script(self) -> Sequence:
        body = self.sequence(top=True)
        if self.peek() is not None:
            raise self.unexpected()
        return body

    def sequence(self, *, top: bool = False) -> Sequence:
        """A list, up to a word or operator that ends it (`done`, `fi`, `)`, `;;`, the end)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise Unexpected(self.peek().text if self.peek() else "newline")  # type: ignore[union-attr]
        items: list[Node] = []
        while True:
            self.newlines()
            token = self.peek()
            if token is None or (token.kind == "word" and token.text in _ENDS) or self.op(")", ";;"):
                break
            items.append(self.and_or())
            if self.op(";", "&", "\n"):
                if self.take().text == "&":
                    items[-1] = Background(items[-1])
                continue
            break
        self.depth -= 1
        if not items and not top:
            raise self.unexpected()
        return Sequence(items)

    def and_or(self) -> Node:
        first = self.pipeline()
        rest: list[tuple[str, Node]] = []
        while self.op("&&", "||"):
            operator = self.take().text
            self.newlines()
            rest.append((operator, self.pipeline()))
        return Connected(first, rest) if rest else first

    def pipeline(self) -> Node:
        negate = False
        while self.reserved("!"):
            self.at += 1
            negate = not negate
        commands = [self.command()]
        while self.op("|"):
            self.at += 1
            self.newlines()
            commands.append(self.command())
        return Pipeline(commands, negate) if len(commands) > 1 or negate else commands[0]

    def command(self) -> Node:
        token = self.peek()
        if token is None:
            raise Incomplete("syntax error: unexpected end of file")
        node: Node
        if token.kind == "op" and token.text == "(":
            self.at += 1
            body = self.sequence()
            self.expect(")")
            node = Group(body, subshell=True)
        elif token.kind == "word" and token.text in _RESERVED:
            node = self.compound(token.text)
        elif token.kind == "op":
            raise Unexpected("newline" if token.text == "\n" else token.text)
        elif token.kind == "word" and token.text == "[[":
            return self.conditional()
        elif self._is_function():
            name = self.take().text
            self.at += 2
            self.newlines()
            body = self.peek()
            if body is None or not (self.op("(") or body.text in _COMPOUND):
                raise self.unexpected()  # a function's body is a compound command
            return Function(name, self.command())
        else:
            return self.simple()
        redirections = self.redirections()
        return Redirected(node, redirections) if redirections else node

    def _is_function(self) -> bool:
        rest = self.tokens[self.at + 1 : self.at + 3]
        return (
            len(rest) == 2
            and rest[0].kind == rest[1].kind == "op"
            and (rest[0].text, rest[1].text) == ("(", ")")
        )

    def redirections(self) -> list[tuple[str, str]]:
        found = []
        while (token := self.peek()) is not None and token.kind == "redir":
            self.at += 1
            if token.text in ("2>&1", ">&2", "1>&2"):
                found.append((token.text, ""))
                continue
            target = self.peek()
            if target is None or target.kind != "word":
                raise self.unexpected()
            self.at += 1
            found.append((token.text, target.text))
        return found

    def conditional(self) -> Simple:
        """`[[ ... ]]`: its words up to `]]`, `&&`, `||` and parentheses among them."""
        start = self.take()
        while (token := self.peek()) is not None and token.text != "\n":
            self.at += 1
            if token.kind == "word" and token.text == "]]":
                return Simple(self.text[start.start : token.end], line=self.line(start))
        if token is None:
            raise Incomplete("syntax error: unexpected end of file")
        raise Unexpected("newline")

    def simple(self) -> Simple:
        first = self.peek()
        assert first is not None
        parts: list[str] = []
        heredoc: str | None = None
        expand_heredoc = False
        while (token := self.peek()) is not None and token.kind in ("word", "redir"):
            self.at += 1
            if token.kind == "redir" and token.text not in ("2>&1", ">&2", "1>&2"):
                target = self.peek()
                if target is None or target.kind != "word":
                    raise Unexpected("newline" if target is None else target.text)
                self.at += 1
                if token.text in ("<<", "<<-"):
                    heredoc = target.body or ""
                    expand_heredoc = not any(c in target.text for c in "'\"\\")
                    continue
                parts.append(self.text[token.start : target.end])
                continue
            parts.append(token.text)
        return Simple(" ".join(parts), heredoc, expand_heredoc, self.line(first))

    def compound(self, word: str) -> Node:
        if word in ("then", "elif", "else", "fi", "do", "done", "esac", "}", "in"):
            raise Unexpected(word)
        self.at += 1
        if word == "{":
            body = self.sequence()
            self.expect("}")
            return Group(body)
        if word == "if":
            branches = []
            condition = self.sequence()
            self.expect("then")
            branches.append((condition, self.sequence()))
            otherwise = None
            while True:
                if self.reserved("elif"):
                    self.at += 1
                    condition = self.sequence()
                    self.expect("then")
                    branches.append((condition, self.sequence()))
                    continue
                if self.reserved("else"):
                    self.at += 1
                    otherwise = self.sequence()
                self.expect("fi")
                return If(branches, otherwise)
        if word in ("while", "until"):
            condition = self.sequence()
            self.expect("do")
            body = self.sequence()
            self.expect("done")
            return Loop(word == "until", condition, body)
        if word == "for":
            name = self.take()
            if name.kind != "word":
                raise Unexpected(name.text if name.text != "\n" else "newline")
            words: list[str] | None = None
            self.newlines()
            if self.reserved("in"):
                self.at += 1
                words = []
                while (token := self.peek()) is not None and token.kind == "word":
                    words.append(token.text)
                    self.at += 1
            if self.op(";", "\n"):
                self.at += 1
            self.newlines()
            self.expect("do")
            body = self.sequence()
            self.expect("done")
            return For(name.text, words, body)
        if word == "case":
            subject = self.take()
            if subject.kind != "word":
                raise Unexpected(subject.text)
            self.newlines()
            self.expect("in")
            items: list[tuple[list[str], Sequence]] = []
            while True:
                self.newlines()
                if self.reserved("esac"):
                    self.at += 1
                    return Case(subject.text, items)
                if self.op("("):
                    self.at += 1
                patterns = [self._pattern()]
                while self.op("|"):
                    self.at += 1
                    patterns.append(self._pattern())
                self.expect(")")
                self.newlines()
                body = Sequence([]) if self.op(";;") or self.reserved("esac") else self.sequence()
                items.append((patterns, body))
                if self.op(";;"):
                    self.at += 1
        raise Unexpected(word)  # "!" alone: handled by pipeline()

    def _pattern(self) -> str:
        token = self.take()
        if token.kind != "word":
            raise Unexpected("newline" if token.text == "\n" else token.text)
        return token.text


def parse(text: str) -> Sequence:
    """The tree of `text` (a line, or a script's lines); Unexpected or Incomplete when bash would."""
    return _Parser(text).script()
