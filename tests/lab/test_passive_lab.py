"""`dynapot watch` on the wire: the lab's real sshd/vsftpd/HTTP seen passively, and ARP liveness.

Where it listens: the lab's bridge forwards unicast only to the port of its destination, so
the sensor namespace sees broadcasts (ARP) but not the attacker's unicast conversations with
the real hosts. `watch` therefore runs in the ATTACKER namespace, which sees the replies to
its own connections (the raw socket ignores outgoing frames, so the SYN+ACKs, banners and
ARP replies are what it learns from) and every broadcast, such as a new address's
gratuitous ARP.

p0f: the Debian p0f 3.09b database has no signature for a current Linux SYN+ACK (window
65160), so the servers' SYN+ACKs stay unknown, as they do for the p0f binary. Each real host
therefore also opens one connection to the attacker, whose SYN p0f does recognise.
"""

from __future__ import annotations

import ipaddress
import subprocess

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from dynapot.db import open_database
from dynapot.db.models import Host, HostOsGuess
from dynapot.processes import python_command

pytestmark = pytest.mark.lab

NEW_ADDRESS = "198.18.0.77"
WATCH_SECONDS = 12

# Connect to each service, send an HTTP request where one is needed, read the first reply.
CLIENT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        if port == "80":
            s.sendall(b"GET / HTTP/1.0\\r\\nHost: lab\\r\\n\\r\\n")
        s.recv(4096)
"""
# A real host calls the attacker (a closed port: the kernel resets it): its SYN is what p0f reads.
CALL = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=3).close()
except OSError:
    pass
"""


def test_watch_sees_hosts_services_and_new_addresses(lab, tmp_path):
    url = f"sqlite:///{tmp_path / 'passive.db'}"
    r1 = lab.host("r1")
    lab.exec(lab.attacker, ["ip", "neigh", "flush", "all"])  # earlier tests may have filled the ARP cache
    watch = lab.popen(
        lab.attacker,
        [
            *python_command(),
            "-m",
            "dynapot",
            "watch",
            "--interface",
            "eth0",
            "--seconds",
            str(WATCH_SECONDS),
            "--db",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    added = False
    try:
        first = watch.stderr.readline()  # a new database is said first, then the capture starts
        assert first.startswith("created a new database: sqlite:")
        assert "listening on eth0" in watch.stderr.readline()
        targets = [
            f"{h.ip}:{port}"
            for h in lab.real_hosts
            for service, port in (("ssh", 22), ("http", 80), ("ftp", 21))
            if service in h.services
        ]
        talk = lab.exec(lab.attacker, [*python_command(), "-c", CLIENT, *targets], timeout=30)
        assert talk.returncode == 0, talk.stderr
        for real in lab.real_hosts:
            lab.exec(real, [*python_command(), "-c", CALL, str(lab.attacker.ip)], timeout=15)
        added = lab.exec(r1, ["ip", "addr", "add", f"{NEW_ADDRESS}/24", "dev", "eth0"]).returncode == 0
        assert added
        arping = lab.exec(
            r1, ["busybox", "arping", "-U", "-c", "1", "-I", "eth0", "-s", NEW_ADDRESS, NEW_ADDRESS]
        )
        assert arping.returncode == 0, arping.stderr
        out, err = watch.communicate(timeout=WATCH_SECONDS + 20)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
        if added:
            lab.exec(r1, ["ip", "addr", "del", f"{NEW_ADDRESS}/24", "dev", "eth0"])
    assert watch.returncode == 0, err

    database = open_database(url)
    try:
        with database.session() as session:
            hosts = {h.ip: h for h in session.scalars(select(Host).options(selectinload(Host.ports)))}
            guesses = {(g.host_id, g.tool): g for g in session.scalars(select(HostOsGuess))}
            for real in lab.real_hosts:
                host = hosts.get(str(real.ip))
                assert host is not None, f"{real.name} not seen; watch said:\n{out}"
                assert host.mac == real.mac
                assert (host.id, "p0f") in guesses, f"no p0f guess for {real.name}"
                ports = {p.port: p for p in host.ports}
                if "ssh" in real.services:
                    assert ports[22].tool == "passive" and ports[22].product == "OpenSSH"
                if "ftp" in real.services:
                    assert ports[21].product == "vsFTPd"
                if "http" in real.services:
                    assert ports[80].service == "http" and ports[80].product == "SimpleHTTP"
            # p0f knows the Windows look (TTL 128, no timestamps) from the Linux one.
            families = {real.name: hosts[str(real.ip)].os.family for real in lab.real_hosts}
            assert families["r1"] == "Linux", families
            new = hosts.get(NEW_ADDRESS)
            assert new is not None and new.tool == "arp", f"{NEW_ADDRESS} not marked used:\n{out}"
            assert new.mac == r1.mac
            assert ipaddress.IPv4Address(NEW_ADDRESS) in lab.network
    finally:
        database.dispose()
    assert f"service {lab.host('r1').ip} 22/tcp ssh OpenSSH" in out
