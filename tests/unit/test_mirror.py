"""Issue 16's example, end to end: an nmap scan of 2 Windows NT 4.0 and 3 Red Hat 8 hosts.

The scan is nmap 7.93's XML, with nmap's own osmatch, osclass and CPE for "Microsoft Windows
NT 4.0 SP5 - SP6" (a name older nmap-os-db files had; today's has "SP5 - SP6a") and "Linux
2.4.18-14 (Red Hat 8)"; it goes through `dynapot import-nmap` into a real database, and
`dynapot plan` fills the network. Every decoy must wear a fingerprint of its real hosts'
generation, in the ratio of the original design.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from dynapot.cli import main

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -n -sV -O -oX - 198.18.0.0/24" start="{t0}" version="7.93"
 xmloutputversion="1.05">
"""
TAIL = """<runstats><finished time="{t0}" timestr="x" summary="x" elapsed="60" exit="success"/>
<hosts up="5" down="0" total="5"/></runstats>
</nmaprun>
"""
NT_OS = """<os><portused state="open" proto="tcp" portid="139"/>
<osmatch name="Microsoft Windows NT 4.0 SP5 - SP6" accuracy="100" line="58211">
<osclass type="general purpose" vendor="Microsoft" osfamily="Windows" osgen="NT" accuracy="100">
<cpe>cpe:/o:microsoft:windows_nt:4.0</cpe></osclass>
</osmatch></os>"""
REDHAT_OS = """<os><portused state="open" proto="tcp" portid="22"/>
<osmatch name="Linux 2.4.18-14 (Red Hat 8)" accuracy="100" line="45233">
<osclass type="general purpose" vendor="Linux" osfamily="Linux" osgen="2.4.X" accuracy="100">
<cpe>cpe:/o:linux:linux_kernel:2.4.18-14</cpe></osclass>
</osmatch></os>"""


def port(number: int, name: str, product: str = "", version: str = "", ttl: int = 128) -> str:
    return (
        f'<port protocol="tcp" portid="{number}"><state state="open" reason="syn-ack" reason_ttl="{ttl}"/>'
        f'<service name="{name}" product="{product}" version="{version}" method="probed" conf="10"/></port>'
    )


def host(ip: str, ports: list[str], os: str) -> str:
    return (
        f'<host starttime="{{t0}}" endtime="{{t0}}"><status state="up" reason="arp-response" reason_ttl="0"/>'
        f'<address addr="{ip}" addrtype="ipv4"/><hostnames/><ports>{"".join(ports)}</ports>{os}'
        '<distance value="1"/></host>\n'
    )


NT_HOSTS = [
    host(
        "198.18.0.10",
        [
            port(21, "ftp", "Microsoft ftpd"),
            port(80, "http", "Microsoft IIS httpd", "4.0"),
            port(135, "msrpc", "Microsoft Windows RPC"),
            port(139, "netbios-ssn", "Microsoft Windows netbios-ssn"),
        ],
        NT_OS,
    ),
    host("198.18.0.11", [port(135, "msrpc", "Microsoft Windows RPC"), port(139, "netbios-ssn")], NT_OS),
]
SSH = port(22, "ssh", "OpenSSH", "3.4p1", 64)
REDHAT_HOSTS = [
    host("198.18.0.20", [SSH, port(80, "http", "Apache httpd", "2.0.40", 64)], REDHAT_OS),
    host("198.18.0.21", [port(21, "ftp", "vsftpd", "1.1.0", 64), SSH], REDHAT_OS),
    host("198.18.0.22", [SSH, port(25, "smtp", "Sendmail", "8.12.5", 64)], REDHAT_OS),
]


@pytest.fixture
def scanned(tmp_path):
    """The five hosts imported into a new SQLite database, seen just now; returns a CLI runner."""
    url = f"sqlite:///{tmp_path / 'dynapot.db'}"
    scan = tmp_path / "scan.xml"
    scan.write_text((HEAD + "".join(NT_HOSTS + REDHAT_HOSTS) + TAIL).replace("{t0}", str(int(time.time()))))

    def run(*args: str):
        result = CliRunner().invoke(main, [*args, "--db", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("import-nmap", str(scan))
    return run


def nt_40(catalog, name: str) -> bool:
    """Whether nmap-os-db files `name` under Windows NT 4.0: the NT class with an NT 4.0 CPE."""
    return any(
        (e.cls.vendor, e.cls.family, e.cls.generation) == ("Microsoft", "Windows", "NT")
        and any(c.startswith("cpe:/o:microsoft:windows_nt:4.0") for c in e.cls.cpe)
        for e in catalog._entries[name]
    )


def linux_24(catalog, name: str) -> bool:
    return any((e.cls.family, e.cls.generation) == ("Linux", "2.4.X") for e in catalog._entries[name])


def test_every_decoy_wears_its_real_hosts_generation(scanned, catalog):
    plan = json.loads(
        scanned("plan", "--network", "198.18.0.0/24", "--gateway", "198.18.0.1", "--json").stdout
    )
    hosts = plan["virtual_hosts"]
    assert len(hosts) == 248 and plan["warnings"] == [] and plan["left_out"] == []
    assert plan["quotas"] == {"Linux 2.4.X": 149, "Windows NT": 99}  # 3:2
    for vh in hosts:
        assert vh["personality"] in catalog.names
        if vh["os"] == "Windows NT":
            assert nt_40(catalog, vh["personality"]), vh["personality"]
        else:
            assert linux_24(catalog, vh["personality"]), vh["personality"]
    # Each real host's port set and nmap -sV products, in the same proportions: ~50 copies each.
    copies = Counter(tuple((s["port"], s["product"]) for s in vh["services"]) for vh in hosts)
    assert sorted(copies.values()) == [49, 49, 50, 50, 50]
    assert copies[((22, "OpenSSH"), (25, "Sendmail"))] in (49, 50)


def test_the_ratio_rule_still_holds_exactly(scanned, catalog):
    """The original design's figures: 5 addresses used, 10 free -> 4 virtual NT and 6 virtual Red Hat."""
    network = [
        "--network",
        "198.18.0.0/27",
        "--exclude",
        "198.18.0.1-198.18.0.7",
        "--exclude",
        "198.18.0.23-198.18.0.30",
    ]
    plan = json.loads(scanned("plan", *network, "--json").stdout)
    assert plan["real_hosts"] == 5 and plan["free_ips"] == 10
    assert Counter(vh["os"] for vh in plan["virtual_hosts"]) == {"Windows NT": 4, "Linux 2.4.X": 6}
    assert all(nt_40(catalog, vh["personality"]) for vh in plan["virtual_hosts"] if vh["os"] == "Windows NT")


def test_plan_explain_says_per_decoy_what_it_mirrors_and_why(scanned):
    lines = scanned(
        "plan", "--network", "198.18.0.0/24", "--gateway", "198.18.0.1", "--explain"
    ).stdout.splitlines()
    decoys = [line for line in lines if line.startswith("198.18.0.")]
    assert len(decoys) == 248
    nt = next(line for line in decoys if "Windows NT 4.0" in line.split("<-")[0])
    assert (
        "<- mirrors the OS of 198.18.0.10, 198.18.0.11 (nmap 100%: Microsoft Windows NT 4.0 SP5 - SP6)" in nt
    )
    assert "Microsoft | Windows | NT | general purpose, cpe:/o:microsoft:windows_nt:4.0" in nt
    assert "same generation: nmap-os-db has no fingerprint named 'Microsoft Windows NT 4.0 SP5 - SP6'" in nt
    redhat = next(line for line in decoys if "Red Hat 8" in line.split("<-")[0])
    assert "mirrors the OS of 198.18.0.20, 198.18.0.21, 198.18.0.22 (nmap 100%: Linux 2.4.18-14" in redhat
    assert "cpe:/o:linux:linux_kernel:2.4.18-14" in redhat and "nmap-os-db has" in redhat
