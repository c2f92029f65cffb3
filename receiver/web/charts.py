"""Geometry for the UI's small SVG charts, computed here so the templates only draw.

Charts are inline SVG with plain attributes (no inline styles, no script), so the strict
Content-Security-Policy holds and they render without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 240.0, 48.0
PAD = 2.0


@dataclass(frozen=True)
class Line:
    labels: dict[str, str]
    points: str  # "x,y x,y ..." for <polyline points=...>
    last: float


@dataclass(frozen=True)
class Sparkline:
    lines: list[Line]
    low: float
    high: float
    range_minutes: int
    width: float = WIDTH
    height: float = HEIGHT


def sparkline(series: list[dict[str, Any]] | None, range_seconds: float) -> Sparkline | None:
    """Lines for a context item's series over [-range_seconds, 0]; None when nothing to draw."""
    lines = [s for s in series or [] if s.get("points")]
    if not lines or range_seconds <= 0:
        return None
    values = [v for s in lines for _, v in s["points"]]
    low, high = min(0.0, min(values)), max(values)
    span = (high - low) or 1.0

    def x(offset: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * (1 + max(-range_seconds, min(0.0, offset)) / range_seconds)

    def y(value: float) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (1 - (value - low) / span)

    drawn = [
        Line(
            dict(s.get("labels") or {}),
            " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s["points"]),
            s["points"][-1][1],
        )
        for s in lines
    ]
    return Sparkline(drawn, low, high, round(range_seconds / 60))


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float


def bars(counts: list[tuple[str, int]], width: float = 600.0, height: float = 120.0) -> list[Bar]:
    """One bar per (label, count), scaled to the largest count."""
    if not counts:
        return []
    peak = max(n for _, n in counts) or 1
    step = width / len(counts)
    return [
        Bar(
            label,
            n,
            round(i * step + 1, 1),
            round(height - height * n / peak, 1),
            round(max(step - 2, 1), 1),
            round(height * n / peak, 1),
        )
        for i, (label, n) in enumerate(counts)
    ]
