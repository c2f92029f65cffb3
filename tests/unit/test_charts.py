"""The UI's chart geometry: points inside the box, the right scale, nothing drawn from nothing."""

from receiver.web.charts import HEIGHT, PAD, WIDTH, bars, sparkline


def coords(points: str) -> list[tuple[float, float]]:
    return [tuple(float(n) for n in p.split(",")) for p in points.split()]


def test_a_sparkline_spans_the_window_and_puts_the_peak_at_the_top():
    series = [{"labels": {"gpu": "0"}, "points": [[-600, 0.0], [-300, 50.0], [0, 100.0]]}]
    chart = sparkline(series, 600)
    (line,) = chart.lines
    (x0, y0), (x1, _), (x2, y2) = coords(line.points)
    assert (x0, x2) == (PAD, WIDTH - PAD)  # -600 s at the left edge, the start at the right
    assert x1 == (x0 + x2) / 2
    assert (y0, y2) == (HEIGHT - PAD, PAD)  # zero at the bottom, the peak at the top
    assert (chart.low, chart.high, chart.range_minutes, line.last) == (0.0, 100.0, 10, 100.0)
    assert line.labels == {"gpu": "0"}


def test_points_older_than_the_window_are_pinned_to_its_left_edge():
    chart = sparkline([{"labels": {}, "points": [[-7200, 5.0], [0, 5.0]]}], 1800)
    assert coords(chart.lines[0].points)[0][0] == PAD


def test_a_flat_series_is_drawn_without_dividing_by_zero():
    chart = sparkline([{"labels": {}, "points": [[-60, 0.0], [0, 0.0]]}], 600)
    assert all(y == HEIGHT - PAD for _, y in coords(chart.lines[0].points))


def test_no_series_or_only_empty_series_draw_no_chart():
    assert sparkline(None, 600) is None
    assert sparkline([], 600) is None
    assert sparkline([{"labels": {}, "points": []}], 600) is None


def test_bars_scale_to_the_busiest_day_and_keep_their_order():
    drawn = bars([("2026-11-26", 0), ("2026-11-27", 5), ("2026-11-28", 10)], 300, 100)
    assert [b.label for b in drawn] == ["2026-11-26", "2026-11-27", "2026-11-28"]
    assert [b.height for b in drawn] == [0.0, 50.0, 100.0]
    assert [b.y + b.height for b in drawn] == [100.0, 100.0, 100.0]  # all stand on the axis
    assert drawn[0].x < drawn[1].x < drawn[2].x
    assert bars([]) == []
