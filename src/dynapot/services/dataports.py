"""Second connections for services that run on plain kernel sockets (FTP data over PASV and PORT).

`KernelDataPorts` implements `dynapot.services.contract.DataPorts` with asyncio's own sockets: a
passive listener is `asyncio.start_server` on the bind address, port 0, that hands out the first
connection it gets and refuses the rest; an active connection is `asyncio.open_connection`.
The tests use it, and so can anyone who runs the services on plain sockets instead of the sensor.
"""

from __future__ import annotations

import asyncio
import contextlib

from dynapot.services.contract import PassiveListener

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KernelPassiveListener:
    """One listening socket waiting for one connection (FTP PASV/EPSV)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._first: asyncio.Future[Streams] = asyncio.get_running_loop().create_future()
        self._taken = False

    async def _start(self, host: str) -> None:
        self._server = await asyncio.start_server(self._on_connect, host, 0, backlog=1)
        self.port = self._server.sockets[0].getsockname()[1]

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._first.done():
            writer.close()  # one data connection per PASV, as real servers do
            return
        self._first.set_result((reader, writer))
        self._stop_listening()

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def accept(self, timeout: float) -> Streams:
        """The first connection to `port`; TimeoutError when none comes in time."""
        streams = await asyncio.wait_for(asyncio.shield(self._first), timeout)
        self._taken = True
        return streams

    def close(self) -> None:
        self._stop_listening()
        if self._first.done():
            if not self._taken and not self._first.cancelled():
                # A connection nobody took: close it, or the client waits forever.
                with contextlib.suppress(Exception):
                    self._first.result()[1].close()
        else:
            self._first.cancel()


class KernelDataPorts:
    """`DataPorts` over the kernel's TCP: listen on `bind` (the control connection's local address)."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self.bind = bind

    async def listen(self) -> PassiveListener:
        listener = KernelPassiveListener()
        await listener._start(self.bind)
        return listener

    async def connect(self, host: str, port: int, timeout: float) -> Streams:
        """An outgoing connection; OSError (TimeoutError included) when it cannot be made in time."""
        return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)


__all__ = ["KernelDataPorts", "KernelPassiveListener"]
