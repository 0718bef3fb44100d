"""bash's brace expansion, for the fake shell: `a{b,c}d`, `{1..10}`, `{a..e}`, `{01..10..2}`.

`expand_braces(word)` takes a word in the escaped form `shell_syntax.expand` keeps (quoted and
expanded characters backslash-escaped, so `"{a,b}"` and a variable's value never expand) and
returns the words it becomes, in bash's order; a brace without a comma or a valid sequence stays
as it is. Bounded: at most MAX_WORDS words from one word (what is past it is cut), MAX_TRIES
braces looked at, words of MAX_LENGTH. Pure.
"""

from __future__ import annotations

import itertools
import re

__all__ = ["MAX_WORDS", "expand_braces"]

MAX_WORDS = 1024
MAX_LENGTH = 4096  # a longer word is left as it is
MAX_TRIES = 64  # braces that stay as they are looked at in one word (each a scan to its end)
_SEQUENCE = re.compile(
    r"(-?\d{1,9})\.\.(-?\d{1,9})(?:\.\.(-?\d{1,9}))?|([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d{1,9}))?"
)


def _sequence(body: str) -> list[str] | None:
    found = _SEQUENCE.fullmatch(body)
    if found is None:
        return None
    if found.group(1) is not None:
        first, last = int(found.group(1)), int(found.group(2))
        step = abs(int(found.group(3) or 1)) or 1
        width = max(len(found.group(1)), len(found.group(2)))
        padded = re.match(r"-?0\d", found.group(1)) or re.match(r"-?0\d", found.group(2))
        values = range(first, last + (1 if last >= first else -1), step if last >= first else -step)
        return [f"{v:0{width}d}" if padded else str(v) for v in values[:MAX_WORDS]]
    first, last = ord(found.group(4)), ord(found.group(5))
    step = abs(int(found.group(6) or 1)) or 1
    values = range(first, last + (1 if last >= first else -1), step if last >= first else -step)
    return ["\\" + chr(v) if chr(v) in "\\[]^`" else chr(v) for v in values[:MAX_WORDS]]


def _brace(word: str, start: int) -> tuple[int, list[int]] | None:
    """The `}` matching the `{` at `start` and the top-level commas between them, or None."""
    depth, commas, i = 0, [], start
    while i < len(word):
        c = word[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i, commas
        elif c == "," and depth == 1:
            commas.append(i)
        i += 1
    return None


def expand_braces(word: str) -> list[str]:
    """The words `word` becomes (itself alone when it has no brace to expand)."""
    if len(word) > MAX_LENGTH:
        return [word]
    out: list[str] = []
    _expand(word, out, [0])
    return out[:MAX_WORDS]


def _expand(word: str, out: list[str], tries: list[int]) -> None:
    i = 0
    while i < len(word):
        if len(out) >= MAX_WORDS:
            return
        c = word[i]
        if c == "\\":
            i += 2
            continue
        if c == "{" and not (i > 0 and word[i - 1] == "$") and tries[0] < MAX_TRIES:
            found = _brace(word, i)
            if found is not None:
                end, commas = found
                options: list[str] | None
                if commas:
                    cuts = [i, *commas, end]
                    options = [word[a + 1 : b] for a, b in itertools.pairwise(cuts)]
                else:
                    options = _sequence(word[i + 1 : end])
                if options is not None:
                    head, tail = word[:i], word[end + 1 :]
                    for option in options:
                        _expand(head + option + tail, out, tries)
                        if len(out) >= MAX_WORDS:
                            return
                    return
            tries[0] += 1  # a brace that stays as it is
        i += 1
    out.append(word)
