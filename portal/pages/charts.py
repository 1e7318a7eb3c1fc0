"""Charts for the portal's pages, drawn on the server as inline SVG.

The pages run under a Content-Security-Policy that allows no script and no inline style, so a
chart is a finished ``<svg>`` element: no JavaScript, no ``style`` attribute, no ``<style>``
element. Every function is pure and returns :class:`markupsafe.Markup` that a Jinja2 template
can print as it is; every piece of caller text (titles, names, labels, formatted numbers) is
escaped. Numbers and dates are turned into words only by the caller's format functions, and the
message for a chart with no data is the caller's too, so a translated page shows no English.

Accessibility: the ``<svg>`` has ``role="img"`` and ``aria-labelledby`` naming its ``<title>``
and its ``<desc>``, which summarises the data in words (the last value of each line, every bar,
the parts of the last bucket). Each mark (point, bar, bar part) carries a ``<title>`` child,
shown when hovered, and ``data-value`` (the number as given) so browser tests can compare a
chart with the API. The ``viewBox`` and ``width="100%"`` let the chart scale with the page.

Colour comes from the page stylesheet, through the CSS classes below. Marks paint with
``currentColor``, so a class may set only ``color``, or ``fill`` and ``stroke`` directly. A line
series' colour class sits on the ``<g>`` holding its line and markers (the line is
``fill="none"``), so a rule filling ``chart-series-N`` colours the markers, not the area under
the line. Text inherits ``currentColor`` unless the stylesheet sets ``svg.chart text``.

=======================  ==============================================================
``chart``                the ``<svg>`` element; text inherits its ``color``
``chart-empty``          the message shown when there is nothing to chart
``chart-axis``           axis lines (and the zero line)
``chart-tick``           tick labels on the axes
``chart-grid``           grid lines behind the data
``chart-axis-label``     the caller's ``y_label`` (or ``value_label``) text
``chart-legend``         the legend group; ``chart-swatch`` its colour keys, each also
                         carrying its series' or part's class; ``chart-legend-name`` the names
``chart-series``         the group of one line series, with the series' colour class
``chart-line``           a line series' path; ``chart-projection`` when it is dashed
``chart-point``          a line series' point markers
``chart-series-0..7``    the colour of the n-th series when the caller gives none
``chart-entitled``       suggested class for a fair-share entitlement series
``chart-used``           suggested class for a usage series
``chart-stack``          the group of one stacked bar; ``chart-segment`` each of its parts
``chart-allocated``      suggested class for allocated GPU-hours
``chart-idle``           suggested class for idle GPU-hours
``chart-down``           suggested class for GPU-hours lost to down nodes
``chart-bar``            a horizontal bar; ``chart-bar-value`` the value written beside it
=======================  ==============================================================

Ids: each chart's ids start with its ``chart_id``; without one, the id is derived from a hash of
the kind of chart and its title, so two charts with the same title on one page need ``chart_id``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, datetime, timedelta
from typing import Final, Generic, NamedTuple, TypeVar

from markupsafe import Markup, escape

X = TypeVar("X", datetime, float)
"""The kind of x value a line chart plots: all datetimes or all numbers."""

ValueFormat = Callable[[float], str]
"""Turns a value into the words a page shows (locale, units and rounding are the page's)."""

PALETTE_SIZE: Final = 8
"""How many ``chart-series-N`` classes the stylesheet defines; series beyond reuse them."""

VIEW_WIDTH: Final = 640.0
"""The width of every chart's coordinate system; the page scales it to fit."""

FONT_SIZE: Final = 12.0
CHAR_WIDTH: Final = 0.6 * FONT_SIZE
"""An average character's width: enough to keep labels from overlapping, not to typeset."""

ROW: Final = 18.0
"""The height of a line of text (legend rows, axis labels)."""

PAD: Final = 8.0


@dataclass(frozen=True)
class Series(Generic[X]):
    """One named line: its points, and optionally its own CSS class or a dashed stroke.

    ``css_class`` is for series with a meaning of their own (``chart-entitled``,
    ``chart-used``); without it the n-th series gets ``chart-series-n``. ``dashed`` draws a
    projection, such as where a credit burn-down is heading.
    """

    name: str
    points: Sequence[tuple[X, float]]
    css_class: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Part:
    """One kind of quantity stacked in every bucket of a stacked bar chart."""

    name: str
    css_class: str


@dataclass(frozen=True)
class Bucket:
    """One stacked bar: its label (already formatted by the caller) and a value per part."""

    label: str
    values: Sequence[float]


# ---------------------------------------------------------------------------------------------
# The charts


def line_chart(
    title: str,
    series: Sequence[Series[X]],
    *,
    x_format: Callable[[X], str],
    y_format: ValueFormat,
    empty_message: str,
    y_label: str = "",
    description: str = "",
    chart_id: str | None = None,
    height: float = 300.0,
) -> Markup:
    """Lines of (x, y) points over a time or number axis, with a point marker per value.

    The y axis always includes zero, so negative values (refunded credits) show below it.
    ``description`` opens the ``<desc>``, which goes on with each series' last value.
    """
    ids = _Ids.of("line", title, chart_id)
    drawn = [
        (index, item, sorted(item.points, key=lambda point: _position(point[0])))
        for index, item in enumerate(series)
        if item.points
    ]
    if not drawn:
        return _empty_chart(ids, title, empty_message, height)
    all_points = [point for _, _, points in drawn for point in points]
    _check_finite(y for _, y in all_points)
    _check_same_kind([x for x, _ in all_points])

    summary = "; ".join(
        f"{item.name}: {y_format(points[-1][1])} ({x_format(points[-1][0])})"
        for _, item, points in drawn
    )
    legend_items = [
        _LegendItem(item.name, _series_class(index, item.css_class), item.dashed)
        for index, item, _ in drawn
    ]
    y_ticks = _value_ticks(min(y for _, y in all_points), max(y for _, y in all_points))
    y_labels = [y_format(tick) for tick in y_ticks]
    xs = [x for x, _ in all_points]
    first_x, last_x = min(xs, key=_position), max(xs, key=_position)
    left = max(_label_margin(y_labels), PAD + _text_width(x_format(first_x)) / 2)
    legend, legend_height = _legend(legend_items, left, _top(y_label))
    plot = _Plot(
        left=left,
        right=VIEW_WIDTH - PAD - _text_width(x_format(last_x)) / 2,
        top=_top(y_label) + legend_height + PAD,
        bottom=height - PAD - ROW,
    )
    x_axis = _x_axis(first_x, last_x, x_format, plot)
    y_scale = _Scale(y_ticks[0], y_ticks[-1], plot.bottom, plot.top)

    marks: list[Markup] = [
        _series_marks(index, item, points, x_axis.scale, y_scale, x_format, y_format)
        for index, item, points in drawn
    ]
    body = [
        _y_axis(y_ticks, y_labels, y_scale, plot),
        x_axis.markup,
        _axis_label(y_label, left),
        legend,
        _hline(y_scale(0.0), plot, "chart-axis"),
        *marks,
    ]
    return _svg(ids, title, _join_sentences(description, summary), height, body)


def stacked_bar_chart(
    title: str,
    parts: Sequence[Part],
    buckets: Sequence[Bucket],
    *,
    y_format: ValueFormat,
    empty_message: str,
    y_label: str = "",
    description: str = "",
    chart_id: str | None = None,
    height: float = 300.0,
) -> Markup:
    """One vertical bar per bucket, split into the parts (allocated, idle, down GPU-hours).

    Positive parts stack up from zero in the order given and negative ones down from it, so a
    bar's height is the sum of its parts. ``<desc>`` goes on with the parts of the last bucket.
    """
    ids = _Ids.of("stacked", title, chart_id)
    if not buckets or not parts:
        return _empty_chart(ids, title, empty_message, height)
    for bucket in buckets:
        if len(bucket.values) != len(parts):
            raise ValueError(
                f"bucket {bucket.label!r} has {len(bucket.values)} values for {len(parts)} parts"
            )
        _check_finite(bucket.values)

    last = buckets[-1]
    summary = f"{last.label}: " + ", ".join(
        f"{part.name} {y_format(value)}" for part, value in zip(parts, last.values, strict=True)
    )
    tops = [sum(v for v in bucket.values if v > 0) for bucket in buckets]
    bottoms = [sum(v for v in bucket.values if v < 0) for bucket in buckets]
    y_ticks = _value_ticks(min(bottoms), max(tops))
    y_labels = [y_format(tick) for tick in y_ticks]
    left = _label_margin(y_labels)
    legend, legend_height = _legend(
        [_LegendItem(part.name, part.css_class) for part in parts], left, _top(y_label)
    )
    plot = _Plot(
        left=left,
        right=VIEW_WIDTH - PAD,
        top=_top(y_label) + legend_height + PAD,
        bottom=height - PAD - ROW,
    )
    y_scale = _Scale(y_ticks[0], y_ticks[-1], plot.bottom, plot.top)
    slot = plot.width / len(buckets)
    bar_width = slot * 0.7

    bars: list[Markup] = []
    for position, bucket in enumerate(buckets):
        x = plot.left + slot * position + (slot - bar_width) / 2
        above = below = 0.0
        segments: list[Markup] = []
        for part, value in zip(parts, bucket.values, strict=True):
            start = above if value >= 0 else below
            end = start + value
            if value >= 0:
                above = end
            else:
                below = end
            tip = f"{bucket.label}, {part.name}: {y_format(value)}"
            segments.append(
                _element(
                    "rect",
                    {
                        "class": f"chart-segment {part.css_class}",
                        "x": _px(x),
                        "y": _px(min(y_scale(start), y_scale(end))),
                        "width": _px(bar_width),
                        "height": _px(abs(y_scale(start) - y_scale(end))),
                        "fill": "currentColor",
                        "data-label": bucket.label,
                        "data-part": part.name,
                        "data-value": _data_number(value),
                    },
                    _element("title", {}, tip),
                )
            )
        bars.append(_element("g", {"class": "chart-stack"}, *segments))

    body = [
        _y_axis(y_ticks, y_labels, y_scale, plot),
        _category_labels([bucket.label for bucket in buckets], plot, slot),
        _axis_label(y_label, left),
        legend,
        *bars,
        _hline(y_scale(0.0), plot, "chart-axis"),
    ]
    return _svg(ids, title, _join_sentences(description, summary), height, body)


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    value_format: ValueFormat,
    empty_message: str,
    value_label: str = "",
    description: str = "",
    chart_id: str | None = None,
    bar_class: str = "chart-series-0",
) -> Markup:
    """Horizontal bars, one per (label, value), in the order given, each with its value beside it.

    Bars grow right from zero, or left for negative values. The chart is as tall as its bars
    need; long labels are shortened on the axis and given whole in each bar's tooltip.
    """
    ids = _Ids.of("bar", title, chart_id)
    if not bars:
        return _empty_chart(ids, title, empty_message, 120.0)
    _check_finite(value for _, value in bars)

    summary = "; ".join(f"{label}: {value_format(value)}" for label, value in bars)
    values = [value for _, value in bars]
    label_width = min(max(_text_width(label) for label, _ in bars), VIEW_WIDTH * 0.3)
    value_width = max(_text_width(value_format(value)) for value in values)
    plot_left = PAD + label_width + PAD
    plot_right = VIEW_WIDTH - PAD - value_width - PAD
    if min(values) < 0:
        plot_left += value_width + PAD
    row = 24.0
    top = _top(value_label)
    height = top + row * len(bars) + ROW + PAD
    plot = _Plot(left=plot_left, right=plot_right, top=top, bottom=top + row * len(bars))
    ticks = _fitting_value_ticks(min(values), max(values), value_format, plot.width)
    scale = _Scale(ticks[0], ticks[-1], plot.left, plot.right)

    rows: list[Markup] = []
    for position, (label, value) in enumerate(bars):
        y = plot.top + row * position
        zero, end = scale(0.0), scale(value)
        tip = f"{label}: {value_format(value)}"
        rect = _element(
            "rect",
            {
                "class": f"chart-bar {bar_class}",
                "x": _px(min(zero, end)),
                "y": _px(y + row * 0.15),
                "width": _px(abs(end - zero)),
                "height": _px(row * 0.7),
                "fill": "currentColor",
                "data-label": label,
                "data-value": _data_number(value),
            },
            _element("title", {}, tip),
        )
        middle = y + row / 2
        name = _text("chart-tick", PAD + label_width, middle, _shorten(label, label_width), "end")
        written = (
            _text("chart-bar-value", end + PAD, middle, value_format(value))
            if value >= 0
            else _text("chart-bar-value", end - PAD, middle, value_format(value), "end")
        )
        rows.append(_element("g", {}, name, rect, written))

    grid = [_line("chart-grid", scale(t), plot.top, scale(t), plot.bottom) for t in ticks]
    tick_labels = [
        _text("chart-tick", scale(tick), plot.under, value_format(tick), "middle") for tick in ticks
    ]
    zero_line = _line("chart-axis", scale(0.0), plot.top, scale(0.0), plot.bottom)
    body = [
        _element("g", {"class": "chart-grid-lines"}, *grid),
        _element("g", {"class": "chart-ticks"}, *tick_labels),
        _axis_label(value_label, plot.left),
        *rows,
        zero_line,
    ]
    return _svg(ids, title, _join_sentences(description, summary), height, body)


# ---------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class _Plot:
    """The rectangle the data is drawn in, in viewBox units."""

    left: float
    right: float
    top: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def under(self) -> float:
        """The middle of the row of tick labels under the plot."""
        return self.bottom + ROW / 2 + 2


@dataclass(frozen=True)
class _Scale:
    """Maps a value in ``[low, high]`` linearly onto the pixels ``[start, end]``."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.high == self.low:
            return (self.start + self.end) / 2
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


@dataclass(frozen=True)
class _LegendItem:
    name: str
    css_class: str
    dashed: bool = False


class _Ids(NamedTuple):
    chart: str

    @classmethod
    def of(cls, kind: str, title: str, chart_id: str | None) -> _Ids:
        if chart_id is None:
            digest = hashlib.sha256(f"{kind}\0{title}".encode()).hexdigest()[:12]
            return cls(f"chart-{digest}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", chart_id):
            raise ValueError(f"chart_id {chart_id!r} is not a plain HTML id")
        return cls(chart_id)

    @property
    def title(self) -> str:
        return f"{self.chart}-title"

    @property
    def desc(self) -> str:
        return f"{self.chart}-desc"


class _XAxis(NamedTuple):
    scale: _Scale
    markup: Markup


def _top(axis_label: str) -> float:
    """Where the legend (or plot) starts: below the axis label when there is one."""
    return PAD + (ROW if axis_label else 0.0)


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def _label_margin(labels: Sequence[str]) -> float:
    """The left margin that fits the widest y tick label, within reason."""
    widest = max((_text_width(label) for label in labels), default=0.0)
    return PAD + min(max(widest, 3 * CHAR_WIDTH), VIEW_WIDTH * 0.3) + PAD


def _shorten(text: str, width: float) -> str:
    """``text``, cut with an ellipsis if it is wider than ``width``."""
    fits = max(int(width // CHAR_WIDTH), 1)
    return text if len(text) <= fits else text[: fits - 1] + "…"


def _legend(items: Sequence[_LegendItem], left: float, top: float) -> tuple[Markup, float]:
    """The legend, wrapped onto as many rows as it needs, and the height it takes."""
    entries: list[Markup] = []
    x, y = left, top
    for item in items:
        width = 14 + 6 + _text_width(item.name) + 16
        if x > left and x + width > VIEW_WIDTH - PAD:
            x, y = left, y + ROW
        swatch = _swatch(item, x, y + ROW / 2)
        text = _text("chart-legend-name", x + 20, y + ROW / 2, item.name)
        entries.append(_element("g", {}, swatch, text))
        x += width
    height = (y - top + ROW) if items else 0.0
    return _element("g", {"class": "chart-legend"}, *entries), height


def _swatch(item: _LegendItem, x: float, middle: float) -> Markup:
    """A legend key: a dash for a dashed line, a small block otherwise."""
    if item.dashed:
        return _element(
            "line",
            {
                "class": f"chart-swatch {item.css_class}",
                "x1": _px(x),
                "y1": _px(middle),
                "x2": _px(x + 14),
                "y2": _px(middle),
                "stroke": "currentColor",
                "stroke-width": "2",
                "stroke-dasharray": "4 3",
            },
        )
    return _element(
        "rect",
        {
            "class": f"chart-swatch {item.css_class}",
            "x": _px(x),
            "y": _px(middle - 5),
            "width": "14",
            "height": "10",
            "fill": "currentColor",
        },
    )


def _axis_label(text: str, left: float) -> Markup:
    if not text:
        return Markup()
    return _text("chart-axis-label", left, PAD + ROW / 2, text)


def _hline(y: float, plot: _Plot, css_class: str) -> Markup:
    return _line(css_class, plot.left, y, plot.right, y)


def _y_axis(ticks: Sequence[float], labels: Sequence[str], scale: _Scale, plot: _Plot) -> Markup:
    """Grid lines at each tick, their labels left of the plot, and the axis line."""
    grid = [_hline(scale(tick), plot, "chart-grid") for tick in ticks]
    texts = [
        _text("chart-tick", plot.left - PAD, scale(tick), label, "end")
        for tick, label in zip(ticks, labels, strict=True)
    ]
    return _element(
        "g",
        {"class": "chart-y-axis"},
        _element("g", {"class": "chart-grid-lines"}, *grid),
        _element("g", {"class": "chart-ticks"}, *texts),
        _line("chart-axis", plot.left, plot.top, plot.left, plot.bottom),
    )


def _x_axis(first: X, last: X, x_format: Callable[[X], str], plot: _Plot) -> _XAxis:
    """The x scale from the first to the last x, with ticks whose labels do not overlap."""
    low, high = _position(first), _position(last)
    scale = _Scale(low, high, plot.left, plot.right)
    ticks: list[X] = [first] if low == high else _fitting_x_ticks(first, last, x_format, plot)
    texts = [
        _text("chart-tick", scale(_position(tick)), plot.under, x_format(tick), "middle")
        for tick in ticks
    ]
    return _XAxis(scale, _element("g", {"class": "chart-x-axis"}, *texts))


def _category_labels(labels: Sequence[str], plot: _Plot, slot: float) -> Markup:
    """Bucket labels under their bars: every n-th one, so that they do not overlap."""
    widest = max(_text_width(label) for label in labels) + PAD
    every = max(1, math.ceil(widest / slot))
    texts = [
        _text("chart-tick", plot.left + slot * (position + 0.5), plot.under, label, "middle")
        for position, label in enumerate(labels)
        if position % every == 0
    ]
    return _element("g", {"class": "chart-x-axis"}, *texts)


def _series_marks(
    index: int,
    item: Series[X],
    points: Sequence[tuple[X, float]],
    x_scale: _Scale,
    y_scale: _Scale,
    x_format: Callable[[X], str],
    y_format: ValueFormat,
) -> Markup:
    """One series: its line, then a marker per point with the point's tooltip.

    The series' class sits on the group, whose colour the line and markers inherit, so that a
    stylesheet setting ``fill`` for the class cannot fill the area under the line.
    """
    coordinates = [(x_scale(_position(x)), y_scale(y)) for x, y in points]
    path = "M" + " L".join(f"{_px(x)} {_px(y)}" for x, y in coordinates)
    line_attributes = {
        "class": "chart-line chart-projection" if item.dashed else "chart-line",
        "d": path,
        "fill": "none",
        "stroke-width": "2",
    }
    if item.dashed:
        line_attributes["stroke-dasharray"] = "6 4"
    markers = [
        _element(
            "circle",
            {
                "class": "chart-point",
                "cx": _px(cx),
                "cy": _px(cy),
                "r": "3",
                "data-x": x.isoformat() if isinstance(x, datetime) else _data_number(x),
                "data-value": _data_number(y),
            },
            _element("title", {}, f"{item.name}, {x_format(x)}: {y_format(y)}"),
        )
        for (x, y), (cx, cy) in zip(points, coordinates, strict=True)
    ]
    return _element(
        "g",
        {
            "class": f"chart-series {_series_class(index, item.css_class)}",
            "data-series": item.name,
            "fill": "currentColor",
            "stroke": "currentColor",
        },
        _element("path", line_attributes),
        *markers,
    )


def _series_class(index: int, css_class: str | None) -> str:
    return css_class if css_class else f"chart-series-{index % PALETTE_SIZE}"


# ---------------------------------------------------------------------------------------------
# Ticks: values on 1-2-5 steps, times on calendar steps


class _Step(NamedTuple):
    """A tick step ``mantissa × 10^exponent``, kept apart so that ticks come out exact."""

    mantissa: int
    exponent: int

    def times(self, k: int) -> float:
        power: int = 10 ** abs(self.exponent)
        if self.exponent >= 0:
            return float(k * self.mantissa * power)
        return k * self.mantissa / power


def _nice_step(low: float, high: float, count: int) -> _Step:
    """The smallest 1, 2 or 5 × 10^n step that cuts ``[low, high]`` into at most ``count``."""
    raw = high / count - low / count  # divided first, so that huge spans do not overflow
    exponent = math.floor(math.log10(raw))
    for mantissa in (1, 2, 5):
        if _Step(mantissa, exponent).times(1) >= raw * (1 - 1e-9):
            return _Step(mantissa, exponent)
    return _Step(1, exponent + 1)


def _value_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Nice ticks covering ``[low, high]`` and zero; the first and last bound the axis."""
    low, high = min(low, 0.0), max(high, 0.0)
    if low == high:
        high = 1.0
    step = _nice_step(low, high, count)
    size = step.times(1)
    first = math.floor(low / size + 1e-9)
    last = math.ceil(high / size - 1e-9)
    return [step.times(k) for k in range(first, last + 1)]


def _fitting_value_ticks(
    low: float, high: float, value_format: ValueFormat, width: float
) -> list[float]:
    """Value ticks along a horizontal axis, as many as fit without their labels overlapping."""
    for count in (6, 5, 4, 3, 2):
        ticks = _value_ticks(low, high, count)
        if _labels_fit([value_format(tick) for tick in ticks], width):
            return ticks
    return _value_ticks(low, high, 1)


def _labels_fit(labels: Sequence[str], width: float) -> bool:
    spacing = width / max(len(labels) - 1, 1)
    return max(_text_width(label) for label in labels) + PAD <= spacing


def _fitting_x_ticks(first: X, last: X, x_format: Callable[[X], str], plot: _Plot) -> list[X]:
    """Ticks between the first and last x: the most that fit, on calendar or 1-2-5 steps.

    When no two such ticks fit, the first and last x are labelled instead (or only the first).
    """
    candidates: Iterable[list[X]]
    if isinstance(first, datetime) and isinstance(last, datetime):
        candidates = _time_tick_candidates(first, last)
    elif not isinstance(first, datetime) and not isinstance(last, datetime):
        candidates = _number_tick_candidates(first, last)
    else:
        raise ValueError("x values must be all datetimes or all numbers")
    for ticks in candidates:
        if len(ticks) >= 2 and _labels_fit([x_format(tick) for tick in ticks], plot.width):
            return ticks
    ends = [first, last]
    return ends if _labels_fit([x_format(end) for end in ends], plot.width) else [first]


def _number_tick_candidates(first: float, last: float) -> Iterator[list[float]]:
    for count in (10, 8, 6, 5, 4, 3, 2, 1):
        step = _nice_step(first, last, count)
        size = step.times(1)
        ks = range(math.ceil(first / size - 1e-9), math.floor(last / size + 1e-9) + 1)
        yield [step.times(k) for k in ks]


_TIME_UNITS: Final = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
    "month": 30.44 * 86400.0,
    "year": 365.25 * 86400.0,
}
"""Each calendar unit's rough length in seconds, to skip steps that would make too many ticks."""

_TIME_STEPS: Final = (
    *(("second", n) for n in (1, 5, 15, 30)),
    *(("minute", n) for n in (1, 5, 15, 30)),
    *(("hour", n) for n in (1, 3, 6, 12)),
    *(("day", n) for n in (1, 2)),
    ("week", 1),
    *(("month", n) for n in (1, 3, 6)),
    *(("year", mantissa * 10**power) for power in range(4) for mantissa in (1, 2, 5)),
)
"""Tick steps for a time axis, finest first; each divides the next unit evenly where it can."""


def _time_tick_candidates(first: datetime, last: datetime) -> Iterator[list[datetime]]:
    span = _position(last) - _position(first)
    for unit, count in _TIME_STEPS:
        if span / (_TIME_UNITS[unit] * count) > 12:
            continue
        ticks: list[datetime] = []
        tick = _floor_time(first, unit, count)
        while tick <= last:
            if tick >= first:
                ticks.append(tick)
            tick = _add_time(tick, unit, count)
        yield ticks


def _floor_time(moment: datetime, unit: str, count: int) -> datetime:
    """The last step boundary at or before ``moment``, in ``moment``'s own time zone."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("second", "minute", "hour"):
        size = int(_TIME_UNITS[unit]) * count
        seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
        floored = seconds // size * size
        return midnight.replace(
            hour=floored // 3600, minute=floored % 3600 // 60, second=floored % 60
        )
    if unit == "day":
        return midnight
    if unit == "week":
        return midnight - timedelta(days=moment.weekday())
    if unit == "month":
        months = (moment.year * 12 + moment.month - 1) // count * count
        return midnight.replace(year=months // 12, month=months % 12 + 1, day=1)
    return midnight.replace(year=max(moment.year // count * count, 1), month=1, day=1)


def _add_time(moment: datetime, unit: str, count: int) -> datetime:
    if unit in ("second", "minute", "hour", "day", "week"):
        return moment + timedelta(seconds=_TIME_UNITS[unit] * count)
    months = moment.year * 12 + moment.month - 1 + (count if unit == "month" else 12 * count)
    if months // 12 > MAXYEAR:
        return datetime.max.replace(tzinfo=moment.tzinfo)
    return moment.replace(year=months // 12, month=months % 12 + 1)


# ---------------------------------------------------------------------------------------------
# Values


def _position(x: datetime | float) -> float:
    """Where an x value lies on a line: seconds since the epoch for a datetime."""
    return x.timestamp() if isinstance(x, datetime) else float(x)


def _check_finite(values: Iterable[float]) -> None:
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"cannot chart {value!r}")


def _check_same_kind(xs: Sequence[datetime | float]) -> None:
    kinds = {isinstance(x, datetime) for x in xs}
    if len(kinds) > 1:
        raise ValueError("x values must be all datetimes or all numbers")


def _join_sentences(first: str, second: str) -> str:
    return f"{first} {second}" if first else second


def _data_number(value: float) -> str:
    """A value as ``data-value`` gives it: whole numbers without a decimal point."""
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def _px(value: float) -> str:
    """A coordinate, to two decimals without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# ---------------------------------------------------------------------------------------------
# SVG


def _element(tag: str, attributes: dict[str, str], *children: Markup | str) -> Markup:
    """An SVG element; attribute values and plain-string children are escaped."""
    rendered = Markup("").join(
        Markup(' {}="{}"').format(name, value) for name, value in attributes.items()
    )
    if not children:
        return Markup("<{}{} />").format(tag, rendered)
    inner = Markup("").join(escape(child) for child in children)
    return Markup("<{}{}>{}</{}>").format(tag, rendered, inner, tag)


def _line(css_class: str, x1: float, y1: float, x2: float, y2: float) -> Markup:
    return _element(
        "line",
        {
            "class": css_class,
            "x1": _px(x1),
            "y1": _px(y1),
            "x2": _px(x2),
            "y2": _px(y2),
            "stroke": "currentColor",
        },
    )


def _text(css_class: str, x: float, y: float, text: str, anchor: str = "start") -> Markup:
    """Text whose middle sits at height ``y`` (SVG places the baseline, a little lower)."""
    attributes = {"class": css_class, "x": _px(x), "y": _px(y + FONT_SIZE * 0.35)}
    if anchor != "start":
        attributes["text-anchor"] = anchor
    return _element("text", attributes, text)


def _svg(ids: _Ids, title: str, description: str, height: float, body: Sequence[Markup]) -> Markup:
    return _element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": "chart",
            "id": ids.chart,
            "role": "img",
            "aria-labelledby": f"{ids.title} {ids.desc}",
            "viewBox": f"0 0 {_px(VIEW_WIDTH)} {_px(height)}",
            "width": "100%",
            "preserveAspectRatio": "xMidYMid meet",
            "font-size": _px(FONT_SIZE),
            "fill": "currentColor",
        },
        _element("title", {"id": ids.title}, title),
        _element("desc", {"id": ids.desc}, description),
        *body,
    )


def _empty_chart(ids: _Ids, title: str, message: str, height: float) -> Markup:
    """A chart with nothing to show: the caller's message, centred, and the same in ``<desc>``."""
    text = _text("chart-empty", VIEW_WIDTH / 2, height / 2, message, "middle")
    return _svg(ids, title, message, height, [text])
