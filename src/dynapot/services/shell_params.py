"""bash's parameter expansion forms, for the fake shell: what `${...}` holds besides a name.

`parameter(spec, get, assign)`: `${#x}` (length), `${x:-word}` `${x-word}` (a default),
`${x:=word}` (a default, assigned), `${x:+word}` (an alternative), `${x#pattern}` `${x##pattern}`
`${x%pattern}` `${x%%pattern}` (a prefix or suffix cut, glob patterns), `${x/pattern/word}`
`${x//pattern/word}` (replace), `${x:offset}` `${x:offset:length}` (substring). The word is
taken as it is (not expanded again). Anything else raises ParameterFailure("bad substitution"),
as bash says. Bounded by the value's length (values are capped where they are set). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dynapot.services.shell_glob import match

__all__ = ["ParameterFailure", "parameter"]

_NAME = r"([A-Za-z_][A-Za-z0-9_]*|[0-9#?$!@*])"
_FORMS = re.compile(
    rf"#{_NAME}"  # length
    rf"|{_NAME}(:?[-=+?])(.*)"  # default, assign, alternative, error
    rf"|{_NAME}(##?|%%?)(.*)"  # prefix, suffix
    rf"|{_NAME}(//?)([^/]*)(?:/(.*))?"  # replace
    rf"|{_NAME}:(\s*-?\d+)(?::(\d+))?",  # substring
    re.DOTALL,
)
MAX_VALUE = 4096


class ParameterFailure(SyntaxError):
    """A bad substitution or `${x:?}` of an unset x: bash says why and gives up the whole line."""


def _cut(value: str, op: str, pattern: str) -> str:
    sizes = range(len(value) + 1) if op in ("#", "%") else range(len(value), -1, -1)
    for size in sizes:
        if op.startswith("#") and match(pattern, value[:size]):
            return value[size:]
        if op.startswith("%") and match(pattern, value[len(value) - size :]):
            return value[: len(value) - size]
    return value


def _replace(value: str, every: bool, pattern: str, word: str) -> str:
    out, i = [], 0
    while i < len(value):
        for end in range(len(value), i, -1):  # the longest match at i
            if match(pattern, value[i:end]):
                out.append(word)
                i = end
                break
        else:
            out.append(value[i])
            i += 1
            continue
        if not every:
            return "".join(out) + value[i:]
    return "".join(out)


def parameter(spec: str, get: Callable[[str], str | None], assign: Callable[[str, str], None]) -> str:
    """The value of `${spec}`; `get(name)` is None for an unset variable."""
    found = _FORMS.fullmatch(spec)
    if found is None or len(spec) > MAX_VALUE:
        raise ParameterFailure(f"${{{spec[:100]}}}: bad substitution")
    groups = found.groups()
    if groups[0] is not None:
        return str(len(get(groups[0]) or ""))
    if groups[1] is not None:
        name, op, word = groups[1], groups[2], groups[3]
        value = get(name)
        empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return word if empty else value or ""
        if op.endswith("="):
            if empty:
                assign(name, word)
                return word
            return value or ""
        if op.endswith("+"):
            return "" if empty else word
        if empty:
            raise ParameterFailure(f"{name}: {word or 'parameter null or not set'}")
        return value or ""
    if groups[4] is not None:
        return _cut(get(groups[4]) or "", groups[5], groups[6])
    if groups[7] is not None:
        value = get(groups[7]) or ""
        if len(value) > 512:  # the longest-match search is quadratic: long values are left as they are
            return value
        return _replace(value, groups[8] == "//", groups[9], groups[10] or "")
    value = get(groups[11]) or ""
    offset = int(groups[12].replace(" ", ""))
    start = max(0, len(value) + offset) if offset < 0 else offset
    return value[start : start + int(groups[13])] if groups[13] is not None else value[start:]
