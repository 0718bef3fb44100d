"""sntrup761x25519-sha512: OpenSSH's default key exchange since 9.0, for asyncssh without liboqs.

asyncssh implements the hybrid key exchange itself but takes Streamlined NTRU Prime from liboqs,
which Debian 12 does not package; without it an imitated OpenSSH 9 could not offer the key
exchange every OpenSSH client picks first. `pqcrypto` (PQClean's sntrup761 in a wheel) supplies
the KEM; `register()` adds the two names to asyncssh's key exchange table, with asyncssh's own
hybrid handler, when asyncssh has no sntrup761 of its own. This touches asyncssh's registry
(`asyncssh.kex.register_kex_alg`, `asyncssh.kex_dh._KexHybridECDH`): if a later asyncssh moves
them, `register()` returns False and the profiles simply go without sntrup761.
"""

from __future__ import annotations

import logging

__all__ = ["register"]

log = logging.getLogger(__name__)

NAMES = (b"sntrup761x25519-sha512", b"sntrup761x25519-sha512@openssh.com")


class _Sntrup761:
    """asyncssh's PQ key interface (get_public, encaps, decaps) over pqcrypto's sntrup761."""

    def __init__(self, alg_name: bytes) -> None:
        from pqcrypto.kem import sntrup_761

        self._kem = sntrup_761
        self.pubkey_bytes = sntrup_761.PUBLIC_KEY_SIZE
        self.privkey_bytes = sntrup_761.SECRET_KEY_SIZE
        self.ciphertext_bytes = sntrup_761.CIPHERTEXT_SIZE
        self.secret_bytes = sntrup_761.SHARED_SECRET_SIZE
        self._public, self._secret = sntrup_761.keygen()

    def get_public(self) -> bytes:
        return self._public

    def encaps(self, peer_public: bytes) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext), as asyncssh expects them."""
        if len(peer_public) != self.pubkey_bytes:
            raise ValueError("Invalid public key")
        ciphertext, secret = self._kem.encaps(peer_public)
        return secret, ciphertext

    def decaps(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) != self.ciphertext_bytes:
            raise ValueError("Invalid ciphertext")
        return self._kem.decaps(self._secret, ciphertext)


def register() -> bool:
    """Make asyncssh offer sntrup761x25519-sha512 (both names); True when it can."""
    try:
        from hashlib import sha512

        import pqcrypto.kem.sntrup_761  # noqa: F401 - present, or nothing to register
        from asyncssh import kex, kex_dh
    except ImportError as exc:
        log.info("sntrup761 key exchange unavailable: %s", exc)
        return False
    have = set(kex.get_kex_algs())
    if all(name in have for name in NAMES):
        return True
    handler = getattr(kex_dh, "_KexHybridECDH", None)
    curve = getattr(kex_dh, "Curve25519DH", None)
    if handler is None or curve is None or not hasattr(kex, "register_kex_alg"):
        log.warning("asyncssh has changed: no sntrup761 key exchange")
        return False
    for name in NAMES:
        if name not in have:
            kex.register_kex_alg(name, handler, sha512, (_Sntrup761, b"sntrup761", curve), True)
    return True
