"""Emulated services (ftp, ssh, telnet, http, smb, ...): each a small module, each alone.

A service is an async function `(reader, writer, info, report)`: it receives an asyncio
stream pair and a `dynapot.services.contract.ConnectionInfo`, knows nothing of packets, and
reports what the attacker does through `report`. UDP services (SNMP, NetBIOS names) are
sans-IO functions, datagram in and datagram out. Every service module describes itself the
same way, with its `SERVICES`, a tuple of `contract.Service`; this package gathers
them: `REGISTRY` maps the names used in honeyd configurations (`add T tcp port 21 "ftp"`) to
TCP handlers, `UDP_REGISTRY` to datagram services, and `preload()` loads what they import
lazily. A name without an emulator yet is served by the recorder (accept, keep what arrives).

Who a virtual host is (its name, its clock, its system) is `identity.HostIdentity`, handed
to every service in `ConnectionInfo.identity`; which product a service imitates is chosen
from a table per service by `profiles.choose`.
"""

from __future__ import annotations

from dynapot.services import banner, ftp, http, mysql, netbios_ns, rdp, smb, smtp, snmp, ssh, telnet
from dynapot.services.contract import DatagramService, Handler, Service

MODULES = (banner, ftp, http, mysql, rdp, smb, smtp, ssh, telnet, snmp, netbios_ns)
SERVICES: tuple[Service, ...] = tuple(service for module in MODULES for service in module.SERVICES)


def _registry(transport: str) -> dict:
    registry: dict = {}
    for service in SERVICES:
        if service.transport != transport:
            continue
        for name in service.names:
            if name in registry:
                raise ValueError(f"two {transport} services are called {name!r}")
            registry[name] = service.handler
    return registry


REGISTRY: dict[str, Handler] = _registry("tcp")
UDP_REGISTRY: dict[str, DatagramService] = _registry("udp")

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
    for service in SERVICES:
        if service.preload is not None:
            service.preload()


__all__ = ["LAZY_STDLIB", "REGISTRY", "SERVICES", "UDP_REGISTRY", "preload"]
