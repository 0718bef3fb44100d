"""Per-host state an attacker could use to predict or spoof comes from the deployment's secret.

ISNs, IP IDs and the TCP timestamp clock are drawn from the host's identity seed, a keyed hash
of its address and personality: the same secret gives the same host after a restart; another
deployment's secret gives hosts that tell nothing about these.
"""

from __future__ import annotations

import functools

from nmap_eval import tcp_segment

from dynapot.netstack.types import TcpFlags
from dynapot.personality.engine import compile_personality
from dynapot.personality.osdb import fingerprints_by_name, load_osdb
from dynapot.services.identity import identity_for

ADDRESS = "198.18.0.40"
NAME = "Microsoft Windows 7 SP1 or Windows Server 2008 R2"  # IP IDs count up (TI=I): visible
SYN_OPTIONS = b"\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x01\x02\x03\x00\x00\x00\x00\x01\x03\x03\x07"


@functools.cache
def fingerprint():
    return fingerprints_by_name(load_osdb())[NAME]


def observed(secret: bytes, address: str = ADDRESS) -> tuple[int, int, int, float]:
    """What an attacker sees of a fresh host: its first ISN, IP ID and TSval, and its boot time."""
    identity = identity_for(address, NAME, secret=secret, now=1_800_000_000.0)
    uptime = identity.uptime(1_800_000_000.0)
    host = compile_personality(fingerprint(), seed=identity.seed, uptime=uptime, now=0.0)
    syn = tcp_segment(50000, 80, 123, 0, TcpFlags.SYN, 64240, SYN_OPTIONS)
    reply = host.syn_ack(syn, host.isn(1.0), 1.0)
    assert reply is not None and reply.seq is not None
    return reply.seq, reply.ip_id, host.tsval(1.0), identity.boot_time


def test_the_same_secret_gives_the_same_host() -> None:
    assert observed(b"a" * 32) == observed(b"a" * 32)


def test_another_secret_gives_a_host_that_tells_nothing_of_this_one() -> None:
    mine, theirs = observed(b"a" * 32), observed(b"b" * 32)
    assert all(x != y for x, y in zip(mine, theirs, strict=True))  # ISN, IP ID, timestamp, boot


def test_hosts_of_one_deployment_differ() -> None:
    one, two = observed(b"a" * 32), observed(b"a" * 32, "198.18.0.41")
    assert all(x != y for x, y in zip(one, two, strict=True))
