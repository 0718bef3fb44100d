"""What a file an attacker wrote is, when the fake shell is asked to run it.

`kind_of(data)` tells an ELF binary (with the architecture its header names) from a script (a
`#!` line, or text, which bash runs itself when exec fails with ENOEXEC). `runs_on(arch,
machine)` says whether the host's kernel (`uname -m`) would exec that ELF: droppers such as
Mirai's write one binary per architecture and try them in turn, and a real host answers
"cannot execute binary file: Exec format error" for all but its own, which runs. Pure.
"""

from __future__ import annotations

__all__ = ["ELF_MAGIC", "kind_of", "runs_on"]

ELF_MAGIC = b"\x7fELF"
# e_machine values (elf.h) of the architectures droppers ship for.
_MACHINES = {
    2: "sparc",
    3: "i386",
    4: "m68k",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    40: "arm",
    42: "sh",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
}
# uname -m -> the ELF architectures its kernel runs (x86_64 and arm64 kernels run 32-bit binaries).
_RUNS = {
    "x86_64": {"x86_64", "i386"},
    "i686": {"i386"},
    "i586": {"i386"},
    "i386": {"i386"},
    "aarch64": {"aarch64", "arm"},
    "armv7l": {"arm"},
    "armv6l": {"arm"},
    "armv5tel": {"arm"},
    "mips": {"mips"},
    "mipsel": {"mips"},
    "ppc64le": {"ppc64"},
    "ppc": {"ppc"},
}


def kind_of(data: bytes) -> tuple[str, str]:
    """("elf", architecture or "unknown"), ("script", interpreter path or "") for a file's first bytes."""
    if data.startswith(ELF_MAGIC):
        if len(data) < 20:
            return "elf", "unknown"
        little = data[5:6] != b"\x02"  # EI_DATA: 1 little-endian, 2 big-endian
        machine = int.from_bytes(data[18:20], "little" if little else "big")
        return "elf", _MACHINES.get(machine, "unknown")
    if data.startswith(b"#!"):
        first = data[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        return "script", first.split()[0] if first.split() else ""
    return "script", ""


def runs_on(arch: str, machine: str) -> bool:
    """Whether a kernel of this `uname -m` execs an ELF binary of `arch`."""
    return arch in _RUNS.get(machine, {machine})
