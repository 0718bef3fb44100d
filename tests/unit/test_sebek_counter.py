"""Sebek counters per sender: lost, late, duplicate and restarted, always a net count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynapot.sebek.counter import MAX_GAPS, Counters, Observation, Seen


def test_a_steady_sender_loses_nothing() -> None:
    counters = Counters()
    assert counters.observe("h", 5) == Observation(Seen.FIRST)
    assert [counters.observe("h", n).seen for n in (6, 7, 8)] == [Seen.NEXT] * 3
    assert counters.lost == 0


def test_gaps_are_lost_until_a_late_record_fills_them() -> None:
    counters = Counters()
    counters.observe("h", 0)
    assert counters.observe("h", 4) == Observation(Seen.GAP, 3)
    assert counters.lost == 3
    assert counters.observe("h", 2) == Observation(Seen.LATE, -1)
    assert counters.observe("h", 2).seen is Seen.DUPLICATE  # filled already
    assert counters.observe("h", 1).seen is Seen.LATE
    assert counters.observe("h", 3).seen is Seen.LATE
    assert (counters.lost, counters.late, counters.duplicates) == (0, 3, 1)


def test_senders_are_counted_apart_and_the_counter_wraps() -> None:
    counters = Counters()
    counters.observe("a", 0xFFFFFFFE)
    counters.observe("b", 10)
    assert counters.observe("a", 0xFFFFFFFF).seen is Seen.NEXT
    assert counters.observe("a", 1) == Observation(Seen.GAP, 1)  # 0 is missing
    assert counters.observe("b", 11).seen is Seen.NEXT
    assert counters.observe("a", 0).seen is Seen.LATE
    assert counters.lost == 0


def test_a_counter_far_behind_is_a_restarted_client_not_a_loss() -> None:
    counters = Counters()
    counters.observe("h", 100_000)
    assert counters.observe("h", 0).seen is Seen.RESTART
    assert counters.observe("h", 1).seen is Seen.NEXT
    assert (counters.lost, counters.restarts) == (0, 1)


def test_gaps_kept_are_bounded() -> None:
    counters = Counters()
    counters.observe("h", 0)
    for n in range(2, 2 * (MAX_GAPS + 10), 2):
        counters.observe("h", n)
    assert counters.lost == MAX_GAPS + 9
    assert counters.observe("h", 1).seen is Seen.DUPLICATE  # its gap was forgotten
    assert counters.observe("h", 2 * (MAX_GAPS + 9) - 1).seen is Seen.LATE


@given(st.lists(st.integers(0, 300), min_size=1, max_size=200), st.randoms(use_true_random=False))
def test_lost_is_what_is_missing_between_the_first_and_the_latest(keep: list[int], rng: object) -> None:
    """Any subset of 0..N, delivered in order with small reorderings: lost is the exact count."""
    received = sorted(set(keep))
    order = list(received)
    for i in range(0, len(order) - 1, 3):  # swap some neighbours (not the first: it is the baseline)
        if i > 0 and rng.random() < 0.5:  # type: ignore[attr-defined]
            order[i], order[i + 1] = order[i + 1], order[i]
    counters = Counters()
    for n in order:
        counters.observe("h", n)
    assert counters.lost == (received[-1] - received[0] + 1) - len(received)
