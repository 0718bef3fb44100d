"""Dropping root once the raw socket, database connection and log file are open."""

from __future__ import annotations

import logging
import os
import pwd

log = logging.getLogger(__name__)


class PrivilegeError(RuntimeError):
    pass


def user_entry(user: str) -> pwd.struct_passwd | None:
    """The account root drops to; PrivilegeError when it does not exist (None when not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(
            f"no such user ({user!r}) to drop root to; the set-up (`make setup`, as root) makes the "
            "system account dynapot, or name another (--user, daemon.sensor_user)"
        ) from None


def drop_privileges(user: str) -> None:
    """Become `user` for good (groups, gid, uid); a no-op when not running as root."""
    entry = user_entry(user)
    if entry is None:
        return
    if entry.pw_uid == 0:
        log.warning("running the sensor as root: prefer an unprivileged --user")
        return
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - the kernel would have refused
        raise PrivilegeError("could not drop root")
    log.info("now running as %s (uid %d)", user, entry.pw_uid)
