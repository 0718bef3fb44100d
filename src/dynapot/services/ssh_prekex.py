"""The client's cleartext packets up to its KEXINIT, judged as sshd judges them (sans-IO).

Between the identification line and the first key exchange, SSH packets travel in the clear, and
a detection scan sends broken ones there. asyncssh answers them with DISCONNECT messages of its
own wording; OpenSSH's sshd, recorded with the realism probe suite (dynapot.lab.probes), does this:

    packet length under 5 or over 256 KiB     closes without a word ("Bad packet length")
    length not a multiple of the block size   closes without a word (the same path in packet.c)
    padding under 4 bytes                     DISCONNECT 2 "Corrupted padlen N on input.", closes
    a first message other than KEXINIT        closes without a word
    KEXINIT with nothing in common            closes without a word ("no matching ... found")

`PreKexGuard` is fed the client's bytes after the identification; it answers `more` (hold them),
`pass` (forward `forward` to asyncssh; from then on everything passes), or `close` (send `reply`,
then close). Messages IGNORE and DEBUG before the KEXINIT are let through, as sshd does.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["PreKexGuard", "Verdict", "disconnect_packet"]

MAX_PACKET = 256 * 1024  # OpenSSH's PACKET_MAX_SIZE
BLOCK = 8  # cleartext block size
MSG_DISCONNECT, MSG_IGNORE, MSG_DEBUG, MSG_KEXINIT = 1, 2, 4, 20
PROTOCOL_ERROR = 2
#: Ciphers that authenticate themselves: with one of them no MAC is negotiated.
AEAD = frozenset({"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"})
#: Pseudo-algorithms of the kex list that are not key exchanges.
_PSEUDO_PREFIXES = ("ext-info-", "kex-strict-")


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Literal["more", "pass", "close"]
    forward: bytes = b""
    reply: bytes = b""


def disconnect_packet(reason: int, text: str) -> bytes:
    """A cleartext SSH_MSG_DISCONNECT as sshd sends it before the first key exchange."""
    desc = text.encode()
    payload = struct.pack(">BI", MSG_DISCONNECT, reason) + struct.pack(">I", len(desc)) + desc + b"\0\0\0\0"
    padding = BLOCK - (len(payload) + 5) % BLOCK
    if padding < 4:
        padding += BLOCK
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + os.urandom(padding)


def _name_lists(payload: bytes, count: int = 8) -> list[list[str]] | None:
    pos, lists = 17, []  # message byte, 16-byte cookie
    for _ in range(count):
        if pos + 4 > len(payload):
            return None
        (size,) = struct.unpack_from(">I", payload, pos)
        pos += 4
        if pos + size > len(payload):
            return None
        text = payload[pos : pos + size].decode("ascii", "replace")
        lists.append([name for name in text.split(",") if name])
        pos += size
    return lists


def _first_common(client: Sequence[str], server: Sequence[str]) -> str | None:
    offered = set(server)
    return next((name for name in client if name in offered), None)


class PreKexGuard:
    """Feed the client's bytes after its identification; see the module docstring.

    `offer` is what the server's KEXINIT lists: "kex", "hostkey", "cipher", "mac", "compression".
    """

    def __init__(self, offer: Mapping[str, Sequence[str]]) -> None:
        self._offer = offer
        self._buffer = bytearray()
        self._passed = False
        self._closed: Verdict | None = None

    def feed(self, data: bytes) -> Verdict:
        if self._passed:
            return Verdict("pass", forward=data)
        if self._closed is not None:
            return self._closed
        self._buffer += data
        pos = 0
        while True:
            if len(self._buffer) - pos < BLOCK:
                return Verdict("more")
            (length,) = struct.unpack_from(">I", self._buffer, pos)
            if length < 5 or length > MAX_PACKET or (length + 4) % BLOCK:
                return self._close()
            if len(self._buffer) - pos < 4 + length:
                return Verdict("more")
            padding = self._buffer[pos + 4]
            if padding < 4:
                return self._close(disconnect_packet(PROTOCOL_ERROR, f"Corrupted padlen {padding} on input."))
            if padding >= length:
                return self._close()
            payload = bytes(self._buffer[pos + 5 : pos + 4 + length - padding])
            pos += 4 + length
            kind = payload[0]
            if kind in (MSG_IGNORE, MSG_DEBUG):
                continue
            if kind != MSG_KEXINIT or not self._agrees(payload):
                return self._close()
            self._passed = True
            forward, self._buffer = bytes(self._buffer), bytearray()
            return Verdict("pass", forward=forward)

    def _close(self, reply: bytes = b"") -> Verdict:
        self._closed = Verdict("close", reply=reply)
        self._buffer = bytearray()
        return self._closed

    def _agrees(self, payload: bytes) -> bool:
        lists = _name_lists(payload)
        if lists is None:
            return False
        kex, hostkey, enc_cs, enc_sc, mac_cs, mac_sc, comp_cs, comp_sc = lists
        offer = self._offer
        kex = [name for name in kex if not name.startswith(_PSEUDO_PREFIXES)]
        if _first_common(kex, offer["kex"]) is None or _first_common(hostkey, offer["hostkey"]) is None:
            return False
        for ciphers, macs, compression in ((enc_cs, mac_cs, comp_cs), (enc_sc, mac_sc, comp_sc)):
            cipher = _first_common(ciphers, offer["cipher"])
            if cipher is None or _first_common(compression, offer["compression"]) is None:
                return False
            if cipher not in AEAD and _first_common(macs, offer["mac"]) is None:
                return False
        return True
