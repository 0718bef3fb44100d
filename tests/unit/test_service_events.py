"""Services report in the event catalogue's words: every kind a `Kind`, every data key listed.

A static look at the service modules' source (a runtime check on the loopback servers, in
`loopback.py`, covers what the tests exercise): a report call or event tuple names its kind as
`Kind.X`, never as a string, and the keys of a literal data dict are those `EventSpec.data` lists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dynapot.services
from dynapot.events import CATALOGUE, Kind

SOURCES = sorted(Path(dynapot.services.__file__).parent.glob("*.py"))
_EVENT_WORDS = {kind.value for kind in Kind}


def _events(tree: ast.AST) -> list[tuple[ast.expr, ast.expr | None, int]]:
    """(kind expression, data expression, line) of every report call and event tuple."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "report",
            "_report",
            "sink",
        ):
            if node.args:
                found.append((node.args[0], node.args[2] if len(node.args) > 2 else None, node.lineno))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3:
            first = node.elts[0]
            named = isinstance(first, ast.Attribute) and getattr(first.value, "id", "") == "Kind"
            if named or (isinstance(first, ast.Constant) and first.value in _EVENT_WORDS):
                found.append((first, node.elts[2], node.lineno))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
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
