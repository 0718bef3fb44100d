"""Which fingerprints a real host's OS answer resolves to: its generation, never another (issue 16).

A small nmap-os-db written here shows each rule on its own; the installed one shows that
they hold on nmap's real classes and CPE names.
"""

from __future__ import annotations

from dynapot.personality.catalog import GroupDescription, MacVendors, PersonalityCatalog, release_key
from dynapot.personality.osdb import parse_osdb

SMALL_OSDB = """
Fingerprint Microsoft Windows 95
Class Microsoft | Windows | 95 | general purpose
CPE cpe:/o:microsoft:windows_95

Fingerprint Microsoft Windows NT 3.51 SP5
Class Microsoft | Windows | NT | general purpose
CPE cpe:/o:microsoft:windows_nt:3.51:sp5

Fingerprint Microsoft Windows 2000 SP4
Class Microsoft | Windows | 2000 | general purpose
CPE cpe:/o:microsoft:windows_2000::sp4

Fingerprint Microsoft Windows XP SP3
Class Microsoft | Windows | XP | general purpose
CPE cpe:/o:microsoft:windows_xp::sp3

Fingerprint HP LaserJet 4250 printer (Windows XP embedded)
Class HP | embedded || printer
CPE cpe:/h:hp:laserjet_4250
Class Microsoft | Windows | XP | printer
CPE cpe:/o:microsoft:windows_xp

Fingerprint Linux 2.2.14
Class Linux | Linux | 2.2.X | general purpose
CPE cpe:/o:linux:linux_kernel:2.2.14

Fingerprint Linux 2.6.32
Class Linux | Linux | 2.6.X | general purpose
CPE cpe:/o:linux:linux_kernel:2.6.32

Fingerprint AXIS 211 Network Camera (Linux 2.6.17)
Class Linux | Linux | 2.6.X | webcam
CPE cpe:/o:linux:linux_kernel:2.6.17
Class AXIS | embedded || webcam
CPE cpe:/h:axis:211_network_camera

Fingerprint Linux 3.2
Class Linux | Linux | 3.X | general purpose
CPE cpe:/o:linux:linux_kernel:3.2
"""


def small() -> PersonalityCatalog:
    return PersonalityCatalog(parse_osdb(SMALL_OSDB), MacVendors([]))


def nmap(label: str, vendor: str, family: str, generation: str, cpe: str = "", device="general purpose"):
    name = f"{family} {generation}".strip()
    return GroupDescription(name, vendor, family, generation, device, (label,), (cpe,) if cpe else (), "nmap")


def test_nmaps_own_match_is_worn_as_it_is():
    resolution = small().resolve(nmap("Linux 2.6.32", "Linux", "Linux", "2.6.X"))
    assert (resolution.fingerprints, resolution.kind) == (("Linux 2.6.32",), "exact")
    assert resolution.classes == (
        "Linux | Linux | 2.6.X | general purpose, cpe:/o:linux:linux_kernel:2.6.32",
    )


def test_the_nearest_generation_only_where_the_exact_one_has_no_fingerprint():
    # No NT 4.0 here: NT 3.51 (same line, a year before) rather than Windows 95 (another line).
    resolution = small().resolve(
        nmap("Microsoft Windows NT 4.0 SP6a", "Microsoft", "Windows", "NT", "cpe:/o:microsoft:windows_nt:4.0")
    )
    assert (resolution.fingerprints, resolution.kind) == (("Microsoft Windows NT 3.51 SP5",), "nearest")
    assert "nearest generation" in resolution.why
    # Linux 2.4 is as far from 2.2 as from 2.6: the newer one.
    resolution = small().resolve(
        nmap("Linux 2.4.20", "Linux", "Linux", "2.4.X", "cpe:/o:linux:linux_kernel:2.4.20")
    )
    assert (resolution.fingerprints, resolution.kind) == (("Linux 2.6.32",), "nearest")


def test_never_another_device_type():
    # A general-purpose Linux 2.6 never wears the camera; a camera never wears the PC.
    resolution = small().resolve(nmap("Linux 2.6.99", "Linux", "Linux", "2.6.X"))
    assert resolution.fingerprints == ("Linux 2.6.32",)
    camera = small().resolve(nmap("AXIS 212 camera", "Linux", "Linux", "2.6.X", device="webcam"))
    assert camera.fingerprints == ("AXIS 211 Network Camera (Linux 2.6.17)",)
    # An XP PC never wears the printer that runs XP embedded.
    assert small().resolve(nmap("Microsoft Windows XP SP2", "Microsoft", "Windows", "XP")).fingerprints == (
        "Microsoft Windows XP SP3",
    )
    assert small().resolve(nmap("Some router", "Linux", "Linux", "2.6.X", device="router")) is None


def test_a_family_alone_points_to_the_generation_it_hints_at_else_the_newest():
    p0f = GroupDescription("Linux 2.2.x-3.x", None, "Linux", "2.2.x-3.x", None, ("Linux 2.2.x-3.x",))
    resolution = small().resolve(p0f)
    assert (resolution.fingerprints, resolution.kind) == (("Linux 2.2.14",), "family")
    by_ttl = GroupDescription("Linux", "Linux", "Linux", None, None, ("TTL 64: Linux or another Unix",))
    resolution = small().resolve(by_ttl)
    assert (resolution.fingerprints, resolution.kind) == (("Linux 3.2",), "family")
    assert "only the family is known" in resolution.why


def test_release_order():
    assert release_key("Windows", "NT", ["cpe:/o:microsoft:windows_nt:4.0"]) == (1, 1996)
    assert release_key("Windows", "NT", ["cpe:/o:microsoft:windows_nt:3.51"]) == (1, 1995)
    assert release_key("Windows", "95") == (0, 1995)
    assert release_key("Windows", "7 or 8") == (1, 2009)
    assert release_key("Windows", "NT kernel 6.x") == (1, 2009)
    assert release_key("Windows", "NT kernel") is None
    assert release_key("Linux", "2.4.X") == (0, 2004)
    assert release_key("Linux", "3.11 and newer") == (0, 3011)
    assert release_key("Linux", None) is None


def test_on_the_installed_nmap_os_db_the_cpe_tells_nt_releases_apart(catalog):
    """nmap-os-db files NT 3.1, 3.51 and 4.0 all under "Windows | NT": only the CPE tells them apart."""

    def nt(label: str, version: str):
        return catalog.resolve(
            nmap(label, "Microsoft", "Windows", "NT", f"cpe:/o:microsoft:windows_nt:{version}")
        )

    four = nt("Microsoft Windows NT 4.0 SP5 - SP6", "4.0")
    assert four.kind == "generation" and four.fingerprints
    assert all("NT 4.0" in name for name in four.fingerprints)
    assert all("cpe:/o:microsoft:windows_nt:4.0" in text for text in four.classes)
    three = nt("Microsoft Windows NT 3.51 SP9", "3.51")
    assert all("3.51" in name for name in three.fingerprints)
    # nmap's label decides among the generation's fingerprints: the closest names.
    assert set(four.fingerprints) == {"Microsoft Windows NT 4.0 SP5", "Microsoft Windows NT 4.0 SP6"}
