"""The MySQL emulator on a loopback socket: the real mariadb client, nmap -sV, raw protocol probes."""

from __future__ import annotations

import socket
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import ServiceServer, needs, needs_nmap, nmap_service_scan

from dynapot.services import mysql
from dynapot.services.contract import ConnectionInfo
from dynapot.services.mysql import (
    CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    native_response,
    parse_response,
    serve_mysql,
    server_for,
)

pytestmark = pytest.mark.timeout(30)

needs_mariadb = needs("mariadb", "the mariadb client")


def info(personality: str | None = "Linux 5.4", product: str | None = None, version: str | None = None):
    return ConnectionInfo("tcp", "127.0.0.1", 40000, "198.18.0.30", 3306, personality, "t", product, version)


@pytest.fixture
def server():
    with ServiceServer(serve_mysql, info()) as s:
        yield s


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = recv_exactly(sock, 4)
    return header[3], recv_exactly(sock, int.from_bytes(header[:3], "little"))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def parse_greeting(payload: bytes) -> dict:
    end = payload.index(b"\0", 1)
    pos = end + 1
    conn_id = int.from_bytes(payload[pos : pos + 4], "little")
    salt1 = payload[pos + 4 : pos + 12]
    caps = int.from_bytes(payload[pos + 13 : pos + 15], "little")
    caps |= int.from_bytes(payload[pos + 18 : pos + 20], "little") << 16
    salt_len = payload[pos + 20]
    rest = payload[pos + 31 :]
    salt2, _, plugin = rest.partition(b"\0")
    return {
        "protocol": payload[0],
        "version": payload[1:end].decode(),
        "id": conn_id,
        "salt": salt1 + salt2,
        "salt_len": salt_len,
        "caps": caps,
        "plugin": plugin.rstrip(b"\0").decode(),
    }


def handshake_response(user: bytes, auth: bytes, plugin: bytes = b"mysql_native_password") -> bytes:
    caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
    return (
        caps.to_bytes(4, "little")
        + (1 << 24).to_bytes(4, "little")
        + b"\x21"
        + bytes(23)
        + user
        + b"\0"
        + bytes([len(auth)])
        + auth
        + plugin
        + b"\0"
    )


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


# -- the real client ------------------------------------------------------------------------------------


def run_mariadb(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-P", str(port), "--connect-timeout=5", *args, "-e", "select 1"],
        capture_output=True,
        text=True,
        timeout=15,
    )


@needs_mariadb
def test_mariadb_login_is_denied_and_the_hash_recorded(server):
    result = run_mariadb(server.port, "-u", "root", "-pSECRET")
    assert result.returncode != 0
    assert (
        "ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)" in result.stderr
    )
    login = next(r for r in server.reports if r[0] == "login")
    data = login[2]
    assert data["user"] == "root" and data["accepted"] is False and data["plugin"] == "mysql_native_password"
    # The recorded material is exactly what cracks offline: the response matches SECRET under the salt.
    salt = bytes.fromhex(data["salt"])
    assert len(salt) == 20 and bytes.fromhex(data["response"]) == native_response("SECRET", salt)
    assert (
        data["hash"] == f"$mysqlna${data['salt']}*{data['response']}" and login[1] == f"root:{data['hash']}"
    )
    assert data["attrs"].get("_client_name") == "libmariadb"


@needs_mariadb
def test_mariadb_without_password_and_with_database(server):
    result = run_mariadb(server.port, "-u", "guest", "shop")
    assert "Access denied for user 'guest'@'127.0.0.1' (using password: NO)" in result.stderr
    login = next(r for r in server.reports if r[0] == "login")
    assert login[1] == "guest:" and login[2]["hash"] is None and login[2]["database"] == "shop"


@needs_mariadb
def test_mariadb_asking_for_another_plugin_is_switched_to_native(server):
    result = run_mariadb(server.port, "-u", "admin", "-phunter2", "--default-auth=caching_sha2_password")
    assert "ERROR 1045 (28000)" in result.stderr
    data = next(r for r in server.reports if r[0] == "login")[2]
    assert bytes.fromhex(data["response"]) == native_response("hunter2", bytes.fromhex(data["salt"]))


# -- the protocol, byte by byte -------------------------------------------------------------------------


def test_greeting_is_a_v10_handshake_with_a_fresh_salt(server):
    greetings = []
    for _ in range(2):
        with server.connect() as sock:
            seq, payload = read_packet(sock)
            assert seq == 0
            greetings.append(parse_greeting(payload))
    first, second = greetings
    assert first["protocol"] == 10 and first["version"] == mysql.DEFAULT_LINUX
    assert first["plugin"] == "mysql_native_password" and first["salt_len"] == 21
    assert len(first["salt"]) == 20 and b"\0" not in first["salt"]
    assert first["salt"] != second["salt"]
    assert second["id"] > first["id"]
    assert first["caps"] & CLIENT_PROTOCOL_41 and not first["caps"] & CLIENT_SSL


def test_plugin_switch_by_hand(server):
    with server.connect() as sock:
        _, payload = read_packet(sock)
        salt = parse_greeting(payload)["salt"]
        sock.sendall(packet(1, handshake_response(b"sa", b"\x01" * 32, b"caching_sha2_password")))
        seq, switch = read_packet(sock)
        assert seq == 2 and switch.startswith(b"\xfemysql_native_password\0")
        new_salt = switch[len(b"\xfemysql_native_password\0") :].rstrip(b"\0")
        assert new_salt == salt
        sock.sendall(packet(3, native_response("pw", salt)))
        seq, err = read_packet(sock)
    assert seq == 4 and err[:3] == b"\xff\x15\x04" and err[3:9] == b"#28000"
    data = next(r for r in server.reports if r[0] == "login")[2]
    assert data["user"] == "sa" and bytes.fromhex(data["response"]) == native_response("pw", salt)


def test_ssl_request_is_refused_as_bad_handshake(server):
    with server.connect() as sock:
        read_packet(sock)
        caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_SSL
        sock.sendall(
            packet(1, caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + b"\x21" + bytes(23))
        )
        seq, err = read_packet(sock)
        assert sock.recv(10) == b""  # and the server hangs up
    assert seq == 2 and err == b"\xff\x13\x04Bad handshake"
    assert server.reports[0][:2] == ("bad-request", "SSL request")


def test_com_quit_closes_quietly(server):
    with server.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(0, b"\x01"))
        assert sock.recv(10) == b""
    assert server.reports == []


def test_http_and_garbage_get_bad_handshake(server):
    with server.connect() as sock:
        read_packet(sock)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _, err = read_packet(sock)
    assert err == b"\xff\x13\x04Bad handshake"
    assert server.reports[0][:2] == ("bad-request", "packet too large")
    with server.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(1, b"\x00\x02\x00\x00garbage"))  # protocol 4.1, then a truncated response
        _, err = read_packet(sock)
    assert err.endswith(b"Bad handshake") and server.reports[1][0] == "bad-request"


def test_silent_client_is_dropped(monkeypatch):
    monkeypatch.setattr(mysql, "CONNECT_TIMEOUT", 0.3)
    s = ServiceServer(serve_mysql, info())
    try:
        with s.connect() as sock:
            read_packet(sock)
            sock.sendall(b"\x10\x00")  # half a header, then nothing: slowloris
            assert sock.recv(10) == b""
    finally:
        s.close()


# -- what the greeting claims ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("personality", "product", "version", "expected"),
    [
        ("Linux 5.4", None, None, "8.0.35-0ubuntu0.22.04.1"),
        ("Linux 4.15", None, None, "5.7.42-0ubuntu0.18.04.1"),  # the distribution's own package
        ("Microsoft Windows Server 2016", None, None, "8.0.35"),
        (None, "MySQL", "5.7.44-log", "5.7.44-log"),
        (None, "MySQL", "5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1", "5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1"),
        (None, "MariaDB", "10.11.6-MariaDB-0+deb12u1", "5.5.5-10.11.6-MariaDB-0+deb12u1"),
        (None, "MariaDB", "10.5.23", "5.5.5-10.5.23-MariaDB"),
        (None, "MariaDB", "11.4.2-MariaDB", "11.4.2-MariaDB"),
        (None, "MySQL", "8.0.36\0\r\n", "8.0.36"),  # the version is NUL-terminated on the wire
    ],
)
def test_server_version(personality, product, version, expected):
    server = server_for(info(personality, product, version))
    assert server.version == expected
    assert (server.mariadb_caps is not None) == ("MariaDB" in expected)
    assert not server.capabilities & CLIENT_SSL


@needs_nmap
@pytest.mark.parametrize(
    ("product", "version", "expected"),
    [
        (None, None, "MySQL 8.0.35-0ubuntu0.22.04.1"),
        ("MySQL", "5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1", "MySQL 5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1"),
    ],
)
def test_nmap_sees_the_imitated_server(product, version, expected):
    with ServiceServer(serve_mysql, info("Linux 5.4", product, version)) as s:
        line = nmap_service_scan([s.port]).ports[s.port]
    assert "mysql" in line and expected in line


# -- the parser never raises ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_response_never_raises(payload):
    response = parse_response(payload)
    assert response is None or isinstance(response.user, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 0xFFFFFFFF), st.binary(max_size=80))
def test_parse_response_survives_odd_fields(user, auth, caps, tail):
    payload = caps.to_bytes(4, "little") + bytes(28) + user.replace(b"\0", b"") + b"\0"
    payload += bytes([len(auth)]) + auth + tail
    response = parse_response(payload)
    if response is not None and caps & CLIENT_PROTOCOL_41:
        assert len(response.user) <= 4 * len(user) + 1


# -- MariaDB's ways (recorded from MariaDB 10.11 on Debian 12 by the realism probe suite) ----------------

MARIADB_VERSION = "5.5.5-10.11.19-MariaDB-0+deb12u1"


@pytest.fixture
def mariadb():
    with ServiceServer(serve_mysql, info(product="MySQL", version=MARIADB_VERSION)) as s:
        yield s


def test_mariadb_refuses_packets_out_of_order(mariadb):
    with mariadb.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(5, handshake_response(b"root", bytes(20))))
        seq, err = read_packet(sock)
        with pytest.raises(ConnectionResetError):  # the rest is left unread: a RST
            while sock.recv(100):
                pass
    assert seq == 1 and err == b"\xff\x84\x04#08S01Got packets out of order"


def test_mariadb_errors_carry_sqlstate_and_unknown_users_get_1698(mariadb):
    with mariadb.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(1, b"\x01"))  # COM_QUIT instead of a handshake response
        _, err = read_packet(sock)
    assert err == b"\xff\x13\x04#08S01Bad handshake"
    with mariadb.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(1, handshake_response(b"nosuchuser", bytes(20))))
        _, err = read_packet(sock)
    assert err == b"\xff\xa2\x06#28000Access denied for user 'nosuchuser'@'127.0.0.1'"
    with mariadb.connect() as sock:
        read_packet(sock)
        sock.sendall(packet(1, handshake_response(b"root", bytes(20))))
        _, err = read_packet(sock)
    assert err.endswith(b"Access denied for user 'root'@'127.0.0.1' (using password: YES)")
