"""Per-sender Sebek counters: which records were lost on the way, and which came late.

A Sebek client numbers its records 0, 1, 2, ... (modulo 2**32). `Counters.observe(sender,
counter)` compares a record's counter with the one expected next from that sender and says
what the record means for the count of lost records:

- the first record of a sender sets its baseline (what came before it is unknown, not lost);
- a counter ahead of the expected one: the records in between are lost (`lost` grows);
- a counter that fills a gap counted before: a late record (`lost` shrinks by one);
- a counter a little behind (within `REORDER_WINDOW`) that fills no gap: a duplicate;
- a counter far behind: the client restarted (a new baseline, nothing lost).

So `lost` is always the net number of records missing between a sender's first and latest
record. Gaps are kept as ranges, at most `MAX_GAPS` per sender (the oldest are forgotten: a
record that fills a forgotten gap is counted as a duplicate), and at most `MAX_SENDERS`
senders (the least recently heard is forgotten). No IO, no clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["MAX_GAPS", "MAX_SENDERS", "REORDER_WINDOW", "Counters", "Observation", "Seen"]

MODULO = 1 << 32
REORDER_WINDOW = 4096
MAX_GAPS = 64
MAX_SENDERS = 4096


class Seen(enum.Enum):
    """What one record's counter meant."""

    FIRST = "first"
    NEXT = "next"
    GAP = "gap"  # records before it were lost
    LATE = "late"  # it fills a gap counted as lost
    DUPLICATE = "duplicate"
    RESTART = "restart"


@dataclass(slots=True)
class _Sender:
    expected: int
    gaps: list[list[int]] = field(default_factory=list)  # [first, last] counters missing, oldest first


@dataclass(frozen=True, slots=True)
class Observation:
    """The verdict on one record: what it was and how the sender's lost count changed (+n or -1)."""

    seen: Seen
    lost_change: int = 0


class Counters:
    """The counters of every sender; `lost`, `late`, `duplicates`, `restarts` are totals."""

    def __init__(self) -> None:
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.restarts = 0

    def observe(self, sender: str, counter: int) -> Observation:
        state = self._senders.get(sender)
        if state is None:
            if len(self._senders) >= MAX_SENDERS:
                self._senders.popitem(last=False)
            self._senders[sender] = _Sender((counter + 1) % MODULO)
            return Observation(Seen.FIRST)
        self._senders.move_to_end(sender)
        ahead = (counter - state.expected) % MODULO
        if ahead == 0:
            state.expected = (counter + 1) % MODULO
            return Observation(Seen.NEXT)
        if ahead < MODULO // 2:  # ahead of what was expected: `ahead` records missing
            state.gaps.append([state.expected, (counter - 1) % MODULO])
            del state.gaps[:-MAX_GAPS]
            state.expected = (counter + 1) % MODULO
            self.lost += ahead
            return Observation(Seen.GAP, ahead)
        if self._fill(state, counter):
            self.lost -= 1
            self.late += 1
            return Observation(Seen.LATE, -1)
        if MODULO - ahead <= REORDER_WINDOW:
            self.duplicates += 1
            return Observation(Seen.DUPLICATE)
        state.expected = (counter + 1) % MODULO
        state.gaps.clear()
        self.restarts += 1
        return Observation(Seen.RESTART)

    @staticmethod
    def _fill(state: _Sender, counter: int) -> bool:
        for index, (first, last) in enumerate(state.gaps):
            if (counter - first) % MODULO <= (last - first) % MODULO:
                pieces = []
                if counter != first:
                    pieces.append([first, (counter - 1) % MODULO])
                if counter != last:
                    pieces.append([(counter + 1) % MODULO, last])
                state.gaps[index : index + 1] = pieces
                return True
        return False

    def senders(self) -> int:
        return len(self._senders)
