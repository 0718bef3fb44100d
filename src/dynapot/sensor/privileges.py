"""Dropping root once the raw socket, database connection and log file are open."""

from __future__ import annotations

import logging
import os
import pwd

log = logging.getLogger(__name__)


class PrivilegeError(RuntimeError):
    pass


def drop_privileges(user: str) -> None:
    """Become `user` for good (groups, gid, uid); a no-op when not running as root."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"user {user!r} does not exist") from None
    if entry.pw_uid == 0:
        log.warning("running the sensor as root: prefer an unprivileged --user")
        return
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - the kernel would have refused
        raise PrivilegeError("could not drop root")
    log.info("now running as %s (uid %d)", user, entry.pw_uid)
