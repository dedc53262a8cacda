"""The follow phase's figures: results.json's headline keys, its targets, the table's rows.

The one-batch latency at the real one-minute schedule is derived from the compressed one
measured (see bench/README.md): the wait for the next look is uniform over the period and
scales with it; what is left (fetch, publish) does not.
"""

from __future__ import annotations

from typing import Any

from bench.follow import ANALYTIC_PERIOD_S, FollowSettings


def follow_rates(out: dict[str, Any]) -> dict[str, float]:
    """results.json's headline keys of this phase."""
    s = FollowSettings(**out["settings"])
    follow, batch = out["follow"]["latency_s"], out["batch"]["latency_s"]
    # One batch: latency is the wait for the next look (uniform over the period) plus what
    # does not grow with the period (start-up, fetch, publish); scale the first part to 60 s.
    scale = ANALYTIC_PERIOD_S - s.batch_period_s
    return {
        "follow_poll_s": s.poll_s,
        "follow_latency_p50_s": follow["p50"],
        "follow_latency_p95_s": follow["p95"],
        "batch_period_s": s.batch_period_s,
        "batch_latency_p50_s": batch["p50"],
        "batch_latency_p95_s": batch["p95"],
        "batch_60s_latency_p50_s": batch["p50"] + 0.50 * scale,
        "batch_60s_latency_p95_s": batch["p95"] + 0.95 * scale,
        "coverage_max_gap_s": out["follow"]["max_gap_s"],
        "follow_cpu_s_per_hour": out["cpu"]["follow_measured_per_hour"],
        "follow_60s_poll5_cpu_s_per_hour": out["cpu"]["follow_60s_poll5_per_hour"],
        "batch_60s_cpu_s_per_hour": out["cpu"]["batch_60s_per_hour"],
    }


def follow_targets(r: dict[str, float]) -> list[dict[str, Any]]:
    """The targets, which depend on the poll interval measured."""
    poll = r["follow_poll_s"]
    wanted = (
        ("follow latency p95", "follow_latency_p95_s", poll + 1.0),
        ("coverage: longest gap between looks", "coverage_max_gap_s", 2 * poll),
    )
    return [
        {"target": name, "key": key, "value": r[key], "wanted": f"<= {limit:g} s",
         "holds": r[key] <= limit}
        for name, key, limit in wanted
    ]  # fmt: skip


def follow_rows(r: dict[str, float]) -> list[tuple[str, float, str, str]]:
    """The table's rows of this phase (name, value, unit, note)."""
    poll, period = r["follow_poll_s"], r["batch_period_s"]
    return [
        (f"follow latency p50 (poll {poll:g} s)", r["follow_latency_p50_s"], "s", ""),
        (f"follow latency p95 (poll {poll:g} s)", r["follow_latency_p95_s"], "s",
         f"target <= {poll + 1:g} s"),
        (f"one-batch latency p50 (every {period:g} s)", r["batch_latency_p50_s"], "s",
         f"every 60 s: ~{r['batch_60s_latency_p50_s']:.0f} s"),
        (f"one-batch latency p95 (every {period:g} s)", r["batch_latency_p95_s"], "s",
         f"every 60 s: ~{r['batch_60s_latency_p95_s']:.0f} s"),
        ("coverage: longest gap between looks", r["coverage_max_gap_s"], "s",
         f"target <= {2 * poll:g} s"),
        (f"follow CPU (poll {poll:g} s)", r["follow_cpu_s_per_hour"], "s/hour", ""),
        ("follow CPU, window 60 s poll 5 s (model)", r["follow_60s_poll5_cpu_s_per_hour"],
         "s/hour", ""),
        ("one-batch CPU, every 60 s", r["batch_60s_cpu_s_per_hour"], "s/hour", ""),
    ]  # fmt: skip
