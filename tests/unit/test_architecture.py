"""The layering of docs/ARCHITECTURE.md holds: no package imports one beside or above it.

The table is read from the document itself, so that the rule a new engineer reads is the rule
the tests enforce. Every import counts, also those inside functions and `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dynapot"
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def layers() -> dict[str, int]:
    """package -> layer, from the document's `| layer | packages |` table."""
    table: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\|\s*(\d+)\s*\|([^|]+)\|", line.strip())
        if match:
            for name in match.group(2).replace("\\_", "_").split(","):
                table[name.strip()] = int(match.group(1))
    return table


def package_of(module: str) -> str:
    """`dynapot.sensor.runtime` -> `sensor`; `dynapot.planner` -> `planner`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    for path in SRC.glob("*.c"):  # a C extension (dynapot._fastpath) is a module too
        found[f"dynapot.{path.stem}"] = path
    return found


def imports(path: Path) -> set[str]:
    if path.suffix != ".py":
        return set()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "dynapot" or name.startswith("dynapot.")}


def test_the_table_names_every_package() -> None:
    table = layers()
    assert table, "docs/ARCHITECTURE.md lost its layer table"
    packages = {package_of(module) for module in modules()} - {""}
    assert packages - set(table) == set(), "packages missing from the layer table"
    assert set(table) - packages == set(), "the layer table names packages that do not exist"


def test_no_import_goes_sideways_or_up() -> None:
    table = layers()
    known = {package_of(m) for m in modules()}
    wrong = []
    for module, path in sorted(modules().items()):
        mine = package_of(module)
        for target in sorted(imports(path)):
            theirs = package_of(target)
            if theirs not in known or theirs in ("", mine):
                continue  # a name inside a module (`from dynapot.x import name`), or its own package
            if table[theirs] >= table[mine]:
                wrong.append(f"{module} (layer {table[mine]}) imports {target} (layer {table[theirs]})")
    assert wrong == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    """The table reader and import finder see a real upward import."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dynapot.cli import main\n")
    assert imports(bad) == {"dynapot.cli", "dynapot.cli.main"}
    table = layers()
    assert table["cli"] > table["netstack"] and table["netstack"] == 0
