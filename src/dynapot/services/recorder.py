"""The recorder: an open port with nothing behind it accepts, keeps what arrives, closes when idle.

Served for honeyd's `open` action and for any service name without an emulator of its own.
"""

from __future__ import annotations

import asyncio

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Report, excerpt

RECORD_LIMIT = 64 * 1024  # bytes read from an attacker before we stop listening
IDLE_TIMEOUT = 30.0
LIFETIME = 600.0


async def read_bounded(reader: asyncio.StreamReader, limit: int, idle: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = await asyncio.wait_for(reader.read(min(65536, limit - size)), idle)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def record(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    """An open port with nothing behind it: accept, keep what arrives, close when idle."""
    try:
        data = await asyncio.wait_for(read_bounded(reader, RECORD_LIMIT, IDLE_TIMEOUT), LIFETIME)
    except TimeoutError:
        data = b""
    if data:
        report(Kind.DATA, excerpt(data), {"bytes": len(data)})
    writer.close()
