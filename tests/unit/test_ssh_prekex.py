"""The cleartext packets before the key exchange, judged as sshd judges them."""

from __future__ import annotations

import struct

from dynapot.services.ssh_prekex import PreKexGuard, disconnect_packet

OFFER = {
    "kex": ["curve25519-sha256"],
    "hostkey": ["ssh-ed25519"],
    "cipher": ["chacha20-poly1305@openssh.com", "aes128-ctr"],
    "mac": ["hmac-sha2-256"],
    "compression": ["none"],
}


def packet(payload: bytes) -> bytes:
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\0" * padding


def kexinit(
    kex: str = "curve25519-sha256,ext-info-c", cipher: str = "aes128-ctr", mac: str = "hmac-sha2-256"
) -> bytes:
    lists = [kex, "ssh-ed25519", cipher, cipher, mac, mac, "none", "none", "", ""]
    body = b"".join(struct.pack(">I", len(x)) + x.encode() for x in lists)
    return packet(b"\x14" + b"c" * 16 + body + b"\0" + b"\0\0\0\0")


def test_a_kexinit_with_something_in_common_passes_and_so_does_all_after() -> None:
    guard = PreKexGuard(OFFER)
    data = packet(b"\x02\0\0\0\0") + kexinit()  # an IGNORE first is fine
    assert guard.feed(data[:10]).status == "more"
    verdict = guard.feed(data[10:])
    assert (verdict.status, verdict.forward) == ("pass", data)
    assert guard.feed(b"anything").forward == b"anything"


def test_an_aead_cipher_needs_no_common_mac() -> None:
    assert (
        PreKexGuard(OFFER).feed(kexinit(cipher="chacha20-poly1305@openssh.com", mac="hmac-md5")).status
        == "pass"
    )
    assert PreKexGuard(OFFER).feed(kexinit(mac="hmac-md5")).status == "close"


def test_what_sshd_closes_on() -> None:
    for data in (
        b"\xff\xff\xff\xff" + b"\0" * 60,  # length
        struct.pack(">IB", 12, 6) + b"\x05" + b"\0" * 10,  # 16 bytes: aligned, but not a KEXINIT
        struct.pack(">IB", 13, 6) + b"\x14" + b"\0" * 11,  # not a multiple of the block size
        kexinit(kex="nonsense@example.com"),
    ):
        verdict = PreKexGuard(OFFER).feed(data)
        assert (verdict.status, verdict.reply) == ("close", b"")


def test_short_padding_gets_a_disconnect() -> None:
    verdict = PreKexGuard(OFFER).feed(struct.pack(">IB", 20, 2) + b"\x05" + b"\0" * 18)
    assert verdict.status == "close"
    assert b"\x01\x00\x00\x00\x02\x00\x00\x00\x1cCorrupted padlen 2 on input." in verdict.reply
    length, padding = struct.unpack(">IB", verdict.reply[:5])
    assert (length + 4) % 8 == 0 and padding >= 4 and len(verdict.reply) == length + 4


def test_disconnect_packet_is_block_aligned() -> None:
    for text in ("", "x", "Corrupted padlen 1 on input."):
        data = disconnect_packet(2, text)
        assert len(data) % 8 == 0
