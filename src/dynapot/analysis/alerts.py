"""Alerts: findings at or above a risk sent through apprise, deduplicated, rate-limited, retried.

One scan must not send a thousand messages: a finding key alerts once per window (a higher
risk for the same key alerts again), at most `max_per_window` messages leave per window and
the rest wait for one digest. A delivery that fails is retried with a doubling delay; after
the last attempt it is logged and stored as failed, never dropped silently. Every alert is a
row of the alerts table, its channel with secrets masked (apprise's privacy form): stored
as pending when it is queued, then marked sent or failed.

Nothing an attacker typed is interpreted on the way: every field of a message is shown with
`dynapot.textsafe.for_display` (no control character, no forged line), and the message is
handed to apprise as plain text, which escapes it for the channel's own format (HTML mail,
markdown chat).

`consider` runs in the event loop's thread (the daemon calls it there), so it must not
wait on the database: the rows are written by `AlertTable`, in a thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import apprise
from apprise import NotifyFormat

from dynapot.analysis.findings import Finding
from dynapot.config import RISK_RANK, AlertSettings
from dynapot.db import Database
from dynapot.db.models import Alert, utcnow
from dynapot.textsafe import for_display

log = logging.getLogger(__name__)
DEDUP_LIMIT = 100_000  # finding keys remembered for deduplication
DIGEST_LINES = 50


class Channel:
    """One apprise URL; `name` is its masked form, safe to log and store."""

    def __init__(self, url: str) -> None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise ValueError("an alerts URL is not understood by apprise (see `apprise --details`)")
        self.name: str = plugin.url(privacy=True)
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)

    def send(self, title: str, body: str) -> None:
        """Deliver once; raises on failure (apprise logs the reason at warning level).

        The message is plain text: apprise escapes it for a channel that reads HTML or markdown.
        """
        if not self._apprise.notify(body=body, title=title, body_format=NotifyFormat.TEXT):
            raise OSError(f"delivery through {self.name.split('://')[0]} failed")


@dataclass(slots=True)
class _Message:
    title: str
    body: str
    finding_id: int | None
    queued: datetime = field(default_factory=utcnow)  # the time of its rows
    rows: dict[str, int] = field(default_factory=dict)  # channel name -> alert row id (the writer's)


class AlertTable:
    """The alerts table, written in one worker thread, in the order the writes were asked for.

    One thread, first in first out: a message's pending rows are stored before any update
    of them, which is how an update finds its row ids. A write that fails is logged; the
    alert is still delivered.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynapot-alerts")

    def add(self, message: _Message, channels: list[str]) -> None:
        """Store one pending row per channel, soon (the ids land in `message.rows`)."""
        self._writer.submit(self._guarded, self._add, message, channels)

    async def mark(
        self, message: _Message, channel: str, status: str, attempts: int, error: str | None
    ) -> None:
        """Record how a delivery ended; returns once it is stored."""
        job = self._writer.submit(self._guarded, self._mark, message, channel, status, attempts, error)
        await asyncio.wrap_future(job)

    @staticmethod
    def _guarded(write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except Exception:  # the database failing must not stop the alerts themselves
            log.exception("an alert row was not stored")

    def _add(self, message: _Message, channels: list[str]) -> None:
        with self.db.session() as session:
            rows = {
                name: Alert(
                    finding_id=message.finding_id,
                    time=message.queued,
                    channel=name[:255],
                    status="pending",
                    attempts=0,
                    last_error=None,
                    message=f"{message.title}\n\n{message.body}",
                )
                for name in channels
            }
            session.add_all(rows.values())
            session.flush()
            message.rows.update((name, row.id) for name, row in rows.items())

    def _mark(self, message: _Message, channel: str, status: str, attempts: int, error: str | None) -> None:
        row_id = message.rows.get(channel)
        if not row_id:
            return  # a channel added by a reload after the message was queued, or a failed add
        with self.db.session() as session:
            row = session.get(Alert, row_id)
            if row is not None:
                row.status, row.attempts, row.last_error = status, attempts, error


def describe(finding: Finding) -> tuple[str, str]:
    """Title and body of the message for one finding; every field one line (`for_display`)."""
    who = ", ".join(finding.sources[:5]) + (" ..." if len(finding.sources) > 5 else "")
    title = f"dynapot: {finding.risk.upper()} {finding.kind} from {who or 'unknown'}"
    lines = [
        finding.summary,
        "",
        f"first seen: {finding.first_seen.isoformat()}",
        f"last seen:  {finding.last_seen.isoformat()}",
        f"sources:    {', '.join(finding.sources[:20])}",
        f"honeypots:  {', '.join(finding.targets[:20])}",
        f"ports:      {', '.join(finding.ports[:20])}",
        f"events:     {finding.event_count}",
    ]
    return for_display(title), "\n".join(for_display(line) for line in lines)


class Alerter:
    """Decides which findings become messages, and delivers them in the background."""

    def __init__(
        self,
        settings: AlertSettings,
        db: Database | None,
        *,
        channels: list[Channel] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.db = db
        self.table = AlertTable(db) if db is not None else None
        self.channels = channels if channels is not None else [Channel(url) for url in settings.urls]
        self.clock = clock
        self._alerted: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (when, risk rank)
        self._sent_times: deque[float] = deque()
        self._digest: list[str] = []
        self._queue: asyncio.Queue[_Message] | None = None
        self.counts: dict[str, int] = {"sent": 0, "failed": 0, "suppressed": 0, "digested": 0}

    def reconfigure(self, settings: AlertSettings, channels: list[Channel] | None = None) -> None:
        """New channels and limits; what was alerted, and the digest, are kept."""
        self.channels = channels if channels is not None else [Channel(url) for url in settings.urls]
        self.settings = settings

    # ------------------------------------------------------------------ deciding

    def consider(self, finding: Finding, finding_id: int | None = None) -> str:
        """What happens to a new or escalated finding: ignored, suppressed, digest or queued."""
        rank = RISK_RANK.get(finding.risk, 0)
        if rank < RISK_RANK[self.settings.min_risk]:
            return "ignored"
        now = self.clock()
        seen = self._alerted.get(finding.key)
        if seen is not None and now - seen[0] < self.settings.window and rank <= seen[1]:
            self.counts["suppressed"] += 1
            return "suppressed"
        self._alerted[finding.key] = (now, rank)
        self._alerted.move_to_end(finding.key)
        if len(self._alerted) > DEDUP_LIMIT:
            self._alerted.popitem(last=False)
        if not self._room(now):
            title, _ = describe(finding)
            self._digest.append(f"{finding.last_seen.isoformat()} {title.removeprefix('dynapot: ')}")
            self.counts["digested"] += 1
            return "digest"
        self._sent_times.append(now)
        self._enqueue(*describe(finding), finding_id)
        return "queued"

    def notice(self, key: str, title: str, body: str) -> str:
        """A message about dynapot itself (a storage budget reached), whatever `min_risk` says:
        once per key and window, within the window's messages (else in the digest)."""
        now = self.clock()
        seen = self._alerted.get(key)
        if seen is not None and now - seen[0] < self.settings.window:
            self.counts["suppressed"] += 1
            return "suppressed"
        self._alerted[key] = (now, len(RISK_RANK))
        self._alerted.move_to_end(key)
        if len(self._alerted) > DEDUP_LIMIT:
            self._alerted.popitem(last=False)
        if not self._room(now):
            self._digest.append(title.removeprefix("dynapot: "))
            self.counts["digested"] += 1
            return "digest"
        self._sent_times.append(now)
        self._enqueue(title, body, None)
        return "queued"

    def _room(self, now: float) -> bool:
        while self._sent_times and now - self._sent_times[0] >= self.settings.window:
            self._sent_times.popleft()
        return len(self._sent_times) < self.settings.max_per_window

    def flush_digest(self) -> bool:
        """Send the waiting digest as one message once the window has room for it."""
        now = self.clock()
        if not self._digest or not self._room(now):
            return False
        lines = self._digest[:DIGEST_LINES]
        more = len(self._digest) - len(lines)
        body = "\n".join(lines) + (f"\n... and {more} more" if more else "")
        self._sent_times.append(now)
        self._enqueue(f"dynapot: digest of {len(self._digest)} more findings", body, None)
        self._digest = []
        return True

    def _enqueue(self, title: str, body: str, finding_id: int | None) -> None:
        message = _Message(title, body, finding_id)
        if self.table is not None:
            self.table.add(message, [channel.name for channel in self.channels])
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(message)

    # ------------------------------------------------------------------ delivering

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver queued messages until `stop`, then deliver what is left (bounded)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        while not stop.is_set():
            self.flush_digest()
            try:
                message = await asyncio.wait_for(self._queue.get(), 1.0)
            except TimeoutError:
                continue
            await self._deliver(message)
        while not self._queue.empty():
            await self._deliver(self._queue.get_nowait())

    async def drain(self, timeout: float = 60.0) -> None:
        """Deliver everything queued now (tests, one-shot commands)."""
        self.flush_digest()
        if self._queue is None:
            return
        async with asyncio.timeout(timeout):
            while not self._queue.empty():
                await self._deliver(self._queue.get_nowait())

    async def _deliver(self, message: _Message) -> None:
        await asyncio.gather(*(self._deliver_to(channel, message) for channel in self.channels))

    async def _deliver_to(self, channel: Channel, message: _Message) -> None:
        delay = self.settings.retry_delay
        error = ""
        for attempt in range(1, self.settings.retries + 2):
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(channel.send, message.title, message.body), self.settings.timeout
                )
            except Exception as exc:  # any failure of a plugin is one failed attempt
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("alert via %s failed (attempt %d): %s", channel.name, attempt, error)
                if attempt <= self.settings.retries:
                    await asyncio.sleep(delay)
                    delay *= 2
                continue
            self.counts["sent"] += 1
            await self._mark(message, channel, "sent", attempt, None)
            return
        self.counts["failed"] += 1
        log.error("alert %r via %s not delivered: %s", message.title, channel.name, error)
        await self._mark(message, channel, "failed", self.settings.retries + 1, error)

    async def _mark(
        self, message: _Message, channel: Channel, status: str, attempts: int, error: str | None
    ) -> None:
        if self.table is not None:
            await self.table.mark(message, channel.name, status, attempts, error)
