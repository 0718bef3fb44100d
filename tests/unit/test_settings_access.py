"""`dynapot admin settings-access`: whether the web account can read (or replace) the settings
file, and the grant that lets it, with real files, real chgrp/chmod and the real web account (the tests
run as root); the proof is the account itself replacing the file the way the settings page does.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynapot.cli import main
from dynapot.daemon.settings_access import AccessRefused, check, grant, others_may_write, settings_access

WEB = "dynapot-web"
SETTINGS = '[web]\nuser = "dynapot-web"\n'

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (chgrp, chmod, and a child run as the web account)"
)


def web_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(WEB)
    except KeyError:
        pytest.skip(f"no {WEB} account here (make setup makes it)")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A root-owned folder the web account can reach (pytest's own tmp_path is closed to it)."""
    path = Path(tempfile.mkdtemp(prefix="dynapot-settings-", dir="/tmp"))
    try:
        etc = path / "etc"
        etc.mkdir(mode=0o755)
        path.chmod(0o755)
        etc.chmod(0o755)
        yield etc
    finally:
        shutil.rmtree(path)


@pytest.fixture
def settings(folder: Path) -> Path:
    path = folder / "dynapot.toml"
    path.write_text(SETTINGS)
    path.chmod(0o600)
    return path


def replace_as_web(path: Path) -> subprocess.CompletedProcess[str]:
    """The web account writes a new file beside `path` and renames it over it, as the page does."""
    account = web_account()
    # The shell and mv (rename(2) in the same folder): the project's interpreter may live where
    # the web account cannot read it.
    script = (
        'tmp="$(dirname "$1")/.$(basename "$1").1.tmp"; '
        'cat "$1" > "$tmp" && echo "# saved" >> "$tmp" && mv -f "$tmp" "$1"'
    )
    return subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(path)],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def state(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode) | (info.st_mode & stat.S_ISVTX)


def test_the_grant_lets_the_web_account_replace_the_file_and_nothing_more(settings: Path) -> None:
    account = web_account()
    folder = settings.parent
    assert settings_access(WEB, settings, write=True) is not None
    assert replace_as_web(settings).returncode != 0  # before: refused by the system itself
    access = check(WEB, settings, write=True)
    assert access.problem and "--grant" in access.problem
    group = grp.getgrgid(account.pw_gid).gr_name
    assert access.commands == (
        f"chgrp {group} {folder} {settings}",
        f"chmod g+rwx,o-w,-t {folder}",
        f"chmod g+rw,o-w {settings}",
    )

    assert others_may_write(settings) is None  # root's alone, before
    done = grant(WEB, settings, write=True)
    assert others_may_write(settings) == f"{settings} is writable by the group {group}"
    assert done == [
        f"chgrp {group} {folder}",
        f"chmod 775 {folder}",
        f"chgrp {group} {settings}",
        f"chmod 660 {settings}",
    ]
    assert state(folder) == (0, account.pw_gid, 0o775) and state(settings) == (0, account.pw_gid, 0o660)
    assert (
        settings_access(WEB, settings, write=True) is None
        and check(WEB, settings, write=True).problem is None
    )
    assert grant(WEB, settings, write=True) == []  # once is enough: nothing more to change
    replaced = replace_as_web(settings)
    assert replaced.returncode == 0, replaced.stderr
    assert settings.read_text() == SETTINGS + "# saved\n"
    assert settings.stat().st_uid == account.pw_uid  # its own file now, which a grant accepts
    assert settings_access(WEB, settings, write=True) is None
    grant(WEB, settings, write=True)


def test_the_grant_takes_away_world_write_and_a_sticky_bit(settings: Path) -> None:
    account = web_account()
    settings.chmod(0o646)
    settings.parent.chmod(0o1755)
    assert "sticky" not in (
        settings_access(WEB, settings, write=True) or ""
    )  # it cannot write there at all yet
    grant(WEB, settings, write=True)
    assert state(settings.parent) == (0, account.pw_gid, 0o775)
    assert state(settings) == (0, account.pw_gid, 0o664)


def test_a_sticky_folder_is_named_as_the_reason(settings: Path) -> None:
    account = web_account()
    os.chown(settings.parent, 0, account.pw_gid)
    settings.parent.chmod(0o1775)
    os.chown(settings, 0, account.pw_gid)
    settings.chmod(0o660)
    assert "sticky" in (settings_access(WEB, settings, write=True) or "")
    assert replace_as_web(settings).returncode != 0  # the system agrees


def refused(path: Path, match: str) -> None:
    folder = path.parent
    before = [state(p) for p in (folder, path) if os.path.lexists(p)]
    with pytest.raises(AccessRefused, match=match):
        grant(WEB, path, write=True)
    assert [state(p) for p in (folder, path) if os.path.lexists(p)] == before  # nothing changed


def test_a_symbolic_link_is_refused(settings: Path) -> None:
    web_account()
    link = settings.parent / "link.toml"
    settings.rename(settings.parent.parent / "elsewhere.toml")
    link.symlink_to(settings.parent.parent / "elsewhere.toml")
    refused(link, "symbolic link")


def test_a_file_with_other_hard_links_is_refused(settings: Path) -> None:
    web_account()
    os.link(settings, settings.parent.parent / "other-name")
    refused(settings, "2 hard links")


def test_a_world_writable_folder_is_refused(settings: Path) -> None:
    web_account()
    settings.parent.chmod(0o777)
    refused(settings, "world-writable")


def test_a_folder_not_owned_by_root_is_refused(settings: Path) -> None:
    web_account()
    os.chown(settings.parent, pwd.getpwnam("nobody").pw_uid, -1)
    refused(settings, "not owned by root .it is nobody's.")


def test_a_shared_folder_is_refused(settings: Path) -> None:
    web_account()
    (settings.parent / "tls.key").write_text("secret")
    refused(settings, r"holds other files \(tls.key\).*a folder of its own")


def test_a_folder_reached_through_a_link_is_refused(settings: Path) -> None:
    web_account()
    alias = settings.parent.parent / "alias"
    alias.symlink_to(settings.parent)
    refused(alias / settings.name, "symbolic link")


def test_a_folder_under_one_others_may_change_is_refused(settings: Path) -> None:
    web_account()
    settings.parent.parent.chmod(0o775)
    os.chown(settings.parent.parent, 0, pwd.getpwnam("nobody").pw_gid)
    refused(settings, "may be changed by others than root")


def test_a_file_of_another_account_and_a_missing_file_are_refused(settings: Path) -> None:
    web_account()
    os.chown(settings, pwd.getpwnam("nobody").pw_uid, -1)
    refused(settings, "nobody's, neither root's nor dynapot-web's")
    with pytest.raises(AccessRefused, match="no settings file"):
        grant(WEB, settings.parent / "missing.toml", write=True)


def test_the_command_says_what_to_run_and_grants_it(settings: Path) -> None:
    web_account()
    runner = CliRunner()
    told = runner.invoke(main, ["admin", "settings-access", "--write", "--config", str(settings)])
    assert told.exit_code == 1, told.output
    assert "cannot read" in told.output and f"chmod g+rw,o-w {settings}" in told.output
    given = runner.invoke(main, ["admin", "settings-access", "--write", "--config", str(settings), "--grant"])
    assert given.exit_code == 0, given.output
    assert f"chmod 660 {settings}" in given.output and "can replace" in given.output
    assert "every setting" in given.output  # what the grant means is said
    again = runner.invoke(main, ["admin", "settings-access", "--write", "--config", str(settings)])
    assert again.exit_code == 0 and "can replace" in again.output


def test_the_command_refuses_with_one_line_and_status_2(settings: Path) -> None:
    web_account()
    (settings.parent / "other.conf").write_text("x")
    result = CliRunner().invoke(
        main, ["admin", "settings-access", "--write", "--config", str(settings), "--grant"]
    )
    assert result.exit_code == 2
    assert "settings access not granted" in result.output and "other.conf" in result.output
    assert len(result.output.strip().splitlines()) == 1


def read_as_web(path: Path) -> subprocess.CompletedProcess[str]:
    account = web_account()
    return subprocess.run(
        ["/bin/cat", str(path)],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_read_grant_lets_the_web_account_read_the_file_and_never_replace_it(settings: Path) -> None:
    """Under `dynapot run` the daemon writes the file: its web account only reads it."""
    account = web_account()
    folder = settings.parent
    (folder / "tls.key").write_text("secret")  # a shared folder is no reason to refuse a read grant
    settings.chmod(0o620)  # a group write bit it must not keep
    assert read_as_web(settings).returncode != 0 and settings_access(WEB, settings) is not None
    group = grp.getgrgid(account.pw_gid).gr_name
    assert check(WEB, settings).commands == (f"chgrp {group} {settings}", f"chmod g+r,g-w,o-w {settings}")
    before = state(folder)
    assert grant(WEB, settings) == [f"chgrp {group} {settings}", f"chmod 640 {settings}"]
    assert state(settings) == (0, account.pw_gid, 0o640) and state(folder) == before
    assert others_may_write(settings) is None  # the daemon's guard sees nothing to fear
    assert settings_access(WEB, settings) is None
    assert read_as_web(settings).stdout == SETTINGS
    assert replace_as_web(settings).returncode != 0 and settings.read_text() == SETTINGS
    given = CliRunner().invoke(main, ["admin", "settings-access", "--config", str(settings), "--grant"])
    assert given.exit_code == 0 and "can read" in given.output and "writes the file as root" in given.output
