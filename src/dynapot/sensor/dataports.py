"""Second connections for services on virtual hosts: FTP's passive data ports.

`SensorDataPorts` is the sensor's `DataPorts` (dynapot.services.contract): an FTP service
asking for a passive data port gets a port opened on its virtual host for one connection
from the same peer, kept in the `DataPortRegistry` until that connection arrives or the
wait ends. The sensor's stack makes no outgoing connections, so active mode (FTP PORT) is
refused, as many hardened servers do.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from dynapot.sensor.hosts import VirtualHost
from dynapot.sensor.streams import ConnectionOps, UserlandTransport, open_streams
from dynapot.services.contract import ConnectionInfo

EPHEMERAL = (32768, 60999)  # Linux's default range: where a real server's PASV ports fall

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class DataListener:
    """One passive data port of a virtual host, for one connection from `peer_ip`."""

    def __init__(
        self, registry: DataPortRegistry, host_ip: int, port: int, peer_ip: int, restore: Callable[[], None]
    ) -> None:
        self.port = port
        self.peer_ip = peer_ip
        self._registry = registry
        self._host_ip = host_ip
        self._restore: Callable[[], None] | None = restore
        self._ready: asyncio.Future[Streams] = asyncio.get_running_loop().create_future()

    def attach(self, ops: ConnectionOps, conn: Any) -> UserlandTransport:
        """The awaited connection arrived: give the service its streams, close the port behind it."""
        info = ConnectionInfo(
            "tcp", _ip(conn.peer_ip), conn.peer_port, _ip(self._host_ip), self.port, None, "data"
        )
        reader, writer, transport = open_streams(ops, info)
        if not self._ready.done():
            self._ready.set_result((reader, writer))
        else:
            transport.abort()
        self.close()
        return transport

    async def accept(self, timeout: float) -> Streams:
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self._restore is None:
            return
        self._registry.forget(self._host_ip, self.port, self)
        self._restore()
        self._restore = None
        if not self._ready.done():
            self._ready.cancel()


class DataPortRegistry:
    """The passive data ports open on the sensor's virtual hosts, by (host, port)."""

    def __init__(self, serving: Callable[[int, int], VirtualHost | None]) -> None:
        self._serving = serving  # (host address, peer) -> the machine answering that peer there
        self.listeners: dict[tuple[int, int], DataListener] = {}

    def open(self, host_ip: int, peer_ip: int) -> DataListener:
        host = self._serving(host_ip, peer_ip)
        if host is None or host.stack is None:
            raise OSError("the virtual host is gone")
        taken = set(host.definition.tcp) | {p for (ip, p) in self.listeners if ip == host_ip}
        for _ in range(64):
            port = random.randint(*EPHEMERAL)
            if port not in taken:
                break
        else:
            raise OSError("no free data port")
        actions = host.stack.policy
        before = actions.open_tcp(port)  # type: ignore[attr-defined]
        listener = DataListener(
            self,
            host_ip,
            port,
            peer_ip,
            lambda: actions.restore_tcp(port, before),  # type: ignore[attr-defined]
        )
        self.listeners[(host_ip, port)] = listener
        return listener

    def take(self, host_ip: int, port: int) -> DataListener | None:
        """The listener waiting on this port, if any (it then stops waiting)."""
        # Almost always empty: no tuple, no lookup on the packet path unless a data port is open.
        return self.listeners.pop((host_ip, port), None) if self.listeners else None

    def forget(self, host_ip: int, port: int, listener: DataListener) -> None:
        if self.listeners.get((host_ip, port)) is listener:
            del self.listeners[(host_ip, port)]

    def close_host(self, host_ip: int) -> None:
        for key in [key for key in self.listeners if key[0] == host_ip]:
            self.listeners[key].close()


class SensorDataPorts:
    """`DataPorts` for one connection to a virtual host served by the sensor."""

    __slots__ = ("_host_ip", "_peer_ip", "_registry")

    def __init__(self, registry: DataPortRegistry, host_ip: int, peer_ip: int) -> None:
        self._registry, self._host_ip, self._peer_ip = registry, host_ip, peer_ip

    async def listen(self) -> DataListener:
        return self._registry.open(self._host_ip, self._peer_ip)

    async def connect(self, host: str, port: int, timeout: float) -> Streams:
        raise OSError("the sensor opens no outgoing connections")


def _ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
