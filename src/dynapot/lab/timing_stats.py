"""Figures from `dynapot.lab.timing_run`'s lines, and the honest comparison of two hosts' timing.

Pure functions. `spread` summarises samples (median, p90, min, max, n); `segment_pattern` turns a
greeting's segments into comparable text (each segment normalised as the probe suite normalises
an answer: the host's address and names, nothing else); `timing_rows` compares a real host with
its imitation per service, as rows of the realism table:

- a delay (`first_byte`, `greeting_end`, `fail_delay`) tells the two apart when either's median
  lies outside the other's observed range (min to max, widened by `RESOLUTION`) and the samples
  are apart beyond chance (`mann_whitney_p`): a difference within the real daemon's own spread is
  not a tell, one beyond it is, once there are enough samples to show it;
- sshd's failed-login times are one random per-server minimum doubled k times (`doublings`): they
  are compared by k, not by the minimum;
- the segmenting of the greeting tells them apart when the imitation shows a pattern the real
  daemon never showed, or never shows the real daemon's most common one.
"""

from __future__ import annotations

import base64
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from dynapot.lab.probe_norm import host_names, plain_answer

__all__ = [
    "METRICS",
    "RESOLUTION",
    "delay_differs",
    "mann_whitney_p",
    "segment_pattern",
    "spread",
    "summary_lines",
    "timing_rows",
]

#: What is timed per connection: (key in a line, the row's probe name).
METRICS = (
    ("first_byte", "timing-first-byte"),
    ("greeting_end", "timing-greeting-end"),
    ("fail_delay", "timing-failed-login"),
)
#: Differences below this are not counted (seconds): the sensor's userland TCP path adds about
#: half a millisecond to every answer, pings included; that is the stack's figure
#: (bench/bench_netstack.py, bench/synrtt.c), not a service's timing.
RESOLUTION = 0.002
SIGNIFICANCE = 0.01  # the chance of calling two samples of one distribution apart


def spread(samples: Iterable[float | None]) -> dict[str, float | int] | None:
    """median, p90, min, max (seconds) and n of the samples that are not None; None if there are none."""
    values = sorted(v for v in samples if v is not None)
    if not values:
        return None
    p90 = values[min(len(values) - 1, max(0, round(0.9 * len(values)) - 1))]
    return {
        "median": statistics.median(values),
        "p90": p90,
        "min": values[0],
        "max": values[-1],
        "n": len(values),
    }


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test: how likely samples this far apart are when
    both come from one distribution. Exact for small samples (no ties assumed: timings in
    nanoseconds), else the normal approximation."""
    n, m = len(a), len(b)
    if not n or not m:
        return 1.0
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    if n * m > 400:
        mean, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
        z = (abs(u - mean) - 0.5) / sd
        return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    # counts[i][j][k]: orderings of i values of a and j of b with U = k (a value counts the b's below it)
    counts = [[[1]] * (m + 1)] + [[[1]] + [[] for _ in range(m)] for _ in range(n)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            # the largest value is a's (it beats all j of b's) or b's
            with_a = [0] * j + counts[i - 1][j]
            with_b = counts[i][j - 1]
            size = max(len(with_a), len(with_b))
            counts[i][j] = [
                (with_a[k] if k < len(with_a) else 0) + (with_b[k] if k < len(with_b) else 0)
                for k in range(size)
            ]
    table = counts[n][m]
    total = sum(table)
    low = sum(table[: math.floor(u) + 1]) / total
    high = sum(table[math.ceil(u) :]) / total
    return min(1.0, 2 * min(low, high))


def delay_differs(real: list[float], imitation: list[float]) -> bool:
    """Whether the imitation's delays tell it from the real daemon's: either's median lies outside
    the other's observed range (widened by `RESOLUTION`), and the two samples are apart beyond
    chance (Mann-Whitney, p < `SIGNIFICANCE`): a few samples prove nothing either way."""
    a, b = spread(real), spread(imitation)
    if a is None or b is None:
        return (a is None) != (b is None)
    slack = RESOLUTION
    outside = not (
        a["min"] - slack <= b["median"] <= a["max"] + slack
        and b["min"] - slack <= a["median"] <= b["max"] + slack
    )
    return outside and mann_whitney_p(real, imitation) < SIGNIFICANCE


def doublings(samples: list[float], low: float = 0.005, high: float = 0.0093) -> list[int] | None:
    """sshd's failure times as powers of two of one per-user minimum, when they are that.

    OpenSSH (7.8+) answers a failed login at its per-user minimum (5-9.3 ms, from its random
    timing secret) doubled k times until it covers PAM's delay. The minimum is a random field of
    each server, k is not: when every sample (three at least) is one minimum (within 1 %) times a
    power of two, the k of each; else None."""
    if len(samples) < 3:
        return None  # one or two values fit any minimum
    found, base = [], None
    for value in samples:
        k = 0
        while value / (1 << k) >= high and k < 20:
            k += 1
        minimum = value / (1 << k)
        if not low <= minimum < high:
            return None
        if base is None:
            base = minimum
        elif abs(minimum - base) > 0.01 * base:
            return None
        found.append(k)
    return found


def _shown(figures: dict[str, Any] | None) -> str:
    if figures is None:
        return "none"
    ms = {k: round(1000 * figures[k], 1) for k in ("median", "p90", "min", "max")}
    return f"median {ms['median']} ms, p90 {ms['p90']} ms, range {ms['min']}-{ms['max']} ms, n={figures['n']}"


def segment_pattern(segments: list[str], ip: str, names: tuple[str, ...] = ()) -> str:
    """A greeting's data segments (base64) as text: each normalised, joined by " | "."""
    if not segments:
        return "(no greeting)"
    return " | ".join(plain_answer(base64.b64decode(s), ip, names) for s in segments)


def _names(lines: list[dict[str, Any]]) -> tuple[str, ...]:
    joined = [
        {
            "probe": "banner",
            "steps": [base64.b64encode(b"".join(base64.b64decode(s) for s in line["segments"])).decode()],
        }
        for line in lines
    ]
    return host_names(joined)


def _values(lines: list[dict[str, Any]], key: str) -> list[float]:
    return [v for line in lines if (v := line.get(key)) is not None]


def _by_label(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        found.setdefault(line["label"], []).append(line)
    return found


def _patterns(lines: list[dict[str, Any]], ip: str, names: tuple[str, ...]) -> Counter[str]:
    return Counter(segment_pattern(line["segments"], ip, names) for line in lines)


def _shown_patterns(counts: Counter[str]) -> str:
    return " ;; ".join(f"{n}x {pattern}" for pattern, n in counts.most_common())


def timing_rows(
    real: list[dict[str, Any]], imitation: list[dict[str, Any]], real_ip: str, imitation_ip: str
) -> list[dict[str, Any]]:
    """Rows {service, probe, real, dynapot, differs} per service: delays and greeting segments."""
    real_names, imitation_names = _names(real), _names(imitation)
    theirs = _by_label(imitation)
    rows = []
    for label, ours in _by_label(real).items():
        other = theirs.get(label, [])
        for key, probe in METRICS:
            a_values, b_values = _values(ours, key), _values(other, key)
            if not a_values and not b_values:
                continue  # not timed for this service
            if key == "fail_delay" and (row := _doubling_row(label, probe, ours, other)) is not None:
                rows.append(row)
                continue
            rows.append(
                {
                    "service": label,
                    "probe": probe,
                    "real": _shown(spread(a_values)),
                    "dynapot": _shown(spread(b_values)),
                    "differs": delay_differs(a_values, b_values),
                }
            )
        a_patterns = _patterns(ours, real_ip, real_names)
        b_patterns = _patterns(other, imitation_ip, imitation_names)
        common = a_patterns.most_common(1)[0][0]
        differs = not b_patterns or common not in b_patterns or any(p not in a_patterns for p in b_patterns)
        rows.append(
            {
                "service": label,
                "probe": "timing-segments",
                "real": _shown_patterns(a_patterns),
                "dynapot": _shown_patterns(b_patterns),
                "differs": differs,
            }
        )
    return rows


def _doubling_row(
    label: str, probe: str, ours: list[dict[str, Any]], other: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The failed-login row of a server whose failure times are one minimum doubled (sshd's):
    compared by the doublings, the minimum being random per server. None when the real one's
    are not that."""
    a = doublings([v for line in ours if (v := line.get("fail_delay")) is not None])
    if a is None:
        return None
    b_values = [v for line in other if (v := line.get("fail_delay")) is not None]
    b = doublings(b_values)
    if b is None:
        shown = _shown(spread(b_values))
        return {"service": label, "probe": probe, "real": _doubled(a), "dynapot": shown, "differs": True}
    ka, kb = spread(a), spread(b)
    differs = (
        ka is None
        or kb is None
        or not (ka["min"] <= kb["median"] <= ka["max"] and kb["min"] <= ka["median"] <= kb["max"])
    )
    return {"service": label, "probe": probe, "real": _doubled(a), "dynapot": _doubled(b), "differs": differs}


def _doubled(ks: list[int]) -> str:
    counts = Counter(ks)
    return "one per-user minimum x 2^k: " + ", ".join(f"k={k} {n}x" for k, n in sorted(counts.items()))


def summary_lines(real: list[dict[str, Any]], imitation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Benchmark lines: per service and metric, the real daemon's figures beside dynapot's (seconds)."""
    theirs = _by_label(imitation)
    out = []
    for label, ours in _by_label(real).items():
        for key, _ in METRICS:
            a_values, b_values = _values(ours, key), _values(theirs.get(label, []), key)
            if not a_values and not b_values:
                continue
            out.append(
                {
                    "name": f"{label} {key}",
                    "unit": "s",
                    "real": spread(a_values),
                    "dynapot": spread(b_values),
                    "p": round(mann_whitney_p(a_values, b_values), 6),
                    "differs": delay_differs(a_values, b_values),
                }
            )
    return out
