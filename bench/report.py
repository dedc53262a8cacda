"""Rates, ratios and targets from the phases' measurements; the table and results.json.

All rates come from medians. `peak_rss_mb` is the largest of the end-to-end runs (each
relays every event in one batch), the conservative figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.follow_report import follow_rows, follow_targets


def _rate(amount: float, seconds: float) -> float:
    return amount / max(seconds, 1e-6)


def _med(phase: dict[str, Any], key: str) -> float:
    return float(phase[key]["median"])


def rates(
    floor: dict[str, Any],
    relayer: dict[str, Any],
    naive: dict[str, Any],
    empty: dict[str, Any],
) -> dict[str, float]:
    """The headline numbers (results.json's top-level keys)."""
    n = relayer["events"]
    one, many = empty["one_run"], empty["many_runs"]
    blocks = empty["blocks"]
    r = {
        "floor_events_per_s": _rate(floor["events"], _med(floor, "wall_s")),
        "floor_work_events_per_s": _rate(floor["events"], _med(floor, "work_s")),
        "relayer_events_per_s": _rate(n, _med(relayer, "wall_s")),
        "relayer_run_events_per_s": _rate(n, _med(relayer, "run_duration_s")),
        "naive_events_per_s": _rate(naive["events"], _med(naive, "seconds")),
        "raw_empty_blocks_per_s": _rate(blocks, _med(one, "raw_s")),
        "relayer_empty_blocks_per_s": _rate(blocks, _med(one, "relayer_scan_s")),
        "relayer_empty_run_blocks_per_s": _rate(blocks, _med(one, "relayer_run_duration_s")),
        "relayer_empty_wall_blocks_per_s": _rate(blocks, _med(one, "relayer_wall_s")),
        "raw_empty_blocks_per_s_small_ranges": _rate(blocks, _med(many, "raw_s")),
        "relayer_empty_run_blocks_per_s_small_batches": _rate(
            blocks, _med(many, "relayer_run_duration_s")
        ),
        "relayer_empty_wall_blocks_per_s_small_batches": _rate(
            blocks, _med(many, "relayer_wall_s")
        ),
        "idle_run_s": _med(relayer, "idle_wall_s"),
        "idle_run_duration_s": _med(relayer, "idle_run_duration_s"),
        "peak_rss_mb": float(relayer["peak_rss_mb"]["max"]),
        "floor_peak_rss_mb": float(floor["peak_rss_mb"]["max"]),
    }
    r.update(
        relayer_to_floor=r["relayer_events_per_s"] / r["floor_events_per_s"],
        relayer_to_floor_in_process=r["relayer_run_events_per_s"] / r["floor_work_events_per_s"],
        relayer_to_naive=r["relayer_events_per_s"] / r["naive_events_per_s"],
        relayer_empty_to_raw=r["relayer_empty_blocks_per_s"] / r["raw_empty_blocks_per_s"],
        relayer_empty_run_to_raw=r["relayer_empty_run_blocks_per_s"] / r["raw_empty_blocks_per_s"],
    )
    return r


@dataclass(frozen=True)
class Target:
    name: str
    key: str
    holds: Callable[[float], bool]
    wanted: str


TARGETS = (
    Target("end to end vs floor", "relayer_to_floor", lambda v: v >= 0.5, ">= 0.5"),
    Target("end to end vs naive", "relayer_to_naive", lambda v: v >= 10, ">= 10"),
    Target("empty blocks vs raw loop", "relayer_empty_to_raw", lambda v: v >= 0.9, ">= 0.9"),
    Target("idle run wall", "idle_run_s", lambda v: v <= 1.5, "<= 1.5 s"),
    Target("peak RSS, 20,000 events in one batch", "peak_rss_mb", lambda v: v <= 200, "<= 200 MB"),
)


def targets(r: dict[str, float]) -> list[dict[str, Any]]:
    fixed = [
        {"target": t.name, "key": t.key, "value": r[t.key], "wanted": t.wanted,
         "holds": t.holds(r[t.key])}
        for t in TARGETS
    ]  # fmt: skip
    return fixed + (follow_targets(r) if "follow_latency_p95_s" in r else [])


def table(r: dict[str, float], details: dict[str, Any]) -> str:
    """The human-readable table: one row per measure, ratios beside the relayer's rows."""
    ev, bl = "events/s", "blocks/s"
    one = details["empty"]["one_run"]
    many = details["empty"]["many_runs"]
    rows = [
        ("floor, process (python -m bench.floor)", r["floor_events_per_s"], ev, ""),
        ("floor, in process (fetch+decode+publish)", r["floor_work_events_per_s"], ev, ""),
        (f"naive relayer ({details['naive']['events']} events)", r["naive_events_per_s"], ev, ""),
        ("relayer end to end (python main.py wall)", r["relayer_events_per_s"], ev,
         f"x{r['relayer_to_floor']:.2f} floor, x{r['relayer_to_naive']:.1f} naive"),
        ("relayer, in-run duration", r["relayer_run_events_per_s"], ev,
         f"x{r['relayer_to_floor_in_process']:.2f} floor in process"),
        (f"raw eth_getLogs, {one['range_size']}-block ranges", r["raw_empty_blocks_per_s"], bl, ""),
        ("relayer scan (run minus idle run)", r["relayer_empty_blocks_per_s"], bl,
         f"x{r['relayer_empty_to_raw']:.2f} raw"),
        ("relayer one run, in-run duration", r["relayer_empty_run_blocks_per_s"], bl,
         f"x{r['relayer_empty_run_to_raw']:.2f} raw"),
        ("relayer one run, process wall", r["relayer_empty_wall_blocks_per_s"], bl, ""),
        (f"raw eth_getLogs, {many['range_size']}-block ranges",
         r["raw_empty_blocks_per_s_small_ranges"], bl, ""),
        (f"relayer {many['runs']} runs, in-run durations",
         r["relayer_empty_run_blocks_per_s_small_batches"], bl, ""),
        (f"relayer {many['runs']} runs, process wall",
         r["relayer_empty_wall_blocks_per_s_small_batches"], bl, ""),
        ("idle run, python main.py wall", r["idle_run_s"], "s", ""),
        ("idle run, in-run duration", r["idle_run_duration_s"], "s", ""),
        ("peak RSS, all events in one batch", r["peak_rss_mb"], "MB", ""),
        ("floor peak RSS", r["floor_peak_rss_mb"], "MB", ""),
    ]  # fmt: skip
    if "follow_latency_p95_s" in r:
        rows += follow_rows(r)
    width = max(len(name) for name, *_ in rows)
    lines = [f"{'measure':<{width}}  {'value':>12}  {'unit':<8}  ratio", "-" * (width + 50)]
    for name, value, unit, ratio in rows:
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>12}  {unit:<8}  {ratio}")
    lines.append("")
    for t in targets(r):
        mark = "holds" if t["holds"] else "MISSED"
        lines.append(f"target {t['target']}: {t['value']:.2f} ({t['wanted']}): {mark}")
    return "\n".join(lines)
