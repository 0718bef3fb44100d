# ruff: noqa: E501  (tables of real command lines and kernel thread names)
"""What a Unix machine says about itself at a moment: /proc's files, ps, free, df, lscpu.

Pure functions of a `Machine` (and the session's login and the time): the same machine gives
the same CPU, memory and processes in every session, and the clocks count from the boot the
host's SNMP and TCP timestamps count from. Layouts are those of procps-ng and coreutils
(Debian 12's, checked against the real tools in tests/unit/test_shell_formats.py); CentOS 6's
procps 3.2 `free` has its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from dynapot.services.machine import Machine, kernel_generation

__all__ = ["Process", "cpuinfo", "df", "free", "human", "lscpu", "meminfo", "processes", "ps", "version"]

# /proc/version's builder and compiler, per distribution release.
_BUILDERS = {
    "debian-12": "(debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40)",
    "debian-11": "(debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2)",
    "ubuntu-22.04": "(buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38)",
    "ubuntu-18.04": "(buildd@lcy02-amd64-086) (gcc version 7.5.0 (Ubuntu 7.5.0-3ubuntu1~18.04))",
    "centos-7": "(mockbuild@kbuilder.bsys.centos.org) (gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) )",
    "centos-6": "(mockbuild@c1bm.rdu2.centos.org) (gcc version 4.4.7 20120313 (Red Hat 4.4.7-23) (GCC) )",
}  # fmt: skip


def version(machine: Machine) -> str:
    """/proc/version: the kernel `uname -r` and `uname -v` name, and who built it."""
    kernel, distribution = machine.identity.kernel, machine.identity.distribution
    builder = _BUILDERS.get(f"{distribution.id}-{distribution.version_id}", _BUILDERS["debian-12"])
    return f"Linux version {kernel.release} {builder} {kernel.version}\n"


def cpuinfo(machine: Machine) -> str:
    """/proc/cpuinfo: one block per logical processor."""
    cpu = machine.cpu
    modern = not machine.identity.kernel.release.startswith("2.")
    blocks = []
    for n in range(cpu.cores):
        rows = [
            ("processor", n),
            ("vendor_id", cpu.vendor),
            ("cpu family", cpu.family),
            ("model", cpu.model),
            ("model name", cpu.name),
            ("stepping", cpu.stepping),
            ("microcode", cpu.microcode),
            ("cpu MHz", f"{cpu.mhz:.3f}"),
            ("cache size", f"{cpu.cache_kb} KB"),
            ("physical id", 0),
            ("siblings", cpu.cores),
            ("core id", n),
            ("cpu cores", cpu.cores),
            ("apicid", n),
            ("initial apicid", n),
            ("fpu", "yes"),
            ("fpu_exception", "yes"),
            ("cpuid level", cpu.cpuid_level),
            ("wp", "yes"),
            ("flags", cpu.flags),
        ]
        if modern and "pti" in cpu.flags.split():
            rows.append(
                (
                    "bugs",
                    "cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs taa itlb_multihit",
                )
            )
        elif modern:
            rows.append(("bugs", "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb"))
        rows += [
            ("bogomips", f"{cpu.mhz * 2:.2f}"),
            ("clflush size", 64),
            ("cache_alignment", 64),
            ("address sizes", cpu.address_sizes),
            ("power management", ""),
        ]
        lines = []
        for key, value in rows:
            tabs = "\t" if len(key) >= 8 else "\t\t"
            lines.append(f"{key}{tabs}: {value}" if value != "" else f"{key}:")
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


@dataclass(frozen=True, slots=True)
class _Memory:
    total: int
    free: int
    buffers: int
    cached: int
    shared: int
    available: int

    @property
    def used(self) -> int:
        return self.total - self.free - self.buffers - self.cached


def _memory(machine: Machine, now: float) -> _Memory:
    total = machine.memory_kb
    rng = machine.identity.rng(f"memory-{int(now) // 60}")  # moves a little every minute
    used = int(total * (machine.memory_used + rng.uniform(-0.004, 0.004)))
    cached = int((total - used) * min(0.8, 0.15 + machine.identity.uptime(now) / 86_400 / 60))
    buffers = int(cached * 0.06)
    free_kb = total - used - cached - buffers
    shared = int(total * 0.004) + rng.randrange(200, 2000)
    return _Memory(total, free_kb, buffers, cached, shared, free_kb + int((cached + buffers) * 0.88))


def meminfo(machine: Machine, now: float) -> str:
    """/proc/meminfo (its first, best-known fields)."""
    m = _memory(machine, now)
    rows = [
        ("MemTotal", m.total),
        ("MemFree", m.free),
        ("MemAvailable", m.available),
        ("Buffers", m.buffers),
        ("Cached", m.cached),
        ("SwapCached", 0),
        ("Active", int(m.used * 0.6 + m.cached * 0.4)),
        ("Inactive", int(m.cached * 0.55)),
        ("Shmem", m.shared),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 44),
        ("Writeback", 0),
        ("AnonPages", int(m.used * 0.7)),
        ("Mapped", int(m.cached * 0.1)),
        ("Slab", int(m.used * 0.12)),
        ("PageTables", int(m.used * 0.01)),
        ("CommitLimit", m.total // 2),
        ("Committed_AS", int(m.used * 1.6)),
        ("VmallocTotal", 34359738367),
        ("HugePages_Total", None),
        ("Hugepagesize", 2048),
    ]
    lines = []
    for key, value in rows:
        if value is None:
            lines.append(f"{key + ':':<16}{0:>8}")
        else:
            lines.append(f"{key + ':':<16}{value:>8} kB")
    return "\n".join(lines) + "\n"


def free(machine: Machine, now: float, unit: str = "k") -> str:
    """procps `free` (-k, -m, -g, -h); procps 3.2's layout on CentOS 6."""
    m = _memory(machine, now)

    def shown(kb: int) -> str:
        if unit == "h":
            return human(kb * 1024, free_style=True)
        return str(kb // {"k": 1, "m": 1024, "g": 1024 * 1024}[unit])

    if machine.old_procps:
        head = "             total       used       free     shared    buffers     cached"
        mem = f"{'Mem:':<7}" + "".join(
            f"{shown(v):>11}" for v in (m.total, m.total - m.free, m.free, m.shared, m.buffers, m.cached)
        )
        applied = f"-/+ buffers/cache: {shown(m.used):>10} {shown(m.free + m.buffers + m.cached):>10}"
        swap = f"{'Swap:':<7}" + "".join(f"{shown(0):>11}" for _ in range(3))
        return "\n".join((head, mem, applied, swap)) + "\n"
    head = "               total        used        free      shared  buff/cache   available"
    values = (m.total, m.used, m.free, m.shared, m.buffers + m.cached, m.available)
    mem = "Mem:   " + "".join(f" {shown(v):>11}" for v in values)
    swap = "Swap:  " + "".join(f" {shown(0):>11}" for _ in range(3))
    return "\n".join((head, mem, swap)) + "\n"


def human(size: float, free_style: bool = False) -> str:
    """coreutils' -h: 1023, 4.0K, 12G (rounded up, one decimal below 10); free's "Gi" style."""
    units = ("Ki", "Mi", "Gi", "Ti") if free_style else ("K", "M", "G", "T")
    if size < 1024:
        return f"{int(size)}{'B' if free_style else ''}"
    value = float(size)
    for unit in units:
        value /= 1024
        if value < 1024 or unit == units[-1]:
            if value < 10:
                rounded = math.ceil(value * 10) / 10
                if rounded < 10:
                    return f"{rounded:.1f}{unit}"
            return f"{math.ceil(value)}{unit}"
    return str(size)


def df(machine: Machine, human_readable: bool) -> str:
    """coreutils `df` (-h): the root disk and the tmpfs a systemd machine mounts."""
    mem = machine.memory_kb
    used = int(machine.disk_kb * machine.disk_used)
    reserved = int(machine.disk_kb * 0.05)
    device = "/dev/sda1" if machine.identity.rng("disk").random() < 0.6 else "/dev/vda1"
    rows = [("devtmpfs" if machine.identity.distribution.id == "centos" else "udev", mem // 2, 0, "/dev")]
    rows += [("tmpfs", mem // 10, 900 + mem // 10_000, "/run"), (device, machine.disk_kb, used, "/")]
    rows += [("tmpfs", mem // 2, 0, "/dev/shm"), ("tmpfs", 5120, 0, "/run/lock")]  # noqa: S108 (a mount point named)
    table = [
        (
            "Filesystem",
            "Size" if human_readable else "1K-blocks",
            "Used",
            "Avail" if human_readable else "Available",
            "Use%",
            "Mounted on",
        )
    ]
    for name, size, in_use, mount in rows:
        avail = max(0, size - in_use - (reserved if mount == "/" else 0))
        percent = f"{math.ceil(100 * in_use / (in_use + avail)) if in_use else 0}%"
        cells = (size, in_use, avail)
        shown = [human(c * 1024) if human_readable else str(c) for c in cells]
        if human_readable:
            shown = ["0" if c == 0 else s for c, s in zip(cells, shown, strict=True)]
        table.append((name, *shown, percent, mount))
    # coreutils' least widths: 14 for the source, 5 for sizes, 4 for Use%
    least = (14, 5, 5, 5, 4, 0)
    widths = [max(least[i], *(len(row[i]) for row in table)) for i in range(6)]
    out = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)] + [row[5]]
        out.append(" ".join(cells))
    return "\n".join(out) + "\n"


def lscpu(machine: Machine) -> str:
    cpu = machine.cpu
    rows = [
        ("Architecture:", "x86_64"),
        ("CPU op-mode(s):", "32-bit, 64-bit"),
        ("Address sizes:", cpu.address_sizes),
        ("Byte Order:", "Little Endian"),
        ("CPU(s):", str(cpu.cores)),
        ("On-line CPU(s) list:", f"0-{cpu.cores - 1}" if cpu.cores > 1 else "0"),
        ("Vendor ID:", cpu.vendor),
        ("Model name:", cpu.name),
        ("CPU family:", str(cpu.family)),
        ("Model:", str(cpu.model)),
        ("Thread(s) per core:", "1"),
        ("Core(s) per socket:", str(cpu.cores)),
        ("Socket(s):", "1"),
        ("Stepping:", str(cpu.stepping)),
        ("BogoMIPS:", f"{cpu.mhz * 2:.2f}"),
        ("Flags:", cpu.flags),
        ("Hypervisor vendor:", "KVM"),
        ("Virtualization type:", "full"),
    ]
    return "".join(f"{key:<24}{value}\n" for key, value in rows)


# -- processes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Process:
    """One row of `ps`."""

    user: str
    pid: int
    ppid: int
    cpu_seconds: int
    vsz: int
    rss: int
    tty: str
    stat: str
    start: float
    command: str  # the full command line; [name] for a kernel thread
    comm: str = ""  # the program's name where the command line does not say it (/sbin/init: systemd)

    @property
    def name(self) -> str:
        """`ps`'s CMD: the program's name."""
        if self.comm:
            return self.comm
        if self.command.startswith("["):
            return self.command.strip("[]")
        head = self.command.split()[0].lstrip("-")
        return head.rsplit("/", 1)[-1].rstrip(":")


_KTHREADS = {
    "2.6": ("kthreadd", "migration/0", "ksoftirqd/0", "watchdog/0", "events/0", "khelper", "netns", "async/mgr", "sync_supers", "bdi-default", "kblockd/0", "kacpid", "ata_aux", "ksuspend_usbd", "khubd", "kseriod", "md/0", "khungtaskd", "kswapd0", "ksmd", "aio/0", "crypto/0", "kstriped", "scsi_eh_0", "kdmflush", "jbd2/sda1-8", "ext4-dio-unwrit", "flush-8:0", "kauditd"),
    "3": ("kthreadd", "ksoftirqd/0", "kworker/0:0H", "migration/0", "rcu_bh", "rcu_sched", "lru-add-drain", "watchdog/0", "kdevtmpfs", "netns", "khungtaskd", "writeback", "kintegrityd", "bioset", "kblockd", "md", "edac-poller", "watchdogd", "kswapd0", "ksmd", "khugepaged", "crypto", "kthrotld", "kmpath_rdacd", "kaluad", "kpsmoused", "ipv6_addrconf", "deferwq", "kauditd", "ata_sff", "scsi_eh_0", "xfsalloc", "xfs_mru_cache", "xfs-buf/sda1", "xfsaild/sda1"),
    "4": ("kthreadd", "kworker/0:0H", "mm_percpu_wq", "ksoftirqd/0", "rcu_sched", "rcu_bh", "migration/0", "watchdog/0", "cpuhp/0", "kdevtmpfs", "netns", "rcu_tasks_kthre", "kauditd", "khungtaskd", "oom_reaper", "writeback", "kcompactd0", "ksmd", "khugepaged", "crypto", "kintegrityd", "kblockd", "ata_sff", "md", "edac-poller", "devfreq_wq", "watchdogd", "kswapd0", "ecryptfs-kthrea", "kthrotld", "acpi_thermal_pm", "scsi_eh_0", "ipv6_addrconf", "kstrp", "charger_manager", "jbd2/sda1-8", "ext4-rsv-conver"),
    "5+": ("kthreadd", "rcu_gp", "rcu_par_gp", "slub_flushwq", "netns", "kworker/0:0H-events_highpri", "mm_percpu_wq", "rcu_tasks_kthread", "rcu_tasks_rude_kthread", "rcu_tasks_trace_kthread", "ksoftirqd/0", "rcu_preempt", "migration/0", "cpuhp/0", "kdevtmpfs", "inet_frag_wq", "kauditd", "khungtaskd", "oom_reaper", "writeback", "kcompactd0", "ksmd", "khugepaged", "kintegrityd", "kblockd", "blkcg_punt_bio", "tpm_dev_wq", "edac-poller", "devfreq_wq", "kworker/0:1H-kblockd", "kswapd0", "kthrotld", "acpi_thermal_pm", "mld", "ipv6_addrconf", "kstrp", "zswap-shrink", "jbd2/sda1-8", "ext4-rsv-conver"),
}  # fmt: skip


def processes(machine: Machine, user: str, login: float, now: float, via: str = "ssh") -> list[Process]:
    """What runs on the machine: init, kernel threads, the daemons, and this session's own."""
    identity = machine.identity
    boot = identity.boot_time
    up = max(1.0, now - boot)
    rng = identity.rng("processes")
    release = identity.kernel.release
    if machine.systemd and identity.distribution.id == "centos":
        init = "/usr/lib/systemd/systemd --switched-root --system --deserialize 22"
    else:
        init = "/sbin/init"
    rows = [
        Process(
            "root",
            1,
            0,
            int(up / 9000) + 2,
            167_000 if machine.systemd else 19_300,
            12_000 if machine.systemd else 1_500,
            "?",
            "Ss",
            boot,
            init,
            "systemd" if machine.systemd else "",
        )
    ]
    pid = 2
    for name in _KTHREADS[kernel_generation(release)]:
        rows.append(
            Process(
                "root",
                pid,
                0 if name == "kthreadd" else 2,
                0,
                0,
                0,
                "?",
                "I<" if "/0H" in name or name in ("netns", "kblockd", "md", "crypto") else "S",
                boot,
                f"[{name}]",
            )
        )
        pid += 1
        if "/0" in name and machine.cpu.cores > 1 and name.startswith(("ksoftirqd", "migration", "cpuhp")):
            for core in range(1, min(machine.cpu.cores, 8)):
                rows.append(Process("root", pid, 2, 0, 0, 0, "?", "S", boot, f"[{name[:-1]}{core}]"))
                pid += 1
    pid += rng.randint(60, 200)
    for daemon in machine.daemons:
        pid += rng.randint(1, 40)
        started = boot + rng.uniform(2, 25)
        busy = int(up / rng.uniform(2000, 40000))
        rows.append(
            Process(
                daemon.user,
                pid,
                1,
                busy,
                daemon.vsz_kb,
                daemon.rss_kb,
                "tty1" if "getty" in daemon.command else "?",
                daemon.state,
                started,
                daemon.command,
            )
        )
    base = rng.randint(3000, 60000) + int((login - boot) / 40) % 30000
    if via == "ssh":
        session = [
            Process(
                "root",
                base,
                1,
                0,
                17_000,
                10_900,
                "?",
                "Ss",
                login,
                f"sshd: {user} [priv]" if user != "root" else f"sshd: {user}@pts/0",
            ),
        ]
        if user != "root":
            session.append(
                Process(user, base + 18, base, 0, 17_200, 6_700, "?", "S", login, f"sshd: {user}@pts/0")
            )
    else:
        session = [Process("root", base, 1, 0, 8_000, 3_500, "?", "Ss", login, "/usr/sbin/in.telnetd")]
        session.append(
            Process("root", base + 1, base, 0, 10_000, 4_000, "pts/0", "Ss", login, "/bin/login -p --")
        )
    shell_pid = session[-1].pid + 1
    session.append(Process(user, shell_pid, session[-1].pid, 0, 8_900, 5_300, "pts/0", "Ss", login, "-bash"))
    return rows + session


def _start(when: float, now: float) -> str:
    if now - when < 86_400 and time.gmtime(when).tm_yday == time.gmtime(now).tm_yday:
        return time.strftime("%H:%M", time.gmtime(when))
    if time.gmtime(when).tm_year == time.gmtime(now).tm_year:
        return time.strftime("%b%d", time.gmtime(when))
    return time.strftime("%Y", time.gmtime(when))


def _user(name: str) -> str:
    """procps's USER/UID column: 8 wide, a longer name cut to 7 and a "+"."""
    return f"{name:<8}" if len(name) <= 8 else name[:7] + "+"


def _clock(seconds: int, long: bool) -> str:
    minutes, secs = divmod(seconds, 60)
    if long:
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        return (f"{days}-" if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def ps(rows: list[Process], style: str, machine: Machine, now: float, own: Process) -> str:
    """procps-ng `ps` in "plain" (the session's), "every" (-e), "aux" (BSD) or "ef" (System V) layout."""
    mem = machine.memory_kb
    # procps sizes PID columns from pid_max: 4194304 (7 digits) where systemd >= 243 raised it.
    distribution = machine.identity.distribution
    w = 7 if distribution.id in ("debian", "ubuntu") and distribution.version_id not in ("18.04",) else 5
    if style in ("plain", "every"):  # ps; ps -e
        mine = ([r for r in rows if r.tty == "pts/0"] if style == "plain" else list(rows)) + [own]
        lines = [f"{'PID':>{w}} TTY          TIME CMD"] + [
            f"{r.pid:>{w}} {r.tty:<8} {_clock(r.cpu_seconds, True):>8} {r.name}" for r in mine
        ]
        return "\n".join(lines) + "\n"
    if style == "ef":
        lines = [f"UID      {'PID':>{w}} {'PPID':>{w}}  C STIME TTY          TIME CMD"]
        for r in (*rows, own):
            lines.append(
                f"{_user(r.user)} {r.pid:>{w}} {r.ppid:>{w}} {0:>2} {_start(r.start, now):>5} {r.tty:<8} {_clock(r.cpu_seconds, True):>8} {r.command}"
            )
        return "\n".join(lines) + "\n"
    lines = [f"USER     {'PID':>{w}} %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND"]
    for r in (*rows, own):
        elapsed = max(1.0, now - r.start)
        cpu = min(99.9, 100 * r.cpu_seconds / elapsed)
        lines.append(
            f"{_user(r.user)} {r.pid:>{w}} {cpu:>4.1f} {100 * r.rss / mem:>4.1f} {r.vsz:>6} {r.rss:>5} "
            f"{r.tty:<8} {r.stat:<4} {_start(r.start, now):>5} {_clock(r.cpu_seconds, False):>6} {r.command}"
        )
    return "\n".join(lines) + "\n"
