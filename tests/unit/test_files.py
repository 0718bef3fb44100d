"""Files written whole or not at all, and the deployment's secret made once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dynapot.files import create_once, write_atomically
from dynapot.sensor.secret import SIZE, SecretError, load_or_create_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomically_replaces_the_whole_file_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "honeyd.conf"
    path.write_text("old\n")
    os.umask(0o077)  # the sensor reads it after dropping root, whatever the writer's umask
    try:
        write_atomically(path, "new\n", 0o644)
    finally:
        os.umask(0o022)
    assert path.read_text() == "new\n" and mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["honeyd.conf"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("{}")
    with pytest.raises(TypeError):
        write_atomically(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_create_once_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert create_once(path, b"first", 0o600) is True
    assert create_once(path, b"second", 0o600) is False
    assert path.read_bytes() == b"first" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_the_secret_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret.key"
    first = load_or_create_secret(path)
    assert len(first) == SIZE and mode(path) == 0o600 and mode(path.parent) == 0o700
    assert load_or_create_secret(path) == first
    assert load_or_create_secret(tmp_path / "other.key") != first


def test_a_damaged_or_unreachable_secret_is_refused_with_its_path(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 5)
    with pytest.raises(SecretError, match=r"short\.key is not 32 bytes"):
        load_or_create_secret(short)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(SecretError, match=r"the deployment secret .*/file/secret\.key: Not a directory"):
        load_or_create_secret(blocked / "secret.key")
    readonly = tmp_path / "readonly"
    readonly.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(SecretError, match="cannot create the deployment secret"):
            load_or_create_secret(readonly / "secret.key")
