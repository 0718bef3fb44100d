"""Issue 2's end-to-end check: the real nmap scans the lab, dynapot stores it and plans honeypots.

Everything runs through the real `dynapot` command, the scan inside the lab's attacker
namespace, against SQLite and against PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections import Counter

import pytest

from dynapot.honeyd import parse_config
from dynapot.processes import python_command

pytestmark = pytest.mark.lab

PORTS = "21,22,23,80,443,445"
SERVICE_PORTS = {"ssh": 22, "http": 80, "ftp": 21}


def dynapot(*args: str, netns: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [*python_command(), "-m", "dynapot", *args]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scanned(request, lab, tmp_path_factory):
    """The lab scanned once per database kind by the real nmap (normal mode)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scan') / 'dynapot.db'}"
    else:
        url = request.getfixturevalue("new_pg_database")()
    dynapot("scan", str(lab.network), "--ports", PORTS, "-N", "8", "--db", url, netns=lab.attacker.netns)
    return url


def test_nmap_finds_the_lab_hosts_and_their_services(lab, scanned):
    hosts = {h["ip"]: h for h in json.loads(dynapot("hosts", "--json", "--db", scanned).stdout)}
    for real in lab.real_hosts:
        assert str(real.ip) in hosts, f"{real.name} ({real.ip}) not found by the scan"
        open_ports = {p["port"] for p in hosts[str(real.ip)]["ports"] if p["state"] == "open"}
        assert open_ports == {SERVICE_PORTS[s] for s in real.services}
        assert hosts[str(real.ip)]["tool"] == "nmap"
        assert hosts[str(real.ip)]["virtual"] is False
    # Service detection names the real products.
    products = {p["product"] for h in hosts.values() for p in h["ports"] if p["product"]}
    assert any("OpenSSH" in p for p in products)
    assert any("vsftpd" in p for p in products)
    # OS detection gave the hosts an OS group with nmap's accuracy as the reliability.
    for real in lab.real_hosts:
        assert hosts[str(real.ip)]["os"], f"no OS for {real.ip}"
        assert 0 < hosts[str(real.ip)]["reliability"] <= 100


def test_plan_fills_every_free_address_in_the_real_os_ratio(lab, scanned):
    plan = json.loads(
        dynapot(
            "plan", "--network", str(lab.network), "--gateway", str(lab.gateway), "--json", "--db", scanned
        ).stdout
    )
    hosts = json.loads(dynapot("hosts", "--json", "--db", scanned).stdout)
    real_ips = {h["ip"] for h in hosts if not h["virtual"]}
    virtual = plan["virtual_hosts"]
    network = lab.network
    usable = network.num_addresses - 2 - 1  # network, broadcast, gateway
    assert plan["real_hosts"] == len(real_ips)
    assert plan["free_ips"] == usable - len(real_ips)
    assert len(virtual) == plan["free_ips"]  # by default every free address is filled
    ips = {vh["ip"] for vh in virtual}
    assert not ips & real_ips
    assert str(lab.gateway) not in ips
    assert all(ipaddress.IPv4Address(ip) in network for ip in ips)

    # Every real host counts in one OS group or is left out, said so; the lab's real hosts, which
    # nmap names, count in their own group; the sensor's and attacker's namespaces (no open port,
    # no OS nmap can name) count by their TTL in a Linux group, or are left out: never as "unknown".
    assert set(plan["groups"]) | set(plan["left_out"]) == real_ips
    assert not set(plan["groups"]) & set(plan["left_out"])
    by_ip = {h["ip"]: h for h in hosts}
    for real in lab.real_hosts:
        assert plan["groups"][str(real.ip)] == by_ip[str(real.ip)]["os"]
    for other in (lab.sensor, lab.attacker):
        assert str(other.ip) in plan["left_out"] or plan["groups"][str(other.ip)].startswith("Linux")
    real_mix = Counter(plan["groups"].values())
    virtual_mix = Counter(vh["os"] for vh in virtual)
    assert set(virtual_mix) <= set(real_mix)
    total_real = sum(real_mix.values())
    for group, count in real_mix.items():
        share = count * len(virtual) / total_real
        assert int(share) <= virtual_mix[group] <= int(share) + 1, (group, real_mix, virtual_mix)
    # No decoy without a personality, and each says why it wears it.
    assert all(vh["personality"] and vh["why"] for vh in virtual)
    assert len({vh["mac"] for vh in virtual}) == len(virtual)


# Runs last in the module: --apply records a deployment in the shared database.
def test_honeyd_config_of_the_lab_plan_parses(lab, scanned, tmp_path):
    out = tmp_path / "honeyd.conf"
    dynapot(
        "honeyd-config",
        "--network",
        str(lab.network),
        "--gateway",
        str(lab.gateway),
        "--apply",
        "-o",
        str(out),
        "--db",
        scanned,
    )
    config = parse_config(out.read_text(), source=str(out))
    replan = ["plan", "--network", str(lab.network), "--gateway", str(lab.gateway), "--json", "--db", scanned]
    plan = json.loads(dynapot(*replan).stdout)
    # --apply stored the deployment: the next plan keeps every host where it is.
    assert plan["added"] == [] and plan["removed"] == []
    assert set(config.binds) == {vh["ip"] for vh in plan["virtual_hosts"]}
    for vh in plan["virtual_hosts"]:
        template = config.template_for(vh["ip"])
        assert template is not None
        base = config.templates[template.base] if template.base else template
        assert base.personality == vh["personality"]
        assert template.ethernet == vh["mac"]
    # The services say what nmap -sV found on the real hosts they copy (the lab runs OpenSSH, vsftpd).
    ssh = [t.ports[("tcp", 22)] for t in config.templates.values() if ("tcp", 22) in t.ports]
    ftp = [t.ports[("tcp", 21)] for t in config.templates.values() if ("tcp", 21) in t.ports]
    assert ssh and all(a.kind == "service" and a.target == "ssh" and a.product == "OpenSSH" for a in ssh)
    assert all(a.version for a in ssh)
    assert ftp and all(a.target == "ftp" and a.product == "vsftpd" for a in ftp)
