"""The upload store: one file per content, a quota per source and period, a budget for the folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dynapot.services.uploads import (
    BLOCK,
    CANNOT_WRITE,
    SOURCE_QUOTA,
    SPOOL_BUDGET,
    UploadStore,
    blocks,
)


def upload(store: UploadStore, source: str, payload: bytes, chunk: int = 1000):
    incoming = store.begin(source)
    for start in range(0, max(len(payload), 1), chunk):
        if not incoming.write(payload[start : start + chunk]):
            break
    return incoming.finish()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_disk_use_is_counted_in_blocks() -> None:
    assert (
        blocks(0) == BLOCK
        and blocks(1) == BLOCK
        and blocks(BLOCK) == BLOCK
        and blocks(BLOCK + 1) == 2 * BLOCK
    )


def test_the_same_content_is_one_file_and_costs_its_quota_once(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, per_source=2 * BLOCK)
    payload = os.urandom(3000)
    first = upload(store, "198.18.0.3", payload)
    assert first.stored and not first.duplicate and first.dropped is None
    for _ in range(5):  # again and again: never more than the one file, never more quota
        again = upload(store, "198.18.0.3", payload)
        assert again.stored and again.duplicate and again.dropped is None
    assert files(tmp_path) == [hashlib.sha256(payload).hexdigest()]
    assert store.used == BLOCK
    assert upload(store, "198.18.0.3", os.urandom(3000)).stored  # the second block of its quota


def test_a_source_over_its_quota_is_hashed_and_reported_but_not_kept(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, per_source=10 * BLOCK)
    kept = upload(store, "198.18.0.3", os.urandom(8 * BLOCK))
    assert kept.stored
    payload = os.urandom(5 * BLOCK)
    over = upload(store, "198.18.0.3", payload)
    assert not over.stored and over.dropped == SOURCE_QUOTA
    assert over.size == len(payload) and over.sha256 == hashlib.sha256(payload).hexdigest()
    assert len(files(tmp_path)) == 1  # no temporary file left behind either
    other = upload(store, "198.18.0.4", payload)  # another source has its own quota
    assert other.stored
    # Content kept already is no new file: a source over its quota may still send it.
    assert upload(store, "198.18.0.3", payload).duplicate
    assert store.counters["not kept: source quota"] == 1


def test_a_quota_is_per_period(tmp_path: Path) -> None:
    now = [1000.0]
    store = UploadStore(tmp_path, per_source=BLOCK, period=3600, clock=lambda: now[0])
    assert upload(store, "s", b"a").stored
    assert upload(store, "s", b"b").dropped == SOURCE_QUOTA
    now[0] += 3600
    assert upload(store, "s", b"b").stored


def test_the_budget_bounds_every_source_together(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, per_source=100 * BLOCK, budget=10 * BLOCK)
    stored = [upload(store, f"198.18.1.{n}", os.urandom(3 * BLOCK)).stored for n in range(6)]
    assert stored == [True, True, True, False, False, False]
    assert store.used == 9 * BLOCK and store.full
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 10 * BLOCK
    assert store.counters["not kept: spool budget"] == 3
    assert upload(store, "198.18.2.1", os.urandom(10)).stored  # one block still fits


def test_uploads_under_way_reserve_their_room(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, budget=4 * BLOCK)
    a, b = store.begin("a"), store.begin("b")
    assert a.write(os.urandom(3 * BLOCK))
    b.write(os.urandom(2 * BLOCK))  # only one block is left while a is under way
    assert b.dropped == SPOOL_BUDGET
    assert a.finish().stored and not b.finish().stored
    assert store.reserved == 0


def test_a_file_is_cut_at_the_maximum(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_file=2500)
    result = upload(store, "s", b"x" * 10_000)
    assert result.truncated and result.size == 2500
    assert (tmp_path / result.sha256).stat().st_size == 2500


def test_what_the_folder_holds_counts_and_a_crashs_leftovers_go(tmp_path: Path) -> None:
    (tmp_path / ("ab" * 32)).write_bytes(b"x" * 5000)  # kept before a restart
    (tmp_path / ".upload-123-deadbeef").write_bytes(b"half")  # a crash's temporary file
    (tmp_path / "README").write_text("not ours")
    store = UploadStore(tmp_path, budget=3 * BLOCK)
    store.prepare()
    assert store.used == 2 * BLOCK
    assert files(tmp_path) == ["README", "ab" * 32]
    assert upload(store, "s", os.urandom(10)).stored
    assert upload(store, "s", os.urandom(10)).dropped == SPOOL_BUDGET


def test_a_folder_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    store = UploadStore(blocked / "uploads")
    result = upload(store, "s", b"abc")
    assert not result.stored and result.dropped == CANNOT_WRITE
    assert result.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_an_abandoned_upload_leaves_nothing(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, budget=10 * BLOCK)
    incoming = store.begin("s")
    incoming.write(os.urandom(3 * BLOCK))
    incoming.abandon()
    assert files(tmp_path) == [] and store.reserved == 0 and store.used == 0


def test_an_empty_upload_is_kept(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    result = upload(store, "s", b"")
    assert result.stored and result.size == 0
    assert (tmp_path / hashlib.sha256(b"").hexdigest()).exists()


def test_a_folder_it_may_not_search_is_no_error(tmp_path: Path, monkeypatch) -> None:
    store = UploadStore(tmp_path / "uploads")
    real_open = os.open

    def refused(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "uploads")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    monkeypatch.setattr(os, "stat", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    result = upload(store, "s", b"abc")
    assert not result.stored and result.dropped == CANNOT_WRITE and not result.duplicate
