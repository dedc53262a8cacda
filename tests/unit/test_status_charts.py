"""The status page's time axis (function.ops.status_charts): runs placed by when they started,
pauses found as gaps, and scales that leave a steady value below the top."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from function.ops.status_charts import axis, chart, gaps_text, nice_top

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def run(ago_s: float, lag: int | None = 12, took: float = 2.0) -> dict[str, Any]:
    at = (NOW - timedelta(seconds=ago_s)).isoformat().replace("+00:00", "Z")
    return {"run_id": f"r{ago_s:g}", "outcome": "ok", "started_at": at, "duration_s": took,
            "lag_blocks": lag, "events_published": 1}  # fmt: skip


def bar_xs(html: str) -> list[float]:
    return [float(x) for x in re.findall(r'<rect class="bar [^"]*" x="([\d.]+)"', html)]


def test_runs_are_placed_by_time_so_an_hour_without_runs_takes_its_share() -> None:
    # five runs a minute apart, an hour of nothing, five more, the last a minute ago
    runs = [run(3960 + 60 * (4 - i)) for i in range(5)] + [run(60 * (5 - i)) for i in range(5)]
    ax = axis(runs, NOW, poll_interval_s=60.0)
    xs = bar_xs(chart(runs, "lag_blocks", ax, title="Lag", unit="blocks"))

    minute = xs[1] - xs[0]
    assert xs[5] - xs[4] == pytest.approx(minute * 61, rel=0.01)  # 61 minutes, not one step
    (gap,) = ax.gaps
    assert not gap.ongoing and 3600 < gap.seconds < 3660
    assert "No run for 1 h 0 min: 2030-01-01 10:54 to 11:55 UTC" in gaps_text(ax)


@pytest.mark.parametrize(
    ("ago_s", "poll_s", "gaps"),
    [
        ([240, 180, 120, 60], 60.0, 0),  # every minute
        ([3900, 3840, 3780, 60], 60.0, 1),  # an hour missing, found by the poll interval too
        ([1800, 1200, 600, 0], 5.0, 0),  # a follower's 10-minute runs back to back
        ([600, 540, 480, 420], 60.0, 1),  # nothing for the last 7 minutes: still none
        ([120], 60.0, 0),  # one run two minutes ago
    ],
)
def test_a_gap_is_a_pause_of_three_usual_intervals(
    ago_s: list[float], poll_s: float, gaps: int
) -> None:
    took = 598.0 if poll_s == 5.0 else 2.0
    ax = axis([run(a, took=took) for a in ago_s], NOW, poll_s)
    assert len(ax.gaps) == gaps
    if ago_s[-1] == 420:
        assert ax.gaps[0].ongoing and "none since 2030-01-01 11:53 UTC" in gaps_text(ax)


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (1.2, 2), (12, 20), (24, 25), (26, 50), (3600, 5000)]
)
def test_scales_end_on_round_numbers(value: float, top: float) -> None:
    assert nice_top(value) == top


def test_a_steady_value_is_not_a_full_bar_and_the_scale_and_the_unit_are_written() -> None:
    runs = [run(60 * (5 - i), took=2.5) for i in range(5)]
    ax = axis(runs, NOW, 60.0)
    html = chart(runs, "duration_s", ax, title="Run duration", unit="seconds", whole=False)
    heights = {float(h) for h in re.findall(r'class="bar ok"[^>]*height="([\d.]+)"', html)}
    assert heights == {50.0}  # 2.5 s on a scale of 5
    assert "(seconds)" in html and ">5<" in html and ">2.5<" in html and ">0<" in html
