"""The shells behind SSH and telnet logins (bash, IOS, cmd.exe), each saying what its host's identity says."""

from __future__ import annotations

import pytest

from dynapot.services.cmd_exe import CmdShell
from dynapot.services.identity import identity_for
from dynapot.services.ios_exec import IosShell, ios_uptime
from dynapot.services.shell import FakeShell, pretty_uptime, shell_for, uptime_line

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY = 86400


@pytest.mark.parametrize(
    ("up", "line"),
    [
        (
            23 * DAY + 4 * 3600 + 5 * 60 + 7,
            " 22:13:20 up 23 days,  4:05,  1 user,  load average: 0.00, 0.01, 0.05",
        ),
        (DAY + 59, " 22:13:20 up 1 day, 0 min,  1 user,  load average: 0.00, 0.01, 0.05"),
        (5 * 60, " 22:13:20 up 5 min,  1 user,  load average: 0.00, 0.01, 0.05"),
        (13 * 3600 + 60, " 22:13:20 up 13:01,  1 user,  load average: 0.00, 0.01, 0.05"),
    ],
)
def test_uptime_prints_as_procps_does(up, line) -> None:
    assert uptime_line(NOW, up, 1, (0.0, 0.01, 0.05)) == line


def test_pretty_uptime() -> None:
    assert pretty_uptime(23 * DAY + 4 * 3600 + 5 * 60) == "up 3 weeks, 2 days, 4 hours, 5 minutes"
    assert pretty_uptime(DAY + 60) == "up 1 day, 1 minute"
    assert pretty_uptime(30) == "up 0 minutes"


def test_ios_uptime() -> None:
    assert ios_uptime(23 * 7 * DAY + 4 * DAY + 2 * 3600 + 11 * 60) == "23 weeks, 4 days, 2 hours, 11 minutes"
    assert ios_uptime(3600 + 60) == "1 hour, 1 minute"
    assert ios_uptime(400 * DAY) == "1 year, 5 weeks, 0 days, 0 hours, 0 minutes"


def test_bash_counts_from_the_hosts_boot() -> None:
    identity = identity_for("198.18.0.20", "Linux 5.4", uptime=10 * DAY + 3600, now=NOW)
    shell = FakeShell(identity, "root", peer="198.18.0.3", clock=lambda: NOW)
    load = identity.load_average()
    assert shell.execute("uptime") == uptime_line(NOW, 10 * DAY + 3600, 1, load) + "\n"
    assert shell.execute("uptime -p") == "up 1 week, 3 days, 1 hour\n"
    assert shell.execute("uptime -s") == "2023-11-04 21:13:20\n"
    assert shell.execute("cat /proc/uptime").split()[0] == f"{10 * DAY + 3600:.2f}"
    assert shell.execute("cat /proc/loadavg").startswith(" ".join(f"{x:.2f}" for x in load) + " 1/")
    w = shell.execute("w").splitlines()
    assert w[0] == uptime_line(NOW, 10 * DAY + 3600, 1, load)
    assert w[1].split() == ["USER", "TTY", "FROM", "LOGIN@", "IDLE", "JCPU", "PCPU", "WHAT"]
    assert w[2].split()[:4] == ["root", "pts/0", "198.18.0.3", "22:13"]
    assert shell.execute("who") == "root     pts/0        2023-11-14 22:13 (198.18.0.3)\n"
    assert "uptime" in shell.execute("ls /proc")


def test_bash_tells_the_hosts_system() -> None:
    identity = identity_for("198.18.0.21", "Linux 3.10")
    shell = FakeShell(identity, "admin")
    assert shell.execute("uname -a") == (
        f"Linux {identity.hostname} 3.10.0-1160.el7.x86_64 #1 SMP Mon Oct 19 16:18:59 UTC 2020"
        " x86_64 x86_64 x86_64 GNU/Linux\n"
    )
    assert shell.execute("uname -r") == "3.10.0-1160.el7.x86_64\n" and shell.execute("uname") == "Linux\n"
    assert 'PRETTY_NAME="CentOS Linux 7 (Core)"' in shell.execute("cat /etc/os-release")
    assert shell.execute("cat /etc/issue") == "\\S\nKernel \\r on an \\m\n\n"
    assert shell.execute("hostname") == f"{identity.hostname}\n" == shell.execute("cat /etc/hostname")
    assert shell.welcome(NOW).startswith("Last login: ")  # CentOS: no MOTD before it
    named = FakeShell(identity, "admin", hostname="web01")  # SSH's configured name wins
    assert named.prompt() == "[admin@web01 ~]$ " and named.execute("uname -n") == "web01\n"  # CentOS's PS1


def test_a_router_says_its_uptime_in_show_version() -> None:
    identity = identity_for("198.18.0.1", "Cisco 2811 router (IOS 12.4)", uptime=9 * DAY + 300, now=NOW)
    shell = IosShell(identity, clock=lambda: NOW)
    version = shell.execute("show version")
    assert f"{identity.hostname} uptime is 1 week, 2 days, 0 hours, 5 minutes\n" in version
    assert shell.prompt() == f"{identity.hostname}>" and identity.hostname.startswith("gw-")


@pytest.mark.parametrize(
    ("personality", "banner", "home"),
    [
        (
            "Microsoft Windows XP SP3",
            "Microsoft Windows XP [Version 5.1.2600]",
            "C:\\Documents and Settings\\bob",
        ),
        (
            "Microsoft Windows Server 2003 SP2",
            "Microsoft Windows [Version 5.2.3790]",
            "C:\\Documents and Settings\\bob",
        ),
        ("Microsoft Windows 7 SP1", "Microsoft Windows [Version 6.1.7601]", "C:\\Users\\bob"),
        ("Microsoft Windows Server 2019", "Microsoft Windows [Version 10.0.17763]", "C:\\Users\\bob"),
    ],
)
def test_cmd_says_its_windows_release(personality, banner, home) -> None:
    identity = identity_for("198.18.0.30", personality)
    shell = CmdShell(identity, "bob")
    assert shell.execute("ver") == f"\n{banner}\n\n" and shell.prompt() == f"{home}>"
    assert shell.execute("hostname") == f"{identity.hostname}\n\n"


def test_each_kind_of_host_gets_its_own_shell() -> None:
    assert isinstance(shell_for("windows", identity_for("198.18.0.30", "Microsoft Windows 7"), "u"), CmdShell)
    assert isinstance(shell_for("cisco", identity_for("198.18.0.1", "Cisco 2811 router"), "u"), IosShell)
    for kind in ("linux", "bsd", "busybox", "printer"):
        assert isinstance(shell_for(kind, identity_for("198.18.0.20", "Linux 5.4"), "u"), FakeShell)
