"""Small inline-SVG charts drawn by hand: no scripts, no network, so a page works anywhere and
its drawing can be checked by counting elements. Every label passes through `html.escape`."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

WIDTH, HEIGHT = 520, 340
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 44


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


@dataclass(frozen=True)
class Axis:
    low: float
    high: float
    start: float  # pixel of `low`
    end: float  # pixel of `high`

    @classmethod
    def fit(cls, values: Sequence[float], start: float, end: float) -> "Axis":
        finite = [v for v in values if math.isfinite(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = (high - low) * 0.05 or (abs(high) * 0.05 or 0.5)
        return cls(low - pad, high + pad, start, end)

    def px(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # tooltip text
    css: str  # class of the circle
    key: str  # data-trial value


def _frame(x: Axis, y: Axis, x_label: str, y_label: str, title: str) -> list[str]:
    out = [f'<text x="{WIDTH / 2:.0f}" y="18" text-anchor="middle" class="title">{esc(title)}</text>',
           f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{WIDTH - MARGIN_LEFT - MARGIN_RIGHT}" '
           f'height="{HEIGHT - MARGIN_TOP - MARGIN_BOTTOM}" class="plot"/>']
    for t in nice_ticks(x.low, x.high):
        px = x.px(t)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{HEIGHT - MARGIN_BOTTOM}" y2="{HEIGHT - MARGIN_BOTTOM + 4}" '
                   f'class="tick"/><text x="{px:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle" '
                   f'class="ticklabel">{esc(f"{t:.4g}")}</text>')
    for t in nice_ticks(y.low, y.high):
        py = y.px(t)
        out.append(f'<line x1="{MARGIN_LEFT - 4}" x2="{MARGIN_LEFT}" y1="{py:.1f}" y2="{py:.1f}" class="tick"/>'
                   f'<text x="{MARGIN_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" class="ticklabel">'
                   f'{esc(f"{t:.4g}")}</text>')
    out.append(f'<text x="{(MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle" '
               f'class="axislabel">{esc(x_label)}</text>')
    out.append(f'<text transform="translate(14 {(MARGIN_TOP + HEIGHT - MARGIN_BOTTOM) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle" class="axislabel">{esc(y_label)}</text>')
    return out


def _axes(xs: Sequence[float], ys: Sequence[float]) -> tuple[Axis, Axis]:
    x = Axis.fit(xs, MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    y = Axis.fit(ys, HEIGHT - MARGIN_BOTTOM, MARGIN_TOP)  # pixels grow downwards
    return x, y


def scatter(points: Sequence[Point], staircase: Sequence[tuple[float, float]], x_label: str, y_label: str,
            title: str, svg_id: str) -> str:
    """A scatter of `points` (one <circle> each) with an optional step line through `staircase`."""
    x, y = _axes([p.x for p in points], [p.y for p in points])
    out = [f'<svg id="{esc(svg_id)}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}">', *_frame(x, y, x_label, y_label, title)]
    if len(staircase) > 1:
        ordered = sorted(staircase)
        path = [f"M{x.px(ordered[0][0]):.1f},{y.px(ordered[0][1]):.1f}"]
        for (_, y0), (x1, y1) in zip(ordered, ordered[1:]):
            path.append(f"H{x.px(x1):.1f}V{y.px(y1):.1f}")
        out.append(f'<path d="{"".join(path)}" class="staircase"/>')
    for p in points:
        out.append(f'<circle cx="{x.px(p.x):.1f}" cy="{y.px(p.y):.1f}" r="{5 if p.css == "front" else 3.5}" '
                   f'class="{esc(p.css)}" data-trial="{esc(p.key)}"><title>{esc(p.label)}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


def line_chart(values: Sequence[float], x_label: str, y_label: str, title: str, svg_id: str) -> str:
    """A polyline of `values` against 1..n (one vertex per value)."""
    steps = list(range(1, len(values) + 1))
    x, y = _axes(steps or [1], list(values) or [0.0])
    out = [f'<svg id="{esc(svg_id)}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(title)}">', *_frame(x, y, x_label, y_label, title)]
    if values:
        pts = " ".join(f"{x.px(i):.1f},{y.px(v):.1f}" for i, v in zip(steps, values))
        out.append(f'<polyline points="{pts}" class="trace" data-count="{len(values)}"/>')
    out.append("</svg>")
    return "\n".join(out)
