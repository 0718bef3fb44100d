"""bash's pathname expansion and pattern matching, for the fake shell.

A pattern here is a word as `shell_syntax.expand` leaves it when it holds an unquoted `*`, `?`
or `[`: quoted characters come backslash-escaped, so `"*".sh` matches only `*.sh`.
`glob(pattern, cwd, children)` expands it against a directory listing (`children(path) ->
names`), as bash does with its defaults (no nullglob, no dotglob, globskipdots on: bash 5.2):
a name starting with "." only matches a pattern component starting with a literal ".", "."
and ".." never; the names are sorted as the C.UTF-8 locale (Debian's default LANG, and this
machine's) sorts them, by code point; no match: None (bash keeps the word as it is).
`match(pattern, text)` is `case`'s and `[[ == ]]`'s matching. Bounded: MAX_MATCHES names and
MAX_LISTINGS directories read per word. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

__all__ = ["MAX_LISTINGS", "MAX_MATCHES", "glob", "has_magic", "match"]

MAX_MATCHES = 4096
MAX_LISTINGS = 256
_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "xdigit": "0-9A-Fa-f",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "blank": r" \t",
}


def has_magic(pattern: str) -> bool:
    """Whether `pattern` has an unescaped `*` or `?`, or a `[` with its `]` (`[` alone is a word)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] in "*?":
            return True
        if pattern[i] == "[" and "]" in pattern[i + 2 :]:
            return True
        i += 1
    return False


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append(".*")
            i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[":
            end, body = _bracket(pattern, i)
            if body is None:
                out.append(r"\[")
                i += 1
            else:
                out.append(body)
                i = end
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _bracket(pattern: str, i: int) -> tuple[int, str | None]:
    """The bracket expression at `pattern[i]` ("["): (index after it, its regex), or (i, None)."""
    j = i + 1
    negate = j < len(pattern) and pattern[j] in "!^"
    if negate:
        j += 1
    parts: list[str] = []
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            body = "".join(parts)
            return j + 1, f"[{'^' if negate else ''}{body}]"
        first = False
        if c == "[" and pattern.startswith("[:", j):
            close = pattern.find(":]", j + 2)
            name = pattern[j + 2 : close] if close > 0 else ""
            if name in _CLASSES:
                parts.append(_CLASSES[name])
                j = close + 2
                continue
        if c == "\\" and j + 1 < len(pattern):
            parts.append(re.escape(pattern[j + 1]))
            j += 2
            continue
        if c == "-" and parts and j + 1 < len(pattern) and pattern[j + 1] != "]":
            parts.append("-")
            j += 1
            continue
        parts.append(re.escape(c) if c != "-" else r"\-")
        j += 1
    return i, None


def match(pattern: str, text: str) -> bool:
    """Whether all of `text` matches the pattern (no special rule for "/" or a leading ".")."""
    return _regex(pattern).fullmatch(text) is not None


def _unescape(pattern: str) -> str:
    return re.sub(r"\\(.)", r"\1", pattern, flags=re.DOTALL)


def glob(
    pattern: str,
    cwd: str,
    children: Callable[[str], Iterable[str] | None],
    exists: Callable[[str], bool],
) -> list[str] | None:
    """The names the pattern expands to, sorted; None when nothing matches.

    `children(directory)` lists a directory's names (None: not a readable directory), `exists(path)`
    says whether a path names anything. A relative
    pattern is looked up under `cwd` and its matches stay relative, as bash prints them.
    """
    absolute = pattern.startswith("/")
    components = [c for c in pattern.split("/") if c]
    if not components:
        return None
    trailing = pattern.endswith("/")
    base = "/" if absolute else cwd
    found: list[tuple[str, str]] = [(base, "/" if absolute else "")]  # (real path, as written)
    listings = 0
    for index, component in enumerate(components):
        last = index == len(components) - 1
        after: list[tuple[str, str]] = []
        if not has_magic(component):
            name = _unescape(component)
            for real, shown in found:
                after.append((_join(real, name), shown + name))
        else:
            regex = _regex(component)
            hidden = component.startswith(".") or component.startswith("\\.")
            for real, shown in found:
                listings += 1
                if listings > MAX_LISTINGS:
                    break
                names = children(real)
                if names is None:
                    continue
                for name in names:
                    if name in (".", "..") or (name.startswith(".") and not hidden):
                        continue
                    if regex.fullmatch(name):
                        after.append((_join(real, name), shown + name))
                        if len(after) >= MAX_MATCHES:
                            break
        if not last or trailing:
            after = [(real, shown + "/") for real, shown in after]
        found = after
        if not found:
            return None
    literal = not has_magic(components[-1])
    names = [
        shown
        for real, shown in found
        if (not literal or exists(real)) and (not trailing or children(real) is not None)
    ]
    return sorted(names, key=_key)[:MAX_MATCHES] or None


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _key(name: str) -> bytes:
    """C.UTF-8's collation: by code point, that is by the UTF-8 bytes."""
    return name.encode("utf-8", "surrogateescape")
