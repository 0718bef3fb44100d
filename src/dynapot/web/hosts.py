"""The Host header allowlist: DNS rebinding protection for the admin interface.

A page on an attacker's site can make a browser resolve the attacker's name to 127.0.0.1 (or
to the admin address) and send requests there; they then carry the attacker's name in Host.
The Guard answers any request whose Host is not one of ours with 400 before anything else.

Ours: `[web] allowed_hosts` when the admin sets it; otherwise the listen address, localhost,
127.0.0.1, ::1 and the names and addresses in the certificate served.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_HOSTS", "allowed_hosts", "certificate_names", "host_name"]

log = logging.getLogger(__name__)

DEFAULT_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_HOST = 300  # a Host header longer than this is nobody's name


def host_name(header: str | None) -> str | None:
    """The name in a Host header, lower case, without port or trailing dot; None when malformed."""
    if header is None or not header or len(header) > MAX_HOST:
        return None
    value = header.strip().lower()
    if value.startswith("["):  # [v6]:port or [v6]
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not _port(rest)):
            return None
        return value[1:end] or None
    name, sep, port = value.rpartition(":")
    if not sep:
        name = value
    elif ":" in name or not _port(sep + port):
        return None  # a bare IPv6 address, or a port that is not one
    name = name.rstrip(".")
    return name or None


def _port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and 0 < len(text) <= 6


def certificate_names(cert: Path | None) -> set[str]:
    """DNS names and addresses in the certificate's subjectAltName (none when it cannot be read)."""
    if cert is None:
        return set()
    from cryptography import x509

    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound) as exc:
        log.warning("no names read from %s for the Host allowlist: %s", cert, exc)
        return set()
    found = {str(name).lower().rstrip(".") for name in names.get_values_for_type(x509.DNSName)}
    found |= {str(address) for address in names.get_values_for_type(x509.IPAddress)}
    return {name for name in found if not name.startswith("*")}


def allowed_hosts(
    configured: Iterable[str], listen_host: str | None = None, cert: Path | None = None
) -> frozenset[str]:
    """The names the interface answers: `configured` when given, else the defaults (see above)."""
    chosen = {name.lower().rstrip(".") for name in configured}
    if chosen:
        return frozenset(chosen)
    names = set(DEFAULT_HOSTS) | certificate_names(cert)
    if listen_host:
        try:
            address = ipaddress.ip_address(listen_host)
        except ValueError:
            names.add(listen_host.lower())
        else:
            if not address.is_unspecified:  # 0.0.0.0 is nobody's Host
                names.add(str(address))
    return frozenset(names)
