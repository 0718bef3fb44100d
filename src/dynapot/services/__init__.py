"""Emulated services (ftp, ssh, telnet, http, smb, ...): each a small module, each alone.

A service is an async function `(reader, writer, info, report)`: it receives an asyncio
stream pair and a `dynapot.services.contract.ConnectionInfo`, knows nothing of packets, and
reports what the attacker does through `report`. `REGISTRY` maps the names used in
honeyd configurations (`add T tcp port 21 "ftp"`) to them; a name without an emulator
yet is served by the recorder (accept, keep what arrives). UDP services (SNMP) are sans-IO
functions, datagram in and datagram out, in `UDP_REGISTRY`.
"""

from __future__ import annotations

from dynapot.services import banner, ftp, http, mysql, netbios_ns, rdp, smb, smtp, snmp, ssh, telnet
from dynapot.services.contract import DatagramService, Handler

REGISTRY: dict[str, Handler] = {}
UDP_REGISTRY: dict[str, DatagramService] = {}
for _service in (banner, ftp, http, mysql, rdp, smb, smtp, ssh, telnet):
    _service.register(REGISTRY)
snmp.register_udp(UDP_REGISTRY)
netbios_ns.register_udp(UDP_REGISTRY)


# Standard-library modules that asyncio and the services import on first use only.
LAZY_STDLIB = ("concurrent.futures.thread", "concurrent.futures.process", "encodings.idna", "hmac", "secrets")


def preload() -> None:
    """Load everything the services import lazily, while the sensor still runs as root.

    After root is dropped the Python installation may not be readable (an interpreter under
    /root, for one), and a module imported then fails in the middle of an attacker's session.
    """
    import importlib

    for name in LAZY_STDLIB:
        importlib.import_module(name)
    ssh.preload()
    rdp.preload()
