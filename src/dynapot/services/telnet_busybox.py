"""BusyBox telnetd's side of the telnet protocol, sans-IO, as busybox 1.35's telnetd.c does it.

BusyBox telnetd negotiates nothing: it sends four requests when a client connects (DO ECHO,
DO NAWS, WILL ECHO, WILL SGA: `OPENING`) and never answers any option afterwards. What it reads
it strips of telnet commands and writes into the login's pty, with its own quirks, which probes
see and which `BusyboxTelnetd.feed` keeps:
- IAC IAC is a 0xFF byte; IAC AYT is answered with IAC NOP, which goes out through the pty
  buffer's IAC doubling as ``FF FF F1``; every other two-byte command (IP, EC, EL, BRK, ...)
  is ignored;
- IAC SB NAWS w h sets the window size; any other IAC x y is skipped as a three-byte command,
  so the body of another subnegotiation (TTYPE, NEW-ENVIRON) goes to the pty as typed text;
- CR LF and CR NUL become CR, but only within one read (a CR at the end of one read and its LF
  at the start of the next reach the pty as two line ends), and a lone IAC at the end of a read
  waits for the next.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENING", "BusyboxTelnetd"]

IAC, SB, AYT, NAWS = 255, 250, 246, 31
#: IAC DO ECHO, IAC DO NAWS, IAC WILL ECHO, IAC WILL SGA.
OPENING = b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03"
AYT_ANSWER = b"\xff\xff\xf1"  # IAC NOP with its IAC doubled on the way out


class BusyboxTelnetd:
    """`feed(one read) -> (bytes for the pty, replies)`; the same face as `telnet.TelnetOptions`."""

    def __init__(self) -> None:
        self._iac = False  # a read ended on a lone IAC
        self.window: tuple[int, int] | None = None
        self.terminal: str | None = None  # never asked for
        self.environ: dict[str, str] = {}
        self.events: list[Any] = []
        self.pending = False  # it waits for no answer
        self.echoing = True  # the pty echoes, whatever the client says

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        if self._iac:
            self._iac = False
            data = bytes((IAC,)) + data
        out = bytearray()
        replies = bytearray()
        i, n = 0, len(data)
        while i < n:
            if data[i] != IAC:
                end = data.find(IAC, i)
                end = n if end < 0 else end
                while i < end:
                    cr = data.find(b"\r", i, end)
                    if cr < 0:
                        out += data[i:end]
                        i = end
                        break
                    out += data[i : cr + 1]
                    i = cr + 1
                    if i < end and data[i] in (0x0A, 0x00):
                        i += 1  # CR LF / CR NUL: the CR alone
                continue
            if n - i == 1:
                self._iac = True
                break
            command = data[i + 1]
            if command == IAC:
                out.append(IAC)
                i += 2
            elif command == AYT:
                replies += AYT_ANSWER
                i += 2
            elif 240 <= command <= 249 or n - i == 2:
                i += 2  # a NOP to BusyBox (and a truncated command is eaten whole)
            elif command == SB and data[i + 2] == NAWS:
                if n - i <= 6:
                    i = n  # incomplete: BusyBox drops the rest of the read
                else:
                    self.window = (data[i + 3] << 8 | data[i + 4], data[i + 5] << 8 | data[i + 6])
                    i += 7  # the IAC SE that follows is eaten as a two-byte NOP
            else:
                i += 3  # WILL/WONT/DO/DONT x, or IAC SB x: skipped, never answered
        return bytes(out), bytes(replies)
