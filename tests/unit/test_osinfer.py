"""OS families from clues other than a fingerprint: services, TTL, MAC vendor (issue 16)."""

from __future__ import annotations

from dynapot.discovery.observation import OsGuess, PortObservation
from dynapot.discovery.osinfer import os_from_mac_vendor, os_from_services, os_from_ttl, starting_ttl


def port(product=None, version=None, extra=None):
    return PortObservation("tcp", 1, "open", None, product, version, extra)


def test_the_starting_ttl_is_the_next_usual_value():
    assert [starting_ttl(t) for t in (1, 32, 33, 63, 64, 65, 127, 128, 200, 255, 256)] == [
        32, 32, 64, 64, 64, 128, 128, 128, 255, 255, None
    ]  # fmt: skip


def test_a_ttl_points_to_a_family_but_255_to_none():
    assert os_from_ttl(64) == OsGuess("TTL 64: Linux or another Unix", 20, "Linux", "Linux")
    assert os_from_ttl(128) == OsGuess("TTL 128: Windows", 20, "Microsoft", "Windows")
    assert os_from_ttl(255) is None  # routers, printers and Solaris all start at 255
    assert os_from_ttl(None) is None


def test_services_name_their_system_and_the_majority_wins():
    guess = os_from_services([port("OpenSSH", "8.9p1 Ubuntu 3", "Ubuntu Linux; protocol 2.0"), port("nginx")])
    assert (guess.vendor, guess.family, guess.generation, guess.accuracy) == ("Linux", "Linux", None, 30)
    assert guess.name.startswith("services say Linux: OpenSSH 8.9p1 Ubuntu 3")
    assert (
        os_from_services([port("Microsoft IIS httpd", "10.0"), port("Microsoft Windows RPC")]).family
        == "Windows"
    )
    assert os_from_services([port("Apache httpd", "2.4.57", "(Red Hat Linux)")]).family == "Linux"
    assert os_from_services([port("nginx"), port(None)]) is None  # nothing said
    assert (
        os_from_services([port("Microsoft IIS httpd"), port("Apache httpd", extra="(Debian)")]) is None
    )  # a tie


def test_only_nic_makers_of_one_kind_of_computer_tell_a_family():
    assert os_from_mac_vendor("Apple").family == "Mac OS X"
    assert os_from_mac_vendor("Raspberry Pi Trading").family == "Linux"
    assert os_from_mac_vendor("VMware") is None and os_from_mac_vendor("Dell") is None
    assert os_from_mac_vendor(None) is None
