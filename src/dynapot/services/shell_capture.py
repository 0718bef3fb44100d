"""What a fake shell session writes, recorded as uploads (SHA-256, size, the bytes when a store keeps them).

`Captures` is a part of `shell.FakeShell` (a mixin: it uses the shell's filesystem, events and
upload store). Files written with `>`/`>>` (and their copies) are pending until they are made
executable, run, removed, or the session ends (`close`); then each content is recorded once
per path as a `Kind.UPLOAD` event, and kept through the service's `UploadStore` if there is
one. At most MAX_UPLOADS per session; what is past it is counted. Text holds bytes that escapes
wrote (\\xff) as surrogates: `raw` gives the file's real bytes back.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import Counter
from typing import Any

from dynapot.events import Kind
from dynapot.services.contract import clip
from dynapot.services.fakefs import MAX_FILE, SessionFS
from dynapot.services.uploads import UploadStore

__all__ = ["MAX_UPLOADS", "Captures", "byte", "raw"]

MAX_UPLOADS = 100  # files one session's writes are recorded as uploads (more: counted)


def byte(value: int) -> str:
    """One byte an escape wrote, as text: ASCII as itself, the rest as the surrogate `raw` makes it again."""
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def raw(text: str) -> bytes:
    """A file's bytes: its text in UTF-8, escaped bytes (surrogates) as themselves."""
    return text.encode("utf-8", "surrogateescape")


class Captures:
    """Uploads of what the session wrote, for `FakeShell` (whose attributes it uses)."""

    # what FakeShell provides
    fs: SessionFS
    peer: str | None
    uploads: UploadStore | None
    counters: Counter[str]
    events: list[tuple[Kind, str | None, dict[str, Any] | None]]
    _written: dict[str, str | None]

    def _record_written(self, why: str, path: str | None = None) -> None:
        """Record the files the session wrote (all of them, or `path`) as uploads, once per content."""
        paths = [path] if path is not None else list(self._written)
        for each in paths:
            if each not in self._written:
                continue
            node = self.fs.get(each)
            if node is None or node.is_dir:
                self._written.pop(each, None)
                continue
            data = raw(node.content)
            digest = hashlib.sha256(data).hexdigest()
            if self._written[each] == digest:
                continue
            self._written[each] = digest
            if self.counters["uploads"] >= MAX_UPLOADS:
                self.counters["uploads not recorded"] += 1
                continue
            self.counters["uploads"] += 1
            record: dict[str, Any] = {
                "path": clip(each),
                "name": clip(posixpath.basename(each)),
                "size": len(data),
                "sha256": digest,
                "truncated": len(node.content) >= MAX_FILE,
                "stored": False,
                "duplicate": False,
            }
            if self.uploads is not None:
                incoming = self.uploads.begin(self.peer or "shell")
                incoming.write(data)
                kept = incoming.finish()
                record.update(stored=kept.stored, duplicate=kept.duplicate, dropped=kept.dropped)
            self.events.append((Kind.UPLOAD, clip(posixpath.basename(each)), record))
