"""The timing comparison counts a difference beyond the real daemon's own spread, and only that."""

from __future__ import annotations

import base64
import json

import pytest

from dynapot.lab import timing_run, timing_stats


def _line(label: str, first: float | None, fail: float | None = None, *segments: bytes) -> dict:
    return {
        "label": label,
        "protocol": label,
        "first_byte": first,
        "fail_delay": fail,
        "segments": [base64.b64encode(s).decode() for s in segments],
    }


def test_spread_ignores_missing_samples() -> None:
    figures = timing_stats.spread([0.3, None, 0.1, 0.2, 0.5])
    assert figures == {"median": 0.25, "p90": 0.5, "min": 0.1, "max": 0.5, "n": 4}
    assert timing_stats.spread([None, None]) is None


@pytest.mark.parametrize(
    ("real", "imitation", "differs"),
    [
        ([0.013, 0.027, 0.030, 0.058, 0.017], [0.016, 0.020, 0.031, 0.025, 0.022], False),  # one spread
        ([0.013, 0.027, 0.030, 0.058, 0.017], [0.0006, 0.0007, 0.0009, 0.0008, 0.0007], True),  # too soon
        ([2.1, 2.4, 2.9, 2.2, 2.6], [2.0, 2.2, 2.3, 9.0, 2.5], False),  # one outlier does not move the median
        (  # the imitation's median beyond the real range, one value within it
            [0.010, 0.011, 0.012, 0.0105, 0.0115, 0.0102, 0.0111, 0.0118],
            [0.0108, 0.500, 0.600, 0.55, 0.7, 0.52, 0.61, 0.58],
            True,
        ),
        ([0.013, 0.058, 0.030], [0.0006, 0.0007, 0.0009], False),  # three each: proves nothing either way
        ([0.02], [], True),  # only one side answered
    ],
)
def test_delay_differs_beyond_the_real_spread(
    real: list[float], imitation: list[float], differs: bool
) -> None:
    assert timing_stats.delay_differs(real, imitation) is differs


def test_mann_whitney_exact_and_approximate() -> None:
    apart = timing_stats.mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert apart == pytest.approx(2 / 252)  # the one ordering of 252 (and its mirror)
    assert timing_stats.mann_whitney_p([1, 3, 5, 7, 9], [2, 4, 6, 8, 10]) > 0.5
    big = timing_stats.mann_whitney_p(list(range(60)), [x + 0.5 for x in range(60)])
    assert big > 0.5
    assert timing_stats.mann_whitney_p(list(range(60)), [x + 100 for x in range(60)]) < 1e-9
    assert timing_stats.mann_whitney_p([], [1.0]) == 1.0


OPTIONS = b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03"


def test_segments_compared_as_patterns_with_host_names_normalised() -> None:
    def telnet(name: bytes, *cut: int) -> dict:
        screen = b"\r\r\nDebian GNU/Linux 12\r\n\r" + name + b" login: "
        whole = OPTIONS + screen
        pieces, last = [], 0
        for at in (*cut, len(whole)):
            pieces.append(whole[last:at])
            last = at
        return _line("telnet", 0.001, None, *pieces)

    three = (len(OPTIONS), len(OPTIONS) + 24)
    real = [telnet(b"real", *three) for _ in range(8)] + [
        telnet(b"real", len(OPTIONS) + 24) for _ in range(2)
    ]
    same = [telnet(b"srv-7", *three) for _ in range(9)] + [telnet(b"srv-7", len(OPTIONS) + 24)]
    two = [telnet(b"srv-7", len(OPTIONS)) for _ in range(10)]  # issue and prompt in one segment
    rows = {r["probe"]: r for r in timing_stats.timing_rows(real, same, "198.18.0.10", "198.18.0.70")}
    assert not rows["timing-segments"]["differs"], rows["timing-segments"]
    assert "<host> login: " in rows["timing-segments"]["real"]
    rows = {r["probe"]: r for r in timing_stats.timing_rows(real, two, "198.18.0.10", "198.18.0.70")}
    assert rows["timing-segments"]["differs"]


def test_rows_per_service_and_metric() -> None:
    real = [_line("ftp", 0.004 + i / 1000, 3.0 + i / 10, b"220 (vsFTPd 3.0.3)\r\n") for i in range(5)]
    fast = [_line("ftp", 0.0005, 0.9, b"220 (vsFTPd 3.0.3)\r\n") for _ in range(5)]
    rows = timing_stats.timing_rows(real, fast, "198.18.0.10", "198.18.0.70")
    assert [(r["probe"], r["differs"]) for r in rows] == [
        ("timing-first-byte", True),
        ("timing-failed-login", True),
        ("timing-segments", False),
    ]
    assert rows[0]["real"].startswith("median 6.0 ms")
    lines = timing_stats.summary_lines(real, fast)
    assert [line["name"] for line in lines] == ["ftp first_byte", "ftp fail_delay"]
    json.dumps(lines)  # benchmark lines are JSON


def test_timing_run_refuses_a_bad_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert timing_run.main(["{not json"]) == 2
    assert timing_run.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_sshd_failure_times_compared_by_their_doublings() -> None:
    real_minimum, our_minimum = 0.0073450, 0.0061570  # each server's own, from its random secret
    real = [_line("ssh", 0.01, real_minimum * (1 << k)) for k in (9,) * 11 + (8,)]
    ours = [_line("ssh", 0.01, our_minimum * 512) for _ in range(12)]
    assert timing_stats.doublings([v["fail_delay"] for v in real]) == [9] * 11 + [8]
    rows = {r["probe"]: r for r in timing_stats.timing_rows(real, ours, "198.18.0.10", "198.18.0.70")}
    row = rows["timing-failed-login"]
    assert not row["differs"] and row["dynapot"] == "one per-user minimum x 2^k: k=9 12x"
    spread_out = [_line("ssh", 0.01, 1.5 + i / 12) for i in range(12)]  # PAM's spread, no doubling
    assert timing_stats.doublings([v["fail_delay"] for v in spread_out]) is None
    rows = {r["probe"]: r for r in timing_stats.timing_rows(real, spread_out, "198.18.0.10", "198.18.0.70")}
    assert rows["timing-failed-login"]["differs"]
