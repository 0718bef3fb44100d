"""Which passwords a virtual host takes: the login policy of a service, and each host's weak pairs.

A honeypot that takes every login is found by one probe with random credentials; one that takes
none shows nothing of what an intruder does next. The middle way is `"weak"`: each host takes a
few pairs of a common user name and a common password (`weak_pairs`), drawn with the host's
identity (keyed with the deployment's secret), so hosts differ, no list of pairs gets into all of
them, and a probe with random or rare credentials gets the real server's refusal.

`LoginPolicy` is what the settings say: "any" (every login succeeds: for capturing what comes
after, at the price of being easy to spot), "weak" (the default) or "none" (every login fails).
"""

from __future__ import annotations

from typing import Literal

from dynapot.services.identity import HostIdentity

__all__ = ["COMMON_PASSWORDS", "COMMON_USERS", "LoginPolicy", "weak_pairs"]

LoginPolicy = Literal["any", "weak", "none"]

# The passwords brute-forcers try first (the head of the public leaked-password rankings).
COMMON_PASSWORDS: tuple[str, ...] = (
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "123123",
    "abc123",
    "admin",
    "letmein",
    "welcome",
    "passw0rd",
    "password1",
    "changeme",
    "test",
    "guest",
    "secret",
    "000000",
    "qwerty123",
    "1q2w3e4r",
    "default",
)
# Account names FTP and SSH brute-forcers pair with them (never a system account such as root,
# which a default vsftpd refuses whatever the password: /etc/ftpusers; nor "ftp", its anonymous one).
COMMON_USERS: tuple[str, ...] = (
    "admin",
    "ftpuser",
    "user",
    "test",
    "guest",
    "backup",
    "upload",
    "web",
    "www",
    "support",
    "operator",
    "demo",
    "dev",
)
PAIRS_PER_HOST = (2, 4)  # how many pairs one host takes, at least and at most


def weak_pairs(identity: HostIdentity, service: str) -> frozenset[tuple[str, str]]:
    """The few (user, password) pairs `identity`'s `service` takes: the same every time for one host
    of one deployment, different from host to host. A user's own name is a common password too."""
    rng = identity.rng(f"weak-logins:{service}")
    pairs: set[tuple[str, str]] = set()
    wanted = rng.randint(*PAIRS_PER_HOST)
    while len(pairs) < wanted:
        user = rng.choice(COMMON_USERS)
        password = rng.choice((*COMMON_PASSWORDS, user))
        pairs.add((user, password))
    return frozenset(pairs)
