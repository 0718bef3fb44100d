"""Close a connection with a RST, as a real server's kernel does when it closes with bytes unread.

sshd after an invalid identification and MariaDB after a packet out of order close with the
client's further bytes still in their receive buffer, and Linux answers that close with a RST
rather than a FIN: a probe can tell the two apart. On a kernel socket a zero linger time makes
close() send the RST; the sensor's own TCP sends one on `abort()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["reset"]


def reset(writer: asyncio.StreamWriter) -> None:
    """End the connection with a RST (whatever was written and not yet sent is dropped)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
