"""The generic banner service on a loopback socket: what it says first, what it records, what nmap sees."""

from __future__ import annotations

import contextlib
import socket

import pytest
from loopback import ServiceServer, needs_nmap, nmap_service_scan

from dynapot.services import recorder
from dynapot.services.banner import banner_for, serve_banner
from dynapot.services.contract import ConnectionInfo

pytestmark = pytest.mark.timeout(30)


def info(product: str | None, version: str | None = None, personality: str | None = "Linux 5.4"):
    return ConnectionInfo("tcp", "127.0.0.1", 40000, "198.18.0.50", 2121, personality, "t", product, version)


@pytest.mark.parametrize(
    ("product", "version", "banner"),
    [
        ("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10", b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n"),
        ("OpenSSH", "7.4", b"SSH-2.0-OpenSSH_7.4\r\n"),
        ("vsftpd", "3.0.3", b"220 (vsFTPd 3.0.3)\r\n"),
        ("vsftpd", None, b"220 (vsFTPd 3.0.5)\r\n"),
        ("ProFTPD", "1.3.5", b"220 ProFTPD 1.3.5 Server (ProFTPD Default Installation) [198.18.0.50]\r\n"),
        ("Microsoft ftpd", None, b"220 Microsoft FTP Service\r\n"),
        ("Dovecot pop3d", None, b"+OK Dovecot (Ubuntu) ready.\r\n"),
        ("VNC", "protocol 3.3", b"RFB 003.003\n"),
        ("Acme widget server", "2.1", b"Acme widget server 2.1\r\n"),
        ("Acme\r\nwidget", None, b"Acme widget\r\n"),  # one line, whatever the inventory holds
        (None, None, b""),
    ],
)
def test_banner_for(product, version, banner):
    assert banner_for(info(product, version)) == banner


def test_banner_then_what_arrives_is_recorded():
    s = ServiceServer(serve_banner, info("vsftpd", "3.0.3"))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            assert sock.recv(1024) == b"220 (vsFTPd 3.0.3)\r\n"
            sock.sendall(b"USER anonymous\r\nPASS \x00\xff\r\n")
        kind, detail, data = s.wait_for_report()
    finally:
        s.close()
    assert kind == "data" and detail == "USER anonymous\\r\\nPASS \\x00\\xff\\r\\n" and data == {"bytes": 25}


def test_no_product_no_banner_but_still_recorded():
    s = ServiceServer(serve_banner, info(None))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1024)
            sock.sendall(b"hello?")
        assert s.wait_for_report()[:2] == ("data", "hello?")
    finally:
        s.close()


def test_recording_is_bounded(monkeypatch):
    monkeypatch.setattr(recorder, "RECORD_LIMIT", 1000)
    s = ServiceServer(serve_banner, info("Dovecot pop3d"))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.recv(1024)
            with contextlib.suppress(OSError):  # the server may hang up first
                sock.sendall(b"A" * 100_000)
            sock.settimeout(5)
            with contextlib.suppress(OSError):  # a reset: the server closed with our bytes unread
                while sock.recv(65536):  # the server stops listening and closes at the limit
                    pass
        _, detail, data = s.wait_for_report()
    finally:
        s.close()
    assert data["bytes"] == 1000 and detail == "A" * 1000


@needs_nmap
def test_nmap_believes_the_banner():
    with (
        ServiceServer(serve_banner, info("vsftpd", "3.0.3")) as ftp,
        ServiceServer(serve_banner, info("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10")) as ssh,
    ):
        lines = nmap_service_scan([ftp.port, ssh.port]).ports
    assert "ftp" in lines[ftp.port] and "vsftpd 3.0.3" in lines[ftp.port]
    assert "OpenSSH 8.9p1 Ubuntu 3ubuntu0.10" in lines[ssh.port]
