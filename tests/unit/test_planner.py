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
    VirtualHost,
    free_addresses,
    largest_remainder,
    plan,
)

NET = ipaddress.IPv4Network("198.18.0.0/28")  # 14 usable addresses
# What nmap says of the original design's example hosts: its osmatch, osclass and CPE.
NT = GroupDescription(
    "Windows NT",
    "Microsoft",
    "Windows",
    "NT",
    "general purpose",
    ("Microsoft Windows NT 4.0 SP5 - SP6",),
    ("cpe:/o:microsoft:windows_nt:4.0",),
    "nmap 100%",
)
REDHAT = GroupDescription(
    "Linux 2.4.X",
    "Linux",
    "Linux",
    "2.4.X",
    "general purpose",
    ("Linux 2.4.18-14 (Red Hat 8)",),
    ("cpe:/o:linux:linux_kernel:2.4.18-14",),
    "nmap 100%",
)
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
        RealHost(ip(2), NT, open_ports=(OpenPort("tcp", 80, "http", "Microsoft IIS httpd", "4.0"),)),
        RealHost(ip(3), REDHAT, open_ports=(OpenPort("tcp", 22, "ssh", "OpenSSH", "3.4p1"),)),
        RealHost(ip(4), REDHAT, open_ports=(OpenPort("tcp", 22, "ssh"), OpenPort("tcp", 80, "http"))),
        RealHost(ip(5), REDHAT, open_ports=(OpenPort("tcp", 21, "ftp"),)),
    ]
    free = [ip(n) for n in range(6, 16)]
    return real, free


def classes(catalog, name):
    return [
        (c.vendor, c.family, c.generation, c.device_type) for e in catalog._entries[name] for c in [e.cls]
    ]


def test_paper_example_two_nt_three_redhat_ten_free_gives_four_and_six(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    mix = Counter(vh.os for vh in result.virtual_hosts)
    assert mix == {"Windows NT": 4, "Linux 2.4.X": 6}
    assert result.real_hosts == 5 and result.free_ips == 10
    assert {vh.ip for vh in result.virtual_hosts} == set(free)
    for vh in result.virtual_hosts:
        # NT 4.0 decoys wear NT 4.0 fingerprints (nmap-os-db's NT class holds NT 3.1 to 4.0: the CPE
        # tells them apart); Red Hat 8 decoys wear nmap's own match.
        if vh.os == "Windows NT":
            assert ("Microsoft", "Windows", "NT", "general purpose") in classes(catalog, vh.personality)
            assert "NT 4.0" in vh.personality
        else:
            assert vh.personality == "Linux 2.4.18-14 (Red Hat 8)"


def test_services_copy_the_real_hosts_of_the_group_in_proportion(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    by_host = {h.ip: frozenset((p.proto, p.port) for p in h.open_ports) for h in real}
    copies = Counter()
    for vh in result.virtual_hosts:
        ports = frozenset((s.proto, s.port) for s in vh.services)
        (copied,) = [h.ip for h in real if by_host[h.ip] == ports and h.group.name == vh.os]
        copies[copied] += 1
        for spec in vh.services:
            # known services get their emulator, the rest are plain open ports
            assert spec.service == {22: "ssh", 80: "http", 445: "smb"}.get(spec.port, "open")
    # 4 NT decoys for 2 NT hosts, 6 Red Hat decoys for 3 Red Hat hosts: two copies of each.
    assert copies == dict.fromkeys(by_host, 2)
    iis = [s for vh in result.virtual_hosts for s in vh.services if s.port == 80 and vh.os == "Windows NT"]
    assert {(s.product, s.version) for s in iis} == {("Microsoft IIS httpd", "4.0")}  # nmap -sV's words


def test_several_exact_matches_are_worn_in_the_real_hosts_proportions(catalog):
    redhat72 = GroupDescription(
        "Linux 2.4.X",
        "Linux",
        "Linux",
        "2.4.X",
        "general purpose",
        ("Linux 2.4.20 (Red Hat 7.2)",),
        ("cpe:/o:linux:linux_kernel:2.4.20",),
    )
    real = [RealHost(ip(1), REDHAT), RealHost(ip(2), REDHAT), RealHost(ip(3), redhat72)]
    result = plan(picture(real, [ip(n) for n in range(4, 13)]), Policy(), [], catalog)
    assert Counter(vh.personality for vh in result.virtual_hosts) == {
        "Linux 2.4.18-14 (Red Hat 8)": 6,
        "Linux 2.4.20 (Red Hat 7.2)": 3,
    }


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
    # 9 free addresses for 6 real hosts (2 NT, 4 RH) -> 3 + 6; at most the quota shift moves hosts.
    assert Counter(vh.os for vh in second.virtual_hosts) == {"Windows NT": 3, "Linux 2.4.X": 6}
    moved = set(second.added) | set(second.removed)
    assert len(moved) <= 3
    # The others stay where they were, with the same MAC and personality (services may follow the
    # new host: its port set now has seats too).
    for vh in second.virtual_hosts:
        if vh.ip not in moved:
            old = before[vh.ip]
            assert (vh.mac, vh.os, vh.personality) == (old.mac, old.os, old.personality)


def test_fill_ratio_caps_the_share_filled(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(fill_ratio=0.5), [], catalog)
    assert len(result.virtual_hosts) == 5
    assert Counter(vh.os for vh in result.virtual_hosts) == {"Windows NT": 2, "Linux 2.4.X": 3}


def test_a_host_of_unknown_os_is_left_out_of_the_ratio_and_the_plan_says_so(catalog):
    real, free = paper_network()
    real.append(RealHost("198.18.0.16", None, open_ports=(OpenPort("tcp", 23, "telnet"),)))
    result = plan(picture(real, free), Policy(), [], catalog)
    assert Counter(vh.os for vh in result.virtual_hosts) == {"Windows NT": 4, "Linux 2.4.X": 6}
    assert all(vh.personality in catalog.names for vh in result.virtual_hosts)
    assert result.left_out == ("198.18.0.16",)
    assert "198.18.0.16" not in result.groups and len(result.groups) == 5
    (warning,) = result.warnings
    assert "no OS guess" in warning and "198.18.0.16" in warning and "left out of the ratio" in warning


def test_a_host_known_by_its_family_only_mirrors_that_familys_hosts(catalog):
    real, free = paper_network()
    by_ttl = GroupDescription(
        "Linux", "Linux", "Linux", None, None, ("TTL 64: Linux or another Unix",), (), "ttl 20%"
    )
    real.append(RealHost("198.18.0.16", by_ttl))
    free = [ip(n) for n in range(6, 15)]  # 9 free for 6 real hosts: 3 NT, 6 Linux
    result = plan(picture(real, free), Policy(), [], catalog)
    assert result.groups["198.18.0.16"] == "Linux 2.4.X"
    assert Counter(vh.os for vh in result.virtual_hosts) == {"Windows NT": 3, "Linux 2.4.X": 6}
    assert {vh.personality for vh in result.virtual_hosts if vh.os == "Linux 2.4.X"} == {
        "Linux 2.4.18-14 (Red Hat 8)"
    }
    # Its share of the group's seats (6 for 4 hosts: 1 or 2) copies its own (empty) port set.
    assert sum(1 for vh in result.virtual_hosts if vh.os == "Linux 2.4.X" and not vh.services) in (1, 2)


def test_of_two_equal_groups_of_its_family_a_host_known_by_family_only_joins_the_newer(catalog):
    linux26 = GroupDescription("Linux 2.6.X", "Linux", "Linux", "2.6.X", "general purpose", ("Linux 2.6.32",))
    by_ttl = GroupDescription(
        "Linux", "Linux", "Linux", None, None, ("TTL 64: Linux or another Unix",), (), "ttl"
    )
    real = [RealHost(ip(1), REDHAT), RealHost(ip(2), linux26), RealHost(ip(3), by_ttl)]
    result = plan(picture(real, [ip(n) for n in range(4, 10)]), Policy(), [], catalog)
    assert result.groups[ip(3)] == "Linux 2.6.X"
    assert result.quotas == {"Linux 2.4.X": 2, "Linux 2.6.X": 4}
    for vh in result.virtual_hosts:
        joined = (
            "counted with them: 198.18.0.3 (ttl: TTL 64: Linux or another Unix)" in result.explanations[vh.ip]
        )
        assert joined == (vh.os == "Linux 2.6.X")


def test_a_family_with_no_real_host_of_a_known_generation_takes_its_newest(catalog):
    by_ttl = GroupDescription(
        "Windows", "Microsoft", "Windows", None, None, ("TTL 128: Windows",), (), "ttl 20%"
    )
    result = plan(picture([RealHost(ip(1), by_ttl)], [ip(2), ip(3)]), Policy(), [], catalog)
    assert result.quotas == {"Windows": 2}
    for vh in result.virtual_hosts:
        assert vh.personality in catalog.names
        assert "only the family is known" in result.explanations[vh.ip]


def test_group_without_fingerprint_is_left_out_with_a_warning(catalog):
    real, free = paper_network()
    real.append(RealHost("198.18.0.16", GroupDescription("Zzyzx Quantum OS 9000")))
    result = plan(picture(real, free), Policy(), [], catalog)
    assert any("Zzyzx" in w for w in result.warnings)
    assert "Zzyzx Quantum OS 9000" not in result.quotas
    assert result.left_out == ("198.18.0.16",)


def test_exact_nmap_match_names_are_used_as_personalities(catalog):
    name = "Linux 2.6.32"
    assert name in catalog.names
    group = GroupDescription("Linux 2.6.X", "Linux", "Linux", "2.6.X", "general purpose", (name,))
    real = [RealHost(ip(1), group)]
    result = plan(picture(real, [ip(n) for n in range(2, 8)]), Policy(), [], catalog)
    assert {vh.personality for vh in result.virtual_hosts} == {name}


def test_every_decoy_is_explained(catalog):
    real, free = paper_network()
    result = plan(picture(real, free), Policy(service_scripts=SCRIPTS), [], catalog)
    assert set(result.explanations) == {vh.ip for vh in result.virtual_hosts}
    for vh in result.virtual_hosts:
        why = result.explanations[vh.ip]
        if vh.os == "Windows NT":
            assert why.startswith(
                f"mirrors the OS of {ip(1)}, {ip(2)} (nmap 100%: Microsoft Windows NT 4.0 SP5 - SP6)"
            )
            assert "Microsoft | Windows | NT | general purpose, cpe:/o:microsoft:windows_nt:4.0" in why
            assert "same generation" in why
        else:
            assert why.startswith(f"mirrors the OS of {ip(3)}, {ip(4)}, {ip(5)} (nmap 100%: Linux 2.4.18-14")
            assert "cpe:/o:linux:linux_kernel:2.4.18-14" in why and "nmap-os-db has" in why
        ports = ", ".join(f"{s.port}/{s.proto}" for s in vh.services)
        copied = next(h.ip for h in real if _ports(h) == _ports(vh))
        assert why.endswith(f"services ({ports}) of {copied}")


def _ports(host):
    return {(p.proto, p.port) for p in getattr(host, "open_ports", None) or host.services}


def test_a_decoy_deployed_without_a_personality_is_replaced(catalog):
    real, free = paper_network()
    first = plan(picture(real, free), Policy(), [], catalog)
    old = [VirtualHost(ip(6), "00:50:56:00:00:06", "unknown", None, ())] + [
        vh for vh in first.virtual_hosts if vh.ip != ip(6)
    ]
    second = plan(picture(real, free), Policy(), old, catalog)
    assert ip(6) in second.removed and ip(6) in second.added
    assert all(vh.personality for vh in second.virtual_hosts)


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
