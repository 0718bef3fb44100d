"""The web interface's TLS certificate: the admin's, or a self-signed one made at first start.

The self-signed certificate (ECDSA P-256, valid ten years, for localhost, 127.0.0.1 and the
address it listens on) and its key are written once into the data folder, the key 0600
(`files.create_once`: when two starts race, one pair wins and both use it).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dynapot.files import create_once

__all__ = ["self_signed"]

CERT_NAME = "web-cert.pem"
KEY_NAME = "web-key.pem"


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    else:
        if not address.is_unspecified and str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key at `path`, made first when there is none (a certificate is always made for it)."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if create_once(path, pem, 0o600):
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not the EC key dynapot made; remove it or give --cert and --key")
    return loaded


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) in `folder`: made the first time, the same files ever after."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = _key(key_path)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dynapot admin")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    create_once(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path
