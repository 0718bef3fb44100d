"""A time series as a server-rendered SVG column chart (events per bucket of the report's period).

Like `charts`, the geometry is computed here and the template only draws it: `<rect>`s with
presentation attributes, no inline style and no script, as the Content-Security-Policy wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "ColumnChart", "columns"]

WIDTH = 720
HEIGHT = 160
LEFT = 48  # room for the scale's labels
BOTTOM = 20  # room for the first and last bucket's times


@dataclass(frozen=True)
class Column:
    """One bucket: its start (as shown), its value, and where it is drawn."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class ColumnChart:
    columns: tuple[Column, ...]
    width: int
    height: int
    plot_height: int
    left: int
    largest: int
    first: str
    last: str


def columns(points: Sequence[tuple[str, int]]) -> ColumnChart:
    """Columns for (label, value) points in time order, scaled to the largest value."""
    largest = max((value for _, value in points), default=0)
    plot = HEIGHT - BOTTOM
    step = (WIDTH - LEFT) / max(len(points), 1)
    drawn = []
    for index, (label, value) in enumerate(points):
        height = 0.0 if largest <= 0 or value <= 0 else max(1.0, plot * value / largest)
        drawn.append(
            Column(
                label,
                value,
                round(LEFT + index * step, 2),
                round(plot - height, 2),
                round(max(step - 1, 0.5), 2),
                round(height, 2),
            )
        )
    return ColumnChart(
        tuple(drawn),
        WIDTH,
        HEIGHT,
        plot,
        LEFT,
        largest,
        points[0][0] if points else "",
        points[-1][0] if points else "",
    )
