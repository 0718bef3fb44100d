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
from dynapot.services.profiles import Profile, choose
from dynapot.services.recorder import record

# The first words of each product, by a word of nmap's product name; the version is nmap's,
# else the row's. Templates take {v} (version), {ssh} (version in SSH's form), {rfb}, {host},
# {dst}, {date}. A product not listed says "product version" ({named}), as a best effort.
BANNERS: tuple[Profile[str], ...] = (
    Profile("SSH-2.0-OpenSSH_{ssh}\r\n", "openssh", default_version="8.9p1 Ubuntu 3ubuntu0.6"),
    Profile("SSH-2.0-dropbear_{v}\r\n", "dropbear", default_version="2020.81"),
    Profile("220 (vsFTPd {v})\r\n", "vsftpd", default_version="3.0.5"),
    Profile(
        "220 ProFTPD {v} Server (ProFTPD Default Installation) [{dst}]\r\n",
        "proftpd",
        default_version="1.3.7c",
    ),
    Profile("220 Microsoft FTP Service\r\n", "microsoft ftpd"),
    Profile("220 {host} ESMTP Postfix (Ubuntu)\r\n", "postfix"),
    Profile("220 {host} ESMTP Exim {v} Ubuntu {date}\r\n", "exim", default_version="4.95"),
    Profile("+OK Dovecot (Ubuntu) ready.\r\n", "dovecot pop3d"),
    Profile(
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] "
        "Dovecot (Ubuntu) ready.\r\n",
        "dovecot imapd",
    ),
    Profile("RFB {rfb}\n", "vnc", default_version="protocol 3.8"),
    Profile("{named}\r\n"),
)
MAX_FIELD = 120  # a banner is one line: nmap's strings are short


def _rfb(version: str) -> str:
    """nmap's "protocol 3.8" as the RFB greeting's "003.008"."""
    major, _, minor = version.removeprefix("protocol ").partition(".")
    if major.isdigit() and minor.isdigit():
        return f"{int(major):03d}.{int(minor):03d}"
    return "003.008"


def _field(text: str | None) -> str:
    """An inventory string on one line (banners keep nmap's whole version, spaces and all)."""
    return " ".join((text or "").split())[:MAX_FIELD]


def banner_for(info: ConnectionInfo) -> bytes:
    """The first words of the imitated server; b"" when the product is unknown."""
    product, version = _field(info.product), _field(info.version)
    if not product:
        return b""
    row = choose(BANNERS, info)
    v = version or row.default_version
    first, _, rest = v.partition(" ")
    text = row.what.format(
        v=v,
        ssh=f"{first} {rest.replace(' ', '-')}" if rest else first,
        rfb=_rfb(v),
        host=info.identity.hostname,
        dst=info.dst,
        date=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        named=f"{product} {v}".strip(),
    )
    return text.encode("latin-1", "replace")


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
