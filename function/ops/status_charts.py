"""The status page's charts: one value per run on a time axis, so an hour without runs reads
as an hour, with a labelled scale and the level a healthy relayer sits at.

Pure: runs (the `recent_runs` entries of `/status`) and instants in, HTML and inline SVG out.
The SVG stretches to the chart's width (`preserveAspectRatio="none"`), so every text (the
scale, the times, a gap's length) is HTML laid over it, which stays legible on a phone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from itertools import pairwise
from statistics import median
from typing import Any

W, H = 1000, 100  # the SVG's coordinates; it is stretched to the box
MIN_BAR = 5.0  # the narrowest bar, in thousandths of the width: a one-second run stays visible
STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
MAX_TICKS = 6
GAP_RUNS = 3  # a gap: no run for this many times the usual interval (status's stale rule)


def when(value: Any) -> datetime | None:
    """An instant of the body (an RFC 3339 string or a datetime), UTC-aware, or None."""
    if isinstance(value, datetime):
        at = value
    else:
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """A span as a person says it: `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def clock(at: datetime, span_s: float) -> str:
    """A time label, with the date once the axis spans more than a day."""
    return at.strftime("%m-%d %H:%M" if span_s > 86400 else "%H:%M")


@dataclass(frozen=True)
class Gap:
    """A stretch with no run: from the end of one to the start of the next (or now)."""

    start: datetime
    end: datetime
    ongoing: bool  # no run since, up to now

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Axis:
    """The time one relayer's charts share, oldest run to now, and its gaps."""

    start: datetime
    end: datetime
    gaps: tuple[Gap, ...]

    @property
    def span_s(self) -> float:
        return max(1.0, (self.end - self.start).total_seconds())

    def x(self, at: datetime) -> float:
        return min(W, max(0.0, (at - self.start).total_seconds() / self.span_s * W))


def _timed(runs: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, float, Mapping[str, Any]]]:
    out = []
    for run in runs:
        at = when(run.get("started_at"))
        took = run.get("duration_s")
        if at is not None:
            out.append((at, float(took) if isinstance(took, int | float) else 0.0, run))
    return sorted(out, key=lambda t: t[0])


def axis(runs: Sequence[Mapping[str, Any]], now: datetime, poll_interval_s: float | None) -> Axis:
    """From the oldest run to now; a gap is a pause of more than GAP_RUNS usual intervals
    (the median between runs once there are a few, else the poll interval)."""
    timed = _timed(runs)
    if not timed:
        return Axis(now - timedelta(minutes=10), now, ())
    starts = [t for t, _, _ in timed]
    spacings = [(b - a).total_seconds() for a, b in pairwise(starts)]
    usual = median(spacings) if len(spacings) >= 3 else 0.0
    limit = GAP_RUNS * max(usual, poll_interval_s or 0.0, 1.0)
    gaps = []
    ends = [t + timedelta(seconds=took) for t, took, _ in timed]
    for end, nxt in zip(ends[:-1], starts[1:], strict=True):
        if (nxt - end).total_seconds() > limit:
            gaps.append(Gap(end, nxt, ongoing=False))
    if (now - ends[-1]).total_seconds() > limit:
        gaps.append(Gap(ends[-1], now, ongoing=True))
    # a little room before the oldest run, so its bar is not cut by the frame
    first = starts[0] - timedelta(seconds=max(1.0, (now - starts[0]).total_seconds() / 100))
    return Axis(first, max(now, ends[-1]), tuple(gaps))


def nice_top(value: float) -> float:
    """The scale's top: the next of 1, 2, 2.5, 5 times a power of ten."""
    if value <= 1:
        return 1.0
    power = float(10 ** (len(str(int(value))) - 1))
    for m in (1.0, 2.0, 2.5, 5.0):
        if value <= m * power:
            return m * power
    return 10.0 * power


def _number(v: float) -> str:
    if float(v).is_integer() or v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _ticks(ax: Axis) -> str:
    step = next((s for s in STEPS_S if ax.span_s / s <= MAX_TICKS), STEPS_S[-1])
    first = ax.start.timestamp() // step * step + step
    labels = []
    t = first
    while t < ax.end.timestamp():
        at = datetime.fromtimestamp(t, UTC)
        left = ax.x(at) / W * 100
        if 6 < left < 88:  # not under the ends' labels
            labels.append(f'<span style="left:{left:.2f}%">{clock(at, ax.span_s)}</span>')
        t += step
    ends = f'<span class="start">{clock(ax.start, ax.span_s)}</span><span class="end">now</span>'
    return f'<div class="xaxis" aria-hidden="true">{ends}{"".join(labels)}</div>'


def chart(
    runs: Sequence[Mapping[str, Any]],
    key: str,
    ax: Axis,
    *,
    title: str,
    unit: str,
    level: float | None = None,
    level_text: str = "",
    limit: float | None = None,
    reorganised: Collection[Any] = (),
    whole: bool = True,
) -> str:
    """Bars of `key` per run placed by `started_at` (width: the run's duration), gaps
    shaded and named, the scale labelled in `unit`, and `level` (what a healthy run shows)
    drawn as a dashed line, so a steady value at it reads as normal rather than as a full
    bar. `limit` is drawn when the values reach it; runs in `reorganised` (run ids) get a
    mark at the top. A `whole` unit (blocks, events) has no half-way mark at a fraction."""
    timed = _timed(runs)
    values = [v if isinstance(v := r.get(key), int | float) else None for _, _, r in timed]
    known = [float(v) for v in values if v is not None]
    highest = max(known, default=0.0)
    # headroom above the highest value, and the level at half height or lower: a steady
    # value must not read as a full bar
    top = nice_top(max(highest * 1.2, 2 * level if level else 0.0, 1.0))
    if limit is not None and highest >= limit:
        top = nice_top(max(highest, limit) * 1.1)
    shapes: list[str] = []
    for g in ax.gaps:
        x0, x1 = ax.x(g.start), ax.x(g.end)
        shapes.append(f'<rect class="gap" x="{x0:.1f}" y="0" width="{x1 - x0:.1f}" height="{H}"/>')
    starts = [ax.x(t) for t, _, _ in timed]
    for i, ((at, took, run), v) in enumerate(zip(timed, values, strict=True)):
        x = starts[i]
        width = max(MIN_BAR, took / ax.span_s * W)
        if i + 1 < len(starts):
            width = min(width, max(1.0, starts[i + 1] - x - 1))
        h = max(1.5, H * float(v) / top) if v is not None else H
        css = escape(str(run.get("outcome") or "")) if v is not None else "none"
        shown = f"{_number(float(v))} {unit}" if v is not None else "unknown"
        tip = f"{clock(at, 0)} UTC, {run.get('outcome')}: {title.lower()} {shown}"
        shapes.append(
            f'<rect class="bar {css}" x="{x:.1f}" y="{H - h:.1f}" width="{width:.1f}" '
            f'height="{h:.1f}"><title>{escape(tip)}</title></rect>'
        )
        if run.get("run_id") in reorganised:
            shapes.append(
                f'<rect class="reorg" x="{x:.1f}" y="0" width="{max(width, 2 * MIN_BAR):.1f}" '
                f'height="12"><title>{escape(clock(at, 0))} UTC: reorganisation</title></rect>'
            )
    overlay = [
        f'<span class="y top">{_number(top)}</span>',
        f'<span class="y mid" style="top:50%">{_number(top / 2)}</span>'
        if not whole or float(top / 2).is_integer()
        else "",
        '<span class="y zero">0</span>',
    ]
    marks = [(level, "level", level_text)]
    if limit is not None:
        marks.append((limit, "limit", f"lag limit {limit:.0f}"))
    drawn = [(v, css, text) for v, css, text in marks if v is not None and 0 < v <= top]
    keys = []
    for value, css, text in drawn:
        y = H - H * value / top
        shapes.append(f'<line class="{css}" x1="0" x2="{W}" y1="{y:.1f}" y2="{y:.1f}"/>')
        if len(drawn) == 1:  # the words on the line; two lines may be too close for that
            overlay.append(f'<span class="mark {css}" style="top:{y:.1f}%">{escape(text)}</span>')
        else:
            keys.append(f'<span class="key {css}">{escape(text)}</span>')
    for g in ax.gaps:
        left, right = ax.x(g.start) / W * 100, ax.x(g.end) / W * 100
        if right - left >= 14:
            label = f"no run for {duration(g.seconds)}" + (" (still none)" if g.ongoing else "")
            overlay.append(
                f'<span class="gaplabel" style="left:{(left + right) / 2:.2f}%">'
                f"{escape(label)}</span>"
            )
    label = (
        f"{title} per run, in {unit}, over time from {clock(ax.start, ax.span_s)} UTC to now; "
        f"scale 0 to {_number(top)}"
    )
    return (
        f'<figure class="chart"><figcaption>{escape(title)} <span class="unit">({escape(unit)})'
        f"</span>{''.join(keys)}</figcaption>"
        f'<div class="plot">{"".join(overlay)}'
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {W} {H}" '
        f'preserveAspectRatio="none">{"".join(shapes)}</svg></div>'
        f"{_ticks(ax)}</figure>"
    )


def gaps_text(ax: Axis) -> str:
    """The gaps in words, oldest first: what an outage looked like, to the minute."""
    if not ax.gaps:
        return ""
    items = []
    for g in ax.gaps:
        since = g.start.strftime("%Y-%m-%d %H:%M")
        if g.ongoing:
            what = f"No run for {duration(g.seconds)}: none since {since} UTC"
        else:
            what = f"No run for {duration(g.seconds)}: {since} to {g.end.strftime('%H:%M')} UTC"
        items.append(f"<li>{escape(what)}</li>")
    return f'<ul class="gaps" aria-label="Gaps between runs">{"".join(items)}</ul>'
