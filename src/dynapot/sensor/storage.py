"""What the sensor stores, bounded: noise folded into one row per source, target and window, and
the database and upload budgets.

`NoiseFolder`: a packet outside any connection (a probe of a closed port, a datagram, a ping,
an ICMP message) makes a row at once the first time its source touches that target (host,
protocol, port and what happened) in a window of `noise_window` seconds, aligned to the clock;
the repeats are counted, and when the window ends they become one more row saying how many
there were and over which span. A source gets rows for at most `noise_targets` targets a window
(beyond that its noise is one row per kind), all sources together at most `noise_rows` first
rows a window (beyond that the rest is one row per kind from no source in particular): a flood
from many spoofed sources is counted, not itemised.

`StorageGuard`: the database budget, measured every few seconds (`measure`, off the packet
loop) and obeyed on every event. Past the budget the sensor keeps counting but stores no
payloads (`PAYLOAD_KEYS`: excerpts; and no uploads are kept) and no noise; past it by
`HARD_MARGIN` it stores nothing but its own news. The upload store keeps its own budget; the
guard reports both, and says once per crossing that a budget was reached (a `storage-full`
event, which the daemon alerts on).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from dynapot.config import StorageSettings
from dynapot.events import NEWS_KINDS, PAYLOAD_KEYS
from dynapot.services.contract import FIELD_LIMIT
from dynapot.services.uploads import DATABASE_BUDGET, UploadStore

log = logging.getLogger(__name__)

NOISE_LIMIT = 65536  # targets remembered in one window; beyond it the window's tallies go out early
NOISE_ROWS = 20_000  # first rows a window, all sources together (StorageSettings.noise_rows)
HARD_MARGIN = 0.1  # past the budget by this share, nothing but the sensor's news is stored
RESUME = 0.9  # a budget reached is "reached" again only after use fell below this share of it

# Levels of the database budget.
UNDER, FULL, OVER = 0, 1, 2
LEVELS = ("under", "full", "over")

# A noise key: (kind, proto, src, dst, dport, detail). dst 0 and dport None: a source's noise
# beyond its targets; src 0 too: everybody's noise beyond the window's rows.
NoiseKey = tuple[str, str, int, int, int | None, str | None]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Tally:
    __slots__ = ("count", "first", "last", "sport")

    def __init__(self) -> None:
        self.count = 0  # repeats after the first row
        self.first = self.last = 0.0
        self.sport: int | None = None


class NoiseFolder:
    """Decides which noise makes a row now, and hands out the repeats' rows when a window ends.

    `emit(key, count, first, last, sport)` receives each window's repeats. Clockless: every call
    gives the wall-clock time.
    """

    def __init__(
        self,
        emit: Callable[[NoiseKey, int, float, float, int | None], None],
        *,
        window: float = 60.0,
        per_source: int = 1000,
        rows: int = NOISE_ROWS,
        limit: int = NOISE_LIMIT,
    ) -> None:
        self.emit = emit
        self.window, self.per_source, self.rows, self.limit = window, per_source, rows, limit
        self._period = -1
        self._tallies: dict[NoiseKey, _Tally] = {}
        self._sources: dict[int, int] = {}  # targets each source has rows for in this window
        self._firsts = 0  # first rows in this window
        self.folded = 0  # packets counted into a tally instead of a row of their own
        self.early = 0  # windows whose tallies went out early (too many targets)

    @property
    def pending(self) -> int:
        """Targets with repeats not handed out yet."""
        return sum(1 for tally in self._tallies.values() if tally.count)

    def boundary(self, wall: float) -> float:
        """When the window holding `wall` ends."""
        return (int(wall // self.window) + 1) * self.window

    def admit(self, key: NoiseKey, sport: int | None, wall: float) -> bool:
        """True: make this packet's row now; False: it is counted into its target's tally."""
        period = int(wall // self.window)
        if period != self._period:
            self.flush()
            self._period = period
        tallies = self._tallies
        tally = tallies.get(key)
        if tally is None:
            src = key[2]
            seen = self._sources.get(src, 0)
            if seen >= self.per_source:
                key = (key[0], key[1], src, 0, None, None)
            elif self._firsts >= self.rows:
                key = (key[0], key[1], 0, 0, None, None)
            else:
                if len(tallies) >= self.limit:
                    self.flush()
                    self.early += 1
                self._sources[src] = seen + 1
                self._firsts += 1
                tallies[key] = _Tally()
                return True
            tally = tallies.get(key)
            if tally is None:  # the first of a folded key: no row of its own either
                tally = tallies[key] = _Tally()
        if not tally.count:
            tally.first = wall
        tally.count += 1
        tally.last = wall
        tally.sport = sport
        self.folded += 1
        return False

    def expire(self, wall: float) -> None:
        """Hand out the tallies of a window that has ended."""
        if int(wall // self.window) != self._period:
            self.flush()

    def flush(self) -> None:
        """Hand out every tally now (a window ends, the sensor stops) and start afresh."""
        tallies, self._tallies = self._tallies, {}
        self._sources = {}
        self._firsts = 0
        for key, tally in tallies.items():
            if tally.count:
                self.emit(key, tally.count, tally.first, tally.last, tally.sport)


def database_bytes(engine: Engine) -> int | None:
    """Bytes the database holds (SQLite: pages in use; PostgreSQL: the database's size); None if
    the backend cannot say. Runs a query: never on the packet loop."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        try:
            with engine.connect() as connection:
                pages = connection.execute(text("PRAGMA page_count")).scalar() or 0
                free = connection.execute(text("PRAGMA freelist_count")).scalar() or 0
                size = connection.execute(text("PRAGMA page_size")).scalar() or 0
            return (pages - free) * size
        except Exception:  # a connection the unprivileged sensor cannot open: the files' size
            path = engine.url.database
            if not path:
                return None
            return sum(_size(Path(path + suffix)) for suffix in ("", "-wal"))
    if dialect == "postgresql":
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
    return None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class StorageGuard:
    """The database budget (and the upload store's) as the sensor obeys them; its counters."""

    def __init__(
        self,
        settings: StorageSettings | None = None,
        *,
        measure: Callable[[], int | None] | None = None,
        uploads: UploadStore | None = None,
    ) -> None:
        self.settings = settings or StorageSettings()
        self.budget = self.settings.database_budget or None
        self.measure = measure if self.budget is not None else None
        self.uploads = uploads
        self.level = UNDER
        self.used: int | None = None
        self.counters: Counter[str] = Counter()
        self._announced: set[str] = set()  # budgets reached and said so (until use falls again)

    def admit(
        self, kind: str, detail: str | None, data: dict[str, Any] | None
    ) -> tuple[bool, str | None, Any]:
        """Whether an event may be stored at this level, and its detail and data as stored."""
        if self.level >= OVER and kind not in NEWS_KINDS:
            self.counters["events not stored"] += 1
            return False, detail, data
        if data and not PAYLOAD_KEYS.isdisjoint(data):
            data = {key: value for key, value in data.items() if key not in PAYLOAD_KEYS}
            self.counters["payloads dropped"] += 1
        if detail is not None and len(detail) > FIELD_LIMIT:
            detail = detail[:FIELD_LIMIT]
        return True, detail, data

    def update(self, used: int | None) -> list[tuple[str, str, dict[str, Any]]]:
        """Take a new measurement; the news of every budget newly reached: (store, detail, data)."""
        news: list[tuple[str, str, dict[str, Any]]] = []
        if used is None:
            if self.measure is not None:
                self.counters["database size unknown"] += 1
        elif self.budget is not None:
            self.used = used
            before = self.level
            if used >= self.budget * (1 + HARD_MARGIN):
                self.level = OVER
            elif used >= self.budget:
                self.level = FULL
            elif used < self.budget * RESUME:
                self.level = UNDER
            elif before == OVER:
                self.level = FULL
            if self.level != before:
                log.log(
                    logging.ERROR if self.level > before else logging.INFO,
                    "database %s its budget (%d of %d bytes): %s",
                    "over" if self.level == OVER else "at" if self.level == FULL else "under",
                    used,
                    self.budget,
                    _consequence(self.level),
                )
            news += self._announce("database", self.level > UNDER, used, self.budget)
        store = self.uploads
        if store is not None:  # uploads are payloads too: none kept while the database is at its budget
            store.hold = DATABASE_BUDGET if self.level > UNDER else None
        if store is not None and store.budget is not None and store.used is not None:
            # Reached when the budget refused an upload since the last look; reached until the
            # folder is well below its budget again (expiry, an administrator).
            if store.full:
                store.full, reached = False, True
            else:
                reached = "spool" in self._announced and store.used >= store.budget * RESUME
            news += self._announce("spool", reached, store.used, store.budget)
        return news

    def _announce(
        self, store: str, reached: bool, used: int, budget: int
    ) -> list[tuple[str, str, dict[str, Any]]]:
        if not reached:
            self._announced.discard(store)
            return []
        if store in self._announced:
            return []
        self._announced.add(store)
        self.counters[f"{store} budget reached"] += 1
        what = (
            _consequence(self.level) if store == "database" else "uploads are hashed and reported, not kept"
        )
        detail = f"{store} budget reached: {used} of {budget} bytes; {what}"
        log.error("%s", detail)
        return [(store, detail, {"store": store, "used": used, "budget": budget})]

    def health(self) -> dict[str, object]:
        """For the sensor's status: budgets, use, level and what was not stored."""
        return {
            "database": {"used": self.used, "budget": self.budget, "level": LEVELS[self.level]},
            "uploads": self.uploads.health() if self.uploads is not None else None,
            "spool_budget_reached": "spool" in self._announced,
            **dict(self.counters),
        }


def _consequence(level: int) -> str:
    if level >= OVER:
        return "nothing but the sensor's news is stored, the rest is counted"
    if level == FULL:
        return "payloads (excerpts, uploads) and noise are counted, not stored"
    return "everything is stored again"
