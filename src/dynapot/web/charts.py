"""Charts as server-rendered SVG: the geometry is computed here, the template only draws it.

No JavaScript and no inline style: bars are `<rect>`s with presentation attributes (x, y,
width, height, class), which a strict Content-Security-Policy allows. Labels are text the
template escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "paired_bars", "simple_bars"]

LABEL_WIDTH = 220
BAR_AREA = 360
ROW = 22
GAP = 10  # between the pairs of bars


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value, series (a CSS class) and where it is drawn."""

    label: str
    value: int
    series: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart: its bars, its size, its legend's series."""

    bars: tuple[Bar, ...]
    width: int
    height: int
    label_x: int
    series: tuple[str, ...]


def _width(value: int, largest: int) -> int:
    if value <= 0 or largest <= 0:
        return 0
    return max(2, round(BAR_AREA * value / largest))


def paired_bars(
    rows: Sequence[tuple[str, int, int]], series: tuple[str, str] = ("real", "virtual")
) -> BarChart:
    """Two bars a row (e.g. real and virtual hosts per OS), on one scale."""
    largest = max((max(a, b) for _, a, b in rows), default=0)
    bars = []
    for index, (label, first, second) in enumerate(rows):
        top = index * (2 * ROW + GAP)
        for offset, (value, name) in enumerate(((first, series[0]), (second, series[1]))):
            bars.append(
                Bar(label, value, name, LABEL_WIDTH, top + offset * ROW, _width(value, largest), ROW - 4)
            )
    return BarChart(
        tuple(bars), LABEL_WIDTH + BAR_AREA + 60, max(ROW, len(rows) * 2 * ROW), LABEL_WIDTH - 8, series
    )


def simple_bars(rows: Sequence[tuple[str, int]]) -> BarChart:
    """One bar a row, its series named after its label (e.g. findings per risk)."""
    largest = max((value for _, value in rows), default=0)
    bars = tuple(
        Bar(label, value, label, LABEL_WIDTH, index * ROW, _width(value, largest), ROW - 4)
        for index, (label, value) in enumerate(rows)
    )
    return BarChart(bars, LABEL_WIDTH + BAR_AREA + 60, max(ROW, len(rows) * ROW), LABEL_WIDTH - 8, ())
