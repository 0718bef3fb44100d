"""The RDP emulator: negotiation by Windows release, nmap over loopback, an NLA client whose hash we crack."""

from __future__ import annotations

import socket
import ssl
import struct

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from loopback import needs_nmap
from test_service_smb import (
    alias_address,
    listening,
    nmap,
    ntlm_authenticate,
    ntlm_negotiate,
    ntlmv2_line_matches,
    parse_challenge,
)

from dynapot.services import rdp
from dynapot.services import smb_messages as m
from dynapot.services.identity import identity_for

pytestmark = pytest.mark.timeout(60)

# The two probes of nmap-service-probes that RDP answers.
COOKIE_PROBE = b"\x03\0\0*%\xe0\0\0\0\0\0Cookie: mstshash=nmap\r\n\x01\0\x08\0\x03\0\0\0"
LEGACY_PROBE = b"\x03\0\0\x0b\x06\xe0\0\0\0\0\0"


def x224_request(body: bytes) -> bytes:
    x224 = struct.pack(">BBHHB", 6 + len(body), 0xE0, 0, 0, 0) + body
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def connection_request(user: str | None = None, requested: int | None = 0x0B) -> bytes:
    body = f"Cookie: mstshash={user}\r\n".encode() if user is not None else b""
    if requested is not None:
        body += struct.pack("<BBHI", 1, 0, 8, requested)
    return x224_request(body)


def test_connection_requests_are_read() -> None:
    probe = rdp.parse_connection_request(COOKIE_PROBE)
    assert (probe.cookie_user, probe.requested) == ("nmap", 3)
    legacy = rdp.parse_connection_request(LEGACY_PROBE)
    assert (legacy.cookie_user, legacy.requested) == (None, None)
    token = b"Cookie: msts=3640205228.15629.0000\r\n"
    routed = rdp.parse_connection_request(x224_request(token + struct.pack("<BBHI", 1, 0, 8, 1)))
    assert (routed.routing_token, routed.requested) == ("3640205228.15629.0000", 1)
    for bad in (
        b"",
        b"\x03\0\0\x0b",
        b"GET / HTTP/1.1\r\n",
        b"\x03\0\0\x0b\x06\xf0\0\0\0\0\0",
        b"\x03\0\0\x0b\x40\xe0\0\0\0\0\0",
    ):
        with pytest.raises(m.MalformedMessage):
            rdp.parse_connection_request(bad)


@pytest.mark.parametrize(
    ("personality", "probe", "confirm"),
    [
        # Byte for byte what nmap's "Windows 10" ms-wbt-server match expects.
        (
            "Microsoft Windows 10 1809",
            COOKIE_PROBE,
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x1f\x08\0\x02\0\0\0",
        ),
        ("Microsoft Windows XP SP3", COOKIE_PROBE, b"\x03\0\0\x0b\x06\xd0\0\0\x124\0"),  # nmap's "Windows XP"
        ("Microsoft Windows 7 SP1", LEGACY_PROBE, b"\x03\0\0\x0b\x06\xd0\0\0\x124\0"),
        (
            "Microsoft Windows 7 SP1",
            connection_request(None, 1),
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x01\x08\0\x01\0\0\0",
        ),
        (
            "Microsoft Windows 7 SP1",
            connection_request("bob", 0),
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x01\x08\0\0\0\0\0",
        ),
        # NLA required from Windows 8 / 2012 on: a client without CredSSP is turned away.
        (
            "Microsoft Windows Server 2012 R2",
            connection_request(None, 1),
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x03\0\x08\0\x05\0\0\0",
        ),
        (
            "Microsoft Windows Server 2012 R2",
            connection_request(None, 3),
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x0f\x08\0\x02\0\0\0",
        ),
        (
            "Microsoft Windows Server 2019",
            connection_request("a", 0x0B),
            b"\x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x1f\x08\0\x08\0\0\0",
        ),
    ],
)
def test_confirm_fits_the_windows_release(personality: str, probe: bytes, confirm: bytes) -> None:
    profile = m.profile_for(personality)
    assert rdp.decide(profile, rdp.parse_connection_request(probe)) == confirm


@needs_nmap
def test_nmap_sees_terminal_services_with_nla_and_a_certificate() -> None:
    host, dst = alias_address(), "198.18.9.30"
    personality = "Microsoft Windows Server 2019"
    identity = identity_for(dst, personality)
    with listening(rdp.serve_rdp, personality, dst, host, 3389) as server:
        out = nmap("-sV", "-sC", "-p", "3389", host)
    assert "3389/tcp open  ms-wbt-server Microsoft Terminal Services" in out, out
    assert f"NetBIOS_Computer_Name: {identity.computer}" in out
    assert f"DNS_Computer_Name: {identity.fqdn}" in out
    assert "Product_Version: 10.0.17763" in out
    assert "System_Time: " in out
    assert f"ssl-cert: Subject: commonName={identity.fqdn}" in out
    assert ("login", "nmap:") in [e[:2] for e in server.events.events]


def read_der(channel: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        if len(data) >= 2:
            size = rdp._der_size(data[:6])
            if size is not None and len(data) >= size:
                return data[:size]
        chunk = channel.recv(4096)
        assert chunk, "server closed"
        data += chunk


def test_nla_logon_is_refused_and_its_hash_cracks() -> None:
    dst = "198.18.9.31"
    personality = "Microsoft Windows 10 1809"
    identity = identity_for(dst, personality)
    with (
        listening(rdp.serve_rdp, personality, dst) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
    ):
        raw.sendall(connection_request("administrator", 0x0B))
        confirm = raw.recv(100)
        assert rdp.selected_protocol(confirm) == rdp.PROTOCOL_HYBRID_EX
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as channel:
            certificate = x509.load_der_x509_certificate(channel.getpeercert(binary_form=True))
            channel.sendall(rdp.ts_request(6, ntlm_negotiate()))
            answer = read_der(channel)
            assert rdp.ts_request_version(answer) == 6
            challenge = m.find_ntlmssp(answer)
            assert challenge is not None
            _, _, pairs, version = parse_challenge(challenge)
            channel.sendall(
                rdp.ts_request(6, ntlm_authenticate(challenge, "administrator", "CORP", "P@ssw0rd"))
            )
            final = read_der(channel)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == identity.fqdn
    assert pairs[1].decode("utf-16-le") == identity.computer and version[:4] == struct.pack(
        "<BBH", 10, 0, 17763
    )
    assert final.endswith(m.der(0xA4, m.der(0x02, bytes.fromhex("c000006d"))))  # STATUS_LOGON_FAILURE
    logins = [e[2] for e in server.events.events if e[0] == "login"]
    assert logins[0] == {"user": "administrator", "password": None, "accepted": False, "source": "mstshash"}
    assert logins[1]["protocol"] == "RDP-CredSSP" and logins[1]["domain"] == "CORP"
    assert ntlmv2_line_matches(logins[1]["hash"], "P@ssw0rd")
    assert not ntlmv2_line_matches(logins[1]["hash"], "password")


def test_legacy_client_is_recorded_then_dropped() -> None:
    name = "KALI-BOX".encode("utf-16-le").ljust(32, b"\0")
    core = struct.pack("<HHIHHHHII", 0xC001, 216, 0x00080004, 1024, 768, 0xCA01, 0xAA03, 0x409, 2600) + name
    mcs = b"\x7f\x65\x82\x01\x00" + b"\0" * 40 + core + b"\0" * 40
    x224 = b"\x02\xf0\x80" + mcs
    with (
        listening(rdp.serve_rdp, "Microsoft Windows XP SP3", "198.18.9.32") as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
    ):
        raw.sendall(LEGACY_PROBE)
        assert raw.recv(100) == b"\x03\0\0\x0b\x06\xd0\0\0\x124\0"
        raw.sendall(struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224)
        assert raw.recv(100) == b""
    mcs_event = next(e for e in server.events.events if e[1] == "MCS connect initial")
    assert mcs_event[2] == {"client_name": "KALI-BOX", "client_build": 2600, "keyboard_layout": "0x00000409"}


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(payload)
        data = b""
        try:
            while chunk := raw.recv(4096):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return data


def test_bad_input_closes_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rdp, "IDLE", 0.3)
    with listening(rdp.serve_rdp, "Microsoft Windows Server 2016", "198.18.9.33") as server:
        assert exchange(server.port, b"GET / HTTP/1.0\r\n\r\n") == b""
        assert exchange(server.port, b"\x03\x00\xff\xff" + b"A" * 5000) == b""  # oversized TPKT
        assert exchange(server.port, b"\x03\x00\x00\x0b\x06\xe0") == b""  # truncated, then silence
        confirm = exchange(
            server.port, connection_request("x", 3) + b"\x16\x03\x01\x00\x05hello"
        )  # broken TLS
        assert confirm.startswith(b"\x03\0\0\x13")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"\x03")  # slowloris
            assert raw.recv(10) == b""
    kinds = [e[0] for e in server.events.events]
    assert kinds.count("bad-request") >= 2
