"""IP IDs on a connection's packets follow the personality's OS, SYN/ACK and data alike.

Linux (nmap's TI=Z) sends its SYN/ACK with ID 0 and then numbers the connection's own segments
from a random per-connection start (inet_id), one up per segment: data with ID 0 all along was
issue 15's tell. Windows (TI=I) numbers everything on one host-wide counter, so a connection's
segments continue the SYN/ACK's sequence.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from test_netstack_helpers import SERVER_IP, SERVER_MAC, Client, ip2int

from dynapot.netstack.host import HostStack, PortPolicy, StackContext
from dynapot.netstack.tcp import TcpConfig
from dynapot.personality.engine import compile_personality
from dynapot.personality.osdb import load_osdb

OSDB = Path("/usr/share/nmap/nmap-os-db")


@pytest.fixture(scope="module")
def fingerprints():
    if not OSDB.exists():
        pytest.skip("nmap is not installed")
    by_name = {}
    for fp in load_osdb(OSDB):
        by_name.setdefault(fp.name, fp)
    return by_name


def host_of(fp, seed: int) -> HostStack:
    personality = compile_personality(fp, seed=seed, uptime=1000.0, now=0.0)
    return HostStack(
        ip2int(SERVER_IP), SERVER_MAC, personality, PortPolicy.open_tcp(23), StackContext(None, TcpConfig())
    )


def talk(host: HostStack, sport: int) -> tuple[IP, list[IP]]:
    """A connection: the SYN/ACK, then every segment the server sends for three writes and a close."""
    client = Client(host, dport=23, sport=sport)
    synack = client.connect()
    segments: list[IP] = []
    for chunk in (b"login: ", b"Password: ", b"Login incorrect\r\n"):
        segments += client.app(lambda conn, data=chunk: conn.send(data, client.now))
        segments += client.send("A")
    segments += client.app(lambda conn: conn.close(client.now))
    assert sum(bool(s[TCP].payload) for s in segments) >= 3 and segments[-1][TCP].flags & 0x01
    return synack, segments


def test_linux_syn_ack_zero_then_the_connections_own_counter(fingerprints) -> None:
    host = host_of(fingerprints["Linux 5.0 - 5.4"], seed=3)
    assert host.personality.connection_ip_ids
    starts = []
    for sport in (40001, 40002, 40003):
        synack, segments = talk(host, sport)
        assert synack[IP].id == 0 and synack[IP].flags.DF
        ids = [s[IP].id for s in segments]
        assert all(s[IP].flags.DF for s in segments)
        assert ids == [(ids[0] + i) & 0xFFFF for i in range(len(ids))]  # one up per segment
        starts.append(ids[0])
    assert len(set(starts)) == 3 and any(starts)  # each connection starts somewhere of its own


def test_windows_segments_continue_the_hosts_counter(fingerprints) -> None:
    fp = fingerprints["Microsoft Windows 7 SP1 or Windows Server 2008 R2"]
    host = host_of(fp, seed=3)
    assert not host.personality.connection_ip_ids
    synack, segments = talk(host, 40001)
    ids = [synack[IP].id] + [s[IP].id for s in segments]
    steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(ids)]
    assert all(0 < step < 16 for step in steps), ids  # incremental, host-wide (TI=I)
