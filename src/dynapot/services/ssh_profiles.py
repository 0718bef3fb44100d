"""What an SSH server of a given product and version offers: one row of data per version.

A row (`SSHProfile`) holds the algorithm lists of the server's KEXINIT in the server's own
order, the host key types it has, whether it offers keyboard-interactive, and how long it takes
to turn down a wrong password. `profile_for(software)` picks the row for the software part of
the identification string the host claims ("OpenSSH_9.2p1 Debian-2+deb12u10"). The service
offers only what asyncssh implements of a row (`supported`), never more: an algorithm sshd lacks
would contradict the banner in the first packet.

Where the rows come from:
- OpenSSH 9.x: recorded from the Debian 12 sshd (OpenSSH_9.2p1 Debian-2+deb12u10, Debian's
  sshd_config: UsePAM, KbdInteractiveAuthentication no) with bench/realism_probes.py: its
  KEXINIT and `ssh -v`'s view of it; the failed-password delay is pam_unix's 2 s (Linux-PAM
  varies it by up to a quarter).
- OpenSSH 8.x and 7.x: OpenSSH's documented defaults of 8.9 and 7.4 (sshd_config(5) of those
  releases), not recorded here.
Other SSH servers (Windows', Cisco's) have no row yet and keep asyncssh's lists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["PROFILES", "SSHProfile", "failure_time", "profile_for", "user_specific_delay"]

_OPENSSH_MACS = (
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
)
_OPENSSH_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
)
_OPENSSH_COMPRESSION = ("none", "zlib@openssh.com")
_OPENSSH_KEYS = ("ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519")  # what ssh-keygen -A makes
_PAM_DELAY = (1.5, 2.5)  # pam_unix's 2 s, +-25 %
# sshd forks and re-executes itself for each connection and loads its host keys before it says
# its identification: after the SYN/ACK on the wire, one connection at a time, medians of 9.7 and
# 15.6 ms in two runs of 20 (7.5-62 ms in all; bench/bench_service_timing.py; 13-58 ms in
# session 6's busier lab: it is CPU work and grows with the machine's load). The pause is that
# less the sensor's own path before the identification (about 1.5 ms).
_SSHD_START = (0.007, 0.016)


@dataclass(frozen=True, slots=True)
class SSHProfile:
    """One SSH server version's offer."""

    name: str
    software: str  # regular expression over the identification's software part
    kex: tuple[str, ...]
    host_key_algs: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    compression: tuple[str, ...]
    key_types: tuple[
        str, ...
    ]  # host keys the server has: ssh-rsa (3072 bits), ecdsa-sha2-nistp256, ssh-ed25519
    kbdint: bool = False  # keyboard-interactive offered
    fail_delay: tuple[float, float] = _PAM_DELAY  # seconds before "wrong password" (low, high)
    banner_delay: tuple[float, float] = _SSHD_START  # seconds from the connection to the identification
    strict_kex: bool = True  # kex-strict-s-v00@openssh.com after the kex list (the Terrapin fix)
    ext_info: bool = False  # ext-info-s after the kex list (OpenSSH 9.6 and later)
    # OpenSSH 7.8 and later answer a failed authentication no sooner than a per-user minimum
    # (`user_specific_delay`), doubled until it covers the time taken (`failure_time`).
    minimum_fail_time: bool = True


PROFILES: tuple[SSHProfile, ...] = (
    SSHProfile(
        name="OpenSSH 9.x (recorded: 9.2p1 Debian-2+deb12u10)",
        software=r"OpenSSH_9\.\d",
        kex=(
            "sntrup761x25519-sha512",
            "sntrup761x25519-sha512@openssh.com",
            "curve25519-sha256",
            "curve25519-sha256@libssh.org",
            "ecdh-sha2-nistp256",
            "ecdh-sha2-nistp384",
            "ecdh-sha2-nistp521",
            "diffie-hellman-group-exchange-sha256",
            "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512",
            "diffie-hellman-group14-sha256",
        ),
        host_key_algs=("rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519"),
        ciphers=_OPENSSH_CIPHERS,
        macs=_OPENSSH_MACS,
        compression=_OPENSSH_COMPRESSION,
        key_types=_OPENSSH_KEYS,
    ),
    SSHProfile(
        name="OpenSSH 8.x (documented defaults of 8.9)",
        software=r"OpenSSH_8\.\d",
        kex=(
            "curve25519-sha256",
            "curve25519-sha256@libssh.org",
            "ecdh-sha2-nistp256",
            "ecdh-sha2-nistp384",
            "ecdh-sha2-nistp521",
            "sntrup761x25519-sha512@openssh.com",
            "diffie-hellman-group-exchange-sha256",
            "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512",
            "diffie-hellman-group14-sha256",
        ),
        host_key_algs=("rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519"),
        ciphers=_OPENSSH_CIPHERS,
        macs=_OPENSSH_MACS,
        compression=_OPENSSH_COMPRESSION,
        key_types=_OPENSSH_KEYS,
    ),
    SSHProfile(
        name="OpenSSH 7.x and older (documented defaults of 7.4)",
        software=r"OpenSSH_[1-7]\.\d",
        kex=(
            "curve25519-sha256",
            "curve25519-sha256@libssh.org",
            "ecdh-sha2-nistp256",
            "ecdh-sha2-nistp384",
            "ecdh-sha2-nistp521",
            "diffie-hellman-group-exchange-sha256",
            "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512",
            "diffie-hellman-group14-sha256",
            "diffie-hellman-group14-sha1",
        ),
        host_key_algs=("ssh-rsa", "rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519"),
        ciphers=_OPENSSH_CIPHERS,
        macs=_OPENSSH_MACS,
        compression=_OPENSSH_COMPRESSION,
        key_types=_OPENSSH_KEYS,
        strict_kex=False,
        minimum_fail_time=False,
    ),
)

MIN_FAIL_DELAY = 0.005  # sshd's MIN_FAIL_DELAY_SECONDS


def user_specific_delay(secret: int, user: str) -> float:
    """sshd's per-user minimum time for a failed authentication (auth2.c): 5 ms plus 0-4.3 ms
    from SHA-512 of the server's timing secret and the user name, the same for every try."""
    digest = hashlib.sha512(f"{secret}{user}".encode("utf-8", "replace")).digest()
    return MIN_FAIL_DELAY + int.from_bytes(digest[:4], "big") / 1e12


def failure_time(elapsed: float, minimum: float) -> float:
    """When sshd answers a failure that took `elapsed` seconds (PAM's delay): `minimum`, doubled
    until it is no less than `elapsed` (auth2.c's ensure_minimum_time_since). A wrong password
    for one user therefore always takes one of a few fixed times (7.14 ms x 256 = 1.83 s or
    x 512 = 3.66 s for "probe" on the lab's sshd), never PAM's uniform spread."""
    if minimum <= 0:
        return elapsed
    seconds = minimum
    while seconds < elapsed:
        seconds *= 2
    return seconds


def profile_for(software: str) -> SSHProfile | None:
    """The row for an identification's software part ("OpenSSH_9.2p1 Debian-..."), or None."""
    for profile in PROFILES:
        if re.match(profile.software, software):
            return profile
    return None
