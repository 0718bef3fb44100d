"""Whether the web interface's account may read (or replace) the settings file; granting it, safely.

The settings page runs as `web.user` (unprivileged). Under `dynapot run` it only **reads** the
settings file: a change goes to the daemon, which writes the file as root
(`daemon.settings_requests`); that is the default here (`write=False`): the file goes to the
account's primary group, g+r, never g+w or o+w, the folder untouched (it must let the group in).

A standalone `dynapot web` (no daemon) saves the file itself (`write=True`): it writes a new file
in the same folder and renames it over the old one (`files.write_atomically`), so the account
must be able to write in the folder and read the file: the folder and the file go to its group,
the folder g+rwx, the file g+rw, neither o+w (a sticky bit on the folder, which would stop the
rename, is cleared). `check` says whether it can, and what would make it; `grant` does it.

Before it changes anything `grant` refuses what would hand out more than that one file: a link
(symbolic, or a file with other hard links), a folder that is not root's or is world-writable,
a folder on a path others than root may change, a folder holding other files (the account could
replace them too: the settings file needs a folder of its own), a file owned by someone else.
Every change goes through file descriptors opened without following links.

What the write grant means: the web account can then write any setting in the file, and a
daemon, as root, would apply the policy at once and the rest at its next start. `check` says so.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AccessRefused", "SettingsAccess", "check", "grant", "others_may_write", "settings_access"]

_PRIVILEGE_NOTE = (
    "the web account can then change every setting in the file (a daemon, as root, would apply the "
    "policy at once and the rest at its next start): for a standalone `dynapot web` only"
)
_READ_NOTE = (
    "the web account reads the settings (alert URLs included); under `dynapot run` its changes go "
    "to the daemon, which writes the file as root"
)


class AccessRefused(Exception):
    """`grant` will not touch this file or folder; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class SettingsAccess:
    """What `check` found: `problem` is None when `user` can replace the file."""

    user: str
    group: str | None
    path: Path
    problem: str | None
    commands: tuple[str, ...]  # the shell commands that grant it (what `grant` does)
    note: str = _PRIVILEGE_NOTE


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise AccessRefused(f"no user {user!r} (make setup makes it)") from None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def settings_access(user: str, path: Path, *, write: bool = False) -> str | None:
    """Why `user` (the web child, once unprivileged) cannot read the settings file at `path`
    (`write`: nor replace it: write a new file in its folder and rename it over it), or None."""
    try:
        account = _account(user)
    except AccessRefused as exc:
        return str(exc)
    if account.pw_uid == 0:
        return None
    groups = _groups(account)

    def allowed(info: os.stat_result, want: int) -> bool:
        return _may(account, groups, info, want)

    folder = path.parent
    try:
        folder_info = os.stat(folder)
        file_info = os.stat(path) if path.exists() else None
    except OSError as exc:
        return f"cannot check {path}: {exc.strerror}"
    if not write:
        if not allowed(folder_info, 0o1) or (file_info is not None and not allowed(file_info, 0o4)):
            return (
                f"{user} cannot read {path}: the web interface shows the settings it started with "
                f"(`dynapot admin settings-access --grant` gives it read access)"
            )
        return None
    if not allowed(folder_info, 0o3) or (file_info is not None and not allowed(file_info, 0o4)):
        return (
            f"{user} cannot read {path} or write in {folder}: the settings page will refuse changes "
            f"(`dynapot admin settings-access --write --grant` gives them to it)"
        )
    if folder_info.st_mode & stat.S_ISVTX and file_info is not None and file_info.st_uid != account.pw_uid:
        return (
            f"{folder} is sticky and {path} is not {user}'s: it cannot rename a new file over it "
            f"(`dynapot admin settings-access --write --grant` clears the sticky bit)"
        )
    return None


def others_may_write(path: Path) -> str | None:
    """Which account other than root may replace the file at `path` (it or its folder is not
    root's, or is writable by a group or by others), said in a few words; None when none may."""
    for target in (path, path.parent):
        try:
            info = os.stat(target)
        except OSError:
            continue
        if info.st_uid != 0:
            return f"{target} is {_owner(info.st_uid)}'s"
        if info.st_mode & stat.S_IWGRP and info.st_gid != 0:
            return f"{target} is writable by the group {_group_name(info.st_gid)}"
        if info.st_mode & stat.S_IWOTH:
            return f"{target} is world-writable"
    return None


def check(user: str, path: Path, *, write: bool = False) -> SettingsAccess:
    """Whether `user` can read (`write`: replace) the settings file at `path`, and the commands
    that would let it."""
    path = Path(os.path.abspath(path))
    try:
        group = _group_name(_account(user).pw_gid)
    except AccessRefused:
        group = None
    folder = path.parent
    if group is None:
        commands: tuple[str, ...] = ()
    elif write:
        commands = (
            f"chgrp {group} {folder} {path}",
            f"chmod g+rwx,o-w,-t {folder}",
            f"chmod g+rw,o-w {path}",
        )
    else:
        commands = (f"chgrp {group} {path}", f"chmod g+r,g-w,o-w {path}")
    note = _PRIVILEGE_NOTE if write else _READ_NOTE
    return SettingsAccess(user, group, path, settings_access(user, path, write=write), commands, note)


def _refusal(path: Path, account: pwd.struct_passwd, write: bool) -> str | None:
    """Why `grant` must not touch `path` and its folder (checked by path; re-checked on the
    descriptors it then changes)."""
    folder = path.parent
    if os.path.realpath(folder) != str(folder):
        return f"the path of {folder} goes through a symbolic link: give the real one"
    for parent in (folder, *folder.parents):
        info = os.lstat(parent)
        if parent != folder and (
            info.st_uid != 0 or (info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX)
        ):
            return f"{parent} may be changed by others than root: {folder} could be swapped under us"
    info = os.lstat(folder)
    if info.st_uid != 0:
        return f"{folder} is not owned by root (it is {_owner(info.st_uid)}'s)"
    if info.st_mode & stat.S_IWOTH:
        return f"{folder} is world-writable"
    try:
        file_info = os.lstat(path)
    except FileNotFoundError:
        return f"no settings file at {path}"
    if stat.S_ISLNK(file_info.st_mode):
        return f"{path} is a symbolic link: give the file itself"
    if not stat.S_ISREG(file_info.st_mode):
        return f"{path} is not a regular file"
    if file_info.st_nlink > 1:
        return f"{path} has {file_info.st_nlink} hard links: a change of its mode would change them all"
    if file_info.st_uid not in (0, account.pw_uid):
        return f"{path} is {_owner(file_info.st_uid)}'s, neither root's nor {account.pw_name}'s"
    if not write:
        # Only the file's group and mode change: other files stay as they are; but a folder on
        # the way that shuts the account out would make the change useless.
        closed = _closed_folder(folder, account)
        return (
            None if closed is None else f"{account.pw_name} cannot enter {closed}: the grant would not help"
        )
    others = sorted(
        name
        for name in os.listdir(folder)
        if name != path.name and not (name.startswith(f".{path.name}.") and name.endswith(".tmp"))
    )
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        return (
            f"{folder} holds other files ({shown}): the web account could replace them too; "
            "give the settings file a folder of its own"
        )
    return None


def _closed_folder(folder: Path, account: pwd.struct_passwd) -> Path | None:
    """The first folder from / to `folder` that `account` may not enter (search), or None."""
    groups = _groups(account)
    for parent in (*reversed(folder.parents), folder):
        if not _may(account, groups, os.stat(parent), 0o1):
            return parent
    return None


def _groups(account: pwd.struct_passwd) -> set[int]:
    """The groups `account` is in: its own, and those that list it."""
    return {account.pw_gid, *(g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem)}


def _may(account: pwd.struct_passwd, groups: set[int], info: os.stat_result, want: int) -> bool:
    """Whether `account` (in `groups`) has the `want` bits (0o4 read, 0o2 write, 0o1 search) on a file
    with `info`: the owner's bits for its owner, the group's for its group, else the others'."""
    shift = 6 if info.st_uid == account.pw_uid else 3 if info.st_gid in groups else 0
    return (stat.S_IMODE(info.st_mode) >> shift) & want == want


def grant(user: str, path: Path, *, write: bool = False) -> list[str]:
    """Let `user` read (`write`: replace) the settings file at `path` (see the module); the
    changes made, as commands would say them (empty when there was nothing to change).
    AccessRefused, changing nothing, when it must not (see `_refusal`)."""
    account = _account(user)
    if account.pw_uid == 0:
        return []
    if os.geteuid() != 0:
        raise AccessRefused("only root can give the settings file to the web account's group")
    path = Path(os.path.abspath(path))
    reason = _refusal(path, account, write)
    if reason is not None:
        raise AccessRefused(reason)
    gid, group = account.pw_gid, _group_name(account.pw_gid)
    done: list[str] = []
    folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        file_fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
        try:
            info = os.fstat(file_fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:  # changed since the check
                raise AccessRefused(f"{path} changed while it was checked: try again")
            if write:
                done += _give(folder_fd, str(path.parent), gid, group, 0o070, stat.S_ISVTX)
                done += _give(file_fd, str(path), gid, group, 0o060, 0)
            else:
                done += _give(file_fd, str(path), gid, group, 0o040, stat.S_IWGRP)
        finally:
            os.close(file_fd)
    finally:
        os.close(folder_fd)
    return done


def _give(fd: int, name: str, gid: int, group: str, add: int, clear: int) -> list[str]:
    """Group `gid`, the mode with `add` and without o+w and `clear`, on the open `fd`."""
    done = []
    info = os.fstat(fd)
    if info.st_gid != gid:
        os.fchown(fd, -1, gid)
        done.append(f"chgrp {group} {name}")
    mode = stat.S_IMODE(info.st_mode)
    wanted = (mode | add) & ~(stat.S_IWOTH | clear)
    if wanted != mode:
        os.fchmod(fd, wanted)
        done.append(f"chmod {wanted:o} {name}")
    return done


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
