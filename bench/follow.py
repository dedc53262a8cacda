"""The follow phase: latency and coverage on a chain that never stops, and what they cost.

On its own anvil mining a block a second, an escrow emits an event every `emit_every_s`.
Two segments, one after the other, each with its own relayer (RELAYER_ID), topic and an
ordered subscription:
- **follow**: `python main.py` with RELAYER_RUN_SECONDS=`window_s`, RELAYER_POLL_INTERVAL=
  `poll_s`, started every `period_s` as a scheduler would, `executions` times, overlapping;
- **one batch**: RELAYER_RUN_SECONDS=0 started every `batch_period_s`, `batch_executions`
  times: the one-minute schedule compressed (see bench/README.md for the 60 s figure).
Per event, latency is the `publish_time` Pub/Sub stamped on its message minus the time the
block `RELAYER_CONFIRMATIONS` after its own was first reported by the node (when it became
eligible). Coverage is the longest time between two consecutive looks of all the follow
executions, from their DEBUG look records. Every event must arrive exactly once, in chain
order; CPU is each process's own (wait4) and the operations are counted by
bench/counted_main.py, which runs main.py.

    python -m bench.follow [--quick]   # this phase alone, with its own emulators
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from web3 import Web3

from bench.follow_chain import BlockClock, Landed, SteadyEmitter
from bench.follow_runs import Execution, Timed, pull_timed, scheduled
from bench.measure import ROOT, BenchError
from bench.relayer import relayer_env
from devstack.chain.escrow import deploy_escrow
from devstack.stack.clients import create_topic_and_subscription
from devstack.stack.services import start_anvil

if TYPE_CHECKING:
    from bench.phases import Context


@dataclass(frozen=True)
class FollowSettings:
    """The follow phase's schedule; the defaults take about 90 s."""

    poll_s: float = 2.0  # RELAYER_POLL_INTERVAL of the follow segment
    window_s: float = 10.0  # RELAYER_RUN_SECONDS
    period_s: float = 10.0  # the scheduler's period for the follow executions
    executions: int = 4
    batch_period_s: float = 20.0  # one-batch executions: the compressed one-minute schedule
    batch_executions: int = 3
    confirmations: int = 2  # RELAYER_CONFIRMATIONS
    emit_every_s: float = 0.5
    block_time_s: float = 1.0


QUICK_FOLLOW = FollowSettings(window_s=8.0, period_s=8.0, executions=3, batch_period_s=12.0)
ANALYTIC_PERIOD_S = 60.0  # the real schedule's period the one-batch figure is scaled to


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (statistics' 'inclusive' method)."""
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return float(cuts[round(q * 100) - 1])


def _segment(
    ctx: Context,
    clock: BlockClock,
    rpc_url: str,
    escrow: str,
    label: str,
    *,
    period_s: float,
    count: int,
    emit_s: float,
    extra: dict[str, str],
) -> dict[str, Any]:
    """One relayer started `count` times every `period_s` while the escrow emits for `emit_s`;
    what arrived, how late, the looks, CPU and operations."""
    s: FollowSettings = ctx.settings.follow
    topic = ctx.topics.fresh_id(label)
    create_topic_and_subscription(
        ctx.topics.host, ctx.project, topic, f"{topic}-sub", ordering=True
    )
    start = clock.head() + 1
    env = relayer_env(
        ctx.env, rpc_url=rpc_url, contract=escrow, project=ctx.project, topic=topic,
        relayer_id=ctx.topics.fresh_id(f"{label}-relayer"), start_block=start,
        batch_size=ctx.settings.batch_size, checkpoint_interval=ctx.settings.checkpoint_interval,
        RELAYER_CONFIRMATIONS=str(s.confirmations), LOG_LEVEL="DEBUG", **extra,
    )  # fmt: skip
    emitter = SteadyEmitter(rpc_url, escrow, s.emit_every_s, time.monotonic() + emit_s)
    emitter.start()
    argv = [sys.executable, str(ROOT / "bench" / "counted_main.py"), str(ctx.relayer_root)]
    window = float(extra.get("RELAYER_RUN_SECONDS", "0"))
    runs = scheduled(
        argv, env, ctx.relayer_root, period_s=period_s, count=count, timeout_s=window + 120
    )
    landed = emitter.landed()
    if landed:
        clock.wait_for(landed[-1].block_number + s.confirmations)
    pulled = pull_timed(ctx.topics.host, ctx.project, f"{topic}-sub")
    delivery = _check_delivery(label, landed, pulled)
    looks = sorted(t for r in runs for t in r.looks)
    latencies = _latencies(clock, landed, pulled, s.confirmations, first_look=looks[0])
    return {
        "relayer_settings": {k: v for k, v in env.items() if k.startswith("RELAYER_")},
        "start_block": start,
        "events": len(landed),
        "delivery": delivery,
        "latency_s": latencies,
        "looks": len(looks),
        "looks_per_execution": [len(r.looks) for r in runs],
        "max_gap_s": max((b - a for a, b in itertools.pairwise(looks)), default=0.0),
        "gaps_s": _gaps(runs),
        "outcomes": [r.summary.get("outcome") for r in runs],
        "handed_over": sum(1 for r in runs if r.summary.get("handed_over_by")),
        "waited_s": [r.summary.get("waited_s") for r in runs if r.summary.get("waited_s")],
        "cpu_s": [round(r.cpu_s, 3) for r in runs],
        "wall_s": [round(r.wall_s, 3) for r in runs],
        "ops": _ops(runs),
        "span_s": count * period_s,
        "timeline": _timeline(runs),
    }


def _timeline(runs: list[Execution]) -> list[dict[str, Any]]:
    """Each execution's start and looks, in seconds after the first start, and its start-up
    (process start to the run's own start: interpreter, imports, clients): where gaps are."""
    t0 = runs[0].started_at
    return [
        {
            "started_s": round(r.started_at - t0, 3),
            "startup_s": _startup_s(r),
            "looks_s": [round(t - t0, 3) for t in r.looks],
            "outcome": r.summary.get("outcome"),
            "duration_s": r.summary.get("duration_s"),
        }
        for r in runs
    ]


def _startup_s(run: Execution) -> float | None:
    """From the process start to the run's start (its summary's time minus its duration)."""
    summary = run.summary
    if "time" not in summary or summary.get("duration_s") is None:
        return None
    ended = datetime.fromisoformat(str(summary["time"]).replace("Z", "+00:00")).timestamp()
    return round(ended - float(summary["duration_s"]) - run.started_at, 3)


def _check_delivery(label: str, landed: list[Landed], pulled: list[Timed]) -> dict[str, Any]:
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


def _latencies(
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


def _gaps(runs: list[Execution]) -> dict[str, float]:
    """The longest gap inside an execution and across a hand-over (last look of one to the
    first of the next)."""
    inside = [b - a for r in runs for a, b in itertools.pairwise(r.looks)]
    across = [n.looks[0] - p.looks[-1] for p, n in itertools.pairwise(runs) if p.looks and n.looks]
    return {"inside_max": max(inside, default=0.0), "handover_max": max(across, default=0.0)}


def _ops(runs: list[Execution]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for r in runs:
        total.update(r.ops)
    looks = sum(len(r.looks) for r in runs) or 1
    return {
        "total": dict(total),
        "per_run": {k: round(v / len(runs), 2) for k, v in total.items()},
        "per_look": {k: round(v / looks, 2) for k, v in total.items()},
    }


def follow_phase(ctx: Context) -> dict[str, Any]:
    """Both segments on one anvil mining a block every `block_time_s`."""
    s: FollowSettings = ctx.settings.follow
    anvil = start_anvil(block_time=s.block_time_s)
    clock: BlockClock | None = None
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
        escrow = deploy_escrow(w3)
        clock = BlockClock(anvil.rpc_url)
        clock.start()
        # The follow segment emits until its last execution's last look can still relay it:
        # that look is a poll interval before its window ends, and an event is eligible a
        # block plus the confirmations after it is sent.
        last_look = (s.executions - 1) * s.period_s + s.window_s - s.poll_s
        margin = (s.confirmations + 2) * s.block_time_s
        ctx.say(
            f"  follow: {s.executions} executions every {s.period_s:g} s, window "
            f"{s.window_s:g} s, poll {s.poll_s:g} s, {s.confirmations} confirmations"
        )
        follow = _segment(
            ctx, clock, anvil.rpc_url, escrow, "follow", period_s=s.period_s,
            count=s.executions, emit_s=last_look - margin,
            extra={"RELAYER_RUN_SECONDS": f"{s.window_s:g}",
                   "RELAYER_POLL_INTERVAL": f"{s.poll_s:g}"},
        )  # fmt: skip
        ctx.say(_said(follow))
        ctx.say(f"  one batch: {s.batch_executions} executions every {s.batch_period_s:g} s")
        batch = _segment(
            ctx, clock, anvil.rpc_url, escrow, "batch", period_s=s.batch_period_s,
            count=s.batch_executions, emit_s=(s.batch_executions - 1) * s.batch_period_s - margin,
            extra={"RELAYER_RUN_SECONDS": "0", "RELAYER_POLL_INTERVAL": f"{s.batch_period_s:g}"},
        )  # fmt: skip
        ctx.say(_said(batch))
        offsets = clock.offsets_from_timestamps(range(follow["start_block"], clock.head() + 1))
    finally:
        if clock is not None:
            clock.stop()
        anvil.stop()
    return {
        "settings": asdict(s),
        "follow": follow,
        "batch": batch,
        "block_seen_after_timestamp_s": {
            "median": statistics.median(offsets), "min": min(offsets), "max": max(offsets),
        },
        "cpu": _cpu(s, follow, batch),
    }  # fmt: skip


def _said(segment: dict[str, Any]) -> str:
    lat = segment["latency_s"]
    return (
        f"    {segment['events']} events exactly once in order; latency p50 {lat['p50']:.2f} s, "
        f"p95 {lat['p95']:.2f} s ({lat['n']} events); {segment['looks']} looks, longest gap "
        f"{segment['max_gap_s']:.2f} s; CPU {sum(segment['cpu_s']):.2f} s"
    )


def _cpu(s: FollowSettings, follow: dict[str, Any], batch: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per hour: as measured, and modelled for follow mode on the deployed
    schedule (window 60 s, poll 5 s: a start-up and 12 looks a minute)."""
    per_batch_run = statistics.median(batch["cpu_s"])
    looks = follow["looks_per_execution"]
    per_follow_run = statistics.mean(follow["cpu_s"])
    per_look = max(0.0, (per_follow_run - per_batch_run) / max(1.0, statistics.mean(looks) - 1))
    return {
        "follow_measured_per_hour": sum(follow["cpu_s"]) / follow["span_s"] * 3600,
        "batch_per_run": per_batch_run,
        "batch_60s_per_hour": per_batch_run * 3600 / ANALYTIC_PERIOD_S,
        "follow_per_extra_look": per_look,
        "follow_60s_poll5_per_hour": 60 * (per_batch_run + 11 * per_look),
    }


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


def main(argv: Sequence[str] | None = None) -> int:
    """This phase alone against its own emulators: prints its rows and its details."""
    import dataclasses
    import os

    from bench.phases import Context, Settings
    from bench.run import PROJECT, say
    from bench.topics import Topics
    from devstack.stack.services import Stack

    p = argparse.ArgumentParser(prog="python -m bench.follow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a shorter schedule (about 60 s)")
    a = p.parse_args(argv)
    settings = Settings()
    if a.quick:
        settings = dataclasses.replace(settings, follow=QUICK_FOLLOW)
    with Stack.start(PROJECT) as stack:
        os.environ.update(stack.env())
        topics = Topics(stack.pubsub.address, stack.project)
        env = {**os.environ, **stack.env()}
        ctx = Context(settings, env, stack.project, stack.firestore.address, topics, say)
        out = follow_phase(ctx)
    r = follow_rates(out)
    print(json.dumps(out, indent=2))
    for name, value, unit, note in follow_rows(r):
        print(f"{name:<44} {value:>10.2f} {unit:<7} {note}")
    for t in follow_targets(r):
        print(f"target {t['target']}: {t['value']:.2f} ({t['wanted']}): "
              + ("holds" if t["holds"] else "MISSED"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
