"""The server-drawn SVG charts: parsed as XML, checked for what a reader of the page would see."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from markupsafe import Markup

from portal.pages.charts import Bucket, Part, Series, bar_chart, line_chart, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"
MINUTE = "%Y%m%dT%H%M"
HOSTILE = '</svg><script>alert("x")</script> & <b>'
MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)
GPU_HOURS = [
    Part("allocated", "chart-allocated"),
    Part("idle", "chart-idle"),
    Part("down", "chart-down"),
]


def plain(value: float) -> str:
    """A format function that a test can read back: the number itself."""
    return repr(float(value))


def day(moment: datetime) -> str:
    return moment.date().isoformat()


def parse(chart: Markup) -> ET.Element:
    return ET.fromstring(str(chart))


def marks(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [
        element for element in root.iter(SVG + tag) if css_class in element.get("class", "").split()
    ]


def number(element: ET.Element, attribute: str) -> float:
    return float(element.get(attribute, "nan"))


def tooltip(element: ET.Element) -> str:
    title = element.find(SVG + "title")
    assert title is not None
    return title.text or ""


def tick_values(root: ET.Element, axis: str) -> list[float]:
    group = next(g for g in root.iter(SVG + "g") if g.get("class") == f"chart-{axis}-axis")
    return [float(text.text or "") for text in group.iter(SVG + "text")]


def a_line(name: str, *values: float, start: datetime = MAY_1) -> Series[datetime]:
    """A series with one value a day from ``start``."""
    return Series(name, [(start + timedelta(days=n), v) for n, v in enumerate(values)])


def usage_chart(
    *series: Series[datetime], description: str = "", chart_id: str | None = None
) -> Markup:
    return line_chart(
        "Usage",
        series,
        x_format=day,
        y_format=plain,
        empty_message="Nothing to show",
        description=description,
        chart_id=chart_id,
    )


def spend_chart(bars: Sequence[tuple[str, float]], title: str = "Spend") -> Markup:
    return bar_chart(title, bars, value_format=plain, empty_message="Nothing to show")


def gpu_hours_chart(*buckets: Bucket) -> Markup:
    return stacked_bar_chart(
        "GPU-hours", GPU_HOURS, buckets, y_format=plain, empty_message="Nothing to show"
    )


def every_chart() -> list[Markup]:
    return [
        usage_chart(a_line("used", 1, 5, -2), a_line("entitled", 3, 3, 3)),
        spend_chart([("kaist", 10.0), ("snu", -4.0)]),
        gpu_hours_chart(Bucket("W1", [5, 2, 1]), Bucket("W2", [6, 0, 3])),
        usage_chart(),
        spend_chart([]),
        gpu_hours_chart(),
    ]


# --- What every chart promises ---------------------------------------------------------------


@pytest.mark.parametrize("chart", every_chart())
def test_a_chart_is_an_accessible_scalable_image(chart: Markup) -> None:
    root = parse(chart)

    assert root.tag == SVG + "svg"
    assert root.get("role") == "img"
    assert root.get("width") == "100%"
    assert re.fullmatch(r"0 0 \d+(\.\d+)? \d+(\.\d+)?", root.get("viewBox", ""))
    labelled_by = root.get("aria-labelledby", "").split()
    title, desc = root.find(SVG + "title"), root.find(SVG + "desc")
    assert title is not None
    assert desc is not None
    assert labelled_by == [title.get("id"), desc.get("id")]
    assert desc.text


@pytest.mark.parametrize("chart", every_chart())
def test_a_chart_has_no_inline_style_or_script_for_the_csp_to_block(chart: Markup) -> None:
    root = parse(chart)

    for element in root.iter():
        assert "style" not in element.attrib
        assert element.tag not in (SVG + "style", SVG + "script", SVG + "foreignObject")
        assert not any(name.startswith("on") for name in element.attrib)


@pytest.mark.parametrize("chart", every_chart())
def test_every_coordinate_is_a_finite_number(chart: Markup) -> None:
    for element in parse(chart).iter():
        if element.tag == SVG + "svg":
            continue  # its width is "100%"
        for name in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height"):
            if name in element.attrib:
                assert math.isfinite(number(element, name)), (element.tag, name)
        if element.tag in (SVG + "rect",):
            assert number(element, "width") >= 0
            assert number(element, "height") >= 0


def test_hostile_text_is_escaped_everywhere() -> None:
    charts = [
        line_chart(
            HOSTILE,
            [Series(HOSTILE, [(1.0, 2.0), (2.0, 3.0)])],
            x_format=lambda x: HOSTILE,
            y_format=lambda y: HOSTILE,
            y_label=HOSTILE,
            description=HOSTILE,
            empty_message=HOSTILE,
        ),
        bar_chart(HOSTILE, [(HOSTILE, 1.0)], value_format=lambda v: HOSTILE, empty_message=""),
        stacked_bar_chart(
            HOSTILE,
            [Part(HOSTILE, "chart-idle")],
            [Bucket(HOSTILE, [1.0])],
            y_format=lambda v: HOSTILE,
            empty_message="",
        ),
        bar_chart("Spend", [], value_format=plain, empty_message=HOSTILE),
    ]
    for chart in charts:
        root = parse(chart)  # one well-formed <svg>: the label did not close it

        assert not list(root.iter(SVG + "script"))
        assert not list(root.iter(SVG + "b"))
        texts = [element.text for element in root.iter() if element.text]
        assert HOSTILE in texts
        assert "<script>" not in str(chart)


def test_ids_come_from_the_caller_or_from_the_title() -> None:
    named = parse(usage_chart(a_line("used", 1, 2), chart_id="fair-share-kaist"))
    one, again = parse(spend_chart([("a", 1)])), parse(spend_chart([("b", 2)]))
    other = parse(spend_chart([("a", 1)], title="Spend by program"))

    assert named.get("id") == "fair-share-kaist"
    assert one.get("id") == again.get("id")  # the same title, without a counter
    assert one.get("id") != other.get("id")
    with pytest.raises(ValueError, match="not a plain HTML id"):
        usage_chart(a_line("used", 1), chart_id='x" onload="alert(1)')


# --- Line charts -----------------------------------------------------------------------------


def test_points_are_drawn_in_x_order_at_heights_proportional_to_their_values() -> None:
    shuffled = Series("used", [(MAY_1 + timedelta(days=n), float(n * 10)) for n in (2, 0, 3, 1)])
    root = parse(usage_chart(shuffled))

    points = marks(root, "circle", "chart-point")
    xs = [number(p, "cx") for p in points]
    ys = [number(p, "cy") for p in points]
    assert [p.get("data-value") for p in points] == ["0", "10", "20", "30"]
    assert xs == sorted(xs)
    assert xs[1] - xs[0] == pytest.approx(xs[3] - xs[2], abs=0.02)
    assert ys == sorted(ys, reverse=True)  # higher values are higher on the page
    assert ys[0] - ys[1] == pytest.approx(ys[2] - ys[3], abs=0.02)
    assert points[0].get("data-x") == MAY_1.isoformat()


def test_each_point_names_its_series_date_and_value_when_hovered() -> None:
    root = parse(usage_chart(a_line("used", 1.5, 2.5)))

    points = marks(root, "circle", "chart-point")
    assert [tooltip(p) for p in points] == ["used, 2024-05-01: 1.5", "used, 2024-05-02: 2.5"]


def test_the_description_gives_each_series_last_value() -> None:
    chart = usage_chart(a_line("used", 1, 7), a_line("entitled", 4, 4), description="Fair share.")
    desc = parse(chart).find(SVG + "desc")

    assert desc is not None
    assert desc.text == "Fair share. used: 7.0 (2024-05-02); entitled: 4.0 (2024-05-02)"


def test_series_get_palette_classes_unless_they_bring_their_own() -> None:
    series = [a_line(f"s{n}", 1, 2) for n in range(9)]
    entitled = Series("entitled", [(MAY_1, 3.0)], css_class="chart-entitled")
    root = parse(usage_chart(*series, entitled))

    groups = marks(root, "g", "chart-series")
    classes = [group.get("class", "").split()[1] for group in groups]
    assert classes == [f"chart-series-{n}" for n in range(8)] + ["chart-series-0", "chart-entitled"]
    legend = [text.text for text in marks(root, "text", "chart-legend-name")]
    assert legend == [f"s{n}" for n in range(9)] + ["entitled"]


def test_a_projection_is_dashed_in_the_line_and_the_legend() -> None:
    spent = Series("remaining", [(MAY_1, 100.0), (MAY_1 + timedelta(days=10), 60.0)])
    projection = Series(
        "projected",
        [(MAY_1 + timedelta(days=10), 60.0), (MAY_1 + timedelta(days=25), 0.0)],
        dashed=True,
    )
    root = parse(usage_chart(spent, projection))

    solid, dashed = marks(root, "path", "chart-line")
    assert "stroke-dasharray" not in solid.attrib
    assert dashed.get("stroke-dasharray")
    assert "chart-projection" in dashed.get("class", "")
    swatches = [e.tag for e in root.iter() if "chart-swatch" in e.get("class", "")]
    assert swatches == [SVG + "rect", SVG + "line"]


def test_value_ticks_are_nice_numbers_that_cover_the_data_and_zero() -> None:
    for low, high in [(0.3, 7.0), (-1234.0, 56789.0), (2e15, 3e15), (0.0001, 0.00037), (-5, -1)]:
        root = parse(usage_chart(a_line("used", low, high)))

        ticks = tick_values(root, "y")
        step = ticks[1] - ticks[0]
        assert 3 <= len(ticks) <= 11
        assert all(b - a == pytest.approx(step) for a, b in itertools.pairwise(ticks))
        assert any(step == pytest.approx(m * 10**e) for m in (1, 2, 5) for e in range(-6, 17))
        assert ticks[0] <= min(low, 0.0)
        assert ticks[-1] >= max(high, 0.0)
        assert 0.0 in ticks


def test_time_ticks_fall_on_calendar_boundaries() -> None:
    cases: list[tuple[timedelta, Callable[[datetime], bool]]] = [
        (timedelta(hours=3), lambda t: t.minute == 0 or t.minute % 15 == 0),
        (timedelta(days=30), lambda t: t.hour == 0 and t.minute == 0),
        (timedelta(days=400), lambda t: t.day == 1 and t.hour == 0),
        (timedelta(days=3650), lambda t: t.month == 1 and t.day == 1),
    ]
    start = datetime(2024, 5, 1, 10, 17, 23, tzinfo=UTC)
    for span, on_boundary in cases:
        chart = line_chart(
            "Usage",
            [Series("used", [(start, 1.0), (start + span, 2.0)])],
            x_format=lambda t: t.strftime(MINUTE),
            y_format=plain,
            empty_message="",
        )
        group = next(g for g in parse(chart).iter(SVG + "g") if g.get("class") == "chart-x-axis")
        labels = [t.text or "" for t in group.iter(SVG + "text")]
        ticks = [datetime.strptime(t, MINUTE).replace(tzinfo=UTC) for t in labels]

        assert 2 <= len(ticks) <= 12, span
        assert ticks == sorted(ticks)
        assert all(start <= t <= start + span for t in ticks)
        assert all(on_boundary(t) for t in ticks), (span, ticks)


def test_number_x_values_get_nice_ticks_too() -> None:
    chart = line_chart(
        "Wait",
        [Series("p90", [(3.0, 1.0), (97.0, 2.0)])],
        x_format=plain,
        y_format=plain,
        empty_message="",
    )

    ticks = tick_values(parse(chart), "x")
    assert ticks[0] >= 3.0
    assert ticks[-1] <= 97.0
    assert all(t % 10 == 0 for t in ticks)


def test_one_point_is_drawn_in_the_middle() -> None:
    root = parse(usage_chart(a_line("used", 42.0)))

    (point,) = marks(root, "circle", "chart-point")
    (tick,) = marks(
        next(g for g in root.iter(SVG + "g") if "x-axis" in g.get("class", "")),
        "text",
        "chart-tick",
    )
    assert point.get("data-value") == "42"
    assert number(point, "cx") == pytest.approx(number(tick, "x"))


def test_all_zero_values_lie_on_the_zero_line() -> None:
    root = parse(usage_chart(a_line("used", 0, 0, 0)))

    zero_line = next(
        line for line in marks(root, "line", "chart-axis") if line.get("y1") == line.get("y2")
    )
    points = marks(root, "circle", "chart-point")
    assert {p.get("cy") for p in points} == {zero_line.get("y1")}
    assert tick_values(root, "y")[0] == 0.0


def test_negative_values_fall_below_the_zero_line() -> None:
    root = parse(usage_chart(a_line("credits", 50, -20)))

    zero_line = next(
        line for line in marks(root, "line", "chart-axis") if line.get("y1") == line.get("y2")
    )
    above, below = marks(root, "circle", "chart-point")
    assert number(above, "cy") < number(zero_line, "y1") < number(below, "cy")
    assert below.get("data-value") == "-20"


def test_huge_values_keep_their_proportions() -> None:
    root = parse(usage_chart(a_line("credits", 1e300, 2e300, 4e300)))

    ys = [number(p, "cy") for p in marks(root, "circle", "chart-point")]
    zero = next(
        line for line in marks(root, "line", "chart-axis") if line.get("y1") == line.get("y2")
    )
    heights = [number(zero, "y1") - y for y in ys]
    assert heights[1] == pytest.approx(2 * heights[0], rel=1e-3)
    assert heights[2] == pytest.approx(4 * heights[0], rel=1e-3)
    assert marks(root, "circle", "chart-point")[0].get("data-value") == "1e+300"


@pytest.mark.parametrize("chart", [usage_chart(), usage_chart(Series("used", []))])
def test_a_line_chart_without_points_says_so_in_the_callers_words(chart: Markup) -> None:
    root = parse(chart)

    (message,) = marks(root, "text", "chart-empty")
    assert message.text == "Nothing to show"
    assert not marks(root, "circle", "chart-point")


def test_values_that_cannot_be_drawn_are_refused() -> None:
    with pytest.raises(ValueError, match="nan"):
        usage_chart(a_line("used", 1, math.nan))
    mixed: list[Series[Any]] = [Series("a", [(MAY_1, 1.0)]), Series("b", [(1.0, 1.0)])]
    with pytest.raises(ValueError, match="all datetimes or all numbers"):
        line_chart(
            "Mixed",
            mixed,
            x_format=str,
            y_format=plain,
            empty_message="",
        )


# --- Bar charts ------------------------------------------------------------------------------


def test_a_bar_twice_the_value_is_twice_as_long() -> None:
    root = parse(spend_chart([("kaist", 100.0), ("snu", 200.0), ("postech", 50.0)]))

    kaist, snu, postech = marks(root, "rect", "chart-bar")
    assert number(snu, "width") == pytest.approx(2 * number(kaist, "width"), abs=0.02)
    assert number(postech, "width") == pytest.approx(number(kaist, "width") / 2, abs=0.02)
    assert number(kaist, "x") == number(snu, "x") == number(postech, "x")
    assert number(kaist, "y") < number(snu, "y") < number(postech, "y")  # in the order given


def test_each_bar_shows_its_label_and_value() -> None:
    root = parse(spend_chart([("p50", 12.0), ("p99", 340.5)]))

    bars = marks(root, "rect", "chart-bar")
    assert [b.get("data-value") for b in bars] == ["12", "340.5"]
    assert [b.get("data-label") for b in bars] == ["p50", "p99"]
    assert [tooltip(b) for b in bars] == ["p50: 12.0", "p99: 340.5"]
    assert [t.text for t in marks(root, "text", "chart-bar-value")] == ["12.0", "340.5"]
    desc = root.find(SVG + "desc")
    assert desc is not None
    assert desc.text == "p50: 12.0; p99: 340.5"


def test_a_negative_bar_grows_left_from_zero() -> None:
    root = parse(spend_chart([("spent", 30.0), ("refunded", -15.0)]))

    spent, refunded = marks(root, "rect", "chart-bar")
    (zero,) = marks(root, "line", "chart-axis")
    assert number(spent, "x") == pytest.approx(number(zero, "x1"))
    assert number(refunded, "x") + number(refunded, "width") == pytest.approx(number(zero, "x1"))
    assert number(refunded, "width") == pytest.approx(number(spent, "width") / 2, abs=0.02)


def test_a_long_label_is_shortened_on_the_axis_and_whole_in_the_tooltip() -> None:
    label = "Ministry of Science and ICT national AI computing programme, phase two"
    root = parse(spend_chart([(label, 5.0)]))

    (bar,) = marks(root, "rect", "chart-bar")
    axis_label = next(t for t in marks(root, "text", "chart-tick") if (t.text or "").endswith("…"))
    assert tooltip(bar) == f"{label}: 5.0"
    assert label.startswith((axis_label.text or "")[:-1])


def test_bar_ticks_are_nice_and_do_not_overlap() -> None:
    chart = bar_chart(
        "Spend",
        [("a", 123_456_789.0)],
        value_format=lambda v: f"{v:,.0f} credits",
        empty_message="",
    )
    texts = [t for t in marks(parse(chart), "text", "chart-tick") if "credits" in (t.text or "")]

    values = [float((t.text or "").replace(",", "").split()[0]) for t in texts]
    assert values[0] == 0.0
    assert all(v % 10_000_000 == 0 for v in values)
    xs = [number(t, "x") for t in texts]
    widest = max(len(t.text or "") for t in texts) * 7.2
    assert all(b - a > widest for a, b in itertools.pairwise(xs))


def test_zero_bars_have_no_length() -> None:
    root = parse(spend_chart([("idle", 0.0), ("none", 0.0)]))

    assert [number(b, "width") for b in marks(root, "rect", "chart-bar")] == [0.0, 0.0]


def test_a_bar_chart_without_bars_says_so() -> None:
    root = parse(spend_chart([]))

    (message,) = marks(root, "text", "chart-empty")
    assert message.text == "Nothing to show"
    assert not marks(root, "rect", "chart-bar")


# --- Stacked bar charts ----------------------------------------------------------------------


def test_stacked_parts_sum_to_the_bar_and_touch_each_other() -> None:
    root = parse(gpu_hours_chart(Bucket("W1", [60, 30, 10]), Bucket("W2", [120, 60, 20])))

    stacks = [marks(g, "rect", "chart-segment") for g in marks(root, "g", "chart-stack")]
    heights = [sum(number(part, "height") for part in stack) for stack in stacks]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.05)
    for stack in stacks:
        allocated, idle, down = stack
        assert number(allocated, "height") == pytest.approx(6 * number(down, "height"), abs=0.05)
        # allocated at the bottom, then idle on top of it, then down on top of that
        assert number(idle, "y") + number(idle, "height") == pytest.approx(number(allocated, "y"))
        assert number(down, "y") + number(down, "height") == pytest.approx(number(idle, "y"))


def test_each_part_names_its_bucket_and_value() -> None:
    root = parse(gpu_hours_chart(Bucket("2024-W18", [60, 30, 0])))

    parts = marks(root, "rect", "chart-segment")
    assert [p.get("data-value") for p in parts] == ["60", "30", "0"]
    assert [p.get("data-part") for p in parts] == ["allocated", "idle", "down"]
    assert [tooltip(p) for p in parts] == [
        "2024-W18, allocated: 60.0",
        "2024-W18, idle: 30.0",
        "2024-W18, down: 0.0",
    ]
    assert ["chart-allocated" in p.get("class", "") for p in parts] == [True, False, False]
    desc = root.find(SVG + "desc")
    assert desc is not None
    assert desc.text == "2024-W18: allocated 60.0, idle 30.0, down 0.0"


def test_negative_parts_hang_below_zero() -> None:
    root = parse(gpu_hours_chart(Bucket("W1", [40, -10, 5])))

    allocated, correction, down = marks(root, "rect", "chart-segment")
    zero = next(
        line for line in marks(root, "line", "chart-axis") if line.get("y1") == line.get("y2")
    )
    assert number(allocated, "y") + number(allocated, "height") == pytest.approx(number(zero, "y1"))
    assert number(correction, "y") == pytest.approx(number(zero, "y1"))
    assert number(down, "y") + number(down, "height") == pytest.approx(number(allocated, "y"))


def test_many_buckets_label_only_as_many_as_fit() -> None:
    buckets = [Bucket(f"2024-05-{n:02}", [n, 1, 0]) for n in range(1, 31)]
    root = parse(gpu_hours_chart(*buckets))

    group = next(g for g in root.iter(SVG + "g") if g.get("class") == "chart-x-axis")
    labels = list(group.iter(SVG + "text"))
    assert 2 <= len(labels) < 30
    assert labels[0].text == "2024-05-01"
    assert len(marks(root, "g", "chart-stack")) == 30


def test_a_bucket_must_have_a_value_for_each_part() -> None:
    with pytest.raises(ValueError, match="has 2 values for 3 parts"):
        gpu_hours_chart(Bucket("W1", [1, 2]))


def test_a_stacked_chart_without_buckets_says_so() -> None:
    root = parse(gpu_hours_chart())

    (message,) = marks(root, "text", "chart-empty")
    assert message.text == "Nothing to show"
