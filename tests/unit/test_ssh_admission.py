"""sshd's MaxStartups and the per-source CPU budget, as pure objects (no sockets)."""

from __future__ import annotations

import pytest

from dynapot.services.ssh_admission import HandshakeBudget, StartupGate


def test_the_budget_delays_a_source_past_its_burst_then_drops_past_its_queue() -> None:
    budget = HandshakeBudget(rate=2.0, burst=3, max_wait=1.0)
    # three at once, then each waits one more half second for its token
    assert [budget.wait("198.18.0.3", 0.0) for _ in range(6)] == [0.0, 0.0, 0.0, 0.5, 1.0, None]
    assert budget.wait("198.18.0.4", 0.0) == 0.0  # another source has its own budget
    # the queue drains at 2 a second: after 1 s, the debt of 2 is paid and one more waits 0.5 s
    assert budget.wait("198.18.0.3", 1.0) == pytest.approx(0.5)


def test_a_sequential_scanner_at_the_budget_rate_is_never_refused() -> None:
    # It opens the next connection once the last one answered (as fast as it can: 50 ms a
    # handshake), 500 times: slowed down to the budget (a busy machine), never turned away.
    budget = HandshakeBudget(rate=4.0, burst=10, max_wait=10.0)
    now, answers = 0.0, []
    for _ in range(500):
        delay = budget.wait("198.18.0.9", now)
        answers.append(delay)
        now += (delay or 0.0) + 0.05
    assert None not in answers
    assert now > 500 / 4.0 * 0.9  # ... at about the budget's pace


@pytest.mark.parametrize("bad", [(0.0, 1, 1.0), (1.0, 0, 1.0), (1.0, 1, -1.0)])
def test_a_budget_without_sense_is_refused(bad: tuple[float, int, float]) -> None:
    with pytest.raises(ValueError, match="handshake budget"):
        HandshakeBudget(*bad)


def test_max_startups_follows_sshds_random_early_drop() -> None:
    # At `start` pending the drop probability is `rate` %: a draw under 30 % drops, above serves.
    draws = iter([0.29, 0.31])
    gate = StartupGate(start=2, rate=30, full=4, draw=lambda: next(draws))
    assert gate.admit("h") and gate.admit("h")  # below start: always, no draw
    assert not gate.admit("h")  # 29 < 30: dropped, not counted
    assert gate.pending("h") == 2
    assert gate.admit("h")  # 31 >= 30: served
    assert gate.pending("h") == 3


def test_max_startups_probability_rises_to_full() -> None:
    # With 3 pending of start 2, full 4: p = 30 + 70 * 1/2 = 65 %
    gate = StartupGate(start=2, rate=30, full=4, draw=lambda: 0.64)
    for _ in range(2):
        assert gate.admit("h")
    gate._unauthenticated["h"] = 3
    assert not gate.admit("h")  # 64 < 65: dropped
    gate = StartupGate(start=2, rate=30, full=4, draw=lambda: 0.66)
    gate._unauthenticated["h"] = 3
    assert gate.admit("h")  # 66 >= 65: served
    assert gate.pending("h") == 4
    assert not gate.admit("h")  # at full: always dropped


def test_max_startups_counts_per_host_and_frees_places() -> None:
    gate = StartupGate(start=1, rate=100, full=1)
    assert gate.admit("198.18.0.10") and not gate.admit("198.18.0.10")
    assert gate.admit("198.18.0.11")  # another virtual host is another sshd
    gate.done("198.18.0.10")
    assert gate.pending("198.18.0.10") == 0 and gate.admit("198.18.0.10")


def test_max_startups_without_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="MaxStartups"):
        StartupGate(start=10, rate=30, full=5)
