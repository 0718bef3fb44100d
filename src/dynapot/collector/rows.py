"""A decoded Sebek record as a `sessions` row: every byte from the honeypot made storable.

The command (at most 12 bytes) and the data are decoded as UTF-8 with undecodable bytes kept
(`surrogateescape`), then made storable by `textsafe.for_storage` (NUL and those bytes
written as `\\x00`, `\\xNN`); data is clipped to `DATA_LIMIT` characters. Control characters
stay in the stored text (a replay needs the typed Enter and Backspace); whoever prints them
escapes them (`textsafe.for_display`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dynapot.sebek.records import Record
from dynapot.textsafe import for_storage

__all__ = ["DATA_LIMIT", "session_row"]

DATA_LIMIT = 16_384  # characters of one record's data kept (a terminal read is a few bytes)


def _text(raw: bytes, limit: int) -> str:
    return for_storage(raw.decode("utf-8", "surrogateescape"), limit)


def session_row(
    record: Record, honeypot_ip: str, attacker: str | None, lost_before: int = 0
) -> dict[str, Any]:
    """The values of one `sessions` row for `record`, sent by `honeypot_ip`."""
    return {
        "time": datetime.fromtimestamp(record.time_sec, UTC).replace(microsecond=record.time_usec),
        "honeypot_ip": honeypot_ip,
        "src_ip": attacker,
        "pid": record.pid,
        "ppid": record.ppid,
        "uid": record.uid,
        "fd": record.fd,
        "inode": record.inode,
        "type": record.type,
        "counter": record.counter,
        "command": _text(record.command, 255),
        "data": _text(record.data, DATA_LIMIT),
        "lost_before": lost_before,
    }
