"""The client's SSH identification line, read the way OpenSSH's sshd reads it (sans-IO).

sshd sends its own identification string at once, then reads the client's byte by byte
(`kex_exchange_identification` in OpenSSH's kex.c): CR must be followed by LF, a NUL or a line
over 8,192 bytes is invalid, a line not starting "SSH-" is invalid (a server accepts no lines
before the identification), "SSH-%d.%d-%[^\\n]" must match, and the major version must be 2
(or 1.99). Its answers, before it closes the connection, are plain text:

    "Invalid SSH identification string.\\r\\n"      malformed
    "Protocol major versions differ.\\r\\n"         SSH-1.x (not 1.99), SSH-3.0, ...

and nothing at all for the known scanners of its compat table ("Probe-*", "*SSH_Version_Mapper*").
asyncssh answers all of these differently (or not at all), so the SSH service reads the line with
`IdentReader` first and hands the stream to asyncssh only once it is one sshd would accept.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["INVALID", "MISMATCH", "IdentReader", "IdentResult"]

MAX_LINE = 8192  # OpenSSH's SSH_MAX_BANNER_LEN
INVALID = b"Invalid SSH identification string.\r\n"
MISMATCH = b"Protocol major versions differ.\r\n"
#: Client software OpenSSH's compat table marks as a probe or scanner: closed without a word.
SILENT_PATTERNS = ("Probe-*", "*SSH_Version_Mapper*")

_VERSION = re.compile(rb"SSH-\s*([+-]?\d{1,9})\.\s*([+-]?\d{1,9})-([^\n]+)", re.DOTALL)  # bounded for int()

Status = Literal["more", "ok", "invalid", "mismatch", "silent"]


@dataclass(frozen=True, slots=True)
class IdentResult:
    """What to do: read `more`; `ok` (pass `line` and then `rest` on); or send `reply` and close."""

    status: Status
    reply: bytes = b""
    line: bytes = b""  # the identification line as received, with its line ending
    rest: bytes = b""  # bytes that came after it (or after the byte that made it invalid)

    @property
    def reset(self) -> bool:
        """sshd closes with the client's further bytes unread: its kernel answers with a RST."""
        return self.status != "ok" and bool(self.rest)


class IdentReader:
    """Feed it the client's bytes until the result is not `more`."""

    def __init__(self) -> None:
        self._raw = bytearray()  # every byte of the current line as received
        self._line = bytearray()  # the line without CR/LF
        self._expect_nl = False
        self._done: IdentResult | None = None

    def feed(self, data: bytes) -> IdentResult:
        if self._done is not None:
            return self._done
        for index, byte in enumerate(data):
            self._raw.append(byte)
            if byte == 0x0D:
                self._expect_nl = True
                continue
            if byte == 0x0A:
                self._done = self._judge(bytes(data[index + 1 :]))
                return self._done
            if byte == 0 or self._expect_nl:
                return self._finish(IdentResult("invalid", INVALID, rest=bytes(data[index + 1 :])))
            self._line.append(byte)
            if len(self._line) > MAX_LINE:
                return self._finish(IdentResult("invalid", INVALID, rest=bytes(data[index + 1 :])))
        return IdentResult("more")

    def _finish(self, result: IdentResult) -> IdentResult:
        self._done = result
        return result

    def _judge(self, rest: bytes) -> IdentResult:
        line = bytes(self._line)
        # A line that is not an identification: sshd accepts none from a client.
        if not (len(line) > 4 and line.startswith(b"SSH-")):
            return IdentResult("invalid", INVALID, rest=rest)
        match = _VERSION.fullmatch(line)
        if match is None:
            return IdentResult("invalid", INVALID, rest=rest)
        major, minor = int(match.group(1)), int(match.group(2))
        software = match.group(3).decode("latin-1")
        if any(fnmatch.fnmatchcase(software, pattern) for pattern in SILENT_PATTERNS):
            return IdentResult("silent", rest=rest)
        if not (major == 2 or (major == 1 and minor == 99)):
            return IdentResult("mismatch", MISMATCH, rest=rest)
        return IdentResult("ok", line=bytes(self._raw), rest=rest)
