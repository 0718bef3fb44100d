"""The agent's sans-IO core: bpftrace's lines in, Sebek v3 records out, every oddity counted.

`Recorder.feed(line, now)` parses one line of the program in `agent.program` and returns the
record for it (or None); it never raises on what it is given. A line it cannot read (bpftrace's
own messages, a line cut short, a field out of range) is counted in `stats.unparsed` and
dropped; bpftrace's "Lost N events" (its buffers overflowed) adds N to `stats.lost_events`;
a buffer longer than the bytes printed counts its missing bytes in `stats.clipped`.

Records are numbered as a Sebek client numbers them: `counter` 0, 1, 2, ... (modulo 2**32),
one per record made, so the collector sees as a gap any record lost on the way. bpftrace's
clock is CLOCK_MONOTONIC; `now` (wall time and monotonic time, read together by the caller)
maps it to the wall clock. Execve becomes a Sebek `open` record (type 3: the file executed,
then its first two arguments, space-separated); accept and connect become socket records (type 2,
socket call 5 and 3, TCP) whose data is what Wireshark's dissector reads. A new process
(fork) is a record of type 4, which Sebek never sent: its pid and parent pid (the data is
"fork": tshark calls an empty record malformed), so
that the collector follows a process tree through processes that record nothing themselves.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from dynapot.sebek.records import DEFAULT_MAGIC, Record, RecordType, SocketCall, socket_data

__all__ = ["AgentStats", "Recorder"]

U32 = 0xFFFFFFFF
CALL_CONNECT, CALL_ACCEPT = 3, 5  # Linux socketcall numbers
IPPROTO_TCP = 6
UNKNOWN_LOCAL = "0.0.0.0"  # noqa: S104 - the local end is not known to the tracepoint, not a bind
MAX_LINE = 8192  # characters: the longest line the program prints is about 2,600
FORK = 4  # not a Sebek type: dynapot's record of a new process (no data), see the module
FORK_DATA = b"fork"  # tshark calls a record with no data malformed
_NAMES = {RecordType.READ: "read", RecordType.WRITE: "write", RecordType.SOCKET: "socket"}
_NAMES |= {RecordType.OPEN: "exec", FORK: "fork"}
_HEX = re.compile(r"(?:\\x[0-9a-f]{2})*")
_LOST = re.compile(r"Lost ([0-9]{1,19}) events")
_NUMBER = re.compile(r"[0-9]{1,20}")


@dataclass(slots=True)
class AgentStats:
    """What the agent saw: lines, records made by type, lines it could not read, bytes clipped."""

    lines: int = 0
    lost_events: int = 0  # events bpftrace's perf buffers overflowed on ("Lost N events")
    records: Counter[str] = field(default_factory=Counter)
    unparsed: int = 0
    clipped: int = 0
    sent: int = 0
    send_errors: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "lost_events": self.lost_events,
            "records": dict(sorted(self.records.items())),
            "unparsed": self.unparsed,
            "clipped": self.clipped,
            "sent": self.sent,
            "send_errors": self.send_errors,
        }


class _Bad(Exception):
    """A line that is not one the program prints."""


def _hex(text: str) -> bytes:
    if _HEX.fullmatch(text) is None:
        raise _Bad
    return bytes.fromhex(text.replace("\\x", ""))


def _int(text: str, limit: int = U32) -> int:
    if _NUMBER.fullmatch(text) is None or int(text) > limit:
        raise _Bad
    return int(text)


def _cstring(raw: bytes) -> bytes:
    return raw.split(b"\x00", 1)[0]


class Recorder:
    """bpftrace lines to Sebek records; `stats` counts everything."""

    def __init__(self, magic: int = DEFAULT_MAGIC) -> None:
        self.magic = magic
        self.counter = 0
        self.stats = AgentStats()

    def feed(self, line: str, now: tuple[float, float]) -> Record | None:
        """The record for one line of output (None: not an event, counted). `now`: (wall, monotonic)."""
        self.stats.lines += 1
        if (lost := _LOST.fullmatch(line.strip())) is not None:  # bpftrace could not keep up
            self.stats.lost_events += int(lost.group(1))
            return None
        try:
            record = self._parse(line.rstrip("\n"), now)
        except (_Bad, ValueError, OverflowError):
            self.stats.unparsed += 1
            return None
        self.counter = (self.counter + 1) & U32
        self.stats.records[_NAMES[record.type]] += 1
        return record

    def _parse(self, line: str, now: tuple[float, float]) -> Record:
        if len(line) > MAX_LINE:
            raise _Bad
        fields = line.split(" ")
        if len(fields) < 9 or fields[0] not in ("R", "W", "X", "A", "C", "F"):
            raise _Bad
        kind = fields[0]
        nsec = _int(fields[1], 1 << 64)
        pid, ppid, uid, fd = (_int(value) for value in fields[2:6])
        inode, count = _int(fields[6], 1 << 64), _int(fields[7], 1 << 63)
        command = _cstring(_hex(fields[8]))[:12]
        wall, mono = now
        stamp = max(0.0, wall - (mono - nsec / 1e9))
        sec, usec = int(stamp), min(int((stamp % 1) * 1_000_000), 999_999)
        kind_type: int
        if kind == "F":
            if len(fields) != 9:
                raise _Bad
            data, kind_type = FORK_DATA, FORK
        elif kind in ("R", "W"):
            if len(fields) != 10:
                raise _Bad
            data = _hex(fields[9])
            if len(data) > count:
                raise _Bad
            self.stats.clipped += count - len(data)
            kind_type = RecordType.READ if kind == "R" else RecordType.WRITE
        elif kind == "X":
            if len(fields) != 12:
                raise _Bad
            words = []
            for value in fields[9:]:
                word = _cstring(_hex(value))
                if not word:
                    break
                words.append(word)
            data, kind_type = b" ".join(words), RecordType.OPEN
        else:
            if len(fields) != 12 or fields[9] != "2":
                raise _Bad
            port_be, addr_le = _int(fields[10], 0xFFFF), _int(fields[11])
            port = int.from_bytes(port_be.to_bytes(2, "little"), "big")
            address = ".".join(str(byte) for byte in addr_le.to_bytes(4, "little"))
            call = CALL_ACCEPT if kind == "A" else CALL_CONNECT
            data = socket_data(SocketCall(address, port, UNKNOWN_LOCAL, 0, call, IPPROTO_TCP))
            kind_type = RecordType.SOCKET
        return Record(
            magic=self.magic,
            type=kind_type,
            counter=self.counter,
            time_sec=sec & U32,
            time_usec=usec,
            ppid=ppid,
            pid=pid,
            uid=uid,
            fd=fd,
            inode=inode & U32,
            command=command.replace(b"\x00", b""),
            data=data,
        )
