"""A cmd.exe look-alike for Windows hosts (telnet and SSH): a few harmless built-ins, the usual errors.

The banner `ver` prints and the profile folder follow the host's Windows release; its name and
address are its identity's.
"""

from __future__ import annotations

from dynapot.services.contract import clip
from dynapot.services.identity import HostIdentity
from dynapot.services.systems import WindowsRelease, windows_release


def cmd_banner(release: WindowsRelease) -> str:
    """What cmd.exe and `ver` say of the Windows release."""
    major, minor, build = release.version
    if release.key == "2000":
        return f"Microsoft Windows 2000 [Version {major}.{minor:02d}.{build}]"
    if release.key == "xp":
        return f"Microsoft Windows XP [Version {major}.{minor}.{build}]"
    return f"Microsoft Windows [Version {major}.{minor}.{build}]"


class CmdShell:
    """`prompt()` and `execute(line) -> output`, as cmd.exe answers."""

    def __init__(self, identity: HostIdentity, user: str) -> None:
        self.hostname = identity.hostname
        self.user = user
        self.exited = False
        self.status = 0
        release = identity.windows or windows_release(None)
        self.banner = cmd_banner(release)
        users = "C:\\Documents and Settings" if release.legacy else "C:\\Users"
        self.home = f"{users}\\{user}"
        self.cwd = self.home
        self.address = identity.address
        serial = identity.rng("volume").getrandbits(32)
        self._serial = f"{serial & 0xFFFF:04X}-{serial >> 16:04X}"

    def prompt(self) -> str:
        return f"{self.cwd}>"

    def welcome(self, now: float) -> str:
        return f"{self.banner}\n(c) Microsoft Corporation. All rights reserved.\n\n"

    def _cd(self, target: str) -> str:
        target = target.strip().strip('"')
        if not target:
            return f"{self.cwd}\n\n"
        if target.lower() in ("\\", "c:\\"):
            self.cwd = "C:\\"
        elif target == "..":
            self.cwd = self.cwd.rsplit("\\", 1)[0] if self.cwd.count("\\") > 1 else "C:\\"
        elif self.cwd == self.home and target.lower() in ("desktop", "documents", "downloads"):
            self.cwd = f"{self.home}\\{target.capitalize()}"
        else:
            return "The system cannot find the path specified.\n\n"
        return "\n"

    def execute(self, line: str) -> str:
        line = line.strip()
        command, _, arg = line.partition(" ")
        name = command.lower()
        arg = arg.strip()
        if not name:
            return ""
        if name == "exit":
            self.exited = True
            return ""
        if name == "whoami":
            return f"{self.hostname.lower()}\\{self.user.lower()}\n\n"
        if name == "hostname":
            return f"{self.hostname}\n\n"
        if name == "ver":
            return f"\n{self.banner}\n\n"
        if name == "echo":
            return f"{arg or 'ECHO is on.'}\n\n"
        if name in ("cls", "rem"):
            return ""
        if name in ("cd", "chdir", "cd..", "cd\\"):
            return self._cd(arg or name[2:])
        if name == "dir":
            return (
                f" Volume in drive C has no label.\n Volume Serial Number is {self._serial}\n\n"
                f" Directory of {self.cwd}\n\n"
                "01/14/2023  09:12 AM    <DIR>          .\n"
                "01/14/2023  09:12 AM    <DIR>          ..\n"
                "01/14/2023  09:15 AM    <DIR>          Desktop\n"
                "01/14/2023  09:15 AM    <DIR>          Documents\n"
                "01/14/2023  09:15 AM    <DIR>          Downloads\n"
                "               0 File(s)              0 bytes\n"
                "               5 Dir(s)  41,237,913,600 bytes free\n\n"
            )
        if name == "ipconfig":
            return (
                "\nWindows IP Configuration\n\n\nEthernet adapter Local Area Connection:\n\n"
                "   Connection-specific DNS Suffix  . : \n"
                f"   IPv4 Address. . . . . . . . . . . : {self.address}\n"
                "   Subnet Mask . . . . . . . . . . . : 255.255.255.0\n\n"
            )
        if name == "type":
            return "The system cannot find the file specified.\n\n"
        return (
            f"'{clip(command)}' is not recognized as an internal or external command,\n"
            "operable program or batch file.\n\n"
        )
