"""What the follow phase reads from its executions and messages: delivery, per-event
latency, the gaps between looks, start-ups, counted operations."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bench.follow_chain import BlockClock, Landed
from bench.follow_runs import Execution, Timed
from bench.measure import BenchError


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (statistics' 'inclusive' method)."""
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return float(cuts[round(q * 100) - 1])


def timeline(runs: list[Execution]) -> list[dict[str, Any]]:
    """Each execution's start and looks, in seconds after the first start, and its start-up
    (process start to the run's own start: interpreter, imports, clients): where gaps are."""
    t0 = runs[0].started_at
    return [
        {
            "started_s": round(r.started_at - t0, 3),
            "startup_s": startup_s(r),
            "looks_s": [round(t - t0, 3) for t in r.looks],
            "outcome": r.summary.get("outcome"),
            "duration_s": r.summary.get("duration_s"),
        }
        for r in runs
    ]


def startup_s(run: Execution) -> float | None:
    """From the process start to the run's start (its summary's time minus its duration)."""
    summary = run.summary
    if "time" not in summary or summary.get("duration_s") is None:
        return None
    ended = datetime.fromisoformat(str(summary["time"]).replace("Z", "+00:00")).timestamp()
    return round(ended - float(summary["duration_s"]) - run.started_at, 3)


def check_delivery(label: str, landed: list[Landed], pulled: list[Timed]) -> dict[str, Any]:
    """Every emitted event exactly once, in chain order (the subscription is ordered, and one
    ordering key carries the contract's events); raise otherwise."""
    counts = Counter(m.event_id for m in pulled)
    want = [e.event_id for e in landed]
    missing = [i for i in want if i not in counts]
    duplicated = [i for i, n in counts.items() if n > 1]
    stray = [i for i in counts if i not in set(want)]
    first_seen = list(dict.fromkeys(m.event_id for m in pulled))
    in_order = first_seen == want
    if missing or duplicated or stray or not in_order:
        raise BenchError(
            f"{label}: {len(pulled)} messages for {len(want)} events: {len(missing)} missing, "
            f"{len(duplicated)} duplicated, {len(stray)} stray, in chain order: {in_order}"
        )
    return {"messages": len(pulled), "exactly_once": True, "in_order": True}


def latencies(
    clock: BlockClock,
    landed: list[Landed],
    pulled: list[Timed],
    confirmations: int,
    first_look: float,
) -> dict[str, Any]:
    """publish_time minus eligibility, for events that became eligible once the first
    execution was looking (earlier ones waited for the bench to start, not for a look)."""
    published = {m.event_id: m.publish_time for m in pulled}
    values = []
    for e in landed:
        eligible = clock.seen(e.block_number + confirmations)
        if eligible is not None and eligible >= first_look:
            values.append(published[e.event_id] - eligible)
    if not values:
        raise BenchError("no event became eligible while the relayer was looking")
    return {
        "n": len(values),
        "excluded_before_first_look": len(landed) - len(values),
        "p50": quantile(values, 0.50),
        "p95": quantile(values, 0.95),
        "max": max(values),
        "min": min(values),
    }


def gaps(runs: list[Execution]) -> dict[str, float]:
    """The longest gap inside an execution and across a hand-over (last look of one to the
    first of the next)."""
    inside = [b - a for r in runs for a, b in itertools.pairwise(r.looks)]
    across = [n.looks[0] - p.looks[-1] for p, n in itertools.pairwise(runs) if p.looks and n.looks]
    return {"inside_max": max(inside, default=0.0), "handover_max": max(across, default=0.0)}


def ops(runs: list[Execution]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for r in runs:
        total.update(r.ops)
    looks = sum(len(r.looks) for r in runs) or 1
    return {
        "total": dict(total),
        "per_run": {k: round(v / len(runs), 2) for k, v in total.items()},
        "per_look": {k: round(v / looks, 2) for k, v in total.items()},
    }
