"""The realism probes: what a honeypot-detection scan sends to a service, one row per probe.

Each row is a `Probe`: the protocol it is for, a name, and what it does. `raw` probes open a TCP
connection, read the greeting (when `greeting`), then send each of `send` in turn, reading what
comes back after each; `ssh-client` probes run OpenSSH's client with `args` and keep what
`ssh -v` says about the server; `ssh-delay` times a failed password login. A new probe is a new
row. The same probes go to a real daemon and to dynapot's imitation of it
(bench/realism_probes.py), in the style of Vetterl & Clayton's "Bitter Harvest" (WOOT 2018).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Literal

__all__ = ["PROBES", "SHORT", "Probe", "probes_for"]

ProbeKind = Literal["raw", "ssh-client", "ssh-delay"]


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe of one protocol ("ssh", "ftp", "telnet", "smtp", "http", "mysql")."""

    protocol: str
    name: str
    send: tuple[bytes, ...] = ()
    kind: ProbeKind = "raw"
    args: tuple[str, ...] = ()  # ssh-client: options for ssh
    greeting: bool = True  # read what the server says first before sending


def _garbage(size: int, seed: int = 15) -> bytes:
    """Fixed pseudo-random bytes: the same garbage to both servers."""
    return random.Random(seed).randbytes(size)


def _ssh_packet(payload: bytes, padding: int = 8, length: int | None = None) -> bytes:
    size = len(payload) + padding + 1 if length is None else length
    return struct.pack(">IB", size, padding) + payload + b"\0" * padding


def _name_list(names: str) -> bytes:
    return struct.pack(">I", len(names)) + names.encode()


def _kexinit(kex: str, hostkey: str = "ssh-ed25519") -> bytes:
    lists = [
        kex,
        hostkey,
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ]
    payload = b"\x14" + b"\x11" * 16 + b"".join(_name_list(n) for n in lists) + b"\0" + b"\0\0\0\0"
    pad = 8 - (len(payload) + 5) % 8 + 8
    return _ssh_packet(payload, pad)


CLIENT_ID = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def _ssh() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("ssh", name, send)

    def client(name: str, *args: str) -> Probe:
        return Probe("ssh", name, kind="ssh-client", args=args)

    return [
        raw("banner"),
        raw("kexinit", CLIENT_ID),
        raw("version-1.5", b"SSH-1.5-Client\r\n"),
        raw("version-1.99", b"SSH-1.99-OpenSSH_9.2\r\n"),
        raw("version-3.0", b"SSH-3.0-Client\r\n"),
        raw("version-2.0-no-software", b"SSH-2.0\r\n"),
        raw("version-2.0-dash-only", b"SSH-2.0-\r\n"),
        raw("empty-line", b"\r\n"),
        raw("not-ssh-line", b"HELLO\r\n"),
        raw("lf-only", b"SSH-2.0-Client\n"),
        raw("nul-in-version", b"SSH-2.0-Cli\x00ent\r\n"),
        raw("long-version", b"SSH-2.0-" + b"A" * 300 + b"\r\n"),
        raw("lines-before-version", b"junk one\r\njunk two\r\n" + CLIENT_ID),
        raw("garbage", _garbage(64)),
        raw("http-get", b"GET / HTTP/1.0\r\n\r\n"),
        raw("bad-packet-length", CLIENT_ID + b"\xff\xff\xff\xff" + _garbage(60)),
        raw("short-padding", CLIENT_ID + _ssh_packet(b"\x05" + _name_list("ssh-userauth"), 2)),
        raw("no-common-kex", CLIENT_ID + _kexinit("nonsense-kex@example.com")),
        raw("service-request-before-kex", CLIENT_ID + _ssh_packet(b"\x05" + _name_list("ssh-userauth"), 7)),
        raw("zero-length-packet", CLIENT_ID + b"\0\0\0\0" + b"\0" * 12),
        client("negotiation", "-o", "PreferredAuthentications=none"),
        client("hostkey-rsa-sha2-512", "-o", "HostKeyAlgorithms=rsa-sha2-512"),
        client("hostkey-ssh-rsa", "-o", "HostKeyAlgorithms=ssh-rsa"),
        client("hostkey-ecdsa-p256", "-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256"),
        client("hostkey-ecdsa-p384", "-o", "HostKeyAlgorithms=ecdsa-sha2-nistp384"),
        client("hostkey-ed25519", "-o", "HostKeyAlgorithms=ssh-ed25519"),
        client("cipher-cbc", "-o", "Ciphers=aes128-cbc"),
        client("cipher-3des", "-o", "Ciphers=3des-cbc"),
        client("cipher-aes256-gcm", "-o", "Ciphers=aes256-gcm@openssh.com"),
        client("mac-md5", "-o", "MACs=hmac-md5", "-o", "Ciphers=aes128-ctr"),
        client("mac-sha1", "-o", "MACs=hmac-sha1", "-o", "Ciphers=aes128-ctr"),
        client("kex-group1", "-o", "KexAlgorithms=diffie-hellman-group1-sha1"),
        client("kex-group14-sha1", "-o", "KexAlgorithms=diffie-hellman-group14-sha1"),
        client("kex-gex-sha256", "-o", "KexAlgorithms=diffie-hellman-group-exchange-sha256"),
        client("kex-ecdh-p521", "-o", "KexAlgorithms=ecdh-sha2-nistp521"),
        client("compression", "-o", "Compression=yes"),
        Probe("ssh", "failed-password-delay", kind="ssh-delay"),
    ]


def _ftp() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("ftp", name, send)

    login = (b"USER anonymous\r\n", b"PASS probe@example.com\r\n")
    return [
        raw("banner"),
        raw("anonymous-login", *login),
        raw("syst", b"SYST\r\n"),
        raw("feat", b"FEAT\r\n"),
        raw("help", b"HELP\r\n"),
        raw("unknown-command", b"XYZZY\r\n"),
        raw("lowercase", b"user anonymous\r\n"),
        raw("pass-before-user", b"PASS secret\r\n"),
        raw("list-before-login", b"LIST\r\n"),
        raw("pasv-before-login", b"PASV\r\n"),
        raw("long-line", b"USER " + b"A" * 1000 + b"\r\n"),
        raw("bad-login", b"USER root\r\n", b"PASS toor\r\n"),
        raw("stat-after-login", *login, b"STAT\r\n"),
        raw("pwd-cwd", *login, b"PWD\r\n", b"CWD /nonexistent\r\n"),
        raw("site-help", *login, b"SITE HELP\r\n"),
        raw("epsv-all", *login, b"EPSV ALL\r\n"),
        raw("opts-utf8", b"OPTS UTF8 ON\r\n"),
        raw("garbage", _garbage(64)),
        raw("telnet-ip", b"\xff\xf4\xff\xf2ABOR\r\n"),
        raw("quit", b"QUIT\r\n"),
        raw("ftp-user-login", b"USER ftp\r\n", b"PASS ftp\r\n"),
        raw("random-login", b"USER Kx7qU2\r\n", b"PASS v9!Lw2pQ\r\n", b"SYST\r\n"),
        raw("three-bad-logins", *(b"USER admin\r\n", b"PASS x\r\n") * 3),
        raw("overlong-line", b"USER " + b"A" * 5000 + b"\r\n"),
    ]


def _telnet() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("telnet", name, send)

    return [
        raw("negotiation"),
        raw("ayt", b"\xff\xf6"),
        raw("user", b"root\r\n"),
        raw("user-password", b"root\r\n", b"wrongpass\r\n"),
        raw("will-naws", b"\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0"),
        raw("do-echo-dont-sga", b"\xff\xfd\x01\xff\xfe\x03"),
        raw("escape-sequence", b"\x1b[A\x1b[2J\r\n"),
        raw("ctrl-c", b"\x03"),
        raw("garbage", _garbage(64)),
        raw("http-get", b"GET / HTTP/1.0\r\n\r\n"),
        raw("ctrl-d", b"\x04"),
        raw("ctrl-backslash", b"\x1c"),
        raw("empty-user", b"\r\n"),
        raw("iac-ip-in-line", b"ab\xff\xf4cd\r\n"),
        raw("ttype-subnegotiation", b"\xff\xfa\x18\x00VT100\xff\xf0"),
        raw("long-line", b"A" * 5000 + b"\r\n"),
    ]


def _smtp() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("smtp", name, send)

    ehlo = b"EHLO probe.example.com\r\n"
    return [
        raw("banner"),
        raw("ehlo", ehlo),
        raw("helo", b"HELO probe.example.com\r\n"),
        raw("ehlo-no-argument", b"EHLO\r\n"),
        raw("lowercase-ehlo", b"ehlo probe.example.com\r\n"),
        raw("mail-before-helo", b"MAIL FROM:<a@example.com>\r\n"),
        raw("relay", ehlo, b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.org>\r\n"),
        raw("local-recipient", ehlo, b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<postmaster>\r\n"),
        raw("unknown-user", ehlo, b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<nosuchuser>\r\n"),
        raw("data-before-rcpt", ehlo, b"DATA\r\n"),
        raw("vrfy", b"VRFY root\r\n"),
        raw("expn", b"EXPN root\r\n"),
        raw("unknown-command", b"XYZZY\r\n"),
        raw("help", b"HELP\r\n"),
        raw("noop-rset", b"NOOP\r\n", b"RSET\r\n"),
        raw("starttls", ehlo, b"STARTTLS\r\n"),
        raw("auth-login", ehlo, b"AUTH LOGIN\r\n"),
        raw("etrn", ehlo, b"ETRN example.com\r\n"),
        raw("long-line", b"EHLO " + b"a" * 2000 + b"\r\n"),
        raw("bad-mail-syntax", ehlo, b"MAIL FROM: a@@example\r\n"),
        raw("garbage", _garbage(64)),
        raw("quit", b"QUIT\r\n"),
        raw(
            "bdat",
            ehlo,
            b"MAIL FROM:<a@example.com>\r\n",
            b"RCPT TO:<postmaster>\r\n",
            b"BDAT 5 LAST\r\nhello",
        ),
        raw("bdat-bad-size", ehlo, b"BDAT x\r\n"),
        raw("data-without-recipient", ehlo, b"MAIL FROM:<a@example.com>\r\n", b"DATA\r\n"),
        raw("vrfy-unknown", b"VRFY nosuchuser\r\n"),
        raw("vrfy-remote", b"VRFY someone@example.org\r\n"),
        raw("mail-unknown-option", ehlo, b"MAIL FROM:<a@example.com> FOO=bar\r\n"),
        raw("rcpt-bad-syntax", ehlo, b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<>\r\n"),
        raw("auth-plain", ehlo, b"AUTH PLAIN AGFkbWluAGFkbWlu\r\n"),
        raw("xclient", b"XCLIENT NAME=probe\r\n"),
        raw("rset-argument", b"RSET now\r\n"),
        raw("long-command", b"NOOP " + b"a" * 5000 + b"\r\n"),
        raw("bad-utf8", b"\x01\x02garbage\x9f\r\n"),
        raw("non-letter-command", b"\x16\x03\x01\x00\x05hello\r\n"),
        raw("http-get", b"GET / HTTP/1.0\r\n\r\n"),
    ]


def _http() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("http", name, send, greeting=False)

    host = b"Host: probe.example\r\n"
    return [
        raw("get-1.1", b"GET / HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"),
        raw("get-1.0", b"GET / HTTP/1.0\r\n\r\n"),
        raw("get-1.1-no-host", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        raw("head", b"HEAD / HTTP/1.0\r\n\r\n"),
        raw("options", b"OPTIONS / HTTP/1.0\r\n\r\n"),
        raw("options-star", b"OPTIONS * HTTP/1.0\r\n\r\n"),
        raw("trace", b"TRACE / HTTP/1.0\r\n\r\n"),
        raw("delete", b"DELETE / HTTP/1.0\r\n\r\n"),
        raw("put", b"PUT /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
        raw("post-index", b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
        raw("unknown-method", b"FOO / HTTP/1.0\r\n\r\n"),
        raw("lowercase-method", b"get / HTTP/1.0\r\n\r\n"),
        raw("version-9.9", b"GET / HTTP/9.9\r\n\r\n"),
        raw("version-2.0-text", b"GET / HTTP/2.0\r\n\r\n"),
        raw("version-garbage", b"GET / HTTP/X.Y\r\n\r\n"),
        raw("http-0.9", b"GET /\r\n"),
        raw("not-found", b"GET /nonexistent-probe.html HTTP/1.0\r\n\r\n"),
        raw("directory-no-slash", b"GET /icons HTTP/1.0\r\n\r\n"),
        raw("dotdot", b"GET /../../etc/passwd HTTP/1.0\r\n\r\n"),
        raw("percent-null", b"GET /%00 HTTP/1.0\r\n\r\n"),
        raw("bad-percent", b"GET /%zz HTTP/1.0\r\n\r\n"),
        raw(
            "absolute-uri", b"GET http://probe.example/ HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"
        ),
        raw("long-uri", b"GET /" + b"a" * 9000 + b" HTTP/1.0\r\n\r\n"),
        raw("long-header", b"GET / HTTP/1.0\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n"),
        raw("many-headers", b"GET / HTTP/1.0\r\n" + b"X-H: v\r\n" * 120 + b"\r\n"),
        raw("bad-header-line", b"GET / HTTP/1.0\r\nno colon here\r\n\r\n"),
        raw("range", b"GET / HTTP/1.0\r\nRange: bytes=0-9\r\n\r\n"),
        raw("range-unsatisfiable", b"GET / HTTP/1.0\r\nRange: bytes=999999-\r\n\r\n"),
        raw(
            "expect-continue",
            b"POST / HTTP/1.1\r\n"
            + host
            + b"Expect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        ),
        raw(
            "pipelined",
            b"GET / HTTP/1.1\r\n"
            + host
            + b"\r\nGET /nonexistent HTTP/1.1\r\n"
            + host
            + b"Connection: close\r\n\r\n",
        ),
        raw("connect", b"CONNECT probe.example:443 HTTP/1.0\r\n\r\n"),
        raw("empty-lines", b"\r\n\r\n"),
        raw("garbage", _garbage(64)),
    ]


def _mysql() -> list[Probe]:
    def raw(name: str, *send: bytes) -> Probe:
        return Probe("mysql", name, send)

    def packet(seq: int, body: bytes) -> bytes:
        return len(body).to_bytes(3, "little") + bytes([seq]) + body

    caps = (0x000FA68D).to_bytes(4, "little")  # a mysql client's usual capability flags
    login = caps + (16777216).to_bytes(4, "little") + bytes([33]) + b"\0" * 23
    wrong = packet(1, login + b"root\0" + bytes([20]) + _garbage(20, 3) + b"mysql_native_password\0")
    return [
        raw("greeting"),
        raw("wrong-password", wrong),
        raw(
            "unknown-user",
            packet(1, login + b"nosuchuser\0" + bytes([20]) + _garbage(20, 4) + b"mysql_native_password\0"),
        ),
        raw("wrong-sequence", packet(5, login + b"root\0\0")),
        raw("short-packet", packet(1, b"\x8d\xa6")),
        raw("empty-packet", packet(1, b"")),
        raw("quit-before-auth", packet(1, b"\x01")),
        raw("query-before-auth", packet(0, b"\x03select 1")),
        raw("ssl-request-only", packet(1, (0x000FAE8D).to_bytes(4, "little") + login[4:])),
        raw("garbage", _garbage(64)),
        raw("http-get", b"GET / HTTP/1.0\r\n\r\n"),
    ]


PROBES: tuple[Probe, ...] = (*_ssh(), *_ftp(), *_telnet(), *_smtp(), *_http(), *_mysql())

#: A handful per protocol for the lab test: the ones that told dynapot apart most plainly.
SHORT: frozenset[tuple[str, str]] = frozenset(
    {
        ("ssh", "banner"),
        ("ssh", "kexinit"),
        ("ssh", "version-1.5"),
        ("ssh", "not-ssh-line"),
        ("ssh", "hostkey-rsa-sha2-512"),
        ("ssh", "negotiation"),
        ("ftp", "banner"),
        ("ftp", "syst"),
        ("ftp", "unknown-command"),
        ("ftp", "bad-login"),
        ("ftp", "anonymous-login"),
        ("http", "not-found"),
        ("http", "unknown-method"),
        ("smtp", "banner"),
        ("smtp", "relay"),
        ("smtp", "unknown-user"),
        ("smtp", "bdat"),
        ("telnet", "negotiation"),
        ("telnet", "ayt"),
        ("telnet", "escape-sequence"),
        ("mysql", "wrong-password"),
    }
)


def probes_for(protocol: str, short: bool = False) -> list[Probe]:
    """The probes of one protocol, all or only the short list's."""
    return [p for p in PROBES if p.protocol == protocol and (not short or (p.protocol, p.name) in SHORT)]
