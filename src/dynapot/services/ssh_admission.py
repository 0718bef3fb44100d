"""Which new SSH connections are served, and when: sshd's MaxStartups, and a CPU budget that
slows a source down instead of turning it away.

Key exchanges are the dear part of SSH, and one attacker's flood must not starve every other
virtual host of the sensor's CPU. Refusing a source past a rate would protect the CPU but give
the honeypot away (a real sshd serves a sequential scanner at any pace), so a source over its
budget is *delayed*: its banner comes later, as from a busy machine. Only a source whose queue
would exceed `max_wait` seconds is dropped, and then the way sshd drops one.

`StartupGate` is sshd's MaxStartups "start:rate:full" (10:30:100 by default): with `start` or
more connections not yet authenticated, a new one is dropped at random with a probability
rising linearly from `rate`% to 100% at `full`, closed before the banner (sshd's
`drop_connection`). sshd 9.2 counts all sources together, so one source holding 100 half-open
connections locks everyone out; a honeypot must not let one attacker hide the others, so the
count is per virtual host *and source*: what one source sees is sshd's behaviour, and only a
prober comparing two sources' views could tell (sshd 9.8's PerSourceMaxStartups does the same).

Both are pure: fed the time and a random draw, they answer; the service does the waiting.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["HandshakeBudget", "StartupGate"]

SOURCES_REMEMBERED = 65536  # per-source budgets kept (the oldest go)


class HandshakeBudget:
    """Per-source token buckets for new SSH connections: `rate` a second, `burst` at once; past
    them a connection waits its turn, up to `max_wait` seconds."""

    def __init__(self, rate: float, burst: int, max_wait: float = 10.0) -> None:
        if rate <= 0 or burst < 1 or max_wait < 0:
            raise ValueError("a handshake budget needs rate > 0, burst >= 1 and max_wait >= 0")
        self.rate, self.burst, self.max_wait = rate, burst, max_wait
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # source -> (tokens, when)

    def wait(self, source: str, now: float) -> float | None:
        """Seconds this source's new connection waits before it is served (0: at once), or None
        when its queue is full and the connection is to be dropped. Takes a token either way
        it is served: tokens may go below zero, which is the queue."""
        tokens, then = self._buckets.pop(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        delay = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        served = delay <= self.max_wait
        self._buckets[source] = (tokens - 1.0 if served else tokens, now)
        if len(self._buckets) > SOURCES_REMEMBERED:
            self._buckets.popitem(last=False)
        return delay if served else None


class StartupGate:
    """sshd's MaxStartups, per key (the service's: virtual host and source): `admit` on a new
    connection, `done` once it has authenticated or ended (whichever comes first)."""

    def __init__(
        self, start: int = 10, rate: int = 30, full: int = 100, draw: Callable[[], float] = random.random
    ) -> None:
        if not (1 <= start <= full and 0 <= rate <= 100):
            raise ValueError("MaxStartups needs 1 <= start <= full and 0 <= rate <= 100")
        self.start, self.rate, self.full, self._draw = start, rate, full, draw
        self._unauthenticated: dict[Hashable, int] = {}

    def pending(self, host: Hashable) -> int:
        """Connections to `host` (a virtual host and source) admitted and not yet authenticated
        or ended."""
        return self._unauthenticated.get(host, 0)

    def admit(self, host: Hashable) -> bool:
        """Whether a new connection to `host` is served (and then counted until `done`)."""
        startups = self.pending(host)
        if startups >= self.full:
            return False
        if startups >= self.start:
            # sshd's drop_connection(): p% rises from `rate` at `start` to 100 at `full`.
            span = max(self.full - self.start, 1)
            p = self.rate + (100 - self.rate) * (startups - self.start) / span
            if self._draw() * 100 < p:
                return False
        self._unauthenticated[host] = startups + 1
        return True

    def done(self, host: Hashable) -> None:
        """A connection `admit` let in has authenticated or ended."""
        left = self.pending(host) - 1
        if left > 0:
            self._unauthenticated[host] = left
        else:
            self._unauthenticated.pop(host, None)
