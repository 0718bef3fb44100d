"""Generic banner service: say what the imitated server says first, then record what arrives.

For ports without an emulator of their own: the banner is chosen from the product and
version nmap found on the real hosts (OpenSSH, vsftpd, Dovecot, ...), "product version"
as a best effort for products not listed, and nothing when the product is unknown (the
port then behaves as the recorder: accept, keep what arrives, close when idle).
"""

from __future__ import annotations

import asyncio
import time

from dynapot.services.contract import ConnectionInfo, Report, Service
from dynapot.services.identity import host_name
from dynapot.services.recorder import record

# (lower-case product substring, banner template, version when nmap found none).
# Templates take {v} (version), {ssh} (version in SSH's form), {rfb}, {host}, {dst}, {date}.
BANNERS: tuple[tuple[str, str, str], ...] = (
    ("openssh", "SSH-2.0-OpenSSH_{ssh}\r\n", "8.9p1 Ubuntu 3ubuntu0.6"),
    ("dropbear", "SSH-2.0-dropbear_{v}\r\n", "2020.81"),
    ("vsftpd", "220 (vsFTPd {v})\r\n", "3.0.5"),
    ("proftpd", "220 ProFTPD {v} Server (ProFTPD Default Installation) [{dst}]\r\n", "1.3.7c"),
    ("microsoft ftpd", "220 Microsoft FTP Service\r\n", ""),
    ("postfix", "220 {host} ESMTP Postfix (Ubuntu)\r\n", ""),
    ("exim", "220 {host} ESMTP Exim {v} Ubuntu {date}\r\n", "4.95"),
    ("dovecot pop3d", "+OK Dovecot (Ubuntu) ready.\r\n", ""),
    (
        "dovecot imapd",
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] "
        "Dovecot (Ubuntu) ready.\r\n",
        "",
    ),
    ("vnc", "RFB {rfb}\n", "protocol 3.8"),
)
MAX_FIELD = 120  # a banner is one line: nmap's strings are short


def _rfb(version: str) -> str:
    """nmap's "protocol 3.8" as the RFB greeting's "003.008"."""
    major, _, minor = version.removeprefix("protocol ").partition(".")
    if major.isdigit() and minor.isdigit():
        return f"{int(major):03d}.{int(minor):03d}"
    return "003.008"


def banner_for(info: ConnectionInfo) -> bytes:
    """The first words of the imitated server; b"" when the product is unknown."""
    product = " ".join((info.product or "").split())[:MAX_FIELD]
    version = " ".join((info.version or "").split())[:MAX_FIELD]
    if not product:
        return b""
    name = product.lower()
    for needle, template, default in BANNERS:
        if needle in name:
            v = version or default
            first, _, rest = v.partition(" ")
            text = template.format(
                v=v,
                ssh=f"{first} {rest.replace(' ', '-')}" if rest else first,
                rfb=_rfb(v),
                host=host_name(info),
                dst=info.dst,
                date=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            )
            return text.encode("latin-1", "replace")
    return f"{product} {version}".strip().encode("latin-1", "replace") + b"\r\n"


async def serve_banner(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    banner = banner_for(info)
    if banner:
        writer.write(banner)
        try:
            await writer.drain()
        except ConnectionError:
            writer.close()
            return
    await record(reader, writer, info, report)


SERVICES = (Service(("banner",), "tcp", serve_banner),)
