"""Which product a service imitates on a host: one table per service, one way to choose a row.

A service that speaks like several products (vsftpd, ProFTPD or Microsoft's FTP service; Postfix,
Exim or Microsoft's SMTP; Apache or IIS; Linux telnetd or Cisco's) keeps a table of `Profile`
rows. `choose` picks the row for a connection: first by nmap -sV's product for the real hosts
this virtual host imitates (`ConnectionInfo.product`), then by the host's own system (the tags
of `HostIdentity.system`: its family, "windows-7", "windows-server", "ubuntu", ...). A table ends
with a row for any host. Another product or version is another row, not another code path.

`version_of` gives nmap's version in a form safe to put into a banner, or the row's default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from dynapot.services.contract import ConnectionInfo

__all__ = ["Profile", "choose", "version_of"]

T = TypeVar("T")

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~_-]{0,39}")


@dataclass(frozen=True, slots=True)
class Profile(Generic[T]):
    """One row: what to imitate (`what`) where nmap saw `product` or the host has the tag `os`."""

    what: T
    product: str = ""  # a lower-case word of nmap's product name ("vsftpd"); "" for rows chosen by OS
    os: str = ""  # a tag of the host's system ("windows", "windows-xp", "bsd"); "" for any host
    default_version: str = ""  # the version to claim when nmap gave none (or none usable)

    def version(self, info: ConnectionInfo) -> str:
        """nmap's version, when this row imitates the product nmap named; else the row's default."""
        return version_of(info, self.default_version) if self.product else self.default_version


def choose(table: Sequence[Profile[T]], info: ConnectionInfo) -> Profile[T]:
    """The row for this connection: nmap's product first, then the host's system, then the default."""
    product = (info.product or "").lower()
    tags = info.identity.system.tags
    if product:
        for row in table:
            if row.product and row.product in product and (not row.os or row.os in tags):
                return row
    for row in table:
        if not row.product and (not row.os or row.os in tags):
            return row
    raise LookupError("a profile table must end with a row for any host")


def version_of(info: ConnectionInfo, default: str = "") -> str:
    """The first word of nmap's version ("2.4.52" of "2.4.52 ((Ubuntu))") when it is one, else `default`.

    Inventory strings come from the network: anything with control characters, or that does not
    look like a version, is not echoed into a banner.
    """
    text = (info.version or "").strip()
    word = text.split(" ", 1)[0]
    if text.isprintable() and _VERSION.fullmatch(word):
        return word
    return default
