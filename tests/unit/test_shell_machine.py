"""One coherent machine per Unix virtual host: no two hosts clones, each host agreeing with itself.

The machine (`machine.machine_for`) is drawn from the host's identity: its distribution and
kernel, its services, its seed. The checks look at it through the fake shell, as an attacker
would: /etc/passwd against `id` and /home, `ps aux` against the services, /proc against the
kernel's age, the identity's clock and SNMP's sysDescr.
"""

from __future__ import annotations

import re
import time

import pytest

from dynapot.services.contract import ConnectionInfo
from dynapot.services.identity import identity_for
from dynapot.services.machine import CPUS
from dynapot.services.shell import FakeShell
from dynapot.services.snmp import agent_for

NOW = 1_700_000_000.0
DEBIAN = "OpenSSH 9.2p1 Debian 2+deb12u3 vsftpd 3.0.3 Postfix smtpd Apache httpd 2.4.57 (Debian)"


def shell(address: str, personality: str = "Linux 5.4", user: str = "root", **kw) -> FakeShell:
    identity = identity_for(address, personality, uptime=12 * 86_400 + 3_000, now=NOW, **kw)
    return FakeShell(identity, user, peer="198.18.0.3", clock=lambda: NOW)


def fingerprint(sh: FakeShell) -> tuple:
    m = sh.machine
    return (sh.hostname, m.admin.name, m.cpu.name, m.cpu.cores, m.memory_kb, sh.identity.motd(NOW))


def test_two_hosts_of_one_personality_are_not_clones() -> None:
    a, b = shell("198.18.1.10"), shell("198.18.1.11")
    assert a.identity.personality == b.identity.personality
    assert a.execute("hostname") != b.execute("hostname")
    assert a.execute("cat /proc/meminfo").splitlines()[0] != b.execute("cat /proc/meminfo").splitlines()[0]
    assert a.execute("cat /etc/passwd") != b.execute("cat /etc/passwd") or a.machine.cpu != b.machine.cpu
    assert a.identity.motd(NOW) != b.identity.motd(NOW)  # Ubuntu's news: load, disk, processes, address
    # Across a network of them: many admin names, processors and memory sizes, every one its own.
    hosts = [shell(f"198.18.2.{n}") for n in range(10, 40)]
    prints = {fingerprint(h) for h in hosts}
    assert len(prints) == len(hosts)
    assert len({h.machine.admin.name for h in hosts}) >= 8
    assert len({(h.machine.cpu.name, h.machine.cpu.cores) for h in hosts}) >= 6
    assert len({h.machine.memory_kb for h in hosts}) == len(hosts)


def test_a_host_is_the_same_machine_every_time() -> None:
    a, again = shell("198.18.1.10"), shell("198.18.1.10")
    for command in ("cat /etc/passwd", "cat /proc/cpuinfo", "ls -la /home", "free -m", "df -h", "id"):
        assert a.execute(command) == again.execute(command)


def test_a_linux_2_6_host_is_an_old_machine() -> None:
    old = shell("198.18.1.20", "Linux 2.6.32", user="admin")
    assert old.execute("uname -r").startswith("2.6.32")
    release = old.execute("cat /etc/os-release") + old.execute("cat /etc/issue") + old.welcome(NOW)
    assert "CentOS release 6" in old.execute("cat /etc/redhat-release")
    assert "Debian" not in release and "Ubuntu" not in release
    cpuinfo = old.execute("cat /proc/cpuinfo")
    assert re.search(r"^model name\t: (.*)$", cpuinfo, re.M).group(1) in {c.name for c in CPUS["2.6"]}
    flags = re.search(r"^flags\t\t: (.*)$", cpuinfo, re.M).group(1).split()
    assert "avx" not in flags and "avx2" not in flags and "bugs" not in cpuinfo  # before 2011 and 2018
    assert "gcc version 4.4.7" in old.execute("cat /proc/version")
    assert old.execute("free -m").splitlines()[2].startswith("-/+ buffers/cache:")  # procps 3.2
    assert re.fullmatch(r"uid=50\d\(admin\) gid=50\d\(admin\) groups=50\d\(admin\)\n", old.execute("id"))
    assert old.prompt() == f"[admin@{old.hostname} ~]$ "
    new = shell("198.18.1.21", "Linux 5.4", hint=DEBIAN)
    assert (
        "bookworm" in new.execute("cat /etc/os-release")
        and new.execute("cat /etc/debian_version") == "12.4\n"
    )
    assert re.search(r"^bugs\t\t: ", new.execute("cat /proc/cpuinfo"), re.M)
    assert new.machine.cpu.name in {c.name for c in CPUS["5+"]}


def test_passwd_group_id_and_home_agree() -> None:
    for address, personality, hint in (
        ("198.18.1.30", "Linux 5.4", DEBIAN),
        ("198.18.1.31", "Linux 5.4", ""),
        ("198.18.1.32", "Linux 3.10", ""),
        ("198.18.1.33", "Linux 4.15", ""),
    ):
        root = shell(address, personality, hint=hint)
        admin = root.machine.admin
        passwd = [line.split(":") for line in root.execute("cat /etc/passwd").splitlines()]
        groups = {
            int(row[2]): row
            for row in (line.split(":") for line in root.execute("cat /etc/group").splitlines())
        }
        for name, _, _, gid, *_ in passwd:
            assert int(gid) in groups, (name, gid)  # every primary group exists
        assert len({row[2] for row in passwd}) == len(passwd)  # no uid twice
        assert admin.name != "ubuntu" or root.identity.distribution.id == "ubuntu"
        assert admin.name != "debian" or root.identity.distribution.id == "debian"
        me = shell(address, personality, user=admin.name, hint=hint)
        text = me.execute("id")
        ids = re.fullmatch(r"uid=(\d+)\((\S+)\) gid=(\d+)\((\S+)\) groups=(\S+)\n", text)
        assert ids and ids.group(2) == admin.name and int(ids.group(1)) == admin.uid
        for gid, name in re.findall(r"(\d+)\(([^)]+)\)", ids.group(5)):
            assert groups[int(gid)][0] == name  # each group id says has that name in /etc/group
            assert int(gid) == admin.gid or admin.name in groups[int(gid)][3].split(",")
        sudo = "wheel" if root.identity.distribution.id == "centos" else "sudo"
        assert sudo in me.execute("groups").split()
        listing = root.execute("ls -l /home").splitlines()[1:]
        owners = {line.split()[-1]: line.split()[2] for line in listing}
        homes = {row[0]: row[5] for row in passwd if row[5].startswith("/home/")}
        assert owners == {home.rpartition("/")[2]: name for name, home in homes.items()}
        assert me.execute("pwd") == admin.home + "\n" and me.execute("echo $HOME") == admin.home + "\n"


def test_the_software_is_what_the_services_say() -> None:
    sh = shell("198.18.1.40", "Linux 5.4", hint=DEBIAN, services=("ftp", "http", "smtp", "ssh"))
    ps = sh.execute("ps aux")
    for daemon in (
        "sshd: /usr/sbin/sshd -D",
        "/usr/sbin/vsftpd",
        "/usr/lib/postfix/sbin/master",
        "apache2 -k start",
    ):
        assert daemon in ps, daemon
    assert "nginx" not in ps and "mysqld" not in ps
    passwd = sh.execute("cat /etc/passwd")
    assert "\nftp:x:" in passwd and "\npostfix:x:" in passwd
    assert {"vsftpd", "postfix", "apache2", "openssh-server"} <= set(sh.execute("ls /usr/share/doc").split())
    assert "index.html" in sh.execute("ls /var/www/html")
    web = shell("198.18.1.41", "Linux 5.4", hint="nginx 1.22.1", services=("http",))
    assert "nginx: master process" in web.execute("ps aux") and "apache2" not in web.execute("ps aux")
    bare = shell("198.18.1.42", "Linux 5.4")
    assert "sshd" in bare.execute("ps aux") and "vsftpd" not in bare.execute("ps aux")
    centos = shell("198.18.1.43", "Linux 3.10", services=("http",))
    assert "/usr/sbin/httpd -DFOREGROUND" in centos.execute("ps aux")
    assert "\napache:x:48:48:" in centos.execute("cat /etc/passwd")


def test_a_host_agrees_with_itself() -> None:
    sh = shell("198.18.1.50", "Linux 5.4", hint=DEBIAN)
    identity = sh.identity
    release = sh.execute("uname -r").strip()
    assert release == identity.kernel.release
    assert sh.execute("cat /proc/version").startswith(f"Linux version {release} ")
    assert identity.kernel.version in sh.execute("cat /proc/version")
    info = ConnectionInfo(
        "udp", "198.18.0.3", 40000, identity.address, 161, identity.personality, "t", identity=identity
    )
    descr = agent_for(info).descr
    uname = sh.execute("uname -a").strip()
    assert (
        uname.startswith(descr)
        and descr == f"Linux {identity.hostname} {release} {identity.kernel.version} x86_64"
    )
    assert uname.endswith(" x86_64 GNU/Linux") and "x86_64 x86_64" not in uname  # Debian's coreutils
    assert float(sh.execute("cat /proc/uptime").split()[0]) == pytest.approx(identity.uptime(NOW))
    cores = sh.machine.cpu.cores
    assert sh.execute("nproc") == f"{cores}\n"
    assert sh.execute("cat /proc/cpuinfo").count("processor\t: ") == cores
    assert re.search(rf"^CPU\(s\): +{cores}$", sh.execute("lscpu"), re.M)
    total_kb = int(sh.execute("cat /proc/meminfo").split()[1])
    assert sh.execute("free").splitlines()[1].split()[1] == str(total_kb)
    assert sh.execute("free -m").splitlines()[1].split()[1] == str(total_kb // 1024)
    boot = identity.boot_time
    init = sh.execute("ps -ef").splitlines()[1].split()
    assert init[:3] == ["root", "1", "0"] and init[4] == time.strftime("%b%d", time.gmtime(boot))
    assert sh.execute("uptime -s").strip() == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(boot))
    # `w` and `ps` tell of the session that runs them
    assert sh.execute("ps aux").rstrip().endswith("ps aux") and "sshd: root@pts/0" in sh.execute("ps aux")
    assert sh.execute("cat /etc/hostname") == sh.execute("hostname") == f"{identity.hostname}\n"
    assert sh.execute("cat /etc/resolv.conf").startswith(("nameserver ", "search "))
