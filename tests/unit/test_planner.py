import ipaddress
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynapot.personality.catalog import GroupDescription
from dynapot.planner import (
    NetworkPicture,
    OpenPort,
    Policy,
    RealHost,
    free_addresses,
    largest_remainder,
    plan,
)

NET = ipaddress.IPv4Network("198.18.0.0/28")  # 14 usable addresses
NT = GroupDescription("Windows NT")
REDHAT = GroupDescription("Red Hat Linux")
SCRIPTS = {("tcp", "ssh"): "ssh", ("tcp", "http"): "http", ("tcp", "microsoft-ds"): "smb"}


def ip(n: int) -> str:
    return str(NET.network_address + n)


def picture(real: list[RealHost], free: list[str], network=NET) -> NetworkPicture:
    return NetworkPicture(network, tuple(real), tuple(free))


def paper_network() -> tuple[list[RealHost], list[str]]:
    """The original design's example: 2 Windows NT and 3 Red Hat hosts, 10 free addresses."""
    real = [
        RealHost(
            ip(1), NT, open_ports=(OpenPort("tcp", 139, "netbios-ssn"), OpenPort("tcp", 445, "microsoft-ds"))
        ),
        RealHost(ip(2), NT, open_ports=(OpenPort("tcp", 80, "http"),)),
        RealHost(ip(3), REDHAT, open_ports=(OpenPort("tcp", 22, "ssh"),)),
        RealHost(ip(4), REDHAT, open_ports=(OpenPort("tcp", 22, "ssh"), OpenPort("tcp", 80, "http"))),
        RealHost(ip(5), REDHAT, open_ports=(OpenPort("tcp", 21, "ftp"),)),
    ]
    free = [ip(n) for n in range(6, 16)]
    return real, free


def test_paper_example_two_nt_three_redhat_ten_free_gives_four_and_six(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    mix = Counter(vh.os for vh in result.virtual_hosts)
    assert mix == {"Windows NT": 4, "Red Hat Linux": 6}
    assert result.real_hosts == 5 and result.free_ips == 10
    for vh in result.virtual_hosts:
        assert vh.personality in catalog.names
        expected = "Windows NT" if vh.os == "Windows NT" else "Red Hat"
        assert expected in vh.personality
    assert {vh.ip for vh in result.virtual_hosts} == set(free)


def test_services_copy_a_real_host_of_the_same_group(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    by_group: dict[str, set[frozenset]] = {}
    for host in real:
        by_group.setdefault(host.group.name, set()).add(frozenset((p.proto, p.port) for p in host.open_ports))
    for vh in result.virtual_hosts:
        assert frozenset((s.proto, s.port) for s in vh.services) in by_group[vh.os]
        for spec in vh.services:
            # known services get their emulator, the rest are plain open ports
            assert spec.service == {22: "ssh", 80: "http", 445: "smb"}.get(spec.port, "open")


def test_macs_are_unique_and_have_a_vendor_prefix(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(), [], catalog)
    macs = [vh.mac for vh in result.virtual_hosts]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        assert catalog.mac_vendors.vendor_of(mac) is not None


def test_real_hosts_oui_is_reused(catalog):
    real, free = paper_network()
    real[0] = RealHost(ip(1), NT, mac="00:50:56:aa:bb:cc")  # a VMware NIC
    real[1] = RealHost(ip(2), NT, mac="00:50:56:aa:bb:cd")
    result = plan(picture(real, free), Policy(), [], catalog)
    for vh in result.virtual_hosts:
        if vh.os == "Windows NT":
            assert vh.mac.startswith("00:50:56:")


def test_replanning_the_same_picture_changes_nothing(catalog):
    real, free = paper_network()
    first = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    second = plan(picture(real, free), Policy(service_scripts=SCRIPTS), first.virtual_hosts, catalog)
    assert second.virtual_hosts == first.virtual_hosts
    assert (second.added, second.removed, second.changed) == ((), (), ())


def test_a_real_host_taking_a_virtual_address_moves_only_that_host(catalog):
    real, free = paper_network()
    first = plan(picture(real, free), Policy(), [], catalog)
    taken = first.virtual_hosts[0]
    # A new Red Hat machine appears on an address a honeypot held.
    real.append(RealHost(taken.ip, REDHAT))
    free.remove(taken.ip)
    second = plan(picture(real, free), Policy(), first.virtual_hosts, catalog)
    assert taken.ip in second.removed
    assert taken.ip not in {vh.ip for vh in second.virtual_hosts}
    before = {vh.ip: vh for vh in first.virtual_hosts}
    unchanged = [vh for vh in second.virtual_hosts if before.get(vh.ip) == vh]
    # 9 free addresses for 6 real hosts (2 NT, 4 RH) → 3 + 6; at most the quota shift moves hosts.
    assert Counter(vh.os for vh in second.virtual_hosts) == {"Windows NT": 3, "Red Hat Linux": 6}
    assert len(unchanged) >= 8


def test_fill_ratio_caps_the_share_filled(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(fill_ratio=0.5), [], catalog)
    assert len(result.virtual_hosts) == 5
    assert Counter(vh.os for vh in result.virtual_hosts) == {"Windows NT": 2, "Red Hat Linux": 3}


def test_unknown_os_is_its_own_group_or_left_out(catalog):
    real, free = paper_network()
    real.append(RealHost("198.18.0.16", None, open_ports=(OpenPort("tcp", 23, "telnet"),)))
    grouped = plan(picture(real, free), Policy(unknown_os="group"), [], catalog)
    assert "unknown" in grouped.quotas and grouped.quotas["unknown"] >= 1
    assert all(vh.personality is None for vh in grouped.virtual_hosts if vh.os == "unknown")
    excluded = plan(picture(real, free), Policy(unknown_os="exclude"), [], catalog)
    assert "unknown" not in excluded.quotas
    assert Counter(vh.os for vh in excluded.virtual_hosts) == {"Windows NT": 4, "Red Hat Linux": 6}


def test_group_without_fingerprint_is_left_out_with_a_warning(catalog):
    real, free = paper_network()
    real.append(RealHost("198.18.0.16", GroupDescription("Zzyzx Quantum OS 9000")))
    result = plan(picture(real, free), Policy(), [], catalog)
    assert any("Zzyzx" in w for w in result.warnings)
    assert "Zzyzx Quantum OS 9000" not in result.quotas


def test_exact_nmap_match_names_are_used_as_personalities(catalog):
    name = "Linux 2.6.32"
    assert name in catalog.names
    group = GroupDescription("Linux 2.6.X", "Linux", "Linux", "2.6.X", "general purpose", (name,))
    real = [RealHost(ip(1), group)]
    result = plan(picture(real, [ip(n) for n in range(2, 8)]), Policy(), [], catalog)
    assert {vh.personality for vh in result.virtual_hosts} == {name}


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 50), min_size=1), st.integers(0, 500))
def test_largest_remainder_is_fair_and_complete(counts, seats):
    quotas = largest_remainder(counts, seats)
    total = sum(counts.values())
    if total == 0:
        assert all(q == 0 for q in quotas.values())
        return
    assert sum(quotas.values()) == seats
    for name, count in counts.items():
        exact = count * seats / total
        assert int(exact) <= quotas[name] <= int(exact) + 1


@given(
    st.sets(st.integers(0, 255), max_size=60),
    st.sets(st.integers(0, 255), max_size=20),
)
def test_never_plans_on_a_used_or_reserved_address(used, excluded_points):
    net = ipaddress.IPv4Network("198.18.1.0/24")
    base = int(net.network_address)
    gateway = net.network_address + 1
    free = free_addresses(
        net,
        [base + u for u in used],
        gateway=gateway,
        excluded=[(base + e, base + e) for e in excluded_points],
    )
    forbidden = (
        {base, base + 255, int(gateway)} | {base + u for u in used} | {base + e for e in excluded_points}
    )
    assert not set(free) & forbidden
    assert len(free) == 256 - len(forbidden)


def test_free_addresses_of_tiny_networks():
    assert free_addresses(ipaddress.IPv4Network("198.18.0.0/31"), []) == [0xC6120000, 0xC6120001]
    assert free_addresses(ipaddress.IPv4Network("198.18.0.4/32"), [0xC6120004]) == []


def test_virtual_hosts_are_only_on_free_addresses(catalog):
    real, free = paper_network()
    result = plan(picture(real, free[:4]), Policy(), [], catalog)
    assert {vh.ip for vh in result.virtual_hosts} <= set(free[:4])
    assert not {vh.ip for vh in result.virtual_hosts} & {h.ip for h in real}


@pytest.mark.parametrize("seats", [0, 1, 3])
def test_small_counts(catalog, seats):
    real, free = paper_network()
    result = plan(picture(real, free[:seats]), Policy(), [], catalog)
    assert len(result.virtual_hosts) == seats
