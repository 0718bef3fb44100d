"""The rest of honeyd's grammar: routes, tarpit, dynamic templates, delete, spoof, dhcp, include.

honeyd's own sample files (config.sample, config.ethernet, the regress configs,
honeyd.conf.networks, honeyd.conf.bloat, the Debian localhost config) use every construct
below; this file writes them again in the same shapes, with lab addresses and today's
nmap-os-db names, so that no third-party file is copied in.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynapot.cli import main
from dynapot.honeyd import HoneydConfigError, load_config, parse_config, render_config
from dynapot.honeyd.config import Condition, DynamicRule, RouteNet, Spoof, TimeOfDay, Tunnel
from dynapot.netstack.host import Verdict
from dynapot.netstack.types import IPPROTO_TCP
from dynapot.personality.osdb import load_osdb
from dynapot.sensor.config import build_sensor_config
from dynapot.sensor.hosts import PortActions, VirtualHost


def c_thread_ports(definition) -> tuple[int, ...]:
    """The ports the C receive thread would answer SYNs for (a tarpit port is never one)."""
    return VirtualHost.define(definition, b"secret").open_ports()


LINUX = "Linux 2.6.32"
WINDOWS = "Microsoft Windows XP Professional SP2"

NETWORKS = f"""
# a routed network behind one entry router, as honeyd.conf.networks builds it
route entry 198.18.0.1 network 198.18.0.0/16
route 198.18.0.1 link 198.18.0.0/24
route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1 latency 55ms loss 0.1
route 198.18.0.1 add net 198.18.2.0/24 198.18.2.1 latency 5ms bandwidth 1Mbps drop between 1000ms - 2000ms
route 198.18.0.1 add net 198.18.3.0/24 198.18.2.1 latency 20ms loss 0.1
route 198.18.1.1 link 198.18.1.0/24
route 198.18.2.1 link 198.18.2.0/25
route 198.18.2.1 add net 198.18.3.0/24 198.18.3.1 latency 10ms
route 198.18.2.1 unreach 198.18.2.128/25
route 198.18.3.1 link 198.18.3.0/24
route 198.18.3.1 add net 198.18.9.0/24 tunnel 198.18.3.1 198.18.200.1

create router
set router personality "{LINUX}"
set router default tcp action reset
add router tcp port 23 "sh scripts/router-telnet.pl"

create windows
set windows personality "{WINDOWS}"
set windows default tcp action reset
add windows tcp port 135 open
add windows tcp port 139 open
add windows tcp port 445 tarpit open
add windows tcp port 4444 tarpit "sh scripts/backdoor.sh"

create linux
set linux personality "{LINUX}"
set linux default tcp action reset
add linux tcp port 22 "ssh"
add linux tcp port 80 open
add linux tcp port 8080 open
delete linux tcp port 8080
set linux spoof from 198.18.0.7 to 198.18.0.8

create scratch
delete scratch

create anyone
set anyone personality random

dynamic magichost
add magichost use windows if source os = "windows"
add magichost use linux if source ip = 198.18.50.0/28
add magichost use router if time between 12:00am - 5:00am
add magichost use linux if time between "22:30:00" - "23:45:10"
add magichost use windows if udp
add magichost otherwise use linux

bind 198.18.0.1 router
bind 198.18.1.1 router
bind 198.18.2.1 router
bind 198.18.3.1 router
bind 198.18.1.10 windows
bind 198.18.3.20 linux
bind 198.18.0.30 magichost
bind 198.18.0.31 anyone
bind source ip = 198.18.60.1 198.18.0.40 windows
bind otherwise 198.18.0.40 linux
bind 198.18.0.50 to eth1
dhcp linux on eth1 ethernet "00:0c:29:12:34:56"
option tarpit x 1
list template
"""


def test_every_statement_of_the_samples_reads_into_the_model() -> None:
    config = parse_config(NETWORKS)
    topology = config.topology
    assert topology.entries == {"198.18.0.1": ipaddress.IPv4Network("198.18.0.0/16")}
    first = topology.routers["198.18.0.1"]
    assert first.links == [ipaddress.IPv4Network("198.18.0.0/24")]
    assert first.nets[0] == RouteNet(ipaddress.IPv4Network("198.18.1.0/24"), "198.18.1.1", 55, 0.1)
    assert first.nets[1] == RouteNet(
        ipaddress.IPv4Network("198.18.2.0/24"), "198.18.2.1", 5, 0.0, 1_000_000, (1000, 2000)
    )
    assert topology.routers["198.18.2.1"].unreachable == [ipaddress.IPv4Network("198.18.2.128/25")]
    assert topology.routers["198.18.3.1"].tunnels == [
        Tunnel(ipaddress.IPv4Network("198.18.9.0/24"), "198.18.3.1", "198.18.200.1")
    ]
    windows = config.templates["windows"]
    assert windows.ports["tcp", 445].tarpit and windows.ports["tcp", 445].kind == "open"
    assert windows.ports["tcp", 4444].kind == "command" and windows.ports["tcp", 4444].tarpit
    assert not windows.ports["tcp", 135].tarpit
    linux = config.templates["linux"]
    assert ("tcp", 8080) not in linux.ports and ("tcp", 80) in linux.ports
    assert linux.spoof == Spoof("198.18.0.7", "198.18.0.8")
    assert "scratch" not in config.templates
    assert config.templates["anyone"].random_personality
    assert config.templates["magichost"].dynamic == [
        DynamicRule("windows", Condition("os", "windows")),
        DynamicRule("linux", Condition("ip", "198.18.50.0/28")),
        # honeyd adds 12 hours for pm only: its 12:00am is noon, read the same here
        DynamicRule("router", Condition("time", between=(TimeOfDay(12, 0), TimeOfDay(5, 0)))),
        DynamicRule("linux", Condition("time", between=(TimeOfDay(22, 30), TimeOfDay(23, 45, 10)))),
        DynamicRule("windows", Condition("proto", "udp")),
        DynamicRule("linux"),
    ]
    assert config.templates["198.18.0.40"].dynamic == [
        DynamicRule("windows", Condition("ip", "198.18.60.1")),
        DynamicRule("linux"),
    ]
    assert config.interfaces == {"198.18.0.50": "eth1"}
    assert config.dhcp == {"linux": ("eth1", "00:0c:29:12:34:56")}
    assert config.options == [("tarpit", "x", "1")]
    noted = " ".join(note.text for note in config.notes)
    for what in ("tunnel", "spoof", "dhcp", "option", "interactive", "bind 198.18.0.50 to eth1"):
        assert what in noted


def test_the_whole_grammar_renders_and_reads_back_equal() -> None:
    config = parse_config(NETWORKS)
    assert parse_config(render_config(config)) == config


def test_honeyd_quirks_are_read_as_honeyd_reads_them() -> None:
    # A word glued to a quoted string is two tokens; a network with host bits set is masked.
    config = parse_config('create a\nadd a tcp port 111"sh rpc.sh"\nroute 198.18.0.1 link 198.18.0.9/24\n')
    assert config.templates["a"].ports["tcp", 111].target == "sh rpc.sh"
    assert config.topology.routers["198.18.0.1"].links == [ipaddress.IPv4Network("198.18.0.0/24")]
    assert "host bits set" in config.notes[0].text
    # drop between without a bandwidth: ignored with a warning, as honeyd does
    net = parse_config("route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1 drop between 1ms - 2ms\n")
    assert net.topology.routers["198.18.0.1"].nets[0].drop_between is None and net.notes


def test_include_reads_relative_files_and_names_them_in_errors(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "templates.conf").write_text(f'create web\nset web personality "{LINUX}"\n')
    (tmp_path / "main.conf").write_text("include sub/templates.conf\nbind 198.18.0.5 web\n")
    config = load_config(tmp_path / "main.conf")
    assert config.binds == {"198.18.0.5": "web"}

    (tmp_path / "sub" / "bad.conf").write_text("create web\nadd web tcp port 99999 open\n")
    (tmp_path / "main.conf").write_text("include sub/bad.conf\n")
    with pytest.raises(HoneydConfigError) as info:
        load_config(tmp_path / "main.conf")
    assert info.value.source == str(tmp_path / "sub" / "bad.conf") and info.value.line == 2

    (tmp_path / "loop.conf").write_text("include loop.conf\n")
    with pytest.raises(HoneydConfigError, match="nested more than 10 deep"):
        load_config(tmp_path / "loop.conf")
    (tmp_path / "main.conf").write_text("include missing.conf\n")
    with pytest.raises(HoneydConfigError, match="cannot read"):
        load_config(tmp_path / "main.conf")


def test_the_sensor_answers_every_bound_address_and_says_what_it_does_not_do(catalog) -> None:
    fingerprints = load_osdb(Path("/usr/share/nmap/nmap-os-db"))
    config = parse_config(NETWORKS)
    sensor = build_sensor_config(config, NETWORKS, fingerprints=fingerprints, mac_vendors=catalog.mac_vendors)
    by_address = {host.address: host for host in sensor.hosts.values()}
    assert set(by_address) == set(config.binds)
    # a dynamic template: its `otherwise` template by default, the others on their conditions
    # (in order, up to `otherwise`) on the same address (tests/unit/test_sensor_dynamic.py)
    dynamic = by_address["198.18.0.30"]
    assert dynamic.personality.name == LINUX and 22 in dynamic.tcp
    assert [(c.kind, v.template) for c, v in dynamic.variants] == [
        ("os", "windows"),
        ("ip", "linux"),
        ("time", "router"),
        ("time", "linux"),
        ("proto", "windows"),
    ]
    assert by_address["198.18.0.40"].personality.name == LINUX
    # `personality random`: one fingerprint per address, the same at every load
    again = build_sensor_config(config, NETWORKS, fingerprints=fingerprints, mac_vendors=catalog.mac_vendors)
    chosen = by_address["198.18.0.31"].personality
    assert (
        chosen is not None
        and chosen.name == {h.address: h for h in again.hosts.values()}["198.18.0.31"].personality.name
    )
    windows = by_address["198.18.1.10"]
    assert PortActions(windows)(IPPROTO_TCP, 445) is Verdict.TARPIT and 445 not in c_thread_ports(windows)
    assert PortActions(windows)(IPPROTO_TCP, 135) is Verdict.OPEN
    notes = " ".join(sensor.notes)
    assert "GRE tunnels are not built" in notes and "dynamic template" not in notes


def test_honeyd_check_accepts_a_good_file_and_prints_its_notes(tmp_path: Path, catalog) -> None:
    path = tmp_path / "honeyd.conf"
    path.write_text(NETWORKS)
    result = CliRunner().invoke(main, ["honeyd-check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid; 5 templates" in result.output and "9 addresses bound, 4 routers" in result.output
    assert "note: " in result.output and "tunnel" in result.output


def test_honeyd_check_reads_honeyds_first_generation_names_as_todays_and_says_so(
    tmp_path: Path, catalog
) -> None:
    # honeyd's own config.ethernet and config.localhost name personalities from nmap.prints
    path = tmp_path / "honeyd.conf"
    path.write_text(
        'create a\nset a personality "Linux 2.4.7 (X86)"\n'
        'create r\nset r personality "Cisco 7206 running IOS 11.1(24)"\n'
        "bind 198.18.0.2 a\nbind 198.18.0.3 r\n"
    )
    result = CliRunner().invoke(main, ["honeyd-check", str(path)])
    assert result.exit_code == 0, result.output
    assert "'Linux 2.4.7 (X86)' is not in nmap-os-db" in result.output
    assert "answering as 'Linux 2.4.7'" in result.output
    assert "answering as 'Cisco 2500 router (IOS 11.1)'" in result.output


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            'create a\nset a personality "Frobnitz OS 1.0"\nbind 198.18.0.2 a\n',
            1,
            "is not in the installed nmap-os-db",
        ),
        ("route 198.18.0.1 add net 198.18.1.0/24 198.18.1.1 latency 5\n", 1, "line ends too soon"),
        ("dynamic d\nbind 198.18.0.2 d\n", 2, "uses no template"),
    ],
)
def test_honeyd_check_refuses_a_bad_file_with_its_line(
    tmp_path: Path, text: str, line: int, reason: str, catalog
) -> None:
    path = tmp_path / "honeyd.conf"
    path.write_text(text)
    result = CliRunner().invoke(main, ["honeyd-check", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}:" in result.output and reason in result.output
    assert "Traceback" not in result.output
