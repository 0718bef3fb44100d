"""The sensor's side of each live TCP connection: which service serves it, what arrived, how much.

The stack keeps a connection's TCP state; the `FlowTable` keeps what the sensor needs beside
it: the asyncio transport of the service serving it (services see streams, never packets),
or, for an open port with no service, the bytes received (recorded in the packet loop
itself, no task, no streams: the common case under scans and floods), and the byte counts
its close event carries. Application calls on a connection (send, close, abort) go through
`FlowOps` back into the stack, and their outputs through the sensor's `run`.

Every byte from the wire is hostile, so the table also decides, like a kernel, how much of
what arrived is *consumed* (which reopens the TCP receive window):
- a service that does not read pauses its transport: its data is held, the window closes,
  and `resume` (when it reads again) consumes what was held;
- a port with no service keeps `RECORD_LIMIT` bytes per connection and `record_budget` in
  total; beyond that nothing is kept and the window closes;
- a service that has closed its connection gets no more data: the peer gets a RST;
- one source may have `service_sessions_per_source` connections served at once, all sources
  `service_sessions` (each costs a task, buffers and sometimes file descriptors); beyond
  that, a connection is closed at once, as sshd's MaxStartups does, and counted;
- one source may send `bytes_per_second_per_source`; above it, its data is held until
  its budget refills (`release_throttled`), so its windows close.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dynapot.config import SensorSettings
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
    held: int = 0  # bytes received but not consumed: the window is that much smaller


class FlowOps:
    """`ConnectionOps` for one connection: the service's calls go into the stack."""

    __slots__ = ("conn", "flow", "table")

    def __init__(self, table: FlowTable, conn: TcpConnection, flow: Flow) -> None:
        self.table, self.conn, self.flow = table, conn, flow

    def send(self, data: bytes) -> None:
        self.flow.bytes_out += len(data)
        self.table.run(self.conn.send(data, time.monotonic()), None)

    def finish(self) -> None:
        self.table.run(self.conn.close(time.monotonic()), None)

    def abort(self) -> None:
        self.table.run(self.conn.abort(time.monotonic()), None)

    def unsent(self) -> int:
        return self.conn.send_buffered

    def resume(self) -> None:
        self.table.resume(self.conn, self.flow)


class _SourceRate:
    """A token bucket of bytes for one source: `rate` a second, one second's worth at most."""

    __slots__ = ("at", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.tokens, self.at = rate, now

    def take(self, wanted: int, rate: float, now: float) -> int:
        self.tokens = min(rate, self.tokens + (now - self.at) * rate)
        self.at = now
        granted = max(0, min(wanted, int(self.tokens)))
        self.tokens -= granted
        return granted


class FlowTable:
    def __init__(
        self,
        observer: Observer,
        dataports: DataPortRegistry,
        run: Run,
        counters: Counter[str],
        limits: SensorSettings | None = None,
    ) -> None:
        self.observer = observer
        self.dataports = dataports
        self.run = run
        self.counters = counters
        self.limits = limits = limits or SensorSettings()
        self.flows: dict[TcpConnection, Flow] = {}
        self.recorded_total = 0  # bytes kept by connections with no service
        self.sessions = 0  # connections served by a service
        self.sessions_by_source: Counter[int] = Counter()
        self._rates: dict[int, _SourceRate] = {}
        self._rate = float(limits.bytes_per_second_per_source)
        self.throttled: dict[TcpConnection, Flow] = {}  # held back by their source's rate

    def __len__(self) -> int:
        return len(self.flows)

    # ------------------------------------------------------------------ a connection begins

    def established(self, conn: TcpConnection, host: VirtualHost) -> None:
        """A handshake completed: wire the connection to its service, or record what arrives."""
        flow = Flow()
        self.flows[conn] = flow
        listener = self.dataports.take(conn.local_ip, conn.local_port)
        if listener is not None:
            if listener.peer_ip == conn.peer_ip:  # a data connection a service asked for
                flow.transport = listener.attach(FlowOps(self, conn, flow), conn)
                return
            listener.close()  # someone else raced for the port: the service gets a time-out
        handler = host.handlers.get(conn.local_port, record)
        if handler is record:
            flow.recorded = bytearray()  # the stack's idle time-out ends a silent connection
            return
        source = conn.peer_ip
        if (
            self.sessions >= self.limits.service_sessions
            or self.sessions_by_source[source] >= self.limits.service_sessions_per_source
        ):
            # Like sshd's MaxStartups: too many sessions at once, the newcomer is closed at once.
            self.counters["tcp: session refused (session limit)"] += 1
            flow.recorded = bytearray()
            self.run(conn.close(time.monotonic()), None)
            return
        self.sessions += 1
        self.sessions_by_source[source] += 1
        data_ports = SensorDataPorts(self.dataports, conn.local_ip, conn.peer_ip)
        info = host.connection_info("tcp", conn.peer_ip, conn.peer_port, conn.local_port, data_ports)
        report = self.observer.reporter("tcp", conn)
        flow.transport, _task = start_handler(FlowOps(self, conn, flow), info, handler, report)

    # ------------------------------------------------------------------ data

    def received(self, event: DataReceived, now: float) -> int:
        """Take in-order data; returns how much of it to consume now (the rest is held back)."""
        data = event.data
        size = len(data)
        flow = self.flows.get(event.conn)
        if flow is None:
            return size  # a connection being torn down: nothing keeps it
        flow.bytes_in += size
        transport = flow.transport
        if transport is not None:
            if transport.app_closed:
                # The service hung up: more data is an error, as for a closed kernel socket.
                self.counters["tcp: data after the service closed (reset)"] += 1
                self.run(event.conn.abort(now), now)
                return 0
            transport.data_received(data)
            if flow.held or not transport.is_reading():
                flow.held += size  # the service does not read: the window closes
                return 0
            granted = self._grant(event.conn.peer_ip, size, now)
            if granted < size:
                flow.held += size - granted
                self.throttled[event.conn] = flow
            return granted
        recorded = flow.recorded
        if recorded is None:
            return size
        room = min(RECORD_LIMIT - len(recorded), self.limits.record_budget - self.recorded_total)
        kept = max(0, min(size, room))
        if kept:
            recorded += data[:kept]
            self.recorded_total += kept
        if kept < size:
            self.counters["tcp: bytes not recorded (record limit)"] += size - kept
            flow.held += size - kept  # not kept, not consumed: the window closes
        return kept

    def _grant(self, source: int, wanted: int, now: float) -> int:
        meter = self._rates.get(source)
        if meter is None:
            if len(self._rates) >= 65536:  # bounded: the oldest meter goes (a fresh bucket is full)
                del self._rates[next(iter(self._rates))]
            meter = self._rates[source] = _SourceRate(self._rate, now)
        return meter.take(wanted, self._rate, now)

    def resume(self, conn: TcpConnection, flow: Flow) -> None:
        """The service reads again: consume what was held (within its source's rate)."""
        if not flow.held or conn not in self.flows:
            return
        now = time.monotonic()
        granted = self._grant(conn.peer_ip, flow.held, now)
        flow.held -= granted
        if flow.held:
            self.throttled[conn] = flow
        if granted:
            self.run(conn.consume(granted, now), now)

    def release_throttled(self, now: float) -> None:
        """Consume what rate limits held back, as the sources' budgets refill."""
        for conn, flow in list(self.throttled.items()):
            del self.throttled[conn]
            transport = flow.transport
            if conn in self.flows and transport is not None and transport.is_reading():
                self.resume(conn, flow)

    def peer_closed(self, conn: TcpConnection) -> bool:
        """The peer sent FIN; True when nothing serves the connection and we should close too."""
        flow = self.flows.get(conn)
        if flow is None:
            return False
        if flow.transport is not None:
            flow.transport.eof_received()
            return False
        return True  # the recorder has nothing to say: close too, after the ACK

    # ------------------------------------------------------------------ a connection ends

    def closed(self, closed: ConnectionClosed, now: float) -> None:
        """The connection is over: tell its service, log what was recorded and the close."""
        conn = closed.conn
        flow = self.flows.pop(conn, None)
        self.throttled.pop(conn, None)
        on_flow = self.observer.on_flow
        if flow is not None and flow.transport is not None:
            self.sessions -= 1
            left = self.sessions_by_source[conn.peer_ip] - 1
            if left:
                self.sessions_by_source[conn.peer_ip] = left
            else:
                del self.sessions_by_source[conn.peer_ip]
            flow.transport.connection_lost(
                None if closed.reason == "closed" else ConnectionResetError(closed.reason)
            )
        if flow is not None and flow.recorded is not None:
            self.recorded_total -= len(flow.recorded)
            if flow.recorded:
                on_flow("tcp", conn, Kind.DATA, excerpt(bytes(flow.recorded)), now, {"bytes": flow.bytes_in})
        if closed.established or flow is not None:
            event = on_flow("tcp", conn, _CLOSE, closed.reason, now)
            if flow is not None:
                event.bytes_in, event.bytes_out = flow.bytes_in, flow.bytes_out
