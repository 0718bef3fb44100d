"""Everything that makes an event speaks the catalogue's words: every kind a `Kind`, every data key listed.

A static look at the source of the packages that make events, sensor and services (a runtime
check on the loopback servers, in `loopback.py`, covers what the service tests exercise): a
service's report call, an event tuple, the sensor's observer and its event records name their
kind as `Kind.X`, never as a string, and the keys of a literal data dict are those
`EventSpec.data` lists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dynapot
from dynapot.events import CATALOGUE, Kind

# The packages that make honeypot events: the sensor (and honeyd's actions) and the services.
SOURCES = sorted(
    path
    for package in ("sensor", "services")
    for path in (Path(dynapot.__file__).parent / package).glob("*.py")
)
_EVENT_WORDS = {kind.value for kind in Kind}
# Calls that make an event: name -> (position of the kind, position of the data; None: keyword only)
_MAKERS: dict[str, tuple[int, int | None]] = {
    "report": (0, 2),  # a service's Report
    "_report": (0, 2),
    "sink": (0, 2),
    "event": (5, None),  # the sensor's Observer.event(proto, src, sport, dst, dport, kind, ...)
    "on_flow": (2, 5),  # Observer.on_flow(proto, flow, kind, detail, now, data)
    "news": (0, None),  # Event.news(kind, detail)
}


def _events(tree: ast.AST) -> list[tuple[ast.expr, ast.expr | None, int]]:
    """(kind expression, data expression, line) of every report call and event tuple."""
    found = []
    for node in ast.walk(tree):
        name = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else ""
        if name in _MAKERS:
            at, data_at = _MAKERS[name]
            if len(node.args) > at:
                data = node.args[data_at] if data_at is not None and len(node.args) > data_at else None
                keyword = next((k.value for k in node.keywords if k.arg == "data"), None)
                found.append((node.args[at], data if data is not None else keyword, node.lineno))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3:
            first = node.elts[0]
            named = isinstance(first, ast.Attribute) and getattr(first.value, "id", "") == "Kind"
            if named or (isinstance(first, ast.Constant) and first.value in _EVENT_WORDS):
                found.append((first, node.elts[2], node.lineno))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SOURCES[0].parents[1])))
def test_kinds_are_named_and_data_keys_are_catalogued(path: Path) -> None:
    problems = []
    for kind, data, line in _events(ast.parse(path.read_text())):
        if not (isinstance(kind, ast.Attribute) and getattr(kind.value, "id", "") == "Kind"):
            if not isinstance(kind, ast.Name):  # a kind passed through (a wrapper's parameter) is fine
                problems.append(f"{path.name}:{line}: kind {ast.unparse(kind)} is not Kind.X")
            continue
        spec = CATALOGUE[Kind[kind.attr]]
        if isinstance(data, ast.Dict):
            keys = {k.value for k in data.keys if isinstance(k, ast.Constant)}
            if extra := keys - set(spec.data):
                problems.append(f"{path.name}:{line}: {spec.kind} data {sorted(extra)} not catalogued")
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_looks_for() -> None:
    bad = ast.parse('report("login", "a:b", {"user": "a"})\nreport(Kind.LOGIN, "x", {"shoe_size": 44})')
    kinds = [ast.unparse(kind) for kind, _, _ in _events(bad)]
    assert kinds == ["'login'", "Kind.LOGIN"]
