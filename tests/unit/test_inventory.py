"""Inventory against a real database: SQLite and PostgreSQL (see tests/conftest.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from dynapot.config import ExpirySettings, NetworkSettings, PlannerSettings
from dynapot.db.models import HoneypotEvent, Host, HostOsGuess, OperatingSystem, Port, Session
from dynapot.discovery.observation import Observation, OsGuess, PortObservation
from dynapot.inventory import (
    current_deployment,
    expire,
    network_picture,
    record_observations,
    save_deployment,
    service_scripts,
)
from dynapot.planner import Policy, plan

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NET = NetworkSettings(cidr="198.18.0.0/28", gateway="198.18.0.1")
XP = OsGuess("Microsoft Windows XP SP3", 96, "Microsoft", "Windows", "XP", "general purpose")
LINUX = OsGuess("Linux 2.6.32", 98, "Linux", "Linux", "2.6.X", "general purpose")


def seen(ip, os=None, ports=(), tool="nmap", at=NOW, alive=True, mac=None):
    return Observation(ip=ip, seen_at=at, tool=tool, alive=alive, os=os, ports=tuple(ports), mac=mac)


def count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_observations_become_hosts_ports_and_os_rows(db):
    stats = record_observations(
        db,
        [
            seen(
                "198.18.0.2",
                XP,
                [PortObservation("tcp", 445, "open", "microsoft-ds")],
                mac="00:0c:29:01:02:03",
            ),
            seen("198.18.0.3", LINUX, [PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "8.9p1")]),
            seen("198.18.0.9", alive=False),
        ],
    )
    assert (stats.hosts_added, stats.ports) == (2, 2)
    with db.session() as s:
        hosts = {h.ip: h for h in s.scalars(select(Host))}
        assert set(hosts) == {"198.18.0.2", "198.18.0.3"}  # a down host is not evidence of use
        assert hosts["198.18.0.2"].os.name == "Windows XP"
        assert hosts["198.18.0.2"].reliability == 96
        assert hosts["198.18.0.2"].mac == "00:0c:29:01:02:03"
        assert hosts["198.18.0.3"].os_detail == "Linux 2.6.32"
        assert s.scalar(select(Port.product).where(Port.port == 22)) == "OpenSSH"
        assert {o.name for o in s.scalars(select(OperatingSystem))} == {"Windows XP", "Linux 2.6.X"}


def test_rescan_replaces_a_tools_ports_and_keeps_first_seen(db):
    record_observations(db, [seen("198.18.0.2", XP, [PortObservation("tcp", 80, "open", "http")])])
    later = NOW + timedelta(minutes=5)
    record_observations(db, [seen("198.18.0.2", XP, [PortObservation("tcp", 22, "open", "ssh")], at=later)])
    with db.session() as s:
        host = s.scalar(select(Host))
        assert [p.port for p in host.ports] == [22]
        assert host.first_seen == NOW and host.last_seen == later


def test_most_confident_tool_decides_the_os(db):
    record_observations(db, [seen("198.18.0.2", XP)])
    record_observations(
        db, [seen("198.18.0.2", OsGuess("Windows NT kernel", 60, family="Windows"), tool="p0f")]
    )
    with db.session() as s:
        assert s.scalar(select(Host)).os.name == "Windows XP"
        assert s.scalar(select(func.count()).select_from(HostOsGuess)) == 2


def test_failed_batch_stores_nothing(db):
    bad = Observation(ip="198.18.0.4", seen_at=datetime(2026, 1, 1), tool="nmap")  # naive time: refused
    with pytest.raises(ValueError, match="no time zone"):
        record_observations(db, [seen("198.18.0.2", XP), bad])
    assert count(db, Host) == 0


def test_picture_honours_hold_off_gateway_and_exclusions(db):
    record_observations(db, [seen("198.18.0.2", XP), seen("198.18.0.3", LINUX, at=NOW - timedelta(hours=3))])
    network = NetworkSettings(
        cidr="198.18.0.0/28", gateway="198.18.0.1", exclude=("198.18.0.10-198.18.0.14",)
    )
    picture = network_picture(db, network, PlannerSettings(hold_off=3600), now=NOW)
    assert [h.ip for h in picture.real_hosts] == ["198.18.0.2"]
    # .0 network, .15 broadcast, .1 gateway, .2 in use, .10-.14 excluded; .3 was last seen too long ago
    assert picture.free_ips == tuple(f"198.18.0.{n}" for n in (3, 4, 5, 6, 7, 8, 9))


def test_deployment_round_trip_and_reclaim(db, catalog):
    record_observations(
        db,
        [
            seen("198.18.0.2", XP, [PortObservation("tcp", 445, "open", "microsoft-ds")]),
            seen("198.18.0.3", LINUX, [PortObservation("tcp", 22, "open", "ssh")]),
        ],
    )
    picture = network_picture(db, NET, PlannerSettings(), now=NOW)
    first = plan(picture, Policy(service_scripts=service_scripts(db)), [], catalog)
    save_deployment(db, first, now=NOW)
    stored = current_deployment(db, NET.cidr)
    assert sorted(stored, key=lambda v: v.ip) == sorted(first.virtual_hosts, key=lambda v: v.ip)
    assert {s.service for vh in stored for s in vh.services} <= {"smb", "ssh"}

    # A real host shows up on an address we hold: the host row turns real and the next plan avoids it.
    taken = first.virtual_hosts[0].ip
    stats = record_observations(db, [seen(taken, LINUX, at=NOW + timedelta(seconds=1))])
    assert stats.reclaimed == (taken,)
    picture = network_picture(db, NET, PlannerSettings(), now=NOW + timedelta(seconds=2))
    second = plan(
        picture, Policy(service_scripts=service_scripts(db)), current_deployment(db, NET.cidr), catalog
    )
    assert taken not in {vh.ip for vh in second.virtual_hosts}
    save_deployment(db, second, now=NOW)
    with db.session() as s:
        assert s.scalar(select(Host.is_virtual).where(Host.ip == taken)) is False


def test_save_refuses_a_real_address(db, catalog):
    record_observations(db, [seen("198.18.0.2", XP)])
    picture = network_picture(db, NET, PlannerSettings(), now=NOW)
    result = plan(picture, Policy(), [], catalog)
    record_observations(db, [seen(result.virtual_hosts[0].ip, XP)])
    with pytest.raises(ValueError, match="real host"):
        save_deployment(db, result, now=NOW)
    assert count(db, Host) == 2  # nothing of the plan was written


def test_a_real_host_gone_for_the_hold_off_gives_its_address_to_a_honeypot(db, catalog):
    record_observations(db, [seen("198.18.0.2", XP)])
    result = plan(network_picture(db, NET, PlannerSettings(), now=NOW), Policy(), [], catalog)
    left = result.virtual_hosts[0].ip
    record_observations(db, [seen(left, LINUX, [PortObservation("tcp", 22, "open", "ssh")])])
    with pytest.raises(ValueError, match="real host"):  # still within the hold-off
        save_deployment(db, result, now=NOW, gone_before=NOW - timedelta(hours=1))
    save_deployment(db, result, now=NOW, gone_before=NOW + timedelta(seconds=1))
    with db.session() as s:
        host = s.scalar(select(Host).where(Host.ip == left))
        assert host.is_virtual and host.personality == result.virtual_hosts[0].personality
        assert s.scalars(select(HostOsGuess).where(HostOsGuess.host_id == host.id)).all() == []
        assert host.ports == [] or {p.tool for p in host.ports} == {"dynapot"}
    assert left in {vh.ip for vh in current_deployment(db, NET.cidr)}


def test_expire_deletes_old_rows_per_table_but_not_our_deployment(db, catalog):
    old = NOW - timedelta(days=40)
    record_observations(db, [seen("198.18.0.2", XP, at=old), seen("198.18.0.3", LINUX)])
    picture = network_picture(db, NET, PlannerSettings(hold_off=10**9), now=NOW)
    save_deployment(db, plan(picture, Policy(), [], catalog), now=old)
    with db.session() as s:
        s.add(
            HoneypotEvent(time=old, protocol="tcp", src_ip="198.18.0.99", dst_ip="198.18.0.5", kind="connect")
        )
        s.add(
            HoneypotEvent(time=NOW, protocol="tcp", src_ip="198.18.0.99", dst_ip="198.18.0.5", kind="connect")
        )
        s.add(Session(time=old, honeypot_ip="198.18.0.7", data="ls"))
    counts = expire(db, ExpirySettings(hosts=30, ports=30, honeypot_events=90, sessions=10), now=NOW)
    assert counts["hosts"] == 1 and counts["sessions"] == 1 and counts["honeypot_events"] == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Host).where(Host.is_virtual.is_(False))) == 1
        assert s.scalar(select(func.count()).select_from(Host).where(Host.is_virtual.is_(True))) > 0
    counts = expire(db, ExpirySettings(honeypot_events=30), now=NOW)
    assert counts["honeypot_events"] == 1


def test_a_banner_heard_in_passing_does_not_replace_nmaps_product(db):
    nmap_port = PortObservation("tcp", 21, "open", "ftp", product="vsftpd", version="3.0.3")
    heard = PortObservation("tcp", 21, "open", "ftp", product="vsFTPd", version="3.0.3")
    ssh_heard = PortObservation("tcp", 22, "open", "ssh", product="OpenSSH", version="9.2p1")
    record_observations(db, [seen("198.18.0.10", ports=[nmap_port])])
    later = NOW + timedelta(minutes=5)
    record_observations(db, [seen("198.18.0.10", ports=[heard, ssh_heard], tool="passive", at=later)])
    with db.session() as s:
        ports = {p.port: p for p in s.scalars(select(Port))}
        assert (ports[21].product, ports[21].tool) == ("vsftpd", "nmap")
        assert ports[21].seen_at == later  # still refreshed: the port is alive
        assert (ports[22].product, ports[22].version, ports[22].tool) == ("OpenSSH", "9.2p1", "passive")
    # nmap's next answer replaces a passive one
    record_observations(
        db,
        [
            seen(
                "198.18.0.10",
                ports=[nmap_port, PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "9.2p1 Debian")],
            )
        ],
    )
    with db.session() as s:
        assert s.scalar(select(Port.version).where(Port.port == 22)) == "9.2p1 Debian"


# --- what is known of a host's OS: the best source that has an answer (issue 16) -------------


def one_host(db, policy=None):
    (host,) = network_picture(db, NET, policy or PlannerSettings(), now=NOW).real_hosts
    return host.group


def test_nmaps_osclass_and_cpe_reach_the_planner(db):
    nt = OsGuess(
        "Microsoft Windows NT 4.0 SP5 - SP6",
        100,
        "Microsoft",
        "Windows",
        "NT",
        "general purpose",
        ("cpe:/o:microsoft:windows_nt:4.0",),
    )
    record_observations(db, [seen("198.18.0.2", nt)])
    group = one_host(db)
    assert (group.name, group.vendor, group.family, group.generation) == (
        "Windows NT",
        "Microsoft",
        "Windows",
        "NT",
    )
    assert group.seen_names == ("Microsoft Windows NT 4.0 SP5 - SP6",)
    assert group.cpe == ("cpe:/o:microsoft:windows_nt:4.0",)
    assert group.source == "nmap 100%"


def test_a_ttl_is_a_guess_of_its_own_that_any_tools_answer_outranks(db):
    record_observations(db, [Observation("198.18.0.2", NOW, "nmap", initial_ttl=64)])
    with db.session() as s:
        (guess,) = s.scalars(select(HostOsGuess)).all()
        assert (guess.tool, guess.confidence, guess.detail) == ("ttl", 20, "TTL 64: Linux or another Unix")
    group = one_host(db)
    assert (group.family, group.generation, group.source) == ("Linux", None, "ttl 20%")
    record_observations(db, [seen("198.18.0.2", XP, at=NOW + timedelta(seconds=1))])
    assert one_host(db).name == "Windows XP"


def test_a_host_no_tool_named_takes_its_services_then_its_ttl_then_its_nic_makers_family(db):
    ubuntu = PortObservation(
        "tcp", 22, "open", "ssh", "OpenSSH", "8.9p1 Ubuntu 3", "Ubuntu Linux; protocol 2.0"
    )
    iis = PortObservation("tcp", 80, "open", "http", "Microsoft IIS httpd", "10.0")
    record_observations(
        db,
        [
            Observation("198.18.0.2", NOW, "nmap", ports=(ubuntu,), initial_ttl=128),
            Observation("198.18.0.3", NOW, "nmap", ports=(iis,)),
            Observation("198.18.0.4", NOW, "nmap", initial_ttl=128),
            Observation("198.18.0.5", NOW, "nmap", mac="00:03:93:01:02:03", mac_vendor="Apple"),
            Observation("198.18.0.6", NOW, "nmap", mac="00:0c:29:01:02:03", mac_vendor="VMware"),
        ],
    )
    hosts = {h.ip: h.group for h in network_picture(db, NET, PlannerSettings(), now=NOW).real_hosts}
    assert (hosts["198.18.0.2"].family, hosts["198.18.0.2"].source) == ("Linux", "services 30%")
    assert (hosts["198.18.0.3"].family, hosts["198.18.0.3"].vendor) == ("Windows", "Microsoft")
    assert (hosts["198.18.0.4"].family, hosts["198.18.0.4"].source) == ("Windows", "ttl 20%")
    assert (hosts["198.18.0.5"].family, hosts["198.18.0.5"].source) == ("Mac OS X", "MAC vendor 10%")
    assert hosts["198.18.0.6"] is None  # a VMware NIC runs anything
    excluded = network_picture(db, NET, PlannerSettings(unknown_os="exclude"), now=NOW).real_hosts
    assert [h.group for h in excluded] == [None] * 5


def test_below_the_least_accuracy_the_next_tools_answer_counts(db):
    weak = OsGuess("Linux 2.6.32", 40, "Linux", "Linux", "2.6.X", "general purpose")
    record_observations(db, [seen("198.18.0.2", weak)])
    record_observations(
        db, [seen("198.18.0.2", OsGuess("Windows 7 or 8", 70, "Microsoft", "Windows", "7 or 8"), tool="p0f")]
    )
    assert one_host(db, PlannerSettings(min_os_accuracy=50)).source == "p0f 70%"
    assert one_host(db, PlannerSettings(min_os_accuracy=80)) is None


def test_a_deployed_group_named_from_a_clue_keeps_its_name(db, catalog):
    record_observations(
        db, [Observation("198.18.0.2", NOW, "nmap", mac="00:03:93:01:02:03", mac_vendor="Apple")]
    )
    first = plan(network_picture(db, NET, PlannerSettings(), now=NOW), Policy(), [], catalog)
    assert first.quotas == {"Mac OS X": 12}
    save_deployment(db, first, now=NOW)
    again = plan(
        network_picture(db, NET, PlannerSettings(), now=NOW),
        Policy(),
        current_deployment(db, NET.cidr),
        catalog,
    )
    assert (again.added, again.removed, again.changed) == ((), (), ())
