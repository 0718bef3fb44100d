"""Test helpers on 127.0.0.1: a plain TCP server, services run over real sockets, nmap, client-present marks.

Every event a service reports there must fit `dynapot.events.CATALOGUE` (its kind a `Kind`, its
data keys listed), or the server fails the test when it closes.

`ServiceServer` runs a TCP service (the `serve(reader, writer, info, report)` contract) and
`DatagramServer` a UDP one (`service(datagram, info, report) -> reply`), each on its own event
loop in a daemon thread, so that a test can drive them with blocking clients (sockets, smtplib,
ftplib, the Debian binaries) and read back what they reported. `nmap_service_scan` asks nmap -sV
what they look like. `needs(binary)` skips a test whose client is not installed, except under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, NamedTuple, Self, cast

import pytest

from dynapot.events import CATALOGUE, Kind
from dynapot.services.contract import ConnectionInfo, DatagramService, Handler


def needs(binary: str, what: str | None = None) -> pytest.MarkDecorator:
    """Skip the test when `binary` is not on PATH; under CI (env CI set) a missing client is a failure."""
    return pytest.mark.skipif(
        shutil.which(binary) is None and not os.environ.get("CI"),
        reason=f"{what or binary} is not installed (set CI=1 to make this a failure)",
    )


needs_nmap = needs("nmap")

# What a connection or datagram from (address, port) is told about itself; or one answer for all.
InfoFor = ConnectionInfo | Callable[[tuple[str, int]], ConnectionInfo]
TIMEOUT = 5.0  # for starting, stopping and waiting: a broken service fails the test, never hangs it


@contextlib.contextmanager
def tcp_server(greeting: bytes = b"") -> Iterator[int]:
    """A TCP server on 127.0.0.1 that sends `greeting` to every connection; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                if not greeting:
                    continue
                try:
                    conn.sendall(greeting)
                    conn.settimeout(2)
                    conn.recv(1024)  # let the client read the banner and hang up first
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def catalogue_problem(kind: object, detail: object = None, data: object = None) -> str | None:
    """Why one reported event does not fit the event catalogue, or None when it does."""
    if not isinstance(kind, Kind):
        return f"{kind!r} is not a Kind"
    extra = set(data or {}) - set(CATALOGUE[kind].data)
    return f"{kind}: {sorted(extra)} not in its EventSpec.data" if extra else None


def _info(info: InfoFor, peer: tuple[str, int]) -> ConnectionInfo:
    return info if isinstance(info, ConnectionInfo) else info(peer)


class _Loopback:
    """An event loop in a daemon thread, a listener opened on it, and the reports made there."""

    port: int

    def __init__(self, serve: Any, info: InfoFor, port: int) -> None:
        self._serve = serve
        self._info = info
        self._want_port = port
        self.reports: list[tuple] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._closed = False
        try:
            self._call(self._open())  # binding errors surface here, in the caller
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self) -> None:
        raise NotImplementedError

    def _close_listener(self) -> None:
        raise NotImplementedError

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def report(self, *record: Any) -> None:
        """The service's `report(kind, detail, data)`: kept as the tuple it was called with."""
        self.reports.append(record)

    def uncatalogued(self) -> list[str]:
        """Reports whose kind, or a key of whose data, the event catalogue does not list."""
        return [problem for record in list(self.reports) if (problem := catalogue_problem(*record))]

    def kinds(self, kind: str) -> list[tuple]:
        return [r for r in list(self.reports) if r[0] == kind]

    def wait_for_report(self, kind: str | None = None, timeout: float = TIMEOUT) -> tuple:
        """The first report (of `kind`, if given), once the service has made it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in list(self.reports) if kind is None or r[0] == kind]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"nothing was reported{f' of kind {kind!r}' if kind else ''}")

    def close(self) -> None:
        """Stop listening, cancel the sessions still running, stop the loop."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            self._close_listener()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self._call(shutdown())
        finally:
            self._stop_loop()
        problems = self.uncatalogued()
        assert not problems, f"events outside dynapot.events.CATALOGUE: {problems}"

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServiceServer(_Loopback):
    """A TCP service on 127.0.0.1 (an unused port unless `port` is given): every connection runs
    `handler(reader, writer, info, report)`, with `info` as given or built from the client's address."""

    def __init__(self, handler: Handler, info: InfoFor, *, port: int = 0) -> None:
        super().__init__(handler, info, port)

    async def _open(self) -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = _info(self._info, writer.get_extra_info("peername")[:2])
            with contextlib.suppress(asyncio.CancelledError):  # cancelled when the test ends
                await self._serve(reader, writer, conn, self.report)

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", self._want_port)
        self.port = self.server.sockets[0].getsockname()[1]

    def _close_listener(self) -> None:
        self.server.close()

    def connect(self) -> socket.socket:
        """A client socket connected to the service."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)


class DatagramServer(_Loopback):
    """A UDP service on 127.0.0.1 (an unused port unless `port` is given): every datagram goes to
    `service(data, info, report)`, and its reply, if any, back to the sender."""

    def __init__(self, service: DatagramService, info: InfoFor, *, port: int = 0) -> None:
        super().__init__(service, info, port)

    async def _open(self) -> None:
        outer = self

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                reply = outer._serve(data, _info(outer._info, addr[:2]), outer.report)
                if reply is not None:
                    self.transport.sendto(reply, addr)

        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            Protocol, local_addr=("127.0.0.1", self._want_port)
        )
        self.port = self.transport.get_extra_info("sockname")[1]

    def _close_listener(self) -> None:
        self.transport.close()


class Scan(NamedTuple):
    ports: dict[int, str]  # port -> its line in nmap's port table
    output: str  # all nmap printed ("Service Info: Host: ..." and the like)


def nmap_service_scan(ports: Iterable[int], *, udp: bool = False, timeout: float = 25) -> Scan:
    """`nmap -sV` (a connect scan, or -sU) of these ports on 127.0.0.1."""
    proto = "udp" if udp else "tcp"
    result = subprocess.run(
        ["nmap", "-sU" if udp else "-sT", "-sV", "-Pn", "-n", "-p", ",".join(map(str, ports)), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    row = re.compile(rf"(\d+)/{proto}\s")
    lines = {int(m.group(1)): line for line in result.stdout.splitlines() if (m := row.match(line))}
    return Scan(lines, result.stdout)
