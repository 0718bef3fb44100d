"""Emulated services (ftp, ssh, telnet, http, smb, ...): each a small module, each alone.

A service is an async function `(reader, writer, info, report)`: it receives an asyncio
stream pair and a `dynapot.sensor.handlers.ConnectionInfo`, knows nothing of packets, and
reports what the attacker does through `report`. `REGISTRY` maps the names used in
honeyd configurations (`add T tcp port 21 "ftp"`) to them; a name without an emulator
yet is served by the recorder (accept, keep what arrives).
"""

from __future__ import annotations

from dynapot.sensor.handlers import Handler

REGISTRY: dict[str, Handler] = {}
