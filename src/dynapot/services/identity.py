"""Who one virtual host is: its names, its clock and its system, the same wherever they are said.

The web page, the SMTP and FTP greetings, the banner's "[host]", the SNMP sysName, the SMB and
NetBIOS computer names and a telnet or SSH prompt all name the host; SNMP's sysUpTime, SMB's
boot time, a shell's `uptime`, IOS's `show version` and the TCP timestamp clock all tell how
long it has been up; `uname -a`, SNMP's sysDescr, /etc/os-release and the MOTD all tell which
system it runs. They must agree, or an attacker comparing them sees a fake. So each host has
one `HostIdentity`, made once by the sensor and handed to every service in
`ConnectionInfo.identity`, and the personality's TCP timestamp clock starts from its uptime.

Everything is derived from the host's address and personality, keyed with the deployment's
secret: stable across restarts, different per host, and not predictable from another
dynapot deployment's hosts. Names follow the host's OS: Windows computer names ("WIN-…",
"DESKTOP-…", "JSMITH-PC"), "gw-…" for routers, "NPI…" for printers, "srv-…" for Unix hosts.
Hosts of one network share a workgroup or Active Directory domain.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from dynapot.services.systems import Distribution, Kernel, Sysinfo, System, WindowsRelease, system_for

__all__ = ["HostIdentity", "identity_for"]

MIN_UPTIME = 3 * 3600.0  # a host seen right after its reboot is rare; keep uptimes above this
REBOOT_DAYS = (20.0, 60.0)  # patch-day reboots: each host its own period and phase


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """One virtual host's names, clock and system (`identity_for` makes them)."""

    address: str
    personality: str | None
    seed: bytes = field(repr=False)  # this host's own randomness, keyed with the deployment secret
    hostname: str  # as the host names itself in greetings, prompts, `hostname` and sysName
    boot_time: float  # Unix time of its last boot
    system: System = field(repr=False)
    computer: str  # NetBIOS computer name: upper case, at most 15 characters
    dns_host: str  # its label in DNS
    netbios_domain: str  # the workgroup, or the NetBIOS name of the AD domain
    dns_domain: str | None  # the AD domain; None for a workgroup member
    server_guid: bytes = field(repr=False)  # SMB's ServerGuid
    boots: int = 1  # how often it has booted (SNMP's snmpEngineBoots)
    # What its services are: their names ("ssh", "ftp") and what they say they are (nmap -sV's
    # products and versions): the software its shell shows installed and running.
    services: tuple[str, ...] = ()
    hint: str = ""

    @property
    def tag(self) -> str:
        """Four hex digits that tell this host from the others."""
        return self.seed[:2].hex()

    @property
    def fqdn(self) -> str:
        return f"{self.dns_host}.{self.dns_domain}" if self.dns_domain else self.dns_host

    def uptime(self, now: float | None = None) -> float:
        """Seconds since the host booted, at Unix time `now`."""
        return (time.time() if now is None else now) - self.boot_time

    def rng(self, purpose: str) -> random.Random:
        """A generator for one purpose (names, keys, file trees): the same draws every time."""
        return _rng(self.seed, purpose)

    # -- its system, in its own words ------------------------------------------------------------------

    @property
    def windows(self) -> WindowsRelease | None:
        return self.system.windows

    @property
    def kernel(self) -> Kernel:
        return self.system.unix.kernel

    @property
    def distribution(self) -> Distribution:
        return self.system.unix.distribution

    def uname(self) -> str:
        """`uname -a`."""
        return self.kernel.uname(self.hostname)

    def issue_net(self) -> str:
        """What telnetd shows before its login prompt."""
        kernel = self.kernel
        return self.distribution.issue_net.format(
            host=self.hostname, release=kernel.release, machine=kernel.machine
        )

    def load_average(self) -> tuple[float, float, float]:
        """The 1, 5 and 15 minute load: a quiet machine's, its own."""
        rng = self.rng("load")
        base = rng.choice((0.0, 0.01, 0.03, 0.08, 0.15, 0.32))
        one, five, fifteen = (round(base * rng.uniform(0.5, 1.5) + rng.uniform(0, 0.05), 2) for _ in range(3))
        return one, five, fifteen

    def motd(self, now: float) -> str:
        """The message of the day a login shows (empty where the distribution has none)."""
        distribution, kernel = self.distribution, self.kernel
        text = distribution.welcome.format(
            pretty=distribution.pretty,
            release=kernel.release,
            machine=kernel.machine,
            host=self.hostname,
            kernel_version=kernel.version,
        )
        if distribution.landscape:
            news = Sysinfo.draw(self.rng("motd")).render(self.address, self.load_average()[0], now)
            text += f"\n{news}\n"
        return text

    def last_login(self, now: float) -> str:
        """login(1)'s "Last login" line: a while ago, from a neighbour in the host's own network."""
        rng = self.rng("last-login")
        when = time.gmtime(now - rng.randrange(3600, 30 * 86400))
        # asctime: "Mon Nov  6 17:09:48 2023", as login(1) shows it.
        return f"Last login: {time.asctime(when)} from {_neighbour(self.address, rng)}\n"


def _rng(seed: bytes, purpose: str) -> random.Random:
    return random.Random(hashlib.blake2b(purpose.encode(), key=seed[:64], digest_size=16).digest())


def _neighbour(address: str, rng: random.Random) -> str:
    """Another address in the host's own /24."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "10.0.0.23"
    if ip.version != 4:
        return str(ip)
    return str(ipaddress.IPv4Address((int(ip) & ~0xFF) | rng.randrange(2, 254)))


# -- names ----------------------------------------------------------------------------------------------

_WORKGROUPS = ("WORKGROUP", "WORKGROUP", "WORKGROUP", "WORKGROUP", "OFFICE", "MSHOME", "HOME", "LAN")
_DOMAIN_HEADS = (
    "NORTH",
    "WEST",
    "BLUE",
    "RIVER",
    "SUMMIT",
    "HARBOR",
    "PINE",
    "STONE",
    "CEDAR",
    "LAKE",
    "IRON",
)
_DOMAIN_TAILS = ("TECH", "CORP", "GROUP", "SYS", "NET", "LABS", "HQ", "MED", "LOG", "FIN")
_DOMAIN_SUFFIXES = ("local", "lan", "corp", "intra")
_FIRST_NAMES = ("JOHN", "ANNA", "MIKE", "SARAH", "PAUL", "LISA", "MARK", "JULIA", "PETER", "KATE", "TOM")
# Surnames for "<initial><surname>-PC" machine names.
_SURNAME_WORDS = """
    SMITH JONES BROWN MILLER DAVIS WILSON MOORE TAYLOR WHITE HARRIS MARTIN CLARK LEWIS WALKER HALL
    ALLEN YOUNG KING WRIGHT SCOTT GREEN BAKER ADAMS NELSON HILL CAMPBELL MITCHELL ROBERTS CARTER
    PHILLIPS EVANS TURNER TORRES PARKER COLLINS EDWARDS STEWART MORRIS MURPHY COOK ROGERS MORGAN COOPER
    """
_SURNAMES = tuple(_SURNAME_WORDS.split())
_ROLES = ("FS", "APP", "SQL", "PRINT", "WEB", "FILE", "BACKUP", "HV", "EXCH", "RDS")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
DOMAIN_SHARE = 0.4  # networks whose Windows hosts are members of an AD domain


def _windows_name(release: WindowsRelease, rng: random.Random) -> str:
    """A computer name as Windows setup or an IT department gives one, upper case, at most 15 characters."""

    def chars(n: int) -> str:
        return "".join(rng.choice(_ALNUM) for _ in range(n))

    key = release.key
    if release.server:
        choice = rng.random()
        if choice < 0.4 and key not in ("nt4", "2000", "2003"):
            return f"WIN-{chars(11)}"
        if choice < 0.8:
            return f"SRV-{rng.choice(_ROLES)}{rng.randint(1, 99):02d}"
        return f"{rng.choice(_ROLES)}{rng.randint(1, 99):02d}"
    if key in ("10", "11"):
        return f"DESKTOP-{chars(7)}" if rng.random() < 0.6 else f"PC-{rng.randint(1, 9999):04d}"
    if key in ("vista", "7", "8", "8.1"):
        # Windows 7 names a machine after its first user ("JSMITH-PC"); IT departments number them.
        if rng.random() < 0.5:
            return f"{rng.choice(_ALNUM[:26])}{rng.choice(_SURNAMES)}-PC"[:15]
        return f"WS-{rng.randint(1, 9999):04d}"
    return f"{rng.choice(_FIRST_NAMES)}-{chars(6)}"[:15]


def _hostname(system: System, seed: bytes) -> str:
    if system.windows is not None:
        return _windows_name(system.windows, _rng(seed, "names"))
    if system.family == "cisco":
        return f"gw-{seed[:2].hex()}"
    if system.family == "printer":
        return f"NPI{seed[2:5].hex().upper()}"  # HP's default: NPI and six hex digits
    return f"srv-{seed[:2].hex()}"


class _Network(NamedTuple):
    """What the hosts of one LAN share: their workgroup, or their Active Directory domain."""

    workgroup: str
    domain: tuple[str, str] | None  # (NetBIOS name, DNS name) when the LAN is a domain's


def _network(address: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) a host sits in: hosts of one LAN share a workgroup or domain."""
    head, dot, last = address.rpartition(".")
    if dot and last.isdigit() and head.count(".") == 2:
        return f"{head}.0/24"  # the common case, without ipaddress's cost (a /16 has 65,536 hosts)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


@lru_cache(maxsize=4096)
def _network_names(secret: bytes, network: str) -> _Network:
    key = hashlib.blake2b(network.encode(), key=secret[:64], digest_size=16, person=b"dynapot-net").digest()
    net = random.Random(key)
    # Drawn for every network, so that all hosts of one network agree on it whatever their OS.
    workgroup = net.choice(_WORKGROUPS)
    if net.random() >= DOMAIN_SHARE:
        return _Network(workgroup, None)
    head, tail = net.choice(_DOMAIN_HEADS), net.choice(_DOMAIN_TAILS)
    return _Network(
        workgroup, ((head + tail)[:15], f"{(head + tail).lower()}.{net.choice(_DOMAIN_SUFFIXES)}")
    )


def _domain(secret: bytes, address: str, system: System) -> tuple[str, str | None]:
    """(NetBIOS domain or workgroup, DNS domain or None) of a host: its network's (9x joins no domain)."""
    network = _network_names(secret, _network(address))
    if network.domain is None or (system.windows is not None and system.windows.key == "9x"):
        return network.workgroup, None
    return network.domain


# -- the clock ------------------------------------------------------------------------------------------


def _clock(seed: bytes, now: float, uptime: float | None) -> tuple[float, int]:
    """(boot time, boots so far) of a host that reboots every few weeks at its own phase."""
    rng = random.Random(seed + b"boot")
    period = rng.uniform(*REBOOT_DAYS) * 86_400
    phase = rng.uniform(0, period)
    earlier = rng.randint(1, 20)  # boots before the ones counted here
    if uptime is not None:
        return now - uptime, earlier
    cycles, since = divmod(now + phase, period)
    return now - max(since, MIN_UPTIME), earlier + int(cycles) % 1000


def _seed(secret: bytes, address: str, personality: str | None) -> bytes:
    material = f"{address}|{personality or ''}".encode()
    return hashlib.blake2b(material, key=secret[:64], digest_size=32, person=b"dynapot-host").digest()


@lru_cache(maxsize=65_536)
def identity_for(
    address: str,
    personality: str | None = None,
    *,
    secret: bytes = b"",
    uptime: float | None = None,
    now: float | None = None,
    hint: str = "",
    services: tuple[str, ...] = (),
) -> HostIdentity:
    """The identity of the host at `address` wearing `personality`.

    `uptime` (honeyd's `set T uptime N`) fixes the uptime at `now`; otherwise the host
    reboots every 20-60 days at its own phase, so its uptime keeps growing across sensor
    restarts as a real machine's does. `hint`: what the host's services say of themselves (nmap
    -sV's products and versions), which names its distribution where they do; `services`: the
    names of the services it runs.
    """
    moment = time.time() if now is None else now
    seed = _seed(secret, address, personality)
    system = system_for(personality, hint)
    boot, boots = _clock(seed, moment, uptime)
    hostname = _hostname(system, seed)
    domain = _domain(secret, address, system)
    return HostIdentity(
        address=address,
        personality=personality,
        seed=seed,
        hostname=hostname,
        boot_time=boot,
        system=system,
        computer=hostname.upper()[:15],
        dns_host=hostname,
        netbios_domain=domain[0],
        dns_domain=domain[1],
        server_guid=hashlib.blake2b(b"server-guid", key=seed[:64], digest_size=16).digest(),
        boots=boots,
        services=services,
        hint=hint,
    )
