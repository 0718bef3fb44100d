"""The deployment's secret: 32 random bytes made at first start and kept in the data folder.

Every per-host choice that an attacker could compare between deployments (host names, boot
times, ISN and IP ID generators, timestamp clocks) is keyed with it, so knowing one
dynapot deployment tells nothing about another's hosts. Losing it changes every host's
identity; it is created once, owner-only (0600), never logged.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from dynapot.files import create_once

DEFAULT_SECRET = Path("/var/lib/dynapot/secret.key")
SIZE = 32


class SecretError(OSError):
    """The secret cannot be read or created; the message says where and why."""


def load_or_create_secret(path: Path = DEFAULT_SECRET) -> bytes:
    """The secret at `path`, created (0600, in a 0700 folder if new) when there is none yet."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(SIZE + 1)
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise SecretError(f"cannot read the deployment secret {path}: {exc.strerror}") from None
    if len(data) != SIZE:
        raise SecretError(
            f"the deployment secret {path} is not {SIZE} bytes long; remove it to make a new one"
        )
    return data


def _create(path: Path) -> bytes:
    data = secrets.token_bytes(SIZE)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not create_once(path, data, 0o600):
            return load_or_create_secret(path)  # another process made it first: use theirs
    except OSError as exc:
        raise SecretError(f"cannot create the deployment secret {path}: {exc.strerror}") from None
    return data
