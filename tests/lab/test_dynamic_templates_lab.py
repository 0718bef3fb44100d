"""honeyd's dynamic templates on a real wire: one address, a different machine per source.

The attacker's address is given the Windows template, every other source the Linux one
(`otherwise`): ping's TTL and the open ports each source sees differ, from the same address.
"""

from __future__ import annotations

import re

import pytest

from dynapot.lab.sensor import running_sensor

pytestmark = pytest.mark.lab

VIP = "198.18.0.160"


def config(attacker_ip: str) -> str:
    return f"""
create windows
set windows personality "Microsoft Windows XP Professional SP2"
set windows default tcp action reset
add windows tcp port 445 open
create linux
set linux personality "Linux 5.4"
set linux default tcp action reset
add linux tcp port 22 open
dynamic magic
add magic use windows if source ip = {attacker_ip}
add magic otherwise use linux
bind {VIP} magic
"""


def view(lab, host) -> tuple[list[str], list[str]]:
    """What `host` sees of VIP: ping's TTLs and the open ports of 22 and 445."""
    ping = lab.exec(host, ["ping", "-n", "-c", "2", "-i", "0.3", "-W", "3", VIP], timeout=30)
    scan = lab.exec(host, ["nmap", "-n", "-Pn", "-p", "22,445", VIP], timeout=120)
    return re.findall(r"ttl=(\d+)", ping.stdout), re.findall(r"(\d+)/tcp\s+open", scan.stdout)


def test_each_source_meets_the_machine_its_condition_chooses(lab, tmp_path):
    other = lab.real_hosts[0]
    with running_sensor(lab, config(str(lab.attacker.ip)), tmp_path, database=False):
        assert view(lab, lab.attacker) == (["128", "128"], ["445"])  # Windows XP for the attacker
        assert view(lab, other) == (["64", "64"], ["22"])  # Linux for everyone else
