"""asyncio streams over the sensor's userland TCP.

The runtime owns the sans-IO connection; `UserlandTransport` is the asyncio Transport a
service writes to, and the runtime feeds received data and closes into the protocol. So
services use ordinary `asyncio.StreamReader`/`StreamWriter` and never see packets.

Flow control both ways, as a kernel socket's: a service that does not read makes its
StreamReader pause the transport, and the sensor then stops consuming the connection's data,
so its TCP receive window closes (`resume_reading` opens it again); a peer that does not read
makes writers wait in `drain()` above `HIGH_WATER` unacknowledged bytes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from dynapot.services.contract import ConnectionInfo, Handler, Report

log = logging.getLogger(__name__)
HIGH_WATER = 256 * 1024  # unsent bytes above which writers wait in drain()
LOW_WATER = 64 * 1024


class ConnectionOps(Protocol):
    """What the transport may ask of the runtime for one connection."""

    def send(self, data: bytes) -> None: ...
    def finish(self) -> None: ...  # send FIN after buffered data
    def abort(self) -> None: ...  # send RST, forget the connection
    def unsent(self) -> int: ...  # bytes queued but not yet acknowledged
    def resume(self) -> None: ...  # the service reads again: consume what was held back


class UserlandTransport(asyncio.Transport):
    def __init__(self, ops: ConnectionOps, info: ConnectionInfo) -> None:
        super().__init__(
            extra={"peername": (info.src, info.sport), "sockname": (info.dst, info.dport), "info": info}
        )
        self._ops = ops
        self._protocol: asyncio.BaseProtocol | None = None
        self._closing = False
        self.app_closed = False  # the service closed (not just half-closed): data now is an error
        self._lost = False
        self._writing_paused = False
        self._reading_paused = False

    # asyncio.Transport API used by StreamWriter -------------------------------------------
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or not data:
            return
        self._ops.send(bytes(data))
        self._maybe_pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if not self._closing:
            self._closing = True
            self._ops.finish()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.app_closed = True
        self.write_eof()

    def abort(self) -> None:
        if not self._lost:
            self._closing = True
            self._ops.abort()
            self.connection_lost(None)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def get_write_buffer_size(self) -> int:
        return self._ops.unsent()

    def pause_reading(self) -> None:
        self._reading_paused = True  # the sensor stops consuming: the TCP window closes

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if not self._lost:
                self._ops.resume()

    def is_reading(self) -> bool:
        return not self._reading_paused

    # called by the runtime ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._protocol is not None and not self._lost:
            self._protocol.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> None:
        if self._protocol is not None and not self._lost:
            self._protocol.eof_received()  # type: ignore[attr-defined]

    def acked(self) -> None:
        """Our data was acknowledged: writers waiting in drain() may go on."""
        if self._writing_paused and self._ops.unsent() <= LOW_WATER and self._protocol is not None:
            self._writing_paused = False
            self._protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if self._protocol is not None:
            self._protocol.connection_lost(exc)

    def _maybe_pause_writing(self) -> None:
        if not self._writing_paused and self._ops.unsent() > HIGH_WATER and self._protocol is not None:
            self._writing_paused = True
            self._protocol.pause_writing()


def open_streams(
    ops: ConnectionOps, info: ConnectionInfo
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, UserlandTransport]:
    """A StreamReader/StreamWriter pair over one userland connection."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = UserlandTransport(ops, info)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop), transport


def start_handler(
    ops: ConnectionOps, info: ConnectionInfo, handler: Handler, report: Report
) -> tuple[UserlandTransport, asyncio.Task[None]]:
    """Wire a new connection to `handler` with StreamReader/StreamWriter; returns the transport."""
    loop = asyncio.get_running_loop()
    reader, writer, transport = open_streams(ops, info)

    async def run() -> None:
        try:
            await handler(reader, writer, info, report)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            # A broken emulator must not take the sensor down; its connection just ends.
            log.exception("handler for %s:%d -> %s:%d failed", info.src, info.sport, info.dst, info.dport)
        finally:
            transport.close()

    return transport, loop.create_task(run())
