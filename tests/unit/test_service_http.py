"""The HTTP emulator on a loopback socket, with real HTTP clients."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dynapot.services.contract import ConnectionInfo
from dynapot.services.http import serve_http, site_for
from dynapot.services.identity import identity_for


def info(personality: str, dst: str = "198.18.0.20") -> ConnectionInfo:
    return ConnectionInfo("tcp", "198.18.0.3", 40000, dst, 80, personality, "t")


class Server:
    """serve_http behind a loopback listener, in a thread with its own loop."""

    def __init__(self, personality: str, dst: str = "198.18.0.20") -> None:
        self.reports: list[tuple] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            async def handle(reader, writer):
                await serve_http(reader, writer, info(personality, dst), lambda *r: self.reports.append(r))

            self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(
            target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever())
        )
        self.thread.start()
        assert ready.wait(5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def iis():
    server = Server("Microsoft Windows 7 SP1")
    yield server
    server.close()


def test_headers_and_page_fit_the_os(iis):
    with urllib.request.urlopen(iis.url("/"), timeout=5) as response:
        assert response.headers["Server"] == "Microsoft-IIS/7.5"
        page = response.read().decode()
    assert "IIS Windows Server" in page and info("Microsoft Windows 7 SP1").identity.hostname in page
    assert iis.reports[0][:2] == ("request", "GET /")


def test_login_attempts_are_recorded(iis):
    data = urllib.parse.urlencode({"username": "admin", "password": "hunter2"}).encode()
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(iis.url("/login"), data=data, timeout=5)
    assert error.value.code == 401
    login = next(r for r in iis.reports if r[0] == "login")
    assert login[1] == "admin:hunter2" and login[2]["accepted"] is False


def test_missing_pages_and_garbage(iis):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(iis.url("/nope"), timeout=5)
    assert error.value.code == 404 and error.value.headers["Server"] == "Microsoft-IIS/7.5"
    with socket.create_connection(("127.0.0.1", iis.port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400") and any(r[0] == "bad-request" for r in iis.reports)


def test_hosts_are_not_clones():
    a, b = Server("Linux 5.4", "198.18.0.20"), Server("Linux 5.4", "198.18.0.21")
    try:
        pages = [urllib.request.urlopen(s.url("/"), timeout=5).read() for s in (a, b)]
    finally:
        a.close()
        b.close()
    assert pages[0] != pages[1]


@pytest.mark.parametrize(
    ("personality", "server"),
    [
        ("Microsoft Windows XP SP3", "Microsoft-IIS/5.1"),
        ("Microsoft Windows Server 2008 SP2", "Microsoft-IIS/7.0"),
        ("Microsoft Windows Server 2012 R2", "Microsoft-IIS/8.5"),
        ("Microsoft Windows Server 2016", "Microsoft-IIS/10.0"),
        ("Linux 5.4", "Apache/2.4.52 (Ubuntu)"),
        ("Linux 3.10", "Apache/2.4.6 (CentOS)"),
        ("FreeBSD 11.2-RELEASE", "Apache/2.4.58 (FreeBSD)"),
        ("HP LaserJet 1320 printer", "HP HTTP Server; HP LaserJet - embedded web server"),
        ("Cisco 1900-series router (IOS 15.4)", "cisco-IOS"),
    ],
)
def test_each_system_has_its_own_server(personality, server):
    assert site_for(info(personality)).server == server


@pytest.mark.parametrize(
    ("personality", "product", "version", "server"),
    [
        ("Linux 5.4", "Apache httpd", "2.4.41 ((Ubuntu))", "Apache/2.4.41 (Ubuntu)"),
        ("Microsoft Windows 7 SP1", "Apache httpd", "2.4.57", "Apache/2.4.57 (Unix)"),
        ("Linux 5.4", "nginx", "1.18.0", "nginx/1.18.0 (Ubuntu)"),
        ("Microsoft Windows Server 2019", "Microsoft IIS httpd", "10.0", "Microsoft-IIS/10.0"),
        ("Linux 5.4", "Apache Tomcat", "9.0.58", "Apache/2.4.52 (Ubuntu)"),
        ("Linux 5.4", "Apache httpd", "2.4.41\r\nSet-Cookie: x", "Apache/2.4.52 (Ubuntu)"),
        ("Linux 5.4", "Apache httpd", None, "Apache/2.4.52 (Ubuntu)"),
    ],
)
def test_nmaps_product_names_the_server(personality, product, version, server):
    conn = ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.20", 80, personality, "t", product, version)
    assert site_for(conn).server == server


def test_on_a_debian_host_apache_and_nginx_say_what_debians_packages_say():
    """Debian's Apache names Debian; Debian's nginx names nothing (only Ubuntu's names its OS)."""
    debian = identity_for("198.18.0.20", "Linux 5.4", hint="OpenSSH 9.2p1 Debian 2+deb12u3")
    own = ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.0.20", 80, "Linux 5.4", "t", identity=debian)
    assert site_for(own).server == "Apache/2.4.57 (Debian)"
    nginx = ConnectionInfo(
        "tcp", "198.18.0.3", 40000, "198.18.0.20", 8080, "Linux 5.4", "t", "nginx", "1.22.1", identity=debian
    )
    assert site_for(nginx).server == "nginx/1.22.1"
