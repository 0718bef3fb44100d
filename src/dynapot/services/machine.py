"""One Unix virtual host as a whole machine: users, groups, CPU, memory, disks, software, processes.

The fake shell (`dynapot.services.shell`) shows a machine, and an attacker who looks twice
compares what it shows: /etc/passwd against `id` and /home, the daemons in `ps aux` against
the ports the host answers on, /proc/cpuinfo against the kernel's age, /proc/uptime against
the SNMP and TCP clocks. `machine_for` derives all of it from the host's identity (its
distribution, kernel, services, and its seeded randomness), so every host is the same machine
each time it is asked and no two hosts are clones.

Pure data: tables per distribution and per kernel generation, a few draws. The filesystem and
the commands that print these facts live in `fakefs` and `shell`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from dynapot.services.identity import HostIdentity

__all__ = ["Cpu", "Daemon", "Machine", "User", "kernel_generation", "machine_for"]


@dataclass(frozen=True, slots=True)
class User:
    """One /etc/passwd line."""

    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str

    def line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"


@dataclass(frozen=True, slots=True)
class Group:
    """One /etc/group line."""

    name: str
    gid: int
    members: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.name}:x:{self.gid}:{','.join(self.members)}"


@dataclass(frozen=True, slots=True)
class Cpu:
    """One processor model as /proc/cpuinfo and lscpu tell it."""

    vendor: str  # GenuineIntel, AuthenticAMD
    family: int
    model: int
    stepping: int
    name: str
    mhz: float
    cache_kb: int
    flags: str
    address_sizes: str
    cpuid_level: int
    microcode: str
    cores: int = 1  # drawn per host


@dataclass(frozen=True, slots=True)
class Daemon:
    """A process the machine runs from boot: its user and command line (ps's COMMAND)."""

    user: str
    command: str
    rss_kb: int = 4000
    vsz_kb: int = 16000
    state: str = "Ss"


# -- CPUs, by the kernel generation they are found with -------------------------------------------------

_FLAGS_2009 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
    "sse sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc arch_perfmon pebs bts rep_good xtopology "
    "nonstop_tsc aperfmperf pni dtes64 monitor ds_cpl vmx est tm2 ssse3 cx16 xtpr pdcm dca sse4_1 sse4_2 "
    "popcnt lahf_lm ida dts tpr_shadow vnmi flexpriority ept vpid"
)
_FLAGS_2013 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
    "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl "
    "xtopology nonstop_tsc aperfmperf eagerfpu pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 "
    "cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx f16c rdrand "
    "lahf_lm ida arat epb pln pts dtherm tpr_shadow vnmi flexpriority ept vpid fsgsbase smep erms xsaveopt"
)
_FLAGS_2017 = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
    "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good "
    "nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 "
    "sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx "
    "f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single pti intel_ppin "
    "ssbd mba ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle "
    "avx2 smep bmi2 erms invpcid rtm cqm mpx rdt_a avx512f avx512dq rdseed adx smap clflushopt clwb "
    "intel_pt avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc "
    "cqm_mbm_total cqm_mbm_local dtherm ida arat pln pts pku ospke md_clear flush_l1d arch_capabilities"
)
_FLAGS_EPYC = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
    "syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid "
    "extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes "
    "xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse "
    "3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb "
    "cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 cqm rdt_a "
    "rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc "
    "cqm_mbm_total cqm_mbm_local clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin arat npt lbrv "
    "svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic "
    "v_vmsave_vmload vgif v_spec_ctrl umip rdpid overflow_recov succor smca sme sev sev_es"
)


def _intel(
    family_model: tuple[int, int, int], name: str, mhz: float, cache: int, flags: str, bits: str
) -> Cpu:
    family, model, stepping = family_model
    level = 11 if flags is _FLAGS_2009 else 13 if flags is _FLAGS_2013 else 22
    return Cpu("GenuineIntel", family, model, stepping, name, mhz, cache, flags, bits, level, "0x0")


# (kernel generation, processors of its time)
CPUS: dict[str, tuple[Cpu, ...]] = {
    "2.6": (
        _intel(
            (6, 26, 5),
            "Intel(R) Xeon(R) CPU           E5520  @ 2.27GHz",
            2266.746,
            8192,
            _FLAGS_2009,
            "40 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 44, 2),
            "Intel(R) Xeon(R) CPU           X5650  @ 2.67GHz",
            2666.761,
            12288,
            _FLAGS_2009,
            "40 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 23, 10),
            "Intel(R) Xeon(R) CPU           E5430  @ 2.66GHz",
            2666.558,
            6144,
            _FLAGS_2009,
            "38 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 23, 10),
            "Intel(R) Core(TM)2 Quad  CPU   Q9400  @ 2.66GHz",
            2666.409,
            3072,
            _FLAGS_2009,
            "36 bits physical, 48 bits virtual",
        ),
    ),
    "3": (
        _intel(
            (6, 62, 4),
            "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz",
            2599.998,
            20480,
            _FLAGS_2013,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 63, 2),
            "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz",
            2499.996,
            30720,
            _FLAGS_2013,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 60, 3),
            "Intel(R) Xeon(R) CPU E3-1230 v3 @ 3.30GHz",
            3292.586,
            8192,
            _FLAGS_2013,
            "39 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 45, 7),
            "Intel(R) Xeon(R) CPU E5-2620 0 @ 2.00GHz",
            1999.977,
            15360,
            _FLAGS_2013,
            "46 bits physical, 48 bits virtual",
        ),
    ),
    "4": (
        _intel(
            (6, 79, 1),
            "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
            2399.998,
            35840,
            _FLAGS_2017,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 85, 4),
            "Intel(R) Xeon(R) Silver 4114 CPU @ 2.20GHz",
            2200.000,
            14080,
            _FLAGS_2017,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 85, 4),
            "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
            2095.078,
            22528,
            _FLAGS_2017,
            "46 bits physical, 48 bits virtual",
        ),
    ),
    "5+": (
        _intel(
            (6, 85, 7),
            "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",
            2999.998,
            36608,
            _FLAGS_2017,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 85, 7),
            "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz",
            2399.998,
            14080,
            _FLAGS_2017,
            "46 bits physical, 48 bits virtual",
        ),
        _intel(
            (6, 158, 10),
            "Intel(R) Xeon(R) E-2236 CPU @ 3.40GHz",
            3400.000,
            12288,
            _FLAGS_2017,
            "39 bits physical, 48 bits virtual",
        ),
        Cpu(
            "AuthenticAMD",
            23,
            49,
            0,
            "AMD EPYC 7302P 16-Core Processor",
            2994.374,
            512,
            _FLAGS_EPYC,
            "43 bits physical, 48 bits virtual",
            16,
            "0x0",
        ),
        Cpu(
            "AuthenticAMD",
            25,
            1,
            1,
            "AMD EPYC 7313P 16-Core Processor",
            2999.998,
            512,
            _FLAGS_EPYC,
            "48 bits physical, 48 bits virtual",
            16,
            "0x0",
        ),
    ),
}
_MICROCODE = ("0x19", "0x1d", "0x42e", "0x5003604", "0xb000040", "0x2006e05", "0xf0", "0xde", "0x830107a")


def kernel_generation(release: str) -> str:
    """The kernel's generation as the CPU and kernel-thread tables key it: "2.6", "3", "4", "5+"."""
    found = re.match(r"(\d+)\.(\d+)", release)
    major = int(found.group(1)) if found else 5
    return "2.6" if major == 2 else "3" if major == 3 else "4" if major == 4 else "5+"


# -- what each distribution installs ---------------------------------------------------------------------

_NOLOGIN_DEB, _NOLOGIN_RH = "/usr/sbin/nologin", "/sbin/nologin"

# System accounts of a fresh install, in /etc/passwd order: (name, uid, gid, gecos, home, shell).
_DEBIAN_USERS = (
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("daemon", 1, 1, "daemon", "/usr/sbin", _NOLOGIN_DEB),
    ("bin", 2, 2, "bin", "/bin", _NOLOGIN_DEB),
    ("sys", 3, 3, "sys", "/dev", _NOLOGIN_DEB),
    ("sync", 4, 65534, "sync", "/bin", "/bin/sync"),
    ("games", 5, 60, "games", "/usr/games", _NOLOGIN_DEB),
    ("man", 6, 12, "man", "/var/cache/man", _NOLOGIN_DEB),
    ("lp", 7, 7, "lp", "/var/spool/lpd", _NOLOGIN_DEB),
    ("mail", 8, 8, "mail", "/var/mail", _NOLOGIN_DEB),
    ("news", 9, 9, "news", "/var/spool/news", _NOLOGIN_DEB),
    ("uucp", 10, 10, "uucp", "/var/spool/uucp", _NOLOGIN_DEB),
    ("proxy", 13, 13, "proxy", "/bin", _NOLOGIN_DEB),
    ("www-data", 33, 33, "www-data", "/var/www", _NOLOGIN_DEB),
    ("backup", 34, 34, "backup", "/var/backups", _NOLOGIN_DEB),
    ("list", 38, 38, "Mailing List Manager", "/var/list", _NOLOGIN_DEB),
    ("irc", 39, 39, "ircd", "/run/ircd", _NOLOGIN_DEB),
)
_DEBIAN_12_USERS = (
    *_DEBIAN_USERS,
    ("_apt", 42, 65534, "", "/nonexistent", _NOLOGIN_DEB),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", _NOLOGIN_DEB),
    ("systemd-network", 998, 998, "systemd Network Management", "/", _NOLOGIN_DEB),
    ("messagebus", 100, 107, "", "/nonexistent", _NOLOGIN_DEB),
    ("sshd", 101, 65534, "", "/run/sshd", _NOLOGIN_DEB),
)
_DEBIAN_11_USERS = (
    *_DEBIAN_USERS[:15],
    ("gnats", 41, 41, "Gnats Bug-Reporting System (admin)", "/var/lib/gnats", _NOLOGIN_DEB),
    ("irc", 39, 39, "ircd", "/var/run/ircd", _NOLOGIN_DEB),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", _NOLOGIN_DEB),
    ("_apt", 100, 65534, "", "/nonexistent", _NOLOGIN_DEB),
    ("systemd-timesync", 101, 101, "systemd Time Synchronization,,,", "/run/systemd", _NOLOGIN_DEB),
    ("systemd-network", 102, 103, "systemd Network Management,,,", "/run/systemd", _NOLOGIN_DEB),
    ("systemd-resolve", 103, 104, "systemd Resolver,,,", "/run/systemd", _NOLOGIN_DEB),
    ("messagebus", 104, 110, "", "/nonexistent", _NOLOGIN_DEB),
    ("sshd", 105, 65534, "", "/run/sshd", _NOLOGIN_DEB),
)
_UBUNTU_22_USERS = (
    *_DEBIAN_USERS[:15],
    ("irc", 39, 39, "ircd", "/run/ircd", _NOLOGIN_DEB),
    ("gnats", 41, 41, "Gnats Bug-Reporting System (admin)", "/var/lib/gnats", _NOLOGIN_DEB),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", _NOLOGIN_DEB),
    ("_apt", 100, 65534, "", "/nonexistent", _NOLOGIN_DEB),
    ("systemd-network", 101, 102, "systemd Network Management,,,", "/run/systemd", _NOLOGIN_DEB),
    ("systemd-resolve", 102, 103, "systemd Resolver,,,", "/run/systemd", _NOLOGIN_DEB),
    ("messagebus", 103, 104, "", "/nonexistent", _NOLOGIN_DEB),
    ("systemd-timesync", 104, 105, "systemd Time Synchronization,,,", "/run/systemd", _NOLOGIN_DEB),
    ("pollinate", 105, 1, "", "/var/cache/pollinate", "/bin/false"),
    ("sshd", 106, 65534, "", "/run/sshd", _NOLOGIN_DEB),
    ("syslog", 107, 113, "", "/home/syslog", _NOLOGIN_DEB),
    ("uuidd", 108, 114, "", "/run/uuidd", _NOLOGIN_DEB),
    ("tcpdump", 109, 115, "", "/nonexistent", _NOLOGIN_DEB),
    ("tss", 110, 116, "TPM software stack,,,", "/var/lib/tpm", "/bin/false"),
    ("landscape", 111, 117, "", "/var/lib/landscape", _NOLOGIN_DEB),
    ("fwupd-refresh", 112, 118, "fwupd-refresh user,,,", "/run/systemd", _NOLOGIN_DEB),
    ("usbmux", 113, 46, "usbmux daemon,,,", "/var/lib/usbmux", _NOLOGIN_DEB),
    ("lxd", 999, 100, "", "/var/snap/lxd/common/lxd", "/bin/false"),
)
_UBUNTU_18_USERS = (
    *_DEBIAN_USERS[:15],
    ("irc", 39, 39, "ircd", "/var/run/ircd", _NOLOGIN_DEB),
    ("gnats", 41, 41, "Gnats Bug-Reporting System (admin)", "/var/lib/gnats", _NOLOGIN_DEB),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", _NOLOGIN_DEB),
    ("systemd-network", 100, 102, "systemd Network Management,,,", "/run/systemd/netif", _NOLOGIN_DEB),
    ("systemd-resolve", 101, 103, "systemd Resolver,,,", "/run/systemd/resolve", _NOLOGIN_DEB),
    ("syslog", 102, 106, "", "/home/syslog", _NOLOGIN_DEB),
    ("messagebus", 103, 107, "", "/nonexistent", _NOLOGIN_DEB),
    ("_apt", 104, 65534, "", "/nonexistent", _NOLOGIN_DEB),
    ("lxd", 105, 65534, "", "/var/lib/lxd/", "/bin/false"),
    ("uuidd", 106, 110, "", "/run/uuidd", _NOLOGIN_DEB),
    ("dnsmasq", 107, 65534, "dnsmasq,,,", "/var/lib/misc", _NOLOGIN_DEB),
    ("landscape", 108, 112, "", "/var/lib/landscape", _NOLOGIN_DEB),
    ("pollinate", 109, 1, "", "/var/cache/pollinate", "/bin/false"),
    ("sshd", 110, 65534, "", "/run/sshd", _NOLOGIN_DEB),
)
_RHEL_USERS = (
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("bin", 1, 1, "bin", "/bin", _NOLOGIN_RH),
    ("daemon", 2, 2, "daemon", "/sbin", _NOLOGIN_RH),
    ("adm", 3, 4, "adm", "/var/adm", _NOLOGIN_RH),
    ("lp", 4, 7, "lp", "/var/spool/lpd", _NOLOGIN_RH),
    ("sync", 5, 0, "sync", "/sbin", "/bin/sync"),
    ("shutdown", 6, 0, "shutdown", "/sbin", "/sbin/shutdown"),
    ("halt", 7, 0, "halt", "/sbin", "/sbin/halt"),
    ("mail", 8, 12, "mail", "/var/spool/mail", _NOLOGIN_RH),
)
_CENTOS_7_USERS = (
    *_RHEL_USERS,
    ("operator", 11, 0, "operator", "/root", _NOLOGIN_RH),
    ("games", 12, 100, "games", "/usr/games", _NOLOGIN_RH),
    ("ftp", 14, 50, "FTP User", "/var/ftp", _NOLOGIN_RH),
    ("nobody", 99, 99, "Nobody", "/", _NOLOGIN_RH),
    ("systemd-network", 192, 192, "systemd Network Management", "/", _NOLOGIN_RH),
    ("dbus", 81, 81, "System message bus", "/", _NOLOGIN_RH),
    ("polkitd", 999, 998, "User for polkitd", "/", _NOLOGIN_RH),
    ("sshd", 74, 74, "Privilege-separated SSH", "/var/empty/sshd", _NOLOGIN_RH),
    ("postfix", 89, 89, "", "/var/spool/postfix", _NOLOGIN_RH),
    ("chrony", 998, 996, "", "/var/lib/chrony", _NOLOGIN_RH),
)
_CENTOS_6_USERS = (
    *_RHEL_USERS,
    ("uucp", 10, 14, "uucp", "/var/spool/uucp", _NOLOGIN_RH),
    ("operator", 11, 0, "operator", "/root", _NOLOGIN_RH),
    ("games", 12, 100, "games", "/usr/games", _NOLOGIN_RH),
    ("gopher", 13, 30, "gopher", "/var/gopher", _NOLOGIN_RH),
    ("ftp", 14, 50, "FTP User", "/var/ftp", _NOLOGIN_RH),
    ("nobody", 99, 99, "Nobody", "/", _NOLOGIN_RH),
    ("dbus", 81, 81, "System message bus", "/", _NOLOGIN_RH),
    ("vcsa", 69, 69, "virtual console memory owner", "/dev", _NOLOGIN_RH),
    ("saslauth", 499, 76, "Saslauthd user", "/var/empty/saslauth", _NOLOGIN_RH),
    ("postfix", 89, 89, "", "/var/spool/postfix", _NOLOGIN_RH),
    ("sshd", 74, 74, "Privilege-separated SSH", "/var/empty/sshd", _NOLOGIN_RH),
)

# Groups of a fresh install: (name, gid); the admin's extra groups by name.
_DEBIAN_GROUPS = (
    ("root", 0),
    ("daemon", 1),
    ("bin", 2),
    ("sys", 3),
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("lp", 7),
    ("mail", 8),
    ("news", 9),
    ("uucp", 10),
    ("man", 12),
    ("proxy", 13),
    ("kmem", 15),
    ("dialout", 20),
    ("fax", 21),
    ("voice", 22),
    ("cdrom", 24),
    ("floppy", 25),
    ("tape", 26),
    ("sudo", 27),
    ("audio", 29),
    ("dip", 30),
    ("www-data", 33),
    ("backup", 34),
    ("operator", 37),
    ("list", 38),
    ("irc", 39),
    ("src", 40),
    ("shadow", 42),
    ("utmp", 43),
    ("video", 44),
    ("sasl", 45),
    ("plugdev", 46),
    ("staff", 50),
    ("games", 60),
    ("users", 100),
    ("nogroup", 65534),
)
_RHEL_GROUPS = (
    ("root", 0),
    ("bin", 1),
    ("daemon", 2),
    ("sys", 3),
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("lp", 7),
    ("mem", 8),
    ("kmem", 9),
    ("wheel", 10),
    ("cdrom", 11),
    ("mail", 12),
    ("man", 15),
    ("dialout", 18),
    ("floppy", 19),
    ("games", 20),
    ("tape", 33),
    ("video", 39),
    ("ftp", 50),
    ("lock", 54),
    ("audio", 63),
    ("nobody", 99),
    ("users", 100),
    ("utmp", 22),
    ("utempter", 35),
    ("ssh_keys", 999),
    ("input", 998),
    ("systemd-journal", 190),
    ("systemd-network", 192),
    ("dbus", 81),
    ("polkitd", 997),
    ("sshd", 74),
    ("postdrop", 90),
    ("postfix", 89),
    ("chrony", 996),
)


@dataclass(frozen=True, slots=True)
class _Flavour:
    """What one distribution release installs and how its tools speak."""

    users: tuple[tuple[str, int, int, str, str, str], ...]
    groups: tuple[tuple[str, int], ...]
    admin_groups: tuple[str, ...]  # the first user's extra groups
    admins: tuple[str, ...]  # names the first user is given (cloud images' own, then people's)
    merged_usr: bool  # /bin -> usr/bin
    systemd: bool
    nologin: str
    lib: str  # where systemd's programs are: /lib/systemd, /usr/lib/systemd
    old_procps: bool  # procps 3.2 (CentOS 6): another `free`
    packages: tuple[str, ...]
    rhel: bool = False


_PEOPLE = (
    "jsmith",
    "mwilson",
    "dbrown",
    "alex",
    "david",
    "michael",
    "chris",
    "andrew",
    "mark",
    "sysadmin",
    "ops",
    "deploy",
    "admin",
    "it",
    "paul",
    "tom",
    "anna",
    "jmiller",
    "kevin",
    "sam",
    "webadmin",
)
_NAMED = frozenset({"debian", "ubuntu", "alex", "david", "michael", "chris", "andrew", "mark", "paul", "tom"})
_EXTRA_USERS = ("deploy", "git", "jenkins", "backup", "support", "dev", "test", "oracle", "postgres")

_DEB_BASE = (
    "adduser",
    "apt",
    "base-files",
    "bash",
    "bsdutils",
    "coreutils",
    "cron",
    "curl",
    "dash",
    "debianutils",
    "diffutils",
    "dpkg",
    "e2fsprogs",
    "findutils",
    "grep",
    "gzip",
    "hostname",
    "ifupdown",
    "iproute2",
    "iputils-ping",
    "less",
    "libc6",
    "login",
    "logrotate",
    "lsof",
    "mount",
    "nano",
    "net-tools",
    "openssh-client",
    "openssl",
    "passwd",
    "procps",
    "rsyslog",
    "sed",
    "sudo",
    "systemd",
    "tar",
    "tzdata",
    "util-linux",
    "vim-tiny",
    "wget",
)
_RH_BASE = (
    "basesystem",
    "bash",
    "coreutils",
    "cronie",
    "curl",
    "e2fsprogs",
    "filesystem",
    "findutils",
    "glibc",
    "grep",
    "gzip",
    "hostname",
    "initscripts",
    "iproute",
    "iputils",
    "less",
    "logrotate",
    "net-tools",
    "openssh-clients",
    "openssl",
    "passwd",
    "postfix",
    "procps",
    "rpm",
    "rsyslog",
    "sed",
    "sudo",
    "tar",
    "tzdata",
    "util-linux",
    "vim-minimal",
    "wget",
    "yum",
)

FLAVOURS: dict[str, _Flavour] = {
    "debian-12": _Flavour(
        _DEBIAN_12_USERS,
        _DEBIAN_GROUPS,
        ("cdrom", "floppy", "sudo", "audio", "dip", "video", "plugdev", "users", "netdev"),
        ("debian", "admin"),
        True,
        True,
        _NOLOGIN_DEB,
        "/lib/systemd",
        False,
        _DEB_BASE,
    ),
    "debian-11": _Flavour(
        _DEBIAN_11_USERS,
        _DEBIAN_GROUPS,
        ("cdrom", "floppy", "sudo", "audio", "dip", "video", "plugdev", "netdev"),
        ("debian", "admin"),
        False,
        True,
        _NOLOGIN_DEB,
        "/lib/systemd",
        False,
        _DEB_BASE,
    ),
    "ubuntu-22.04": _Flavour(
        _UBUNTU_22_USERS,
        _DEBIAN_GROUPS,
        ("adm", "cdrom", "sudo", "dip", "plugdev", "lxd"),
        ("ubuntu",),
        True,
        True,
        _NOLOGIN_DEB,
        "/lib/systemd",
        False,
        (*_DEB_BASE, "snapd", "ubuntu-minimal"),
    ),
    "ubuntu-18.04": _Flavour(
        _UBUNTU_18_USERS,
        _DEBIAN_GROUPS,
        ("adm", "cdrom", "sudo", "dip", "plugdev", "lxd"),
        ("ubuntu",),
        False,
        True,
        _NOLOGIN_DEB,
        "/lib/systemd",
        False,
        (*_DEB_BASE, "snapd", "ubuntu-minimal"),
    ),
    "centos-7": _Flavour(
        _CENTOS_7_USERS,
        _RHEL_GROUPS,
        ("wheel",),
        ("centos",),
        True,
        True,
        _NOLOGIN_RH,
        "/usr/lib/systemd",
        False,
        (*_RH_BASE, "systemd", "chrony", "firewalld"),
        rhel=True,
    ),
    "centos-6": _Flavour(
        _CENTOS_6_USERS,
        _RHEL_GROUPS,
        ("wheel",),
        (),
        False,
        False,
        _NOLOGIN_RH,
        "/lib/udev",
        True,
        (*_RH_BASE, "upstart", "ntp", "iptables"),
        rhel=True,
    ),
}


def _flavour(identity: HostIdentity) -> _Flavour:
    distribution = identity.distribution
    return FLAVOURS.get(f"{distribution.id}-{distribution.version_id}", FLAVOURS["debian-12"])


# -- the daemons a host's services mean ------------------------------------------------------------------

# (pattern in "service-name product", Debian package, RHEL package, service user, its uid base).
_SOFTWARE: tuple[tuple[str, str, str], ...] = (
    (r"nginx", "nginx", "nginx"),
    (r"apache|httpd|\bhttps?\b|\bwww\b", "apache2", "httpd"),
    (r"proftpd", "proftpd-basic", "proftpd"),
    (r"pure-?ftpd", "pure-ftpd", "pure-ftpd"),
    (r"vsftpd|\bftp\b", "vsftpd", "vsftpd"),
    (r"exim", "exim4", "exim"),
    (r"postfix|\bsmtp\b", "postfix", "postfix"),
    (r"mysql|mariadb", "mariadb-server", "mariadb-server"),
    (r"snmp", "snmpd", "net-snmp"),
    (r"telnet", "openbsd-inetd", "telnet-server"),
    (r"samba|smb|netbios", "samba", "samba"),
    (r"ssh", "openssh-server", "openssh-server"),
)


def _software(identity: HostIdentity, flavour: _Flavour) -> tuple[str, ...]:
    """Packages for what the host's services say they are (sshd always: it is how one gets in)."""
    words = [f"{name} {identity.hint}".lower() for name in identity.services] or [identity.hint.lower()]
    found: list[str] = ["openssh-server"]
    for text in words:
        for pattern, deb, rpm in _SOFTWARE:
            if re.search(pattern, text):
                found.append(rpm if flavour.rhel else deb)
                break
    # The hint alone names products ("vsftpd 3.0.3 Postfix smtpd"): each of them.
    for pattern, deb, rpm in _SOFTWARE:
        if re.search(pattern, identity.hint.lower()):
            found.append(rpm if flavour.rhel else deb)
    return tuple(dict.fromkeys(found))


_SNMPD_DEBIAN = (
    "/usr/sbin/snmpd -LOw -u Debian-snmp -g Debian-snmp -I -smux mteTrigger mteTriggerConf"
    " -f -p /run/snmpd.pid"
)
_MYSQLD_RHEL = (
    "/usr/libexec/mysqld --basedir=/usr --datadir=/var/lib/mysql --plugin-dir=/usr/lib64/mysql/plugin"
    " --log-error=/var/log/mariadb/mariadb.log --pid-file=/var/run/mariadb/mariadb.pid"
    " --socket=/var/lib/mysql/mysql.sock"
)
_DBUS = (
    "/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only"
)


def _daemons(
    packages: tuple[str, ...], flavour: _Flavour, identity: HostIdentity, cores: int
) -> tuple[Daemon, ...]:
    rhel, systemd = flavour.rhel, flavour.systemd
    web = "apache" if rhel else "www-data"
    lib = flavour.lib
    out: list[Daemon] = []
    if systemd:
        out += [
            Daemon("root", f"{lib}/systemd-journald", 24000, 48000, "Ss"),
            Daemon("root", f"{lib}/systemd-udevd", 7000, 25000, "Ss"),
        ]
        if not rhel:
            out.append(
                Daemon(
                    "systemd-timesync"
                    if "systemd-timesync" in {u[0] for u in flavour.users}
                    else "systemd-network",
                    f"{lib}/systemd-timesyncd",
                    6800,
                    90000,
                    "Ssl",
                )
            )
        out.append(
            Daemon(
                "dbus" if rhel else "messagebus",
                _DBUS,
                4600,
                9000,
                "Ss",
            )
        )
        out.append(Daemon("root", f"{lib}/systemd-logind", 7600, 17000, "Ss"))
        out.append(Daemon("root", "/usr/sbin/crond -n" if rhel else "/usr/sbin/cron -f", 2600, 6600, "Ss"))
        out.append(
            Daemon(
                "root",
                "/usr/sbin/rsyslogd -n" if rhel else "/usr/sbin/rsyslogd -n -iNONE",
                5000,
                220000,
                "Ssl",
            )
        )
        if rhel:
            out.append(Daemon("polkitd", "/usr/lib/polkit-1/polkitd --no-debug", 12000, 612000, "Ssl"))
            out.append(Daemon("chrony", "/usr/sbin/chronyd", 1800, 117000, "S"))
        out.append(
            Daemon(
                "root",
                "/sbin/agetty --noclear tty1 linux"
                if rhel
                else "/sbin/agetty -o -p -- \\u --noclear - linux",
                1900,
                5900,
                "Ss+",
            )
        )
    else:  # CentOS 6: upstart and SysV scripts
        out += [
            Daemon("root", "/sbin/udevd -d", 1100, 10600, "S<s"),
            Daemon("root", "auditd", 900, 27600, "S<sl"),
            Daemon("root", "/sbin/rsyslogd -i /var/run/syslogd.pid -c 5", 1600, 249000, "Sl"),
            Daemon("dbus", "dbus-daemon --system", 1000, 21400, "Ss"),
            Daemon("root", "crond", 1300, 117000, "Ss"),
            Daemon("root", "/sbin/mingetty /dev/tty1", 700, 4000, "Ss+"),
        ]
    if "openssh-server" in packages:
        if identity.distribution.id == "centos":
            command = "/usr/sbin/sshd -D" if systemd else "/usr/sbin/sshd"
        else:
            command = "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"
        out.append(Daemon("root", command, 9200, 15400, "Ss"))
    for package in packages:
        if package == "apache2":
            out.append(Daemon("root", "/usr/sbin/apache2 -k start", 10200, 6800 + 200000, "Ss"))
            out += [Daemon(web, "/usr/sbin/apache2 -k start", 6300, 1213000, "Sl")] * 2
        elif package == "httpd":
            out.append(
                Daemon(
                    "root",
                    "/usr/sbin/httpd -DFOREGROUND" if systemd else "/usr/sbin/httpd",
                    5200,
                    224000,
                    "Ss",
                )
            )
            out += [
                Daemon(
                    web, "/usr/sbin/httpd -DFOREGROUND" if systemd else "/usr/sbin/httpd", 3100, 226000, "S"
                )
            ] * 5
        elif package == "nginx":
            out.append(
                Daemon(
                    "root",
                    "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
                    1700,
                    10500,
                    "Ss",
                )
            )
            out += [Daemon(web if not rhel else "nginx", "nginx: worker process", 5500, 11200, "S")] * min(
                cores, 4
            )
        elif package in ("vsftpd",):
            out.append(
                Daemon(
                    "root",
                    "/usr/sbin/vsftpd /etc/vsftpd/vsftpd.conf"
                    if rhel
                    else "/usr/sbin/vsftpd /etc/vsftpd.conf",
                    2100,
                    6900,
                    "Ss",
                )
            )
        elif package in ("proftpd-basic", "proftpd"):
            out.append(
                Daemon(
                    "proftpd" if not rhel else "nobody", "proftpd: (accepting connections)", 3900, 22000, "Ss"
                )
            )
        elif package == "pure-ftpd":
            out.append(Daemon("root", "pure-ftpd (SERVER)", 1800, 10000, "Ss"))
        elif package == "postfix":
            master = "/usr/libexec/postfix/master -w" if rhel else "/usr/lib/postfix/sbin/master -w"
            out += [
                Daemon("root", master, 4600, 42000, "Ss"),
                Daemon("postfix", "pickup -l -t unix -u -c", 6800, 42500, "S"),
                Daemon("postfix", "qmgr -l -t unix -u", 6900, 42600, "S"),
            ]
        elif package in ("exim4", "exim"):
            out.append(
                Daemon("Debian-exim" if not rhel else "exim", "/usr/sbin/exim4 -bd -q30m", 2600, 17500, "Ss")
            )
        elif package == "mariadb-server":
            command = "/usr/sbin/mariadbd" if identity.distribution.id == "debian" else "/usr/sbin/mysqld"
            if rhel:
                command = _MYSQLD_RHEL
            out.append(Daemon("mysql", command, 88000, 1270000, "Ssl"))
        elif package in ("snmpd", "net-snmp"):
            user = "root" if rhel else "Debian-snmp"
            out.append(
                Daemon(
                    user,
                    _SNMPD_DEBIAN if not rhel else "/usr/sbin/snmpd -LS0-6d -f",
                    9800,
                    24000,
                    "Ss",
                )
            )
        elif package in ("openbsd-inetd", "telnet-server"):
            out.append(
                Daemon(
                    "root",
                    "/usr/sbin/inetd"
                    if not rhel
                    else "/usr/sbin/xinetd -stayalive -pidfile /var/run/xinetd.pid",
                    1200,
                    4300,
                    "Ss",
                )
            )
        elif package == "samba":
            out += [
                Daemon("root", "/usr/sbin/smbd --foreground --no-process-group", 20500, 81000, "Ss"),
                Daemon("root", "/usr/sbin/nmbd --foreground --no-process-group", 15400, 61000, "Ss"),
            ]
    return tuple(out)


# Accounts the software adds: package -> (name, gecos, home, its fixed uid on RHEL or 0).
_SERVICE_ACCOUNTS = {
    "postfix": ("postfix", "", "/var/spool/postfix", 89),
    "vsftpd": ("ftp", "ftp daemon,,,", "/srv/ftp", 14),
    "proftpd-basic": ("proftpd", "", "/run/proftpd", 0),
    "mariadb-server": ("mysql", "MySQL Server,,,", "/nonexistent", 27),
    "snmpd": ("Debian-snmp", "", "/var/lib/snmp", 0),
    "exim4": ("Debian-exim", "", "/var/spool/exim4", 0),
    "nginx": ("nginx", "nginx user", "/var/cache/nginx", 997),
    "httpd": ("apache", "Apache", "/usr/share/httpd", 48),
}


# -- the machine -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Machine:
    """Everything one Unix virtual host is, beyond its identity (`machine_for` makes it)."""

    identity: HostIdentity
    users: tuple[User, ...]
    groups: tuple[Group, ...]
    admin: User  # the first human account
    cpu: Cpu
    memory_kb: int  # MemTotal
    memory_used: float  # share of it in use, as free/meminfo show
    disk_kb: int  # the root filesystem
    disk_used: float
    packages: tuple[str, ...]
    daemons: tuple[Daemon, ...]
    installed: float  # Unix time the system was installed (the age of /etc and the home directories)
    nameservers: tuple[str, ...]
    search: str
    merged_usr: bool
    systemd: bool
    old_procps: bool
    nologin: str

    def user(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)

    def group_of(self, gid: int) -> Group | None:
        return next((g for g in self.groups if g.gid == gid), None)

    def groups_of(self, user: User) -> list[Group]:
        """`id`'s groups: the primary first, then the others in /etc/group order."""
        primary = self.group_of(user.gid)
        others = [g for g in self.groups if user.name in g.members and g.gid != user.gid]
        return ([primary] if primary else []) + others

    def passwd(self) -> str:
        return "".join(u.line() + "\n" for u in self.users)

    def group_file(self) -> str:
        return "".join(g.line() + "\n" for g in self.groups)

    def with_login(self, name: str) -> Machine:
        """This machine with `name` an account (an attacker may log in as anyone the policy accepts)."""
        if self.user(name) is not None:
            return self
        uid = max((u.uid for u in self.users if 500 <= u.uid < 60000), default=999) + 1
        user = User(name, uid, uid, "", f"/home/{name}", "/bin/bash")
        users = (*self.users, user)
        groups = (*self.groups, Group(name, uid))
        return replace(self, users=users, groups=groups)


def _draw_cpu(identity: HostIdentity, rng: random.Random) -> Cpu:
    model = rng.choice(CPUS[kernel_generation(identity.kernel.release)])
    cores = (
        rng.choice((1, 2, 2, 4, 4, 4, 8, 8, 16))
        if identity.kernel.release[0] != "2"
        else rng.choice((1, 2, 4, 4, 8))
    )
    jitter = model.mhz if model.vendor == "GenuineIntel" else round(model.mhz + rng.uniform(-4, 4), 3)
    return Cpu(
        model.vendor,
        model.family,
        model.model,
        model.stepping,
        model.name,
        jitter,
        model.cache_kb,
        model.flags,
        model.address_sizes,
        model.cpuid_level,
        rng.choice(_MICROCODE),
        cores,
    )


@lru_cache(maxsize=1024)
def machine_for(identity: HostIdentity) -> Machine:
    """The machine behind a Unix host's identity: the same every time, its own per host."""
    rng = identity.rng("machine")
    flavour = _flavour(identity)
    cpu = _draw_cpu(identity, rng)
    old = identity.kernel.release.startswith("2.")
    memory_gb = rng.choice((1, 2, 4, 4, 8) if old else (2, 4, 8, 8, 16, 16, 32, 64))
    memory_kb = memory_gb * 1024 * 1024 - rng.randrange(90_000, 260_000)
    disk_kb = rng.choice((20, 30, 40, 50, 80, 100, 200, 250, 500)) * 1024 * 1024 - rng.randrange(0, 900_000)
    packages = (*flavour.packages, *_software(identity, flavour))

    users = [User(*row) for row in flavour.users]
    groups: dict[str, Group] = {name: Group(name, gid) for name, gid in flavour.groups}
    for user in users:  # every primary group is in /etc/group
        if all(g.gid != user.gid for g in groups.values()):
            groups[user.name] = Group(user.name, user.gid)
    taken = {u.uid for u in users} | {g.gid for g in groups.values()}
    for package in packages:
        account = _SERVICE_ACCOUNTS.get(package)
        if account is None or any(u.name == account[0] for u in users):
            continue
        name, gecos, home, fixed = account
        number = fixed if flavour.rhel and fixed else min(n for n in range(100, 999) if n not in taken)
        taken.add(number)
        users.append(User(name, number, number, gecos, home, flavour.nologin))
        groups.setdefault(name, Group(name, number))
    admin_names = flavour.admins if flavour.admins and rng.random() < 0.45 else _PEOPLE
    admin_name = rng.choice(admin_names)
    people = [admin_name] + [
        n for n in rng.sample(_EXTRA_USERS, rng.choice((0, 0, 1, 1, 2))) if n != admin_name
    ]
    for index, name in enumerate(people):
        uid = 1000 + index if not old else 500 + index
        gecos = name.capitalize() + ",,," if index == 0 and name in _NAMED else ""
        users.append(User(name, uid, uid, gecos, f"/home/{name}", "/bin/bash"))
        groups[name] = Group(name, uid)
    for extra in flavour.admin_groups:
        group = groups.get(extra) or Group(extra, {"netdev": 106, "lxd": 110}.get(extra, 120))
        groups[extra] = Group(group.name, group.gid, (*group.members, admin_name))
    installed = identity.boot_time - rng.uniform(90, 900) * 86_400
    network = identity.address.rpartition(".")[0]
    nameservers = (
        (f"{network}.1",) if rng.random() < 0.5 else (f"{network}.{rng.choice((2, 10, 53, 254))}", "8.8.8.8")
    )
    if flavour.systemd and identity.distribution.id == "ubuntu":
        nameservers = ("127.0.0.53",)
    return Machine(
        identity=identity,
        users=tuple(users),
        groups=tuple(sorted(groups.values(), key=lambda g: (g.gid >= 1000, g.gid == 65534, g.gid))),
        admin=next(u for u in users if u.name == admin_name),
        cpu=cpu,
        memory_kb=memory_kb,
        memory_used=rng.uniform(0.08, 0.45),
        disk_kb=disk_kb,
        disk_used=rng.uniform(0.06, 0.7),
        packages=packages,
        daemons=_daemons(packages, flavour, identity, cpu.cores),
        installed=installed,
        nameservers=nameservers,
        search=identity.dns_domain or "localdomain" if flavour.rhel else identity.dns_domain or "",
        merged_usr=flavour.merged_usr,
        systemd=flavour.systemd,
        old_procps=flavour.old_procps,
        nologin=flavour.nologin,
    )
