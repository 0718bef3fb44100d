"""The live feed's batches count every event once, even those inserted while a batch is made."""

from __future__ import annotations

from web_fixtures import make_database

from dynapot.web import live
from dynapot.web.queries import latest_event_id


def test_events_inserted_during_a_batch_are_counted_in_the_next_one_only(tmp_path, monkeypatch):
    db, _ = make_database(tmp_path)  # 30 events
    try:
        newest = latest_event_id(db)
        # The batch reads the newest id, then 10 events arrive before it counts: as if newest were 10 lower.
        monkeypatch.setattr(live, "latest_event_id", lambda _db: newest - 10)
        first, cursor = live.next_batch(db, 0, show=5)
        assert cursor == newest - 10 and len(first["events"]) + first["more"] == newest - 10
        monkeypatch.undo()
        second, cursor = live.next_batch(db, cursor, show=5)
        assert cursor == newest and len(second["events"]) + second["more"] == 10
    finally:
        db.dispose()
