"""The self-signed certificate: made once (key 0600), for localhost, 127.0.0.1 and the listen address."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dynapot.web.server import parse_listen
from dynapot.web.tls import self_signed


def names(cert_path):
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert, set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def test_made_once_private_and_for_the_listen_address(tmp_path):
    folder = tmp_path / "web"
    cert_path, key_path = self_signed(folder, "198.18.0.2")
    assert key_path.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    cert, dns, ips = names(cert_path)
    assert dns == {"localhost"}
    assert ips == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("198.18.0.2")}
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    before = (cert_path.read_bytes(), key_path.read_bytes())
    assert self_signed(folder, "198.18.0.2") == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before  # the same pair ever after


def test_a_key_left_without_its_certificate_gets_one_for_that_key(tmp_path):
    cert_path, key_path = self_signed(tmp_path, "127.0.0.1")
    cert_path.unlink()
    again, _ = self_signed(tmp_path, "127.0.0.1")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert names(again)[0].public_key().public_numbers() == key.public_key().public_numbers()


def test_listen_addresses():
    assert (parse_listen("127.0.0.1:8443").host, parse_listen("127.0.0.1:8443").port) == ("127.0.0.1", 8443)
    assert parse_listen("[::1]:8443").host == "::1"
    assert parse_listen("localhost:1").port == 1
    for bad in ("8443", "127.0.0.1:", "127.0.0.1:70000", "host.example:80", ":80"):
        with pytest.raises(ValueError):
            parse_listen(bad)
