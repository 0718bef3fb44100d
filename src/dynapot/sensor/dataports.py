"""Second connections and UDP answers for services on virtual hosts.

`SensorDataPorts` is the sensor's `DataPorts`: an FTP service asking for a passive data
port gets a port opened on its virtual host for one connection from the same peer. The
sensor's stack makes no outgoing connections, so active mode (FTP PORT) is refused, as
many hardened servers do. `UdpBudget` keeps UDP services from being used as amplifiers.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from typing import TYPE_CHECKING

from dynapot.sensor.streams import ConnectionOps, UserlandTransport, open_streams
from dynapot.services.contract import ConnectionInfo

if TYPE_CHECKING:
    from dynapot.sensor.runtime import Sensor

EPHEMERAL = (32768, 60999)  # Linux's default range: where a real server's PASV ports fall
MAX_UDP_REPLY = 1472  # one Ethernet frame: never fragment, never amplify much
UDP_REPLIES_PER_SECOND = 20  # per source
SOURCE_LIMIT = 65536


class DataListener:
    """One passive data port of a virtual host, for one connection from `peer_ip`."""

    def __init__(self, sensor: Sensor, host_ip: int, port: int, peer_ip: int, restore) -> None:
        self.port = port
        self.peer_ip = peer_ip
        self._sensor = sensor
        self._host_ip = host_ip
        self._restore = restore
        self._ready: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

    def attach(self, ops: ConnectionOps) -> UserlandTransport:
        """The awaited connection arrived: give the service its streams, close the port behind it."""
        conn = ops.conn  # type: ignore[attr-defined]
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

    async def accept(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self._restore is None:
            return
        if self._sensor.data_listeners.get((self._host_ip, self.port)) is self:
            del self._sensor.data_listeners[(self._host_ip, self.port)]
        self._restore()
        self._restore = None
        if not self._ready.done():
            self._ready.cancel()


class SensorDataPorts:
    """`DataPorts` for a connection to a virtual host served by the sensor."""

    __slots__ = ("_host_ip", "_peer_ip", "_sensor")

    def __init__(self, sensor: Sensor, host_ip: int, peer_ip: int) -> None:
        self._sensor, self._host_ip, self._peer_ip = sensor, host_ip, peer_ip

    async def listen(self) -> DataListener:
        sensor = self._sensor
        host = sensor.hosts.get(self._host_ip)
        if host is None or host.stack is None:
            raise OSError("the virtual host is gone")
        taken = set(host.definition.tcp) | {p for (ip, p) in sensor.data_listeners if ip == self._host_ip}
        for _ in range(64):
            port = random.randint(*EPHEMERAL)
            if port not in taken:
                break
        else:
            raise OSError("no free data port")
        policy = host.stack.policy
        before = policy.open_tcp(port)  # type: ignore[attr-defined]
        listener = DataListener(
            sensor,
            self._host_ip,
            port,
            self._peer_ip,
            lambda: policy.restore_tcp(port, before),  # type: ignore[attr-defined]
        )
        sensor.data_listeners[(self._host_ip, port)] = listener
        return listener

    async def connect(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise OSError("the sensor opens no outgoing connections")


class UdpBudget:
    """Per-source cap on UDP replies: bounded size and rate, so no honeypot becomes an amplifier."""

    def __init__(self, per_second: int = UDP_REPLIES_PER_SECOND, max_reply: int = MAX_UDP_REPLY) -> None:
        self.per_second = per_second
        self.max_reply = max_reply
        self._windows: OrderedDict[int, list[float | int]] = OrderedDict()

    def allow(self, source: int, request_size: int, reply_size: int, now: float) -> bool:
        if reply_size > self.max_reply:
            return False
        window = self._windows.get(source)
        if window is None or now - window[0] >= 1.0:
            window = [now, 0]
            self._windows[source] = window
            self._windows.move_to_end(source)
            if len(self._windows) > SOURCE_LIMIT:
                self._windows.popitem(last=False)
        if window[1] >= self.per_second:
            return False
        window[1] += 1
        return True


def _ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
