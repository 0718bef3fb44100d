"""The sensor's side of each live TCP connection: which service serves it, what arrived, how much.

The stack keeps a connection's TCP state; the `FlowTable` keeps what the sensor needs beside
it: the asyncio transport of the service serving it (services see streams, never packets),
or, for an open port with no service, the bytes received (recorded in the packet loop
itself, no task, no streams: the common case under scans and floods), and the byte counts
its close event carries. Application calls on a connection (send, close, abort) go through
`FlowOps` back into the stack, and their outputs through the sensor's `run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dynapot.events import Kind
from dynapot.netstack.host import Output
from dynapot.netstack.tcp import ConnectionClosed, DataReceived, TcpConnection
from dynapot.sensor.dataports import DataPortRegistry, SensorDataPorts
from dynapot.sensor.hosts import VirtualHost
from dynapot.sensor.observe import Observer
from dynapot.sensor.streams import UserlandTransport, start_handler
from dynapot.services.contract import excerpt
from dynapot.services.recorder import RECORD_LIMIT, record

_CLOSE = Kind.CLOSE.value  # every connection's last event: a plain string is read and pickled faster
Run = Callable[[list[Output], float | None], None]  # carries out what the stack returned


@dataclass(slots=True)
class Flow:
    """What the sensor keeps per live connection beside the stack's own state."""

    transport: UserlandTransport | None = None
    recorded: bytearray | None = None  # an open port with no service: what arrived, bounded
    bytes_in: int = 0
    bytes_out: int = 0


class FlowOps:
    """`ConnectionOps` for one connection: the service's calls go into the stack."""

    __slots__ = ("conn", "flow", "run")

    def __init__(self, run: Run, conn: TcpConnection, flow: Flow) -> None:
        self.run, self.conn, self.flow = run, conn, flow

    def send(self, data: bytes) -> None:
        self.flow.bytes_out += len(data)
        self.run(self.conn.send(data, time.monotonic()), None)

    def finish(self) -> None:
        self.run(self.conn.close(time.monotonic()), None)

    def abort(self) -> None:
        self.run(self.conn.abort(time.monotonic()), None)

    def unsent(self) -> int:
        return self.conn.send_buffered


class FlowTable:
    def __init__(self, observer: Observer, dataports: DataPortRegistry, run: Run) -> None:
        self.observer = observer
        self.dataports = dataports
        self.run = run
        self.flows: dict[TcpConnection, Flow] = {}

    def __len__(self) -> int:
        return len(self.flows)

    def established(self, conn: TcpConnection, host: VirtualHost) -> None:
        """A handshake completed: wire the connection to its service, or record what arrives."""
        flow = Flow()
        self.flows[conn] = flow
        listener = self.dataports.take(conn.local_ip, conn.local_port)
        if listener is not None:
            if listener.peer_ip == conn.peer_ip:  # a data connection a service asked for
                flow.transport = listener.attach(FlowOps(self.run, conn, flow), conn)
                return
            listener.close()  # someone else raced for the port: the service gets a time-out
        handler = host.handlers.get(conn.local_port, record)
        if handler is record:
            flow.recorded = bytearray()  # the stack's idle time-out ends a silent connection
            return
        data_ports = SensorDataPorts(self.dataports, conn.local_ip, conn.peer_ip)
        info = host.connection_info("tcp", conn.peer_ip, conn.peer_port, conn.local_port, data_ports)
        report = self.observer.reporter("tcp", conn)
        flow.transport, _task = start_handler(FlowOps(self.run, conn, flow), info, handler, report)

    def received(self, event: DataReceived) -> None:
        flow = self.flows.get(event.conn)
        if flow is None:
            return
        flow.bytes_in += len(event.data)
        if flow.transport is not None:
            flow.transport.data_received(event.data)
        elif flow.recorded is not None and len(flow.recorded) < RECORD_LIMIT:
            flow.recorded += event.data[: RECORD_LIMIT - len(flow.recorded)]

    def peer_closed(self, conn: TcpConnection) -> bool:
        """The peer sent FIN; True when nothing serves the connection and we should close too."""
        flow = self.flows.get(conn)
        if flow is None:
            return False
        if flow.transport is not None:
            flow.transport.eof_received()
            return False
        return True  # the recorder has nothing to say: close too, after the ACK

    def closed(self, closed: ConnectionClosed, now: float) -> None:
        """The connection is over: tell its service, log what was recorded and the close."""
        conn = closed.conn
        flow = self.flows.pop(conn, None)
        on_flow = self.observer.on_flow
        if flow is not None and flow.transport is not None:
            flow.transport.connection_lost(
                None if closed.reason == "closed" else ConnectionResetError(closed.reason)
            )
        if flow is not None and flow.recorded:
            on_flow("tcp", conn, Kind.DATA, excerpt(bytes(flow.recorded)), now, {"bytes": flow.bytes_in})
        if closed.established or flow is not None:
            event = on_flow("tcp", conn, _CLOSE, closed.reason, now)
            if flow is not None:
                event.bytes_in, event.bytes_out = flow.bytes_in, flow.bytes_out
