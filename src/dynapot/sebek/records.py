"""Sebek v3 records as a Sebek client sends them, one per UDP datagram: encode and decode.

A record is a 56-byte header in network byte order, then `length` bytes of data:

    magic u32 | version u16 (3) | type u16 | counter u32 | time sec u32 | time usec u32 |
    parent pid u32 | pid u32 | uid u32 | fd u32 | inode u32 | command 12 bytes (NUL-padded) |
    length u32 | data

`type` says what was captured: 0 a read (what was typed), 1 a write (what the terminal
showed), 2 a socket call (then the data is 15 bytes: remote IPv4, remote port, local IPv4,
local port, socket call number, IP protocol), 3 an open. This is the layout of Wireshark's
`sebek` dissector (its version 3 branch); `tests/unit/test_sebek_records.py` holds tshark to it.

`decode` never raises on what came off the wire: a datagram that is not one whole v3 record
(short, another version, wrong magic, a length that disagrees with the datagram, a time
whose microseconds are not below a million) gives a `Malformed` that says why. A datagram
holds at most 65,535 bytes, so a record's data is bounded by `MAX_DATA`.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAGIC",
    "DEFAULT_PORT",
    "HEADER",
    "MAX_DATA",
    "VERSION",
    "Malformed",
    "Reason",
    "Record",
    "RecordType",
    "SocketCall",
    "decode",
    "encode",
    "socket_call",
    "socket_data",
]

HEADER = struct.Struct("!IHHIIIIIIII12sI")
SOCKET = struct.Struct("!IHIHHB")
VERSION = 3
DEFAULT_PORT = 1101  # Sebek's UDP port (Wireshark's too)
DEFAULT_MAGIC = 0x00D0D0D0  # scapy's Sebek default; every deployment should choose its own
MAX_DATA = 65535 - 8 - HEADER.size  # what one UDP datagram (8-byte UDP header) leaves for data
COMMAND_SIZE = 12
U32 = 0xFFFFFFFF


class RecordType(enum.IntEnum):
    """What a record captured (Sebek v3's `type`)."""

    READ = 0
    WRITE = 1
    SOCKET = 2
    OPEN = 3


class Reason(enum.StrEnum):
    """Why a datagram is not a Sebek v3 record."""

    SHORT = "short"  # fewer bytes than the header
    VERSION = "version"  # not version 3
    MAGIC = "magic"  # not the magic value this collector expects
    LENGTH = "length"  # the length field disagrees with the bytes that follow
    TIME = "time"  # microseconds of a million or more


@dataclass(frozen=True, slots=True)
class Malformed:
    """A datagram that is not one whole Sebek v3 record: why, and how long it was."""

    reason: Reason
    size: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One Sebek v3 record. `command` is the process name without its NUL padding."""

    magic: int
    type: int  # a RecordType value, or another number a client sent (kept as it came)
    counter: int
    time_sec: int
    time_usec: int
    ppid: int
    pid: int
    uid: int
    fd: int
    inode: int
    command: bytes
    data: bytes
    version: int = VERSION

    @property
    def timestamp(self) -> float:
        return self.time_sec + self.time_usec / 1_000_000


@dataclass(frozen=True, slots=True)
class SocketCall:
    """The data of a socket record (type 2): the connection's two ends, the call, the protocol."""

    remote_ip: str
    remote_port: int
    local_ip: str
    local_port: int
    call: int
    protocol: int


def encode(record: Record) -> bytes:
    """The datagram for `record`. Raises ValueError for a record no client could send."""
    if len(record.command) > COMMAND_SIZE or b"\x00" in record.command:
        raise ValueError("command: at most 12 bytes, no NUL")
    if len(record.data) > MAX_DATA:
        raise ValueError(f"data: at most {MAX_DATA} bytes")
    if not 0 <= record.time_usec < 1_000_000:
        raise ValueError("time_usec: 0 to 999999")
    fields = (record.magic, record.counter, record.time_sec, record.ppid, record.pid)
    fields += (record.uid, record.fd, record.inode)
    if any(not 0 <= value <= U32 for value in fields) or not 0 <= record.type <= 0xFFFF:
        raise ValueError("fields are unsigned 32-bit (type and version 16-bit)")
    header = HEADER.pack(
        record.magic,
        record.version,
        record.type,
        record.counter,
        record.time_sec,
        record.time_usec,
        record.ppid,
        record.pid,
        record.uid,
        record.fd,
        record.inode,
        record.command,  # struct pads it with NULs to 12 bytes
        len(record.data),
    )
    return header + record.data


def decode(datagram: bytes, magic: int | None = None) -> Record | Malformed:
    """The record in `datagram`, or why it is not one. `magic`: the value to insist on (None: any)."""
    size = len(datagram)
    if size < HEADER.size:
        return Malformed(Reason.SHORT, size, f"{size} bytes, a header is {HEADER.size}")
    (got_magic, version, kind, counter, sec, usec, ppid, pid, uid, fd, inode, command, length) = (
        HEADER.unpack_from(datagram)
    )
    if version != VERSION:
        return Malformed(Reason.VERSION, size, f"version {version}")
    if magic is not None and got_magic != magic:
        return Malformed(Reason.MAGIC, size, f"magic {got_magic:#010x}")
    if length != size - HEADER.size:
        return Malformed(Reason.LENGTH, size, f"length {length}, {size - HEADER.size} bytes follow")
    if usec >= 1_000_000:
        return Malformed(Reason.TIME, size, f"{usec} microseconds")
    return Record(
        magic=got_magic,
        type=kind,
        counter=counter,
        time_sec=sec,
        time_usec=usec,
        ppid=ppid,
        pid=pid,
        uid=uid,
        fd=fd,
        inode=inode,
        command=command.split(b"\x00", 1)[0],
        data=bytes(datagram[HEADER.size :]),
    )


def socket_call(record: Record) -> SocketCall | None:
    """The connection a socket record describes; None for another type or a short body."""
    if record.type != RecordType.SOCKET or len(record.data) < SOCKET.size:
        return None
    remote, remote_port, local, local_port, call, protocol = SOCKET.unpack_from(record.data)
    return SocketCall(
        str(ipaddress.IPv4Address(remote)),
        remote_port,
        str(ipaddress.IPv4Address(local)),
        local_port,
        call,
        protocol,
    )


def socket_data(call: SocketCall) -> bytes:
    """The 15 data bytes of a socket record (what `socket_call` reads back)."""
    return SOCKET.pack(
        int(ipaddress.IPv4Address(call.remote_ip)),
        call.remote_port,
        int(ipaddress.IPv4Address(call.local_ip)),
        call.local_port,
        call.call,
        call.protocol,
    )
