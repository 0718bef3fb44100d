"""What an nmap-os-db personality name says about the machine behind it.

A virtual host wears a personality such as "Microsoft Windows 7 SP1", "Linux 4.15 - 5.8" or
"Cisco 2911 router (IOS 15)". Its services need more than the TCP/IP fingerprint: the family
of system (a Windows, Unix, router or printer face), the Windows release (names, builds), the
kernel and distribution of a Unix host (`uname -a`, /etc/os-release, the MOTD). `system_for`
reads all of it from the name, through tables: another system is another row.

Pure data and text: the per-host parts (names, clocks, the numbers in a MOTD) come from
`dynapot.services.identity`, which builds on this module.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CISCO_IOS",
    "UBUNTU_22_04",
    "Distribution",
    "Kernel",
    "Sysinfo",
    "System",
    "Unix",
    "WindowsRelease",
    "family_of",
    "system_for",
    "unix_for",
    "windows_release",
]

# (pattern in the lower-cased personality name, family); the first match wins.
FAMILIES: tuple[tuple[str, str], ...] = (
    (r"windows|microsoft", "windows"),
    (r"printer|laserjet|jetdirect", "printer"),
    (r"^(?!.*\bapple\b).*\b(?:cisco|ios|router|switch)\b", "cisco"),  # Apple's iOS is not Cisco's
    (r"busybox|openwrt|embedded", "busybox"),
    (r"bsd", "bsd"),
)
DEFAULT_FAMILY = "linux"

# What Cisco hosts run: `show version`'s head and their SNMP sysDescr.
CISCO_IOS = (
    "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.4(3)M3, RELEASE SOFTWARE (fc2)",
    "Technical Support: http://www.cisco.com/techsupport",
    "Copyright (c) 1986-2015 by Cisco Systems, Inc.",
    "Compiled Fri 05-Jun-15 13:29 by prod_rel_team",
)


def family_of(personality: str | None) -> str:
    """ "windows", "printer", "cisco", "busybox", "bsd" or "linux" (also for no personality)."""
    name = (personality or "").lower()
    return next((family for pattern, family in FAMILIES if re.search(pattern, name)), DEFAULT_FAMILY)


# -- Windows --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowsRelease:
    """One Windows release as it reports itself (NTLM's VERSION, `ver`, SNMP's sysDescr)."""

    key: str  # "9x", "nt4", "2000", "xp", "2003", "vista", "2008", "7", "2008r2", "8", ..., "2022"
    version: tuple[int, int, int]  # major, minor, build
    service_pack: int
    server: bool

    @property
    def legacy(self) -> bool:
        """Before Vista: "Documents and Settings", no SMB2."""
        return self.version[0] < 6


# (pattern in the lower-cased OS name, release); the earliest match in the name wins, so
# "Windows Vista SP2, Windows 7, or Windows 7 SP1" is a Vista.
_RELEASES: tuple[tuple[str, str], ...] = (
    (r"2022", "2022"),
    (r"2019", "2019"),
    (r"2016", "2016"),
    (r"2012 r2", "2012r2"),
    (r"2012", "2012"),
    (r"2008 r2", "2008r2"),
    (r"2008", "2008"),
    (r"2003", "2003"),
    (r"2000", "2000"),
    (r"\bxp\b", "xp"),
    (r"vista", "vista"),
    (r"windows (?:windows )?7\b", "7"),
    (r"windows 8\.1", "8.1"),
    (r"windows 8\b", "8"),
    (r"windows 10\b", "10"),
    (r"windows 11\b", "11"),
    (r"\bnt\b", "nt4"),
    (r"\b9[58]\b|millennium|\bme\b|3\.11", "9x"),
)
SERVER_RELEASES = frozenset(
    {"nt4", "2000", "2003", "2008", "2008r2", "2012", "2012r2", "2016", "2019", "2022"}
)

# Releases whose version does not depend on a service pack: key -> (major, minor, build).
_FIXED = {
    "9x": (4, 0, 1111),
    "nt4": (4, 0, 1381),
    "2000": (5, 0, 2195),
    "xp": (5, 1, 2600),
    "2003": (5, 2, 3790),
    "8": (6, 2, 9200),
    "2012": (6, 2, 9200),
    "8.1": (6, 3, 9600),
    "2012r2": (6, 3, 9600),
    "2016": (10, 0, 14393),
    "2019": (10, 0, 17763),
    "2022": (10, 0, 20348),
    "10": (10, 0, 19045),
    "11": (10, 0, 22631),
}
# The service pack nmap's name implies when it names none: the last one.
_LATEST_PACK = {"nt4": 6, "2000": 4, "xp": 3, "2003": 2, "vista": 2, "2008": 2, "7": 1, "2008r2": 1}
_WIN10_BUILDS = {
    "1507": 10240,
    "1511": 10586,
    "1607": 14393,
    "1703": 15063,
    "1709": 16299,
    "1803": 17134,
    "1809": 17763,
    "1903": 18362,
    "1909": 18363,
    "2004": 19041,
    "20h2": 19042,
    "21h1": 19043,
    "21h2": 19044,
    "22h2": 19045,
}


def _release_key(name: str) -> str | None:
    best: tuple[int, int, str] | None = None
    for pattern, key in _RELEASES:
        found = re.search(pattern, name)
        if found and (best is None or (found.start(), -len(found.group())) < best[:2]):
            best = (found.start(), -len(found.group()), key)
    return best[2] if best else None


def _service_pack(name: str, key: str) -> int:
    found = re.search(r"\bsp ?(\d)", name)
    return int(found.group(1)) if found else _LATEST_PACK.get(key, 0)


def windows_release(name: str | None) -> WindowsRelease:
    """The Windows release an OS name names (any case); Windows 10 when it names none."""
    text = (name or "").lower()
    key = _release_key(text) or "10"
    pack = _service_pack(text, key)
    if key in ("vista", "2008"):
        pack = max(pack, 1 if key == "2008" else 0)  # Server 2008 shipped as Vista SP1's sibling
        version = (6, 0, 6000 + pack)
    elif key in ("7", "2008r2"):
        pack = min(pack, 1)
        version = (6, 1, 7600 + pack)
    else:
        version = _FIXED[key]
        if key == "10":
            release = re.search(r"windows 10 (\w{4})\b", text)
            version = (10, 0, _WIN10_BUILDS.get(release.group(1), version[2]) if release else version[2])
    return WindowsRelease(key, version, pack, key in SERVER_RELEASES)


# -- Unix -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kernel:
    """What `uname` says, but the host name."""

    sysname: str  # "Linux", "FreeBSD"
    release: str  # "5.15.0-91-generic"
    version: str  # "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023"
    machine: str  # "x86_64", "amd64"
    gnu: bool = True  # GNU uname -a adds processor, platform and "GNU/Linux"
    # Whether uname knows the processor and platform (Ubuntu's and Red Hat's patched coreutils);
    # Debian's says "unknown" for them, and -a leaves them out.
    platform: bool = True

    def describe(self, host: str) -> str:
        """sysname, node, release, version, machine: net-snmp's sysDescr, and BSD's `uname -a`."""
        return f"{self.sysname} {host} {self.release} {self.version} {self.machine}"

    def uname(self, host: str) -> str:
        """`uname -a`."""
        if not self.gnu:
            return self.describe(host)
        tail = f" {self.machine} {self.machine} GNU/Linux" if self.platform else " GNU/Linux"
        return self.describe(host) + tail


@dataclass(frozen=True, slots=True)
class Distribution:
    """A Unix distribution's words: /etc/os-release, /etc/issue, the login screens."""

    id: str  # os-release ID
    name: str
    version_id: str
    version: str
    pretty: str
    like: str  # ID_LIKE; "" when none
    issue: str  # /etc/issue
    # What telnetd shows before its login prompt (/etc/issue.net as shown); {host}, {release}, {machine}.
    issue_net: str
    # The head of the MOTD; {release}, {machine}, {pretty}. Empty: the distribution has none.
    welcome: str
    landscape: bool = False  # Ubuntu: system information and update notes follow the welcome

    def os_release(self) -> str:
        lines = [
            f'PRETTY_NAME="{self.pretty}"',
            f'NAME="{self.name}"',
            f'VERSION_ID="{self.version_id}"',
            f'VERSION="{self.version}"',
            f"ID={self.id}",
        ]
        if self.like:
            lines.append(f"ID_LIKE={self.like}")
        return "\n".join(lines) + "\n"


_UBUNTU_WELCOME = (
    "Welcome to {pretty} (GNU/Linux {release} {machine})\n\n"
    " * Documentation:  https://help.ubuntu.com\n"
    " * Management:     https://landscape.canonical.com\n"
    " * Support:        https://ubuntu.com/advantage\n"
)


def _ubuntu(version_id: str, point: str, codename: str) -> Distribution:
    pretty = f"Ubuntu {point} LTS"
    return Distribution(
        "ubuntu",
        "Ubuntu",
        version_id,
        f"{point} LTS ({codename})",
        pretty,
        "debian",
        f"{pretty} \\n \\l\n\n",
        f"{pretty}\n",
        _UBUNTU_WELCOME,
        landscape=True,
    )


def _centos(version_id: str, version: str, pretty: str) -> Distribution:
    return Distribution(
        "centos",
        "CentOS Linux",
        version_id,
        version,
        pretty,
        "rhel fedora",
        "\\S\nKernel \\r on an \\m\n\n",
        f"{pretty}\nKernel {{release}} on an {{machine}}\n",
        "",
    )


# Debian's login screen: `uname -snrvm` (update-motd's 10-uname), then /etc/motd.
_DEBIAN_WELCOME = (
    "Linux {host} {release} {kernel_version} {machine}\n\n"
    "The programs included with the Debian GNU/Linux system are free software;\n"
    "the exact distribution terms for each program are described in the\n"
    "individual files in /usr/share/doc/*/copyright.\n\n"
    "Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\n"
    "permitted by applicable law.\n"
)


def _debian(version_id: str, codename: str) -> Distribution:
    pretty = f"Debian GNU/Linux {version_id} ({codename})"
    return Distribution(
        "debian",
        "Debian GNU/Linux",
        version_id,
        f"{version_id} ({codename})",
        pretty,
        "",
        f"Debian GNU/Linux {version_id} \\n \\l\n\n",
        f"Debian GNU/Linux {version_id}\n",
        _DEBIAN_WELCOME,
    )


DEBIAN_12 = _debian("12", "bookworm")
DEBIAN_11 = _debian("11", "bullseye")
UBUNTU_22_04 = _ubuntu("22.04", "22.04.3", "Jammy Jellyfish")
UBUNTU_18_04 = _ubuntu("18.04", "18.04.6", "Bionic Beaver")
CENTOS_7 = _centos("7", "7 (Core)", "CentOS Linux 7 (Core)")
CENTOS_6 = _centos("6", "6.10 (Final)", "CentOS release 6.10 (Final)")
FREEBSD_13 = Distribution(
    "freebsd",
    "FreeBSD",
    "13.2",
    "13.2-RELEASE",
    "FreeBSD 13.2-RELEASE",
    "",
    "",
    "\nFreeBSD/{machine} ({host}) (pts/0)\n\n",
    "{release} {machine}\n\nWelcome to FreeBSD!\n\n"
    "Release Notes, Errata: https://www.FreeBSD.org/releases/\n"
    "Security Advisories:   https://www.FreeBSD.org/security/\n"
    "FreeBSD Handbook:      https://www.FreeBSD.org/handbook/\n"
    "FreeBSD FAQ:           https://www.FreeBSD.org/faq/\n"
    "Questions List:        https://www.FreeBSD.org/lists/questions/\n"
    "FreeBSD Forums:        https://forums.FreeBSD.org/\n\n"
    "To change this login announcement, see motd(5).\n",
)


@dataclass(frozen=True, slots=True)
class Unix:
    """The kernel and distribution of a Unix host."""

    kernel: Kernel
    distribution: Distribution


_CENTOS_6 = Unix(
    Kernel("Linux", "2.6.32-754.35.1.el6.x86_64", "#1 SMP Sat Nov 7 12:42:14 UTC 2020", "x86_64"),
    CENTOS_6,
)
_CENTOS_7 = Unix(
    Kernel("Linux", "3.10.0-1160.el7.x86_64", "#1 SMP Mon Oct 19 16:18:59 UTC 2020", "x86_64"),
    CENTOS_7,
)
_UBUNTU_18 = Unix(
    Kernel("Linux", "4.15.0-213-generic", "#224-Ubuntu SMP Mon Jun 19 13:30:12 UTC 2023", "x86_64"),
    UBUNTU_18_04,
)
_UBUNTU_22 = Unix(
    Kernel("Linux", "5.15.0-91-generic", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023", "x86_64"),
    UBUNTU_22_04,
)
# (pattern in the lower-cased personality name, system); the first match wins, the last is the default.
# The kernel a name gives ("Linux 2.6.32 - 3.10": its lowest) picks the distribution of its time.
UNIXES: tuple[tuple[str, Unix], ...] = (
    (
        r"bsd",
        Unix(
            Kernel(
                "FreeBSD",
                "13.2-RELEASE",
                "FreeBSD 13.2-RELEASE releng/13.2-n254617-525ecfdad597 GENERIC",
                "amd64",
                gnu=False,
            ),
            FREEBSD_13,
        ),
    ),
    (r"\blinux 2\.6", _CENTOS_6),
    (r"\blinux 3\.", _CENTOS_7),
    (r"\blinux 4\.", _UBUNTU_18),
    (r"", _UBUNTU_22),
)


# What services say of the distribution they were built for (nmap -sV's product and version of
# the real hosts a virtual host copies: "OpenSSH 9.2p1 Debian 2+deb12u3", "Apache httpd 2.4.57
# (Debian)"): stronger evidence of the distribution than the TCP fingerprint, which only speaks
# of the kernel's generation. (pattern in the lower-cased words, system); the first match wins.
_DEBIAN_12 = Unix(
    Kernel(
        "Linux",
        "6.1.0-17-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.69-1 (2023-12-30)",
        "x86_64",
        platform=False,
    ),
    DEBIAN_12,
)
DISTRIBUTION_HINTS: tuple[tuple[str, Unix], ...] = (
    (r"deb12|bookworm", _DEBIAN_12),
    (
        r"deb11|bullseye",
        Unix(
            Kernel(
                "Linux", "5.10.0-26-amd64", "#1 SMP Debian 5.10.197-1 (2023-09-29)", "x86_64", platform=False
            ),
            DEBIAN_11,
        ),
    ),
    (r"ubuntu\S*0\.(?:18|19)\.04|4ubuntu0|bionic", _UBUNTU_18),
    (r"ubuntu", _UBUNTU_22),
    (r"\bel7\b|centos[ -]?7", _CENTOS_7),
    (r"\bel6\b|centos[ -]?6", _CENTOS_6),
    (r"\bdebian\b", _DEBIAN_12),  # Debian without a release: the current one
)


def unix_for(personality: str | None, hint: str = "") -> Unix:
    """The Unix a personality's machine runs; on Linux, what its services say (`hint`) decides
    the distribution when they name one."""
    name = (personality or "").lower()
    if hint and ("linux" in name or not name):
        words = hint.lower()
        for pattern, unix in DISTRIBUTION_HINTS:
            if re.search(pattern, words):
                return unix
    return next(unix for pattern, unix in UNIXES if re.search(pattern, name))


# -- the whole -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class System:
    """What one personality's machine is: its family, its release, its Unix face."""

    family: str
    # Words the services' profile tables match on: the family, "windows-7", "windows-server",
    # the distribution's id and release ("ubuntu", "ubuntu-18.04", "centos-7", "freebsd").
    tags: frozenset[str]
    windows: WindowsRelease | None  # Windows hosts only
    # The kernel and distribution: a Unix host's own; on other hosts the default, which is what
    # a Unix program imitated there (an FTP server's file tree, a shell) shows.
    unix: Unix


@lru_cache(maxsize=1024)
def system_for(personality: str | None, hint: str = "") -> System:
    """What the machine wearing `personality` is; `hint`: what its services say of themselves."""
    family = family_of(personality)
    unix = unix_for(personality, hint)
    if family == "windows":
        release = windows_release(personality)
        tags = {"windows", f"windows-{release.key}"} | ({"windows-server"} if release.server else set())
        return System(family, frozenset(tags), release, unix)
    tags = {family}
    if family in ("linux", "bsd", "busybox"):
        distribution = unix.distribution
        tags |= {"linux" if family == "busybox" else family, distribution.id}
        tags.add(f"{distribution.id}-{distribution.version_id}")
    return System(family, frozenset(tags), None, unix)


# -- Ubuntu's login news ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sysinfo:
    """The numbers of one Ubuntu host's MOTD (landscape-sysinfo and the update notes)."""

    disk: float  # GB
    disk_used: float  # percent
    memory: int  # percent
    processes: int
    updates: int
    security: int
    restart: bool  # "*** System restart required ***"

    @classmethod
    def draw(cls, rng: random.Random) -> Sysinfo:
        updates = rng.choice((0, 0, rng.randint(1, 12), rng.randint(13, 90)))
        return cls(
            disk=rng.choice((9.75, 19.52, 28.89, 38.58, 48.28, 96.73, 195.86)),
            disk_used=round(rng.uniform(8.0, 74.0), 1),
            memory=rng.randint(6, 58),
            processes=rng.randint(96, 260),
            updates=updates,
            security=rng.randint(0, updates) if updates else 0,
            restart=rng.random() < 0.2,
        )

    def render(self, address: str, load: float, now: float) -> str:
        stamp = time.strftime("%a %b %e %I:%M:%S %p UTC %Y", time.gmtime(now))

        def row(left: str, value: str, right: str = "", other: object = "") -> str:
            head = f"  {left:<14}{value}"
            return f"{head:<34}{right:<23}{other}".rstrip() if right else head

        lines = [
            f"  System information as of {stamp}",
            "",
            row("System load:", f"{load:.2f}", "Processes:", self.processes),
            row("Usage of /:", f"{self.disk_used}% of {self.disk:.2f}GB", "Users logged in:", 0),
            row("Memory usage:", f"{self.memory}%", "IPv4 address for eth0:", address),
            row("Swap usage:", "0%"),
            "",
            "",
            "Expanded Security Maintenance for Applications is not enabled.",
            "",
            f"{self.updates} updates can be applied immediately.",
        ]
        if self.updates:
            lines += [
                f"{self.security} of these updates are standard security updates.",
                "To see these additional updates run: apt list --upgradable",
            ]
        lines += [
            "",
            "Enable ESM Apps to receive additional future security updates.",
            "See https://ubuntu.com/esm or run: sudo pro status",
            "",
        ]
        if self.restart:
            lines += ["", "*** System restart required ***"]
        return "\n".join(lines) + "\n"
