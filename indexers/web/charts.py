"""Layout of the KPI line charts: pure geometry, rendered as SVG by the template.

One chart per metric; one line per key (trunk, IP); a bucket with no value breaks the line rather than
drawing it through zero. The y axis starts at 0 and ends at a round number (100 for percentages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from indexers.web.ladder import COLORS

W, H = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 14, 14, 28


@dataclass(frozen=True)
class Line:
    key: str
    color: str
    paths: list[str]
    """SVG polyline ``points`` strings, one per unbroken run."""
    dots: list[tuple[float, float]]
    """Lone points (a run of one bucket) drawn as dots."""


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    width: int
    height: int
    lines: list[Line]
    yticks: list[tuple[float, str]]
    xticks: list[tuple[float, str]]
    plot: tuple[float, float, float, float]
    """x0, y0, x1, y1 of the plot area."""
    empty: bool


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.2g}"


def chart(title: str, unit: str, series: list[tuple[str, list[tuple[float, float | None]]]],
          t0: float, t1: float, percent: bool = False) -> Chart:
    x0, y0, x1, y1 = LEFT, TOP, W - RIGHT, H - BOTTOM
    values = [v for _, pts in series for _, v in pts if v is not None]
    top = 100.0 if percent else nice_max(max(values, default=0.0))
    span = max(t1 - t0, 1.0)
    sx = lambda t: x0 + (t - t0) / span * (x1 - x0)
    sy = lambda v: y1 - min(v, top) / top * (y1 - y0)
    lines = []
    for i, (key, pts) in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for t, v in pts:
            if v is None:
                if runs[-1]:
                    runs.append([])
            else:
                runs[-1].append((sx(t), sy(v)))
        paths = [" ".join(f"{x:.1f},{y:.1f}" for x, y in r) for r in runs if len(r) > 1]
        dots = [r[0] for r in runs if len(r) == 1]
        lines.append(Line(key, COLORS[i % len(COLORS)], paths, dots))
    yticks = [(sy(top * f), _fmt(top * f)) for f in (0, 0.25, 0.5, 0.75, 1.0)]
    fmt = "%H:%M" if span <= 86400 else "%d %b %H:%M"
    xticks = [(sx(t0 + span * f), datetime.fromtimestamp(t0 + span * f, UTC).strftime(fmt)) for f in (0, 0.25, 0.5, 0.75, 1.0)]
    return Chart(title, unit, W, H, lines, yticks, xticks, (x0, y0, x1, y1), not values)
