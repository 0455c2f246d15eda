"""Charts drawn on the server as inline SVG: no script, no external asset, readable by a
screen reader (each has a <title> and <desc>) and by tests. Every chart has a fixed viewBox
and scales to its container; every piece of text is escaped. The page puts a table with the
same numbers right after each chart.

- `interval_chart`: estimates with interval bars per category (pass rate and mean score by version).
- `box_plot`: one horizontal box per row, in panels side by side (latency and cost by model).
- `daily_chart`: panels of bars or lines over days sharing one time axis (production traffic).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from evaluations.analytics import Distribution

WIDTH = 720
MAX_X_LABELS = 12  # beyond this, only every n-th category or day is labelled


@dataclass(frozen=True)
class IntervalPoint:
    estimate: float
    low: float
    high: float
    note: str  # what a pointer shows over the point


@dataclass(frozen=True)
class IntervalSeries:
    name: str
    css: str
    points: Sequence[IntervalPoint | None]  # one per category; None: nothing to draw there


@dataclass(frozen=True)
class BoxPanel:
    name: str
    boxes: Sequence[Distribution | None]  # one per row
    format: Callable[[float], str]


@dataclass(frozen=True)
class DayPanel:
    name: str
    kind: Literal["bar", "line"]
    css: str
    values: Sequence[float | None]  # one per day; None: no value that day
    format: Callable[[float], str]


def interval_chart(*, chart_id: str, title: str, desc: str, categories: Sequence[tuple[str, str]],
                   series: Sequence[IntervalSeries], y_max: float = 1.0) -> SafeString:  # fmt: skip
    """Each series' estimates as points with interval bars over the categories (each a label
    and a second line, say a version and its date), joined by a line; y from 0 to y_max."""
    height, left, right, top, bottom = 300, 48, 16, 34, 46
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    slot = plot_w / max(len(categories), 1)
    y = _scale(0, y_max, top + plot_h, top)
    body = _y_grid(y, [y_max * i / 4 for i in range(5)], lambda v: f"{v:g}", left, WIDTH - right)
    body += _legend([(s.name, s.css) for s in series], left, 16)
    for index, (label, sublabel) in enumerate(categories):
        if _labelled(index, len(categories)):
            x = left + slot * (index + 0.5)
            body.append(f'<text class="tick x-label" x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(label)}'
                        f'<tspan x="{x:.1f}" dy="14" class="muted">{escape(sublabel)}</tspan></text>')  # fmt: skip
    offset = min(8.0, slot / 5)
    for number, line in enumerate(series):
        dx = (number - (len(series) - 1) / 2) * offset
        trend = []
        for index, point in enumerate(line.points):
            if point is None:
                continue
            x = left + slot * (index + 0.5) + dx
            trend.append(f"{x:.1f},{y(point.estimate):.1f}")
            body.append(
                f'<g class="point {escape(line.css)}" data-category="{escape(categories[index][0])}"><title>{escape(point.note)}</title>'
                f'<line class="interval" x1="{x:.1f}" x2="{x:.1f}" y1="{y(point.low):.1f}" y2="{y(point.high):.1f}"/>'
                f'<line class="cap" x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y(point.low):.1f}" y2="{y(point.low):.1f}"/>'
                f'<line class="cap" x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y(point.high):.1f}" y2="{y(point.high):.1f}"/>'
                f'<circle class="estimate" cx="{x:.1f}" cy="{y(point.estimate):.1f}" r="4"/></g>'
            )  # fmt: skip
        if len(trend) > 1:
            body.insert(0, f'<polyline class="trend {escape(line.css)}" points="{" ".join(trend)}"/>')
    return _svg(chart_id, title, desc, height, body)


def box_plot(*, chart_id: str, title: str, desc: str, rows: Sequence[str], panels: Sequence[BoxPanel]) -> SafeString:
    """Panels side by side, one horizontal box per row in each: whiskers from minimum to
    maximum, the box from p25 to p75, a line at the median and a diamond at p95."""
    label_w, gap, row_h, top, bottom = 170, 24, 30, 40, 30
    height = top + row_h * len(rows) + bottom
    panel_w = (WIDTH - label_w - gap * len(panels)) / max(len(panels), 1)
    body = [
        f'<text class="row-label" x="{label_w - 8}" y="{top + row_h * (index + 0.5) + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        for index, label in enumerate(rows)
    ]
    for number, panel in enumerate(panels):
        x0 = label_w + number * (panel_w + gap)
        high = _nice_ceiling(max((box.maximum for box in panel.boxes if box is not None), default=0))
        x = _scale(0, high, x0, x0 + panel_w)
        body.append(f'<text class="panel-title" x="{x0:.1f}" y="{top - 22}">{escape(panel.name)}</text>')
        for value, anchor in ((0, "start"), (high / 2, "middle"), (high, "end")):  # edge labels stay inside their panel
            body.append(f'<line class="grid" x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top - 6}" y2="{height - bottom}"/>'
                        f'<text class="tick" x="{x(value):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}">{escape(panel.format(value))}</text>')  # fmt: skip
        for index, box in enumerate(panel.boxes):
            if box is None:
                continue
            mid = top + row_h * (index + 0.5)
            note = (f"{rows[index]}, {panel.name}: min {panel.format(box.minimum)}, p25 {panel.format(box.p25)}, "
                    f"median {panel.format(box.p50)}, p75 {panel.format(box.p75)}, p95 {panel.format(box.p95)}, max {panel.format(box.maximum)}")  # fmt: skip
            body.append(
                f'<g class="box" data-row="{escape(rows[index])}"><title>{escape(note)}</title>'
                f'<line class="whisker" x1="{x(box.minimum):.1f}" x2="{x(box.maximum):.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>'
                f'<line class="whisker" x1="{x(box.minimum):.1f}" x2="{x(box.minimum):.1f}" y1="{mid - 6:.1f}" y2="{mid + 6:.1f}"/>'
                f'<line class="whisker" x1="{x(box.maximum):.1f}" x2="{x(box.maximum):.1f}" y1="{mid - 6:.1f}" y2="{mid + 6:.1f}"/>'
                f'<rect class="iqr" x="{x(box.p25):.1f}" y="{mid - 9:.1f}" width="{max(x(box.p75) - x(box.p25), 1):.1f}" height="18"/>'
                f'<line class="median" x1="{x(box.p50):.1f}" x2="{x(box.p50):.1f}" y1="{mid - 9:.1f}" y2="{mid + 9:.1f}"/>'
                f'<path class="p95" d="M{x(box.p95):.1f},{mid - 5:.1f} l5,5 l-5,5 l-5,-5 z"/></g>'
            )  # fmt: skip
    return _svg(chart_id, title, desc, height, body)


def daily_chart(*, chart_id: str, title: str, desc: str, days: Sequence[date], panels: Sequence[DayPanel]) -> SafeString:
    """Panels stacked over one time axis, each with its own scale from 0: bars (one per day,
    zero-high on days without) or a dot on each day that has a value, joined to the next day's."""
    left, right, top, panel_h, gap, bottom = 72, 16, 8, 72, 30, 30
    height = top + len(panels) * (panel_h + gap) + bottom
    slot = (WIDTH - left - right) / max(len(days), 1)
    body = []
    for number, panel in enumerate(panels):
        y0 = top + number * (panel_h + gap) + gap
        high = _nice_ceiling(max((v for v in panel.values if v is not None), default=0))
        y = _scale(0, high, y0 + panel_h, y0)
        body.append(f'<text class="panel-title" x="{left}" y="{y0 - 8}">{escape(panel.name)}</text>')
        body += _y_grid(y, [0, high], panel.format, left, WIDTH - right)
        lines = [[]]  # a line breaks on days without a value rather than bridging them
        for index, (day, value) in enumerate(zip(days, panel.values, strict=True)):
            x = left + slot * (index + 0.5)
            note = f"{day.isoformat()}: {panel.format(value) if value is not None else 'no value'}"
            if panel.kind == "bar":
                top_y = y(value or 0)
                body.append(f'<rect class="bar {escape(panel.css)}" data-day="{day.isoformat()}" x="{x - slot * 0.35:.1f}" y="{top_y:.1f}" '
                            f'width="{slot * 0.7:.1f}" height="{y0 + panel_h - top_y:.1f}"><title>{escape(note)}</title></rect>')  # fmt: skip
            elif value is None:
                lines.append([])
            else:
                lines[-1].append(f"{x:.1f},{y(value):.1f}")
                body.append(f'<circle class="dot {escape(panel.css)}" data-day="{day.isoformat()}" cx="{x:.1f}" cy="{y(value):.1f}" r="3">'
                            f"<title>{escape(note)}</title></circle>")  # fmt: skip
        body += [f'<polyline class="trend {escape(panel.css)}" points="{" ".join(line)}"/>' for line in lines if len(line) > 1]
    for index, day in enumerate(days):
        if _labelled(index, len(days)):
            body.append(f'<text class="tick x-label" x="{left + slot * (index + 0.5):.1f}" y="{height - 10}" text-anchor="middle">'
                        f"{day:%b} {day.day}</text>")  # fmt: skip
    return _svg(chart_id, title, desc, height, body)


def _svg(chart_id: str, title: str, desc: str, height: int, body: list[str]) -> SafeString:
    chart_id = escape(chart_id)
    return mark_safe(
        f'<svg id="{chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc"><title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>{"".join(body)}</svg>'
    )  # every piece of text above went through escape()


def _scale(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    """Maps [low, high] onto [start, end] (either way round), clamping what falls outside."""
    span = (high - low) or 1.0
    return lambda value: start + (end - start) * min(max((value - low) / span, 0.0), 1.0)


def _y_grid(y: Callable[[float], float], values: Sequence[float], label: Callable[[float], str], x1: float, x2: float) -> list[str]:
    return [
        f'<line class="grid" x1="{x1}" x2="{x2}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
        f'<text class="tick" x="{x1 - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(label(v))}</text>'
        for v in values
    ]


def _legend(entries: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for name, css in entries:
        parts.append(f'<g class="legend {escape(css)}"><circle class="estimate" cx="{x + 5}" cy="{y - 4}" r="4"/>'
                     f'<text x="{x + 14}" y="{y}">{escape(name)}</text></g>')  # fmt: skip
        x += 24 + 7 * len(name)
    return parts


def _labelled(index: int, count: int) -> bool:
    """Whether the index-th of count ticks gets a label: all of them up to MAX_X_LABELS, else
    every n-th counted back from the newest, so the newest is always labelled."""
    return (count - 1 - index) % max(1, math.ceil(count / MAX_X_LABELS)) == 0


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten at or above the value (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if value <= step * power * (1 + 1e-9))
