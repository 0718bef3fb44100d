"""honeyd's first-generation personality names, read as the installed nmap-os-db's entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynapot.personality.legacy_names import closest_fingerprint
from dynapot.personality.osdb import Fingerprint, load_osdb


@pytest.fixture(scope="module")
def osdb() -> list[Fingerprint]:
    return load_osdb(Path("/usr/share/nmap/nmap-os-db"))


def family_and_generation(fp: Fingerprint) -> set[tuple[str, str]]:
    return {(c.family, c.generation) for c in fp.classes}


# Every personality name of honeyd's own sample configurations, and what it must become: the
# same family and generation (the exact entry may change with nmap-os-db's next release).
@pytest.mark.parametrize(
    ("old", "family", "generation"),
    [
        ("Linux 2.4.7 (X86)", "Linux", "2.4.X"),
        ("Linux 2.2.12 - 2.2.19", "Linux", "2.2.X"),
        ("Windows NT4 / Win95 / Win98", "Windows", "NT"),
        ("Windows NT 4.0 Server SP5-SP6", "Windows", "NT"),
        ("Windows 2000 server SP2", "Windows", "2000"),
        ("Cisco 7206 running IOS 11.1(24)", "IOS", "11.X"),
        ("Cisco IOS 11.3 - 12.0(11)", "IOS", "11.X"),
        ("Cisco IOS 12.1(5)-12.2(1)", "IOS", "12.X"),
        ("Solaris 2.6 - 2.7", "Solaris", "2.X"),
        ("FreeBSD 2.2.1-STABLE", "FreeBSD", "2.X"),
        ("OpenBSD 4.0 (x86)", "OpenBSD", "4.X"),
        ("IBM AIX 4.2", "AIX", "4.X"),
        ("Mac OS X 10.1 - 10.1.4", "Mac OS X", "10.1.X"),  # not "Mac OS" 8
        ("NetBSD 1.5.2 running on a Commodore Amiga (68040 processor)", "NetBSD", "1.X"),
        ("Check Point FireWall-1 4.0 SP-5 (IPSO build)", "IPSO", "4.X"),
    ],
)
def test_an_old_name_becomes_an_entry_of_its_family_and_generation(
    osdb: list[Fingerprint], old: str, family: str, generation: str
) -> None:
    found = closest_fingerprint(old, osdb)
    assert found is not None
    assert (family, generation) in family_and_generation(found), found.name


def test_an_exact_name_finds_itself_and_the_closest_version_wins(osdb: list[Fingerprint]) -> None:
    assert closest_fingerprint("Linux 2.4.7 (X86)", osdb).name == "Linux 2.4.7"
    assert closest_fingerprint("Microsoft Windows NT 4.0 SP3", osdb).name == "Microsoft Windows NT 4.0 SP3"


def test_non_ios_does_not_say_ios_and_falls_back_to_the_vendor(osdb: list[Fingerprint]) -> None:
    found = closest_fingerprint("Cisco 762 Non-IOS Software release 4.1(2) or 766 ISDN router", osdb)
    assert found is not None and any(c.vendor == "Cisco" for c in found.classes)


def test_a_name_of_no_family_or_vendor_finds_nothing(osdb: list[Fingerprint]) -> None:
    assert closest_fingerprint("Frobnitz OS 1.0", osdb) is None
    assert closest_fingerprint("", osdb) is None
