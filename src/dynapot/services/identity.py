"""A virtual host's name, the same in every service that says it.

The web page, the SMTP and FTP greetings, the banner's "[host]", the SNMP sysName and a Unix
telnet prompt all name the host; they must agree, or an attacker comparing them sees a clone
or a fake. The name is a hash of the host's address: stable across restarts, different per host.
"""

from __future__ import annotations

import hashlib

from dynapot.services.contract import ConnectionInfo


def host_tag(info: ConnectionInfo) -> str:
    """Four hex digits that tell this host from the others (for names in another style)."""
    return hashlib.blake2b(info.dst.encode(), digest_size=2).hexdigest()


def host_name(info: ConnectionInfo) -> str:
    """The host's name, e.g. "srv-143f"."""
    return f"srv-{host_tag(info)}"
