"""Who a virtual host is (services/identity.py), what its personality says (systems.py), and how a
service picks what to imitate (profiles.py)."""

from __future__ import annotations

import re

import pytest

from dynapot.services.contract import ConnectionInfo
from dynapot.services.identity import identity_for
from dynapot.services.profiles import Profile, choose, version_of
from dynapot.services.systems import family_of, system_for, windows_release


@pytest.mark.parametrize(
    ("personality", "family", "name"),
    [
        ("Linux 5.4", "linux", r"srv-[0-9a-f]{4}"),
        (None, "linux", r"srv-[0-9a-f]{4}"),
        ("FreeBSD 13.1", "bsd", r"srv-[0-9a-f]{4}"),
        ("Apple iOS 14", "linux", r"srv-[0-9a-f]{4}"),
        ("OpenWrt 21.02 (Linux 5.4)", "busybox", r"srv-[0-9a-f]{4}"),
        ("Cisco 2811 router (IOS 12.4)", "cisco", r"gw-[0-9a-f]{4}"),
        ("HP LaserJet 1320 printer", "printer", r"NPI[0-9A-F]{6}"),
        ("Microsoft Windows 10 1809", "windows", r"(DESKTOP-[0-9A-Z]{7}|PC-\d{4})"),
        ("Microsoft Windows 7 SP1", "windows", r"([A-Z][A-Z]+-PC|WS-\d{4})"),
        ("Microsoft Windows Server 2016", "windows", r"(WIN-[0-9A-Z]{11}|(SRV-)?[A-Z]+\d\d)"),
        ("Microsoft Windows XP SP3", "windows", r"[A-Z]+-[0-9A-Z]{6}"),
    ],
)
def test_a_host_is_named_in_its_systems_style(personality, family, name) -> None:
    assert family_of(personality) == family
    for n in range(20, 30):
        identity = identity_for(f"198.18.0.{n}", personality)
        assert re.fullmatch(name, identity.hostname), identity.hostname
        assert identity.computer == identity.hostname.upper()[:15] and identity.dns_host == identity.hostname


def test_identities_are_stable_keyed_and_their_own() -> None:
    one = identity_for("198.18.0.20", "Linux 5.4", secret=b"a")
    assert identity_for("198.18.0.20", "Linux 5.4", secret=b"a") == one
    other_secret = identity_for("198.18.0.20", "Linux 5.4", secret=b"b")
    other_personality = identity_for("198.18.0.20", "Linux 4.15", secret=b"a")
    assert len({one.seed, other_secret.seed, other_personality.seed}) == 3
    names = {identity_for(f"198.18.1.{n}", "Linux 5.4", secret=b"a").hostname for n in range(40)}
    assert len(names) >= 38  # four hex digits: a clash now and then, as on real networks


def test_uptime_is_kept_or_grows_from_a_boot_weeks_ago() -> None:
    fixed = identity_for("198.18.0.20", "Linux 5.4", uptime=1234.0, now=1_700_000_000.0)
    assert fixed.uptime(1_700_000_000.0) == 1234.0 and fixed.uptime(1_700_000_010.0) == 1244.0
    grown = identity_for("198.18.0.20", "Linux 5.4", now=1_700_000_000.0)
    assert 3 * 3600 <= grown.uptime(1_700_000_000.0) <= 60 * 86400
    later = identity_for("198.18.0.20", "Linux 5.4", now=1_700_000_000.0 + 3600)
    assert later.boot_time == grown.boot_time and later.boots == grown.boots  # one boot, seen twice
    assert grown.boots >= 1


def test_hosts_of_one_network_share_a_workgroup_or_domain() -> None:
    hosts = [identity_for(f"198.18.4.{i}", "Microsoft Windows 7 SP1", secret=b"x") for i in range(10, 40)]
    assert len({(h.netbios_domain, h.dns_domain) for h in hosts}) == 1
    assert len({h.server_guid for h in hosts}) == 30
    linux = identity_for("198.18.4.50", "Linux 5.4", secret=b"x")  # a Samba host of that network too
    assert (linux.netbios_domain, linux.dns_domain) == (hosts[0].netbios_domain, hosts[0].dns_domain)
    kinds = {identity_for(f"198.18.{n}.20", "Linux 5.4", secret=b"x").dns_domain is None for n in range(40)}
    assert kinds == {True, False}


@pytest.mark.parametrize(
    ("personality", "release", "pretty", "issue_net"),
    [
        ("Linux 5.4", "5.15.0-91-generic", "Ubuntu 22.04.3 LTS", "Ubuntu 22.04.3 LTS\n"),
        ("Linux 4.15 - 5.8", "4.15.0-213-generic", "Ubuntu 18.04.6 LTS", "Ubuntu 18.04.6 LTS\n"),
        (
            "Linux 3.10",
            "3.10.0-1160.el7.x86_64",
            "CentOS Linux 7 (Core)",
            "CentOS Linux 7 (Core)\nKernel 3.10.0-1160.el7.x86_64 on an x86_64\n",
        ),
        ("Linux 2.6.32", "2.6.32-754.35.1.el6.x86_64", "CentOS release 6.10 (Final)", None),
        (
            "FreeBSD 12.1-RELEASE",
            "13.2-RELEASE",
            "FreeBSD 13.2-RELEASE",
            "\nFreeBSD/amd64 (HOST) (pts/0)\n\n",
        ),
    ],
)
def test_a_unix_host_runs_the_kernel_and_distribution_its_personality_says(
    personality, release, pretty, issue_net
) -> None:
    identity = identity_for("198.18.0.20", personality)
    assert identity.kernel.release == release and identity.distribution.pretty == pretty
    assert identity.uname().split()[1:3] == [identity.hostname, release]
    assert f'PRETTY_NAME="{pretty}"' in identity.distribution.os_release()
    if issue_net is not None:
        assert identity.issue_net() == issue_net.replace("HOST", identity.hostname)


def test_the_motd_is_the_distributions_with_numbers_of_the_hosts_own() -> None:
    now = 1_700_000_000.0
    ubuntu = identity_for("198.18.0.20", "Linux 5.4").motd(now)
    assert ubuntu.startswith("Welcome to Ubuntu 22.04.3 LTS (GNU/Linux 5.15.0-91-generic x86_64)\n")
    assert "IPv4 address for eth0: 198.18.0.20" in ubuntu and "updates can be applied immediately" in ubuntu
    assert "System information as of Tue Nov 14 10:13:20 PM UTC 2023" in ubuntu
    assert identity_for("198.18.0.20", "Linux 3.10").motd(now) == ""  # CentOS has none
    assert "Welcome to FreeBSD!" in identity_for("198.18.0.20", "FreeBSD 13.1").motd(now)
    last = identity_for("198.18.0.20", "Linux 5.4").last_login(now)
    assert re.fullmatch(r"Last login: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} from 198\.18\.0\.\d+\n", last)


@pytest.mark.parametrize(
    ("name", "key", "version", "server"),
    [
        ("Microsoft Windows XP SP3", "xp", (5, 1, 2600), False),
        ("Microsoft Windows 7 SP0", "7", (6, 1, 7600), False),
        ("Microsoft Windows Server 2008 R2 SP1", "2008r2", (6, 1, 7601), True),
        ("Microsoft Windows Vista SP2, Windows 7, or Windows 7 SP1", "vista", (6, 0, 6002), False),
        ("Microsoft Windows Server 2008", "2008", (6, 0, 6002), True),
        ("Microsoft Windows 10 1607", "10", (10, 0, 14393), False),
        ("Microsoft Windows Server 2022", "2022", (10, 0, 20348), True),
        (None, "10", (10, 0, 19045), False),
    ],
)
def test_windows_releases(name, key, version, server) -> None:
    release = windows_release(name)
    assert (release.key, release.version, release.server) == (key, version, server)


def test_system_tags_are_what_profile_rows_match() -> None:
    assert system_for("Microsoft Windows Server 2019").tags == {"windows", "windows-2019", "windows-server"}
    assert system_for("Linux 4.15").tags == {"linux", "ubuntu", "ubuntu-18.04"}
    assert system_for("Cisco 2811 router (IOS 12.4)").tags == {"cisco"}


def info(personality: str | None, product: str | None = None, version: str | None = None) -> ConnectionInfo:
    return ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.20", 21, personality, "t", product, version)


TABLE = (
    Profile("proftpd", "proftpd", default_version="1.3.7"),
    Profile("iis", "microsoft"),
    Profile("iis", os="windows"),
    Profile("xp", os="windows-xp"),  # never reached: the windows row comes first
    Profile("vsftpd"),
)


def test_choose_takes_nmaps_product_then_the_os_then_the_default() -> None:
    assert choose(TABLE, info("Linux 5.4", "ProFTPD")).what == "proftpd"
    assert choose(TABLE, info("Linux 5.4", "Microsoft ftpd")).what == "iis"
    assert (
        choose(TABLE, info("Microsoft Windows XP SP3", "Pure-FTPd")).what == "iis"
    )  # unknown product: the OS
    assert choose(TABLE, info("Linux 5.4", "Pure-FTPd")).what == "vsftpd"
    assert choose(TABLE, info(None)).what == "vsftpd"
    with pytest.raises(LookupError):
        choose(TABLE[:2], info("Linux 5.4"))


def test_a_rows_version_is_nmaps_only_when_chosen_for_nmaps_product() -> None:
    row = choose(TABLE, info("Linux 5.4", "ProFTPD", "1.3.5e"))
    assert row.version(info("Linux 5.4", "ProFTPD", "1.3.5e")) == "1.3.5e"
    assert row.version(info("Linux 5.4", "ProFTPD")) == "1.3.7"
    assert Profile("x", default_version="3.0.3").version(info("Linux 5.4", None, "9.9")) == "3.0.3"
    assert version_of(info(None, "x", "2.4.52 ((Ubuntu))")) == "2.4.52"
    for hostile in ("1.0\r\n230 ok", "{host}", "", "   ", "1.0\x00"):
        assert version_of(info(None, "x", hostile), "d") == "d"


@pytest.mark.parametrize(
    ("hint", "pretty", "kernel"),
    [
        ("OpenSSH 9.2p1 Debian 2+deb12u3", "Debian GNU/Linux 12 (bookworm)", "6.1.0-17-amd64"),
        ("Apache httpd 2.4.57 (Debian)", "Debian GNU/Linux 12 (bookworm)", "6.1.0-17-amd64"),
        ("OpenSSH 8.4p1 Debian 5+deb11u3", "Debian GNU/Linux 11 (bullseye)", "5.10.0-26-amd64"),
        ("OpenSSH 8.9p1 Ubuntu 3ubuntu0.10", "Ubuntu 22.04.3 LTS", "5.15.0-91-generic"),
        (
            "OpenSSH 7.4 protocol 2.0 Apache httpd 2.4.6 (CentOS) el7",
            "CentOS Linux 7 (Core)",
            "3.10.0-1160.el7.x86_64",
        ),
    ],
)
def test_what_a_hosts_services_say_names_its_distribution(hint, pretty, kernel) -> None:
    """A Debian network's decoys are Debian: the banners nmap -sV read on the real hosts (which
    the decoys repeat) outweigh the TCP fingerprint, which only tells a kernel generation."""
    identity = identity_for("198.18.0.20", "Linux 5.4", hint=hint)
    assert identity.distribution.pretty == pretty and identity.kernel.release == kernel
    motd = identity.motd(1.7e9)
    if "Debian" in pretty:
        assert motd.startswith(f"Linux {identity.hostname} {kernel} ") and "ABSOLUTELY NO WARRANTY" in motd
        assert identity.issue_net().startswith("Debian GNU/Linux")
        assert "debian" in identity.system.tags and "ubuntu" not in identity.system.tags


def test_without_a_hint_or_off_linux_the_personality_decides() -> None:
    assert identity_for("198.18.0.20", "Linux 5.4").distribution.id == "ubuntu"
    assert identity_for("198.18.0.20", "Linux 2.6.32", hint="").distribution.id == "centos"
    # a FreeBSD host running a Debian-built banner stays FreeBSD; Windows stays Windows
    assert (
        identity_for("198.18.0.20", "FreeBSD 13.1", hint="OpenSSH 9.2p1 Debian").distribution.id == "freebsd"
    )
    assert identity_for("198.18.0.20", "Microsoft Windows 10 1809", hint="Debian").system.family == "windows"
