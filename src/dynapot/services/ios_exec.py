"""A Cisco IOS user-EXEC prompt, enough for a bot's first look around (telnet and SSH on routers).

`show version` says the host's own name, its uptime (from its identity: the same as SNMP's
sysUpTime and the TCP timestamp clock) and a serial number of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dynapot.services.contract import clip
from dynapot.services.identity import HostIdentity
from dynapot.services.systems import CISCO_IOS

_UNITS = (("year", 365 * 86400), ("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
_HELP = (
    "Exec commands:\n  connect     Open a terminal connection\n  disable     Turn off "
    "privileged commands\n  enable      Turn on privileged commands\n  exit        Exit from "
    "the EXEC\n  ping        Send echo messages\n  show        Show running system "
    "information\n  telnet      Open a telnet connection\n  traceroute  Trace route to "
    "destination\n"
)


def ios_uptime(seconds: float) -> str:
    """IOS's "23 weeks, 4 days, 2 hours, 11 minutes": from the largest unit that is not zero."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for name, size in _UNITS:
        count, left = divmod(left, size)
        if count or parts or size == 60:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return ", ".join(parts)


class IosShell:
    """`prompt()` and `execute(line) -> output`, as a router's user EXEC answers."""

    def __init__(self, identity: HostIdentity, *, clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self.hostname = identity.hostname
        self.clock = clock
        self.exited = False
        self.status = 0
        self._serial = f"FTX{identity.rng('serial').randrange(10**8):08d}"

    def prompt(self) -> str:
        return f"{self.hostname}>"

    def welcome(self, now: float) -> str:
        return "\n"

    def show_version(self) -> str:
        head = "\n".join(CISCO_IOS[:3])
        return (
            f"{head}\n\n"
            "ROM: System Bootstrap, Version 15.0(1r)M16, RELEASE SOFTWARE (fc1)\n\n"
            f"{self.hostname} uptime is {ios_uptime(self.identity.uptime(self.clock()))}\n"
            'System image file is "flash0:c2900-universalk9-mz.SPA.154-3.M3.bin"\n\n'
            "Cisco CISCO2911/K9 (revision 1.0) with 487424K/36864K bytes of memory.\n"
            f"Processor board ID {self._serial}\n"
            "3 Gigabit Ethernet interfaces\n255K bytes of non-volatile configuration memory.\n\n"
            "Configuration register is 0x2102\n"
        )

    def execute(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        command = words[0].lower()
        rest = " ".join(words[1:]).lower()
        if command in ("exit", "logout", "quit", "disconnect"):
            self.exited = True
            return ""
        if command in ("en", "ena", "enable"):
            return "% No password set\n"
        if command in ("terminal", "term") and rest.startswith(("length", "len", "width")):
            return ""
        if command in ("sh", "show") and rest.startswith(("ver", "version")):
            return self.show_version()
        if command == "?":
            return _HELP
        if len(words) == 1 and command not in ("sh", "show", "ping", "telnet", "traceroute"):
            # IOS takes a lone unknown word for a host to telnet to.
            return (
                f'Translating "{clip(words[0])}"...domain server (255.255.255.255)\n'
                "% Unknown command or computer name, or unable to find computer address\n"
            )
        marker = " " * len(self.prompt()) + "^"
        return f"{marker}\n% Invalid input detected at '^' marker.\n\n"
