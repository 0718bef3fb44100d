"""The realism probes' normalisation removes randomness and nothing else."""

from __future__ import annotations

import base64
import struct

from dynapot.lab import probe_norm
from dynapot.lab.probes import PROBES, SHORT, probes_for


def _kexinit(cookie: bytes, kex: str) -> bytes:
    lists = [kex, "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha1", "hmac-sha1", "none", "none", "", ""]
    payload = b"\x14" + cookie + b"".join(struct.pack(">I", len(x)) + x.encode() for x in lists) + b"\0" * 5
    padding = 8 - (len(payload) + 5) % 8 + 4
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(range(padding))


def test_ssh_cookie_and_padding_are_random_the_lists_are_not() -> None:
    a = b"SSH-2.0-X\r\n" + _kexinit(b"\x01" * 16, "curve25519-sha256")
    b = b"SSH-2.0-X\r\n" + _kexinit(b"\x02" * 16, "curve25519-sha256")
    c = b"SSH-2.0-X\r\n" + _kexinit(b"\x01" * 16, "curve448-sha512")
    text = probe_norm.ssh_answer(a, "198.18.0.10")
    assert text == probe_norm.ssh_answer(b, "198.18.0.10") != probe_norm.ssh_answer(c, "198.18.0.10")
    assert "kex=curve25519-sha256 hostkey=ssh-ed25519" in text


def test_http_dates_and_hosts_normalised_error_pages_kept() -> None:
    def page(date: bytes, host: bytes, text: bytes) -> bytes:
        body = b"<address>Apache Server at " + host + b" Port 80</address>" + text
        head = b"HTTP/1.1 404 Not Found\r\nDate: " + date + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        return head + body

    real = probe_norm.http_answer(page(b"Mon", b"real", b""), "198.18.0.10", ("real",))
    fake = probe_norm.http_answer(page(b"Tue", b"srv-1", b""), "198.18.0.70", ("srv-1",))
    other = probe_norm.http_answer(page(b"Tue", b"srv-1", b"!"), "198.18.0.70", ("srv-1",))
    assert real == fake != other


def test_host_names_found_in_greetings() -> None:
    result = {"probe": "banner", "steps": [base64.b64encode(b"220 mail01 ESMTP Postfix\r\n").decode()]}
    assert "mail01" in probe_norm.host_names([result])
    text = probe_norm.describe(
        {"protocol": "smtp", "kind": "raw", "steps": result["steps"], "end": "open"},
        "198.18.0.9",
        ("mail01",),
    )
    assert text == "220 <host> ESMTP Postfix\\r\\n [open]"


def test_a_telnet_prompts_name_after_a_carriage_return() -> None:
    # BusyBox prints the issue with LF CR, so the name follows an escaped "\r"; "vmx" is not "vm".
    text = probe_norm.plain_answer(b"\r\r\nDebian GNU/Linux 12\r\n\rvm login: vmx", "198.18.0.9", ("vm",))
    assert text == "\\r\\r\\nDebian GNU/Linux 12\\r\\n\\r<host> login: vmx"


def test_mysql_greeting_without_thread_id_and_scramble() -> None:
    def greeting(thread: bytes, salt: bytes) -> bytes:
        body = b"\x0a5.5.5-10.11\x00" + thread + salt[:8] + b"\x00" + b"\xfe\xf7\x08\x02\x00\xff\x81\x15"
        body += b"\x00" * 10 + salt[8:] + b"\x00mysql_native_password\x00"
        return len(body).to_bytes(3, "little") + b"\x00" + body

    a = probe_norm.mysql_answer(greeting(b"\x01\x00\x00\x00", b"a" * 20), "198.18.0.9")
    b = probe_norm.mysql_answer(greeting(b"\x09\x00\x00\x00", b"b" * 20), "198.18.0.9")
    assert a == b and "version=5.5.5-10.11" in a and "mysql_native_password" in a


def test_delay_buckets() -> None:
    assert probe_norm.delay_bucket(0.01) == "<0.3s" and probe_norm.delay_bucket(2.1) == "1-4s"


def test_the_probe_table() -> None:
    names = [(p.protocol, p.name) for p in PROBES]
    assert len(names) == len(set(names))  # a probe is known by its protocol and name
    assert set(names) >= SHORT
    assert {p.protocol for p in PROBES} == {"ssh", "ftp", "telnet", "smtp", "http", "mysql"}
    assert all(
        probes_for(protocol, short=True) for protocol in ("ssh", "ftp", "telnet", "smtp", "http", "mysql")
    )
