"""The pseudo-terminal behind a Unix telnetd's login: Linux's N_TTY line discipline, sans-IO.

A real telnetd (BusyBox's, Linux's) does not echo or edit lines itself: it writes the user's
bytes into a pty, and the kernel's line discipline in canonical mode echoes them, edits the line
and hands whole lines to login(1). What an attacker sees before logging in is therefore the
pty's behaviour, and probes show it plainly: control characters echoed as ``^X`` (ECHOCTL), tabs
expanded to the next tab stop (XTABS, which BusyBox telnetd sets), DEL erasing with ``\\b \\b``,
^C/^\\ killing login (the connection closes), ^Z flushing the line, ^S/^Q stopping and
restarting output (IXON), ^V quoting the next byte, ^D pushing a line without its newline, and
a line of at most 4095 bytes. `Pty` models exactly that for the default termios of a Linux pty
(``stty sane`` plus XTABS, no IUTF8): `feed(user bytes) -> TtyInput` (the echo, then what
login reads), `write(program output) -> bytes` (ONLCR, column tracking, held while stopped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LINE_LIMIT", "Pty", "TtyInput", "TtyItem"]

LINE_LIMIT = 4095  # N_TTY_BUF_SIZE - 1: bytes of one canonical line; more are dropped

_INTR, _QUIT, _SUSP = 0x03, 0x1C, 0x1A
_EOF, _ERASE, _KILL, _WERASE, _REPRINT, _LNEXT = 0x04, 0x7F, 0x15, 0x17, 0x12, 0x16
_START, _STOP = 0x11, 0x13
_SIGNALS: dict[int, Literal["INT", "QUIT", "TSTP"]] = {_INTR: "INT", _QUIT: "QUIT", _SUSP: "TSTP"}

#: ("line", bytes, terminated) a line login reads (not terminated: cut by ^D or the line limit);
#: ("eof", b"", False) ^D on an empty line; ("signal", b"INT"|b"QUIT"|b"TSTP", False).
TtyItem = tuple[Literal["line", "eof", "signal"], bytes, bool]


@dataclass(slots=True)
class TtyInput:
    """What one `Pty.feed` did: bytes to send back (echo), then what the reader gets, in order."""

    echo: bytes = b""
    items: list[TtyItem] = field(default_factory=list)
    dropped: int = 0  # bytes past the line limit


def _is_ctrl(byte: int) -> bool:
    return byte < 0x20 or byte == 0x7F


class Pty:
    """One pty in canonical mode: what its line discipline echoes, and the lines it hands on."""

    def __init__(self, line_limit: int = LINE_LIMIT) -> None:
        self.line_limit = line_limit
        self.echo = True  # login turns it off for the password
        self.stopped = False  # ^S: output held until ^Q
        self.column = 0
        self._line = bytearray()
        self._starts: list[int] = []  # the column each byte of the line was echoed at
        self._lnext = False
        self._overflow = False  # the line went past the limit: the reader gets it cut, no newline
        self._held = bytearray()

    # output ------------------------------------------------------------------------------------------

    def _out(self, data: bytes, sink: bytearray) -> None:
        (self._held if self.stopped else sink).extend(data)

    def _render(self, data: bytes) -> bytes:
        """Output post-processing (OPOST): ONLCR, XTABS; the column follows."""
        out = bytearray()
        for byte in data:
            if byte == 0x0A:
                out += b"\r\n"
                self.column = 0
            elif byte == 0x0D:
                out.append(byte)
                self.column = 0
            elif byte == 0x09:
                spaces = 8 - (self.column & 7)
                out += b" " * spaces
                self.column += spaces
            elif byte == 0x08:
                out.append(byte)
                self.column = max(0, self.column - 1)
            else:
                out.append(byte)
                if not _is_ctrl(byte):
                    self.column += 1
        return bytes(out)

    def write(self, data: bytes) -> bytes:
        """What the program writes, as it leaves the pty (nothing while output is stopped)."""
        sink = bytearray()
        self._out(self._render(data), sink)
        return bytes(sink)

    # input -------------------------------------------------------------------------------------------

    def flush_input(self) -> None:
        """tcflush(TCIFLUSH), as login's TCSAFLUSH does when it hides the password."""
        self._line.clear()
        self._starts.clear()
        self._lnext = False
        self._overflow = False

    def _echo_char(self, byte: int, sink: bytearray) -> None:
        if not self.echo:
            return
        start = self.column
        if byte == 0x09:
            self._out(self._render(b"\t"), sink)
        elif _is_ctrl(byte):
            self._out(b"^" + bytes((byte ^ 0x40,)), sink)
            self.column += 2
        else:
            self._out(self._render(bytes((byte,))), sink)
        self._starts.append(start)

    def _erase_one(self, sink: bytearray) -> None:
        byte = self._line.pop()
        start = self._starts.pop() if self._starts else self.column
        if not self.echo:
            return
        if byte == 0x09:
            self._out(b"\b" * (self.column - start), sink)  # n_tty backs over a tab without blanking
        else:
            width = 2 if _is_ctrl(byte) else 1
            self._out(b"\b \b" * width, sink)
        self.column = start

    def _put(self, byte: int, sink: bytearray, result: TtyInput) -> None:
        if len(self._line) >= self.line_limit:
            # Still echoed (as the lab's Linux did), but not kept; login reads the line cut short.
            result.dropped += 1
            self._overflow = True
            if self.echo:
                self._echo_char(byte, sink)
                self._starts.pop()
            return
        self._line.append(byte)
        if self.echo:
            self._echo_char(byte, sink)
        else:
            self._starts.append(self.column)

    def _deliver(self, result: TtyInput, newline: bool) -> None:
        """Hand the line on: ended by a newline, cut by ^D or by the limit, or ^D alone (EOF)."""
        line, overflow = bytes(self._line), self._overflow
        self._line.clear()
        self._starts.clear()
        self._overflow = False
        if not line and not newline and not overflow:
            result.items.append(("eof", b"", False))
        else:
            result.items.append(("line", line, newline and not overflow))

    def feed(self, data: bytes) -> TtyInput:
        """The user's bytes (telnet already decoded), as the line discipline takes them."""
        result = TtyInput()
        sink = bytearray()
        mark = self.column  # where the echo not yet written started
        for byte in data:
            if self._lnext:
                self._lnext = False
                self._put(byte, sink, result)
                continue
            if byte in (_START, _STOP):  # IXON: flow control, neither echoed nor read
                self.stopped = byte == _STOP
                if not self.stopped and self._held:
                    sink += self._held
                    self._held.clear()
                continue
            if byte == 0x0D:
                byte = 0x0A  # ICRNL
            if byte in _SIGNALS:
                # isig(): the pending input and the echo not yet written are flushed.
                sink.clear()
                self._held.clear()
                result.items.clear()
                self.flush_input()
                self.column = mark
                if self.echo:
                    self._out(b"^" + bytes((byte ^ 0x40,)), sink)
                    self.column += 2
                mark = self.column
                result.items.append(("signal", _SIGNALS[byte].encode(), False))
                if byte != _SUSP:
                    break  # login is gone
                continue
            if byte == _ERASE:
                if self._line:
                    self._erase_one(sink)
            elif byte == _KILL:
                while self._line:
                    self._erase_one(sink)
            elif byte == _WERASE:
                while self._line and self._line[-1] in b" \t":
                    self._erase_one(sink)
                while self._line and self._line[-1] not in b" \t":
                    self._erase_one(sink)
            elif byte == _REPRINT:
                if self.echo:
                    self._out(b"^R", sink)
                    self.column += 2
                    self._out(self._render(b"\n"), sink)
                    line = bytes(self._line)
                    self._starts.clear()
                    for char in line:
                        self._echo_char(char, sink)
            elif byte == _LNEXT:
                self._lnext = True
                if self.echo:
                    self._out(b"^\b", sink)  # a caret, then back over it: the next byte is literal
            elif byte == _EOF:
                self._deliver(result, newline=False)
            elif byte == 0x0A:
                if self.echo:
                    self._out(self._render(b"\n"), sink)
                self._deliver(result, newline=True)
            else:
                self._put(byte, sink, result)
        result.echo = bytes(sink)
        return result
