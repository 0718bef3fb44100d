"""Child processes never import from the current folder (they run as root at first)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dynapot
from dynapot.processes import python_command, python_environment, untrusted_program
from dynapot.sensor.eventlog import Event, EventWriter

SRC = Path(dynapot.__file__).parent
POISON = "import pathlib; pathlib.Path({marker!r}).write_text('imported from the current folder')\n"


def poisoned_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding a `dynapot` package and a `json` module that leave a mark when imported."""
    folder, marker = tmp_path / "cwd", tmp_path / "marker"
    (folder / "dynapot").mkdir(parents=True)
    (folder / "dynapot" / "__init__.py").write_text(POISON.format(marker=str(marker)))
    (folder / "json.py").write_text(POISON.format(marker=str(marker)))
    return folder, marker


def environment() -> dict[str, str]:
    """Ours, with the folder of the dynapot under test first (as the test session has it)."""
    env = python_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(SRC.parent), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_every_python_child_is_started_through_python_command() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "processes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "executable"
                and getattr(node.value, "id", "") == "sys"
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, f"sys.executable outside processes.python_command: {offenders}"


@pytest.mark.parametrize("args", [("-m", "dynapot", "--help"), ("-c", "import json, dynapot")])
def test_a_child_in_a_poisoned_folder_imports_the_real_modules(tmp_path: Path, args: tuple[str, ...]) -> None:
    folder, marker = poisoned_folder(tmp_path)
    env = environment()
    # Without the safe path the current folder wins: the check can fail.
    plain = subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True, timeout=60)
    assert marker.exists(), plain.stderr
    marker.unlink()
    safe = subprocess.run(python_command(*args), cwd=folder, env=env, capture_output=True, timeout=60)
    assert safe.returncode == 0, safe.stderr
    assert not marker.exists()


def test_the_event_writer_started_from_a_poisoned_folder(tmp_path: Path, monkeypatch) -> None:
    folder, marker = poisoned_folder(tmp_path)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PYTHONPATH", environment()["PYTHONPATH"])
    log = tmp_path / "honeyd.log"
    writer = EventWriter(None, log, child=True)
    writer.submit(Event.news("sensor-start", "1 hosts"))
    assert writer.flush(30)
    writer.close()
    assert "sensor-start" in log.read_text() and not marker.exists()


def test_relative_pythonpath_entries_are_left_out() -> None:
    env = python_environment({"PYTHONPATH": f"{os.pathsep}src{os.pathsep}/opt/x{os.pathsep}.", "A": "b"})
    assert env == {"PYTHONPATH": "/opt/x", "A": "b"}
    assert "PYTHONPATH" not in python_environment({"PYTHONPATH": "."})


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership by other accounts takes root to set up")
def test_root_runs_no_program_another_account_could_change(tmp_path: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    folder = tmp_path / "bin"
    folder.mkdir(mode=0o755)
    program = folder / "nmap"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert untrusted_program(str(program)) is None  # root's, in root's folders
    assert untrusted_program("sh") is None and untrusted_program(str(folder / "missing")) is None
    program.chmod(0o775)
    os.chown(program, 0, nobody.pw_gid)
    assert "may be changed by an account other than root" in (untrusted_program(str(program)) or "")
    program.chmod(0o755)
    os.chown(folder, nobody.pw_uid, -1)  # nobody could swap the file for another
    assert str(folder) in (untrusted_program(str(program)) or "")
    os.chown(folder, 0, -1)
    link = tmp_path / "link"
    os.chown(program, nobody.pw_uid, -1)
    link.symlink_to(program)
    assert str(program) in (untrusted_program(str(link)) or "")  # judged where the link leads
