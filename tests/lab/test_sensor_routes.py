"""honeyd's routed networks on a real wire: traceroute and ping from the attacker see the routers.

The attacker reaches the routed networks through the entry router, a virtual host on the lab's
link, as the real network's router would send them to a honeyd: a route in the attacker's
namespace, removed after the test whatever happens.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

ENTRY = "198.18.0.150"
HOST = "198.18.11.20"
CONFIG = f"""
route entry {ENTRY} network 198.18.10.0/23
route {ENTRY} add net 198.18.10.0/24 198.18.10.1 latency 20ms
route {ENTRY} add net 198.18.11.0/24 198.18.10.1 latency 20ms
route 198.18.10.1 link 198.18.10.0/24
route 198.18.10.1 add net 198.18.11.0/24 198.18.11.1 latency 30ms
route 198.18.11.1 link 198.18.11.0/24

create router
set router personality "Cisco 2811 router (IOS 12.X)"
create linux
set linux personality "Linux 5.4"
set linux default udp action closed
add linux tcp port 80 open
bind {ENTRY} router
bind 198.18.10.1 router
bind 198.18.11.1 router
bind {HOST} linux
"""


def attacker(lab, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lab.exec(lab.attacker, list(argv), timeout=timeout)


@pytest.fixture
def routed(lab):
    """The attacker's route to the routed networks, through the entry router."""
    attacker(lab, "ip", "route", "add", "198.18.10.0/23", "via", ENTRY)
    try:
        yield
    finally:
        attacker(lab, "ip", "route", "del", "198.18.10.0/23", "via", ENTRY)


def test_traceroute_and_ping_see_the_routers_between(lab, routed, tmp_path):
    with running_sensor(lab, CONFIG, tmp_path):
        trace = attacker(lab, "busybox", "traceroute", "-n", "-q", "1", "-w", "2", "-m", "6", HOST)
        hops = re.findall(r"^\s*\d+\s+(\d+\.\d+\.\d+\.\d+)", trace.stdout, re.MULTILINE)
        assert hops == [ENTRY, "198.18.10.1", "198.18.11.1", HOST], trace.stdout + trace.stderr
        ping = attacker(lab, "ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", HOST)
        assert ping.returncode == 0, ping.stdout
        # three routers lower Linux's 64; two links of 20 and 30 ms, crossed both ways
        assert re.findall(r"ttl=(\d+)", ping.stdout) == ["61"] * 3
        rtts = [float(ms) for ms in re.findall(r"time=([\d.]+) ms", ping.stdout)]
        assert min(rtts) >= 100.0, ping.stdout
        # the entry router itself is one machine on the link: no hop, no added latency
        entry = attacker(lab, "ping", "-n", "-c", "1", "-W", "3", ENTRY)
        assert "ttl=255" in entry.stdout, entry.stdout
