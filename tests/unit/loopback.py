"""Test helpers shared by the nmap tests: a loopback TCP server, and the nmap-present marker."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator

import pytest

needs_nmap = pytest.mark.skipif(
    shutil.which("nmap") is None and not os.environ.get("CI"),
    reason="nmap is not installed (set CI=1 to make this a failure)",
)


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
